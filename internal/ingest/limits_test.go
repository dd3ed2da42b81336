package ingest

// Load and limits (issue 9): a 100 MB attribute on every TCP receiver,
// slow-loris HTTP clients, and half-open gRPC connections and streams.
// Each test logs its figures (t.Logf) for RELIABILITY.md.

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
	jaegerthrift "github.com/jaegertracing/jaeger-idl/thrift-gen/jaeger"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/tracectl/tracectl/internal/ingest/ingesttest"
)

const hundredMB = 100 << 20

// xReader yields n bytes of 'x'.
type xReader struct{ n int64 }

func (r *xReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, io.EOF
	}
	k := min(int64(len(p)), r.n)
	for i := range p[:k] {
		p[i] = 'x'
	}
	r.n -= k
	return int(k), nil
}

// around is a body of prefix, n bytes of 'x' and suffix, streamed.
func around(prefix, suffix []byte, n int64) (io.Reader, int64) {
	return io.MultiReader(bytes.NewReader(prefix), &xReader{n}, bytes.NewReader(suffix)), int64(len(prefix)) + n + int64(len(suffix))
}

// layer is a message field holding what is inside it; before and after
// are the other fields of the message it belongs to.
type layer struct {
	num           protowire.Number
	before, after []byte
}

// protoAround encodes nested messages around a string field blobField of
// n bytes, after the fields blobBefore of its message: the blob's prefix
// and suffix. layers go from the innermost out.
func protoAround(n int, blobField protowire.Number, blobBefore []byte, layers ...layer) (prefix, suffix []byte) {
	prefix = protowire.AppendVarint(protowire.AppendTag(append([]byte(nil), blobBefore...), blobField, protowire.BytesType), uint64(n))
	for _, l := range layers {
		inner := len(prefix) + n + len(suffix)
		p := protowire.AppendVarint(protowire.AppendTag(append([]byte(nil), l.before...), l.num, protowire.BytesType), uint64(inner))
		prefix = append(p, prefix...)
		suffix = append(append([]byte(nil), suffix...), l.after...)
	}
	return prefix, suffix
}

func bytesField(num protowire.Number, v []byte) []byte {
	return protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), v)
}

// otlpAround is an ExportTraceServiceRequest of one span with attribute
// "blob" of n bytes.
func otlpAround(n int) (prefix, suffix []byte) {
	span := bytesField(1, bytes.Repeat([]byte{7}, 16)) // trace_id
	span = append(span, bytesField(2, bytes.Repeat([]byte{8}, 8))...)
	span = append(span, bytesField(5, []byte("big"))...)
	span = protowire.AppendFixed64(protowire.AppendTag(span, 7, protowire.Fixed64Type), 1_700_000_000_000_000_000)
	span = protowire.AppendFixed64(protowire.AppendTag(span, 8, protowire.Fixed64Type), 1_700_000_001_000_000_000)
	return protoAround(n, 1, nil, // AnyValue.string_value
		layer{num: 2, before: bytesField(1, []byte("blob"))}, // KeyValue.key, .value
		layer{num: 9, before: span},                          // Span's fields, .attributes
		layer{num: 2},                                        // ScopeSpans.spans
		layer{num: 2},                                        // ResourceSpans.scope_spans
		layer{num: 1})                                        // ExportTraceServiceRequest.resource_spans
}

// jaegerAround is a PostSpansRequest of one span with tag "blob" of n bytes.
func jaegerAround(n int) (prefix, suffix []byte) {
	span := bytesField(1, bytes.Repeat([]byte{7}, 16)) // trace_id
	span = append(span, bytesField(2, bytes.Repeat([]byte{8}, 8))...)
	span = append(span, bytesField(3, []byte("big"))...)
	return protoAround(n, 3, bytesField(1, []byte("blob")), // KeyValue.key, .v_str
		layer{num: 8, before: span},                                       // Span's fields, .tags
		layer{num: 1, after: bytesField(2, bytesField(1, []byte("svc")))}, // Batch.spans, Batch.process
		layer{num: 1}) // PostSpansRequest.batch
}

// thriftAround is a Jaeger thrift Batch of one span with tag "blob" of n
// bytes (binary protocol).
func thriftAround(t *testing.T, n int) (prefix, suffix []byte) {
	const mark = "<<<BLOB-PLACEHOLDER>>>"
	v := mark
	batch := &jaegerthrift.Batch{
		Process: &jaegerthrift.Process{ServiceName: "svc"},
		Spans: []*jaegerthrift.Span{{TraceIdLow: 1, TraceIdHigh: 2, SpanId: 3, OperationName: "big", StartTime: 1, Duration: 1,
			Tags: []*jaegerthrift.Tag{{Key: "blob", VType: jaegerthrift.TagType_STRING, VStr: &v}}}},
	}
	b, err := thrift.NewTSerializer().Write(context.Background(), batch)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(b, []byte(mark))
	if i < 4 || binary.BigEndian.Uint32(b[i-4:]) != uint32(len(mark)) {
		t.Fatalf("placeholder not found in the thrift encoding")
	}
	prefix = append([]byte(nil), b[:i]...)
	binary.BigEndian.PutUint32(prefix[i-4:], uint32(n))
	return prefix, b[i+len(mark):]
}

