package search

import (
	"context"
	"sort"
	"sync"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tracectl/tracectl/internal/blocks"
	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/headtags"
	"github.com/tracectl/tracectl/internal/traceql"
)

// scopeOrder is the order of scopes in Tempo's v2 tag-name answer.
var scopeOrder = []string{ScopeEvent, ScopeResource, ScopeSpan, ScopeIntrinsic, ScopeLink, ScopeInstrumentation}

// intrinsicTags is Tempo's list of intrinsic tag names.
var intrinsicTags = []string{
	"duration", "event:name", "event:timeSinceStart", "instrumentation:name", "instrumentation:version", "kind",
	"link:spanID", "link:traceID", "name", "rootName", "rootServiceName", "span:duration", "span:id", "span:kind",
	"span:name", "span:parentID", "span:status", "span:statusMessage", "status", "statusMessage", "trace:duration",
	"trace:id", "trace:rootName", "trace:rootService", "traceDuration",
}

// V1 is the v1 answer: every non-intrinsic name, sorted, without repeats.
func (r *TagNamesResponse) V1() *TagNamesV1 {
	seen := map[string]bool{}
	out := []string{}
	for _, s := range r.Scopes {
		if s.Name == ScopeIntrinsic {
			continue
		}
		for _, t := range s.Tags {
			if !seen[t] {
				seen[t] = true
				out = append(out, t)
			}
		}
	}
	sort.Strings(out)
	return &TagNamesV1{TagNames: out, Metrics: r.Metrics}
}

// V1 is the v1 answer: the values as strings, sorted, without repeats.
func (r *TagValuesResponse) V1() *TagValuesV1 {
	seen := map[string]bool{}
	out := []string{}
	for _, v := range r.Values {
		if !seen[v.Value] {
			seen[v.Value] = true
			out = append(out, v.Value)
		}
	}
	sort.Strings(out)
	return &TagValuesV1{TagValues: out, Metrics: r.Metrics}
}

// visitSpans calls fn for the spans of td that q selects (every span when
// q is nil or `{}`).
func visitSpans(q *traceql.Query, td ptrace.Traces, info *part, fn func(rs ptrace.ResourceSpans, ss ptrace.ScopeSpans, sp ptrace.Span)) {
	all := q == nil
	if !all {
		if f, ok := q.Filter.(*traceql.SpansetFilter); ok && f.Expr == nil {
			all = true
		}
	}
	type ref struct {
		rs ptrace.ResourceSpans
		ss ptrace.ScopeSpans
		sp ptrace.Span
	}
	var refs []ref
	var spans []traceql.Span
	tr := &traceInfo{}
	if info != nil {
		tr = &traceInfo{rootService: info.rootService, rootName: info.rootName, start: info.start, end: info.end}
	} else if !all {
		tr.rootService, tr.rootName, _ = rootOf(td)
	}
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		rs := rss.At(i)
		sss := rs.ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			ss := sss.At(j)
			sps := ss.Spans()
			for k := 0; k < sps.Len(); k++ {
				sp := sps.At(k)
				if all {
					fn(rs, ss, sp)
					continue
				}
				refs = append(refs, ref{rs, ss, sp})
				spans = append(spans, &pdSpan{sp: sp, res: rs.Resource().Attributes(), tr: tr})
			}
		}
	}
	if all {
		return
	}
	for _, i := range traceql.Eval(q.Filter, spans) {
		fn(refs[i].rs, refs[i].ss, refs[i].sp)
	}
}

// forEachPart runs fn over the head's traces and every row of the blocks
// in the window, blocks concurrently; fn must be safe for concurrent use.
func (e *Engine) forEachPart(ctx context.Context, what, tenant string, metas []*block.Meta, head HeadSource, fn func(td ptrace.Traces, info *part) bool) (*Metrics, error) {
	if head != nil {
		head.ForEachHeadTrace(tenant, func(id block.TraceID, parts []ptrace.Traces) bool {
			td := parts[0]
			if len(parts) > 1 {
				td = blocks.Combine(parts...)
			}
			return fn(td, nil)
		})
	}
	st := &stats{}
	err := e.runAll(ctx, what, metas, func(ctx context.Context, m *block.Meta) error {
		st.inspectedBytes.Add(int64(m.Size))
		return e.forEachRow(ctx, m, func(r *genericRow) bool {
			return fn(r.td, &r.info)
		})
	}, st)
	if err != nil {
		return nil, err
	}
	return &Metrics{InspectedBytes: Uint64String(st.inspectedBytes.Load())}, nil
}

