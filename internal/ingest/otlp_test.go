package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/tracectl/tracectl/internal/ingest/ingesttest"
)

var (
	linkTraceID = trace.TraceID{0xaa, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}
	linkSpanID  = trace.SpanID{0xbb, 1, 2, 3, 4, 5, 6, 7}
)

// emitOTelSpan records one rich span through exp with the OpenTelemetry SDK.
func emitOTelSpan(t *testing.T, exp sdktrace.SpanExporter) {
	t.Helper()
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithSyncer(exp),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", "shop"))),
	)
	link := trace.NewSpanContext(trace.SpanContextConfig{TraceID: linkTraceID, SpanID: linkSpanID, TraceFlags: trace.FlagsSampled})
	_, span := tp.Tracer("tracectl/test").Start(context.Background(), "checkout",
		trace.WithSpanKind(trace.SpanKindServer),
		trace.WithLinks(trace.Link{SpanContext: link, Attributes: []attribute.KeyValue{attribute.String("link.why", "retry")}}),
		trace.WithAttributes(
			attribute.String("http.route", "/cart"),
			attribute.Int64("retry.count", 3),
			attribute.Float64("ratio", 0.25),
			attribute.Bool("cache.hit", true),
			attribute.StringSlice("tags", []string{"a", "b"}),
		))
	span.AddEvent("added", trace.WithAttributes(attribute.Int("item.id", 42)))
	span.SetStatus(otelcodes.Error, "boom")
	span.End()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tp.Shutdown(ctx); err != nil {
		t.Logf("tracer provider shutdown: %v", err) // export errors are not reported here; the server side is checked
	}
}

// checkOTelSpan checks that the span of emitOTelSpan arrived whole.
func checkOTelSpan(t *testing.T, rec *ingesttest.Recorder, tenant string) {
	t.Helper()
	f, ok := rec.FindSpan("checkout")
	if !ok {
		t.Fatalf("span checkout not received; got %d batches", len(rec.Batches()))
	}
	if f.Tenant != tenant {
		t.Errorf("tenant = %q, want %q", f.Tenant, tenant)
	}
	s := f.Span
	wantAttrs(t, "resource", f.Resource.Attributes(), map[string]any{"service.name": "shop"})
	if f.Scope.Name() != "tracectl/test" {
		t.Errorf("scope name = %q", f.Scope.Name())
	}
	wantAttrs(t, "span", s.Attributes(), map[string]any{
		"http.route": "/cart", "retry.count": int64(3), "ratio": 0.25, "cache.hit": true, "tags": []any{"a", "b"},
	})
	if s.Kind() != ptrace.SpanKindServer {
		t.Errorf("kind = %v, want Server", s.Kind())
	}
	if s.Status().Code() != ptrace.StatusCodeError || s.Status().Message() != "boom" {
		t.Errorf("status = %v %q, want Error boom", s.Status().Code(), s.Status().Message())
	}
	if s.Events().Len() != 1 || s.Events().At(0).Name() != "added" {
		t.Fatalf("events = %v, want one named added", s.Events().Len())
	}
	wantAttrs(t, "event", s.Events().At(0).Attributes(), map[string]any{"item.id": int64(42)})
	if s.Links().Len() != 1 {
		t.Fatalf("links = %d, want 1", s.Links().Len())
	}
	l := s.Links().At(0)
	if l.TraceID() != pcommon.TraceID(linkTraceID) || l.SpanID() != pcommon.SpanID(linkSpanID) {
		t.Errorf("link = %v/%v, want %v/%v", l.TraceID(), l.SpanID(), linkTraceID, linkSpanID)
	}
	wantAttrs(t, "link", l.Attributes(), map[string]any{"link.why": "retry"})
	if s.TraceID().IsEmpty() || s.SpanID().IsEmpty() || s.EndTimestamp() <= s.StartTimestamp() {
		t.Errorf("ids or times lost: %v %v %v-%v", s.TraceID(), s.SpanID(), s.StartTimestamp(), s.EndTimestamp())
	}
}

