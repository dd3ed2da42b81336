// Package benchkit holds what the bench harnesses share: the synthetic
// shop-like traces they write, random trace IDs and the process's CPU time.
// It is for the harnesses under bench/ only; it never writes or reads a
// bucket itself and must not be imported by tracectl's own packages.
package benchkit

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"syscall"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tracectl/tracectl/internal/blocks/block"
)

var (
	services = []string{"frontend", "checkout", "cart", "inventory", "payment", "shipping", "auth", "recommendation"}
	ops      = []string{"GET /api/cart", "POST /api/checkout", "SELECT orders", "redis GET", "publish order", "render template", "validate request", "compute totals"}
	routes   = []string{"/api/cart", "/api/checkout", "/api/items/{id}", "/health"}
)

// Trace makes a whole n-span trace: a root server span and a tree of
// children across one to three services with HTTP attributes.
func Trace(rng *rand.Rand, id block.TraceID, n int, start time.Time) ptrace.Traces {
	return TracePart(rng, id, n, start, 0, n, false)
}

// TracePart makes spans [first, last) of the n-span trace Trace makes from
// the same rng state: every random draw happens for every span, so two
// parts made from rngs with the same seed belong to one trace. dup adds
// the span before first again (a repeat of the other part's, as a retried
// export sends).
func TracePart(rng *rand.Rand, id block.TraceID, n int, start time.Time, first, last int, dup bool) ptrace.Traces {
	td := ptrace.NewTraces()
	svcs := 1 + rng.IntN(3)
	scopes := make([]ptrace.ScopeSpans, svcs)
	f := rng.IntN(len(services))
	for i := range svcs {
		rs := td.ResourceSpans().AppendEmpty()
		a := rs.Resource().Attributes()
		a.PutStr("service.name", services[(f+i)%len(services)])
		a.PutStr("service.version", "1.4.2")
		a.PutStr("k8s.namespace.name", "shop")
		a.PutStr("k8s.pod.name", fmt.Sprintf("%s-%d", services[(f+i)%len(services)], rng.IntN(5)))
		ss := rs.ScopeSpans().AppendEmpty()
		ss.Scope().SetName("io.opentelemetry.http")
		ss.Scope().SetVersion("1.30.0")
		scopes[i] = ss
	}
	var ids []pcommon.SpanID
	t := start
	for i := range n {
		var sid pcommon.SpanID
		binary.BigEndian.PutUint64(sid[:], rng.Uint64())
		parent := pcommon.SpanID{}
		if i > 0 {
			parent = ids[rng.IntN(len(ids))]
		}
		ids = append(ids, sid)
		name := ops[rng.IntN(len(ops))]
		d := time.Duration(50+rng.IntN(5000)) * time.Microsecond
		spanStart := t
		t = t.Add(time.Duration(rng.IntN(200)) * time.Microsecond)
		route, errSpan := routes[rng.IntN(len(routes))], rng.IntN(20) == 0
		if i < first-1 || i >= last || (i == first-1 && !dup) {
			continue
		}
		sp := scopes[i%svcs].Spans().AppendEmpty()
		sp.SetTraceID(pcommon.TraceID(id))
		sp.SetSpanID(sid)
		if i > 0 {
			sp.SetParentSpanID(parent)
			sp.SetKind(ptrace.SpanKindInternal)
		} else {
			sp.SetKind(ptrace.SpanKindServer)
		}
		sp.SetName(name)
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(spanStart))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(spanStart.Add(d)))
		a := sp.Attributes()
		a.PutStr("http.request.method", "GET")
		a.PutStr("http.route", route)
		a.PutInt("http.response.status_code", 200)
		if errSpan {
			sp.Status().SetCode(ptrace.StatusCodeError)
			sp.Status().SetMessage("upstream timeout")
		}
	}
	return td
}

// TraceID draws a random trace ID from rng.
func TraceID(rng *rand.Rand) block.TraceID {
	var id block.TraceID
	binary.BigEndian.PutUint64(id[:8], rng.Uint64())
	binary.BigEndian.PutUint64(id[8:], rng.Uint64())
	return id
}

// CPUTime is the user and system CPU time the process has used.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Ms is d in milliseconds, to the microsecond.
func Ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
