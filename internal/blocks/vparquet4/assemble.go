package vparquet4

import (
	"bytes"
	"encoding/binary"
	"math"
	"slices"
	"strings"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tracectl/tracectl/internal/blocks/block"
)

// assembler gathers the pieces of one trace (§3.5 "Grouping") and turns
// them into a row. It keeps references into the pieces' pdata until the row
// is built. One assembler is reused for every trace of a block.
type assembler struct {
	ded       *dedicatedMap
	dropDupes bool

	id        block.TraceID
	resources []pendingResource
	seen      map[spanKey]bool // spans of earlier pieces (dropDupes)
	added     []spanKey        // spans of the current piece, to add to seen
	nSpans    int
	pieces    int // add calls so far for this trace
	root      rootInfo

	keyBuf []byte
	arena  arena
	nested nestedScratch
}

type spanKey struct {
	id   pcommon.SpanID
	kind ptrace.SpanKind
}

type rootInfo struct {
	found       bool
	piece       int // index of the add call that gave it
	name        string
	serviceName string
}

type pendingResource struct {
	res    pcommon.Resource
	key    []byte // identity: attributes (any order) and dropped count
	scopes []pendingScope
}

type pendingScope struct {
	scope pcommon.InstrumentationScope
	key   []byte
	spans []ptrace.Span
}

func newAssembler(ded *dedicatedMap, dropDupes bool) *assembler {
	return &assembler{ded: ded, dropDupes: dropDupes, seen: map[spanKey]bool{}}
}

// reset starts a new trace.
func (a *assembler) reset(id block.TraceID) {
	a.id = id
	// Keep the slices' capacity for the next trace, drop pdata references.
	for i := range a.resources[:cap(a.resources)] {
		r := &a.resources[:cap(a.resources)][i]
		for j := range r.scopes[:cap(r.scopes)] {
			sc := &r.scopes[:cap(r.scopes)][j]
			clear(sc.spans[:cap(sc.spans)])
			sc.spans, sc.key, sc.scope = sc.spans[:0], sc.key[:0], pcommon.InstrumentationScope{}
		}
		r.scopes, r.key, r.res = r.scopes[:0], r.key[:0], pcommon.Resource{}
	}
	a.resources = a.resources[:0]
	if len(a.seen) > 0 {
		clear(a.seen)
	}
	a.nSpans = 0
	a.pieces = 0
	a.root = rootInfo{}
}

// add appends the spans of td that belong to trace a.id, merging identical
// resources and scopes into the first of their kind. With dropDupes, spans
// whose ID + kind came in an earlier piece are skipped (repeats inside one
// piece are kept, as Tempo keeps them when it combines block parts). It returns the number
// of spans of other traces found (and skipped).
func (a *assembler) add(td ptrace.Traces) (foreign int) {
	tid := pcommon.TraceID(a.id)
	for _, rs := range td.ResourceSpans().All() {
		var pr *pendingResource
		for _, ss := range rs.ScopeSpans().All() {
			var ps *pendingScope
			for _, sp := range ss.Spans().All() {
				if sp.TraceID() != tid {
					foreign++
					continue
				}
				a.addSpan(rs, ss, sp, &pr, &ps)
			}
		}
	}
	a.endPiece()
	return foreign
}

// addSpan adds one span of the current piece; pr and ps cache the pending
// resource and scope of the span's rs and ss across calls.
func (a *assembler) addSpan(rs ptrace.ResourceSpans, ss ptrace.ScopeSpans, sp ptrace.Span, pr **pendingResource, ps **pendingScope) {
	tid := pcommon.TraceID(a.id)
	if a.dropDupes {
		k := spanKey{sp.SpanID(), sp.Kind()}
		if a.seen[k] {
			return
		}
		a.added = append(a.added, k)
	}
	if *pr == nil {
		*pr = a.resourceFor(rs.Resource())
	}
	if *ps == nil {
		*ps = a.scopeFor(*pr, ss.Scope())
	}
	(*ps).spans = append((*ps).spans, sp)
	a.nSpans++
	// Ingest: the last candidate received wins. Combining parts
	// (dropDupes): the root names come from the first part that
	// has a root (§5).
	if isRootCandidate(sp, tid) && (!a.dropDupes || !a.root.found || a.root.piece == a.pieces) {
		a.root = rootInfo{found: true, piece: a.pieces, name: sp.Name()}
		if v, ok := rs.Resource().Attributes().Get("service.name"); ok && v.Type() == pcommon.ValueTypeStr {
			a.root.serviceName = v.Str()
		}
		if isEmptyResource(rs.Resource()) {
			// A root under no resource object gives no root names.
			a.root.name = ""
		}
	}
}