func TestOTLPGRPCWithSDKExporter(t *testing.T) {
	e := newEnv()
	r := start(NewOTLPGRPC(tcpConfig(true), e.rec, testLogger(t), e.reg))(t)
	exp, err := otlptracegrpc.New(context.Background(),
		otlptracegrpc.WithEndpoint(r.Addr().String()),
		otlptracegrpc.WithInsecure(),
		otlptracegrpc.WithCompressor("gzip"),
		otlptracegrpc.WithHeaders(map[string]string{"X-Scope-OrgID": "team-a"}),
		otlptracegrpc.WithRetry(otlptracegrpc.RetryConfig{Enabled: false}),
	)
	if err != nil {
		t.Fatal(err)
	}
	emitOTelSpan(t, exp)
	checkOTelSpan(t, e.rec, "team-a")
	if got := counter(r.m.accepted.WithLabelValues(ProtocolOTLPGRPC, "team-a")); got != 1 {
		t.Errorf("accepted spans metric = %v, want 1", got)
	}
	if n := testutilCount(t, e, "tracectl_receiver_request_duration_seconds"); n != 1 {
		t.Errorf("duration histogram has %d observations, want 1", n)
	}
}

func TestOTLPHTTPWithSDKExporter(t *testing.T) {
	for _, gz := range []bool{false, true} {
		t.Run(fmt.Sprintf("gzip=%v", gz), func(t *testing.T) {
			e := newEnv()
			r := start(NewOTLPHTTP(tcpConfig(true), e.rec, testLogger(t), e.reg))(t)
			compression := otlptracehttp.NoCompression
			if gz {
				compression = otlptracehttp.GzipCompression
			}
			exp, err := otlptracehttp.New(context.Background(),
				otlptracehttp.WithEndpoint(r.Addr().String()),
				otlptracehttp.WithInsecure(),
				otlptracehttp.WithCompression(compression),
				otlptracehttp.WithHeaders(map[string]string{"X-Scope-OrgID": "team-b"}),
				otlptracehttp.WithRetry(otlptracehttp.RetryConfig{Enabled: false}),
			)
			if err != nil {
				t.Fatal(err)
			}
			emitOTelSpan(t, exp)
			checkOTelSpan(t, e.rec, "team-b")
		})
	}
}

// testutilCount sums the sample counts of a histogram family.
func testutilCount(t *testing.T, e env, name string) uint64 {
	t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				n += m.GetHistogram().GetSampleCount()
			}
		}
	}
	return n
}

func TestOTLPHTTPEncodings(t *testing.T) {
	e := newEnv()
	r := start(NewOTLPHTTP(tcpConfig(false), e.rec, testLogger(t), e.reg))(t)
	url := "http://" + r.Addr().String() + "/v1/traces"
	for _, tc := range []struct {
		ct, enc string
	}{
		{otlpProto, ""}, {otlpProto, "gzip"}, {otlpJSON, ""}, {otlpJSON, "gzip"}, {otlpJSON + "; charset=utf-8", "gzip"},
		{otlpProto, "deflate"}, {otlpProto, "zstd"},
	} {
		t.Run(tc.ct+"/"+tc.enc, func(t *testing.T) {
			name := "span-" + tc.ct + "-" + tc.enc
			req := ptraceotlp.NewExportRequestFromTraces(otlpTraces(name))
			var body []byte
			var err error
			if strings.HasPrefix(tc.ct, otlpJSON) {
				body, err = req.MarshalJSON()
			} else {
				body, err = req.MarshalProto()
			}
			if err != nil {
				t.Fatal(err)
			}
			switch tc.enc {
			case "gzip":
				body = gzipped(t, body)
			case "deflate":
				body = zlibbed(t, body)
			case "zstd":
				body = zstded(t, body)
			}
			code, hdr, resp := post(t, url, body, postOpts{contentType: tc.ct, encoding: tc.enc})
			if code != http.StatusOK {
				t.Fatalf("status %d: %s", code, resp)
			}
			wantCT := otlpProto
			if strings.HasPrefix(tc.ct, otlpJSON) {
				wantCT = otlpJSON
			}
			if hdr.Get("Content-Type") != wantCT {
				t.Errorf("response Content-Type = %q, want %q", hdr.Get("Content-Type"), wantCT)
			}
			er := ptraceotlp.NewExportResponse()
			if wantCT == otlpJSON {
				err = er.UnmarshalJSON(resp)
			} else {
				err = er.UnmarshalProto(resp)
			}
			if err != nil {
				t.Errorf("response does not decode as %s: %v (%q)", wantCT, err, resp)
			}
			f, ok := e.rec.FindSpan(name)
			if !ok {
				t.Fatalf("span %s not received", name)
			}
			if f.Tenant != DefaultTenant {
				t.Errorf("tenant = %q, want %q", f.Tenant, DefaultTenant)
			}
		})
	}
	if n := testutilCount(t, e, "tracectl_receiver_request_duration_seconds"); n != 7 {
		t.Errorf("duration histogram has %d observations, want 7", n)
	}
}

