package server_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"log"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	model "github.com/jaegertracing/jaeger-idl/model/v1"
	"github.com/jaegertracing/jaeger-idl/proto-gen/api_v2"
	"github.com/opentracing/opentracing-go"
	"github.com/opentracing/opentracing-go/ext"
	otlog "github.com/opentracing/opentracing-go/log"
	zipkin "github.com/openzipkin/zipkin-go"
	zmodel "github.com/openzipkin/zipkin-go/model"
	"github.com/openzipkin/zipkin-go/proto/zipkin_proto3"
	zipkinhttp "github.com/openzipkin/zipkin-go/reporter/http"
	"github.com/prometheus/client_golang/prometheus"
	jaegerclient "github.com/uber/jaeger-client-go"
	jaegertransport "github.com/uber/jaeger-client-go/transport"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/tracectl/tracectl/internal/blocks"
	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/ingest"
	"github.com/tracectl/tracectl/internal/ingest/ingesttest"
	"github.com/tracectl/tracectl/internal/otlptest"
	"github.com/tracectl/tracectl/internal/server"
	"github.com/tracectl/tracectl/internal/storage"
)

// TestProtocols sends one trace with each real client through its receiver
// into a real Server, flushes, and reads the trace back from the stored
// block: everything the protocol can carry must come back, field by field,
// and the block's meta must cover the spans' times.
//
// Every protocol sends the same tree (treeSpans): a server root
// "checkout" with typed attributes, a client child "charge" with an error
// status, an event with typed attributes and a link, an internal grandchild
// "serialize" and a producer child "publish". The expected trace of each
// protocol is written by hand from what its client sends and the
// OpenTelemetry Collector translator's conventions (see the want*
// functions), never copied from what the receiver produced.
func TestProtocols(t *testing.T) {
	ctx := context.Background()
	logger := slog.New(slog.NewTextHandler(testLogWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	bucket, err := storage.Open(ctx, "file://"+t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bucket.Close() })
	srv, err := server.New(server.Config{Bucket: bucket, WALDir: t.TempDir(), Logger: logger, Registry: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Shutdown(context.Background()); err != nil {
			t.Errorf("server shutdown: %v", err)
		}
	})
	tcp := func() *ingest.Config { return &ingest.Config{Endpoint: loopback} }
	udp := func() *ingest.UDPConfig { return &ingest.UDPConfig{Endpoint: loopback} }
	addrs := startSet(t, ingest.ReceiversConfig{
		OTLPGRPC: tcp(), OTLPHTTP: tcp(), JaegerGRPC: tcp(), JaegerThriftHTTP: tcp(),
		JaegerThriftCompact: udp(), JaegerThriftBinary: udp(),
		Zipkin: &ingest.ZipkinConfig{Config: *tcp()},
	}, srv, logger)
	if len(addrs) != 7 {
		t.Fatalf("the set serves %d receivers (%v), want 7", len(addrs), addrs)
	}
	hostname, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}

	// Each case sends the tree starting at t0 and returns the trace it
	// expects back; async is true for UDP, acknowledged by nobody.
	type sendFunc func(t *testing.T, t0 time.Time) (want ptrace.Traces, async bool)
	cases := []struct {
		name string
		send sendFunc
	}{
		{ingest.ProtocolOTLPGRPC, func(t *testing.T, t0 time.Time) (ptrace.Traces, bool) {
			exp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(addrs[ingest.ProtocolOTLPGRPC]),
				otlptracegrpc.WithInsecure(), otlptracegrpc.WithCompressor("gzip"),
				otlptracegrpc.WithRetry(otlptracegrpc.RetryConfig{Enabled: false}))
			if err != nil {
				t.Fatal(err)
			}
			// One Export per span: the trace reaches the head in four pieces.
			return wantOTel(t, emitOTel(t, exp, t0, false)), false
		}},
		{ingest.ProtocolOTLPHTTP, func(t *testing.T, t0 time.Time) (ptrace.Traces, bool) {
			exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpoint(addrs[ingest.ProtocolOTLPHTTP]),
				otlptracehttp.WithInsecure(), otlptracehttp.WithCompression(otlptracehttp.GzipCompression),
				otlptracehttp.WithRetry(otlptracehttp.RetryConfig{Enabled: false}))
			if err != nil {
				t.Fatal(err)
			}
			// Batched: the whole trace in one request.
			return wantOTel(t, emitOTel(t, exp, t0, true)), false
		}},
		{ingest.ProtocolJaegerGRPC, func(t *testing.T, t0 time.Time) (ptrace.Traces, bool) {
			batch, want := jaegerProtoTrace(t, t0)
			conn, err := grpc.NewClient(addrs[ingest.ProtocolJaegerGRPC], grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := api_v2.NewCollectorServiceClient(conn).PostSpans(ctx, &api_v2.PostSpansRequest{Batch: batch}, grpc.UseCompressor("gzip")); err != nil {
				t.Fatalf("PostSpans: %v", err)
			}
			return want, false
		}},
		{ingest.ProtocolJaegerThriftHTTP, func(t *testing.T, t0 time.Time) (ptrace.Traces, bool) {
			sender := jaegertransport.NewHTTPTransport("http://" + addrs[ingest.ProtocolJaegerThriftHTTP] + "/api/traces")
			return wantJaegerClient(t, emitJaegerClient(t, sender, t0), hostname), false
		}},
		{ingest.ProtocolJaegerThriftCompact, func(t *testing.T, t0 time.Time) (ptrace.Traces, bool) {
			sender, err := jaegerclient.NewUDPTransport(addrs[ingest.ProtocolJaegerThriftCompact], 0)
			if err != nil {
				t.Fatal(err)
			}
			return wantJaegerClient(t, emitJaegerClient(t, sender, t0), hostname), true
		}},
		{ingest.ProtocolJaegerThriftBinary, func(t *testing.T, t0 time.Time) (ptrace.Traces, bool) {
			sender, err := ingesttest.NewJaegerAgentBinaryTransport(addrs[ingest.ProtocolJaegerThriftBinary])
			if err != nil {
				t.Fatal(err)
			}
			return wantJaegerClient(t, emitJaegerClient(t, sender, t0), hostname), true
		}},
		{ingest.ProtocolZipkin, func(t *testing.T, t0 time.Time) (ptrace.Traces, bool) {
			// The Set's receiver has parse_string_tags off (the default):
			// every tag arrives as a string attribute.
			sent := emitZipkin(t, "http://"+addrs[ingest.ProtocolZipkin]+"/api/v2/spans", t0)
			return wantZipkin(t, sent, false), false
		}},
		{ingest.ProtocolZipkin + "_parse_string_tags_protobuf", func(t *testing.T, t0 time.Time) (ptrace.Traces, bool) {
			r, err := ingest.NewZipkin(ingest.ZipkinConfig{Config: ingest.Config{Endpoint: loopback}, ParseStringTags: true},
				srv, logger, prometheus.NewRegistry())
			if err != nil {
				t.Fatal(err)
			}
			startReceiver(t, r)
			sent := emitZipkin(t, "http://"+r.Addr().String()+"/api/v2/spans", t0,
				zipkinhttp.Serializer(zipkin_proto3.SpanSerializer{}))
			return wantZipkin(t, sent, true), false
		}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// t0 is 700 ms past a second, so the root (1.5 s) ends two
			// seconds later and the meta's whole-second bounds are tested
			// at both ends.
			t0 := time.Now().Truncate(time.Second).Add(-time.Duration(10+i)*time.Minute + 700*time.Millisecond)
			want, async := c.send(t, t0)
			checkStored(t, srv, bucket, ingest.DefaultTenant, want, async)
		})
	}

	t.Run("multitenancy", func(t *testing.T) {
		const tenantA = "team-a"
		mt := startSet(t, ingest.ReceiversConfig{OTLPGRPC: tcp(), OTLPHTTP: tcp(), MultiTenancy: true}, srv, logger)
		before := blockIDs(t, bucket, ingest.DefaultTenant)
		t0 := time.Now().Truncate(time.Second).Add(-5*time.Minute + 700*time.Millisecond)

		httpExp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpoint(mt[ingest.ProtocolOTLPHTTP]), otlptracehttp.WithInsecure(),
			otlptracehttp.WithHeaders(map[string]string{ingest.TenantHeader: tenantA}),
			otlptracehttp.WithRetry(otlptracehttp.RetryConfig{Enabled: false}))
		if err != nil {
			t.Fatal(err)
		}
		viaHTTP := wantOTel(t, emitOTel(t, httpExp, t0, true))
		grpcExp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(mt[ingest.ProtocolOTLPGRPC]), otlptracegrpc.WithInsecure(),
			otlptracegrpc.WithHeaders(map[string]string{strings.ToLower(ingest.TenantHeader): tenantA}),
			otlptracegrpc.WithRetry(otlptracegrpc.RetryConfig{Enabled: false}))
		if err != nil {
			t.Fatal(err)
		}
		viaGRPC := wantOTel(t, emitOTel(t, grpcExp, t0.Add(2*time.Second), false))

		// Without a tenant the multi-tenant receiver refuses the export.
		anon, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpoint(mt[ingest.ProtocolOTLPHTTP]), otlptracehttp.WithInsecure(),
			otlptracehttp.WithRetry(otlptracehttp.RetryConfig{Enabled: false}))
		if err != nil {
			t.Fatal(err)
		}
		rec := &exportRecorder{SpanExporter: anon}
		tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(rec))
		_, sp := tp.Tracer("anon").Start(ctx, "no-tenant")
		anonID := sp.SpanContext().TraceID()
		sp.End()
		_ = tp.Shutdown(ctx)
		if errs := rec.errors(); len(errs) != 1 || !strings.Contains(errs[0].Error(), "401") {
			t.Errorf("export without %s: errors %v, want one 401", ingest.TenantHeader, errs)
		}

		for _, w := range []ptrace.Traces{viaHTTP, viaGRPC} {
			id := traceIDOf(t, w)
			if n := headSpans(srv.FindInHead(tenantA, id)); n != 4 {
				t.Errorf("trace %s: %d spans in the head of %s after the ack, want 4", id, n, tenantA)
			}
			if n := headSpans(srv.FindInHead(ingest.DefaultTenant, id)); n != 0 {
				t.Errorf("trace %s: %d spans in the head of %s", id, n, ingest.DefaultTenant)
			}
		}
		for _, tn := range []string{tenantA, ingest.DefaultTenant} {
			if n := headSpans(srv.FindInHead(tn, block.TraceID(anonID))); n != 0 {
				t.Errorf("the refused span reached tenant %s", tn)
			}
		}

		want := ptrace.NewTraces()
		viaHTTP.ResourceSpans().MoveAndAppendTo(want.ResourceSpans())
		viaGRPC.ResourceSpans().MoveAndAppendTo(want.ResourceSpans())
		checkStored(t, srv, bucket, tenantA, want, false)

		if after := blockIDs(t, bucket, ingest.DefaultTenant); !slices.Equal(after, before) {
			t.Errorf("tenant %s got new blocks: %v, had %v", ingest.DefaultTenant, after, before)
		}
		tenants, err := blocks.Tenants(ctx, bucket)
		if err != nil {
			t.Fatal(err)
		}
		for _, tn := range tenants {
			if tn != tenantA && tn != ingest.DefaultTenant {
				t.Errorf("unexpected tenant %q in the bucket (%v)", tn, tenants)
			}
		}
		if !slices.Contains(tenants, tenantA) {
			t.Errorf("tenants %v, want %s among them", tenants, tenantA)
		}
		metas := server.ListMetas(t, bucket, ingest.DefaultTenant)
		for _, id := range traceIDsOf(want) {
			res, err := blocks.FindTrace(ctx, bucket, metas, id, blocks.FindOptions{})
			if err != nil || res.Found {
				t.Errorf("trace %s of %s found among %s's blocks (err %v)", id, tenantA, ingest.DefaultTenant, err)
			}
		}
	})
}

