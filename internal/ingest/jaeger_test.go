package ingest

import (
	"context"
	"encoding/binary"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
	model "github.com/jaegertracing/jaeger-idl/model/v1"
	"github.com/jaegertracing/jaeger-idl/proto-gen/api_v2"
	"github.com/jaegertracing/jaeger-idl/thrift-gen/agent"
	jaegerthrift "github.com/jaegertracing/jaeger-idl/thrift-gen/jaeger"
	"github.com/opentracing/opentracing-go"
	"github.com/opentracing/opentracing-go/ext"
	otlog "github.com/opentracing/opentracing-go/log"
	jaegerclient "github.com/uber/jaeger-client-go"
	"github.com/uber/jaeger-client-go/transport"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/tracectl/tracectl/internal/ingest/ingesttest"
)

// emitJaegerClientSpan records one rich span with the Jaeger Go client
// through sender, and returns the trace and span ID of the span it links to.
func emitJaegerClientSpan(t *testing.T, sender jaegerclient.Transport) (pcommon.TraceID, pcommon.SpanID) {
	t.Helper()
	tracer, closer := jaegerclient.NewTracer("shop", jaegerclient.NewConstSampler(true),
		jaegerclient.NewRemoteReporter(sender, jaegerclient.ReporterOptions.BufferFlushInterval(time.Hour)),
		jaegerclient.TracerOptions.Tag("deployment.environment", "test"))
	other := tracer.StartSpan("other")
	other.Finish()
	parent := tracer.StartSpan("parent")
	span := tracer.StartSpan("checkout",
		opentracing.ChildOf(parent.Context()),
		opentracing.FollowsFrom(other.Context()),
		ext.SpanKindRPCServer,
		opentracing.Tags{
			"http.route":  "/cart",
			"retry.count": 3,
			"ratio":       0.25,
			"cache.hit":   true,
		})
	span.LogFields(otlog.String("event", "added"), otlog.Int("item.id", 42))
	ext.Error.Set(span, true)
	span.SetTag("otel.status_description", "boom")
	span.Finish()
	parent.Finish()
	if err := closer.Close(); err != nil { // flushes
		t.Logf("closing tracer: %v", err)
	}
	sc := other.Context().(jaegerclient.SpanContext)
	return jaegerTraceID(sc.TraceID().High, sc.TraceID().Low), jaegerSpanID(uint64(sc.SpanID()))
}

func jaegerTraceID(high, low uint64) pcommon.TraceID {
	var id pcommon.TraceID
	binary.BigEndian.PutUint64(id[:8], high)
	binary.BigEndian.PutUint64(id[8:], low)
	return id
}

func jaegerSpanID(v uint64) pcommon.SpanID {
	var id pcommon.SpanID
	binary.BigEndian.PutUint64(id[:], v)
	return id
}

// checkJaegerSpan checks the span "checkout" in its Jaeger shape: typed
// tags, a log as an event, the follows-from reference as a link.
func checkJaegerSpan(t *testing.T, rec *ingesttest.Recorder, tenant string, linkTrace pcommon.TraceID, linkSpan pcommon.SpanID) {
	t.Helper()
	f, ok := rec.FindSpan("checkout")
	if !ok {
		t.Fatalf("span checkout not received; got %d batches", len(rec.Batches()))
	}
	if f.Tenant != tenant {
		t.Errorf("tenant = %q, want %q", f.Tenant, tenant)
	}
	s := f.Span
	wantAttrs(t, "resource", f.Resource.Attributes(), map[string]any{"service.name": "shop", "deployment.environment": "test"})
	wantAttrs(t, "span", s.Attributes(), map[string]any{
		"http.route": "/cart", "retry.count": int64(3), "ratio": 0.25, "cache.hit": true,
	})
	if s.Kind() != ptrace.SpanKindServer {
		t.Errorf("kind = %v, want Server", s.Kind())
	}
	if s.Status().Code() != ptrace.StatusCodeError || s.Status().Message() != "boom" {
		t.Errorf("status = %v %q, want Error boom", s.Status().Code(), s.Status().Message())
	}
	if s.Events().Len() != 1 || s.Events().At(0).Name() != "added" {
		t.Fatalf("events: %d, want one named added", s.Events().Len())
	}
	wantAttrs(t, "event", s.Events().At(0).Attributes(), map[string]any{"item.id": int64(42)})
	if s.Links().Len() != 1 {
		t.Fatalf("links = %d, want 1 (the follows-from reference)", s.Links().Len())
	}
	if l := s.Links().At(0); l.TraceID() != linkTrace || l.SpanID() != linkSpan {
		t.Errorf("link = %v/%v, want %v/%v", l.TraceID(), l.SpanID(), linkTrace, linkSpan)
	}
	if s.ParentSpanID().IsEmpty() {
		t.Error("parent span ID lost")
	}
	if s.EndTimestamp() <= s.StartTimestamp() {
		t.Errorf("times %v-%v", s.StartTimestamp(), s.EndTimestamp())
	}
}