func TestOTLPPartialSuccess(t *testing.T) {
	withInvalid := func() ptrace.Traces {
		td := otlpTraces("good")
		bad := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().AppendEmpty()
		bad.SetName("no-ids")
		return td
	}
	check := func(t *testing.T, e env, resp ptraceotlp.ExportResponse, protocol string) {
		t.Helper()
		if got := resp.PartialSuccess().RejectedSpans(); got != 1 {
			t.Errorf("rejected spans = %d, want 1", got)
		}
		if !strings.Contains(resp.PartialSuccess().ErrorMessage(), "trace ID") {
			t.Errorf("partial success message = %q", resp.PartialSuccess().ErrorMessage())
		}
		if _, ok := e.rec.FindSpan("good"); !ok {
			t.Error("the valid span was not consumed")
		}
		if _, ok := e.rec.FindSpan("no-ids"); ok {
			t.Error("the span without IDs was consumed")
		}
	}
	t.Run("grpc", func(t *testing.T) {
		e := newEnv()
		r := start(NewOTLPGRPC(tcpConfig(false), e.rec, testLogger(t), e.reg))(t)
		resp, err := otlpGRPCClient(t, r.Addr().String()).Export(context.Background(), ptraceotlp.NewExportRequestFromTraces(withInvalid()))
		if err != nil {
			t.Fatal(err)
		}
		check(t, e, resp, ProtocolOTLPGRPC)
		if got := counter(r.m.refused.WithLabelValues(ProtocolOTLPGRPC, reasonInvalidSpan)); got != 1 {
			t.Errorf("refused spans metric = %v, want 1", got)
		}
	})
	t.Run("http", func(t *testing.T) {
		e := newEnv()
		r := start(NewOTLPHTTP(tcpConfig(false), e.rec, testLogger(t), e.reg))(t)
		body, _ := ptraceotlp.NewExportRequestFromTraces(withInvalid()).MarshalProto()
		code, _, b := post(t, "http://"+r.Addr().String()+"/v1/traces", body, postOpts{contentType: otlpProto})
		if code != http.StatusOK {
			t.Fatalf("status %d: %s", code, b)
		}
		resp := ptraceotlp.NewExportResponse()
		if err := resp.UnmarshalProto(b); err != nil {
			t.Fatal(err)
		}
		check(t, e, resp, ProtocolOTLPHTTP)
	})
	t.Run("consumer partial", func(t *testing.T) {
		e := newEnv()
		c := ConsumerFunc(func(ctx context.Context, tenant string, td ptrace.Traces) error {
			return &PartialError{Rejected: 1, Reason: "trace_too_large", Err: errors.New("trace 0102 is over the size limit")}
		})
		r := start(NewOTLPGRPC(tcpConfig(false), c, testLogger(t), e.reg))(t)
		td := otlpTraces("a")
		otlpTraces("b").ResourceSpans().MoveAndAppendTo(td.ResourceSpans())
		resp, err := otlpGRPCClient(t, r.Addr().String()).Export(context.Background(), ptraceotlp.NewExportRequestFromTraces(td))
		if err != nil {
			t.Fatal(err)
		}
		if resp.PartialSuccess().RejectedSpans() != 1 || !strings.Contains(resp.PartialSuccess().ErrorMessage(), "over the size limit") {
			t.Errorf("partial success = %d %q", resp.PartialSuccess().RejectedSpans(), resp.PartialSuccess().ErrorMessage())
		}
		if got := counter(r.m.accepted.WithLabelValues(ProtocolOTLPGRPC, DefaultTenant)); got != 1 {
			t.Errorf("accepted = %v, want 1", got)
		}
		if got := counter(r.m.refused.WithLabelValues(ProtocolOTLPGRPC, "trace_too_large")); got != 1 {
			t.Errorf("refused = %v, want 1", got)
		}
	})
}

