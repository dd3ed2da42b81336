package ingest

import (
	"context"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding/gzip"
)

// rawRecorder is a RawConsumer that keeps what each call got.
type rawRecorder struct {
	mu    sync.Mutex
	calls []rawCall
}

type rawCall struct {
	raw   []byte // nil: Consume was called
	spans int
	same  bool // raw decodes to the spans given
}

func (r *rawRecorder) Consume(_ context.Context, _ string, td ptrace.Traces) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, rawCall{spans: td.SpanCount()})
	return nil
}

func (r *rawRecorder) ConsumeOTLP(_ context.Context, _ string, td ptrace.Traces, raw []byte) error {
	want, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, rawCall{raw: append([]byte{}, raw...), spans: td.SpanCount(), same: err == nil && string(want) == string(raw)})
	return nil
}

func (r *rawRecorder) last(t *testing.T) rawCall {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.calls) == 0 {
		t.Fatal("consumer not called")
	}
	return r.calls[len(r.calls)-1]
}

// TestOTLPPassesRawProtobuf: a consumer that takes the request bytes gets
// the decompressed protobuf body from both OTLP receivers, exactly when it
// still encodes the spans handed over: not for JSON, not after invalid
// spans were dropped.
func TestOTLPPassesRawProtobuf(t *testing.T) {
	rec := &rawRecorder{}
	httpR := start(NewOTLPHTTP(tcpConfig(false), rec, testLogger(t), prometheus.NewRegistry()))(t)
	grpcR := start(NewOTLPGRPC(tcpConfig(false), rec, testLogger(t), prometheus.NewRegistry()))(t)
	url := "http://" + httpR.Addr().String() + "/v1/traces"

	good := ptraceotlp.NewExportRequestFromTraces(otlpTraces("raw-ok"))
	goodBytes, _ := good.MarshalProto()
	bad := otlpTraces("raw-bad")
	bad.ResourceSpans().At(0).ScopeSpans().At(0).Spans().AppendEmpty().SetName("no ids")
	badBytes, _ := ptraceotlp.NewExportRequestFromTraces(bad).MarshalProto()
	jsonBody, _ := good.MarshalJSON()

	for _, tc := range []struct {
		name    string
		send    func()
		wantRaw []byte
	}{
		{"http proto gzip", func() { post(t, url, gzipped(t, goodBytes), postOpts{contentType: otlpProto, encoding: "gzip"}) }, goodBytes},
		{"http json", func() { post(t, url, jsonBody, postOpts{contentType: otlpJSON}) }, nil},
		{"http proto with a dropped span", func() { post(t, url, badBytes, postOpts{contentType: otlpProto}) }, nil},
		{"grpc gzip", func() {
			c := otlpGRPCClient(t, grpcR.Addr().String())
			if _, err := c.Export(context.Background(), good, grpc.UseCompressor(gzip.Name)); err != nil {
				t.Fatal(err)
			}
		}, goodBytes},
		{"grpc with a dropped span", func() {
			c := otlpGRPCClient(t, grpcR.Addr().String())
			if _, err := c.Export(context.Background(), ptraceotlp.NewExportRequestFromTraces(bad)); err != nil {
				t.Fatal(err)
			}
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.send()
			got := rec.last(t)
			if got.spans != 1 {
				t.Errorf("%d spans handed over, want 1", got.spans)
			}
			switch {
			case tc.wantRaw == nil && got.raw != nil:
				t.Errorf("raw bytes passed although they do not encode the spans handed over")
			case tc.wantRaw != nil && string(got.raw) != string(tc.wantRaw):
				t.Errorf("raw = %d bytes, want the %d-byte decompressed body", len(got.raw), len(tc.wantRaw))
			case tc.wantRaw != nil && !got.same:
				t.Errorf("raw bytes do not encode the spans handed over")
			}
		})
	}
}
