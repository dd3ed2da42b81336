package main

import (
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/protobuf/encoding/protowire"
)

// Every template's traceRefs point at the rewritten trace IDs of the
// rendered request, count exactly its distinct span IDs per trace, and know
// each trace's size in the corpus (distinct span IDs: the corpus sends a
// span twice, readers return it once).
func TestTemplateTraceRefs(t *testing.T) {
	c := testCorpus(t)
	if err := c.buildTemplates(700, 3, 7); err != nil {
		t.Fatal(err)
	}
	type spanKey struct {
		t pcommon.TraceID
		s pcommon.SpanID
	}
	full := map[pcommon.TraceID]int{} // distinct spans per trace over two cycles
	fullSeen := map[spanKey]bool{}
	dups := 0
	refFull := map[pcommon.TraceID]int32{}
	var buf []byte
	nt := uint64(len(c.templates))
	for n := uint64(0); n < 2*nt; n++ {
		buf, _ = c.render(buf, n, 0)
		req := ptraceotlp.NewExportRequest()
		if err := req.UnmarshalProto(buf); err != nil {
			t.Fatal(err)
		}
		got := map[pcommon.TraceID]int{}
		seen := map[spanKey]bool{}
		rss := req.Traces().ResourceSpans()
		for i := 0; i < rss.Len(); i++ {
			for j := 0; j < rss.At(i).ScopeSpans().Len(); j++ {
				sp := rss.At(i).ScopeSpans().At(j).Spans()
				for k := 0; k < sp.Len(); k++ {
					id := sp.At(k).TraceID()
					if id.IsEmpty() {
						continue
					}
					key := spanKey{id, sp.At(k).SpanID()}
					if !seen[key] {
						seen[key] = true
						got[id]++
					}
					if !fullSeen[key] {
						fullSeen[key] = true
						full[id]++
					} else {
						dups++
					}
				}
			}
		}
		refs := map[pcommon.TraceID]int{}
		for _, r := range c.templates[n%nt].traces {
			var id pcommon.TraceID
			copy(id[:], buf[r.off:])
			if _, dup := refs[id]; dup {
				t.Fatalf("request %d: trace %s listed twice", n, id)
			}
			refs[id] = int(r.spans)
			refFull[id] = r.full
		}
		if len(refs) != len(got) {
			t.Fatalf("request %d: %d trace refs, %d traces", n, len(refs), len(got))
		}
		for id, k := range got {
			if refs[id] != k {
				t.Fatalf("request %d: trace %s has %d spans, ref says %d", n, id, k, refs[id])
			}
		}
	}
	for id, k := range full {
		if int(refFull[id]) != k {
			t.Fatalf("trace %s: %d spans sent, ref says the whole trace has %d", id, k, refFull[id])
		}
	}
	if dups == 0 {
		t.Log("the corpus sent no span twice: the distinct-span counting is untested")
	}
	if len(c.services) == 0 || c.services[0] == "" {
		t.Fatalf("services: %q", c.services)
	}
}

func TestCountTraceByIDSpans(t *testing.T) {
	td := ptrace.NewTraces()
	for range 2 {
		ss := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty()
		for range 3 {
			ss.Spans().AppendEmpty().SetName("x")
		}
	}
	trace, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(td)
	if err != nil {
		t.Fatal(err)
	}
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendBytes(b, trace)
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	b = protowire.AppendBytes(b, nil)
	if n, partial, err := countTraceByIDSpans(b); err != nil || n != 6 || partial {
		t.Fatalf("got %d spans, partial %v, err %v; want 6, false, nil", n, partial, err)
	}
	b = protowire.AppendTag(b, 3, protowire.VarintType)
	b = protowire.AppendVarint(b, 1)
	if _, partial, _ := countTraceByIDSpans(b); !partial {
		t.Fatal("status PARTIAL not seen")
	}
	// Tempo's miss: 0a 00 12 00.
	if n, _, err := countTraceByIDSpans([]byte{0x0a, 0, 0x12, 0}); err != nil || n != 0 {
		t.Fatalf("miss: got %d spans, err %v", n, err)
	}
}