func otlpGRPCClient(t *testing.T, addr string, opts ...grpc.DialOption) ptraceotlp.GRPCClient {
	t.Helper()
	return ptraceotlp.NewGRPCClient(grpcConn(t, addr, opts...))
}

func grpcConn(t *testing.T, addr string, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	if len(opts) == 0 {
		opts = []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	}
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// invokeRaw calls method with body as the encoded request, as a broken or
// hostile client would.
func invokeRaw(t *testing.T, conn *grpc.ClientConn, method string, body []byte, md ...string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if len(md) > 0 {
		ctx = metadata.AppendToOutgoingContext(ctx, md...)
	}
	out := new(rawMessage)
	return conn.Invoke(ctx, method, &rawMessage{b: body}, out,
		grpc.ForceCodecV2(rawCodec{delegate: encoding.GetCodecV2("proto")}))
}

var garbage = []byte("\xff\xff\xff\xff this is not a protobuf, thrift or JSON payload {[")

func TestOTLPGarbage(t *testing.T) {
	t.Run("grpc", func(t *testing.T) {
		e := newEnv()
		r := start(NewOTLPGRPC(tcpConfig(false), e.rec, testLogger(t), e.reg))(t)
		conn := grpcConn(t, r.Addr().String())
		err := invokeRaw(t, conn, "/"+otlpTraceService+"/Export", garbage)
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "otlp_grpc") {
			t.Errorf("garbage: %v, want InvalidArgument naming otlp_grpc", err)
		}
		if got := counter(r.m.refusedRequests.WithLabelValues(ProtocolOTLPGRPC, reasonMalformed)); got != 1 {
			t.Errorf("refused requests metric = %v, want 1", got)
		}
		if _, err := ptraceotlp.NewGRPCClient(conn).Export(context.Background(), ptraceotlp.NewExportRequestFromTraces(otlpTraces("after"))); err != nil {
			t.Fatalf("valid request after garbage: %v", err)
		}
		if _, ok := e.rec.FindSpan("after"); !ok {
			t.Error("valid request after garbage was not consumed")
		}
	})
	t.Run("http", func(t *testing.T) {
		e := newEnv()
		r := start(NewOTLPHTTP(tcpConfig(false), e.rec, testLogger(t), e.reg))(t)
		url := "http://" + r.Addr().String() + "/v1/traces"
		for _, ct := range []string{otlpProto, otlpJSON} {
			code, hdr, b := post(t, url, garbage, postOpts{contentType: ct})
			if code != http.StatusBadRequest {
				t.Errorf("%s garbage: status %d, want 400", ct, code)
			}
			st := decodeStatus(t, ct, hdr, b)
			if codes.Code(st.GetCode()) != codes.InvalidArgument || !strings.Contains(st.GetMessage(), "otlp_http: decoding") {
				t.Errorf("%s garbage: status body %v", ct, st)
			}
		}
		code, _, b := post(t, url, gzipped(t, []byte("x"))[:5], postOpts{contentType: otlpProto, encoding: "gzip"})
		if code != http.StatusBadRequest || !strings.Contains(string(b), "gzip") {
			t.Errorf("broken gzip: %d %q, want 400 naming gzip", code, b)
		}
		code, _, _ = post(t, url, []byte("{}"), postOpts{contentType: "text/plain"})
		if code != http.StatusUnsupportedMediaType {
			t.Errorf("text/plain: status %d, want 415", code)
		}
		code, _, _ = post(t, url, []byte("{}"), postOpts{contentType: otlpJSON, encoding: "br"})
		if code != http.StatusUnsupportedMediaType {
			t.Errorf("Content-Encoding br: status %d, want 415", code)
		}
		body, _ := ptraceotlp.NewExportRequestFromTraces(otlpTraces("after")).MarshalProto()
		if code, _, b := post(t, url, body, postOpts{contentType: otlpProto}); code != http.StatusOK {
			t.Fatalf("valid request after garbage: %d %s", code, b)
		}
		if e.rec.SpanCount() != 1 {
			t.Errorf("consumed %d spans, want only the valid one", e.rec.SpanCount())
		}
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("GET: status %d, want 405", resp.StatusCode)
		}
	})
}

