// Package headtags keeps an index of the tag names and values of a
// server's unflushed spans, so that tag queries do not decode the whole
// head each time. The head's data arrives in pieces (one trace's spans of
// one request) that never change and leave the head whole when their block
// is stored: the index counts, per tenant, how many pieces hold each
// (scope, name, value), adds a piece once (Apply) and subtracts it when it
// leaves (Remove). Answers are exact for the pieces applied.
//
// Memory is bounded: a name keeps at most MaxValuesPerName distinct values
// and a tenant at most MaxNames names; past that the name (or the tenant's
// names) is marked overflowed until the pieces holding the excess leave,
// and the caller answers that query by reading the head itself.
package headtags

import (
	"strconv"
	"sync"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// Scope is where an attribute was found.
type Scope uint8

// Scopes, as in TraceQL. Intrinsic holds a span's name, status, kind and
// status message (under those names); it has no names of its own.
const (
	Resource Scope = iota
	Instrumentation
	Span
	Event
	Link
	Intrinsic
)

// Intrinsic names.
const (
	IntrinsicName          = "name"
	IntrinsicStatus        = "status"
	IntrinsicKind          = "kind"
	IntrinsicStatusMessage = "statusMessage"
)

// Value is an attribute's value as Tempo's tag-values answer types it
// ("string", "int", "float", "bool", "keyword"). Type "" marks a name whose
// value is not listed (an array, a map, bytes, empty): it counts for the
// names, not the values.
type Value struct {
	Type, Value string
}

// Key is one distinct fact of a piece: scope, name and value.
type Key struct {
	Scope Scope
	Name  string
	Value Value
}

// StatusNames and KindNames are TraceQL's keywords for span status and
// kind codes, by code.
var (
	StatusNames = []string{"unset", "ok", "error"}
	KindNames   = []string{"unspecified", "internal", "server", "client", "producer", "consumer"}
)

// ValueOf types v as the tag-values answer does; ok is false for the
// values it does not list.
func ValueOf(v pcommon.Value) (Value, bool) {
	switch v.Type() {
	case pcommon.ValueTypeStr:
		return Value{Type: "string", Value: v.Str()}, true
	case pcommon.ValueTypeInt:
		return Value{Type: "int", Value: strconv.FormatInt(v.Int(), 10)}, true
	case pcommon.ValueTypeDouble:
		return Value{Type: "float", Value: strconv.FormatFloat(v.Double(), 'g', -1, 64)}, true
	case pcommon.ValueTypeBool:
		return Value{Type: "bool", Value: strconv.FormatBool(v.Bool())}, true
	}
	return Value{}, false
}

// Summarize returns the distinct keys of td's spans: the attributes of
// every span, of its resource and scope, of its events and links, and its
// intrinsics. A resource or scope without spans adds nothing, as a search
// that visits spans finds nothing there.
func Summarize(td ptrace.Traces) []Key {
	seen := map[Key]struct{}{}
	attrs := func(scope Scope, m pcommon.Map) {
		m.Range(func(k string, v pcommon.Value) bool {
			tv, _ := ValueOf(v)
			seen[Key{Scope: scope, Name: k, Value: tv}] = struct{}{}
			return true
		})
	}
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		rs := rss.At(i)
		resDone := false
		sss := rs.ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			ss := sss.At(j)
			sps := ss.Spans()
			if sps.Len() == 0 {
				continue
			}
			if !resDone {
				attrs(Resource, rs.Resource().Attributes())
				resDone = true
			}
			attrs(Instrumentation, ss.Scope().Attributes())
			for k := 0; k < sps.Len(); k++ {
				sp := sps.At(k)
				attrs(Span, sp.Attributes())
				for e := 0; e < sp.Events().Len(); e++ {
					attrs(Event, sp.Events().At(e).Attributes())
				}
				for l := 0; l < sp.Links().Len(); l++ {
					attrs(Link, sp.Links().At(l).Attributes())
				}
				seen[Key{Intrinsic, IntrinsicName, Value{"string", sp.Name()}}] = struct{}{}
				if c := int(sp.Status().Code()); c >= 0 && c < len(StatusNames) {
					seen[Key{Intrinsic, IntrinsicStatus, Value{"keyword", StatusNames[c]}}] = struct{}{}
				}
				if c := int(sp.Kind()); c >= 0 && c < len(KindNames) {
					seen[Key{Intrinsic, IntrinsicKind, Value{"keyword", KindNames[c]}}] = struct{}{}
				}
				if m := sp.Status().Message(); m != "" {
					seen[Key{Intrinsic, IntrinsicStatusMessage, Value{"string", m}}] = struct{}{}
				}
			}
		}
	}
	keys := make([]Key, 0, len(seen))
	for k := range seen {
		keys = append(keys, k)
	}
	return keys
}

// Defaults of the bounds (see New).
const (
	DefaultMaxValuesPerName = 5000
	DefaultMaxNames         = 5000
)

// Index is the per-tenant count of keys over the pieces applied and not
// removed. It is safe for concurrent use.
type Index struct {
	mu               sync.Mutex
	tenants          map[string]*tenant
	maxValuesPerName int
	maxNames         int
}

// New returns an empty index that keeps at most maxValues values per name
// and maxNames names per tenant (0: the defaults).
func New(maxValues, maxNames int) *Index {
	if maxValues <= 0 {
		maxValues = DefaultMaxValuesPerName
	}
	if maxNames <= 0 {
		maxNames = DefaultMaxNames
	}
	return &Index{tenants: map[string]*tenant{}, maxValuesPerName: maxValues, maxNames: maxNames}
}

