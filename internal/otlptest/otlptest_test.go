package otlptest

import (
	"strings"
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

func TestLoadCorpus(t *testing.T) {
	c := LoadCorpus(t)
	if len(c.Lines) != 35 {
		t.Errorf("lines = %d, want 35", len(c.Lines))
	}
	if len(c.ByID) != 40 || len(c.IDs) != 40 {
		t.Fatalf("traces = %d (%d IDs), want 40", len(c.ByID), len(c.IDs))
	}
	distinct := 0
	for _, id := range c.IDs {
		if Label(id) == "" {
			t.Errorf("trace %s is not in the label table", id)
		}
		distinct += len(index(c.ByID[id])[id])
	}
	if distinct != 714 {
		t.Errorf("distinct spans = %d, want 714", distinct)
	}
	// P18's span B was sent twice: 4 copies of 3 distinct spans.
	p18 := c.ByID[IDOf("P18")]
	if n := p18.SpanCount(); n != 4 {
		t.Errorf("P18 span copies = %d, want 4", n)
	}
	// P03 comes from two lines: 10 spans once combined.
	if n := c.ByID[IDOf("P03")].SpanCount(); n != 10 {
		t.Errorf("P03 spans = %d, want 10", n)
	}
	if c.IDs[0] != IDOf("P05") || c.IDs[1] != IDOf("P04") {
		t.Errorf("IDs not in byte order: first %v", c.IDs[:2])
	}
}

// regroup puts every span under its own resourceSpans/scopeSpans, in reverse
// order: a different grouping of the same spans.
func regroup(td ptrace.Traces) ptrace.Traces {
	out := ptrace.NewTraces()
	rss := td.ResourceSpans()
	for i := rss.Len() - 1; i >= 0; i-- {
		rs := rss.At(i)
		for j := rs.ScopeSpans().Len() - 1; j >= 0; j-- {
			ss := rs.ScopeSpans().At(j)
			for k := ss.Spans().Len() - 1; k >= 0; k-- {
				nrs := out.ResourceSpans().AppendEmpty()
				rs.Resource().CopyTo(nrs.Resource())
				// Reverse the resource attributes too: order must not matter.
				attrs := nrs.Resource().Attributes()
				raw := attrs.AsRaw()
				keys := make([]string, 0, attrs.Len())
				attrs.Range(func(k string, _ pcommon.Value) bool { keys = append(keys, k); return true })
				attrs.Clear()
				for x := len(keys) - 1; x >= 0; x-- {
					_ = attrs.PutEmpty(keys[x]).FromRaw(raw[keys[x]])
				}
				nss := nrs.ScopeSpans().AppendEmpty()
				ss.Scope().CopyTo(nss.Scope())
				ss.Spans().At(k).CopyTo(nss.Spans().AppendEmpty())
			}
		}
	}
	return out
}

func TestEqualIgnoresGroupingAndOrder(t *testing.T) {
	c := LoadCorpus(t)
	all := Merge(c.Lines...)
	if d := Diff(all, regroup(all), CountDuplicates()); d != nil {
		t.Fatalf("regrouped corpus differs:\n%s", strings.Join(d, "\n"))
	}
	var parts []ptrace.Traces
	for _, id := range c.IDs {
		parts = append(parts, c.ByID[id])
	}
	if d := Diff(all, Merge(parts...), CountDuplicates()); d != nil {
		t.Fatalf("per-trace corpus differs from the lines:\n%s", strings.Join(d, "\n"))
	}
}

// firstSpan returns the first span of td with the given name, and its scope
// and resource.
func find(t *testing.T, td ptrace.Traces, name string) (ptrace.ResourceSpans, ptrace.ScopeSpans, ptrace.Span) {
	t.Helper()
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		for j := 0; j < rss.At(i).ScopeSpans().Len(); j++ {
			ss := rss.At(i).ScopeSpans().At(j)
			for k := 0; k < ss.Spans().Len(); k++ {
				if sp := ss.Spans().At(k); sp.Name() == name {
					return rss.At(i), ss, sp
				}
			}
		}
	}
	t.Fatalf("no span named %q", name)
	panic("unreachable")
}

