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
				// the limit (and with a length, not at all). Not under the
				// race detector: its sync.Pool drops buffers at random,
				// so the chunked client's writes allocate ~130 MB.
				if alloc > 32<<20 && !raceEnabled {
					t.Errorf("chunked=%v: %d MB allocated while refusing a 100 MB body with a 20 MiB limit; want no more than the limit and change", chunked, alloc>>20)
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
			// Counted with the receivers' own refusals all the same.
			if got := settle(func() float64 {
				return counter(r.(interface{ metricsOf() *metrics }).metricsOf().refusedRequests.WithLabelValues(c.protocol, reasonTooLarge))
			}, 1); got != 1 {
				t.Errorf("refused requests (too_large) = %v, want 1", got)
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
func (g *grpcServer) metricsOf() *metrics { return g.m }

// TestSlowLorisHTTP holds 200 connections to each HTTP receiver that
// trickle header bytes (one a second) and 50 that stall in the body, while
// a normal client posts every 100 ms. The header tricklers are closed by
// the read-header timeout (10 s); the normal client is served throughout
// with normal latency. Every listener has all four timeouts set.
func TestSlowLorisHTTP(t *testing.T) {
	t.Parallel()
	type target struct {
		name, path, ct string
		r              *httpServer
		small          []byte
	}
	e := newEnv()
	otlp := start(NewOTLPHTTP(tcpConfig(false), e.rec, testLogger(t), e.reg))(t)
	zip := start(NewZipkin(ZipkinConfig{Config: tcpConfig(false)}, e.rec, testLogger(t), e.reg))(t)
	jt := start(NewJaegerThriftHTTP(tcpConfig(false), e.rec, testLogger(t), e.reg))(t)
	thrP, thrS := thriftAround(t, 3)
	targets := []target{
		{"otlp_http", "/v1/traces", otlpJSON, otlp.httpServer, []byte(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"07070707070707070707070707070707","spanId":"0808080808080808","name":"n"}]}]}]}`)},
		{"zipkin", "/api/v2/spans", "application/json", zip.httpServer, []byte(`[{"traceId":"07070707070707070707070707070707","id":"0808080808080808","name":"n","timestamp":1,"duration":1}]`)},
		{"jaeger_thrift_http", "/api/traces", "application/x-thrift", jt.httpServer, append(append(append([]byte(nil), thrP...), "xxx"...), thrS...)},
	}
	for _, tg := range targets {
		s := tg.r.srv
		if s.ReadHeaderTimeout <= 0 || s.ReadTimeout <= 0 || s.WriteTimeout <= 0 || s.IdleTimeout <= 0 {
			t.Errorf("%s: timeouts read-header %v, read %v, write %v, idle %v: each must be set", tg.name, s.ReadHeaderTimeout, s.ReadTimeout, s.WriteTimeout, s.IdleTimeout)
		}
	}
	fds := ingesttest.OpenFDs()
	began := time.Now()
	var lorises, stalls []*ingesttest.SlowLoris
	for _, tg := range targets {
		lorises = append(lorises, ingesttest.StartSlowLoris(tg.r.Addr().String(), tg.path, 200, ingesttest.TrickleHeaders, time.Second))
		stalls = append(stalls, ingesttest.StartSlowLoris(tg.r.Addr().String(), tg.path, 50, ingesttest.StallBody, time.Second))
	}
	time.Sleep(500 * time.Millisecond)
	fdsUnder := ingesttest.OpenFDs()

	// The normal client, until every trickler is closed (or 20 s).
	var worst time.Duration
	var served, failed int
	deadline := began.Add(20 * time.Second)
	client := &http.Client{Timeout: 5 * time.Second}
	for time.Now().Before(deadline) {
		for _, tg := range targets {
			t0 := time.Now()
			code, _, b := post(t, "http://"+tg.r.Addr().String()+tg.path, tg.small, postOpts{contentType: tg.ct, client: client})
			if d := time.Since(t0); d > worst {
				worst = d
			}
			if code/100 != 2 {
				failed++
				t.Errorf("%s: normal request during the slow-loris: %d %s", tg.name, code, b)
			} else {
				served++
			}
		}
		done := true
		for _, l := range lorises {
			if closed, _ := l.Closed(); len(closed) < 200 {
				done = false
			}
		}
		if done {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for i, l := range lorises {
		closed, opened := l.Closed()
		if err := l.Stop(); err != nil {
			t.Errorf("%s: %v", targets[i].name, err)
		}
		if opened != 200 || len(closed) != 200 {
			t.Errorf("%s: %d of %d header tricklers closed by the server in %v", targets[i].name, len(closed), opened, time.Since(began).Round(time.Second))
			continue
		}
		t.Logf("%s: 200 header tricklers closed after %v to %v (read-header timeout %v)", targets[i].name,
			closed[0].Round(10*time.Millisecond), closed[len(closed)-1].Round(10*time.Millisecond), targets[i].r.srv.ReadHeaderTimeout)
		if closed[0] < targets[i].r.srv.ReadHeaderTimeout-time.Second || closed[len(closed)-1] > targets[i].r.srv.ReadHeaderTimeout+5*time.Second {
			t.Errorf("%s: tricklers closed after %v to %v, want about the read-header timeout", targets[i].name, closed[0], closed[len(closed)-1])
		}
	}
	for _, s := range stalls {
		_ = s.Stop() // bounded by the read timeout (1 min): checked above that it is set
	}
	t.Logf("normal client during 600 tricklers and 150 body stalls: %d requests served, %d failed, worst latency %v; fds %d before, %d during",
		served, failed, worst.Round(time.Millisecond), fds, fdsUnder)
	if worst > time.Second {
		t.Errorf("worst latency of a normal request %v during the slow-loris", worst)
	}
}

// preface opens a raw TCP connection, sends the HTTP/2 client preface and
// then, if frames is set, a SETTINGS frame and a HEADERS frame opening
// method without END_STREAM; it returns when the server closes the
// connection, with how long that took. It never answers the server's
// pings.
func preface(t *testing.T, addr, method string, frames bool, max time.Duration) time.Duration {
	t.Helper()
	began := time.Now()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b := []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
	if frames {
		frame := func(typ, flags byte, stream uint32, payload []byte) {
			h := []byte{byte(len(payload) >> 16), byte(len(payload) >> 8), byte(len(payload)), typ, flags, 0, 0, 0, 0}
			binary.BigEndian.PutUint32(h[5:], stream)
			b = append(append(b, h...), payload...)
		}
		frame(0x4, 0, 0, nil) // SETTINGS
		var hb []byte         // HPACK literals without indexing, new names
		for _, kv := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":path", method}, {":authority", "x"},
			{"content-type", "application/grpc"}, {"te", "trailers"}} {
			hb = append(hb, 0, byte(len(kv[0])))
			hb = append(hb, kv[0]...)
			hb = append(hb, byte(len(kv[1])))
			hb = append(hb, kv[1]...)
		}
		frame(0x1, 0x4, 1, hb) // HEADERS, END_HEADERS, no END_STREAM
	}
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(began.Add(max))
	_, err = io.Copy(io.Discard, c)
	d := time.Since(began)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Errorf("connection still open after %v", d.Round(time.Millisecond))
	}
	return d
}

// TestGRPCPrefaceOnly: raw connections that send the HTTP/2 preface and
// nothing else are closed by the connection timeout (10 s), set in the
// listener both gRPC receivers share, which serves a normal client
// meanwhile.
func TestGRPCPrefaceOnly(t *testing.T) {
	t.Parallel()
	e := newEnv()
	for _, r := range []Receiver{
		start(NewOTLPGRPC(tcpConfig(false), e.rec, testLogger(t), e.reg))(t),
	} {
		var wg sync.WaitGroup
		var mu sync.Mutex
		var lifetimes []time.Duration
		for range 50 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				d := preface(t, r.Addr().String(), "", false, 20*time.Second)
				mu.Lock()
				lifetimes = append(lifetimes, d)
				mu.Unlock()
			}()
		}
		client := otlpGRPCClient(t, r.Addr().String())
		var worst time.Duration
		for range 20 {
			t0 := time.Now()
			if _, err := client.Export(context.Background(), ptraceotlp.NewExportRequestFromTraces(otlpTraces("n"))); err != nil {
				t.Errorf("normal export beside preface-only connections: %v", err)
			}
			worst = max(worst, time.Since(t0))
			time.Sleep(100 * time.Millisecond)
		}
		wg.Wait()
		lo, hi := lifetimes[0], lifetimes[0]
		for _, d := range lifetimes {
			lo, hi = min(lo, d), max(hi, d)
		}
		t.Logf("50 preface-only connections closed after %v to %v; a normal client's worst export %v", lo.Round(10*time.Millisecond), hi.Round(10*time.Millisecond), worst.Round(time.Millisecond))
		if lo < 9*time.Second || hi > 15*time.Second {
			t.Errorf("preface-only connections closed after %v to %v, want the 10 s connection timeout", lo, hi)
		}
		// Served beside them, not after them: well inside the 10 s the
		// preface-only connections are held (a loaded machine or the race
		// detector can make one export take a second).
		if worst > 5*time.Second {
			t.Errorf("normal export took %v beside preface-only connections", worst)
		}
	}
}

// TestHalfOpenGRPCStreams opens calls that never finish their request on
// both gRPC receivers: from a live client (which answers pings) and from a
// dead one (which does not). With the connection limits shortened, the
// dead peer is closed by the keepalive ping timeout and the live client's
// streams by the maximum connection age; meanwhile another client is
// served, a connection carries at most grpcMaxStreams calls at once, and
// Shutdown does not wait on stalled calls past its context.
func TestHalfOpenGRPCStreams(t *testing.T) {
	saved := grpcKeepalive
	t.Cleanup(func() { grpcKeepalive = saved })
	grpcKeepalive = keepalive.ServerParameters{MaxConnectionIdle: time.Minute, MaxConnectionAge: 3 * time.Second,
		MaxConnectionAgeGrace: time.Second, Time: time.Second, Timeout: time.Second}
	for _, c := range []struct {
		name, method string
		start        func(env) Receiver
	}{
		{"otlp_grpc", "/" + otlpTraceService + "/Export", func(e env) Receiver {
			return start(NewOTLPGRPC(tcpConfig(false), e.rec, testLogger(t), e.reg))(t)
		}},
		{"jaeger_grpc", "/" + jaegerCollectorService + "/PostSpans", func(e env) Receiver {
			return start(NewJaegerGRPC(tcpConfig(false), e.rec, testLogger(t), e.reg))(t)
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv()
			r := c.start(e)
			addr := r.Addr().String()
			began := time.Now()
			// A live client: grpcMaxStreams calls with headers and no
			// request; one more must wait for a free stream.
			conn := grpcConn(t, addr)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var streams []grpc.ClientStream
			for range grpcMaxStreams {
				s, err := conn.NewStream(ctx, &grpc.StreamDesc{ClientStreams: true}, c.method, grpc.ForceCodecV2(partsCodec{}))
				if err != nil {
					t.Fatal(err)
				}
				streams = append(streams, s)
			}
			extra, cancelExtra := context.WithTimeout(ctx, 500*time.Millisecond)
			s, err := conn.NewStream(extra, &grpc.StreamDesc{ClientStreams: true}, c.method, grpc.ForceCodecV2(partsCodec{}))
			if err == nil {
				// Created lazily: sending shows whether it got a stream.
				err = s.SendMsg(&parts{[]byte{}})
				if err == nil {
					_, err = s.Header()
				}
			}
			cancelExtra()
			if status.Code(err) != codes.DeadlineExceeded {
				t.Errorf("call %d on a connection holding %d stalled calls: %v, want it to wait (DeadlineExceeded)", grpcMaxStreams+1, grpcMaxStreams, err)
			}
			// A dead client: a stream opened by hand, pings unanswered.
			dead := make(chan time.Duration, 1)
			go func() { dead <- preface(t, addr, c.method, true, 15*time.Second) }()
			// Another client is served meanwhile.
			other := grpcConn(t, addr)
			p, sfx := otlpAround(3)
			if c.name == "jaeger_grpc" {
				p, sfx = jaegerAround(3)
			}
			t0 := time.Now()
			octx, ocancel := context.WithTimeout(context.Background(), 5*time.Second)
			err = other.Invoke(octx, c.method, &parts{p, []byte("xxx"), sfx}, new(parts), grpc.ForceCodecV2(partsCodec{}))
			ocancel()
			served := time.Since(t0)
			if err != nil {
				t.Errorf("another client beside %d stalled calls: %v", grpcMaxStreams, err)
			}
			// The live client's stalled calls end with the connection's age.
			var wg sync.WaitGroup
			var mu sync.Mutex
			var last time.Duration
			for _, s := range streams {
				wg.Add(1)
				go func() {
					defer wg.Done()
					err := s.RecvMsg(new(parts))
					mu.Lock()
					defer mu.Unlock()
					last = max(last, time.Since(began))
					if err == nil {
						t.Errorf("a stalled call succeeded")
					}
				}()
			}
			wg.Wait()
			d := <-dead
			t.Logf("%s: %d stalled calls from a live client ended after %v (max connection age %v + grace %v); dead peer closed after %v (keepalive %v + %v); another client served in %v",
				c.name, len(streams), last.Round(10*time.Millisecond), grpcKeepalive.MaxConnectionAge, grpcKeepalive.MaxConnectionAgeGrace,
				d.Round(10*time.Millisecond), grpcKeepalive.Time, grpcKeepalive.Timeout, served.Round(time.Millisecond))
			if last > 10*time.Second {
				t.Errorf("stalled calls lasted %v", last)
			}
			if d > 10*time.Second {
				t.Errorf("dead peer lasted %v", d)
			}
			if served > time.Second {
				t.Errorf("another client waited %v", served)
			}
		})
	}

	// Shutdown with stalled calls open: it gives up at its deadline and
	// closes them, rather than waiting for them, and, as they carried no
	// data, that is a clean stop.
	grpcKeepalive = saved
	e := newEnv()
	r, err := NewOTLPGRPC(tcpConfig(false), e.rec, testLogger(t), e.reg)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	conn := grpcConn(t, r.Addr().String())
	var streams []grpc.ClientStream
	for range 10 {
		s, err := conn.NewStream(context.Background(), &grpc.StreamDesc{ClientStreams: true}, "/"+otlpTraceService+"/Export", grpc.ForceCodecV2(partsCodec{}))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.SendMsg(&parts{[]byte{}}); err != nil {
			t.Fatal(err)
		}
		streams = append(streams, s)
	}
	time.Sleep(200 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	t0 := time.Now()
	err = r.Shutdown(ctx)
	took := time.Since(t0)
	t.Logf("shutdown with 10 stalled calls: %v after %v", err, took.Round(time.Millisecond))
	if took > 4*time.Second {
		t.Errorf("shutdown took %v with a 2 s deadline", took)
	}
	if err != nil {
		t.Errorf("shutdown closing only stalled calls: %v, want nil", err)
	}
	for _, s := range streams {
		if err := s.RecvMsg(new(parts)); err == nil {
			t.Error("a stalled call succeeded after shutdown")
		}
	}
}

var _ = encoding.GetCodecV2
