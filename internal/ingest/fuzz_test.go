package ingest

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/apache/thrift/lib/go/thrift"
	"github.com/jaegertracing/jaeger-idl/proto-gen/api_v2"
	"github.com/jaegertracing/jaeger-idl/thrift-gen/jaeger"
	"github.com/jaegertracing/jaeger-idl/thrift-gen/zipkincore"
	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/translator/zipkin/zipkinv1"
	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/translator/zipkin/zipkinv2"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
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
		// Uncompressed, the body comes back as sent, or is refused as
		// too large exactly when it is.
		if enc == "" || enc == "identity" {
			switch {
			case len(body) > limit && (re == nil || re.httpStatus != http.StatusRequestEntityTooLarge):
				t.Fatalf("%d-byte body over a limit of %d: %v, want 413", len(body), limit, re)
			case len(body) <= limit && (re != nil || !bytes.Equal(got, body)):
				t.Fatalf("%d-byte body: %v, %d bytes back; want the body", len(body), re, len(got))
			}
		}
	})
}

// FuzzOTLPHTTP drives the OTLP/HTTP handler with any body, as protobuf and
// as JSON: it answers 200 (spans handed on, as many as the body decodes to
// with valid IDs), 400 (malformed, with a message naming the protocol) or
// 413, and never panics.
func FuzzOTLPHTTP(f *testing.F) {
	td := otlpTraces("fuzz")
	pb, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	if err != nil {
		f.Fatal(err)
	}
	js, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalJSON()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(pb, false)
	f.Add(js, true)
	f.Add(garbage, false)
	f.Add([]byte(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz"}]}]}]}`), true)
	var got int
	r, err := NewOTLPHTTP(Config{Endpoint: loopback, MaxRequestBytes: 1 << 20},
		ConsumerFunc(func(_ context.Context, _ string, td ptrace.Traces) error { got += td.SpanCount(); return nil }), nil, prometheus.NewRegistry())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte, json bool) {
		ct := otlpProto
		if json {
			ct = otlpJSON
		}
		got = 0
		req := httptest.NewRequest(http.MethodPost, "/v1/traces", bytesReader(body))
		req.Header.Set("Content-Type", ct)
		w := httptest.NewRecorder()
		r.handle(w, req)
		switch w.Code {
		case http.StatusOK:
			exp := ptraceotlp.NewExportRequest()
			if json {
				err = exp.UnmarshalJSON(body)
			} else {
				err = exp.UnmarshalProto(body)
			}
			if err != nil {
				t.Fatalf("200 for a body that does not decode: %v", err)
			}
			if want := exp.Traces().SpanCount(); got > want {
				t.Fatalf("%d spans handed on, the body holds %d", got, want)
			}
		case http.StatusBadRequest:
			if !strings.Contains(w.Body.String(), "otlp") {
				t.Fatalf("400 without naming the protocol: %q", w.Body.String())
			}
		case http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("status %d for a fuzzed body", w.Code)
		}
	})
}

// FuzzOTLPGRPC feeds any Export body to the OTLP/gRPC handler: an answer
// or an InvalidArgument status, never a panic.
func FuzzOTLPGRPC(f *testing.F) {
	pb, err := ptraceotlp.NewExportRequestFromTraces(otlpTraces("fuzz")).MarshalProto()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(pb)
	f.Add(garbage)
	r, err := NewOTLPGRPC(Config{Endpoint: loopback}, ConsumerFunc(func(context.Context, string, ptrace.Traces) error { return nil }), nil, prometheus.NewRegistry())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		resp, err := r.handle(context.Background(), body)
		if err != nil {
			if st, _ := status.FromError(err); st.Code() != codes.InvalidArgument {
				t.Fatalf("error %v for a fuzzed body, want InvalidArgument", err)
			}
			return
		}
		if ptraceotlp.NewExportResponse().UnmarshalProto(resp) != nil {
			t.Fatalf("the answer does not decode: % x", resp)
		}
	})
}