const loopback = "127.0.0.1:0"

// The trace every protocol sends: names, kinds, parents and times (offsets
// from t0). All times are whole milliseconds, exact in every protocol.
type treeSpan struct {
	name       string
	kind       ptrace.SpanKind
	parent     string
	start, end time.Duration
}

var treeSpans = []treeSpan{
	{"checkout", ptrace.SpanKindServer, "", 0, 1500 * time.Millisecond},
	{"charge", ptrace.SpanKindClient, "checkout", 10 * time.Millisecond, 900 * time.Millisecond},
	{"serialize", ptrace.SpanKindInternal, "charge", 30 * time.Millisecond, 40 * time.Millisecond},
	{"publish", ptrace.SpanKindProducer, "checkout", 950 * time.Millisecond, 1200 * time.Millisecond},
}

// eventAt is when "charge" records its event.
const eventAt = 20 * time.Millisecond

func treeSpanNamed(name string) treeSpan {
	for _, s := range treeSpans {
		if s.name == name {
			return s
		}
	}
	panic("no span " + name)
}

// The span "charge" links to, in another trace.
var (
	linkTrace = pcommon.TraceID{0xaa, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff}
	linkSpan  = pcommon.SpanID{0xbb, 1, 2, 3, 4, 5, 6, 7}
)

