package jaegeres

import (
	"fmt"
	"hash/fnv"
	"reflect"
	"strconv"
	"strings"

	"github.com/jaegertracing/jaeger/model"
	"go.opentelemetry.io/collector/featuregate"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// translator turns the spans of one trace into OTLP data exactly as the
// collector-contrib translator (jaegertranslator.ProtoToTraces, v0.165)
// does, which TestTranslatorEqualsContrib checks on the shared dataset and
// on the special tags it handles. It is its own port because the contrib
// one, for the spans of a migration, spends its time on work these spans
// do not need: it hashes every span's process to regroup them (they come
// grouped by shared process already), compares every span with a blank
// one through reflection, deletes the scope tags from the spans (moving
// their tags), and looks each special tag up in the OTLP map with a
// linear search, a dozen times a span. Here the attributes are gathered
// in a small slice first, with the same put/remove semantics as
// pcommon.Map (a put overwrites in place, a remove moves the last entry
// into the hole), then put in the map once. It does not change the spans.
type translator struct {
	emitV0HTTP, emitV1HTTP bool // the contrib translator's feature gates
	attrs                  []tattr
}

// The contrib translator's feature gates and their defaults (beta).
const (
	gateDontEmitV0HTTP = "pkg.translator.jaeger.DontEmitV0HttpConventions"
	gateEmitV1HTTP     = "pkg.translator.jaeger.EmitV1HttpConventions"
)

func newTranslator() *translator {
	dontV0, v1 := true, true
	featuregate.GlobalRegistry().VisitAll(func(g *featuregate.Gate) {
		switch g.ID() {
		case gateDontEmitV0HTTP:
			dontV0 = g.IsEnabled()
		case gateEmitV1HTTP:
			v1 = g.IsEnabled()
		}
	})
	return &translator{emitV0HTTP: !dontV0, emitV1HTTP: v1}
}

// tattr is an attribute being gathered: its value is kv's, or str when
// kv is nil (a string).
type tattr struct {
	key string
	kv  *model.KeyValue
	str string
}

// kind is the pcommon value type of a.
func (a *tattr) kind() pcommon.ValueType {
	if a.kv == nil {
		return pcommon.ValueTypeStr
	}
	switch a.kv.VType {
	case model.BoolType:
		return pcommon.ValueTypeBool
	case model.Int64Type:
		return pcommon.ValueTypeInt
	case model.Float64Type:
		return pcommon.ValueTypeDouble
	case model.BinaryType:
		return pcommon.ValueTypeBytes
	}
	return pcommon.ValueTypeStr
}

// strVal is pcommon.Value.Str of a: "" unless it is a string.
func (a *tattr) strVal() string {
	if a.kv == nil {
		return a.str
	}
	switch a.kv.VType {
	case model.StringType:
		return a.kv.VStr
	case model.BoolType, model.Int64Type, model.Float64Type, model.BinaryType:
		return ""
	}
	return fmt.Sprintf("<Unknown Jaeger TagType %q>", a.kv.VType)
}

func (t *translator) get(key string) (tattr, bool) {
	for i := range t.attrs {
		if t.attrs[i].key == key {
			return t.attrs[i], true
		}
	}
	return tattr{}, false
}

func (t *translator) put(a tattr) {
	for i := range t.attrs {
		if t.attrs[i].key == a.key {
			t.attrs[i] = a
			return
		}
	}
	t.attrs = append(t.attrs, a)
}

func (t *translator) remove(key string) {
	for i := range t.attrs {
		if t.attrs[i].key == key {
			t.attrs[i] = t.attrs[len(t.attrs)-1]
			t.attrs = t.attrs[:len(t.attrs)-1]
			return
		}
	}
}

// putTags is jTagsToInternalAttributes; skip are indices of tags left
// out (the scope tags, which the contrib translator deletes first).
func (t *translator) putTags(tags []model.KeyValue, skip1, skip2 int) {
	for i := range tags {
		if i == skip1 || i == skip2 {
			continue
		}
		kv := &tags[i]
		if kv.Key == "http.status_code" || kv.Key == "http.response.status_code" {
			if t.emitV0HTTP {
				t.put(tattr{key: "http.status_code", kv: kv})
			}
			if t.emitV1HTTP {
				t.put(tattr{key: "http.response.status_code", kv: kv})
			}
			continue
		}
		t.put(tattr{key: kv.Key, kv: kv})
	}
}

// flush puts the gathered attributes into dest (empty) in their order.
func (t *translator) flush(dest pcommon.Map) {
	if len(t.attrs) == 0 {
		return
	}
	dest.EnsureCapacity(len(t.attrs))
	for i := range t.attrs {
		a := &t.attrs[i]
		if a.kv == nil {
			dest.PutStr(a.key, a.str)
			continue
		}
		switch a.kv.VType {
		case model.StringType:
			dest.PutStr(a.key, a.kv.VStr)
		case model.BoolType:
			dest.PutBool(a.key, a.kv.VBool)
		case model.Int64Type:
			dest.PutInt(a.key, a.kv.VInt64)
		case model.Float64Type:
			dest.PutDouble(a.key, a.kv.VFloat64)
		case model.BinaryType:
			dest.PutEmptyBytes(a.key).FromRaw(a.kv.VBinary)
		default:
			dest.PutStr(a.key, a.strVal())
		}
	}
	clear(t.attrs)
	t.attrs = t.attrs[:0]
}

// traces translates the spans of one trace, one resource per distinct
// process (in order of first appearance).
func (t *translator) traces(spans []*model.Span) ptrace.Traces {
	td := ptrace.NewTraces()
	if len(spans) == 0 {
		return td
	}
	// As the contrib translator does, spans whose processes hash alike
	// (model.Process.Hash, FNV-64a) share a resource: the first such
	// process's, or none for the hash of nothing (a nil process, or one
	// without service name and tags). Processes are hashed once each.
	type group struct {
		sum   uint64
		p     *model.Process
		spans []*model.Span
	}
	var groups []group
	type known struct {
		p *model.Process
		g int
	}
	var seen []known
	for _, sp := range spans {
		g := -1
		for _, k := range seen {
			if k.p == sp.Process {
				g = k.g
				break
			}
		}
		if g < 0 {
			sum := processSum(sp.Process)
			for i := range groups {
				if groups[i].sum == sum {
					g = i
					break
				}
			}
			if g < 0 {
				g = len(groups)
				p := sp.Process
				if sum == emptySum {
					p = nil
				}
				groups = append(groups, group{sum: sum, p: p})
			}
			seen = append(seen, known{sp.Process, g})
		}
		groups[g].spans = append(groups[g].spans, sp)
	}
	rss := td.ResourceSpans()
	rss.EnsureCapacity(len(groups))
	for _, g := range groups {
		rs := rss.AppendEmpty()
		t.resource(g.p, rs.Resource())
		t.spans(g.spans, rs.ScopeSpans())
	}
	return td
}

// emptySum is the hash of nothing: the contrib translator's batch of
// spans handed to it without a process.
var emptySum = fnv.New64a().Sum64()

func processSum(p *model.Process) uint64 {
	h := fnv.New64a()
	if p != nil {
		_ = p.Hash(h)
	}
	return h.Sum64()
}

// resource is jProcessToInternalResource.
func (t *translator) resource(p *model.Process, dest pcommon.Resource) {
	if p == nil || p.ServiceName == "OTLPResourceNoServiceName" {
		return
	}
	if p.ServiceName == "" && p.Tags == nil {
		return
	}
	if p.ServiceName != "" {
		t.put(tattr{key: "service.name", str: p.ServiceName})
	}
	t.putTags(p.Tags, -1, -1)
	// translateHostnameAttr: host.name is put at the end, then hostname
	// removed (the last entry, host.name, takes its place).
	if h, ok := t.get("hostname"); ok {
		if _, ok := t.get("host.name"); !ok {
			h.key = "host.name"
			t.put(h)
			t.remove("hostname")
		}
	}
	// translateJaegerVersionAttr
	if v, ok := t.get("jaeger.version"); ok {
		if _, ok := t.get("opencensus.exporterversion"); !ok {
			t.put(tattr{key: "opencensus.exporterversion", str: "Jaeger-" + v.strVal()})
			t.remove("jaeger.version")
		}
	}
	t.flush(dest.Attributes())
}

var blankSpan = new(model.Span)

// isBlank: the contrib translator skips a span equal to a blank one (its
// process aside: the spans are handed to it without).
func isBlank(sp *model.Span) bool {
	if sp.TraceID != (model.TraceID{}) || sp.SpanID != 0 || !sp.StartTime.IsZero() {
		return false
	}
	c := *sp
	c.Process = nil
	return reflect.DeepEqual(&c, blankSpan)
}

// spans is jSpansToInternal: one scope per otel.scope.name/version, in
// order of first appearance.
func (t *translator) spans(spans []*model.Span, dest ptrace.ScopeSpansSlice) {
	type scopeSpans struct {
		name, version string
		spans         ptrace.SpanSlice
	}
	var scopes []scopeSpans
	for _, sp := range spans {
		if sp == nil || isBlank(sp) {
			continue
		}
		// getScope: the first otel.scope.name tag, then (only with one)
		// the first otel.scope.version tag, are taken out of the tags.
		name, version, skipName, skipVersion := "", "", -1, -1
		for i := range sp.Tags {
			if sp.Tags[i].Key == "otel.scope.name" {
				name, skipName = sp.Tags[i].GetVStr(), i
				break
			}
		}
		if skipName >= 0 {
			for i := range sp.Tags {
				if i != skipName && sp.Tags[i].Key == "otel.scope.version" {
					version, skipVersion = sp.Tags[i].GetVStr(), i
					break
				}
			}
		}
		k := -1
		for i := range scopes {
			if scopes[i].name == name && scopes[i].version == version {
				k = i
				break
			}
		}
		if k < 0 {
			ss := dest.AppendEmpty()
			ss.Scope().SetName(name)
			ss.Scope().SetVersion(version)
			scopes = append(scopes, scopeSpans{name: name, version: version, spans: ss.Spans()})
			k = len(scopes) - 1
		}
		t.span(sp, skipName, skipVersion, scopes[k].spans.AppendEmpty())
	}
}

func traceIDOf(id model.TraceID) pcommon.TraceID {
	return pcommon.TraceID(toOTLPID(id))
}

func spanIDOf(id model.SpanID) pcommon.SpanID {
	var b [8]byte
	for i := range 8 {
		b[i] = byte(uint64(id) >> (56 - 8*i))
	}
	return pcommon.SpanID(b)
}

// span is jSpanToInternal.
func (t *translator) span(sp *model.Span, skip1, skip2 int, dest ptrace.Span) {
	dest.SetTraceID(traceIDOf(sp.TraceID))
	dest.SetSpanID(spanIDOf(sp.SpanID))
	dest.SetName(sp.OperationName)
	dest.SetStartTimestamp(pcommon.NewTimestampFromTime(sp.StartTime))
	dest.SetEndTimestamp(pcommon.NewTimestampFromTime(sp.StartTime.Add(sp.Duration)))
	if sp.Flags.IsSampled() {
		dest.SetFlags(dest.Flags() | 1)
	}
	parent := sp.ParentSpanID()
	if parent != 0 {
		dest.SetParentSpanID(spanIDOf(parent))
	}

	t.putTags(sp.Tags, skip1, skip2)
	if k, ok := t.get("span.kind"); ok {
		dest.SetKind(spanKind(k.strVal()))
		t.remove("span.kind")
	}
	t.status(dest)
	traceState := ""
	if ts, ok := t.get("w3c.tracestate"); ok {
		traceState = ts.strVal()
		t.remove("w3c.tracestate")
	}
	t.flush(dest.Attributes())
	dest.TraceState().FromRaw(traceState)

	if len(sp.Logs) > 0 {
		evs := dest.Events()
		evs.EnsureCapacity(len(sp.Logs))
		for i := range sp.Logs {
			l := &sp.Logs[i]
			ev := evs.AppendEmpty()
			ev.SetTimestamp(pcommon.NewTimestampFromTime(l.Timestamp))
			if len(l.Fields) == 0 {
				continue
			}
			t.putTags(l.Fields, -1, -1)
			if n, ok := t.get("event"); ok {
				ev.SetName(n.strVal())
				t.remove("event")
			}
			t.flush(ev.Attributes())
		}
	}

	refs := sp.References
	if len(refs) == 0 || len(refs) == 1 && refs[0].SpanID == parent && refs[0].RefType == model.ChildOf {
		return
	}
	links := dest.Links()
	links.EnsureCapacity(len(refs))
	for _, r := range refs {
		if r.SpanID == parent && r.RefType == model.ChildOf {
			continue
		}
		l := links.AppendEmpty()
		l.SetTraceID(traceIDOf(r.TraceID))
		l.SetSpanID(spanIDOf(r.SpanID))
		if r.RefType == model.ChildOf {
			l.Attributes().PutStr("opentracing.ref_type", "child_of")
		} else {
			l.Attributes().PutStr("opentracing.ref_type", "follows_from")
		}
	}
}

func spanKind(k string) ptrace.SpanKind {
	switch k {
	case "client":
		return ptrace.SpanKindClient
	case "server":
		return ptrace.SpanKindServer
	case "producer":
		return ptrace.SpanKindProducer
	case "consumer":
		return ptrace.SpanKindConsumer
	case "internal":
		return ptrace.SpanKindInternal
	}
	return ptrace.SpanKindUnspecified
}

// statusDesc is extractStatusDescFromAttr.
func (t *translator) statusDesc() (string, bool) {
	if a, ok := t.get("otel.status_description"); ok {
		t.remove("otel.status_description")
		return a.strVal(), true
	}
	return "", false
}

// status is setInternalSpanStatus.
func (t *translator) status(sp ptrace.Span) {
	code := ptrace.StatusCodeUnset
	msg := ""
	exists := false
	if e, ok := t.get("error"); ok && e.kind() == pcommon.ValueTypeBool && e.kv.VBool {
		code = ptrace.StatusCodeError
		t.remove("error")
		exists = true
		if d, ok := t.statusDesc(); ok {
			msg = d
		} else if m, ok := t.get("http.status_message"); ok {
			msg = m.strVal()
		}
	}
	if c, ok := t.get("otel.status_code"); ok {
		if !exists {
			exists = true
			switch strings.ToUpper(c.strVal()) {
			case "OK":
				code = ptrace.StatusCodeOk
			case "ERROR":
				code = ptrace.StatusCodeError
			}
			if d, ok := t.statusDesc(); ok {
				msg = d
			}
		}
		t.remove("otel.status_code")
	} else if h, ok := t.httpStatus(); !exists && ok {
		if c, err := httpStatusCode(h, sp.Kind()); err == nil {
			if c != ptrace.StatusCodeUnset {
				exists = true
				code = c
			}
			if m, ok := t.get("http.status_message"); ok {
				msg = m.strVal()
			}
		}
	}
	if exists {
		sp.Status().SetCode(code)
		sp.Status().SetMessage(msg)
	}
}

// httpStatus is getHTTPStatusCodeAttr.
func (t *translator) httpStatus() (tattr, bool) {
	if a, ok := t.get("http.status_code"); ok {
		return a, true
	}
	return t.get("http.response.status_code")
}

// httpStatusCode is getStatusCodeFromHTTPStatusAttr.
func httpStatusCode(a tattr, kind ptrace.SpanKind) (ptrace.StatusCode, error) {
	var code int64
	switch a.kind() {
	case pcommon.ValueTypeInt:
		code = a.kv.VInt64
	case pcommon.ValueTypeStr:
		var err error
		if code, err = strconv.ParseInt(a.strVal(), 10, 0); err != nil {
			return ptrace.StatusCodeUnset, err
		}
	default:
		return ptrace.StatusCodeUnset, fmt.Errorf("invalid type: %s", a.kind())
	}
	if code >= 400 && code < 500 {
		switch kind {
		case ptrace.SpanKindClient:
			return ptrace.StatusCodeError, nil
		case ptrace.SpanKindServer:
			return ptrace.StatusCodeUnset, nil
		}
	}
	if code >= 100 && code < 399 {
		return ptrace.StatusCodeUnset, nil
	}
	return ptrace.StatusCodeError, nil
}
