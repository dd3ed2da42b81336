package otlptest

import (
	"encoding/hex"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// DefaultMaxDiffs is how many differences Diff lists before summarising the rest.
const DefaultMaxDiffs = 20

// Option changes how Diff compares.
type Option func(*options)

type options struct {
	maxDiffs        int
	countDuplicates bool
}

// MaxDiffs lists at most n differences (n <= 0 means no limit); the rest are
// summarised in one final line. The default is DefaultMaxDiffs.
func MaxDiffs(n int) Option { return func(o *options) { o.maxDiffs = n } }

// CountDuplicates makes a span ID that occurs n times in want (a span sent
// twice, such as P18's) have to occur n times in got, each copy matching one
// copy of want. Without it, identical copies on either side count once.
func CountDuplicates() Option { return func(o *options) { o.countDuplicates = true } }

// Equal compares want and got with the default options and returns the
// differences; nil means equal. See Diff.
func Equal(want, got ptrace.Traces) []string { return Diff(want, got) }

// Diff compares two sets of traces semantically and returns a readable list of
// differences, nil when there are none.
//
// Spans are matched by trace ID and span ID; their order and their grouping
// into resourceSpans and scopeSpans do not matter. For each span every field
// is compared: name, kind, parent span ID, trace state, start and end time,
// status code and message, the three dropped counts, attributes, events (in
// order: name, time, attributes, dropped count) and links (in order: trace ID,
// span ID, trace state, attributes, dropped count), and also the span's
// resource (attributes, dropped count) and scope (name, version, attributes,
// dropped count). Attribute maps, kvlist values included, are compared as sets
// keyed by attribute key; array elements in order; every value with its type
// (string "1" differs from int 1, bytes are compared byte by byte).
//
// Not compared: span flags, schema URLs, and the order of spans, resources and
// scopes.
func Diff(want, got ptrace.Traces, opts ...Option) []string {
	o := options{maxDiffs: DefaultMaxDiffs}
	for _, f := range opts {
		f(&o)
	}
	d := &differ{opts: o}
	d.traces(index(want), index(got))
	return d.result()
}

// AssertEqual reports every difference between want and got with t.Errorf
// (one call, listing the first differences) and returns whether they were
// equal.
func AssertEqual(t testing.TB, want, got ptrace.Traces, opts ...Option) bool {
	t.Helper()
	diffs := Diff(want, got, opts...)
	if len(diffs) == 0 {
		return true
	}
	t.Errorf("traces differ (want → got):\n  %s", strings.Join(diffs, "\n  "))
	return false
}

// field is one compared value of a flattened span: a path such as
// "event[0].attr[k]" and the value's canonical rendering.
type field struct{ path, value string }

// flatSpan is a span with its resource and scope rendered as fields.
type flatSpan struct {
	name   string
	fields []field
	key    string // all fields joined: equal keys mean equal spans
}

// traceIndex maps trace ID hex → span ID hex → copies in input order.
type traceIndex map[string]map[string][]*flatSpan

func index(td ptrace.Traces) traceIndex {
	idx := traceIndex{}
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		rs := rss.At(i)
		var res []field
		res = attrFields(res, "resource.", rs.Resource().Attributes())
		res = append(res, field{"resource.dropped_attributes", u32(rs.Resource().DroppedAttributesCount())})
		sss := rs.ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			ss := sss.At(j)
			sc := ss.Scope()
			scope := []field{{"scope.name", strconv.Quote(sc.Name())}, {"scope.version", strconv.Quote(sc.Version())}}
			scope = attrFields(scope, "scope.", sc.Attributes())
			scope = append(scope, field{"scope.dropped_attributes", u32(sc.DroppedAttributesCount())})
			spans := ss.Spans()
			for k := 0; k < spans.Len(); k++ {
				sp := spans.At(k)
				fs := spanFields(sp)
				fs = append(fs, res...)
				fs = append(fs, scope...)
				var b strings.Builder
				for _, f := range fs {
					b.WriteString(f.path)
					b.WriteByte('=')
					b.WriteString(f.value)
					b.WriteByte('\n')
				}
				tid := TraceIDHex(sp.TraceID())
				sid := spanIDHex(sp.SpanID())
				if idx[tid] == nil {
					idx[tid] = map[string][]*flatSpan{}
				}
				idx[tid][sid] = append(idx[tid][sid], &flatSpan{name: sp.Name(), fields: fs, key: b.String()})
			}
		}
	}
	return idx
}

