package jaegeres

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/jaegertracing/jaeger/model"
	jaegertranslator "github.com/open-telemetry/opentelemetry-collector-contrib/pkg/translator/jaeger"
	"go.opentelemetry.io/collector/featuregate"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tracectl/tracectl/internal/testfix"
)

// canonical is td as the protobuf bytes of each resource, sorted: the
// contrib translator orders resources by map iteration.
func canonical(t *testing.T, td ptrace.Traces) []string {
	t.Helper()
	var out []string
	m := ptrace.ProtoMarshaler{}
	for _, rs := range td.ResourceSpans().All() {
		one := ptrace.NewTraces()
		rs.CopyTo(one.ResourceSpans().AppendEmpty())
		b, err := m.MarshalTraces(one)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(b))
	}
	slices.Sort(out)
	return out
}

// edgeSpans are spans with every tag the contrib translator treats
// specially, in the combinations its rules distinguish.
func edgeSpans() []*model.Span {
	start := time.Unix(1700000000, 123456000).UTC()
	tid := model.TraceID{High: 7, Low: 9}
	other := model.TraceID{Low: 3}
	procs := []*model.Process{
		{ServiceName: "svc", Tags: []model.KeyValue{model.String("hostname", "h1"), model.String("ip", "10.0.0.1"), model.String("jaeger.version", "Go-2.30.0"), model.String("z", "last")}},
		{ServiceName: "svc", Tags: []model.KeyValue{model.String("hostname", "h2"), model.String("host.name", "explicit"), model.Int64("jaeger.version", 3), model.String("opencensus.exporterversion", "x")}},
		{ServiceName: "OTLPResourceNoServiceName", Tags: []model.KeyValue{model.String("a", "b")}},
		{ServiceName: "", Tags: nil},
		{ServiceName: "", Tags: []model.KeyValue{}},
		{ServiceName: "", Tags: []model.KeyValue{model.String("k", "v"), model.Int64("hostname", 5)}},
		{ServiceName: "dup", Tags: []model.KeyValue{model.String("service.name", "override"), model.String("a", "1"), model.String("a", "2")}},
		nil,
	}
	tagSets := [][]model.KeyValue{
		nil,
		{model.Bool("error", true), model.String("otel.status_description", "boom"), model.String("http.status_message", "nope")},
		{model.Bool("error", true), model.String("http.status_message", "nope"), model.String("span.kind", "client")},
		{model.String("error", "true"), model.Int64("http.status_code", 503)},
		{model.Bool("error", false), model.String("otel.status_code", "ok"), model.String("otel.status_description", "fine")},
		{model.Bool("error", true), model.String("otel.status_code", "OK"), model.String("otel.status_description", "kept")},
		{model.String("otel.status_code", "Error")},
		{model.String("otel.status_code", "unset"), model.Int64("http.status_code", 500)},
		{model.Int64("http.status_code", 404), model.String("span.kind", "client"), model.String("http.status_message", "Not Found")},
		{model.Int64("http.status_code", 404), model.String("span.kind", "server")},
		{model.String("http.status_code", "404"), model.String("span.kind", "producer")},
		{model.String("http.status_code", "x404"), model.String("span.kind", "consumer")},
		{model.Float64("http.status_code", 500), model.String("span.kind", "internal")},
		{model.Int64("http.status_code", 200), model.Int64("http.response.status_code", 502)},
		{model.Int64("http.response.status_code", 399), model.String("http.status_message", "m")},
		{model.Int64("http.status_code", 99)},
		{model.String("w3c.tracestate", "k=v"), model.Int64("span.kind", 2)},
		{model.Int64("w3c.tracestate", 1), model.String("span.kind", "bogus")},
		{model.String("otel.scope.name", "lib"), model.String("a", "x"), model.String("otel.scope.version", "1.0"), model.String("otel.scope.version", "2.0")},
		{model.String("otel.scope.name", "lib"), model.String("otel.scope.name", "lib2"), model.String("otel.scope.version", "1.0")},
		{model.String("otel.scope.version", "orphan"), model.String("b", "y")},
		{model.Int64("otel.scope.name", 5)},
		{model.String("a", "1"), model.Int64("b", 2), model.String("a", "3"), model.Float64("c", 1.5), model.Bool("d", true), model.Binary("e", []byte{1, 2, 3})},
		{{Key: "weird", VType: model.ValueType(42)}, {Key: "span.kind", VType: model.ValueType(17)}},
		{model.String("span.kind", "server"), model.String("error", "x"), model.String("a", "1"), model.String("b", "2")},
	}
	logSets := [][]model.Log{
		nil,
		{{Timestamp: start.Add(time.Millisecond)}},
		{{Timestamp: start.Add(time.Millisecond), Fields: []model.KeyValue{model.String("event", "cache miss"), model.String("key", "k1"), model.Int64("http.status_code", 500)}}},
		{{Timestamp: start, Fields: []model.KeyValue{model.Int64("event", 3), model.String("message", "m")}}, {Timestamp: start.Add(time.Second), Fields: []model.KeyValue{model.String("event", "only")}}},
	}
	refSets := [][]model.SpanRef{
		nil,
		{{TraceID: tid, SpanID: 1, RefType: model.ChildOf}},
		{{TraceID: tid, SpanID: 1, RefType: model.FollowsFrom}},
		{{TraceID: other, SpanID: 1, RefType: model.ChildOf}, {TraceID: tid, SpanID: 2, RefType: model.ChildOf}, {TraceID: tid, SpanID: 3, RefType: model.FollowsFrom}},
		{{TraceID: tid, SpanID: 4, RefType: model.FollowsFrom}, {TraceID: other, SpanID: 4, RefType: model.ChildOf}},
		{{TraceID: tid, SpanID: 5, RefType: model.ChildOf}, {TraceID: tid, SpanID: 5, RefType: model.ChildOf}},
	}
	var spans []*model.Span
	n := 0
	for i, tags := range tagSets {
		for j, logs := range logSets {
			n++
			spans = append(spans, &model.Span{
				TraceID: tid, SpanID: model.SpanID(100 + n), OperationName: fmt.Sprintf("op%d", n),
				Flags:     model.Flags(n % 3),
				StartTime: start.Add(time.Duration(n) * time.Millisecond), Duration: time.Duration(n) * time.Microsecond,
				Tags: slices.Clone(tags), Logs: logs, References: refSets[(i+j)%len(refSets)],
				Process: procs[(i+j)%len(procs)],
			})
		}
	}
	return spans
}

