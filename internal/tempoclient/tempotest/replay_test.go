package tempotest

import (
	"strings"
	"testing"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/tracectl/tracectl/internal/otlptest"
)

// TestProtobufOfMatchesTempo: the protobuf the replay makes from a JSON
// recording carries what Tempo's own protobuf answer for the same trace
// carries (P00 was recorded both ways, v1 and v2).
func TestProtobufOfMatchesTempo(t *testing.T) {
	recs := map[string]*Exchange{}
	for _, ex := range Load(t) {
		recs[ex.Name] = ex
	}
	for _, api := range []string{"v1", "v2"} {
		jsonRec, pbRec := recs["trace-"+api+"-1-json"], recs["trace-"+api+"-1-protobuf"]
		if jsonRec == nil || pbRec == nil {
			t.Fatalf("%s recordings of trace 1 missing", api)
		}
		made, err := protobufOf(api, jsonRec.Body)
		if err != nil {
			t.Fatal(err)
		}
		want, wantMetrics := traceOf(t, api, pbRec.Body)
		got, gotMetrics := traceOf(t, api, made)
		if d := otlptest.Diff(want, got); d != nil {
			t.Errorf("%s: %s", api, strings.Join(d, "\n"))
		}
		if string(wantMetrics) != string(gotMetrics) {
			t.Errorf("%s: metrics %x, Tempo sent %x", api, gotMetrics, wantMetrics)
		}
	}
}

func traceOf(t *testing.T, api string, b []byte) (ptrace.Traces, []byte) {
	t.Helper()
	if api == "v1" {
		td, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(b)
		if err != nil {
			t.Fatal(err)
		}
		return td, nil
	}
	var trace, metrics []byte
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		b = b[n:]
		n = protowire.ConsumeFieldValue(num, typ, b)
		v, _ := protowire.ConsumeBytes(b)
		switch num {
		case 1:
			trace = v
		case 2:
			metrics = v
		}
		b = b[n:]
	}
	td, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(trace)
	if err != nil {
		t.Fatal(err)
	}
	return td, metrics
}
