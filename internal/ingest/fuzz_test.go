package ingest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/apache/thrift/lib/go/thrift"
	"github.com/jaegertracing/jaeger-idl/proto-gen/api_v2"
	"github.com/jaegertracing/jaeger-idl/thrift-gen/jaeger"
	"github.com/jaegertracing/jaeger-idl/thrift-gen/zipkincore"
	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/translator/zipkin/zipkinv1"
	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/translator/zipkin/zipkinv2"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// The fuzz targets feed outside input to each decoder: none may panic or
// hang, whatever the bytes. Run one with: go test -fuzz=FuzzJaegerThrift ./internal/ingest

func FuzzJaegerThrift(f *testing.F) {
	batch, _, _ := jaegerThriftBatch()
	b, err := thrift.NewTSerializer().Write(context.Background(), batch)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add(garbage)
	f.Fuzz(func(t *testing.T, body []byte) {
		_, _ = safeDecode("thrift", func() (ptrace.Traces, error) { return decodeJaegerThriftBatch(context.Background(), body) })
	})
}

func FuzzJaegerProto(f *testing.F) {
	batch, _, _ := jaegerProtoBatch()
	b, err := (&api_v2.PostSpansRequest{Batch: batch}).Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add(garbage)
	f.Fuzz(func(t *testing.T, body []byte) {
		_, _ = safeDecode("proto", func() (ptrace.Traces, error) { return decodeJaegerProto(body) })
	})
}

// nopAgent swallows decoded calls.
type nopAgent struct{}

func (nopAgent) EmitBatch(context.Context, *jaeger.Batch) error            { return nil }
func (nopAgent) EmitZipkinBatch(context.Context, []*zipkincore.Span) error { return nil }

func FuzzAgentPacket(f *testing.F) {
	batch, _, _ := jaegerThriftBatch()
	f.Add(emitBatchPacket(f, batch, true), true)
	f.Add(emitBatchPacket(f, batch, false), false)
	f.Add(garbage, true)
	f.Fuzz(func(t *testing.T, pkt []byte, compact bool) {
		_ = decodeAgentPacket(context.Background(), pkt, compact, nopAgent{})
	})
}

func FuzzZipkin(f *testing.F) {
	f.Add([]byte(zipkinV1JSON), uint8(0))
	f.Add([]byte(`[{"traceId":"0000000000001111","id":"0000000000000033","name":"x","localEndpoint":{"serviceName":"s"}}]`), uint8(1))
	f.Add(garbage, uint8(2))
	f.Add(garbage, uint8(3))
	decoders := []struct {
		name string
		u    interface {
			UnmarshalTraces([]byte) (ptrace.Traces, error)
		}
	}{
		{"v1 JSON", zipkinv1.NewJSONTracesUnmarshaler(true)},
		{"v2 JSON", zipkinv2.NewJSONTracesUnmarshaler(true)},
		{"v2 protobuf", zipkinv2.NewProtobufTracesUnmarshaler(false, false)},
		{"v1 thrift", zipkinv1.NewThriftTracesUnmarshaler()},
	}
	f.Fuzz(func(t *testing.T, body []byte, which uint8) {
		d := decoders[int(which)%len(decoders)]
		_, _ = decodeZipkin(d.u, body, d.name)
	})
}

// FuzzReadBody checks the size bound holds for any body and encoding.
func FuzzReadBody(f *testing.F) {
	f.Add(gzipped(f, make([]byte, 4096)), "gzip")
	f.Add(zlibbed(f, []byte("hello")), "deflate")
	f.Add(zstded(f, make([]byte, 4096)), "zstd")
	f.Add([]byte("plain"), "")
	const limit = 1024
	h, err := newHTTPServer("fuzz", Config{Endpoint: loopback, MaxRequestBytes: limit}, ConsumerFunc(nil), nil, prometheus.NewRegistry())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte, enc string) {
		req := httptest.NewRequest(http.MethodPost, "/", bytesReader(body))
		req.Header.Set("Content-Encoding", enc)
		got, re := h.readBody(httptest.NewRecorder(), req)
		if re == nil && len(got) > limit {
			t.Fatalf("readBody returned %d bytes over a limit of %d", len(got), limit)
		}
	})
}