// sent is what a client reported: the IDs it chose and t0.
type sent struct {
	traceID pcommon.TraceID
	spanIDs map[string]pcommon.SpanID
	t0      time.Time
}

// wantTrace builds the expected trace: every span of treeSpans with the
// IDs, times, kinds and parents of s, under one resource and scope; fill
// adds what each protocol carries on each span.
func wantTrace(t *testing.T, s sent, res map[string]any, scopeName, scopeVersion string, scopeAttrs map[string]any,
	fill func(name string, sp ptrace.Span)) ptrace.Traces {
	t.Helper()
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	putRaw(t, rs.Resource().Attributes(), res)
	ss := rs.ScopeSpans().AppendEmpty()
	ss.Scope().SetName(scopeName)
	ss.Scope().SetVersion(scopeVersion)
	putRaw(t, ss.Scope().Attributes(), scopeAttrs)
	for _, ts := range treeSpans {
		sp := ss.Spans().AppendEmpty()
		sp.SetTraceID(s.traceID)
		id, ok := s.spanIDs[ts.name]
		if !ok || id.IsEmpty() {
			t.Fatalf("no span ID for %s", ts.name)
		}
		sp.SetSpanID(id)
		if ts.parent != "" {
			sp.SetParentSpanID(s.spanIDs[ts.parent])
		}
		sp.SetName(ts.name)
		sp.SetKind(ts.kind)
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(s.t0.Add(ts.start)))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(s.t0.Add(ts.end)))
		fill(ts.name, sp)
	}
	return td
}

func putRaw(t *testing.T, m pcommon.Map, raw map[string]any) {
	t.Helper()
	for k, v := range raw {
		if err := m.PutEmpty(k).FromRaw(v); err != nil {
			t.Fatalf("attribute %s: %v", k, err)
		}
	}
}

func addEvent(t *testing.T, sp ptrace.Span, t0 time.Time, attrs map[string]any) {
	t.Helper()
	ev := sp.Events().AppendEmpty()
	ev.SetName("retrying")
	ev.SetTimestamp(pcommon.NewTimestampFromTime(t0.Add(eventAt)))
	putRaw(t, ev.Attributes(), attrs)
}

func addLink(t *testing.T, sp ptrace.Span, traceState string, attrs map[string]any) {
	t.Helper()
	l := sp.Links().AppendEmpty()
	l.SetTraceID(linkTrace)
	l.SetSpanID(linkSpan)
	l.TraceState().FromRaw(traceState)
	putRaw(t, l.Attributes(), attrs)
}

// ---------------------------------------------------------------- OTLP

// exportRecorder records the errors of an SDK exporter, which the SDK
// itself only hands to the global error handler.
type exportRecorder struct {
	sdktrace.SpanExporter
	mu    sync.Mutex
	errs  []error
	spans int
}

func (r *exportRecorder) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	err := r.SpanExporter.ExportSpans(ctx, spans)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.errs = append(r.errs, err)
	} else {
		r.spans += len(spans)
	}
	return err
}

func (r *exportRecorder) errors() []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.errs)
}

// traceStateSampler samples everything and gives every span the trace
// state "tracectl=t1" (the SDK has no other way to set a root's).
type traceStateSampler struct{}

func (traceStateSampler) ShouldSample(p sdktrace.SamplingParameters) sdktrace.SamplingResult {
	ts, err := trace.SpanContextFromContext(p.ParentContext).TraceState().Insert("tracectl", "t1")
	if err != nil {
		panic(err)
	}
	return sdktrace.SamplingResult{Decision: sdktrace.RecordAndSample, Tracestate: ts}
}

func (traceStateSampler) Description() string { return "traceStateSampler" }

// rootAttrCount is how many attributes the SDK keeps per span in
// emitOTel; "checkout" sets one more, which the SDK drops and counts.
const rootAttrCount = 10