func TestDiffCatchesEveryKindOfChange(t *testing.T) {
	c := LoadCorpus(t)
	p01 := c.ByID[IDOf("P01")] // every attribute type, events and links
	p06 := c.ByID[IDOf("P06")] // events, links, dropped counts, trace state
	p18 := c.ByID[IDOf("P18")] // a duplicated span

	type mutation struct {
		name   string
		base   ptrace.Traces
		mutate func(td ptrace.Traces)
		want   string // a substring of the first difference
		opts   []Option
	}
	// spanWith returns the first span that has events and links, from td.
	spanWithEventsAndLinks := func(td ptrace.Traces) (ptrace.ResourceSpans, ptrace.ScopeSpans, ptrace.Span) {
		rss := td.ResourceSpans()
		for i := 0; i < rss.Len(); i++ {
			for j := 0; j < rss.At(i).ScopeSpans().Len(); j++ {
				ss := rss.At(i).ScopeSpans().At(j)
				for k := 0; k < ss.Spans().Len(); k++ {
					sp := ss.Spans().At(k)
					if sp.Events().Len() > 0 && sp.Links().Len() > 0 && sp.Events().At(0).Attributes().Len() > 0 && sp.Links().At(0).Attributes().Len() > 0 {
						return rss.At(i), ss, sp
					}
				}
			}
		}
		t.Fatal("no span with events and links")
		panic("unreachable")
	}
	sp := func(f func(ptrace.Span)) func(ptrace.Traces) {
		return func(td ptrace.Traces) { _, _, s := spanWithEventsAndLinks(td); f(s) }
	}
	firstAttr := func(m pcommon.Map) string {
		var key string
		m.Range(func(k string, _ pcommon.Value) bool { key = k; return false })
		return key
	}
	muts := []mutation{
		{"span name", p06, sp(func(s ptrace.Span) { s.SetName("renamed") }), `name: want`, nil},
		{"kind", p06, sp(func(s ptrace.Span) { s.SetKind(s.Kind()%5 + 1) }), `kind: want`, nil},
		{"parent", p06, sp(func(s ptrace.Span) { s.SetParentSpanID(pcommon.SpanID{1, 2, 3, 4, 5, 6, 7, 8}) }), `parent: want`, nil},
		{"trace state", p06, sp(func(s ptrace.Span) { s.TraceState().FromRaw("x=1") }), `trace_state: want`, nil},
		{"start", p06, sp(func(s ptrace.Span) { s.SetStartTimestamp(s.StartTimestamp() + 1) }), `start: want`, nil},
		{"end", p06, sp(func(s ptrace.Span) { s.SetEndTimestamp(s.EndTimestamp() - 1) }), `end: want`, nil},
		{"status code", p06, sp(func(s ptrace.Span) { s.Status().SetCode(ptrace.StatusCodeError) }), `status.code: want`, nil},
		{"status message", p06, sp(func(s ptrace.Span) { s.Status().SetMessage("boom") }), `status.message: want`, nil},
		{"dropped attributes", p06, sp(func(s ptrace.Span) { s.SetDroppedAttributesCount(s.DroppedAttributesCount() + 1) }), `dropped_attributes: want`, nil},
		{"dropped events", p06, sp(func(s ptrace.Span) { s.SetDroppedEventsCount(s.DroppedEventsCount() + 1) }), `dropped_events: want`, nil},
		{"dropped links", p06, sp(func(s ptrace.Span) { s.SetDroppedLinksCount(s.DroppedLinksCount() + 1) }), `dropped_links: want`, nil},
		{"attribute value", p01, func(td ptrace.Traces) {
			_, _, s := find(t, td, "attribute zoo")
			s.Attributes().PutStr("span.string", "changed")
		}, `attr[span.string]: want str "hello", got str "changed"`, nil},
		{"attribute type", p01, func(td ptrace.Traces) {
			_, _, s := find(t, td, "attribute zoo")
			s.Attributes().PutStr("span.int", "42")
		}, `attr[span.int]: want int 42, got str "42"`, nil},
		{"attribute removed", p01, func(td ptrace.Traces) {
			_, _, s := find(t, td, "attribute zoo")
			s.Attributes().Remove("span.bool.false")
		}, `attr[span.bool.false] missing`, nil},
		{"attribute added", p01, func(td ptrace.Traces) {
			_, _, s := find(t, td, "attribute zoo")
			s.Attributes().PutBool("extra", true)
		}, `unexpected attr[extra]`, nil},
		{"bytes value", p01, func(td ptrace.Traces) {
			_, _, s := find(t, td, "attribute zoo")
			s.Attributes().PutEmptyBytes("span.bytes").FromRaw([]byte{1})
		}, `attr[span.bytes]: want bytes 0x`, nil},
		{"array element", p01, func(td ptrace.Traces) {
			_, _, s := find(t, td, "attribute zoo")
			v, _ := s.Attributes().Get("span.array.int")
			v.Slice().At(1).SetInt(99)
		}, `attr[span.array.int]`, nil},
		{"kvlist entry", p01, func(td ptrace.Traces) {
			_, _, s := find(t, td, "attribute zoo")
			v, _ := s.Attributes().Get("span.kvlist")
			v.Map().PutStr("k1", "other")
		}, `attr[span.kvlist]`, nil},
		{"double", p01, func(td ptrace.Traces) {
			_, _, s := find(t, td, "attribute zoo")
			s.Attributes().PutDouble("span.double", 3.2500001)
		}, `attr[span.double]`, nil},
		{"event time", p06, sp(func(s ptrace.Span) { s.Events().At(0).SetTimestamp(s.Events().At(0).Timestamp() + 1) }), `event[0].time: want`, nil},
		{"event name", p06, sp(func(s ptrace.Span) { s.Events().At(0).SetName("x") }), `event[0].name: want`, nil},
		{"event attribute", p06, sp(func(s ptrace.Span) {
			a := s.Events().At(0).Attributes()
			a.PutInt(firstAttr(a), -1)
		}), `event[0].attr[`, nil},
		{"event dropped", p06, sp(func(s ptrace.Span) {
			s.Events().At(0).SetDroppedAttributesCount(s.Events().At(0).DroppedAttributesCount() + 1)
		}), `event[0].dropped_attributes: want`, nil},
		{"event removed", p06, sp(func(s ptrace.Span) { s.Events().RemoveIf(func(e ptrace.SpanEvent) bool { return true }) }), `events: want`, nil},
		{"link trace", p06, sp(func(s ptrace.Span) { s.Links().At(0).SetTraceID(pcommon.TraceID{9}) }), `link[0].trace_id: want`, nil},
		{"link span", p06, sp(func(s ptrace.Span) { s.Links().At(0).SetSpanID(pcommon.SpanID{9}) }), `link[0].span_id: want`, nil},
		{"link trace state", p06, sp(func(s ptrace.Span) { s.Links().At(0).TraceState().FromRaw("changed=1") }), `link[0].trace_state: want`, nil},
		{"link attribute", p06, sp(func(s ptrace.Span) {
			a := s.Links().At(0).Attributes()
			a.PutStr(firstAttr(a), "changed")
		}), `link[0].attr[`, nil},
		{"link dropped", p06, sp(func(s ptrace.Span) {
			s.Links().At(0).SetDroppedAttributesCount(s.Links().At(0).DroppedAttributesCount() + 1)
		}), `link[0].dropped_attributes: want`, nil},
		{"resource attribute", p06, func(td ptrace.Traces) {
			rs, _, _ := spanWithEventsAndLinks(td)
			rs.Resource().Attributes().PutStr("service.name", "other")
		}, `resource.attr[service.name]: want`, nil},
		{"resource dropped", p06, func(td ptrace.Traces) {
			rs, _, _ := spanWithEventsAndLinks(td)
			rs.Resource().SetDroppedAttributesCount(rs.Resource().DroppedAttributesCount() + 1)
		}, `resource.dropped_attributes: want`, nil},
		{"scope name", p06, func(td ptrace.Traces) {
			_, ss, _ := spanWithEventsAndLinks(td)
			ss.Scope().SetName("other")
		}, `scope.name: want`, nil},
		{"scope version", p06, func(td ptrace.Traces) {
			_, ss, _ := spanWithEventsAndLinks(td)
			ss.Scope().SetVersion("9.9")
		}, `scope.version: want`, nil},
		{"scope attribute", p01, func(td ptrace.Traces) {
			_, ss, _ := find(t, td, "attribute zoo")
			ss.Scope().Attributes().PutInt("scope.int", 43)
		}, `scope.attr[scope.int]: want int 42, got int 43`, nil},
		{"scope dropped", p06, func(td ptrace.Traces) {
			_, ss, _ := spanWithEventsAndLinks(td)
			ss.Scope().SetDroppedAttributesCount(ss.Scope().DroppedAttributesCount() + 1)
		}, `scope.dropped_attributes: want`, nil},
		{"span removed", p06, func(td ptrace.Traces) {
			_, ss, s := spanWithEventsAndLinks(td)
			name := s.Name()
			ss.Spans().RemoveIf(func(x ptrace.Span) bool { return x.Name() == name })
		}, `span missing`, nil},
		{"trace removed", p06, func(td ptrace.Traces) { td.ResourceSpans().RemoveIf(func(ptrace.ResourceSpans) bool { return true }) }, `trace missing`, nil},
		{"span added", p06, func(td ptrace.Traces) {
			_, ss, s := spanWithEventsAndLinks(td)
			n := ss.Spans().AppendEmpty()
			s.CopyTo(n)
			n.SetSpanID(pcommon.SpanID{0xff})
		}, `unexpected span`, nil},
		{"duplicate dropped", p18, func(td ptrace.Traces) {
			// Remove the second copy of "scan index".
			seen := false
			rss := td.ResourceSpans()
			for i := 0; i < rss.Len(); i++ {
				for j := 0; j < rss.At(i).ScopeSpans().Len(); j++ {
					rss.At(i).ScopeSpans().At(j).Spans().RemoveIf(func(s ptrace.Span) bool {
						if s.Name() != "scan index" {
							return false
						}
						if seen {
							return true
						}
						seen = true
						return false
					})
				}
			}
		}, `stored 1 times, want 2`, []Option{CountDuplicates()}},
	}
	for _, m := range muts {
		t.Run(m.name, func(t *testing.T) {
			got := Merge(m.base)
			if d := Diff(m.base, got, m.opts...); d != nil {
				t.Fatalf("an unchanged copy differs: %v", d)
			}
			m.mutate(got)
			d := Diff(m.base, got, m.opts...)
			if len(d) == 0 {
				t.Fatalf("the change went unnoticed")
			}
			if !strings.Contains(strings.Join(d, "\n"), m.want) {
				t.Errorf("differences do not mention %q:\n%s", m.want, strings.Join(d, "\n"))
			}
		})
	}
}

