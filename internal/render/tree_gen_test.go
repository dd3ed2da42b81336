package render

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// genServices are the services of generated traces.
var genServices = []string{"frontend", "checkout", "payment", "inventory", "cart", "postgres-proxy", "redis-cache", "email-worker"}

// genTrace builds a deterministic trace of n spans from seed: a root server
// span, then spans under earlier ones (often the previous one, so some
// chains run deep), client calls answered by a server span in another
// service, producer/consumer pairs, errors with messages, events, links,
// one orphan (its parent was never sent) and one child that starts before
// its parent (clock skew). The same n and seed give the same bytes.
func genTrace(n int, seed uint64) ptrace.Traces {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	td := ptrace.NewTraces()
	scopes := map[string]ptrace.SpanSlice{}
	for i, svc := range genServices {
		rs := td.ResourceSpans().AppendEmpty()
		a := rs.Resource().Attributes()
		a.PutStr("service.name", svc)
		a.PutStr("service.version", fmt.Sprintf("1.%d.0", i))
		a.PutStr("k8s.pod.name", fmt.Sprintf("%s-%04x", svc, r.Uint32()&0xffff))
		ss := rs.ScopeSpans().AppendEmpty()
		ss.Scope().SetName("gen/" + svc)
		scopes[svc] = ss.Spans()
	}
	var traceID pcommon.TraceID
	binary.BigEndian.PutUint64(traceID[:8], r.Uint64())
	binary.BigEndian.PutUint64(traceID[8:], r.Uint64())

	type info struct {
		id         pcommon.SpanID
		svc        string
		kind       ptrace.SpanKind
		start, end uint64
	}
	spans := make([]info, 0, n)
	newID := func() pcommon.SpanID {
		var id pcommon.SpanID
		binary.BigEndian.PutUint64(id[:], r.Uint64()|1)
		return id
	}
	names := []string{"GET /api/cart", "POST /api/checkout", "SELECT orders", "charge card", "render template", "GET", "publish order.created", "process order.created", "compute totals", "cache lookup"}
	base := uint64(1795168800_000_000_000) // 2026-11-20 10:00 UTC
	for i := range n {
		var sp info
		parent := -1
		if i > 0 {
			if r.IntN(10) < 3 {
				parent = i - 1
			} else {
				parent = max(0, i-1-r.IntN(min(i, 50)))
			}
		}
		if parent < 0 {
			sp = info{svc: "frontend", kind: ptrace.SpanKindServer, start: base, end: base + uint64(n)*2_000_000}
		} else {
			p := spans[parent]
			sp.svc = p.svc
			switch {
			case p.kind == ptrace.SpanKindClient:
				sp.kind = ptrace.SpanKindServer
				sp.svc = genServices[r.IntN(len(genServices))]
			case p.kind == ptrace.SpanKindProducer:
				sp.kind = ptrace.SpanKindConsumer
				sp.svc = "email-worker"
			default:
				sp.kind = []ptrace.SpanKind{ptrace.SpanKindInternal, ptrace.SpanKindClient, ptrace.SpanKindClient, ptrace.SpanKindProducer, ptrace.SpanKindUnspecified}[r.IntN(5)]
			}
			width := max(p.end-p.start, 1)
			sp.start = p.start + uint64(r.Int64N(int64(width)))
			sp.end = sp.start + uint64(r.Int64N(int64(p.end-sp.start)+1))
			if sp.kind == ptrace.SpanKindConsumer {
				sp.end = sp.start + uint64(r.Int64N(int64(width)+1)) // may outlive the producer
			}
		}
		sp.id = newID()
		spans = append(spans, sp)

		s := scopes[sp.svc].AppendEmpty()
		s.SetTraceID(traceID)
		s.SetSpanID(sp.id)
		if parent >= 0 {
			s.SetParentSpanID(spans[parent].id)
		}
		s.SetName(names[r.IntN(len(names))])
		s.SetKind(sp.kind)
		s.SetStartTimestamp(pcommon.Timestamp(sp.start))
		s.SetEndTimestamp(pcommon.Timestamp(sp.end))
		s.Attributes().PutInt("gen.index", int64(i))
		if sp.kind == ptrace.SpanKindClient {
			s.Attributes().PutStr("http.method", "GET")
			s.Attributes().PutInt("http.status_code", 200)
		}
		switch x := r.IntN(100); {
		case x < 3:
			s.Status().SetCode(ptrace.StatusCodeError)
			s.Status().SetMessage(fmt.Sprintf("upstream failed after %d retries", r.IntN(5)))
		case x < 20:
			s.Status().SetCode(ptrace.StatusCodeOk)
		}
		if r.IntN(100) < 5 {
			ev := s.Events().AppendEmpty()
			ev.SetName("retry")
			ev.SetTimestamp(pcommon.Timestamp(sp.start + (sp.end-sp.start)/2))
			ev.Attributes().PutInt("attempt", int64(r.IntN(4)+1))
		}
		if i > 0 && r.IntN(100) < 2 {
			l := s.Links().AppendEmpty()
			l.SetTraceID(traceID)
			l.SetSpanID(spans[r.IntN(i)].id)
		}
	}
	if n > 10 {
		// An orphan: the last span's parent was never sent.
		last := scopes[spans[n-1].svc]
		last.At(last.Len() - 1).SetParentSpanID(newID())
		// Clock skew: the middle span starts before its parent.
		mid := findSpan(td, spans[n/2].id)
		mid.SetStartTimestamp(pcommon.Timestamp(base - 5_000_000))
	}
	return td
}

func findSpan(td ptrace.Traces, id pcommon.SpanID) ptrace.Span {
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		sss := rss.At(i).ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			spans := sss.At(j).Spans()
			for k := 0; k < spans.Len(); k++ {
				if spans.At(k).SpanID() == id {
					return spans.At(k)
				}
			}
		}
	}
	panic("span not found")
}