// emitOTel sends the tree with the OpenTelemetry Go SDK through exp, one
// span per export (batch false) or the whole trace in one (batch true).
func emitOTel(t *testing.T, exp sdktrace.SpanExporter, t0 time.Time, batch bool) sent {
	t.Helper()
	ctx := context.Background()
	rec := &exportRecorder{SpanExporter: exp}
	limits := sdktrace.NewSpanLimits()
	limits.AttributeCountLimit = rootAttrCount
	opts := []sdktrace.TracerProviderOption{
		sdktrace.WithResource(resource.NewSchemaless(
			attribute.String("service.name", "shop"),
			attribute.String("deployment.environment", "test"),
			attribute.Int("shard", 7),
			attribute.Float64("load", 0.75),
			attribute.Bool("canary", true),
			attribute.StringSlice("regions", []string{"eu", "us"}),
		)),
		sdktrace.WithSampler(traceStateSampler{}),
		sdktrace.WithRawSpanLimits(limits),
	}
	if batch {
		opts = append(opts, sdktrace.WithBatcher(rec, sdktrace.WithBatchTimeout(time.Hour)))
	} else {
		opts = append(opts, sdktrace.WithSyncer(rec))
	}
	tp := sdktrace.NewTracerProvider(opts...)
	tr := tp.Tracer("tracectl/test", trace.WithInstrumentationVersion("1.2.3"),
		trace.WithInstrumentationAttributes(attribute.String("scope.attr", "x"), attribute.Int("scope.n", 2)))
	at := func(name string, end bool) trace.SpanEventOption {
		ts := treeSpanNamed(name)
		if end {
			return trace.WithTimestamp(t0.Add(ts.end))
		}
		return trace.WithTimestamp(t0.Add(ts.start))
	}
	s := sent{t0: t0, spanIDs: map[string]pcommon.SpanID{}}
	note := func(name string, sp trace.Span) {
		s.traceID = pcommon.TraceID(sp.SpanContext().TraceID())
		s.spanIDs[name] = pcommon.SpanID(sp.SpanContext().SpanID())
	}

	rootCtx, root := tr.Start(ctx, "checkout", trace.WithSpanKind(trace.SpanKindServer), at("checkout", false),
		trace.WithAttributes(
			attribute.String("http.route", "/cart"), // a dedicated column
			attribute.String("http.method", "POST"), // a fixed string column
			attribute.Int("http.status_code", 200),  // a fixed int column
			attribute.Int("retry.count", 3),
			attribute.Float64("ratio", 0.25),
			attribute.Bool("cache.hit", true),
			attribute.StringSlice("tags", []string{"a", "b"}),
			attribute.Int64Slice("counts", []int64{1, -2}),
			attribute.Float64Slice("weights", []float64{0.5, 1.5}),
			attribute.BoolSlice("flags", []bool{true, false}),
			attribute.String("over.limit", "dropped by the SDK"),
		))
	note("checkout", root)
	// The OTLP exporters of the Go SDK do not send a link's trace state
	// (tracetransform.links leaves Span_Link.trace_state out), so the link
	// gets none here; Zipkin's otlp.link convention carries one below.
	link := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID(linkTrace), SpanID: trace.SpanID(linkSpan), TraceFlags: trace.FlagsSampled})
	chargeCtx, charge := tr.Start(rootCtx, "charge", trace.WithSpanKind(trace.SpanKindClient), at("charge", false),
		trace.WithAttributes(attribute.String("peer.service", "payments")),
		trace.WithLinks(trace.Link{SpanContext: link, Attributes: []attribute.KeyValue{
			attribute.String("link.why", "retry"), attribute.Int("link.n", 1), attribute.StringSlice("link.tags", []string{"x"}),
		}}))
	note("charge", charge)
	charge.AddEvent("retrying", trace.WithTimestamp(t0.Add(eventAt)), trace.WithAttributes(
		attribute.Int("attempt", 2), attribute.Float64("backoff", 0.5), attribute.String("reason", "timeout"),
		attribute.Bool("final", false), attribute.IntSlice("codes", []int{502, 503}),
	))
	charge.SetStatus(otelcodes.Error, "card declined")
	_, ser := tr.Start(chargeCtx, "serialize", trace.WithSpanKind(trace.SpanKindInternal), at("serialize", false))
	note("serialize", ser)
	ser.End(at("serialize", true))
	charge.End(at("charge", true))
	_, pub := tr.Start(rootCtx, "publish", trace.WithSpanKind(trace.SpanKindProducer), at("publish", false))
	note("publish", pub)
	pub.End(at("publish", true))
	root.End(at("checkout", true))

	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := tp.Shutdown(sctx); err != nil {
		t.Errorf("tracer provider shutdown: %v", err)
	}
	if errs := rec.errors(); len(errs) > 0 {
		t.Fatalf("export failed: %v", errs)
	}
	if rec.spans != len(treeSpans) {
		t.Fatalf("exporter sent %d spans, want %d", rec.spans, len(treeSpans))
	}
	return s
}

// wantOTel: OTLP carries everything the SDK records (span flags aside,
// which vParquet4 has no column for and otlptest does not compare).
func wantOTel(t *testing.T, s sent) ptrace.Traces {
	return wantTrace(t, s,
		map[string]any{"service.name": "shop", "deployment.environment": "test", "shard": 7, "load": 0.75, "canary": true,
			"regions": []any{"eu", "us"}},
		"tracectl/test", "1.2.3", map[string]any{"scope.attr": "x", "scope.n": 2},
		func(name string, sp ptrace.Span) {
			sp.TraceState().FromRaw("tracectl=t1")
			switch name {
			case "checkout":
				putRaw(t, sp.Attributes(), map[string]any{
					"http.route": "/cart", "http.method": "POST", "http.status_code": 200,
					"retry.count": 3, "ratio": 0.25, "cache.hit": true,
					"tags": []any{"a", "b"}, "counts": []any{1, -2}, "weights": []any{0.5, 1.5}, "flags": []any{true, false},
				})
				sp.SetDroppedAttributesCount(1)
			case "charge":
				putRaw(t, sp.Attributes(), map[string]any{"peer.service": "payments"})
				sp.Status().SetCode(ptrace.StatusCodeError)
				sp.Status().SetMessage("card declined")
				addEvent(t, sp, s.t0, map[string]any{"attempt": 2, "backoff": 0.5, "reason": "timeout", "final": false, "codes": []any{502, 503}})
				addLink(t, sp, "", map[string]any{"link.why": "retry", "link.n": 1, "link.tags": []any{"x"}})
			}
		})
}

// ---------------------------------------------------------------- Jaeger

// jaegerCapture wraps a jaeger-client-go transport: it keeps the client's
// random client-uuid process tag (for the expected resource) and every
// error of the transport (the reporter only logs them).
type jaegerCapture struct {
	jaegerclient.Transport
	mu     sync.Mutex
	uuid   string
	errs   []error
	spans  int
	closed bool
}

func (c *jaegerCapture) Append(span *jaegerclient.Span) (int, error) {
	c.mu.Lock()
	if c.uuid == "" {
		for _, tag := range jaegerclient.BuildJaegerProcessThrift(span).Tags {
			if tag.Key == jaegerclient.TracerUUIDTagKey {
				c.uuid = tag.GetVStr()
			}
		}
	}
	c.spans++
	c.mu.Unlock()
	n, err := c.Transport.Append(span)
	c.record(err)
	return n, err
}

func (c *jaegerCapture) Flush() (int, error) {
	n, err := c.Transport.Flush()
	c.record(err)
	return n, err
}

func (c *jaegerCapture) record(err error) {
	if err != nil {
		c.mu.Lock()
		c.errs = append(c.errs, err)
		c.mu.Unlock()
	}
}

type jaegerSent struct {
	sent
	uuid string
}

