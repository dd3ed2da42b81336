package render

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"
	"github.com/muesli/termenv"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tracectl/tracectl/internal/otlptest"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/render -update to create it)", err)
	}
	if !bytes.Equal(want, got) {
		i := firstDiff(want, got)
		t.Errorf("%s differs at byte %d:\nwant …%q…\ngot  …%q…\n(if the change is intended: go test ./internal/render -run %s -update)",
			path, i, around(want, i), around(got, i), t.Name())
	}
}

// colour is a renderer as iostreams gives on a colour terminal; plain as
// when piped or NO_COLOR.
func colour(w io.Writer) *lipgloss.Renderer {
	r := lipgloss.NewRenderer(w)
	r.SetColorProfile(termenv.TrueColor)
	return r
}

func plainRenderer(w io.Writer) *lipgloss.Renderer {
	r := lipgloss.NewRenderer(w)
	r.SetColorProfile(termenv.Ascii)
	return r
}

// goldenTraces are corpus traces that between them hold every span kind,
// errors, events, links, an orphan, deep nesting, long and non-ASCII text,
// two roots, a child_of link, a duplicated span and a zero-length span; and
// a generated trace of 2,000 spans.
var goldenTraces = []string{"P00", "P06", "P07", "P08", "P09", "P11", "P12", "P13", "P14", "P18", "P19", "gen2000"}

func goldenTrace(t testing.TB, c *otlptest.Corpus, label string) ptrace.Traces {
	if label == "gen2000" {
		return genTrace(2000, 2000)
	}
	td, ok := c.ByID[otlptest.IDOf(label)]
	if !ok {
		t.Fatalf("no corpus trace %s", label)
	}
	return td
}

// TestGolden renders each golden trace in each format, as on an 80-column
// colour terminal (tty) and as piped (plain, 120 columns).
func TestGolden(t *testing.T) {
	c := otlptest.LoadCorpus(t)
	for _, label := range goldenTraces {
		t.Run(label, func(t *testing.T) {
			td := goldenTrace(t, c, label)
			var tty, plain bytes.Buffer
			if err := WriteTree(&tty, td, TreeOptions{Renderer: colour(&tty), Width: 80}); err != nil {
				t.Fatal(err)
			}
			if err := WriteTree(&plain, td, TreeOptions{Renderer: plainRenderer(&plain)}); err != nil {
				t.Fatal(err)
			}
			checkPlain(t, plain.Bytes(), DefaultWidth)
			if !bytes.Contains(tty.Bytes(), []byte("\x1b[")) {
				t.Error("terminal tree has no colour")
			}
			checkWidth(t, tty.Bytes(), 80)
			golden(t, label+".tree.tty.golden", tty.Bytes())
			golden(t, label+".tree.plain.golden", plain.Bytes())

			var ttyTab, plainTab bytes.Buffer
			if err := WriteSpanTable(&ttyTab, td, colour(&ttyTab), true); err != nil {
				t.Fatal(err)
			}
			if err := WriteSpanTable(&plainTab, td, plainRenderer(&plainTab), false); err != nil {
				t.Fatal(err)
			}
			checkPlain(t, plainTab.Bytes(), 0)
			if got, want := bytes.Count(plainTab.Bytes(), []byte("\n")), BuildTree(td).Spans+1; got != want {
				t.Errorf("table has %d lines, want %d (header + one per span)", got, want)
			}
			golden(t, label+".table.plain.golden", plainTab.Bytes())
			var jj bytes.Buffer
			if err := WriteJaegerJSON(&jj, td); err != nil {
				t.Fatal(err)
			}
			checkPlain(t, jj.Bytes(), 0)
			if label == "gen2000" {
				// 1 MB of JSON and a table that differs from the plain one
				// in its header only: checked by TestJaegerJSONRoundTrip
				// and the corpus goldens instead of kept as files.
				return
			}
			golden(t, label+".table.tty.golden", ttyTab.Bytes())
			golden(t, label+".jaeger.json", jj.Bytes())
		})
	}
	// Details and filters, piped.
	for _, tc := range []struct {
		label, name string
		o           TreeOptions
	}{
		{"P06", "attrs", TreeOptions{Attrs: true}},
		{"P01", "attrs", TreeOptions{Attrs: true}},
		{"P07", "attrs", TreeOptions{Attrs: true}},
		{"P09", "errors", TreeOptions{ErrorsOnly: true}},
		{"P09", "service-redis-cache", TreeOptions{Service: "redis-cache"}},
		{"P09", "depth3", TreeOptions{MaxDepth: 3}},
		{"P09", "width60", TreeOptions{Width: 60}},
		{"P00", "errors-depth2", TreeOptions{ErrorsOnly: true, MaxDepth: 2}},
		{"P00", "service-none", TreeOptions{Service: "nope"}},
	} {
		t.Run(tc.label+"-"+tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			o := tc.o
			o.Renderer = plainRenderer(&buf)
			if err := WriteTree(&buf, goldenTrace(t, c, tc.label), o); err != nil {
				t.Fatal(err)
			}
			checkPlain(t, buf.Bytes(), max(o.Width, 0))
			golden(t, tc.label+".tree-"+tc.name+".plain.golden", buf.Bytes())
		})
	}
}

