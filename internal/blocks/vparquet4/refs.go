package vparquet4

import (
	"errors"
	"fmt"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tracectl/tracectl/internal/blocks/block"
)

// ScopeRef is the spans of one trace under one resource and scope of a
// ptrace.Traces, referenced in place: nothing is copied, so the Traces
// they come from must not change while a ScopeRef is in use.
type ScopeRef struct {
	Resource ptrace.ResourceSpans
	Scope    ptrace.ScopeSpans
	Spans    []ptrace.Span
}

// TraceRefs is the spans of one trace in a ptrace.Traces.
type TraceRefs struct {
	ID     block.TraceID
	Scopes []ScopeRef
	Spans  int
}

// IndexByTrace splits td by trace ID without copying: each trace gets
// references to its spans, grouped by the resource and scope they sit
// under, in the order received. Traces come in order of first appearance.
// It is the zero-copy counterpart of GroupByTrace, for holders (the serve
// head) that keep td alive and unchanged until the block is written.
func IndexByTrace(td ptrace.Traces) []TraceRefs {
	var out []TraceRefs
	idx := map[block.TraceID]int{}
	for _, rs := range td.ResourceSpans().All() {
		for _, ss := range rs.ScopeSpans().All() {
			spans := ss.Spans()
			// Most scopes hold one trace, or runs of one; remember the
			// last trace's entry to skip the map for runs.
			last, lastAt := block.TraceID{}, -1
			for i := 0; i < spans.Len(); i++ {
				sp := spans.At(i)
				id := block.TraceID(sp.TraceID())
				t := lastAt
				if t < 0 || id != last {
					var ok bool
					t, ok = idx[id]
					if !ok {
						t = len(out)
						idx[id] = t
						out = append(out, TraceRefs{ID: id})
					}
					last, lastAt = id, t
				}
				tr := &out[t]
				n := len(tr.Scopes)
				if n == 0 || tr.Scopes[n-1].Scope != ss {
					tr.Scopes = append(tr.Scopes, ScopeRef{Resource: rs, Scope: ss})
					n++
				}
				tr.Scopes[n-1].Spans = append(tr.Scopes[n-1].Spans, sp)
				tr.Spans++
			}
		}
	}
	return out
}

// AppendRefs copies the referenced spans, with their resource and scope,
// into dst: one resource and scope entry per ScopeRef.
func AppendRefs(dst ptrace.Traces, refs []ScopeRef) {
	for _, r := range refs {
		rs := dst.ResourceSpans().AppendEmpty()
		r.Resource.Resource().CopyTo(rs.Resource())
		rs.SetSchemaUrl(r.Resource.SchemaUrl())
		ss := rs.ScopeSpans().AppendEmpty()
		r.Scope.Scope().CopyTo(ss.Scope())
		ss.SetSchemaUrl(r.Scope.SchemaUrl())
		out := ss.Spans()
		out.EnsureCapacity(len(r.Spans))
		for _, sp := range r.Spans {
			sp.CopyTo(out.AppendEmpty())
		}
	}
}

// AddRefs is Add for spans referenced in place (one piece of trace id):
// the writer reads them without copying and keeps the references until the
// row is built, so the Traces they point into must not change until Close.
func (w *BlockWriter) AddRefs(id block.TraceID, refs []ScopeRef) error {
	if err := w.startTrace(id); err != nil {
		return err
	}
	if n := w.asm.addRefs(refs); n > 0 {
		return w.fail(fmt.Errorf("adding trace %s: %d spans belong to other traces", id, n))
	}
	return nil
}

// startTrace checks the ID order and starts trace id, or continues it.
func (w *BlockWriter) startTrace(id block.TraceID) error {
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return errors.New("vparquet4: Add after Close")
	}
	if w.pending {
		switch c := id.Compare(w.asm.id); {
		case c < 0:
			return w.fail(fmt.Errorf("trace %s added after %s: traces must come in ascending ID order", id, w.asm.id))
		case c > 0:
			if err := w.flushTrace(); err != nil {
				return err
			}
		}
	}
	if !w.pending {
		w.asm.reset(id)
		w.pending = true
	}
	return nil
}