// emitJaegerClient sends the tree with the Jaeger Go client (opentracing)
// through sender.
func emitJaegerClient(t *testing.T, sender jaegerclient.Transport, t0 time.Time) jaegerSent {
	t.Helper()
	capture := &jaegerCapture{Transport: sender}
	tracer, closer := jaegerclient.NewTracer("shop", jaegerclient.NewConstSampler(true),
		jaegerclient.NewRemoteReporter(capture, jaegerclient.ReporterOptions.BufferFlushInterval(time.Hour)),
		jaegerclient.TracerOptions.Gen128Bit(true),
		jaegerclient.TracerOptions.Tag("deployment.environment", "test"),
		jaegerclient.TracerOptions.Tag("shard", 7),
		jaegerclient.TracerOptions.Tag("load", 0.75),
		jaegerclient.TracerOptions.Tag("canary", true),
		jaegerclient.TracerOptions.Tag(jaegerclient.TracerIPTagKey, "10.0.0.7"))
	s := jaegerSent{sent: sent{t0: t0, spanIDs: map[string]pcommon.SpanID{}}}
	note := func(name string, sp opentracing.Span) {
		sc := sp.Context().(jaegerclient.SpanContext)
		s.traceID = jaegerTraceID(sc.TraceID().High, sc.TraceID().Low)
		s.spanIDs[name] = jaegerSpanID(uint64(sc.SpanID()))
	}
	start := func(name string) opentracing.StartSpanOption {
		return opentracing.StartTime(t0.Add(treeSpanNamed(name).start))
	}
	finish := func(name string) opentracing.FinishOptions {
		return opentracing.FinishOptions{FinishTime: t0.Add(treeSpanNamed(name).end)}
	}

	root := tracer.StartSpan("checkout", start("checkout"), ext.SpanKindRPCServer, opentracing.Tags{
		"http.route": "/cart", "http.method": "POST", "http.status_code": 200,
		"retry.count": 3, "ratio": 0.25, "cache.hit": true,
	})
	note("checkout", root)
	other := jaegerclient.NewSpanContext(
		jaegerclient.TraceID{High: beUint64(linkTrace[:8]), Low: beUint64(linkTrace[8:])},
		jaegerclient.SpanID(beUint64(linkSpan[:])), 0, true, nil)
	charge := tracer.StartSpan("charge", start("charge"), opentracing.ChildOf(root.Context()), opentracing.FollowsFrom(other),
		ext.SpanKindRPCClient, opentracing.Tags{"peer.service": "payments", "payload": []byte{0xde, 0xad, 0xbe, 0xef}})
	note("charge", charge)
	ext.Error.Set(charge, true)
	charge.SetTag("otel.status_description", "card declined")
	ser := tracer.StartSpan("serialize", start("serialize"), opentracing.ChildOf(charge.Context()), opentracing.Tag{Key: "span.kind", Value: "internal"})
	note("serialize", ser)
	ser.FinishWithOptions(finish("serialize"))
	chargeEnd := finish("charge")
	chargeEnd.LogRecords = []opentracing.LogRecord{{Timestamp: t0.Add(eventAt), Fields: []otlog.Field{
		otlog.String("event", "retrying"), otlog.Int("attempt", 2), otlog.Float64("backoff", 0.5),
		otlog.String("reason", "timeout"), otlog.Bool("final", false),
	}}}
	charge.FinishWithOptions(chargeEnd)
	pub := tracer.StartSpan("publish", start("publish"), opentracing.ChildOf(root.Context()), ext.SpanKindProducer)
	note("publish", pub)
	pub.FinishWithOptions(finish("publish"))
	root.FinishWithOptions(finish("checkout"))
	if err := closer.Close(); err != nil { // flushes and closes the transport
		t.Errorf("closing the tracer: %v", err)
	}
	capture.mu.Lock()
	defer capture.mu.Unlock()
	if len(capture.errs) > 0 {
		t.Fatalf("Jaeger transport failed: %v", capture.errs)
	}
	if capture.spans != len(treeSpans) || capture.uuid == "" {
		t.Fatalf("Jaeger client reported %d spans (client-uuid %q), want %d", capture.spans, capture.uuid, len(treeSpans))
	}
	s.uuid = capture.uuid
	return s
}

// wantJaegerClient is the tree as the Collector's Jaeger thrift translator
// makes it of what jaeger-client-go sends: process tags become typed
// resource attributes (hostname → host.name, jaeger.version →
// opencensus.exporterversion "Jaeger-…", ip and client-uuid as they are);
// span tags typed attributes, span.kind the kind, error=true plus
// otel.status_description the status; the root carries the const
// sampler's tags; the log becomes an event named by its "event" field; the
// follows-from reference a link with opentracing.ref_type; http.status_code
// is renamed http.response.status_code (the translator's default semantic
// conventions since its HTTP feature gates went stable). Thrift has no
// arrays, scope, trace state or link attributes.
//
// The const sampler's sampler.type/sampler.param tags are absent: the
// client itself loses them when StartSpan is given tags (v2.30
// startSpanWithOptions reallocates the span's tags after the sampling
// decision wrote them), so they are never sent.
func wantJaegerClient(t *testing.T, s jaegerSent, hostname string) ptrace.Traces {
	return wantTrace(t, s.sent,
		map[string]any{"service.name": "shop", "deployment.environment": "test", "shard": 7, "load": 0.75, "canary": true,
			"ip": "10.0.0.7", "host.name": hostname, "opencensus.exporterversion": "Jaeger-" + jaegerclient.JaegerClientVersion,
			"client-uuid": s.uuid},
		"", "", nil,
		func(name string, sp ptrace.Span) {
			switch name {
			case "checkout":
				putRaw(t, sp.Attributes(), map[string]any{
					"http.route": "/cart", "http.method": "POST", "http.response.status_code": 200,
					"retry.count": 3, "ratio": 0.25, "cache.hit": true,
				})
			case "charge":
				putRaw(t, sp.Attributes(), map[string]any{"peer.service": "payments", "payload": []byte{0xde, 0xad, 0xbe, 0xef}})
				sp.Status().SetCode(ptrace.StatusCodeError)
				sp.Status().SetMessage("card declined")
				addEvent(t, sp, s.t0, map[string]any{"attempt": 2, "backoff": 0.5, "reason": "timeout", "final": false})
				addLink(t, sp, "", map[string]any{"opentracing.ref_type": "follows_from"})
			}
		})
}

