package render

import (
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"
	"github.com/muesli/termenv"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// DefaultWidth is the layout width when the terminal's is unknown.
const DefaultWidth = 120

// MinWidth is the narrowest layout drawn; narrower widths are raised to it.
const MinWidth = 60

// TreeOptions control the waterfall view of a trace.
type TreeOptions struct {
	// Renderer styles the output; nil, or a renderer with the ASCII colour
	// profile (as iostreams gives when colour is off), draws plain text
	// with no escape sequences.
	Renderer *lipgloss.Renderer
	// Width in columns (DefaultWidth when <= 0, at least MinWidth).
	Width int
	// Attrs adds span and resource attributes, events and links under each
	// span.
	Attrs bool
	// MaxDepth shows only the first MaxDepth levels (0: all).
	MaxDepth int
	// Service keeps spans of this service (and their ancestors, for
	// context).
	Service string
	// ErrorsOnly keeps spans with error status (and their ancestors).
	ErrorsOnly bool
}

// WriteTree draws td as a header and a waterfall of its spans.
func WriteTree(w io.Writer, td ptrace.Traces, o TreeOptions) error {
	return BuildTree(td).Write(w, o)
}

// Column widths of the waterfall, besides the label and the bar.
const (
	kindWidth = 8 // "consumer"
	durWidth  = 9 // "1234.5ms"
	gapsWidth = 2 + 1 + 2
)

// palette holds foreground colours readable on dark and light terminals;
// a service keeps its colour from trace to trace (hash of its name).
var palette = []string{"39", "208", "35", "170", "178", "44", "167", "107", "141", "214", "75", "162", "72", "133"}

// paint is a style reduced to the escape sequences around its text, so
// that drawing 10,000 spans does not run lipgloss 50,000 times.
type paint struct{ pre, post string }

const paintMark = "\uE000"

func newPaint(s lipgloss.Style) paint {
	out := s.Render(paintMark)
	pre, post, ok := strings.Cut(out, paintMark)
	if !ok {
		return paint{}
	}
	return paint{pre, post}
}

func (p paint) wrap(b *strings.Builder, s string) {
	if s == "" {
		return
	}
	b.WriteString(p.pre)
	b.WriteString(s)
	b.WriteString(p.post)
}

type treeStyles struct {
	plain                                          bool
	label, faint, err, errBold, skew, key, missing paint
	services                                       map[string]paint
	r                                              *lipgloss.Renderer
}

func newTreeStyles(r *lipgloss.Renderer) *treeStyles {
	s := &treeStyles{services: map[string]paint{}, r: r}
	if r == nil || r.ColorProfile() == termenv.Ascii {
		s.plain = true
		return s
	}
	s.label = newPaint(r.NewStyle().Bold(true))
	s.faint = newPaint(r.NewStyle().Faint(true))
	s.err = newPaint(r.NewStyle().Foreground(lipgloss.Color("196")))
	s.errBold = newPaint(r.NewStyle().Foreground(lipgloss.Color("196")).Bold(true))
	s.skew = newPaint(r.NewStyle().Foreground(lipgloss.Color("214")))
	s.key = newPaint(r.NewStyle().Foreground(lipgloss.Color("244")))
	s.missing = newPaint(r.NewStyle().Faint(true).Italic(true))
	return s
}

func (s *treeStyles) service(name string) paint {
	if s.plain {
		return paint{}
	}
	if p, ok := s.services[name]; ok {
		return p
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(name))
	p := newPaint(s.r.NewStyle().Foreground(lipgloss.Color(palette[h.Sum32()%uint32(len(palette))])))
	s.services[name] = p
	return p
}

// treeWriter draws one tree.
type treeWriter struct {
	w      io.Writer
	err    error // first write error
	t      *Tree
	o      TreeOptions
	st     *treeStyles
	b      strings.Builder
	width  int
	labelW int
	barW   int
	// visible children of each shown node, and how many kept spans lie
	// below the depth limit under it.
	kids    map[*TreeNode][]*TreeNode
	hidden  map[*TreeNode]int
	shown   int
	visible map[*TreeNode]bool
	match   map[*TreeNode]bool
	// resources caches the sorted attribute lines of each resource, shown
	// under every span of it with --attrs.
	resources map[pcommon.Resource][]attrKV
	filter    bool
}

// Write draws the tree to w (see TreeOptions).
func (t *Tree) Write(w io.Writer, o TreeOptions) error {
	tw := &treeWriter{w: w, t: t, o: o, st: newTreeStyles(o.Renderer)}
	tw.width = o.Width
	if tw.width <= 0 {
		tw.width = DefaultWidth
	}
	tw.width = max(tw.width, MinWidth)
	tw.barW = min(max(tw.width/4, 10), 50)
	tw.labelW = tw.width - tw.barW - kindWidth - durWidth - gapsWidth
	tw.b.Grow(flushAt + 4*tw.width + 256)
	tw.header()
	tw.selectNodes()
	tw.rows()
	tw.flush()
	return tw.err
}

// flushAt is how much output is gathered before it is written.
const flushAt = 64 << 10

func (tw *treeWriter) flush() {
	if tw.err == nil && tw.b.Len() > 0 {
		_, tw.err = io.WriteString(tw.w, tw.b.String())
	}
	tw.b.Reset()
	tw.b.Grow(flushAt + 4*tw.width + 256)
}

func (tw *treeWriter) line(s string) {
	if tw.st.plain {
		s = strings.TrimRight(s, " ")
	}
	tw.b.WriteString(s)
	tw.b.WriteByte('\n')
	if tw.b.Len() >= flushAt {
		tw.flush()
	}
}

func (tw *treeWriter) header() {
	t := tw.t
	var b strings.Builder
	field := func(name, value string) {
		b.Reset()
		tw.st.label.wrap(&b, fmt.Sprintf("%-10s", name))
		b.WriteString(value)
		tw.line(b.String())
	}
	field("Trace", hex.EncodeToString(t.TraceID[:]))
	if t.Spans == 0 {
		field("Spans", "0")
		return
	}
	if r := t.Root; r != nil {
		b.Reset()
		tw.st.label.wrap(&b, fmt.Sprintf("%-10s", "Root"))
		rest := tw.width - 10
		svc := truncate(sanitize(r.Service), rest/2)
		tw.st.service(r.Service).wrap(&b, svc)
		b.WriteString(": ")
		b.WriteString(truncate(sanitize(r.Span.Name()), rest-textWidth(svc)-2))
		tw.line(b.String())
	} else {
		field("Root", "<root span not yet received>")
	}
	field("Start", time.Unix(0, int64(t.Start)).UTC().Format("2006-01-02 15:04:05.000000 MST"))
	field("Duration", formatDuration(t.End-t.Start))
	// The span counts, wrapped under the label when they do not fit.
	type item struct {
		text string
		p    paint
	}
	items := []item{{strconv.Itoa(t.Spans), paint{}}}
	if t.Errors > 0 {
		items = append(items, item{plural(t.Errors, "error"), tw.st.errBold})
	}
	if t.Orphans > 0 {
		items = append(items, item{fmt.Sprintf("%d with a missing parent", t.Orphans), paint{}})
	}
	if t.Skewed > 0 {
		items = append(items, item{fmt.Sprintf("%d outside the parent (clock skew?)", t.Skewed), tw.st.skew})
	}
	if t.Duplicates > 0 {
		copies := "copies"
		if t.Duplicates == 1 {
			copies = "copy"
		}
		items = append(items, item{fmt.Sprintf("%d duplicate %s not shown", t.Duplicates, copies), paint{}})
	}
	b.Reset()
	tw.st.label.wrap(&b, fmt.Sprintf("%-10s", "Spans"))
	col := 10
	for i, it := range items {
		text := it.text
		if i < len(items)-1 {
			text += ","
		}
		if i > 0 {
			if col+1+len(text) > tw.width {
				tw.line(b.String())
				b.Reset()
				b.WriteString(strings.Repeat(" ", 10))
				col = 10
			} else {
				b.WriteByte(' ')
				col++
			}
		}
		it.p.wrap(&b, text)
		col += len(text)
	}
	tw.line(b.String())

	b.Reset()
	tw.st.label.wrap(&b, fmt.Sprintf("%-10s", "Services"))
	fmt.Fprintf(&b, "%d: ", len(t.Services))
	room := tw.width - 10 - len(strconv.Itoa(len(t.Services))) - 2
	for i, s := range t.Services {
		name := sanitize(s)
		sep := ""
		if i > 0 {
			sep = ", "
		}
		if textWidth(sep)+textWidth(name) > room || (i < len(t.Services)-1 && textWidth(sep)+textWidth(name)+3 > room) {
			b.WriteString(sep + "…")
			break
		}
		b.WriteString(sep)
		tw.st.service(s).wrap(&b, name)
		room -= textWidth(sep) + textWidth(name)
	}
	tw.line(b.String())
}

// selectNodes decides which nodes are drawn: those matching the filters
// and their ancestors, down to the depth limit.
func (tw *treeWriter) selectNodes() {
	o := tw.o
	tw.filter = o.Service != "" || o.ErrorsOnly
	keep := make(map[*TreeNode]bool, len(tw.t.Nodes))
	tw.match = map[*TreeNode]bool{}
	nodes := tw.t.Nodes
	for i := len(nodes) - 1; i >= 0; i-- { // children come after parents
		n := nodes[i]
		m := !tw.filter || (!n.Missing && (o.Service == "" || n.Service == o.Service) && (!o.ErrorsOnly || n.IsError()))
		if m {
			tw.match[n] = true
		}
		if m || keep[n] {
			keep[n] = true
			if n.Parent != nil {
				keep[n.Parent] = true
			}
		}
	}
	tw.kids = make(map[*TreeNode][]*TreeNode, len(nodes))
	tw.hidden = map[*TreeNode]int{}
	tw.visible = make(map[*TreeNode]bool, len(nodes))
	var limitAncestor *TreeNode
	for _, n := range nodes {
		if !keep[n] {
			continue
		}
		if o.MaxDepth > 0 && n.Depth >= o.MaxDepth {
			if limitAncestor != nil {
				tw.hidden[limitAncestor]++
			}
			continue
		}
		if o.MaxDepth > 0 && n.Depth == o.MaxDepth-1 {
			limitAncestor = n
		}
		tw.shown++
		tw.visible[n] = true
		if n.Parent != nil {
			tw.kids[n.Parent] = append(tw.kids[n.Parent], n)
		}
	}
}

func (tw *treeWriter) rows() {
	tw.line("")
	if tw.filter || tw.o.MaxDepth > 0 {
		var what []string
		if tw.o.Service != "" {
			what = append(what, "service "+sanitize(tw.o.Service))
		}
		if tw.o.ErrorsOnly {
			what = append(what, "errors")
		}
		if tw.o.MaxDepth > 0 {
			what = append(what, "depth "+strconv.Itoa(tw.o.MaxDepth))
		}
		real := 0
		for n := range tw.match {
			if !n.Missing {
				real++
			}
		}
		msg := fmt.Sprintf("Showing %d of %d lines (%s", tw.shown, len(tw.t.Nodes), strings.Join(what, ", "))
		if tw.filter {
			msg += fmt.Sprintf("; %s match, ancestors kept for context", plural(real, "span"))
		}
		tw.line(truncate(msg+")", tw.width))
		if tw.shown == 0 {
			if tw.o.Service != "" {
				tw.line(truncate(fmt.Sprintf("No span matches; the services in this trace are %s.", strings.Join(mapSanitize(tw.t.Services), ", ")), tw.width))
			} else {
				tw.line("No span matches.")
			}
			return
		}
		tw.line("")
	}
	var b strings.Builder
	tw.st.label.wrap(&b, fmt.Sprintf("%-*s  %-*s %*s  ", tw.labelW, "SPAN", kindWidth, "KIND", durWidth, "DURATION"))
	total := formatDuration(tw.t.End - tw.t.Start)
	scale := "0" + strings.Repeat(" ", max(1, tw.barW-1-len(total))) + total
	tw.st.label.wrap(&b, scale)
	tw.line(b.String())

	// more[d] says whether the node drawn at depth d has later visible
	// siblings: it decides between │ and blank in the prefixes below it.
	more := []bool{false}
	var roots []*TreeNode
	for _, r := range tw.t.Roots {
		if tw.visible[r] {
			roots = append(roots, r)
		}
	}
	// Iterative depth-first drawing, in the order of the shown children.
	type item struct {
		n    *TreeNode
		last bool
	}
	stack := make([]item, 0, 64)
	for i := len(roots) - 1; i >= 0; i-- {
		stack = append(stack, item{roots[i], i == len(roots)-1})
	}
	for len(stack) > 0 {
		it := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		n := it.n
		d := n.Depth
		for len(more) <= d {
			more = append(more, false)
		}
		more = more[:d+1]
		more[d] = !it.last
		tw.row(n, more)
		kids := tw.kids[n]
		for i := len(kids) - 1; i >= 0; i-- {
			stack = append(stack, item{kids[i], i == len(kids)-1})
		}
	}
}

// prefix draws the tree lines in front of a node at depth d (row) or in
// front of the lines under it (detail). Deep trees keep only the last
// levels that fit in half the label, after "…".
func (tw *treeWriter) prefix(more []bool, d int, detail, hasKids bool) string {
	levels := d
	if detail {
		levels = d + 1
	}
	// Levels are left out in steps of half the room, the same number for a
	// span's row and the lines under it, so the vertical lines of a
	// subtree stay in their columns until the next step; "…" marks the cut.
	var b strings.Builder
	first := 1
	if maxParts := max(2, (tw.labelW/2)/3-1); d > maxParts {
		step := max(1, maxParts/2)
		first += (d - maxParts + step - 1) / step * step
		b.WriteString("…  ")
	}
	b.Grow(3 * 3 * (levels - first + 1))
	// A root (d == 0) has no connector of its own.
	for i := first; i <= levels; i++ {
		switch {
		case detail && i == d+1:
			if hasKids {
				b.WriteString("│  ")
			} else {
				b.WriteString("   ")
			}
		case !detail && i == d:
			if more[i] {
				b.WriteString("├─ ")
			} else {
				b.WriteString("└─ ")
			}
		case more[i]:
			b.WriteString("│  ")
		default:
			b.WriteString("   ")
		}
	}
	return b.String()
}

func (tw *treeWriter) row(n *TreeNode, more []bool) {
	st := tw.st
	hasKids := len(tw.kids[n]) > 0
	pre := tw.prefix(more, n.Depth, false, hasKids)
	var b strings.Builder
	st.faint.wrap(&b, pre)
	room := tw.labelW - textWidth(pre)

	if n.Missing {
		text := truncate("missing span "+hex.EncodeToString(n.MissingID[:])+" (parent not in trace)", room)
		st.missing.wrap(&b, text)
		b.WriteString(strings.Repeat(" ", max(0, room-textWidth(text))))
		fmt.Fprintf(&b, "  %-*s %*s  ", kindWidth, "", durWidth, "?")
		st.faint.wrap(&b, tw.bar(n, '░'))
		tw.line(b.String())
		return
	}

	var suffix []string
	if n.Skew {
		suffix = append(suffix, "⚠ skew")
	}
	if n.Cycle {
		suffix = append(suffix, "↻ parent cycle")
	}
	if h := tw.hidden[n]; h > 0 {
		suffix = append(suffix, fmt.Sprintf("▸ %d more", h))
	}
	suf := ""
	if len(suffix) > 0 {
		// The markers never take the room of the service name.
		suf = truncate(" "+strings.Join(suffix, " "), max(0, room-8))
	}
	room -= textWidth(suf)
	context := tw.filter && !tw.match[n]
	if n.IsError() && room >= 4 {
		st.errBold.wrap(&b, "✗ ")
		room -= 2
	}
	svc := truncate(sanitize(n.Service), max(room/2, min(room, 12)))
	if context {
		st.faint.wrap(&b, svc)
	} else {
		st.service(n.Service).wrap(&b, svc)
	}
	room -= textWidth(svc)
	name := ""
	if room > 1 {
		name = truncate(sanitize(n.Span.Name()), room-1)
		b.WriteByte(' ')
		if context {
			st.faint.wrap(&b, name)
		} else {
			b.WriteString(name)
		}
		room -= 1 + textWidth(name)
	}
	if suf != "" {
		if n.Skew {
			st.skew.wrap(&b, suf)
		} else {
			st.faint.wrap(&b, suf)
		}
	}
	b.WriteString(strings.Repeat(" ", max(0, room)))
	fmt.Fprintf(&b, "  %-*s %*s  ", kindWidth, kindName(n.Span.Kind()), durWidth, formatDuration(n.Duration()))
	bar := tw.bar(n, '█')
	switch {
	case context:
		st.faint.wrap(&b, bar)
	case n.IsError():
		st.err.wrap(&b, bar)
	default:
		st.service(n.Service).wrap(&b, bar)
	}
	tw.line(b.String())

	if n.IsError() || tw.o.Attrs {
		dp := tw.prefix(more, n.Depth, true, hasKids) + "  "
		if msg := n.Span.Status().Message(); n.IsError() && msg != "" {
			b.Reset()
			st.faint.wrap(&b, dp)
			st.err.wrap(&b, truncate("error: "+sanitize(msg), tw.width-textWidth(dp)))
			tw.line(b.String())
		}
		if tw.o.Attrs {
			tw.details(n, dp)
		}
	}
}

// details lists IDs, attributes, events and links under a span.
func (tw *treeWriter) details(n *TreeNode, dp string) {
	st := tw.st
	room := tw.width - textWidth(dp)
	out := func(key, value string) {
		var b strings.Builder
		st.faint.wrap(&b, dp)
		k := truncate(key, room)
		st.key.wrap(&b, k)
		if r := room - textWidth(k); value != "" && r > 1 {
			b.WriteByte(' ')
			b.WriteString(truncate(value, r-1))
		}
		tw.line(b.String())
	}
	sp := n.Span
	ids := "id " + sp.SpanID().String()
	if p := sp.ParentSpanID(); !p.IsEmpty() {
		ids += "  parent " + p.String()
		if n.ViaLink {
			ids += " (child_of link)"
		}
	}
	if sc := n.Scope; sc.Name() != "" {
		ids += "  scope " + sanitize(sc.Name())
		if sc.Version() != "" {
			ids += " " + sanitize(sc.Version())
		}
	}
	out(ids, "")
	for _, kv := range sortedAttrs(sp.Attributes()) {
		out("span."+kv.k+" =", kv.v)
	}
	res, ok := tw.resources[n.Resource]
	if !ok {
		for _, kv := range sortedAttrs(n.Resource.Attributes()) {
			res = append(res, attrKV{"resource." + kv.k + " =", kv.v})
		}
		if tw.resources == nil {
			tw.resources = map[pcommon.Resource][]attrKV{}
		}
		tw.resources[n.Resource] = res
	}
	for _, kv := range res {
		out(kv.k, kv.v)
	}
	evs := sp.Events()
	for i := 0; i < evs.Len(); i++ {
		ev := evs.At(i)
		off := "+" + formatDuration(uint64(max(0, int64(ev.Timestamp())-int64(n.Start))))
		out("event "+off, sanitize(ev.Name()))
		for _, kv := range sortedAttrs(ev.Attributes()) {
			out("  "+kv.k+" =", kv.v)
		}
	}
	links := sp.Links()
	for i := 0; i < links.Len(); i++ {
		l := links.At(i)
		target := l.SpanID().String()
		if l.TraceID() != sp.TraceID() {
			target = l.TraceID().String() + "/" + target
		}
		out("link →", target)
		for _, kv := range sortedAttrs(l.Attributes()) {
			out("  "+kv.k+" =", kv.v)
		}
	}
}

type attrKV struct{ k, v string }

func sortedAttrs(m pcommon.Map) []attrKV {
	if m.Len() == 0 {
		return nil
	}
	out := make([]attrKV, 0, m.Len())
	for k, v := range m.All() {
		out = append(out, attrKV{sanitize(k), sanitize(v.AsString())})
	}
	slices.SortStableFunc(out, func(a, b attrKV) int { return strings.Compare(a.k, b.k) })
	return out
}

// bar draws the span's place in the trace's time range in barW cells, with
// eighth blocks for the fractional end.
func (tw *treeWriter) bar(n *TreeNode, full rune) string {
	total := float64(tw.t.End - tw.t.Start)
	cells := tw.barW
	var s8, e8 int
	if total <= 0 {
		s8, e8 = 0, cells*8
	} else {
		s8 = int(float64(n.Start-min(n.Start, tw.t.Start)) / total * float64(cells*8))
		e8 = int(float64(n.End-min(n.End, tw.t.Start))/total*float64(cells*8) + 0.999)
	}
	s8 = min(max(s8, 0), cells*8-1)
	e8 = min(max(e8, s8+1), cells*8)
	startCell := s8 / 8
	length := e8 - startCell*8
	var b strings.Builder
	b.WriteString(strings.Repeat(" ", startCell))
	if full == '█' {
		b.WriteString(strings.Repeat("█", length/8))
		if r := length % 8; r > 0 {
			b.WriteRune([]rune("▏▎▍▌▋▊▉")[r-1])
		}
	} else {
		b.WriteString(strings.Repeat(string(full), (length+7)/8))
	}
	return b.String()
}

func kindName(k ptrace.SpanKind) string {
	switch k {
	case ptrace.SpanKindServer:
		return "server"
	case ptrace.SpanKindClient:
		return "client"
	case ptrace.SpanKindProducer:
		return "producer"
	case ptrace.SpanKindConsumer:
		return "consumer"
	case ptrace.SpanKindInternal:
		return "internal"
	}
	return "unspec"
}

// formatDuration prints nanoseconds in at most 8 columns: 740ns, 12.3µs,
// 412.3ms, 2.35s, 1m02s, 3h04m.
func formatDuration(ns uint64) string {
	switch {
	case ns < 1_000:
		return strconv.FormatUint(ns, 10) + "ns"
	case ns < 1_000_000:
		return strconv.FormatFloat(float64(ns)/1e3, 'f', 1, 64) + "µs"
	case ns < 1_000_000_000:
		return strconv.FormatFloat(float64(ns)/1e6, 'f', 1, 64) + "ms"
	case ns < 60_000_000_000:
		return strconv.FormatFloat(float64(ns)/1e9, 'f', 2, 64) + "s"
	case ns < 3600_000_000_000:
		s := ns / 1_000_000_000
		return fmt.Sprintf("%dm%02ds", s/60, s%60)
	case ns < 100*3600_000_000_000:
		m := ns / 60_000_000_000
		return fmt.Sprintf("%dh%02dm", m/60, m%60)
	}
	return fmt.Sprintf("%dh", ns/3600_000_000_000)
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return strconv.Itoa(n) + " " + word + "s"
}

func mapSanitize(in []string) []string {
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = sanitize(s)
	}
	return out
}

// sanitize makes text from a trace safe to print on a terminal: control
// characters (escape sequences could rewrite the screen) are shown as Go
// escapes, invalid UTF-8 as U+FFFD.
func sanitize(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == 0x7f || c == 0xc2 {
			clean = false
			break
		}
	}
	if clean && utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for _, r := range strings.ToValidUTF8(s, "\uFFFD") {
		switch {
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// textWidth is the number of terminal columns of sanitised text.
func textWidth(s string) int {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return ansi.StringWidth(s)
		}
	}
	return len(s)
}

// truncate cuts sanitised text to w columns, ending in "…" when cut.
func truncate(s string, w int) string {
	if w <= 0 {
		return ""
	}
	if textWidth(s) <= w {
		return s
	}
	if w == 1 {
		return "…"
	}
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			ascii = false
			break
		}
	}
	if ascii {
		return s[:w-1] + "…"
	}
	return ansi.Truncate(s, w, "…")
}