func TestJaegerThriftHTTPWithClient(t *testing.T) {
	e := newEnv()
	r := start(NewJaegerThriftHTTP(tcpConfig(true), e.rec, testLogger(t), e.reg))(t)
	sender := transport.NewHTTPTransport("http://"+r.Addr().String()+"/api/traces",
		transport.HTTPHeaders(map[string]string{"X-Scope-OrgID": "team-a"}))
	lt, ls := emitJaegerClientSpan(t, sender)
	checkJaegerSpan(t, e.rec, "team-a", lt, ls)
	if got := counter(r.m.accepted.WithLabelValues(ProtocolJaegerThriftHTTP, "team-a")); got != 3 {
		t.Errorf("accepted spans metric = %v, want 3", got)
	}
}

func TestJaegerUDPCompactWithClient(t *testing.T) {
	e := newEnv()
	r := start(NewJaegerThriftCompact(UDPConfig{Endpoint: loopback}, e.rec, testLogger(t), e.reg))(t)
	sender, err := jaegerclient.NewUDPTransport(r.Addr().String(), 0)
	if err != nil {
		t.Fatal(err)
	}
	lt, ls := emitJaegerClientSpan(t, sender)
	e.rec.WaitSpans(t, 3, 10*time.Second)
	checkJaegerSpan(t, e.rec, DefaultTenant, lt, ls)
}

// jaegerThriftBatch is the checkout span as a jaeger.thrift Batch.
func jaegerThriftBatch() (*jaegerthrift.Batch, pcommon.TraceID, pcommon.SpanID) {
	str := func(k, v string) *jaegerthrift.Tag {
		return &jaegerthrift.Tag{Key: k, VType: jaegerthrift.TagType_STRING, VStr: &v}
	}
	i64 := func(k string, v int64) *jaegerthrift.Tag {
		return &jaegerthrift.Tag{Key: k, VType: jaegerthrift.TagType_LONG, VLong: &v}
	}
	f64 := func(k string, v float64) *jaegerthrift.Tag {
		return &jaegerthrift.Tag{Key: k, VType: jaegerthrift.TagType_DOUBLE, VDouble: &v}
	}
	boolean := func(k string, v bool) *jaegerthrift.Tag {
		return &jaegerthrift.Tag{Key: k, VType: jaegerthrift.TagType_BOOL, VBool: &v}
	}
	now := time.Now().UnixMicro()
	span := &jaegerthrift.Span{
		TraceIdLow: 0x1111, TraceIdHigh: 0x2222, SpanId: 0x33, ParentSpanId: 0x44,
		OperationName: "checkout", StartTime: now, Duration: 1500,
		References: []*jaegerthrift.SpanRef{
			{RefType: jaegerthrift.SpanRefType_CHILD_OF, TraceIdLow: 0x1111, TraceIdHigh: 0x2222, SpanId: 0x44},
			{RefType: jaegerthrift.SpanRefType_FOLLOWS_FROM, TraceIdLow: 0x5555, TraceIdHigh: 0x6666, SpanId: 0x77},
		},
		Tags: []*jaegerthrift.Tag{
			str("http.route", "/cart"), i64("retry.count", 3), f64("ratio", 0.25), boolean("cache.hit", true),
			str("span.kind", "server"), boolean("error", true), str("otel.status_description", "boom"),
		},
		Logs: []*jaegerthrift.Log{{Timestamp: now + 10, Fields: []*jaegerthrift.Tag{str("event", "added"), i64("item.id", 42)}}},
	}
	batch := &jaegerthrift.Batch{
		Process: &jaegerthrift.Process{ServiceName: "shop", Tags: []*jaegerthrift.Tag{str("deployment.environment", "test")}},
		Spans:   []*jaegerthrift.Span{span},
	}
	return batch, jaegerTraceID(0x6666, 0x5555), jaegerSpanID(0x77)
}