func decodeStatus(t *testing.T, ct string, hdr http.Header, b []byte) *spb.Status {
	t.Helper()
	if got := hdr.Get("Content-Type"); got != ct {
		t.Errorf("error Content-Type = %q, want %q", got, ct)
	}
	st := &spb.Status{}
	var err error
	if ct == otlpJSON {
		err = protojson.Unmarshal(b, st)
	} else {
		err = proto.Unmarshal(b, st)
	}
	if err != nil {
		t.Errorf("error body is not a google.rpc.Status in %s: %v (%q)", ct, err, b)
	}
	return st
}

func TestOTLPTooLarge(t *testing.T) {
	const limit = 64 << 10
	big := otlpTraces("big")
	big.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).Attributes().PutStr("blob", strings.Repeat("x", 2*limit))
	bigBody, _ := ptraceotlp.NewExportRequestFromTraces(big).MarshalProto()

	t.Run("http", func(t *testing.T) {
		e := newEnv()
		cfg := tcpConfig(false)
		cfg.MaxRequestBytes = limit
		r := start(NewOTLPHTTP(cfg, e.rec, testLogger(t), e.reg))(t)
		url := "http://" + r.Addr().String() + "/v1/traces"
		code, hdr, b := post(t, url, bigBody, postOpts{contentType: otlpProto})
		if code != http.StatusRequestEntityTooLarge {
			t.Errorf("oversize body: status %d, want 413", code)
		} else if st := decodeStatus(t, otlpProto, hdr, b); !strings.Contains(st.GetMessage(), "larger than") {
			t.Errorf("oversize body: message %q", st.GetMessage())
		}
		// No Content-Length: the limit applies while reading.
		req, _ := http.NewRequest(http.MethodPost, url, struct{ *bytes.Reader }{bytes.NewReader(bigBody)})
		req.Header.Set("Content-Type", otlpProto)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if req.ContentLength != 0 || resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("chunked oversize body (length %d): status %d, want 413", req.ContentLength, resp.StatusCode)
		}
		// Small when compressed, too large when not.
		code, _, _ = post(t, url, gzipped(t, bigBody), postOpts{contentType: otlpProto, encoding: "gzip"})
		if code != http.StatusRequestEntityTooLarge {
			t.Errorf("gzip of an oversize body: status %d, want 413", code)
		}
		if e.rec.Calls() != 0 {
			t.Errorf("consumer called %d times for oversize requests", e.rec.Calls())
		}
		if got := counter(r.m.refusedRequests.WithLabelValues(ProtocolOTLPHTTP, reasonTooLarge)); got != 3 {
			t.Errorf("refused requests (too_large) = %v, want 3", got)
		}
	})

	t.Run("gzip bomb", func(t *testing.T) {
		e := newEnv()
		cfg := tcpConfig(false)
		cfg.MaxRequestBytes = 1 << 20
		r := start(NewOTLPHTTP(cfg, e.rec, testLogger(t), e.reg))(t)
		bomb := gzipped(t, make([]byte, 256<<20)) // 256 MiB of zeros, ~250 KiB compressed
		if len(bomb) > int(cfg.MaxRequestBytes) {
			t.Fatalf("bomb is %d bytes compressed; it must pass the compressed limit to test the decompressed one", len(bomb))
		}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		code, _, b := post(t, "http://"+r.Addr().String()+"/v1/traces", bomb, postOpts{contentType: otlpProto, encoding: "gzip"})
		runtime.ReadMemStats(&after)
		if code != http.StatusRequestEntityTooLarge {
			t.Errorf("gzip bomb: status %d (%q), want 413", code, b)
		}
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<20 {
			t.Errorf("serving a gzip bomb allocated %d MiB; the limit is 1 MiB", grew>>20)
		}
	})

	t.Run("grpc", func(t *testing.T) {
		e := newEnv()
		cfg := tcpConfig(false)
		cfg.MaxRequestBytes = limit
		r := start(NewOTLPGRPC(cfg, e.rec, testLogger(t), e.reg))(t)
		client := otlpGRPCClient(t, r.Addr().String())
		for _, opts := range [][]grpc.CallOption{nil, {grpc.UseCompressor("gzip")}} {
			_, err := client.Export(context.Background(), ptraceotlp.NewExportRequestFromTraces(big), opts...)
			if status.Code(err) != codes.ResourceExhausted {
				t.Errorf("oversize message (%d call options): %v, want ResourceExhausted", len(opts), err)
			}
		}
		if e.rec.Calls() != 0 {
			t.Errorf("consumer called %d times for oversize messages", e.rec.Calls())
		}
		// Refused by gRPC before the handler, counted all the same.
		if got := settle(func() float64 { return counter(r.m.refusedRequests.WithLabelValues(ProtocolOTLPGRPC, reasonTooLarge)) }, 2); got != 2 {
			t.Errorf("refused requests (too_large) = %v, want 2", got)
		}
	})
}