// partsCodec sends a message given as pieces without joining them, so one
// 100 MB blob serves every call.
type partsCodec struct{}

type parts [][]byte

func (partsCodec) Marshal(v any) (mem.BufferSlice, error) {
	var out mem.BufferSlice
	for _, p := range *v.(*parts) {
		out = append(out, mem.SliceBuffer(p))
	}
	return out, nil
}
func (partsCodec) Unmarshal(mem.BufferSlice, any) error { return nil }
func (partsCodec) Name() string                         { return "proto" }

// allocated runs f and returns the bytes the process allocated meanwhile.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestHundredMBAttribute sends one span whose one attribute is 100 MB to
// every TCP receiver at the default --max-request-bytes (20 MiB), with and
// without Content-Length over HTTP. Each is refused (413 /
// ResourceExhausted) with a message naming the limit and the flag, without
// reading the body past the limit, and the receiver then serves a normal
// request.
func TestHundredMBAttribute(t *testing.T) {
	limit := int64(DefaultMaxRequestBytes)
	// The encodings are valid: a small blob decodes.
	{
		p, s := otlpAround(3)
		req := ptraceotlp.NewExportRequest()
		if err := req.UnmarshalProto(append(append(p, "xxx"...), s...)); err != nil {
			t.Fatalf("OTLP encoding: %v", err)
		}
		if v, _ := req.Traces().ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).Attributes().Get("blob"); v.Str() != "xxx" {
			t.Fatalf("OTLP encoding: blob = %q", v.Str())
		}
		p, s = jaegerAround(3)
		if _, err := decodeJaegerProto(append(append(p, "xxx"...), s...)); err != nil {
			t.Fatalf("Jaeger encoding: %v", err)
		}
	}
	wantMsg := func(t *testing.T, what, msg string) {
		t.Helper()
		if !strings.Contains(msg, fmt.Sprintf("larger than %d bytes", limit)) || !strings.Contains(msg, "--max-request-bytes") {
			t.Errorf("%s: message %q does not name the limit and --max-request-bytes", what, msg)
		}
	}

	type httpCase struct {
		name, protocol, path, ct string
		start                    func(env) Receiver
		prefix, suffix, small    []byte
	}
	otlpP, otlpS := []byte(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"07070707070707070707070707070707","spanId":"0808080808080808","name":"big","startTimeUnixNano":"1","endTimeUnixNano":"2","attributes":[{"key":"blob","value":{"stringValue":"`), []byte(`"}}]}]}]}]}`)
	zipP, zipS := []byte(`[{"traceId":"07070707070707070707070707070707","id":"0808080808080808","name":"big","timestamp":1,"duration":1,"localEndpoint":{"serviceName":"svc"},"tags":{"blob":"`), []byte(`"}}]`)
	thrP, thrS := thriftAround(t, hundredMB)
	thrSmallP, thrSmallS := thriftAround(t, 3)
	cases := []httpCase{
		{"otlp_http", ProtocolOTLPHTTP, "/v1/traces", otlpJSON, func(e env) Receiver {
			return start(NewOTLPHTTP(tcpConfig(false), e.rec, testLogger(t), e.reg))(t)
		}, otlpP, otlpS, append(append(append([]byte(nil), otlpP...), "xxx"...), otlpS...)},
		{"zipkin", ProtocolZipkin, "/api/v2/spans", "application/json", func(e env) Receiver {
			return start(NewZipkin(ZipkinConfig{Config: tcpConfig(false)}, e.rec, testLogger(t), e.reg))(t)
		}, zipP, zipS, append(append(append([]byte(nil), zipP...), "xxx"...), zipS...)},
		{"jaeger_thrift_http", ProtocolJaegerThriftHTTP, "/api/traces", "application/x-thrift", func(e env) Receiver {
			return start(NewJaegerThriftHTTP(tcpConfig(false), e.rec, testLogger(t), e.reg))(t)
		}, thrP, thrS, append(append(append([]byte(nil), thrSmallP...), "xxx"...), thrSmallS...)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv()
			r := c.start(e)
			url := "http://" + r.Addr().String() + c.path
			for _, chunked := range []bool{false, true} {
				var code int
				var body []byte
				var elapsed time.Duration
				alloc := allocated(func() {
					began := time.Now()
					rd, n := around(c.prefix, c.suffix, hundredMB)
					if chunked {
						rd = struct{ io.Reader }{rd} // no length known: sent chunked
					}
					req, _ := http.NewRequest(http.MethodPost, url, rd)
					if !chunked {
						req.ContentLength = n
					}
					req.Header.Set("Content-Type", c.ct)
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						t.Fatalf("chunked=%v: %v", chunked, err)
					}
					code = resp.StatusCode
					body, _ = io.ReadAll(resp.Body)
					resp.Body.Close()
					elapsed = time.Since(began)
				})
				if code != http.StatusRequestEntityTooLarge {
					t.Errorf("chunked=%v: status %d, want 413", chunked, code)
				}
				wantMsg(t, fmt.Sprintf("chunked=%v", chunked), string(body))
				t.Logf("%s, 100 MB attribute, chunked=%v: %d in %v, %.1f MB allocated", c.name, chunked, code, elapsed.Round(time.Millisecond), float64(alloc)/1e6)
				// Not buffered whole: the body is read no further than
				// the limit (and with a length, not at all).
				if alloc > 100<<20 {
					t.Errorf("chunked=%v: %d MB allocated while refusing a 100 MB body with a 20 MiB limit", chunked, alloc>>20)
				}
			}
			if e.rec.Calls() != 0 {
				t.Errorf("consumer called %d times", e.rec.Calls())
			}
			if got := counter(r.(interface{ metricsOf() *metrics }).metricsOf().refusedRequests.WithLabelValues(c.protocol, reasonTooLarge)); got != 2 {
				t.Errorf("refused requests (too_large) = %v, want 2", got)
			}
			code, _, b := post(t, url, c.small, postOpts{contentType: c.ct})
			if code/100 != 2 || e.rec.Calls() != 1 {
				t.Errorf("a normal request after the big ones: status %d (%s), %d consumer calls", code, b, e.rec.Calls())
			}
		})
	}

	blob := bytes.Repeat([]byte("x"), hundredMB)
	type grpcCase struct {
		name, protocol, method string
		start                  func(env) Receiver
		around                 func(int) ([]byte, []byte)
	}
	for _, c := range []grpcCase{
		{"otlp_grpc", ProtocolOTLPGRPC, "/" + otlpTraceService + "/Export", func(e env) Receiver {
			return start(NewOTLPGRPC(tcpConfig(false), e.rec, testLogger(t), e.reg))(t)
		}, otlpAround},
		{"jaeger_grpc", ProtocolJaegerGRPC, "/" + jaegerCollectorService + "/PostSpans", func(e env) Receiver {
			return start(NewJaegerGRPC(tcpConfig(false), e.rec, testLogger(t), e.reg))(t)
		}, jaegerAround},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv()
			r := c.start(e)
			conn := grpcConn(t, r.Addr().String())
			p, s := c.around(hundredMB)
			var err error
			var elapsed time.Duration
			alloc := allocated(func() {
				began := time.Now()
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				err = conn.Invoke(ctx, c.method, &parts{p, blob, s}, new(parts), grpc.ForceCodecV2(partsCodec{}))
				elapsed = time.Since(began)
			})
			if status.Code(err) != codes.ResourceExhausted {
				t.Errorf("100 MB attribute: %v, want ResourceExhausted", err)
			}
			// gRPC refuses the message before any handler runs, with
			// its own message: it names the limit, not the flag.
			if msg := status.Convert(err).Message(); !strings.Contains(msg, fmt.Sprintf("vs. %d", limit)) {
				t.Errorf("message %q does not name the limit", msg)
			}
			t.Logf("%s, 100 MB attribute: %v in %v, %.1f MB allocated", c.name, status.Code(err), elapsed.Round(time.Millisecond), float64(alloc)/1e6)
			if alloc > 100<<20 {
				t.Errorf("%d MB allocated while refusing a 100 MB message with a 20 MiB limit", alloc>>20)
			}
			// The same connection serves a normal request.
			p, s = c.around(3)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := conn.Invoke(ctx, c.method, &parts{p, []byte("xxx"), s}, new(parts), grpc.ForceCodecV2(partsCodec{})); err != nil || e.rec.Calls() != 1 {
				t.Errorf("a normal request after the big one: %v, %d consumer calls", err, e.rec.Calls())
			}
		})
	}
}

func (h *httpServer) metricsOf() *metrics { return h.m }

var _ = encoding.GetCodecV2
var _ keepalive.ServerParameters
var _ sync.Mutex
var _ net.Conn
var _ = ingesttest.OpenFDs
