package vparquet4

import "go.opentelemetry.io/collector/pdata/ptrace"

// assignNestedSet fills ParentID, NestedSetLeft and NestedSetRight of every
// span of tr (§3.8), over the spans in stored order.
func assignNestedSet(tr *Trace, scratch *nestedScratch) {
	spans := scratch.spans[:0]
	for i := range tr.ResourceSpans {
		rs := &tr.ResourceSpans[i]
		for j := range rs.ScopeSpans {
			ss := &rs.ScopeSpans[j]
			for k := range ss.Spans {
				sp := &ss.Spans[k]
				sp.ParentID, sp.NestedSetLeft, sp.NestedSetRight = 0, 0, 0
				spans = append(spans, sp)
			}
		}
	}
	scratch.spans = spans

	// Index span IDs; more than two spans per ID, or no top span, and the
	// numbering is left at zero.
	byID := scratch.byID
	if byID == nil {
		byID = map[idKey][2]int32{}
		scratch.byID = byID
	}
	clear(byID)
	hasTop := false
	for i, sp := range spans {
		if len(sp.ParentSpanID) == 0 {
			hasTop = true
		}
		k := keyOf(sp.SpanID)
		e, ok := byID[k]
		switch {
		case !ok:
			byID[k] = [2]int32{int32(i), -1}
		case e[1] < 0:
			e[1] = int32(i)
			byID[k] = e
		default:
			return
		}
	}
	if !hasTop {
		return
	}

	// children[i] lists the children of span i in stored order, as a linked
	// list through next (first child, next sibling).
	first := resize(scratch.first, len(spans))
	last := resize(scratch.last, len(spans))
	next := resize(scratch.next, len(spans))
	for i := range spans {
		first[i], last[i], next[i] = -1, -1, -1
	}
	scratch.first, scratch.last, scratch.next = first, last, next
	for i, sp := range spans {
		if len(sp.ParentSpanID) == 0 {
			continue
		}
		e, ok := byID[keyOf(sp.ParentSpanID)]
		if !ok {
			continue
		}
		p := e[0]
		if e[1] >= 0 {
			p = pickParent(spans, e, sp.Kind)
		}
		if p == int32(i) {
			continue
		}
		if first[p] < 0 {
			first[p] = int32(i)
		} else {
			next[last[p]] = int32(i)
		}
		last[p] = int32(i)
	}

	c := int32(1)
	stack := scratch.stack[:0]
	for i, sp := range spans {
		if len(sp.ParentSpanID) != 0 {
			continue
		}
		// Iterative depth-first walk: a frame is (span, next child to visit).
		sp.ParentID = -1
		sp.NestedSetLeft = c
		c++
		stack = append(stack, frame{int32(i), first[i]})
		for len(stack) > 0 {
			top := &stack[len(stack)-1]
			child := top.child
			if child < 0 {
				spans[top.span].NestedSetRight = c
				c++
				stack = stack[:len(stack)-1]
				continue
			}
			top.child = next[child]
			cs := spans[child]
			if cs.NestedSetLeft != 0 { // already placed: defend against cycles
				continue
			}
			cs.ParentID = spans[top.span].NestedSetLeft
			cs.NestedSetLeft = c
			c++
			stack = append(stack, frame{child, first[child]})
		}
	}
	scratch.stack = stack
}

type frame struct{ span, child int32 }

// pickParent chooses between two spans sharing the parent's ID: the SERVER
// one, or the CLIENT one when the child is itself a SERVER.
func pickParent(spans []*Span, e [2]int32, childKind int64) int32 {
	want := int64(ptrace.SpanKindServer)
	if childKind == int64(ptrace.SpanKindServer) {
		want = int64(ptrace.SpanKindClient)
	}
	for _, i := range e {
		if spans[i].Kind == want {
			return i
		}
	}
	return e[0]
}

type nestedScratch struct {
	spans             []*Span
	byID              map[idKey][2]int32
	first, last, next []int32
	stack             []frame
}

func resize(s []int32, n int) []int32 {
	if cap(s) < n {
		return make([]int32, n)
	}
	return s[:n]
}

// idKey is a span ID as a map key without allocating: up to 16 bytes and
// the length (IDs are 8 bytes; longer ones from foreign files are cut).
type idKey struct {
	b [16]byte
	n uint8
}

func keyOf(id []byte) idKey {
	var k idKey
	k.n = uint8(copy(k.b[:], id))
	return k
}
