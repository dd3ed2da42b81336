// Package ingesttest provides an in-memory ingest.Consumer for tests of
// receivers and of the code that wires them. It keeps everything in memory
// and must not be used outside tests.
package ingesttest

import (
	"context"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// Batch is one Consume call that was accepted.
type Batch struct {
	Tenant string
	Traces ptrace.Traces
}

// Recorder is a Consumer (ingest.Consumer) that records what it accepts.
// Safe for concurrent use.
type Recorder struct {
	mu      sync.Mutex
	batches []Batch
	err     error
	calls   int
	changed chan struct{}
}

// Consume records a copy of td under tenant, or returns the error set with
// SetErr without recording anything.
func (r *Recorder) Consume(_ context.Context, tenant string, td ptrace.Traces) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if r.err != nil {
		return r.err
	}
	cp := ptrace.NewTraces()
	td.CopyTo(cp)
	r.batches = append(r.batches, Batch{Tenant: tenant, Traces: cp})
	if r.changed != nil {
		close(r.changed)
		r.changed = nil
	}
	return nil
}

// SetErr makes every later Consume return err (nil: accept again).
func (r *Recorder) SetErr(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.err = err
}

// Calls is how many times Consume was called, accepted or not.
func (r *Recorder) Calls() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls
}

// Batches returns the accepted batches in arrival order.
func (r *Recorder) Batches() []Batch {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Batch(nil), r.batches...)
}

// SpanCount is the number of spans accepted so far.
func (r *Recorder) SpanCount() int {
	n := 0
	for _, b := range r.Batches() {
		n += b.Traces.SpanCount()
	}
	return n
}

// WaitSpans waits until at least n spans were accepted, failing t after
// timeout; it returns the batches.
func (r *Recorder) WaitSpans(t testing.TB, n int, timeout time.Duration) []Batch {
	t.Helper()
	deadline := time.After(timeout)
	for {
		r.mu.Lock()
		total := 0
		for _, b := range r.batches {
			total += b.Traces.SpanCount()
		}
		if total >= n {
			out := append([]Batch(nil), r.batches...)
			r.mu.Unlock()
			return out
		}
		if r.changed == nil {
			r.changed = make(chan struct{})
		}
		ch := r.changed
		r.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("waited %v for %d spans, have %d", timeout, n, total)
		}
	}
}

// Found is a span with the resource and scope it came under.
type Found struct {
	Tenant   string
	Resource pcommon.Resource
	Scope    pcommon.InstrumentationScope
	Span     ptrace.Span
}

// FindSpan returns the first accepted span named name.
func (r *Recorder) FindSpan(name string) (Found, bool) {
	for _, b := range r.Batches() {
		if f, ok := FindSpan(b.Traces, name); ok {
			f.Tenant = b.Tenant
			return f, true
		}
	}
	return Found{}, false
}

// FindSpan returns the first span of td named name.
func FindSpan(td ptrace.Traces, name string) (Found, bool) {
	for _, rs := range td.ResourceSpans().All() {
		for _, ss := range rs.ScopeSpans().All() {
			for _, s := range ss.Spans().All() {
				if s.Name() == name {
					return Found{Resource: rs.Resource(), Scope: ss.Scope(), Span: s}, true
				}
			}
		}
	}
	return Found{}, false
}