func spanFields(sp ptrace.Span) []field {
	parent := "none"
	if !sp.ParentSpanID().IsEmpty() {
		parent = spanIDHex(sp.ParentSpanID())
	}
	fs := []field{
		{"name", strconv.Quote(sp.Name())},
		{"kind", sp.Kind().String()},
		{"parent", parent},
		{"trace_state", strconv.Quote(sp.TraceState().AsRaw())},
		{"start", u64(uint64(sp.StartTimestamp()))},
		{"end", u64(uint64(sp.EndTimestamp()))},
		{"status.code", sp.Status().Code().String()},
		{"status.message", strconv.Quote(sp.Status().Message())},
		{"dropped_attributes", u32(sp.DroppedAttributesCount())},
		{"dropped_events", u32(sp.DroppedEventsCount())},
		{"dropped_links", u32(sp.DroppedLinksCount())},
	}
	fs = attrFields(fs, "", sp.Attributes())
	evs := sp.Events()
	fs = append(fs, field{"events", strconv.Itoa(evs.Len())})
	for i := 0; i < evs.Len(); i++ {
		e := evs.At(i)
		p := fmt.Sprintf("event[%d].", i)
		fs = append(fs,
			field{p + "name", strconv.Quote(e.Name())},
			field{p + "time", u64(uint64(e.Timestamp()))})
		fs = attrFields(fs, p, e.Attributes())
		fs = append(fs, field{p + "dropped_attributes", u32(e.DroppedAttributesCount())})
	}
	links := sp.Links()
	fs = append(fs, field{"links", strconv.Itoa(links.Len())})
	for i := 0; i < links.Len(); i++ {
		l := links.At(i)
		p := fmt.Sprintf("link[%d].", i)
		fs = append(fs,
			field{p + "trace_id", TraceIDHex(l.TraceID())},
			field{p + "span_id", spanIDHex(l.SpanID())},
			field{p + "trace_state", strconv.Quote(l.TraceState().AsRaw())})
		fs = attrFields(fs, p, l.Attributes())
		fs = append(fs, field{p + "dropped_attributes", u32(l.DroppedAttributesCount())})
	}
	return fs
}

// attrFields appends one field per attribute, sorted by key, so that maps
// compare as sets. A key repeated inside one map gets a "#n" suffix.
func attrFields(fs []field, prefix string, m pcommon.Map) []field {
	type kv struct{ k, v string }
	var kvs []kv
	m.Range(func(k string, v pcommon.Value) bool {
		kvs = append(kvs, kv{k, Render(v)})
		return true
	})
	sort.SliceStable(kvs, func(i, j int) bool { return kvs[i].k < kvs[j].k })
	for i, a := range kvs {
		k := a.k
		n := 1
		for j := i - 1; j >= 0 && kvs[j].k == a.k; j-- {
			n++
		}
		if n > 1 {
			k += "#" + strconv.Itoa(n)
		}
		fs = append(fs, field{prefix + "attr[" + k + "]", a.v})
	}
	return fs
}

// Render returns the canonical text of an attribute value: its type and
// value, with kvlists sorted by key so that equal maps render equally.
func Render(v pcommon.Value) string {
	var b strings.Builder
	render(&b, v)
	return b.String()
}

func render(b *strings.Builder, v pcommon.Value) {
	switch v.Type() {
	case pcommon.ValueTypeStr:
		b.WriteString("str ")
		b.WriteString(strconv.Quote(v.Str()))
	case pcommon.ValueTypeInt:
		b.WriteString("int ")
		b.WriteString(strconv.FormatInt(v.Int(), 10))
	case pcommon.ValueTypeDouble:
		b.WriteString("double ")
		f := v.Double()
		if math.IsNaN(f) {
			b.WriteString("NaN")
		} else {
			b.WriteString(strconv.FormatFloat(f, 'g', -1, 64))
		}
	case pcommon.ValueTypeBool:
		b.WriteString("bool ")
		b.WriteString(strconv.FormatBool(v.Bool()))
	case pcommon.ValueTypeBytes:
		b.WriteString("bytes 0x")
		b.WriteString(hex.EncodeToString(v.Bytes().AsRaw()))
	case pcommon.ValueTypeSlice:
		b.WriteString("array[")
		s := v.Slice()
		for i := 0; i < s.Len(); i++ {
			if i > 0 {
				b.WriteString(", ")
			}
			render(b, s.At(i))
		}
		b.WriteString("]")
	case pcommon.ValueTypeMap:
		b.WriteString("kvlist{")
		type kv struct{ k, v string }
		var kvs []kv
		v.Map().Range(func(k string, v pcommon.Value) bool {
			kvs = append(kvs, kv{k, Render(v)})
			return true
		})
		sort.SliceStable(kvs, func(i, j int) bool { return kvs[i].k < kvs[j].k })
		for i, a := range kvs {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(strconv.Quote(a.k))
			b.WriteString(": ")
			b.WriteString(a.v)
		}
		b.WriteString("}")
	default:
		b.WriteString("empty")
	}
}

func spanIDHex(id pcommon.SpanID) string { return hex.EncodeToString(id[:]) }

