package search

import (
	"encoding/hex"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/traceql"
)

// typeOther is the type of attribute values a comparison never matches
// (arrays, maps, bytes); they still exist for `!= nil`.
const typeOther traceql.StaticType = 100

// part is what one place (a block's row, the head) says about a trace
// that matched.
type part struct {
	id          block.TraceID
	hasRoot     bool
	rootService string
	rootName    string
	start, end  uint64 // unix ns
	stats       map[string]ServiceStats
	spanSet     *SpanSet // nil for tags searches
}

// traceInfo is the trace-level data the intrinsics read.
type traceInfo struct {
	rootService, rootName string
	start, end            uint64
}

// pdSpan adapts an OTLP span to traceql.Span.
type pdSpan struct {
	sp  ptrace.Span
	res pcommon.Map
	tr  *traceInfo
}

func staticOf(v pcommon.Value) traceql.Static {
	switch v.Type() {
	case pcommon.ValueTypeStr:
		return traceql.Static{Type: traceql.TypeString, S: v.Str()}
	case pcommon.ValueTypeInt:
		return traceql.Static{Type: traceql.TypeInt, I: v.Int()}
	case pcommon.ValueTypeDouble:
		return traceql.Static{Type: traceql.TypeFloat, F: v.Double()}
	case pcommon.ValueTypeBool:
		return traceql.Static{Type: traceql.TypeBool, B: v.Bool()}
	}
	return traceql.Static{Type: typeOther}
}

func (s *pdSpan) Attr(a *traceql.Attribute) (traceql.Static, bool) {
	switch a.Scope {
	case traceql.ScopeSpan:
		if v, ok := s.sp.Attributes().Get(a.Name); ok {
			return staticOf(v), true
		}
		return traceql.Static{}, false
	case traceql.ScopeResource:
		if v, ok := s.res.Get(a.Name); ok {
			return staticOf(v), true
		}
		return traceql.Static{}, false
	}
	return intrinsic(a.Intrinsic, s.sp.Name(), int64(s.sp.Status().Code()), s.sp.Status().Message(), int64(s.sp.Kind()),
		spanDuration(uint64(s.sp.StartTimestamp()), uint64(s.sp.EndTimestamp())), s.tr)
}

func spanDuration(start, end uint64) uint64 {
	if end < start {
		return 0
	}
	return end - start
}

func intrinsic(in traceql.Intrinsic, name string, status int64, statusMessage string, kind int64, dur uint64, tr *traceInfo) (traceql.Static, bool) {
	switch in {
	case traceql.IntrinsicName:
		return traceql.Static{Type: traceql.TypeString, S: name}, true
	case traceql.IntrinsicStatus:
		return traceql.Static{Type: traceql.TypeStatus, I: status}, true
	case traceql.IntrinsicStatusMessage:
		return traceql.Static{Type: traceql.TypeString, S: statusMessage}, true
	case traceql.IntrinsicKind:
		return traceql.Static{Type: traceql.TypeKind, I: kind}, true
	case traceql.IntrinsicDuration:
		return traceql.Static{Type: traceql.TypeDuration, D: time.Duration(dur)}, true
	case traceql.IntrinsicRootName:
		return traceql.Static{Type: traceql.TypeString, S: tr.rootName}, true
	case traceql.IntrinsicRootServiceName:
		return traceql.Static{Type: traceql.TypeString, S: tr.rootService}, true
	case traceql.IntrinsicTraceDuration:
		return traceql.Static{Type: traceql.TypeDuration, D: time.Duration(spanDuration(tr.start, tr.end))}, true
	}
	return traceql.Static{}, false
}

// rootOf finds the root span as Tempo does: the last span without a parent
// that has no child_of link within the trace. ok is false without one.
func rootOf(td ptrace.Traces) (service, name string, ok bool) {
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		rs := rss.At(i)
		sss := rs.ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			spans := sss.At(j).Spans()
			for k := 0; k < spans.Len(); k++ {
				sp := spans.At(k)
				if !sp.ParentSpanID().IsEmpty() || hasChildOfLink(sp) {
					continue
				}
				service, name, ok = "", sp.Name(), true
				if v, has := rs.Resource().Attributes().Get("service.name"); has && v.Type() == pcommon.ValueTypeStr {
					service = v.Str()
				}
			}
		}
	}
	return service, name, ok
}

func hasChildOfLink(sp ptrace.Span) bool {
	links := sp.Links()
	for i := 0; i < links.Len(); i++ {
		l := links.At(i)
		if l.TraceID() != sp.TraceID() {
			continue
		}
		if v, ok := l.Attributes().Get("opentracing.ref_type"); ok && v.Type() == pcommon.ValueTypeStr && v.Str() == "child_of" {
			return true
		}
	}
	return false
}

// evalOTLP evaluates the plan over one part of a trace given as OTLP. info
// carries the stored trace-level values when the caller has them (blocks);
// nil computes them from td (head). It returns nil when the part does not
// match.
func (p *plan) evalOTLP(id block.TraceID, td ptrace.Traces, info *part) *part {
	var spans []traceql.Span
	var pd []*pdSpan
	var stats map[string]ServiceStats
	if info == nil {
		info = &part{id: id}
		info.rootService, info.rootName, info.hasRoot = rootOf(td)
		first := true
		forEachSpan(td, func(_ pcommon.Map, sp ptrace.Span) {
			s, e := uint64(sp.StartTimestamp()), uint64(sp.EndTimestamp())
			if first || s < info.start {
				info.start = s
			}
			if first || e > info.end {
				info.end = e
			}
			first = false
		})
	}
	tr := &traceInfo{rootService: info.rootService, rootName: info.rootName, start: info.start, end: info.end}
	stats = map[string]ServiceStats{}
	forEachSpan(td, func(res pcommon.Map, sp ptrace.Span) {
		svc := ""
		if v, ok := res.Get("service.name"); ok && v.Type() == pcommon.ValueTypeStr {
			svc = v.Str()
		}
		st := stats[svc]
		st.SpanCount++
		if sp.Status().Code() == ptrace.StatusCodeError {
			st.ErrorCount++
		}
		stats[svc] = st
		s := &pdSpan{sp: sp, res: res, tr: tr}
		pd = append(pd, s)
		spans = append(spans, s)
	})
	if !p.traceFilter(info.start, info.end) {
		return nil
	}
	matched := traceql.Eval(p.query.Filter, spans)
	if matched == nil {
		return nil
	}
	out := *info
	out.stats = stats
	if !p.req.Tags {
		set := &SpanSet{Matched: uint32(len(matched)), Spans: []*Span{}}
		for _, i := range matched {
			if len(set.Spans) >= p.spss {
				break
			}
			s := pd[i]
			sid := s.sp.SpanID()
			rs := &Span{
				SpanID:            hex.EncodeToString(sid[:]),
				StartTimeUnixNano: Uint64String(s.sp.StartTimestamp()),
				DurationNanos:     Uint64String(spanDuration(uint64(s.sp.StartTimestamp()), uint64(s.sp.EndTimestamp()))),
				Attributes:        p.spanAttributes(s),
			}
			if p.wantName {
				rs.Name = s.sp.Name()
			}
			set.Spans = append(set.Spans, rs)
		}
		out.spanSet = set
	}
	return &out
}

func forEachSpan(td ptrace.Traces, fn func(res pcommon.Map, sp ptrace.Span)) {
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		rs := rss.At(i)
		res := rs.Resource().Attributes()
		sss := rs.ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			spans := sss.At(j).Spans()
			for k := 0; k < spans.Len(); k++ {
				fn(res, spans.At(k))
			}
		}
	}
}