// endPiece finishes an add: spans of this piece count as seen from now on.
func (a *assembler) endPiece() {
	for _, k := range a.added {
		a.seen[k] = true
	}
	a.added = a.added[:0]
	a.pieces++
}

func isRootCandidate(sp ptrace.Span, tid pcommon.TraceID) bool {
	if !sp.ParentSpanID().IsEmpty() {
		return false
	}
	for _, l := range sp.Links().All() {
		if l.TraceID() != tid {
			continue
		}
		if v, ok := l.Attributes().Get("opentracing.ref_type"); ok && v.Type() == pcommon.ValueTypeStr && v.Str() == "child_of" {
			return false
		}
	}
	return true
}

func isEmptyResource(r pcommon.Resource) bool {
	return r.Attributes().Len() == 0 && r.DroppedAttributesCount() == 0
}

func (a *assembler) resourceFor(r pcommon.Resource) *pendingResource {
	a.keyBuf = appendMapKey(a.keyBuf[:0], r.Attributes())
	a.keyBuf = binary.AppendUvarint(a.keyBuf, uint64(r.DroppedAttributesCount()))
	for i := range a.resources {
		if bytes.Equal(a.resources[i].key, a.keyBuf) {
			return &a.resources[i]
		}
	}
	if len(a.resources) < cap(a.resources) {
		a.resources = a.resources[:len(a.resources)+1]
	} else {
		a.resources = append(a.resources, pendingResource{})
	}
	pr := &a.resources[len(a.resources)-1]
	pr.res = r
	pr.key = append(pr.key[:0], a.keyBuf...)
	return pr
}

func (a *assembler) scopeFor(pr *pendingResource, s pcommon.InstrumentationScope) *pendingScope {
	b := appendString(a.keyBuf[:0], s.Name())
	b = appendString(b, s.Version())
	b = appendMapKey(b, s.Attributes())
	b = binary.AppendUvarint(b, uint64(s.DroppedAttributesCount()))
	a.keyBuf = b
	for i := range pr.scopes {
		if bytes.Equal(pr.scopes[i].key, b) {
			return &pr.scopes[i]
		}
	}
	if len(pr.scopes) < cap(pr.scopes) {
		pr.scopes = pr.scopes[:len(pr.scopes)+1]
	} else {
		pr.scopes = append(pr.scopes, pendingScope{})
	}
	ps := &pr.scopes[len(pr.scopes)-1]
	ps.scope = s
	ps.key = append(ps.key[:0], b...)
	return ps
}

// appendMapKey appends an order-insensitive identity of m.
func appendMapKey(b []byte, m pcommon.Map) []byte {
	type kv struct {
		k string
		v pcommon.Value
	}
	var small [16]kv
	kvs := small[:0]
	for k, v := range m.All() {
		kvs = append(kvs, kv{k, v})
	}
	slices.SortFunc(kvs, func(x, y kv) int { return strings.Compare(x.k, y.k) })
	b = binary.AppendUvarint(b, uint64(len(kvs)))
	for _, e := range kvs {
		b = appendString(b, e.k)
		b = appendValueKey(b, e.v)
	}
	return b
}