// jaegerProtoTrace is the tree as a Jaeger api_v2 batch (what Jaeger agents
// and the Collector's Jaeger exporter post over gRPC), and the trace the
// Collector's proto translator makes of it: unlike thrift it also reads
// otel.scope.name/version into the scope and w3c.tracestate into the trace
// state; this batch gives the status with otel.status_code instead of
// error=true.
func jaegerProtoTrace(t *testing.T, t0 time.Time) (model.Batch, ptrace.Traces) {
	traceID := model.TraceID{High: uint64(t0.UnixNano()), Low: 0x5eed0000_0000_0001}
	ids := map[string]model.SpanID{"checkout": 0x1001, "charge": 0x1002, "serialize": 0x1003, "publish": 0x1004}
	s := sent{traceID: jaegerTraceID(traceID.High, traceID.Low), spanIDs: map[string]pcommon.SpanID{}, t0: t0}
	var spans []*model.Span
	for _, ts := range treeSpans {
		s.spanIDs[ts.name] = jaegerSpanID(uint64(ids[ts.name]))
		sp := &model.Span{
			TraceID: traceID, SpanID: ids[ts.name], OperationName: ts.name, Flags: model.SampledFlag,
			StartTime: t0.Add(ts.start), Duration: ts.end - ts.start,
			Tags: []model.KeyValue{
				model.String("span.kind", strings.ToLower(strings.TrimPrefix(ts.kind.String(), "SpanKind"))),
				model.String("otel.scope.name", "tracectl/test"), model.String("otel.scope.version", "1.2.3"),
				model.String("w3c.tracestate", "tracectl=t1"),
			},
		}
		if ts.parent != "" {
			sp.References = append(sp.References, model.SpanRef{TraceID: traceID, SpanID: ids[ts.parent], RefType: model.SpanRefType_CHILD_OF})
		}
		switch ts.name {
		case "checkout":
			sp.Tags = append(sp.Tags, model.String("http.route", "/cart"), model.String("http.method", "POST"),
				model.Int64("http.status_code", 200), model.Int64("retry.count", 3), model.Float64("ratio", 0.25),
				model.Bool("cache.hit", true))
		case "charge":
			sp.Tags = append(sp.Tags, model.String("peer.service", "payments"), model.Binary("payload", []byte{0xde, 0xad, 0xbe, 0xef}),
				model.String("otel.status_code", "ERROR"), model.String("otel.status_description", "card declined"))
			sp.References = append(sp.References, model.SpanRef{
				TraceID: model.TraceID{High: beUint64(linkTrace[:8]), Low: beUint64(linkTrace[8:])},
				SpanID:  model.SpanID(beUint64(linkSpan[:])), RefType: model.SpanRefType_FOLLOWS_FROM,
			})
			sp.Logs = []model.Log{{Timestamp: t0.Add(eventAt), Fields: []model.KeyValue{
				model.String("event", "retrying"), model.Int64("attempt", 2), model.Float64("backoff", 0.5),
				model.String("reason", "timeout"), model.Bool("final", false),
			}}}
		}
		spans = append(spans, sp)
	}
	batch := model.Batch{
		Process: &model.Process{ServiceName: "shop", Tags: []model.KeyValue{
			model.String("deployment.environment", "test"), model.Int64("shard", 7), model.Float64("load", 0.75),
			model.Bool("canary", true), model.Binary("build.id", []byte{1, 2, 3}),
		}},
		Spans: spans,
	}
	want := wantTrace(t, s,
		map[string]any{"service.name": "shop", "deployment.environment": "test", "shard": 7, "load": 0.75, "canary": true,
			"build.id": []byte{1, 2, 3}},
		"tracectl/test", "1.2.3", nil,
		func(name string, sp ptrace.Span) {
			sp.TraceState().FromRaw("tracectl=t1")
			switch name {
			case "checkout":
				putRaw(t, sp.Attributes(), map[string]any{
					"http.route": "/cart", "http.method": "POST", "http.response.status_code": 200,
					"retry.count": 3, "ratio": 0.25, "cache.hit": true,
				})
			case "charge":
				putRaw(t, sp.Attributes(), map[string]any{"peer.service": "payments", "payload": []byte{0xde, 0xad, 0xbe, 0xef}})
				sp.Status().SetCode(ptrace.StatusCodeError)
				sp.Status().SetMessage("card declined")
				addEvent(t, sp, t0, map[string]any{"attempt": 2, "backoff": 0.5, "reason": "timeout", "final": false})
				addLink(t, sp, "", map[string]any{"opentracing.ref_type": "follows_from"})
			}
		})
	return batch, want
}

func jaegerTraceID(high, low uint64) pcommon.TraceID {
	var id pcommon.TraceID
	putBE(id[:8], high)
	putBE(id[8:], low)
	return id
}

func jaegerSpanID(v uint64) pcommon.SpanID {
	var id pcommon.SpanID
	putBE(id[:], v)
	return id
}

func putBE(b []byte, v uint64) {
	for i := 7; i >= 0; i-- {
		b[i] = byte(v)
		v >>= 8
	}
}

func beUint64(b []byte) uint64 {
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v
}

// ---------------------------------------------------------------- Zipkin

// lineRecorder collects what a log.Logger writes (zipkin-go's reporter
// reports failures only there).
type lineRecorder struct {
	mu    sync.Mutex
	lines []string
}

func (r *lineRecorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, strings.TrimSpace(string(p)))
	return len(p), nil
}

