package ingest

import (
	"context"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
	"github.com/jaegertracing/jaeger-idl/thrift-gen/zipkincore"
	zipkin "github.com/openzipkin/zipkin-go"
	zmodel "github.com/openzipkin/zipkin-go/model"
	"github.com/openzipkin/zipkin-go/proto/zipkin_proto3"
	zipkinhttp "github.com/openzipkin/zipkin-go/reporter/http"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// emitZipkinSpan records the checkout span with zipkin-go's HTTP reporter.
// Zipkin has only string tags and plain annotations; attribute types,
// event attributes, links and status travel in the conventions the
// OpenTelemetry Zipkin exporters use (otlp.link.N, "name|{json}|dropped"
// annotations, otel.status_code), as the Collector's Zipkin exporter writes
// them and the translator reads them back.
func emitZipkinSpan(t *testing.T, url string, opts ...zipkinhttp.ReporterOption) {
	t.Helper()
	rep := zipkinhttp.NewReporter(url, append([]zipkinhttp.ReporterOption{zipkinhttp.BatchInterval(time.Hour)}, opts...)...)
	ep, err := zipkin.NewEndpoint("shop", "127.0.0.1:8080")
	if err != nil {
		t.Fatal(err)
	}
	tracer, err := zipkin.NewTracer(rep, zipkin.WithLocalEndpoint(ep), zipkin.WithTraceID128Bit(true))
	if err != nil {
		t.Fatal(err)
	}
	link := hex.EncodeToString(linkTraceID[:]) + "|" + hex.EncodeToString(linkSpanID[:]) + `||{"link.why":"retry"}|0`
	span := tracer.StartSpan("checkout", zipkin.Kind(zmodel.Server), zipkin.Tags(map[string]string{
		"http.route": "/cart", "retry.count": "3", "ratio": "0.25", "cache.hit": "true",
		"otel.status_code": "Error", "otel.status_description": "boom", "otlp.link.0": link,
	}))
	span.Annotate(time.Now(), `added|{"item.id":42}|0`)
	time.Sleep(time.Millisecond)
	span.Finish()
	if err := rep.Close(); err != nil { // flushes
		t.Logf("closing reporter: %v", err)
	}
}

func checkZipkinSpan(t *testing.T, f ingestFound, tenant string, typed bool) {
	t.Helper()
	if f.Tenant != tenant {
		t.Errorf("tenant = %q, want %q", f.Tenant, tenant)
	}
	s := f.Span
	wantAttrs(t, "resource", f.Resource.Attributes(), map[string]any{"service.name": "shop"})
	want := map[string]any{"http.route": "/cart", "retry.count": "3", "ratio": "0.25", "cache.hit": "true"}
	if typed {
		want = map[string]any{"http.route": "/cart", "retry.count": int64(3), "ratio": 0.25, "cache.hit": true}
	}
	wantAttrs(t, "span", s.Attributes(), want)
	if s.Kind() != ptrace.SpanKindServer {
		t.Errorf("kind = %v, want Server", s.Kind())
	}
	if s.Status().Code() != ptrace.StatusCodeError || s.Status().Message() != "boom" {
		t.Errorf("status = %v %q, want Error boom", s.Status().Code(), s.Status().Message())
	}
	if s.Events().Len() != 1 || s.Events().At(0).Name() != "added" {
		t.Fatalf("events: %d, want one named added", s.Events().Len())
	}
	if v, ok := s.Events().At(0).Attributes().Get("item.id"); !ok || v.AsString() != "42" {
		t.Errorf("event attribute item.id = %v, want 42", v.AsRaw())
	}
	if s.Links().Len() != 1 {
		t.Fatalf("links = %d, want 1", s.Links().Len())
	}
	if l := s.Links().At(0); l.TraceID() != pcommon.TraceID(linkTraceID) || l.SpanID() != pcommon.SpanID(linkSpanID) {
		t.Errorf("link = %v/%v", l.TraceID(), l.SpanID())
	}
	if s.EndTimestamp() <= s.StartTimestamp() {
		t.Errorf("times %v-%v", s.StartTimestamp(), s.EndTimestamp())
	}
}

type ingestFound = struct {
	Tenant   string
	Resource pcommon.Resource
	Scope    pcommon.InstrumentationScope
	Span     ptrace.Span
}

func TestZipkinV2WithClient(t *testing.T) {
	for _, tc := range []struct {
		name  string
		typed bool
		opts  []zipkinhttp.ReporterOption
	}{
		{"json", true, nil},
		{"protobuf", false, []zipkinhttp.ReporterOption{zipkinhttp.Serializer(zipkin_proto3.SpanSerializer{})}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv()
			r := start(NewZipkin(ZipkinConfig{Config: tcpConfig(true), ParseStringTags: tc.typed}, e.rec, testLogger(t), e.reg))(t)
			emitZipkinSpan(t, "http://"+r.Addr().String()+"/api/v2/spans", append(tc.opts,
				zipkinhttp.RequestCallback(func(req *http.Request) { req.Header.Set("X-Scope-OrgID", "team-z") }))...)
			f, ok := e.rec.FindSpan("checkout")
			if !ok {
				t.Fatalf("span not received (%d consume calls)", e.rec.Calls())
			}
			checkZipkinSpan(t, ingestFound(f), "team-z", tc.typed)
			if got := counter(r.m.accepted.WithLabelValues(ProtocolZipkin, "team-z")); got != 1 {
				t.Errorf("accepted metric = %v, want 1", got)
			}
		})
	}
}

