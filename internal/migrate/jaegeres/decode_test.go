package jaegeres

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/gogo/protobuf/jsonpb"
	"github.com/jaegertracing/jaeger/model"
	jaegertranslator "github.com/open-telemetry/opentelemetry-collector-contrib/pkg/translator/jaeger"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tracectl/tracectl/internal/otlptest"
	"github.com/tracectl/tracectl/internal/testfix"
)

func readFixture(t *testing.T, elem ...string) []byte {
	t.Helper()
	b, err := os.ReadFile(testfix.Path(t, append([]string{"jaeger-es"}, elem...)...))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDecodeMatchesJaegerDomain: Jaeger v1.62's own fixture pair, the ES
// document and the model.Span its dbmodel.ToDomain produces.
func TestDecodeMatchesJaegerDomain(t *testing.T) {
	var want model.Span
	if err := jsonpb.Unmarshal(bytes.NewReader(readFixture(t, "jaeger", "v1.62", "domain_01.json")), &want); err != nil {
		t.Fatal(err)
	}
	got, raw, err := (&Decoder{}).Decode(readFixture(t, "jaeger", "v1.62", "es_01.json"))
	if err != nil {
		t.Fatal(err)
	}
	if raw != "0000000000000001" {
		t.Errorf("raw trace ID %q", raw)
	}
	utc(&want)
	utc(got)
	if !reflect.DeepEqual(&want, got) {
		t.Errorf("decoded span differs from Jaeger's domain fixture:\nwant %+v\ngot  %+v", &want, got)
	}
}

func utc(s *model.Span) {
	s.StartTime = s.StartTime.UTC()
	for i := range s.Logs {
		s.Logs[i].Timestamp = s.Logs[i].Timestamp.UTC()
	}
}

// TestDecodeTranslatesLikeJaegerV2: the v2 writer's typed document, and the
// same with string values, both become the OTLP Jaeger v2's reader makes.
func TestDecodeTranslatesLikeJaegerV2(t *testing.T) {
	want, err := (&ptrace.JSONUnmarshaler{}).UnmarshalTraces(readFixture(t, "jaeger", "v2", "otel_traces_01.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"es_01_typed.json", "es_01_string_tags.json"} {
		t.Run(name, func(t *testing.T) {
			sp, _, err := (&Decoder{}).Decode(readFixture(t, "jaeger", "v2", name))
			if err != nil {
				t.Fatal(err)
			}
			got, err := jaegertranslator.ProtoToTraces([]*model.Batch{{Spans: []*model.Span{sp}}})
			if err != nil {
				t.Fatal(err)
			}
			otlptest.AssertEqual(t, want, got)
		})
	}
}

func TestDecodeVariants(t *testing.T) {
	d := &Decoder{}
	// tags-as-fields, legacy IDs without leading zeros, parentSpanID only.
	doc := `{"traceID":"a82c1a528d2932f","spanID":"1f","parentSpanID":"2","flags":1,"operationName":"op",
	 "references":null,"startTime":1795105885785029,"startTimeMillis":1795105885785,"duration":7,
	 "tags":[{"key":"b","type":"binary","value":"00ff"}],
	 "tag":{"http@status_code":200,"ratio":0.5,"whole":1.0,"ok":true,"s":"x"},
	 "logs":null,"process":{"serviceName":"svc","tags":null,"tag":{"host@name":"h","pid":7}}}`
	sp, raw, err := d.Decode([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if raw != "a82c1a528d2932f" || sp.TraceID != (model.TraceID{Low: 0xa82c1a528d2932f}) || sp.SpanID != 0x1f {
		t.Errorf("ids: %q %v %v", raw, sp.TraceID, sp.SpanID)
	}
	if sp.ParentSpanID() != 2 {
		t.Errorf("parent %v, want 2", sp.ParentSpanID())
	}
	if sp.StartTime.UnixMicro() != 1795105885785029 || sp.Duration.Microseconds() != 7 {
		t.Errorf("times %v %v", sp.StartTime, sp.Duration)
	}
	tags := map[string]model.KeyValue{}
	for _, kv := range sp.Tags {
		tags[kv.Key] = kv
	}
	for k, want := range map[string]model.KeyValue{
		"b":                model.Binary("b", []byte{0, 0xff}),
		"http.status_code": model.Int64("http.status_code", 200),
		"ratio":            model.Float64("ratio", 0.5),
		"whole":            model.Int64("whole", 1),
		"ok":               model.Bool("ok", true),
		"s":                model.String("s", "x"),
	} {
		if !reflect.DeepEqual(tags[k], want) {
			t.Errorf("tag %s = %+v, want %+v", k, tags[k], want)
		}
	}
	if sp.Process.ServiceName != "svc" || len(sp.Process.Tags) != 2 || !reflect.DeepEqual(sp.Process.Tags, []model.KeyValue{model.String("host.name", "h"), model.Int64("pid", 7)}) {
		t.Errorf("process %+v", sp.Process)
	}

	// 128-bit legacy: the high half without leading zeros.
	sp, _, err = d.Decode([]byte(`{"traceID":"6f186d58000000000000000a","spanID":"1","startTime":1,"duration":1}`))
	if err != nil || sp.TraceID != (model.TraceID{High: 0x6f186d58, Low: 10}) {
		t.Errorf("128-bit legacy: %v %v", sp, err)
	}
	// Large int64 and µs values keep every digit.
	sp, _, err = d.Decode([]byte(`{"traceID":"1","spanID":"1","startTime":1795105885785029,"duration":1,"tags":[{"key":"n","type":"int64","value":9007199254740993},{"key":"s","type":"int64","value":"-9007199254740993"},{"key":"f","type":"float64","value":"1.5e+21"}]}`))
	if err != nil || sp.Tags[0].VInt64 != 9007199254740993 || sp.Tags[1].VInt64 != -9007199254740993 || sp.Tags[2].VFloat64 != 1.5e21 {
		t.Errorf("numbers: %+v %v", sp, err)
	}
}

func TestDecodeErrorsNameTheProblem(t *testing.T) {
	for doc, want := range map[string]string{
		`[]`:                           "not a JSON object",
		`{"spanID":"1","startTime":1}`: "no traceID",
		`{"traceID":"xyz","spanID":"1","startTime":1}`:                                                 "traceID \"xyz\"",
		`{"traceID":"1","spanID":"","startTime":1}`:                                                    "spanID",
		`{"traceID":"1","spanID":"1"}`:                                                                 "no startTime",
		`{"traceID":"1","spanID":"1","startTime":-5}`:                                                  "startTime",
		`{"traceID":"1","spanID":"1","startTime":1,"tags":[{"key":"a","type":"int64","value":"x"}]}`:   `tag "a": value "x" is not a valid int64`,
		`{"traceID":"1","spanID":"1","startTime":1,"tags":[{"key":"a","type":"bool","value":3}]}`:      `tag "a"`,
		`{"traceID":"1","spanID":"1","startTime":1,"tags":[{"key":"a","type":"weird","value":"x"}]}`:   `unknown type "weird"`,
		`{"traceID":"1","spanID":"1","startTime":1,"tags":[{"key":"a","type":"binary","value":"zz"}]}`: `not a valid binary`,
		`{"traceID":"1","spanID":"1","startTime":1,"references":[{"refType":"X","spanID":"1"}]}`:       `unknown refType "X"`,
		`{"traceID":"1","spanID":"1","startTime":1,"tags":[`:                                           "tags",
	} {
		_, _, err := (&Decoder{}).Decode([]byte(doc))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want an error containing %q", doc, err, want)
		}
	}
}

func TestTraceIDForms(t *testing.T) {
	id, _ := ParseTraceID("4764d19e2bc3")
	got := strings.Join(TraceIDForms(id), ",")
	if got != "000000000000000000004764d19e2bc3,00004764d19e2bc3,4764d19e2bc3" {
		t.Errorf("forms %s", got)
	}
	id, _ = ParseTraceID("0f186d580000000000000001")
	if got := strings.Join(TraceIDForms(id), ","); got != "000000000f186d580000000000000001,f186d580000000000000001" {
		t.Errorf("forms %s", got)
	}
}

func FuzzDecode(f *testing.F) {
	dir := filepath.Join("..", "..", "..", "..", "shared", "fixtures", "jaeger-es", "jaeger")
	for _, p := range []string{"v1.62/es_01.json", "v2/es_01_typed.json", "v2/es_01_string_tags.json"} {
		if b, err := os.ReadFile(filepath.Join(dir, p)); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(`{"traceID":"1","spanID":"1","startTime":1,"tag":{"a@b":1.5}}`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		sp, _, err := (&Decoder{}).Decode(doc)
		if err == nil && sp == nil {
			t.Fatal("nil span without error")
		}
		if err == nil {
			if _, err := jaegertranslator.ProtoToTraces([]*model.Batch{{Spans: []*model.Span{sp}}}); err != nil {
				t.Fatal(err)
			}
		}
	})
}