func TestOTLPConsumerErrors(t *testing.T) {
	limited := Limited("rate_limited", 7*time.Second, "tenant %s is over its rate of %d spans/s", DefaultTenant, 100)
	wrapped := fmt.Errorf("ingester: %w", ErrLimited)
	for _, tc := range []struct {
		name      string
		err       error
		http      int
		grpc      codes.Code
		retry     string
		reason    string
		retryInfo time.Duration
	}{
		{"limit", limited, http.StatusTooManyRequests, codes.ResourceExhausted, "7", "rate_limited", 7 * time.Second},
		{"wrapped ErrLimited", wrapped, http.StatusTooManyRequests, codes.ResourceExhausted, "5", reasonLimited, DefaultRetryAfter},
		{"failure", errors.New("wal: disk full"), http.StatusServiceUnavailable, codes.Unavailable, "", reasonConsumerError, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv()
			e.rec.SetErr(tc.err)
			h := start(NewOTLPHTTP(tcpConfig(false), e.rec, testLogger(t), e.reg))(t)
			g := start(NewOTLPGRPC(tcpConfig(false), e.rec, testLogger(t), e.reg))(t)

			body, _ := ptraceotlp.NewExportRequestFromTraces(otlpTraces("x")).MarshalJSON()
			code, hdr, b := post(t, "http://"+h.Addr().String()+"/v1/traces", body, postOpts{contentType: otlpJSON})
			if code != tc.http || hdr.Get("Retry-After") != tc.retry {
				t.Errorf("http: %d Retry-After %q, want %d %q", code, hdr.Get("Retry-After"), tc.http, tc.retry)
			}
			st := decodeStatus(t, otlpJSON, hdr, b)
			if codes.Code(st.GetCode()) != tc.grpc || !strings.Contains(st.GetMessage(), tc.err.Error()) {
				t.Errorf("http: status body %v, want code %v and the consumer's message", st, tc.grpc)
			}

			_, err := otlpGRPCClient(t, g.Addr().String()).Export(context.Background(), ptraceotlp.NewExportRequestFromTraces(otlpTraces("x")))
			s := status.Convert(err)
			if s.Code() != tc.grpc || !strings.Contains(s.Message(), tc.err.Error()) {
				t.Errorf("grpc: %v, want %v with the consumer's message", err, tc.grpc)
			}
			var info time.Duration
			for _, d := range s.Details() {
				if ri, ok := d.(*errdetails.RetryInfo); ok {
					info = ri.GetRetryDelay().AsDuration()
				}
			}
			if info != tc.retryInfo {
				t.Errorf("grpc: RetryInfo delay %v, want %v", info, tc.retryInfo)
			}
			for _, p := range []string{ProtocolOTLPHTTP, ProtocolOTLPGRPC} {
				if got := counter(h.m.refused.WithLabelValues(p, tc.reason)); got != 1 {
					t.Errorf("%s: refused spans (%s) = %v, want 1", p, tc.reason, got)
				}
				if got := counter(h.m.accepted.WithLabelValues(p, DefaultTenant)); got != 0 {
					t.Errorf("%s: accepted = %v, want 0", p, got)
				}
			}
		})
	}
}

