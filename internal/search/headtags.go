package search

import (
	"github.com/tracectl/tracectl/internal/headtags"
	"github.com/tracectl/tracectl/internal/traceql"
)

// HeadTagSource is a HeadSource that keeps an index of the tag names and
// values of its spans (internal/server does): tag queries not narrowed by
// a query read it instead of decoding the head.
type HeadTagSource interface {
	// HeadTags brings the index up to date for tenant and returns it.
	HeadTags(tenant string) *headtags.Index
}

var scopeNames = map[headtags.Scope]string{
	headtags.Resource:        ScopeResource,
	headtags.Instrumentation: ScopeInstrumentation,
	headtags.Span:            ScopeSpan,
	headtags.Event:           ScopeEvent,
	headtags.Link:            ScopeLink,
}

// trivialQuery reports whether q selects every span (nil or `{}`).
func trivialQuery(q *traceql.Query) bool {
	if q == nil {
		return true
	}
	f, ok := q.Filter.(*traceql.SpansetFilter)
	return ok && f.Expr == nil
}

// headIndex returns head's tag index for tenant when it has one and q
// selects every span; nil otherwise.
func headIndex(head HeadSource, tenant string, q *traceql.Query) *headtags.Index {
	hs, ok := head.(HeadTagSource)
	if !ok || !trivialQuery(q) {
		return nil
	}
	return hs.HeadTags(tenant)
}

// headTagNames adds the names of the head's spans from its index; ok is
// false when there is no index or it cannot answer (then the head must
// be read).
func headTagNames(head HeadSource, tenant string, q *traceql.Query, add func(scope, name string)) bool {
	ix := headIndex(head, tenant, q)
	if ix == nil {
		return false
	}
	return ix.Names(tenant, func(s headtags.Scope, name string) {
		add(scopeNames[s], name)
	})
}

// headIntrinsics are the intrinsics the index holds per span.
var headIntrinsics = map[traceql.Intrinsic]string{
	traceql.IntrinsicName:          headtags.IntrinsicName,
	traceql.IntrinsicStatus:        headtags.IntrinsicStatus,
	traceql.IntrinsicKind:          headtags.IntrinsicKind,
	traceql.IntrinsicStatusMessage: headtags.IntrinsicStatusMessage,
}

// headTagValues adds the values of attr in the head's spans from its
// index, as the span-by-span reading of TagValues finds them: an
// intrinsic from the span, span. and resource. from their scope, anything
// else from the span's and resource's attributes and, for v1, also the
// scope's, events' and links'. ok is false when there is no index or it
// cannot answer (the roots of traces are not indexed).
func headTagValues(head HeadSource, tenant string, q *traceql.Query, attr *traceql.Attribute, v2 bool, add func(TagValue)) bool {
	type place struct {
		scope headtags.Scope
		name  string
	}
	var places []place
	switch attr.Scope {
	case traceql.ScopeIntrinsic:
		switch attr.Intrinsic {
		case traceql.IntrinsicRootName, traceql.IntrinsicRootServiceName:
			return false
		}
		if n, ok := headIntrinsics[attr.Intrinsic]; ok {
			places = []place{{headtags.Intrinsic, n}}
		}
	case traceql.ScopeSpan:
		places = []place{{headtags.Span, attr.Name}}
	case traceql.ScopeResource:
		places = []place{{headtags.Resource, attr.Name}}
	default:
		places = []place{{headtags.Span, attr.Name}, {headtags.Resource, attr.Name}}
		if !v2 {
			places = append(places, place{headtags.Instrumentation, attr.Name}, place{headtags.Event, attr.Name}, place{headtags.Link, attr.Name})
		}
	}
	ix := headIndex(head, tenant, q)
	if ix == nil {
		return false
	}
	var vals []TagValue
	for _, p := range places {
		if !ix.Values(tenant, p.scope, p.name, func(v headtags.Value) {
			vals = append(vals, TagValue{Type: v.Type, Value: v.Value})
		}) {
			return false
		}
	}
	for _, v := range vals {
		add(v)
	}
	return true
}