const zipkinV1JSON = `[{
  "traceId": "0000000000001111", "id": "0000000000000033", "name": "checkout",
  "timestamp": 1700000000000000, "duration": 1500,
  "annotations": [
    {"timestamp": 1700000000000000, "value": "sr", "endpoint": {"serviceName": "shop", "ipv4": "127.0.0.1", "port": 8080}},
    {"timestamp": 1700000000001500, "value": "ss", "endpoint": {"serviceName": "shop", "ipv4": "127.0.0.1", "port": 8080}}
  ],
  "binaryAnnotations": [{"key": "http.route", "value": "/cart", "endpoint": {"serviceName": "shop"}}]
}]`

func zipkinV1Thrift(t *testing.T) []byte {
	t.Helper()
	ep := &zipkincore.Endpoint{ServiceName: "shop", Ipv4: 0x7f000001, Port: 8080}
	ts, dur := int64(1700000000000000), int64(1500)
	span := &zipkincore.Span{
		TraceID: 0x1111, ID: 0x33, Name: "checkout", Timestamp: &ts, Duration: &dur,
		Annotations: []*zipkincore.Annotation{
			{Timestamp: ts, Value: "sr", Host: ep}, {Timestamp: ts + dur, Value: "ss", Host: ep},
		},
		BinaryAnnotations: []*zipkincore.BinaryAnnotation{
			{Key: "http.route", Value: []byte("/cart"), AnnotationType: zipkincore.AnnotationType_STRING, Host: ep},
		},
	}
	buf := thrift.NewTMemoryBuffer()
	p := thrift.NewTBinaryProtocolConf(buf, nil)
	ctx := context.Background()
	if err := p.WriteListBegin(ctx, thrift.STRUCT, 1); err != nil {
		t.Fatal(err)
	}
	if err := span.Write(ctx, p); err != nil {
		t.Fatal(err)
	}
	if err := p.WriteListEnd(ctx); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestZipkinV1(t *testing.T) {
	for _, tc := range []struct {
		name, ct string
		body     func(t *testing.T) []byte
	}{
		{"json", "application/json", func(*testing.T) []byte { return []byte(zipkinV1JSON) }},
		{"thrift", "application/x-thrift", zipkinV1Thrift},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv()
			r := start(NewZipkin(ZipkinConfig{Config: tcpConfig(false)}, e.rec, testLogger(t), e.reg))(t)
			code, _, b := post(t, "http://"+r.Addr().String()+"/api/v1/spans", tc.body(t), postOpts{contentType: tc.ct})
			if code != http.StatusAccepted {
				t.Fatalf("status %d: %s", code, b)
			}
			f, ok := e.rec.FindSpan("checkout")
			if !ok {
				t.Fatal("span not received")
			}
			wantAttrs(t, "resource", f.Resource.Attributes(), map[string]any{"service.name": "shop"})
			wantAttrs(t, "span", f.Span.Attributes(), map[string]any{"http.route": "/cart"})
			if f.Span.Kind() != ptrace.SpanKindServer {
				t.Errorf("kind = %v, want Server (from sr/ss)", f.Span.Kind())
			}
			if f.Span.SpanID() != (pcommon.SpanID{0, 0, 0, 0, 0, 0, 0, 0x33}) {
				t.Errorf("span ID = %v", f.Span.SpanID())
			}
		})
	}
}

func TestZipkinGarbage(t *testing.T) {
	e := newEnv()
	r := start(NewZipkin(ZipkinConfig{Config: tcpConfig(false)}, e.rec, testLogger(t), e.reg))(t)
	base := "http://" + r.Addr().String()
	for _, tc := range []struct{ path, ct, want string }{
		{"/api/v2/spans", "application/json", "zipkin: decoding Zipkin v2 JSON"},
		{"/api/v2/spans", "", "zipkin: decoding Zipkin v2 JSON"},
		{"/api/v2/spans", "application/x-protobuf", "zipkin: decoding Zipkin v2 protobuf"},
		{"/api/v1/spans", "application/json", "zipkin: decoding Zipkin v1 JSON"},
		{"/api/v1/spans", "application/x-thrift", "zipkin: decoding Zipkin v1 thrift"},
	} {
		code, _, b := post(t, base+tc.path, garbage, postOpts{contentType: tc.ct})
		if code != http.StatusBadRequest || !strings.Contains(string(b), tc.want) {
			t.Errorf("%s %s garbage: %d %q, want 400 %q", tc.path, tc.ct, code, b, tc.want)
		}
	}
	if code, _, _ := post(t, base+"/api/v2/spans", garbage, postOpts{contentType: "text/plain"}); code != http.StatusUnsupportedMediaType {
		t.Errorf("text/plain: %d, want 415", code)
	}
	if got := counter(r.m.refusedRequests.WithLabelValues(ProtocolZipkin, reasonMalformed)); got != 5 {
		t.Errorf("refused malformed = %v, want 5", got)
	}
	if code, _, b := post(t, base+"/api/v1/spans", []byte(zipkinV1JSON), postOpts{contentType: "application/json"}); code != http.StatusAccepted {
		t.Errorf("valid request after garbage: %d %s", code, b)
	}
	if e.rec.SpanCount() != 1 {
		t.Errorf("consumed %d spans, want 1", e.rec.SpanCount())
	}
}

func TestZipkinTLS(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	cfg := tcpConfig(false)
	cfg.TLS = &TLSConfig{CertFile: certFile, KeyFile: keyFile}
	e := newEnv()
	r := start(NewZipkin(ZipkinConfig{Config: cfg, ParseStringTags: true}, e.rec, testLogger(t), e.reg))(t)
	emitZipkinSpan(t, "https://"+r.Addr().String()+"/api/v2/spans", zipkinhttp.Client(tlsClient(pool)))
	f, ok := e.rec.FindSpan("checkout")
	if !ok {
		t.Fatal("span not received over TLS")
	}
	checkZipkinSpan(t, ingestFound(f), DefaultTenant, true)
}
