package main

import (
	"path/filepath"
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
)

func testCorpus(t *testing.T) *corpusLoad {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := findFixtures("", root)
	if err != nil {
		t.Skip(err)
	}
	c, err := loadCorpus(filepath.Join(dir, "corpus", "public.otlp.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Rendered requests decode, keep every span, give each repetition fresh
// trace and span IDs, keep parent links within a repetition, and shift
// timestamps.
func TestRenderFreshIDs(t *testing.T) {
	c := testCorpus(t)
	const reps = 3
	if err := c.buildTemplates(700, reps, 7); err != nil {
		t.Fatal(err)
	}
	nt := uint64(len(c.templates))
	spansPerCycle := 0
	for _, tp := range c.templates {
		spansPerCycle += tp.spans
	}
	if spansPerCycle != reps*c.repSpans {
		t.Fatalf("a cycle holds %d spans, want %d", spansPerCycle, reps*c.repSpans)
	}
	const shift = int64(1e18)
	type key struct {
		trace pcommon.TraceID
		span  pcommon.SpanID
	}
	traces := map[pcommon.TraceID]bool{}
	spans := map[key]int{}
	var parents []key
	total := 0
	var buf []byte
	for n := uint64(0); n < 2*nt; n++ { // two cycles: 2*reps repetitions
		var sent int
		buf, sent = c.render(buf, n, shift)
		req := ptraceotlp.NewExportRequest()
		if err := req.UnmarshalProto(buf); err != nil {
			t.Fatalf("request %d: %v", n, err)
		}
		td := req.Traces()
		if td.SpanCount() != sent {
			t.Fatalf("request %d: %d spans decoded, %d reported", n, td.SpanCount(), sent)
		}
		total += sent
		forEachSpan(td, func(s ptrace.Span) {
			traces[s.TraceID()] = true
			spans[key{s.TraceID(), s.SpanID()}]++
			if !s.ParentSpanID().IsEmpty() {
				parents = append(parents, key{s.TraceID(), s.ParentSpanID()})
			}
			if s.StartTimestamp() != 0 && int64(s.StartTimestamp()) < shift {
				t.Fatalf("request %d: start time %d not shifted", n, s.StartTimestamp())
			}
		})
	}
	if total != 2*reps*c.repSpans {
		t.Fatalf("sent %d spans, want %d", total, 2*reps*c.repSpans)
	}
	if want := 2 * reps * 40; len(traces) != want {
		t.Fatalf("%d distinct trace IDs, want %d (40 per repetition)", len(traces), want)
	}
	if want := 2 * reps * 714; len(spans) != want {
		t.Fatalf("%d distinct (trace, span) IDs, want %d (714 per repetition)", len(spans), want)
	}
	// The corpus' parents that exist in the corpus still exist.
	orig := map[key]bool{}
	origParents := 0
	for _, td := range c.lines {
		forEachSpan(td, func(s ptrace.Span) { orig[key{s.TraceID(), s.SpanID()}] = true })
	}
	for _, td := range c.lines {
		forEachSpan(td, func(s ptrace.Span) {
			if !s.ParentSpanID().IsEmpty() && orig[key{s.TraceID(), s.ParentSpanID()}] {
				origParents++
			}
		})
	}
	found := 0
	for _, p := range parents {
		if spans[p] > 0 {
			found++
		}
	}
	if found != 2*reps*origParents {
		t.Fatalf("%d parent links resolve, want %d", found, 2*reps*origParents)
	}
}

func forEachSpan(td ptrace.Traces, fn func(ptrace.Span)) {
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		sss := rss.At(i).ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			sp := sss.At(j).Spans()
			for k := 0; k < sp.Len(); k++ {
				fn(sp.At(k))
			}
		}
	}
}

func BenchmarkRender(b *testing.B) {
	root, _ := moduleRoot()
	dir, err := findFixtures("", root)
	if err != nil {
		b.Skip(err)
	}
	c, err := loadCorpus(filepath.Join(dir, "corpus", "public.otlp.jsonl"))
	if err != nil {
		b.Fatal(err)
	}
	if err := c.buildTemplates(700, 20, 1); err != nil {
		b.Fatal(err)
	}
	var buf []byte
	spans := 0
	for i := 0; b.Loop(); i++ {
		var n int
		buf, n = c.render(buf, uint64(i), 1)
		spans += n
	}
	b.ReportMetric(float64(spans)/b.Elapsed().Seconds(), "spans/s")
}