func appendValueKey(b []byte, v pcommon.Value) []byte {
	b = append(b, byte(v.Type()))
	switch v.Type() {
	case pcommon.ValueTypeStr:
		b = appendString(b, v.Str())
	case pcommon.ValueTypeInt:
		b = binary.AppendVarint(b, v.Int())
	case pcommon.ValueTypeDouble:
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v.Double()))
	case pcommon.ValueTypeBool:
		if v.Bool() {
			b = append(b, 1)
		} else {
			b = append(b, 0)
		}
	case pcommon.ValueTypeBytes:
		b = appendString(b, string(v.Bytes().AsRaw()))
	case pcommon.ValueTypeSlice:
		s := v.Slice()
		b = binary.AppendUvarint(b, uint64(s.Len()))
		for i := range s.Len() {
			b = appendValueKey(b, s.At(i))
		}
	case pcommon.ValueTypeMap:
		b = appendMapKey(b, v.Map())
	}
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// build fills tr with the row of the gathered trace. ok is false when the
// trace has no spans (no row is written then).
func (a *assembler) build(tr *Trace) (ok bool) {
	if a.nSpans == 0 {
		return false
	}
	tr.TraceID = append(tr.TraceID[:0], a.id[:]...)
	tr.TraceIDText = a.id.Text()
	if tr.ServiceStats == nil {
		tr.ServiceStats = map[string]ServiceStats{}
	}
	clear(tr.ServiceStats)
	if a.root.found {
		tr.RootSpanName, tr.RootServiceName = a.root.name, a.root.serviceName
		if a.root.name == "" {
			tr.RootServiceName = ""
		}
	} else {
		tr.RootSpanName, tr.RootServiceName = "", ""
	}

	start, end := uint64(math.MaxUint64), uint64(0)
	tr.ResourceSpans = resizeRS(tr.ResourceSpans, len(a.resources))
	for i := range a.resources {
		pr := &a.resources[i]
		rs := &tr.ResourceSpans[i]
		a.convertResource(&rs.Resource, pr.res)
		stats := tr.ServiceStats[rs.Resource.ServiceName]
		rs.ScopeSpans = resizeSS(rs.ScopeSpans, len(pr.scopes))
		for j := range pr.scopes {
			ps := &pr.scopes[j]
			ss := &rs.ScopeSpans[j]
			a.convertScope(&ss.Scope, ps.scope)
			ss.Spans = resizeSpans(ss.Spans, len(ps.spans))
			for k, sp := range ps.spans {
				a.convertSpan(&ss.Spans[k], sp)
				s, e := uint64(sp.StartTimestamp()), uint64(sp.EndTimestamp())
				start = min(start, s)
				end = max(end, e)
				stats.SpanCount++
				if sp.Status().Code() == ptrace.StatusCodeError {
					stats.ErrorCount++
				}
			}
		}
		tr.ServiceStats[rs.Resource.ServiceName] = stats
	}
	if end < start {
		end = start
	}
	tr.StartTimeUnixNano, tr.EndTimeUnixNano, tr.DurationNano = start, end, end-start
	assignNestedSet(tr, &a.nested)
	return true
}

func (a *assembler) convertResource(dst *Resource, r pcommon.Resource) {
	attrs := dst.Attrs[:0]
	*dst = Resource{DroppedAttributesCount: int32(r.DroppedAttributesCount())}
	for k, v := range r.Attributes().All() {
		if v.Type() == pcommon.ValueTypeStr {
			var col **string
			switch k {
			case "service.name":
				dst.ServiceName = v.Str()
				continue
			case "cluster":
				col = &dst.Cluster
			case "namespace":
				col = &dst.Namespace
			case "pod":
				col = &dst.Pod
			case "container":
				col = &dst.Container
			case "k8s.cluster.name":
				col = &dst.K8sClusterName
			case "k8s.namespace.name":
				col = &dst.K8sNamespaceName
			case "k8s.pod.name":
				col = &dst.K8sPodName
			case "k8s.container.name":
				col = &dst.K8sContainerName
			default:
				if slot, ok := a.ded.resource[k]; ok {
					col = dst.DedicatedAttributes.slot(slot)
				}
			}
			if col != nil {
				*col = a.arena.str(v.Str())
				continue
			}
		}
		attrs = appendAttr(attrs, k, v, &a.arena)
	}
	// Tempo stores resource generic attributes sorted by key.
	slices.SortStableFunc(attrs, func(x, y Attribute) int { return strings.Compare(x.Key, y.Key) })
	dst.Attrs = attrs
}

func (a *assembler) convertScope(dst *InstrumentationScope, s pcommon.InstrumentationScope) {
	attrs := dst.Attrs[:0]
	for k, v := range s.Attributes().All() {
		attrs = appendAttr(attrs, k, v, &a.arena)
	}
	*dst = InstrumentationScope{Name: s.Name(), Version: s.Version(), Attrs: attrs,
		DroppedAttributesCount: int32(s.DroppedAttributesCount())}
}

