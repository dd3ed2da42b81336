package render

import (
	"cmp"
	"slices"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// NoService is shown for spans whose resource has no service.name.
const NoService = "<no service>"

// TreeNode is one line of a trace tree: a span, or a placeholder standing
// for a parent span that is not in the trace.
type TreeNode struct {
	Span     ptrace.Span // zero value for a placeholder
	Resource pcommon.Resource
	Scope    pcommon.InstrumentationScope
	Service  string

	// Missing marks a placeholder for the parent span MissingID, which the
	// trace does not hold; its children are the orphans that name it.
	Missing   bool
	MissingID pcommon.SpanID
	// Cycle marks a span whose parent chain loops back to itself; it is
	// shown at the top so that nothing is lost.
	Cycle bool

	// Start and End in Unix nanoseconds; End is never before Start (a span
	// that claims to end before it starts is shown with zero duration).
	Start, End uint64
	Depth      int
	Parent     *TreeNode
	Children   []*TreeNode
	// Skew is set when the span lies outside its parent: it starts before
	// the parent, or (for synchronous calls) ends after it.
	Skew bool
	// ViaLink is set when the parent comes from an OpenTracing child_of link
	// rather than the parent span ID.
	ViaLink bool
}

// IsError reports whether the span's status is an error.
func (n *TreeNode) IsError() bool {
	return !n.Missing && n.Span.Status().Code() == ptrace.StatusCodeError
}

// Duration is End-Start in nanoseconds.
func (n *TreeNode) Duration() uint64 { return n.End - n.Start }

// Tree is a trace arranged by parent: roots (and placeholders for missing
// parents) at the top, children ordered by start time.
type Tree struct {
	TraceID pcommon.TraceID
	Roots   []*TreeNode
	// Nodes lists every line in display order (depth first).
	Nodes []*TreeNode

	Spans      int // distinct spans
	Duplicates int // further copies of a span ID already seen (not shown)
	Errors     int
	Orphans    int // spans whose parent is missing
	Skewed     int
	Services   []string // in order of first appearance in display order
	Start, End uint64   // earliest start, latest end of any span
	Root       *TreeNode
}

// BuildTree arranges the spans of td (one trace) as a tree. It never fails:
// missing parents get a placeholder, duplicated span IDs are shown once,
// parent cycles are broken, and every span appears exactly once.
func BuildTree(td ptrace.Traces) *Tree {
	t := &Tree{}
	var nodes []*TreeNode
	byID := map[pcommon.SpanID]*TreeNode{}
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		rs := rss.At(i)
		svc := NoService
		if v, ok := rs.Resource().Attributes().Get("service.name"); ok && v.AsString() != "" {
			svc = v.AsString()
		}
		sss := rs.ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			ss := sss.At(j)
			spans := ss.Spans()
			for k := 0; k < spans.Len(); k++ {
				sp := spans.At(k)
				id := sp.SpanID()
				if !id.IsEmpty() {
					if _, dup := byID[id]; dup {
						t.Duplicates++
						continue
					}
				}
				start, end := uint64(sp.StartTimestamp()), uint64(sp.EndTimestamp())
				if end < start {
					end = start
				}
				n := &TreeNode{Span: sp, Resource: rs.Resource(), Scope: ss.Scope(), Service: svc, Start: start, End: end}
				if !id.IsEmpty() {
					byID[id] = n
				}
				if len(nodes) == 0 {
					t.TraceID = sp.TraceID()
				}
				nodes = append(nodes, n)
			}
		}
	}
	t.Spans = len(nodes)

	// Link each span to its parent, or to a placeholder for a missing one.
	var tops []*TreeNode
	missing := map[pcommon.SpanID]*TreeNode{}
	for _, n := range nodes {
		pid := n.Span.ParentSpanID()
		if pid.IsEmpty() {
			if p := childOfLink(n, byID); p != nil {
				n.Parent, n.ViaLink = p, true
				p.Children = append(p.Children, n)
				continue
			}
			tops = append(tops, n)
			continue
		}
		if p, ok := byID[pid]; ok {
			if p == n { // its own parent: a one-span cycle
				n.Cycle = true
				tops = append(tops, n)
				continue
			}
			n.Parent = p
			p.Children = append(p.Children, n)
			continue
		}
		t.Orphans++
		ph, ok := missing[pid]
		if !ok {
			ph = &TreeNode{Missing: true, MissingID: pid, Start: n.Start, End: n.End}
			missing[pid] = ph
			tops = append(tops, ph)
		}
		ph.Start, ph.End = min(ph.Start, n.Start), max(ph.End, n.End)
		n.Parent = ph
		ph.Children = append(ph.Children, n)
	}

	byStart := func(a, b *TreeNode) int {
		if c := cmp.Compare(a.Start, b.Start); c != 0 {
			return c
		}
		if a.Missing != b.Missing { // real roots before placeholders
			if a.Missing {
				return 1
			}
			return -1
		}
		if a.Missing {
			return slices.Compare(a.MissingID[:], b.MissingID[:])
		}
		ai, bi := a.Span.SpanID(), b.Span.SpanID()
		return slices.Compare(ai[:], bi[:])
	}
	slices.SortStableFunc(tops, byStart)

	// Depth-first walk with an explicit stack (a chain of 100,000 spans
	// must not exhaust anything). A span reached twice is in a parent cycle:
	// walked once only.
	visited := make(map[*TreeNode]bool, len(nodes))
	order := make([]*TreeNode, 0, len(nodes)+len(missing))
	walk := func(top *TreeNode) {
		top.Depth = 0
		stack := []*TreeNode{top}
		for len(stack) > 0 {
			n := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			visited[n] = true
			order = append(order, n)
			kids := n.Children[:0]
			for _, c := range n.Children {
				if !visited[c] && c != top {
					kids = append(kids, c)
				}
			}
			n.Children = kids
			slices.SortStableFunc(n.Children, byStart)
			for i := len(n.Children) - 1; i >= 0; i-- {
				c := n.Children[i]
				c.Depth = n.Depth + 1
				c.Parent = n
				visited[c] = true
				stack = append(stack, c)
			}
		}
	}
	for _, top := range tops {
		walk(top)
	}
	t.Roots = tops
	// Whatever the walk did not reach hangs in a parent cycle: break each
	// cycle at its earliest span and show it at the top.
	for _, n := range nodes {
		if visited[n] {
			continue
		}
		n.Cycle = true
		if n.Parent != nil {
			n.Parent.Children = slices.DeleteFunc(n.Parent.Children, func(c *TreeNode) bool { return c == n })
		}
		n.Parent = nil
		t.Roots = append(t.Roots, n)
		walk(n)
	}
	t.Nodes = order

	seen := map[string]bool{}
	first := true
	for _, n := range order {
		if n.Missing {
			continue
		}
		if first || n.Start < t.Start {
			t.Start = n.Start
		}
		if first || n.End > t.End {
			t.End = n.End
		}
		first = false
		if !seen[n.Service] {
			seen[n.Service] = true
			t.Services = append(t.Services, n.Service)
		}
		if n.IsError() {
			t.Errors++
		}
		if p := n.Parent; p != nil && !p.Missing && outsideParent(n, p) {
			n.Skew = true
			t.Skewed++
		}
		if t.Root == nil && n.Parent == nil && !n.Cycle {
			t.Root = n
		}
	}
	return t
}

// childOfLink finds the parent named by an OpenTracing child_of link (as
// Jaeger clients and the OpenTracing shim record it) on a parentless span.
func childOfLink(n *TreeNode, byID map[pcommon.SpanID]*TreeNode) *TreeNode {
	links := n.Span.Links()
	for i := 0; i < links.Len(); i++ {
		l := links.At(i)
		if v, ok := l.Attributes().Get("opentracing.ref_type"); !ok || v.AsString() != "child_of" {
			continue
		}
		if l.TraceID() != n.Span.TraceID() {
			continue
		}
		if p, ok := byID[l.SpanID()]; ok && p != n {
			return p
		}
	}
	return nil
}

// outsideParent: a child that starts before its parent is always skew; one
// that ends after it is skew only for synchronous calls (a consumer, or the
// child of a producer, may outlive the span that sent the message).
func outsideParent(c, p *TreeNode) bool {
	if c.Start < p.Start {
		return true
	}
	async := c.Span.Kind() == ptrace.SpanKindConsumer || p.Span.Kind() == ptrace.SpanKindProducer || c.ViaLink
	return !async && c.End > p.End
}