type nameKey struct {
	scope Scope
	name  string
}

type tenant struct {
	id    string
	names map[nameKey]*name
	// over counts the keys of names not kept (past maxNames).
	over *slot
}

type name struct {
	t      *tenant
	key    nameKey
	values map[Value]*slot
	// over counts the keys of values not kept (past maxValuesPerName).
	over  *slot
	count int // references to this name's slots (over included)
}

// slot is one counted key (or an overflow counter).
type slot struct {
	n     *name   // nil for a tenant's overflow slot
	t     *tenant // the tenant, for a tenant's overflow slot
	value Value
	count int
}

// Handle is one piece's membership in the index. The zero value is a
// piece not applied. Guarded by the Index's lock.
type Handle struct {
	slots []*slot
	gone  bool
}

// Apply counts keys (a piece's Summarize) for tenant under h, unless the
// piece was removed meanwhile. A handle is applied at most once.
func (ix *Index) Apply(tenantID string, h *Handle, keys []Key) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if h.gone || h.slots != nil {
		return
	}
	t := ix.tenants[tenantID]
	if t == nil {
		t = &tenant{id: tenantID, names: map[nameKey]*name{}}
		ix.tenants[tenantID] = t
	}
	slots := make([]*slot, 0, len(keys))
	var tenantOver, nameOver map[*slot]bool
	for _, k := range keys {
		s := ix.slotFor(t, k)
		// Overflow slots count once per piece, as a key does.
		if s.n == nil {
			if tenantOver[s] {
				continue
			}
			if tenantOver == nil {
				tenantOver = map[*slot]bool{}
			}
			tenantOver[s] = true
		} else if s == s.n.over {
			if nameOver[s] {
				continue
			}
			if nameOver == nil {
				nameOver = map[*slot]bool{}
			}
			nameOver[s] = true
		}
		s.count++
		if s.n != nil {
			s.n.count++
		}
		slots = append(slots, s)
	}
	h.slots = slots
}

// slotFor finds or makes k's slot, or an overflow slot when k would pass
// a bound.
func (ix *Index) slotFor(t *tenant, k Key) *slot {
	nk := nameKey{k.Scope, k.Name}
	n := t.names[nk]
	if n == nil {
		if len(t.names) >= ix.maxNames {
			if t.over == nil {
				t.over = &slot{t: t}
			}
			return t.over
		}
		n = &name{t: t, key: nk, values: map[Value]*slot{}}
		t.names[nk] = n
	}
	s := n.values[k.Value]
	if s == nil {
		if len(n.values) >= ix.maxValuesPerName {
			if n.over == nil {
				n.over = &slot{n: n}
			}
			return n.over
		}
		s = &slot{n: n, value: k.Value}
		n.values[k.Value] = s
	}
	return s
}

// Remove subtracts a piece that left the head. It is a no-op for a piece
// never applied, and keeps it from being applied later.
func (ix *Index) Remove(hs ...*Handle) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	for _, h := range hs {
		if h == nil || h.gone {
			continue
		}
		h.gone = true
		for _, s := range h.slots {
			ix.release(s)
		}
		h.slots = nil
	}
}

func (ix *Index) release(s *slot) {
	s.count--
	if s.n == nil { // a tenant's overflow
		if s.count == 0 {
			s.t.over = nil
			ix.dropIfEmpty(s.t)
		}
		return
	}
	n := s.n
	n.count--
	if s.count == 0 {
		if s == n.over {
			n.over = nil
		} else {
			delete(n.values, s.value)
		}
	}
	if n.count == 0 {
		delete(n.t.names, n.key)
		ix.dropIfEmpty(n.t)
	}
}

func (ix *Index) dropIfEmpty(t *tenant) {
	if len(t.names) == 0 && t.over == nil && ix.tenants[t.id] == t {
		delete(ix.tenants, t.id)
	}
}

// Names calls fn for every name of scopes other than Intrinsic; ok is
// false when names were dropped (past MaxNames) and the list is short.
func (ix *Index) Names(tenantID string, fn func(scope Scope, name string)) (ok bool) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	t := ix.tenants[tenantID]
	if t == nil {
		return true
	}
	if t.over != nil {
		return false
	}
	for k := range t.names {
		if k.scope != Intrinsic {
			fn(k.scope, k.name)
		}
	}
	return true
}

// Values calls fn for every listed value of (scope, name); ok is false
// when some were dropped (past a bound) and the list may be short.
func (ix *Index) Values(tenantID string, scope Scope, nm string, fn func(Value)) (ok bool) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	t := ix.tenants[tenantID]
	if t == nil {
		return true
	}
	n := t.names[nameKey{scope, nm}]
	if n == nil {
		return t.over == nil
	}
	if n.over != nil {
		return false
	}
	for v := range n.values {
		if v.Type != "" {
			fn(v)
		}
	}
	return true
}

// Size returns the values kept over every tenant, for metrics.
func (ix *Index) Size() int {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	n := 0
	for _, t := range ix.tenants {
		for _, nm := range t.names {
			n += len(nm.values)
		}
	}
	return n
}

// Len returns the number of names and values kept for tenant, for tests.
func (ix *Index) Len(tenantID string) (names, values int) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	t := ix.tenants[tenantID]
	if t == nil {
		return 0, 0
	}
	for _, n := range t.names {
		values += len(n.values)
	}
	return len(t.names), values
}