// TagNames answers /api/search/tags and /api/v2/search/tags: the
// attribute names of the spans (matching Query, if set) in the window, by
// scope, plus Tempo's intrinsic names.
func (e *Engine) TagNames(ctx context.Context, tenant string, metas []*block.Meta, head HeadSource, req TagsRequest) (*TagNamesResponse, error) {
	var mu sync.Mutex
	names := map[string]map[string]bool{}
	for _, s := range scopeOrder {
		names[s] = map[string]bool{}
	}
	want := func(scope string) bool { return req.Scope == "" || req.Scope == "all" || req.Scope == scope }
	addKeys := func(scope string, m pcommon.Map) {
		if !want(scope) {
			return
		}
		set := names[scope]
		m.Range(func(k string, _ pcommon.Value) bool {
			set[k] = true
			return true
		})
	}
	metas = inWindow(metas, req.Start, req.End)
	fast, err := e.tagNamesFromBlocks(ctx, metas, req, func(scope, name string) {
		mu.Lock()
		defer mu.Unlock()
		if want(scope) && names[scope] != nil {
			names[scope][name] = true
		}
	})
	if err != nil {
		return nil, err
	}
	var fastBytes int64
	if fast {
		// The blocks are done; only the head is read span by span.
		for _, m := range metas {
			fastBytes += int64(m.Size)
		}
		metas = nil
	}
	if head != nil && headTagNames(head, tenant, req.Query, func(scope, name string) {
		if want(scope) {
			names[scope][name] = true
		}
	}) {
		head = nil // answered from the head's index
	}
	metrics, err := e.forEachPart(ctx, "tags", tenant, metas, head, func(td ptrace.Traces, info *part) bool {
		mu.Lock()
		defer mu.Unlock()
		visitSpans(req.Query, td, info, func(rs ptrace.ResourceSpans, ss ptrace.ScopeSpans, sp ptrace.Span) {
			addKeys(ScopeResource, rs.Resource().Attributes())
			addKeys(ScopeInstrumentation, ss.Scope().Attributes())
			addKeys(ScopeSpan, sp.Attributes())
			for i := 0; i < sp.Events().Len(); i++ {
				addKeys(ScopeEvent, sp.Events().At(i).Attributes())
			}
			for i := 0; i < sp.Links().Len(); i++ {
				addKeys(ScopeLink, sp.Links().At(i).Attributes())
			}
		})
		return true
	})
	if err != nil {
		return nil, err
	}
	// As Tempo counts it: the bytes of the blocks the answer covers.
	metrics.InspectedBytes += Uint64String(fastBytes)
	resp := &TagNamesResponse{Scopes: []TagScope{}, Metrics: metrics}
	for _, s := range scopeOrder {
		if !want(s) {
			continue
		}
		var tags []string
		if s == ScopeIntrinsic {
			tags = append(tags, intrinsicTags...)
		} else {
			for k := range names[s] {
				tags = append(tags, k)
			}
			sort.Strings(tags)
		}
		if len(tags) == 0 {
			continue
		}
		if req.Limit > 0 && len(tags) > req.Limit {
			tags = tags[:req.Limit]
		}
		resp.Scopes = append(resp.Scopes, TagScope{Name: s, Tags: tags})
	}
	return resp, nil
}

// tagValueOf is a value as Tempo's v2 answer types it; ok is false for
// values it does not list (arrays, maps, bytes).
func tagValueOf(v pcommon.Value) (TagValue, bool) {
	tv, ok := headtags.ValueOf(v)
	return TagValue(tv), ok
}

var (
	statusNames = headtags.StatusNames
	kindNames   = headtags.KindNames
)