func TestDuplicatesCollapseByDefault(t *testing.T) {
	c := LoadCorpus(t)
	p18 := c.ByID[IDOf("P18")]
	// The corpus holds P18's span B twice; a reader that keeps one copy
	// passes by default and fails with CountDuplicates.
	one := SplitByTrace(c.Lines[23])[IDOf("P18")] // line 24: spans A, B
	other := SplitByTrace(c.Lines[24])[IDOf("P18")]
	other.ResourceSpans().At(0).ScopeSpans().At(0).Spans().RemoveIf(func(s ptrace.Span) bool { return s.Name() == "scan index" })
	dedup := Merge(one, other)
	if dedup.SpanCount() != 3 {
		t.Fatalf("test setup: %d spans, want 3", dedup.SpanCount())
	}
	if d := Diff(p18, dedup); d != nil {
		t.Errorf("default options: %v", d)
	}
	if d := Diff(p18, dedup, CountDuplicates()); d == nil {
		t.Errorf("CountDuplicates accepted a missing copy")
	}
}

func TestMaxDiffs(t *testing.T) {
	c := LoadCorpus(t)
	want := c.ByID[IDOf("P09")]
	got := Merge(want)
	rss := got.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		for j := 0; j < rss.At(i).ScopeSpans().Len(); j++ {
			spans := rss.At(i).ScopeSpans().At(j).Spans()
			for k := 0; k < spans.Len(); k++ {
				spans.At(k).SetName("x")
			}
		}
	}
	d := Diff(want, got, MaxDiffs(5))
	if len(d) != 6 || !strings.Contains(d[5], "and 55 more") {
		t.Errorf("got %d lines, last %q", len(d), d[len(d)-1])
	}
}

func TestLongValuesShortened(t *testing.T) {
	long := strings.Repeat("a", 10000)
	a := ptrace.NewTraces()
	s := a.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	s.SetTraceID(pcommon.TraceID{1})
	s.SetSpanID(pcommon.SpanID{1})
	s.Attributes().PutStr("k", long)
	b := Merge(a)
	b.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).Attributes().PutStr("k", long+"b")
	d := Diff(a, b)
	if len(d) != 1 || len(d[0]) > 600 || !strings.Contains(d[0], "differ from byte 10005") {
		t.Errorf("diff = %q", d)
	}
}