// checkPlain: no escape sequences and, when width > 0 (0: default width
// for trees), no line wider than the layout.
func checkPlain(t *testing.T, out []byte, width int) {
	t.Helper()
	if i := bytes.IndexByte(out, 0x1b); i >= 0 {
		t.Errorf("plain output has an escape sequence at byte %d: %q", i, around(out, i))
	}
	if width > 0 {
		checkWidth(t, out, width)
	}
}

func checkWidth(t *testing.T, out []byte, width int) {
	t.Helper()
	for i, l := range strings.Split(string(out), "\n") {
		if w := ansi.StringWidth(l); w > width {
			t.Errorf("line %d is %d columns wide, more than %d: %q", i+1, w, width, l)
			return
		}
	}
}

func TestBuildTreeCorpus(t *testing.T) {
	c := otlptest.LoadCorpus(t)
	for id, td := range c.ByID {
		label := otlptest.Label(id)
		tr := BuildTree(td)
		distinct := map[pcommon.SpanID]bool{}
		forEachSpan(td, func(s ptrace.Span) { distinct[s.SpanID()] = true })
		if tr.Spans != len(distinct) || tr.Spans+tr.Duplicates != td.SpanCount() {
			t.Errorf("%s: %d spans + %d duplicates, trace has %d distinct of %d", label, tr.Spans, tr.Duplicates, len(distinct), td.SpanCount())
		}
		seen := map[pcommon.SpanID]bool{}
		for _, n := range tr.Nodes {
			if n.Missing {
				continue
			}
			if seen[n.Span.SpanID()] {
				t.Errorf("%s: span %s drawn twice", label, n.Span.SpanID())
			}
			seen[n.Span.SpanID()] = true
			if n.Parent != nil && n.Depth != n.Parent.Depth+1 {
				t.Errorf("%s: span %s at depth %d under depth %d", label, n.Span.SpanID(), n.Depth, n.Parent.Depth)
			}
			if p := n.Span.ParentSpanID(); !p.IsEmpty() && n.Parent != nil && !n.Parent.Missing && n.Parent.Span.SpanID() != p {
				t.Errorf("%s: span %s hangs under %s, its parent is %s", label, n.Span.SpanID(), n.Parent.Span.SpanID(), p)
			}
		}
		if len(seen) != len(distinct) {
			t.Errorf("%s: %d spans drawn of %d", label, len(seen), len(distinct))
		}
	}
	by := func(l string) *Tree { return BuildTree(c.ByID[otlptest.IDOf(l)]) }
	if tr := by("P00"); tr.Errors != 3 || tr.Root.Span.Name() != "POST /api/checkout" || strings.Join(tr.Services, ",") != "frontend,checkout,email-worker" {
		t.Errorf("P00: %d errors, root %q, services %v", tr.Errors, tr.Root.Span.Name(), tr.Services)
	}
	if tr := by("P11"); tr.Root != nil || tr.Orphans != 1 || !tr.Roots[0].Missing || len(tr.Roots[0].Children) != 1 {
		t.Errorf("P11 (rootless): root %v, %d orphans, top %+v", tr.Root != nil, tr.Orphans, tr.Roots[0])
	}
	if tr := by("P12"); len(tr.Roots) != 1 || len(tr.Roots[0].Children) != 2 {
		t.Errorf("P12: the child_of link should make one root with two children, got %d roots", len(tr.Roots))
	}
	if tr := by("P13"); len(tr.Roots) != 2 {
		t.Errorf("P13: %d roots, want 2", len(tr.Roots))
	}
	if tr := by("P18"); tr.Duplicates != 1 || tr.Spans != 3 {
		t.Errorf("P18: %d spans, %d duplicates", tr.Spans, tr.Duplicates)
	}
	if tr := by("P09"); maxDepth(tr) != 13 {
		t.Errorf("P09: depth %d, want 13 (14 spans on the longest chain)", maxDepth(tr))
	}
	g := BuildTree(genTrace(2000, 2000))
	if g.Spans != 2000 || g.Orphans != 1 || g.Skewed < 1 || g.Errors == 0 {
		t.Errorf("gen2000: %d spans, %d orphans, %d skewed, %d errors", g.Spans, g.Orphans, g.Skewed, g.Errors)
	}
}