// TagValues answers /api/search/tag/<tag>/values and the v2 form: the
// distinct values of one attribute over the spans (matching Query, if set)
// in the window.
func (e *Engine) TagValues(ctx context.Context, tenant string, metas []*block.Meta, head HeadSource, req TagValuesRequest) (*TagValuesResponse, error) {
	var attr *traceql.Attribute
	if req.V2 {
		a, err := parseTag(req.Tag)
		if err != nil {
			return nil, err
		}
		attr = a
	} else {
		attr = &traceql.Attribute{Scope: traceql.ScopeNone, Name: req.Tag}
	}
	var mu sync.Mutex
	seen := map[TagValue]bool{}
	var values []TagValue
	full := func() bool { return req.Limit > 0 && len(values) >= req.Limit }
	add := func(tv TagValue) {
		if !seen[tv] && !full() {
			seen[tv] = true
			values = append(values, tv)
		}
	}
	addValue := func(v pcommon.Value) {
		if tv, ok := tagValueOf(v); ok {
			add(tv)
		}
	}
	metas = inWindow(metas, req.Start, req.End)
	var metrics *Metrics
	if fast, ok, err := e.tagValuesFast(ctx, tenant, metas, head, req, attr); err != nil {
		return nil, err
	} else if ok {
		return fast, nil
	}
	if fast, ok, err := e.tagValuesQuery(ctx, tenant, metas, head, req, attr); err != nil {
		return nil, err
	} else if ok {
		return fast, nil
	}
	if head != nil && headTagValues(head, tenant, req.Query, attr, req.V2, add) {
		head = nil // answered from the head's index
	}
	metrics, err := e.forEachPart(ctx, "tag_values", tenant, metas, head, func(td ptrace.Traces, info *part) bool {
		mu.Lock()
		defer mu.Unlock()
		if info == nil && attr.Scope == traceql.ScopeIntrinsic &&
			(attr.Intrinsic == traceql.IntrinsicRootName || attr.Intrinsic == traceql.IntrinsicRootServiceName) {
			// A trace of the head: its root as Tempo finds it.
			info = &part{}
			info.rootService, info.rootName, info.hasRoot = rootOf(td)
		}
		visitSpans(req.Query, td, info, func(rs ptrace.ResourceSpans, ss ptrace.ScopeSpans, sp ptrace.Span) {
			switch attr.Scope {
			case traceql.ScopeIntrinsic:
				switch attr.Intrinsic {
				case traceql.IntrinsicName:
					add(TagValue{Type: "string", Value: sp.Name()})
				case traceql.IntrinsicStatus:
					if c := int(sp.Status().Code()); c < len(statusNames) {
						add(TagValue{Type: "keyword", Value: statusNames[c]})
					}
				case traceql.IntrinsicKind:
					if c := int(sp.Kind()); c < len(kindNames) {
						add(TagValue{Type: "keyword", Value: kindNames[c]})
					}
				case traceql.IntrinsicStatusMessage:
					if m := sp.Status().Message(); m != "" {
						add(TagValue{Type: "string", Value: m})
					}
				case traceql.IntrinsicRootName, traceql.IntrinsicRootServiceName:
					if info != nil {
						v := info.rootName
						if attr.Intrinsic == traceql.IntrinsicRootServiceName {
							v = info.rootService
						}
						if v != "" {
							add(TagValue{Type: "string", Value: v})
						}
					}
				}
			case traceql.ScopeSpan:
				if v, ok := sp.Attributes().Get(attr.Name); ok {
					addValue(v)
				}
			case traceql.ScopeResource:
				if v, ok := rs.Resource().Attributes().Get(attr.Name); ok {
					addValue(v)
				}
			default:
				if v, ok := sp.Attributes().Get(attr.Name); ok {
					addValue(v)
				}
				if v, ok := rs.Resource().Attributes().Get(attr.Name); ok {
					addValue(v)
				}
				if !req.V2 {
					if v, ok := ss.Scope().Attributes().Get(attr.Name); ok {
						addValue(v)
					}
					for i := 0; i < sp.Events().Len(); i++ {
						if v, ok := sp.Events().At(i).Attributes().Get(attr.Name); ok {
							addValue(v)
						}
					}
					for i := 0; i < sp.Links().Len(); i++ {
						if v, ok := sp.Links().At(i).Attributes().Get(attr.Name); ok {
							addValue(v)
						}
					}
				}
			}
		})
		return !full()
	})
	if err != nil {
		return nil, err
	}
	sortValues(values)
	return &TagValuesResponse{Values: values, Metrics: metrics}, nil
}

func sortValues(values []TagValue) {
	sort.Slice(values, func(i, j int) bool {
		if values[i].Value != values[j].Value {
			return values[i].Value < values[j].Value
		}
		return values[i].Type < values[j].Type
	})
}