// emitBatchPacket encodes Agent.emitBatch(batch) as the agent client does.
func emitBatchPacket(t testing.TB, batch *jaegerthrift.Batch, compact bool) []byte {
	t.Helper()
	buf := thrift.NewTMemoryBuffer()
	var f thrift.TProtocolFactory = thrift.NewTBinaryProtocolFactoryConf(nil)
	if compact {
		f = thrift.NewTCompactProtocolFactoryConf(nil)
	}
	client := agent.NewAgentClientFactory(buf, f)
	if err := client.EmitBatch(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func sendUDP(t *testing.T, addr net.Addr, pkts ...[]byte) {
	t.Helper()
	conn, err := net.Dial("udp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, p := range pkts {
		if _, err := conn.Write(p); err != nil {
			t.Fatal(err)
		}
	}
}

func TestJaegerUDPBinaryWithAgentClient(t *testing.T) {
	e := newEnv()
	r := start(NewJaegerThriftBinary(UDPConfig{Endpoint: loopback, Workers: 1}, e.rec, testLogger(t), e.reg))(t)
	batch, lt, ls := jaegerThriftBatch()
	sendUDP(t, r.Addr(), garbage, emitBatchPacket(t, batch, false))
	e.rec.WaitSpans(t, 1, 10*time.Second)
	checkJaegerSpan(t, e.rec, DefaultTenant, lt, ls)
	if got := counter(r.m.refusedRequests.WithLabelValues(ProtocolJaegerThriftBinary, reasonMalformed)); got != 1 {
		t.Errorf("garbage packet: refused requests metric = %v, want 1", got)
	}
	// Counted once the consumer returned, after the recorder has the spans.
	if got := settle(func() float64 {
		return counter(r.m.accepted.WithLabelValues(ProtocolJaegerThriftBinary, DefaultTenant))
	}, 1); got != 1 {
		t.Errorf("accepted = %v, want 1", got)
	}
}

func TestJaegerUDPGarbageKeepsServing(t *testing.T) {
	e := newEnv()
	r := start(NewJaegerThriftCompact(UDPConfig{Endpoint: loopback, Workers: 1}, e.rec, testLogger(t), e.reg))(t)
	batch, _, _ := jaegerThriftBatch()
	good := emitBatchPacket(t, batch, true)
	binaryPkt := emitBatchPacket(t, batch, false) // the wrong encoding for this port
	sendUDP(t, r.Addr(), garbage, good[:len(good)/2], binaryPkt, good)
	e.rec.WaitSpans(t, 1, 10*time.Second)
	deadline := time.Now().Add(5 * time.Second)
	for counter(r.m.refusedRequests.WithLabelValues(ProtocolJaegerThriftCompact, reasonMalformed)) < 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := counter(r.m.refusedRequests.WithLabelValues(ProtocolJaegerThriftCompact, reasonMalformed)); got != 3 {
		t.Errorf("refused malformed packets = %v, want 3", got)
	}
	if n := e.rec.SpanCount(); n != 1 {
		t.Errorf("consumed %d spans, want 1", n)
	}
}

// jaegerProtoBatch is the checkout span as a Jaeger api_v2 model batch.
func jaegerProtoBatch() (model.Batch, pcommon.TraceID, pcommon.SpanID) {
	start := time.Now().Truncate(time.Microsecond)
	traceID := model.TraceID{High: 0x2222, Low: 0x1111}
	span := &model.Span{
		TraceID: traceID, SpanID: 0x33, OperationName: "checkout",
		References: []model.SpanRef{
			{TraceID: traceID, SpanID: 0x44, RefType: model.SpanRefType_CHILD_OF},
			{TraceID: model.TraceID{High: 0x6666, Low: 0x5555}, SpanID: 0x77, RefType: model.SpanRefType_FOLLOWS_FROM},
		},
		StartTime: start, Duration: 1500 * time.Microsecond,
		Tags: []model.KeyValue{
			model.String("http.route", "/cart"), model.Int64("retry.count", 3), model.Float64("ratio", 0.25),
			model.Bool("cache.hit", true), model.String("span.kind", "server"), model.Bool("error", true),
			model.String("otel.status_description", "boom"),
		},
		Logs: []model.Log{{Timestamp: start.Add(time.Millisecond), Fields: []model.KeyValue{model.String("event", "added"), model.Int64("item.id", 42)}}},
	}
	return model.Batch{
		Process: &model.Process{ServiceName: "shop", Tags: []model.KeyValue{model.String("deployment.environment", "test")}},
		Spans:   []*model.Span{span},
	}, jaegerTraceID(0x6666, 0x5555), jaegerSpanID(0x77)
}

func TestJaegerGRPCWithIDLClient(t *testing.T) {
	e := newEnv()
	r := start(NewJaegerGRPC(tcpConfig(true), e.rec, testLogger(t), e.reg))(t)
	client := api_v2.NewCollectorServiceClient(grpcConn(t, r.Addr().String()))
	batch, lt, ls := jaegerProtoBatch()
	ctx := metadata.AppendToOutgoingContext(context.Background(), "x-scope-orgid", "team-j")
	if _, err := client.PostSpans(ctx, &api_v2.PostSpansRequest{Batch: batch}, grpc.UseCompressor("gzip")); err != nil {
		t.Fatalf("PostSpans: %v", err)
	}
	checkJaegerSpan(t, e.rec, "team-j", lt, ls)
}

func TestJaegerGarbage(t *testing.T) {
	t.Run("grpc", func(t *testing.T) {
		e := newEnv()
		r := start(NewJaegerGRPC(tcpConfig(false), e.rec, testLogger(t), e.reg))(t)
		conn := grpcConn(t, r.Addr().String())
		err := invokeRaw(t, conn, "/"+jaegerCollectorService+"/PostSpans", garbage)
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "jaeger_grpc: decoding PostSpansRequest") {
			t.Errorf("garbage: %v, want InvalidArgument naming jaeger_grpc", err)
		}
		batch, _, _ := jaegerProtoBatch()
		if _, err := api_v2.NewCollectorServiceClient(conn).PostSpans(context.Background(), &api_v2.PostSpansRequest{Batch: batch}); err != nil {
			t.Fatalf("valid request after garbage: %v", err)
		}
		if e.rec.SpanCount() != 1 {
			t.Errorf("consumed %d spans, want 1", e.rec.SpanCount())
		}
	})
	t.Run("thrift http", func(t *testing.T) {
		e := newEnv()
		r := start(NewJaegerThriftHTTP(tcpConfig(false), e.rec, testLogger(t), e.reg))(t)
		url := "http://" + r.Addr().String() + "/api/traces"
		for _, body := range [][]byte{garbage, {0}, {}} {
			code, _, b := post(t, url, body, postOpts{contentType: "application/x-thrift"})
			if code != http.StatusBadRequest || !strings.Contains(string(b), "jaeger_thrift_http: decoding thrift jaeger.Batch") {
				t.Errorf("body %q: %d %q, want 400 naming the protocol", body, code, b)
			}
		}
		code, _, _ := post(t, url, garbage, postOpts{contentType: "application/json"})
		if code != http.StatusUnsupportedMediaType {
			t.Errorf("JSON body: %d, want 415", code)
		}
		batch, _, _ := jaegerThriftBatch()
		body, err := thrift.NewTSerializer().Write(context.Background(), batch)
		if err != nil {
			t.Fatal(err)
		}
		for _, ct := range []string{"application/vnd.apache.thrift.binary", "application/x-thrift"} {
			if code, _, b := post(t, url, body, postOpts{contentType: ct}); code != http.StatusAccepted {
				t.Errorf("valid %s batch: %d %s, want 202", ct, code, b)
			}
		}
		if code, _, b := post(t, url, gzipped(t, body), postOpts{contentType: "application/x-thrift", encoding: "gzip"}); code != http.StatusAccepted {
			t.Errorf("gzip batch: %d %s, want 202", code, b)
		}
		if e.rec.SpanCount() != 3 {
			t.Errorf("consumed %d spans, want 3", e.rec.SpanCount())
		}
	})
}

func TestJaegerTLS(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	cfg := tcpConfig(false)
	cfg.TLS = &TLSConfig{CertFile: certFile, KeyFile: keyFile}
	e := newEnv()
	h := start(NewJaegerThriftHTTP(cfg, e.rec, testLogger(t), e.reg))(t)
	g := start(NewJaegerGRPC(cfg, e.rec, testLogger(t), e.reg))(t)

	sender := transport.NewHTTPTransport("https://"+h.Addr().String()+"/api/traces",
		transport.HTTPRoundTripper(tlsClient(pool).Transport))
	lt, ls := emitJaegerClientSpan(t, sender)
	checkJaegerSpan(t, e.rec, DefaultTenant, lt, ls)

	conn := grpcConn(t, g.Addr().String(), grpc.WithTransportCredentials(credentials.NewClientTLSFromCert(pool, "")))
	batch, _, _ := jaegerProtoBatch()
	batch.Spans[0].OperationName = "over-tls"
	if _, err := api_v2.NewCollectorServiceClient(conn).PostSpans(context.Background(), &api_v2.PostSpansRequest{Batch: batch}); err != nil {
		t.Fatalf("PostSpans over TLS: %v", err)
	}
	if _, ok := e.rec.FindSpan("over-tls"); !ok {
		t.Error("span sent over gRPC TLS not received")
	}
}