func u32(n uint32) string { return strconv.FormatUint(uint64(n), 10) }
func u64(n uint64) string { return strconv.FormatUint(n, 10) }

type differ struct {
	opts  options
	diffs []string
	more  int
}

func (d *differ) add(format string, args ...any) {
	if d.opts.maxDiffs > 0 && len(d.diffs) >= d.opts.maxDiffs {
		d.more++
		return
	}
	d.diffs = append(d.diffs, fmt.Sprintf(format, args...))
}

func (d *differ) result() []string {
	if d.more > 0 {
		d.diffs = append(d.diffs, fmt.Sprintf("… and %d more differences", d.more))
	}
	return d.diffs
}

func traceName(id string) string {
	if l := Label(id); l != "" {
		return l + " " + id
	}
	return "trace " + id
}

func (d *differ) traces(want, got traceIndex) {
	for _, id := range unionKeys(want, got) {
		w, g := want[id], got[id]
		switch {
		case g == nil:
			d.add("%s: trace missing (want %d spans)", traceName(id), countCopies(w))
		case w == nil:
			d.add("%s: unexpected trace (got %d spans)", traceName(id), countCopies(g))
		default:
			d.trace(traceName(id), w, g)
		}
	}
}

func countCopies(m map[string][]*flatSpan) int {
	n := 0
	for _, c := range m {
		n += len(c)
	}
	return n
}

func unionKeys[V any](a, b map[string]V) []string {
	var keys []string
	for k := range a {
		keys = append(keys, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}

func (d *differ) trace(name string, want, got map[string][]*flatSpan) {
	for _, sid := range unionKeys(want, got) {
		w, g := want[sid], got[sid]
		switch {
		case len(g) == 0:
			d.add("%s span %s %q: span missing", name, sid, w[0].name)
			continue
		case len(w) == 0:
			d.add("%s span %s %q: unexpected span", name, sid, g[0].name)
			continue
		}
		if !d.opts.countDuplicates {
			w, g = distinct(w), distinct(g)
		} else if len(w) != len(g) {
			d.add("%s span %s %q: stored %d times, want %d", name, sid, w[0].name, len(g), len(w))
		}
		// Pair identical copies first, then compare the rest in order.
		usedG := make([]bool, len(g))
		var restW []*flatSpan
		for _, ws := range w {
			found := false
			for j, gs := range g {
				if !usedG[j] && gs.key == ws.key {
					usedG[j], found = true, true
					break
				}
			}
			if !found {
				restW = append(restW, ws)
			}
		}
		var restG []*flatSpan
		for j, gs := range g {
			if !usedG[j] {
				restG = append(restG, gs)
			}
		}
		for i := 0; i < len(restW) && i < len(restG); i++ {
			d.fields(fmt.Sprintf("%s span %s %q", name, sid, restW[i].name), restW[i].fields, restG[i].fields)
		}
		if !d.opts.countDuplicates {
			for i := len(restG); i < len(restW); i++ {
				d.add("%s span %s %q: a differing copy of the span is missing", name, sid, restW[i].name)
			}
			for i := len(restW); i < len(restG); i++ {
				d.add("%s span %s %q: unexpected differing copy of the span", name, sid, restG[i].name)
			}
		}
	}
}

func distinct(copies []*flatSpan) []*flatSpan {
	seen := map[string]bool{}
	var out []*flatSpan
	for _, c := range copies {
		if !seen[c.key] {
			seen[c.key] = true
			out = append(out, c)
		}
	}
	return out
}

// fields compares two flattened spans field by field, in want's order and
// then the fields only got has.
func (d *differ) fields(where string, want, got []field) {
	gm := make(map[string]string, len(got))
	for _, f := range got {
		gm[f.path] = f.value
	}
	wm := make(map[string]bool, len(want))
	for _, f := range want {
		wm[f.path] = true
		gv, ok := gm[f.path]
		switch {
		case !ok:
			d.add("%s: %s missing (want %s)", where, f.path, shorten(f.value))
		case gv != f.value:
			d.add("%s: %s: want %s, got %s%s", where, f.path, shorten(f.value), shorten(gv), firstDifference(f.value, gv))
		}
	}
	for _, f := range got {
		if !wm[f.path] {
			d.add("%s: unexpected %s = %s", where, f.path, shorten(f.value))
		}
	}
}

// firstDifference says where two long renderings part, when shorten would
// hide it.
func firstDifference(a, b string) string {
	if len(a) <= maxShown && len(b) <= maxShown {
		return ""
	}
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	return fmt.Sprintf(" (renderings differ from byte %d)", i)
}

const maxShown = 160

// shorten keeps messages readable when values are kilobytes long (P07).
func shorten(s string) string {
	if len(s) <= maxShown {
		return s
	}
	return fmt.Sprintf("%s…(%d bytes)", s[:maxShown], len(s))
}