func cloneSpans(spans []*model.Span) []*model.Span {
	out := make([]*model.Span, len(spans))
	for i, sp := range spans {
		c := *sp
		c.Tags = slices.Clone(sp.Tags)
		out[i] = &c
	}
	return out
}

// TestTranslatorEqualsContrib: the translator gives, byte for byte, the
// OTLP data of the contrib translator, for every trace of the shared
// dataset and for spans with each special tag, under each setting of the
// contrib translator's HTTP feature gates; and it leaves the spans as
// they were.
func TestTranslatorEqualsContrib(t *testing.T) {
	traces := map[model.TraceID][]*model.Span{}
	dir := testfix.Path(t, "jaeger-es", "dataset")
	files, _ := filepath.Glob(filepath.Join(dir, "*span*.ndjson"))
	if len(files) == 0 {
		t.Fatalf("no span documents under %s", dir)
	}
	d := &Decoder{}
	docs := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(nil, 1<<24)
		for sc.Scan() {
			line := bytes.TrimSpace(sc.Bytes())
			if len(line) == 0 || !bytes.Contains(line, []byte(`"spanID"`)) {
				continue
			}
			sp, _, err := d.Decode(line)
			if err != nil {
				continue
			}
			docs++
			traces[sp.TraceID] = append(traces[sp.TraceID], sp)
		}
	}
	if docs < 1000 {
		t.Fatalf("only %d documents decoded", docs)
	}
	edge := edgeSpans()
	traces[edge[0].TraceID] = append(traces[edge[0].TraceID], edge...)

	reg := featuregate.GlobalRegistry()
	for _, g := range [][2]bool{{true, true}, {false, true}, {false, false}, {true, false}} {
		t.Run(fmt.Sprintf("DontEmitV0=%v,EmitV1=%v", g[0], g[1]), func(t *testing.T) {
			if err := reg.Set(gateDontEmitV0HTTP, g[0]); err != nil {
				t.Fatal(err)
			}
			if err := reg.Set(gateEmitV1HTTP, g[1]); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { reg.Set(gateDontEmitV0HTTP, true); reg.Set(gateEmitV1HTTP, true) })
			tr := newTranslator()
			for id, spans := range traces {
				before := cloneSpans(spans)
				got := tr.traces(spans)
				want, err := jaegertranslator.ProtoToTraces([]*model.Batch{{Spans: cloneSpans(spans)}})
				if err != nil {
					t.Fatal(err)
				}
				if g, w := canonical(t, got), canonical(t, want); !slices.Equal(g, w) {
					t.Fatalf("trace %s (%d spans): translated differently from the contrib translator", id, len(spans))
				}
				for i := range spans {
					if !reflect.DeepEqual(spans[i], before[i]) {
						t.Fatalf("trace %s: span %d changed by translating", id, i)
					}
				}
			}
		})
	}
}