func maxDepth(t *Tree) int {
	d := 0
	for _, n := range t.Nodes {
		d = max(d, n.Depth)
	}
	return d
}

func forEachSpan(td ptrace.Traces, f func(ptrace.Span)) {
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		sss := rss.At(i).ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			spans := sss.At(j).Spans()
			for k := 0; k < spans.Len(); k++ {
				f(spans.At(k))
			}
		}
	}
}

// handTrace builds spans from (id, parent, kind, start, end) rows, all in
// service "svc", for the edge cases the corpus lacks.
type handSpan struct {
	id, parent byte
	kind       ptrace.SpanKind
	start, end uint64
	name       string
}

func handTrace(rows ...handSpan) ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "svc")
	ss := rs.ScopeSpans().AppendEmpty()
	for _, r := range rows {
		s := ss.Spans().AppendEmpty()
		s.SetTraceID(pcommon.TraceID{1})
		s.SetSpanID(pcommon.SpanID{r.id})
		if r.parent != 0 {
			s.SetParentSpanID(pcommon.SpanID{r.parent})
		}
		s.SetKind(r.kind)
		s.SetStartTimestamp(pcommon.Timestamp(r.start))
		s.SetEndTimestamp(pcommon.Timestamp(r.end))
		s.SetName(r.name)
	}
	return td
}

func TestSkewAndCycles(t *testing.T) {
	tr := BuildTree(handTrace(
		handSpan{id: 1, start: 100, end: 200},
		handSpan{id: 2, parent: 1, start: 90, end: 150},                                 // starts before its parent
		handSpan{id: 3, parent: 1, start: 150, end: 250},                                // ends after (synchronous)
		handSpan{id: 4, parent: 1, kind: ptrace.SpanKindProducer, start: 110, end: 120}, // …
		handSpan{id: 5, parent: 4, kind: ptrace.SpanKindConsumer, start: 130, end: 400}, // outlives the producer: fine
		handSpan{id: 6, parent: 1, start: 300, end: 100},                                // ends before it starts
	))
	want := map[byte]bool{2: true, 3: true, 5: false, 6: true}
	for _, n := range tr.Nodes {
		if w, ok := want[n.Span.SpanID()[0]]; ok && n.Skew != w {
			t.Errorf("span %d: skew %v, want %v", n.Span.SpanID()[0], n.Skew, w)
		}
		if n.End < n.Start {
			t.Errorf("span %d ends before it starts", n.Span.SpanID()[0])
		}
	}
	var buf bytes.Buffer
	if err := WriteTree(&buf, handTrace(handSpan{id: 1, start: 100, end: 200}, handSpan{id: 2, parent: 1, start: 90, end: 150}), TreeOptions{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "⚠ skew") || !strings.Contains(buf.String(), "1 outside the parent (clock skew?)") {
		t.Errorf("skew not flagged:\n%s", buf.String())
	}

	// A two-span cycle and a span that is its own parent: all shown, once.
	cyc := BuildTree(handTrace(
		handSpan{id: 1, parent: 2, start: 1, end: 5},
		handSpan{id: 2, parent: 1, start: 2, end: 4},
		handSpan{id: 3, parent: 3, start: 3, end: 4},
	))
	if len(cyc.Nodes) != 3 {
		t.Fatalf("cycle: %d nodes drawn, want 3", len(cyc.Nodes))
	}
	cycles := 0
	for _, n := range cyc.Nodes {
		if n.Cycle {
			cycles++
		}
	}
	if cycles != 2 {
		t.Errorf("%d spans marked as breaking a cycle, want 2", cycles)
	}
	buf.Reset()
	if err := cyc.Write(&buf, TreeOptions{}); err != nil {
		t.Fatal(err)
	}
	if strings.Count(buf.String(), "↻ parent cycle") != 2 {
		t.Errorf("cycles not marked:\n%s", buf.String())
	}
}

// TestHostileText: names that carry terminal escape sequences, newlines
// and invalid UTF-8 are shown escaped, in every format a terminal shows.
func TestHostileText(t *testing.T) {
	td := handTrace(handSpan{id: 1, start: 1, end: 2, name: "evil\x1b[2J\x1b]0;pwned\x07\nname\xff\u009b"})
	s := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0)
	s.Attributes().PutStr("k\x1b", "v\x1b[31m")
	s.Status().SetCode(ptrace.StatusCodeError)
	s.Status().SetMessage("bad\x1b[0m")
	for _, styled := range []bool{false, true} {
		var buf bytes.Buffer
		r := plainRenderer(&buf)
		if styled {
			r = colour(&buf)
		}
		if err := WriteTree(&buf, td, TreeOptions{Renderer: r, Attrs: true}); err != nil {
			t.Fatal(err)
		}
		if err := WriteSpanTable(&buf, td, r, styled); err != nil {
			t.Fatal(err)
		}
		out := buf.String()
		for _, bad := range []string{"\x1b[2J", "\x1b]0", "\x07", "\x1b[31m", "\u009b", "\xff", "bad\x1b"} {
			if strings.Contains(out, bad) {
				t.Errorf("styled=%v: output carries %q:\n%s", styled, bad, out)
			}
		}
		if !strings.Contains(out, `evil\x1b[2J\x1b]0;pwned\x07\nname`) {
			t.Errorf("styled=%v: name not shown escaped:\n%s", styled, out)
		}
	}
}