func (a *assembler) convertSpan(dst *Span, sp ptrace.Span) {
	attrs, events, links := dst.Attrs[:0], dst.Events, dst.Links
	spanID, parentID := dst.SpanID[:0], dst.ParentSpanID[:0]
	start := uint64(sp.StartTimestamp())
	*dst = Span{
		Name:                   sp.Name(),
		Kind:                   int64(sp.Kind()),
		TraceState:             sp.TraceState().AsRaw(),
		StartTimeUnixNano:      start,
		DurationNano:           uint64(sp.EndTimestamp()) - start,
		StatusCode:             int64(sp.Status().Code()),
		StatusMessage:          sp.Status().Message(),
		DroppedAttributesCount: int32(sp.DroppedAttributesCount()),
		DroppedEventsCount:     int32(sp.DroppedEventsCount()),
		DroppedLinksCount:      int32(sp.DroppedLinksCount()),
	}
	if id := sp.SpanID(); !id.IsEmpty() {
		spanID = append(spanID, id[:]...)
	}
	if id := sp.ParentSpanID(); !id.IsEmpty() {
		parentID = append(parentID, id[:]...)
	}
	dst.SpanID, dst.ParentSpanID = spanID, parentID

	for k, v := range sp.Attributes().All() {
		switch v.Type() {
		case pcommon.ValueTypeStr:
			switch k {
			case "http.method":
				dst.HttpMethod = a.arena.str(v.Str())
				continue
			case "http.url":
				dst.HttpUrl = a.arena.str(v.Str())
				continue
			}
			if slot, ok := a.ded.span[k]; ok {
				*dst.DedicatedAttributes.slot(slot) = a.arena.str(v.Str())
				continue
			}
		case pcommon.ValueTypeInt:
			if k == "http.status_code" {
				dst.HttpStatusCode = a.arena.int(v.Int())
				continue
			}
		}
		attrs = appendAttr(attrs, k, v, &a.arena)
	}
	dst.Attrs = attrs

	evs := sp.Events()
	events = resizeEvents(events, evs.Len())
	for i := range evs.Len() {
		e := evs.At(i)
		de := &events[i]
		ea := de.Attrs[:0]
		for k, v := range e.Attributes().All() {
			ea = appendAttr(ea, k, v, &a.arena)
		}
		*de = Event{TimeSinceStartNano: uint64(e.Timestamp()) - start, Name: e.Name(), Attrs: ea,
			DroppedAttributesCount: int32(e.DroppedAttributesCount())}
	}
	dst.Events = events

	ls := sp.Links()
	links = resizeLinks(links, ls.Len())
	for i := range ls.Len() {
		l := ls.At(i)
		dl := &links[i]
		la := dl.Attrs[:0]
		for k, v := range l.Attributes().All() {
			la = appendAttr(la, k, v, &a.arena)
		}
		tid, sid := dl.TraceID[:0], dl.SpanID[:0]
		if id := l.TraceID(); !id.IsEmpty() {
			tid = append(tid, id[:]...)
		}
		if id := l.SpanID(); !id.IsEmpty() {
			sid = append(sid, id[:]...)
		}
		*dl = Link{TraceID: tid, SpanID: sid, TraceState: l.TraceState().AsRaw(), Attrs: la,
			DroppedAttributesCount: int32(l.DroppedAttributesCount())}
	}
	dst.Links = links
}

// resize helpers keep the nested slices of reused elements.
func resizeRS(s []ResourceSpans, n int) []ResourceSpans {
	if cap(s) < n {
		s = append(s[:cap(s)], make([]ResourceSpans, n-cap(s))...)
	}
	return s[:n]
}

func resizeSS(s []ScopeSpans, n int) []ScopeSpans {
	if cap(s) < n {
		s = append(s[:cap(s)], make([]ScopeSpans, n-cap(s))...)
	}
	return s[:n]
}

func resizeSpans(s []Span, n int) []Span {
	if cap(s) < n {
		s = append(s[:cap(s)], make([]Span, n-cap(s))...)
	}
	return s[:n]
}

func resizeEvents(s []Event, n int) []Event {
	if cap(s) < n {
		s = append(s[:cap(s)], make([]Event, n-cap(s))...)
	}
	return s[:n]
}

func resizeLinks(s []Link, n int) []Link {
	if cap(s) < n {
		s = append(s[:cap(s)], make([]Link, n-cap(s))...)
	}
	return s[:n]
}

// arena hands out pointers for the optional columns of one row without an
// allocation each; it is reset per row (the parquet writer copies values).
type arena struct {
	strs    [][]string
	ints    [][]int64
	si, ii  int // next free index across chunks
	scratch []byte
}

const arenaChunk = 256

func (a *arena) reset() { a.si, a.ii = 0, 0 }

func (a *arena) str(s string) *string {
	c, i := a.si/arenaChunk, a.si%arenaChunk
	if c == len(a.strs) {
		a.strs = append(a.strs, make([]string, arenaChunk))
	}
	a.si++
	p := &a.strs[c][i]
	*p = s
	return p
}

func (a *arena) int(v int64) *int64 {
	c, i := a.ii/arenaChunk, a.ii%arenaChunk
	if c == len(a.ints) {
		a.ints = append(a.ints, make([]int64, arenaChunk))
	}
	a.ii++
	p := &a.ints[c][i]
	*p = v
	return p
}