// emitZipkin sends the tree with zipkin-go's tracer and HTTP reporter (v2
// API). Zipkin has only string tags and plain annotations: the resource,
// the scope, the status, the event's attributes and the link travel in the
// conventions the Collector's Zipkin exporter writes and its translator
// reads (resource and otel.scope.* tags on every span, otel.status_code,
// "name|{json}|dropped" annotations, otlp.link.N tags, span.kind=internal
// on a span without a Zipkin kind).
func emitZipkin(t *testing.T, url string, t0 time.Time, opts ...zipkinhttp.ReporterOption) sent {
	t.Helper()
	logs := &lineRecorder{}
	rep := zipkinhttp.NewReporter(url, append([]zipkinhttp.ReporterOption{
		zipkinhttp.BatchInterval(time.Hour), zipkinhttp.Logger(log.New(logs, "", 0)),
	}, opts...)...)
	local, err := zipkin.NewEndpoint("shop", "127.0.0.1:8080")
	if err != nil {
		t.Fatal(err)
	}
	tracer, err := zipkin.NewTracer(rep, zipkin.WithLocalEndpoint(local), zipkin.WithTraceID128Bit(true),
		zipkin.WithTags(map[string]string{
			"deployment.environment": "test", "service.version": "2.0.1",
			"otel.scope.name": "tracectl/test", "otel.scope.version": "1.2.3",
		}))
	if err != nil {
		t.Fatal(err)
	}
	s := sent{t0: t0, spanIDs: map[string]pcommon.SpanID{}}
	note := func(name string, sp zipkin.Span) {
		sc := sp.Context()
		s.traceID = jaegerTraceID(sc.TraceID.High, sc.TraceID.Low)
		s.spanIDs[name] = jaegerSpanID(uint64(sc.ID))
	}
	start := func(name string) zipkin.SpanOption { return zipkin.StartTime(t0.Add(treeSpanNamed(name).start)) }
	finish := func(name string, sp zipkin.Span) {
		ts := treeSpanNamed(name)
		sp.FinishedWithDuration(ts.end - ts.start)
	}

	root := tracer.StartSpan("checkout", zipkin.Kind(zmodel.Server), start("checkout"), zipkin.Tags(map[string]string{
		"http.route": "/cart", "http.method": "POST", "http.status_code": "200",
		"retry.count": "3", "ratio": "0.25", "cache.hit": "true",
	}))
	note("checkout", root)
	remote, err := zipkin.NewEndpoint("payments", "10.0.0.9:5432")
	if err != nil {
		t.Fatal(err)
	}
	link := hex.EncodeToString(linkTrace[:]) + "|" + hex.EncodeToString(linkSpan[:]) + `|vendor=v1|{"link.why":"retry","link.n":1}|0`
	charge := tracer.StartSpan("charge", zipkin.Kind(zmodel.Client), zipkin.Parent(root.Context()), start("charge"),
		zipkin.RemoteEndpoint(remote), zipkin.Tags(map[string]string{
			"otel.status_code": "Error", "otel.status_description": "card declined", "otlp.link.0": link,
		}))
	note("charge", charge)
	charge.Annotate(t0.Add(eventAt), `retrying|{"attempt":2,"backoff":0.5,"reason":"timeout","final":false}|0`)
	ser := tracer.StartSpan("serialize", zipkin.Parent(charge.Context()), start("serialize"),
		zipkin.Tags(map[string]string{"span.kind": "internal"}))
	note("serialize", ser)
	finish("serialize", ser)
	finish("charge", charge)
	pub := tracer.StartSpan("publish", zipkin.Kind(zmodel.Producer), zipkin.Parent(root.Context()), start("publish"))
	note("publish", pub)
	finish("publish", pub)
	finish("checkout", root)
	if err := rep.Close(); err != nil { // flushes
		t.Errorf("closing the reporter: %v", err)
	}
	logs.mu.Lock()
	defer logs.mu.Unlock()
	if len(logs.lines) > 0 {
		t.Fatalf("zipkin reporter failed: %v", logs.lines)
	}
	return s
}

// wantZipkin is the tree as the Collector's Zipkin v2 translator makes it:
// only tags named by resource semantic conventions become resource
// attributes (strings); the local endpoint becomes network.local.address
// and net.host.port on every span, the remote one service.peer.name,
// network.peer.address and net.peer.port; http.status_code is renamed
// http.response.status_code; tags are string attributes unless
// parse_string_tags (typed), and never arrays; event and link attributes
// are typed by their JSON.
func wantZipkin(t *testing.T, s sent, typed bool) ptrace.Traces {
	tag := func(str string, v any) any {
		if typed {
			return v
		}
		return str
	}
	return wantTrace(t, s,
		map[string]any{"service.name": "shop", "deployment.environment": "test", "service.version": "2.0.1"},
		"tracectl/test", "1.2.3", nil,
		func(name string, sp ptrace.Span) {
			putRaw(t, sp.Attributes(), map[string]any{"network.local.address": "127.0.0.1", "net.host.port": 8080})
			switch name {
			case "checkout":
				putRaw(t, sp.Attributes(), map[string]any{
					"http.route": "/cart", "http.method": "POST", "http.response.status_code": tag("200", 200),
					"retry.count": tag("3", 3), "ratio": tag("0.25", 0.25), "cache.hit": tag("true", true),
				})
			case "charge":
				putRaw(t, sp.Attributes(), map[string]any{"service.peer.name": "payments", "network.peer.address": "10.0.0.9", "net.peer.port": 5432})
				sp.Status().SetCode(ptrace.StatusCodeError)
				sp.Status().SetMessage("card declined")
				addEvent(t, sp, s.t0, map[string]any{"attempt": 2, "backoff": 0.5, "reason": "timeout", "final": false})
				addLink(t, sp, "vendor=v1", map[string]any{"link.why": "retry", "link.n": 1})
			}
		})
}

// ---------------------------------------------------------------- checks

