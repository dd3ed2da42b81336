package render

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	model "github.com/jaegertracing/jaeger-idl/model/v1"
	jaegertranslator "github.com/open-telemetry/opentelemetry-collector-contrib/pkg/translator/jaeger"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tracectl/tracectl/internal/otlptest"
)

// fromJaegerJSON reads Jaeger query JSON back into Jaeger model batches
// (one per process), written independently of WriteJaegerJSON from the
// format's documented shape.
func fromJaegerJSON(t *testing.T, data []byte) []*model.Batch {
	t.Helper()
	var resp struct {
		Data []struct {
			TraceID   string `json:"traceID"`
			Spans     []map[string]json.RawMessage
			Processes map[string]struct {
				ServiceName string            `json:"serviceName"`
				Tags        []json.RawMessage `json:"tags"`
			} `json:"processes"`
		} `json:"data"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&resp); err != nil {
		t.Fatal(err)
	}
	kv := func(raw json.RawMessage) model.KeyValue {
		var x struct {
			Key   string      `json:"key"`
			Type  string      `json:"type"`
			Value json.Number `json:"-"`
			V     any         `json:"value"`
		}
		d := json.NewDecoder(bytes.NewReader(raw))
		d.UseNumber()
		if err := d.Decode(&x); err != nil {
			t.Fatal(err)
		}
		switch x.Type {
		case "string":
			return model.String(x.Key, x.V.(string))
		case "bool":
			return model.Bool(x.Key, x.V.(bool))
		case "int64":
			n, err := x.V.(json.Number).Int64()
			if err != nil {
				t.Fatal(err)
			}
			return model.Int64(x.Key, n)
		case "float64":
			f, err := x.V.(json.Number).Float64()
			if err != nil {
				t.Fatal(err)
			}
			return model.Float64(x.Key, f)
		case "binary":
			b, err := base64.StdEncoding.DecodeString(x.V.(string))
			if err != nil {
				t.Fatal(err)
			}
			return model.Binary(x.Key, b)
		}
		t.Fatalf("tag type %q", x.Type)
		return model.KeyValue{}
	}
	var batches []*model.Batch
	for _, tr := range resp.Data {
		byPID := map[string]*model.Batch{}
		for pid, p := range tr.Processes {
			proc := &model.Process{ServiceName: p.ServiceName}
			for _, raw := range p.Tags {
				proc.Tags = append(proc.Tags, kv(raw))
			}
			byPID[pid] = &model.Batch{Process: proc}
			batches = append(batches, byPID[pid])
		}
		for _, raw := range tr.Spans {
			var s struct {
				TraceID, SpanID, OperationName, ProcessID string
				StartTime, Duration                       uint64
				Flags                                     uint32
				References                                []struct{ RefType, TraceID, SpanID string }
				Tags                                      []json.RawMessage
				Logs                                      []struct {
					Timestamp uint64
					Fields    []json.RawMessage
				}
			}
			b, _ := json.Marshal(raw)
			if err := json.Unmarshal(b, &s); err != nil {
				t.Fatal(err)
			}
			tid, err := model.TraceIDFromString(s.TraceID)
			if err != nil {
				t.Fatal(err)
			}
			sid, err := model.SpanIDFromString(s.SpanID)
			if err != nil {
				t.Fatal(err)
			}
			sp := &model.Span{TraceID: tid, SpanID: sid, OperationName: s.OperationName, Flags: model.Flags(s.Flags),
				StartTime: time.UnixMicro(int64(s.StartTime)), Duration: time.Duration(s.Duration) * time.Microsecond}
			for _, r := range s.References {
				rt, _ := model.TraceIDFromString(r.TraceID)
				rs, _ := model.SpanIDFromString(r.SpanID)
				typ := model.SpanRefType_CHILD_OF
				if r.RefType == "FOLLOWS_FROM" {
					typ = model.SpanRefType_FOLLOWS_FROM
				}
				sp.References = append(sp.References, model.SpanRef{TraceID: rt, SpanID: rs, RefType: typ})
			}
			for _, raw := range s.Tags {
				sp.Tags = append(sp.Tags, kv(raw))
			}
			for _, l := range s.Logs {
				lg := model.Log{Timestamp: time.UnixMicro(int64(l.Timestamp))}
				for _, raw := range l.Fields {
					lg.Fields = append(lg.Fields, kv(raw))
				}
				sp.Logs = append(sp.Logs, lg)
			}
			bt, ok := byPID[s.ProcessID]
			if !ok {
				t.Fatalf("span %s points to process %q, not in processes", s.SpanID, s.ProcessID)
			}
			bt.Spans = append(bt.Spans, sp)
		}
	}
	return batches
}

// TestJaegerJSONRoundTrip: what Jaeger UI would load from our file holds
// everything of the Jaeger model of the trace: read back and turned into
// OTLP by the Collector's translator, it equals the trace sent through the
// translator both ways directly. Times are cut to microseconds first, the
// resolution of Jaeger's JSON.
func TestJaegerJSONRoundTrip(t *testing.T) {
	c := otlptest.LoadCorpus(t)
	cases := map[string]ptrace.Traces{"gen2000": genTrace(2000, 2000)}
	for _, l := range []string{"P00", "P01", "P06", "P08", "P09", "P11", "P14", "P16", "P19"} {
		cases[l] = c.ByID[otlptest.IDOf(l)]
	}
	for name, td := range cases {
		td = toMicroseconds(td)
		want, err := jaegertranslator.ProtoToTraces(jaegertranslator.ProtoFromTraces(td))
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := WriteJaegerJSON(&buf, td); err != nil {
			t.Fatal(err)
		}
		batches := fromJaegerJSON(t, buf.Bytes())
		back, err := jaegertranslator.ProtoToTraces(batches)
		if err != nil {
			t.Fatal(err)
		}
		if back.SpanCount() != td.SpanCount() {
			t.Errorf("%s: %d spans back of %d", name, back.SpanCount(), td.SpanCount())
		}
		if d := otlptest.Diff(want, back); d != nil {
			t.Errorf("%s: the Jaeger JSON does not carry the trace:\n%s", name, strings.Join(d, "\n"))
		}
	}
}

func TestJaegerJSONShape(t *testing.T) {
	c := otlptest.LoadCorpus(t)
	var buf bytes.Buffer
	// P16: two resources named checkout (different pods) are two processes;
	// P04: a trace ID with leading zero bytes keeps all 32 digits.
	for _, l := range []string{"P16", "P04"} {
		buf.Reset()
		if err := WriteJaegerJSON(&buf, c.ByID[otlptest.IDOf(l)]); err != nil {
			t.Fatal(err)
		}
		var resp jaegerResponse
		if err := json.Unmarshal(buf.Bytes(), &resp); err != nil {
			t.Fatal(err)
		}
		if len(resp.Data) != 1 {
			t.Fatalf("%s: %d traces", l, len(resp.Data))
		}
		tr := resp.Data[0]
		switch l {
		case "P16":
			n := 0
			for _, p := range tr.Processes {
				if p.ServiceName == "checkout" {
					n++
				}
			}
			if n != 2 || len(tr.Processes) != 3 {
				t.Errorf("P16: %d checkout processes of %d, want 2 of 3", n, len(tr.Processes))
			}
		case "P04":
			if tr.TraceID != "00000f1e2d3c4b5a6978877665544332" {
				t.Errorf("P04 trace ID %q", tr.TraceID)
			}
		}
		for _, s := range tr.Spans {
			if _, ok := tr.Processes[s.ProcessID]; !ok {
				t.Errorf("%s: span %s has process %q, not listed", l, s.SpanID, s.ProcessID)
			}
			if len(s.SpanID) != 16 {
				t.Errorf("%s: span ID %q", l, s.SpanID)
			}
		}
	}
	buf.Reset()
	if err := WriteJaegerJSON(&buf, ptrace.NewTraces()); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(buf.String(), `{"data":[]`) {
		t.Errorf("empty trace: %s", buf.String())
	}
}

// toMicroseconds returns a copy of td with span and event times cut to
// whole microseconds.
func toMicroseconds(in ptrace.Traces) ptrace.Traces {
	td := ptrace.NewTraces()
	in.CopyTo(td)
	us := func(ts pcommon.Timestamp) pcommon.Timestamp { return ts / 1000 * 1000 }
	forEachSpan(td, func(s ptrace.Span) {
		s.SetStartTimestamp(us(s.StartTimestamp()))
		s.SetEndTimestamp(us(s.EndTimestamp()))
		for i := 0; i < s.Events().Len(); i++ {
			s.Events().At(i).SetTimestamp(us(s.Events().At(i).Timestamp()))
		}
	})
	return td
}