func TestFilters(t *testing.T) {
	c := otlptest.LoadCorpus(t)
	td := c.ByID[otlptest.IDOf("P00")]
	var buf bytes.Buffer
	if err := WriteTree(&buf, td, TreeOptions{ErrorsOnly: true}); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"charge card", "payment declined", "POST /api/checkout"} {
		if !strings.Contains(out, want) {
			t.Errorf("--errors lost %q:\n%s", want, out)
		}
	}
	for _, gone := range []string{"validate cart", "orders.created process", "legacy-sdk-span"} {
		if strings.Contains(out, gone) {
			t.Errorf("--errors kept %q:\n%s", gone, out)
		}
	}
	buf.Reset()
	if err := WriteTree(&buf, td, TreeOptions{MaxDepth: 2}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "▸ 5 more") {
		t.Errorf("--depth 2 does not say how many spans are below:\n%s", buf.String())
	}
	buf.Reset()
	if err := WriteTree(&buf, td, TreeOptions{Service: "email-worker"}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "email-worker orders.created process") || strings.Contains(buf.String(), "charge card") {
		t.Errorf("--service email-worker:\n%s", buf.String())
	}
}

func TestFormatDuration(t *testing.T) {
	for ns, want := range map[uint64]string{
		0: "0ns", 999: "999ns", 1_000: "1.0µs", 12_345: "12.3µs", 999_949: "999.9µs",
		1_000_000: "1.0ms", 412_300_000: "412.3ms", 2_345_000_000: "2.35s",
		62_000_000_000: "1m02s", 3*3600_000_000_000 + 4*60_000_000_000: "3h04m", 200 * 3600_000_000_000: "200h",
	} {
		if got := formatDuration(ns); got != want {
			t.Errorf("formatDuration(%d) = %q, want %q", ns, got, want)
		}
	}
}

// FuzzRenderTree builds a trace from the input (parents may be missing,
// the span itself, or form cycles; times and names arbitrary) and renders
// it with options taken from the input: it must never panic, must draw
// every span exactly once, and plain output must carry no escape sequence
// and fit the width.
func FuzzRenderTree(f *testing.F) {
	f.Add([]byte{80, 0, 0, 0, 1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12})
	f.Add(bytes.Repeat([]byte{1, 1, 2, 3, 0xff, 0x1b, 0x80, 0}, 40))
	f.Add([]byte("\x00\x01\x02\x03deep deep deep deep deep deep deep deep deep deep deep"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 4 {
			return
		}
		o := TreeOptions{
			Width:      int(data[0]),
			Attrs:      data[1]&1 != 0,
			ErrorsOnly: data[1]&2 != 0,
			MaxDepth:   int(data[2] % 8),
		}
		if data[1]&4 != 0 {
			o.Service = fmt.Sprintf("svc%d", data[3]%3)
		}
		td := fuzzTrace(data[4:])
		tr := BuildTree(td)
		real := 0
		for _, n := range tr.Nodes {
			if !n.Missing {
				real++
			}
			if n.Parent != nil && n.Depth != n.Parent.Depth+1 {
				t.Fatalf("depth %d under %d", n.Depth, n.Parent.Depth)
			}
		}
		if real != tr.Spans {
			t.Fatalf("%d spans drawn of %d", real, tr.Spans)
		}
		var buf bytes.Buffer
		o.Renderer = plainRenderer(&buf)
		if err := tr.Write(&buf, o); err != nil {
			t.Fatal(err)
		}
		if bytes.IndexByte(buf.Bytes(), 0x1b) >= 0 {
			t.Fatalf("escape sequence in plain output:\n%q", buf.String())
		}
		width := o.Width
		if width <= 0 {
			width = DefaultWidth
		}
		width = max(width, MinWidth)
		for _, l := range strings.Split(buf.String(), "\n") {
			if w := ansi.StringWidth(l); w > width {
				t.Fatalf("line %d columns wide, layout %d: %q", w, width, l)
			}
		}
		var tab bytes.Buffer
		if err := WriteSpanTable(&tab, td, plainRenderer(&tab), false); err != nil {
			t.Fatal(err)
		}
		var jj bytes.Buffer
		if err := WriteJaegerJSON(&jj, td); err != nil {
			t.Fatal(err)
		}
	})
}