// checkStored checks that want (all its traces) reaches the head, that a
// flush stores it as one new block of tenantID, and that the block holds
// it intact with a meta covering its times.
func checkStored(t *testing.T, srv *server.Server, b *storage.Bucket, tenantID string, want ptrace.Traces, async bool) {
	t.Helper()
	ctx := context.Background()
	ids := traceIDsOf(want)
	spansOf := map[block.TraceID]int{}
	for _, rs := range want.ResourceSpans().All() {
		for _, ss := range rs.ScopeSpans().All() {
			for _, sp := range ss.Spans().All() {
				spansOf[block.TraceID(sp.TraceID())]++
			}
		}
	}

	// A success response means durable: the head holds every span at
	// once. UDP has no response: wait for the packets to be consumed.
	deadline := time.Now().Add(15 * time.Second)
	for _, id := range ids {
		for {
			n := headSpans(srv.FindInHead(tenantID, id))
			if n == spansOf[id] {
				break
			}
			if !async || time.Now().After(deadline) {
				t.Fatalf("trace %s: %d spans in the head of %s, want %d", id, n, tenantID, spansOf[id])
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	before := blockIDs(t, b, tenantID)
	if err := srv.Flush(ctx); err != nil {
		t.Fatalf("flush: %v", err)
	}
	for _, id := range ids {
		if n := headSpans(srv.FindInHead(tenantID, id)); n != 0 {
			t.Errorf("trace %s: %d spans still in the head after the flush", id, n)
		}
	}
	var fresh []*block.Meta
	for _, m := range server.ListMetas(t, b, tenantID) {
		if !slices.Contains(before, m.BlockID.String()) {
			fresh = append(fresh, m)
		}
	}
	if len(fresh) != 1 {
		t.Fatalf("the flush stored %d blocks for %s, want 1", len(fresh), tenantID)
	}
	m := fresh[0]
	if m.TenantID != tenantID || m.Format != block.FormatVParquet4 || m.TotalObjects != int64(len(ids)) {
		t.Errorf("meta: tenant %q format %q traces %d, want %q %q %d", m.TenantID, m.Format, m.TotalObjects,
			tenantID, block.FormatVParquet4, len(ids))
	}

	// The meta's range is in whole seconds (as Tempo's): it must start at
	// the second of the earliest span start and end at the second of the
	// latest span end, so it covers every span.
	minStart, maxEnd := timeRange(want)
	if wantStart := minStart.Truncate(time.Second); !m.StartTime.Equal(wantStart) {
		t.Errorf("meta startTime %v, want %v (earliest span start %v)", m.StartTime, wantStart, minStart)
	}
	if wantEnd := maxEnd.Truncate(time.Second); !m.EndTime.Equal(wantEnd) {
		t.Errorf("meta endTime %v, want %v (latest span end %v)", m.EndTime, wantEnd, maxEnd)
	}
	for _, rs := range want.ResourceSpans().All() {
		for _, ss := range rs.ScopeSpans().All() {
			for _, sp := range ss.Spans().All() {
				st, en := sp.StartTimestamp().AsTime(), sp.EndTimestamp().AsTime()
				if st.Before(m.StartTime) || !en.Before(m.EndTime.Add(time.Second)) {
					t.Errorf("span %s [%v, %v] outside the block's [%v, %v]", sp.Name(), st, en, m.StartTime, m.EndTime)
				}
			}
		}
	}

	// Read back through the block reader, from the new block alone.
	got := ptrace.NewTraces()
	for _, id := range ids {
		res, err := blocks.FindTrace(ctx, b, []*block.Meta{m}, id, blocks.FindOptions{})
		if err != nil || !res.Found || len(res.Problems) > 0 {
			t.Fatalf("trace %s not found in block %s: err %v, problems %v", id, m.BlockID, err, res.Problems)
		}
		if n := res.Trace.SpanCount(); n != spansOf[id] {
			t.Errorf("trace %s: block holds %d spans, want %d", id, n, spansOf[id])
		}
		res.Trace.ResourceSpans().MoveAndAppendTo(got.ResourceSpans())
		// A query for the shortest span's own time window (within
		// whole seconds of it) must not prune the block.
		st, en := shortestSpan(want, id)
		res, err = blocks.FindTrace(ctx, b, server.ListMetas(t, b, tenantID), id, blocks.FindOptions{Start: st, End: en})
		if err != nil || !res.Found {
			t.Errorf("trace %s not found when searching [%v, %v]: %v", id, st, en, err)
		}
	}
	otlptest.AssertEqual(t, want, got, otlptest.MaxDiffs(40))
}

func traceIDsOf(td ptrace.Traces) []block.TraceID {
	var ids []block.TraceID
	for _, rs := range td.ResourceSpans().All() {
		for _, ss := range rs.ScopeSpans().All() {
			for _, sp := range ss.Spans().All() {
				if id := block.TraceID(sp.TraceID()); !slices.Contains(ids, id) {
					ids = append(ids, id)
				}
			}
		}
	}
	return ids
}

func traceIDOf(t *testing.T, td ptrace.Traces) block.TraceID {
	t.Helper()
	ids := traceIDsOf(td)
	if len(ids) != 1 {
		t.Fatalf("%d traces, want 1", len(ids))
	}
	return ids[0]
}

func timeRange(td ptrace.Traces) (minStart, maxEnd time.Time) {
	for _, rs := range td.ResourceSpans().All() {
		for _, ss := range rs.ScopeSpans().All() {
			for _, sp := range ss.Spans().All() {
				st, en := sp.StartTimestamp().AsTime(), sp.EndTimestamp().AsTime()
				if minStart.IsZero() || st.Before(minStart) {
					minStart = st
				}
				if en.After(maxEnd) {
					maxEnd = en
				}
			}
		}
	}
	return minStart, maxEnd
}

func shortestSpan(td ptrace.Traces, id block.TraceID) (start, end time.Time) {
	var best time.Duration = -1
	for _, rs := range td.ResourceSpans().All() {
		for _, ss := range rs.ScopeSpans().All() {
			for _, sp := range ss.Spans().All() {
				if block.TraceID(sp.TraceID()) != id {
					continue
				}
				st, en := sp.StartTimestamp().AsTime(), sp.EndTimestamp().AsTime()
				if d := en.Sub(st); best < 0 || d < best {
					best, start, end = d, st, en
				}
			}
		}
	}
	return start, end
}

func headSpans(pieces []ptrace.Traces) int {
	n := 0
	for _, p := range pieces {
		n += p.SpanCount()
	}
	return n
}

func blockIDs(t *testing.T, b *storage.Bucket, tenantID string) []string {
	t.Helper()
	var ids []string
	for _, m := range server.ListMetas(t, b, tenantID) {
		ids = append(ids, m.BlockID.String())
	}
	slices.Sort(ids)
	return ids
}

// ---------------------------------------------------------------- wiring

// startSet starts the receivers of rc in front of c and stops them at the
// end of the test; it returns their addresses by protocol name.
func startSet(t *testing.T, rc ingest.ReceiversConfig, c ingest.Consumer, logger *slog.Logger) map[string]string {
	t.Helper()
	set, err := ingest.NewSet(rc, c, logger, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := set.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := set.Shutdown(ctx); err != nil {
			t.Errorf("receivers shutdown: %v", err)
		}
	})
	out := map[string]string{}
	for name, a := range set.Addrs() {
		if !strings.HasPrefix(a.String(), "127.0.0.1:") || strings.HasSuffix(a.String(), ":0") {
			t.Fatalf("%s listens on %v, want 127.0.0.1 and a picked port", name, a)
		}
		out[name] = a.String()
	}
	return out
}

func startReceiver(t *testing.T, r ingest.Receiver) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := r.Shutdown(ctx); err != nil {
			t.Errorf("receiver shutdown: %v", err)
		}
	})
}

// testLogWriter sends the server's and receivers' logs to the test log.
type testLogWriter struct{ t *testing.T }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}