func TestOTLPTLS(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	cfg := tcpConfig(false)
	cfg.TLS = &TLSConfig{CertFile: certFile, KeyFile: keyFile}
	e := newEnv()
	h := start(NewOTLPHTTP(cfg, e.rec, testLogger(t), e.reg))(t)
	g := start(NewOTLPGRPC(cfg, e.rec, testLogger(t), e.reg))(t)

	body, _ := ptraceotlp.NewExportRequestFromTraces(otlpTraces("over-https")).MarshalProto()
	if code, _, b := post(t, "https://"+h.Addr().String()+"/v1/traces", body, postOpts{contentType: otlpProto, client: tlsClient(pool)}); code != http.StatusOK {
		t.Fatalf("https: %d %s", code, b)
	}
	req, _ := http.NewRequest(http.MethodPost, "http://"+h.Addr().String()+"/v1/traces", bytes.NewReader(body))
	req.Header.Set("Content-Type", otlpProto)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("plain HTTP to a TLS receiver succeeded")
		}
	}

	exp, err := otlptracegrpc.New(context.Background(),
		otlptracegrpc.WithEndpoint(g.Addr().String()),
		otlptracegrpc.WithTLSCredentials(credentials.NewClientTLSFromCert(pool, "")),
		otlptracegrpc.WithRetry(otlptracegrpc.RetryConfig{Enabled: false}),
	)
	if err != nil {
		t.Fatal(err)
	}
	emitOTelSpan(t, exp)
	checkOTelSpan(t, e.rec, DefaultTenant)
	if _, ok := e.rec.FindSpan("over-https"); !ok {
		t.Error("span sent over https not received")
	}
	_, err = otlpGRPCClient(t, g.Addr().String()).Export(context.Background(), ptraceotlp.NewExportRequestFromTraces(otlpTraces("plain")))
	if err == nil {
		t.Error("plaintext gRPC to a TLS receiver succeeded")
	}

	bad := cfg
	bad.TLS = &TLSConfig{CertFile: certFile, KeyFile: certFile}
	if _, err := NewOTLPHTTP(bad, e.rec, nil, nil); err == nil || !strings.Contains(err.Error(), "TLS") {
		t.Errorf("cert as key: %v, want an error about TLS", err)
	}
}
