package search

import (
	"github.com/tracectl/tracectl/internal/traceql"
)

// shownAttr is an attribute returned with each matched span.
type shownAttr struct {
	attr    traceql.Attribute
	key     string
	select_ bool // from select(): an absent value shows as "nil"
}

// plan is a request prepared for evaluation.
type plan struct {
	req      Request
	query    *traceql.Query
	spss     int
	limit    int
	wantName bool
	shown    []shownAttr
	// minDur, maxDur filter parts by their duration (tags searches only:
	// Tempo ignores minDuration/maxDuration when q is given, see
	// search-traceql-minmax-duration.http).
	minDur, maxDur uint64
	// startNs, endNs is the request window (0: open).
	startNs, endNs uint64
}

func newPlan(req Request) *plan {
	p := &plan{req: req, query: req.Query, spss: req.SpansPerSpanSet, limit: req.Limit}
	if p.spss <= 0 {
		p.spss = DefaultSpansPerSpanSet
	}
	if p.limit <= 0 {
		p.limit = DefaultLimit
	}
	if req.Tags {
		p.minDur, p.maxDur = uint64(req.MinDuration), uint64(req.MaxDuration)
	}
	if !req.Start.IsZero() {
		p.startNs = uint64(req.Start.UnixNano())
	}
	if !req.End.IsZero() {
		p.endNs = uint64(req.End.UnixNano())
	}
	seen := map[string]bool{}
	add := func(a traceql.Attribute, sel bool) {
		a.Pos = 0
		var key string
		switch a.Scope {
		case traceql.ScopeIntrinsic:
			switch a.Intrinsic {
			case traceql.IntrinsicName:
				p.wantName = true
				return
			case traceql.IntrinsicStatus, traceql.IntrinsicKind, traceql.IntrinsicStatusMessage:
				key = a.Intrinsic.String()
			default:
				return // shown in the span's own fields, or trace-level
			}
		default:
			key = a.Name
		}
		if seen[key] {
			return
		}
		seen[key] = true
		p.shown = append(p.shown, shownAttr{attr: a, key: key, select_: sel})
	}
	for _, f := range traceql.Filters(p.query.Filter) {
		for _, a := range f.Attributes() {
			add(a, false)
		}
	}
	for _, a := range p.query.Select {
		add(a, true)
	}
	return p
}

// traceFilter applies the window and (tags searches) the duration bounds
// to a part spanning [start, end].
func (p *plan) traceFilter(start, end uint64) bool {
	if p.endNs != 0 && start > p.endNs {
		return false
	}
	if p.startNs != 0 && end < p.startNs {
		return false
	}
	d := spanDuration(start, end)
	if p.minDur != 0 && d < p.minDur {
		return false
	}
	if p.maxDur != 0 && d >= p.maxDur { // exclusive, as Tempo (P03 lasts exactly 2s)
		return false
	}
	return true
}

// spanAttributes returns the attributes shown with a matched span.
func (p *plan) spanAttributes(s traceql.Span) []KeyValue {
	var out []KeyValue
	for i := range p.shown {
		sh := &p.shown[i]
		v, ok := traceql.Lookup(s, &sh.attr)
		if !ok || v.Type == typeOther {
			if sh.select_ {
				out = append(out, KeyValue{Key: sh.key, Value: AnyValue{Type: traceql.TypeString, S: "nil"}})
			}
			continue
		}
		out = append(out, KeyValue{Key: sh.key, Value: anyValueOf(v)})
	}
	return out
}

// anyValueOf is how Tempo returns a value: status and kind as their
// keyword strings.
func anyValueOf(v traceql.Static) AnyValue {
	switch v.Type {
	case traceql.TypeInt:
		return AnyValue{Type: traceql.TypeInt, I: v.I}
	case traceql.TypeFloat:
		return AnyValue{Type: traceql.TypeFloat, F: v.F}
	case traceql.TypeBool:
		return AnyValue{Type: traceql.TypeBool, B: v.B}
	case traceql.TypeString:
		return AnyValue{Type: traceql.TypeString, S: v.S}
	}
	return AnyValue{Type: traceql.TypeString, S: v.String()}
}