// fuzzTrace reads 6-byte records: span ID, parent ID (0 = root, possibly
// itself or one never sent), kind/status, start, duration, and a name byte
// that selects hostile or plain text.
func fuzzTrace(b []byte) ptrace.Traces {
	td := ptrace.NewTraces()
	var scopes [3]ptrace.ScopeSpans
	for i := range scopes {
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", fmt.Sprintf("svc%d", i))
		scopes[i] = rs.ScopeSpans().AppendEmpty()
	}
	names := []string{"", "GET /", "\x1b[31mred", "ユニコード", "\xff\xfe", strings.Repeat("x", 300), "a\nb\tc", "👤👤👤👤"}
	for len(b) >= 6 {
		rec := b[:6]
		b = b[6:]
		s := scopes[rec[2]%3].Spans().AppendEmpty()
		s.SetTraceID(pcommon.TraceID{9})
		s.SetSpanID(pcommon.SpanID{rec[0]})
		if rec[1] != 0 {
			s.SetParentSpanID(pcommon.SpanID{rec[1]})
		}
		s.SetKind(ptrace.SpanKind(rec[2] % 6))
		if rec[2]&0x80 != 0 {
			s.Status().SetCode(ptrace.StatusCodeError)
			s.Status().SetMessage(names[rec[5]%8])
		}
		var start [8]byte
		start[6], start[7] = rec[3], rec[4]
		st := binary.BigEndian.Uint64(start[:]) * 1_000_000
		s.SetStartTimestamp(pcommon.Timestamp(st))
		s.SetEndTimestamp(pcommon.Timestamp(st + uint64(rec[5])*uint64(rec[4])*10_000 - uint64(rec[3]&1)*5))
		s.SetName(names[rec[5]%8])
		if rec[5]&1 != 0 {
			s.Attributes().PutStr(names[rec[3]%8], names[rec[4]%8])
			ev := s.Events().AppendEmpty()
			ev.SetName(names[rec[4]%8])
			l := s.Links().AppendEmpty()
			l.SetSpanID(pcommon.SpanID{rec[1]})
			l.SetTraceID(pcommon.TraceID{9})
			l.Attributes().PutStr("opentracing.ref_type", "child_of")
		}
	}
	return td
}

// BenchmarkRenderTree10k renders a generated 10,000-span trace (target:
// at most 200 ms per render), reporting spans per CPU-second of the
// process (rendering runs on one goroutine, so this is robust to a busy
// machine where wall time is not).
func BenchmarkRenderTree10k(b *testing.B) {
	td := genTrace(10_000, 10_000)
	for _, tc := range []struct {
		name string
		o    func() TreeOptions
	}{
		{"plain", func() TreeOptions { return TreeOptions{Width: 120} }},
		{"colour", func() TreeOptions { return TreeOptions{Renderer: colour(io.Discard), Width: 120} }},
		{"attrs", func() TreeOptions { return TreeOptions{Renderer: colour(io.Discard), Width: 120, Attrs: true} }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			cpu0 := cpuTime()
			for b.Loop() {
				if err := WriteTree(io.Discard, td, tc.o()); err != nil {
					b.Fatal(err)
				}
			}
			cpu := cpuTime() - cpu0
			b.ReportMetric(float64(10_000*b.N)/cpu.Seconds(), "spans/cpu-s")
			b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N), "cpu-ms/op")
		})
	}
}

// cpuTime is the user+system CPU time of this process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
