package pqread

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/parquet-go/parquet-go"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/tracectl/tracectl/internal/blocks/block"
)

// PutGenericAttrs decodes Tempo's 7-leaf generic attribute group (vParquet4
// and 5: Key, IsArray, Value[], ValueInt[], ValueDouble[], ValueBool[],
// ValueUnsupported) into dst, in stored order (TEMPO-FORMAT.md §3.7).
//
// Not an array: the first non-empty of Value, ValueInt, ValueDouble,
// ValueBool, else ValueUnsupported parsed as protobuf-JSON AnyValue, else an
// empty value. Array: the first non-empty list, or an empty array.
func PutGenericAttrs(dst pcommon.Map, attrs []*Group) error {
	for _, a := range attrs {
		key := a.Str("Key")
		v := dst.PutEmpty(key)
		isArray := false
		if b, ok := a.Value("IsArray"); ok {
			isArray = b.Boolean()
		}
		strs, ints := a.Values("Value"), a.Values("ValueInt")
		dbls, bools := a.Values("ValueDouble"), a.Values("ValueBool")
		if isArray {
			s := v.SetEmptySlice()
			switch {
			case len(strs) > 0:
				for _, x := range strs {
					s.AppendEmpty().SetStr(string(x.ByteArray()))
				}
			case len(ints) > 0:
				for _, x := range ints {
					s.AppendEmpty().SetInt(int64Of(x))
				}
			case len(dbls) > 0:
				for _, x := range dbls {
					s.AppendEmpty().SetDouble(x.Double())
				}
			case len(bools) > 0:
				for _, x := range bools {
					s.AppendEmpty().SetBool(x.Boolean())
				}
			}
			continue
		}
		switch {
		case len(strs) > 0:
			v.SetStr(string(strs[0].ByteArray()))
		case len(ints) > 0:
			v.SetInt(int64Of(ints[0]))
		case len(dbls) > 0:
			v.SetDouble(dbls[0].Double())
		case len(bools) > 0:
			v.SetBool(bools[0].Boolean())
		default:
			if u, ok := a.Value("ValueUnsupported"); ok {
				if err := AnyValueFromJSON(u.ByteArray(), v); err != nil {
					return fmt.Errorf("attribute %q: %w", key, err)
				}
			}
		}
	}
	return nil
}

// wrapJSONHead and wrapJSONTail put one AnyValue into an OTLP/JSON
// TracesData as the value of a span attribute, so that pdata's own JSON
// decoder reads it.
const (
	wrapJSONHead = `{"resourceSpans":[{"scopeSpans":[{"spans":[{"attributes":[{"key":"v","value":`
	wrapJSONTail = `}]}]}]}]}`
)

// AnyValueFromJSON decodes the protobuf-JSON form of an OTLP AnyValue
// (`{"kvlistValue":{…}}`, `{"arrayValue":{…}}`, `{"bytesValue":"…"}`…)
// into dst.
func AnyValueFromJSON(data []byte, dst pcommon.Value) error {
	if len(data) == 0 || data[0] != '{' || !json.Valid(data) {
		return errors.New("attribute value is not a JSON object")
	}
	buf := make([]byte, 0, len(wrapJSONHead)+len(data)+len(wrapJSONTail))
	buf = append(append(append(buf, wrapJSONHead...), data...), wrapJSONTail...)
	td, err := (&ptrace.JSONUnmarshaler{}).UnmarshalTraces(buf)
	if err != nil {
		return fmt.Errorf("attribute value JSON: %w", err)
	}
	return copyWrapped(td, dst)
}

func copyWrapped(td ptrace.Traces, dst pcommon.Value) error {
	rss := td.ResourceSpans()
	if rss.Len() != 1 || rss.At(0).ScopeSpans().Len() != 1 || rss.At(0).ScopeSpans().At(0).Spans().Len() != 1 {
		return errors.New("attribute value did not decode")
	}
	attrs := rss.At(0).ScopeSpans().At(0).Spans().At(0).Attributes()
	if attrs.Len() != 1 {
		return errors.New("attribute value did not decode")
	}
	attrs.Range(func(_ string, v pcommon.Value) bool {
		v.CopyTo(dst)
		return false
	})
	return nil
}

// OTLP protobuf field numbers used to wrap fragments into a TracesData.
const (
	fieldTracesDataResourceSpans = 1
	fieldResourceSpansScopeSpans = 2
	fieldScopeSpansSpans         = 2
	fieldSpanAttributes          = 9
	fieldSpanLinks               = 13
	fieldKeyValueValue           = 2
	fieldLinksBlobLinks          = 1 // Tempo's links blob: repeated Span.Link
)

// wrapSpan wraps the encoded fields of one Span into an encoded TracesData.
func wrapSpan(span []byte) []byte {
	ss := protowire.AppendTag(nil, fieldScopeSpansSpans, protowire.BytesType)
	ss = protowire.AppendBytes(ss, span)
	rs := protowire.AppendTag(nil, fieldResourceSpansScopeSpans, protowire.BytesType)
	rs = protowire.AppendBytes(rs, ss)
	td := protowire.AppendTag(nil, fieldTracesDataResourceSpans, protowire.BytesType)
	return protowire.AppendBytes(td, rs)
}

func unmarshalWrapped(span []byte) (ptrace.Traces, error) {
	return (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(wrapSpan(span))
}

// AnyValueFromProto decodes a protobuf-serialised OTLP AnyValue into dst
// (vParquet3 event attributes). Empty input is an empty value.
func AnyValueFromProto(data []byte, dst pcommon.Value) error {
	kv := protowire.AppendTag(nil, fieldKeyValueValue, protowire.BytesType)
	kv = protowire.AppendBytes(kv, data)
	span := protowire.AppendTag(nil, fieldSpanAttributes, protowire.BytesType)
	span = protowire.AppendBytes(span, kv)
	td, err := unmarshalWrapped(span)
	if err != nil {
		return fmt.Errorf("attribute value protobuf: %w", err)
	}
	return copyWrapped(td, dst)
}

// AnyValueFromProtoOrJSON decodes a vParquet3 event attribute value:
// protobuf, or the JSON very old blocks wrote.
func AnyValueFromProtoOrJSON(data []byte, dst pcommon.Value) error {
	// A protobuf AnyValue starts with the tag of field 1–7 (0x0a…0x3a);
	// '{' would be field 15 and is never valid, so JSON objects are told
	// apart by their first byte.
	if len(data) > 0 && data[0] == '{' && json.Valid(data) {
		return AnyValueFromJSON(data, dst)
	}
	err := AnyValueFromProto(data, dst)
	if err != nil && json.Valid(data) {
		if jerr := AnyValueFromJSON(data, dst); jerr == nil {
			return nil
		}
	}
	return err
}

// LinksFromProto decodes Tempo's vParquet3 links blob (a message whose field
// 1 is repeated OTLP Span.Link) and appends the links to dst. Unknown fields
// are skipped; an empty blob has no links.
func LinksFromProto(data []byte, dst ptrace.SpanLinkSlice) error {
	if len(data) == 0 {
		return nil
	}
	var span []byte
	for b := data; len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("links: %w", protowire.ParseError(n))
		}
		b = b[n:]
		if num == fieldLinksBlobLinks && typ == protowire.BytesType {
			link, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return fmt.Errorf("links: %w", protowire.ParseError(m))
			}
			span = protowire.AppendTag(span, fieldSpanLinks, protowire.BytesType)
			span = protowire.AppendBytes(span, link)
			b = b[m:]
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return fmt.Errorf("links: %w", protowire.ParseError(m))
		}
		b = b[m:]
	}
	if span == nil {
		return nil
	}
	td, err := unmarshalWrapped(span)
	if err != nil {
		return fmt.Errorf("links: %w", err)
	}
	src := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).Links()
	src.MoveAndAppendTo(dst)
	return nil
}

// Slot is where one dedicated column of the block's meta is stored.
type Slot struct {
	block.DedicatedColumn        // normalised: Scope and Type set
	Field                 string // "String01", "Int03", …
}

// Slots maps the block's dedicated-column list to field names for one scope
// (span, resource or event). The k-th entry of a type in that scope takes
// field <Type>kk (two digits): "String" for strings, "Int" for ints.
// perType counts ints separately (vParquet5); without it (vParquet3/4) only
// string entries exist and other entries are skipped, as Tempo drops them.
// Entries beyond maxString/maxInt slots are ignored.
func Slots(cols []block.DedicatedColumn, scope string, perType bool, maxString, maxInt int) []Slot {
	var out []Slot
	nStr, nInt := 0, 0
	for _, c := range cols {
		c = c.Normalize()
		if c.Scope != scope {
			continue
		}
		switch {
		case c.Type == block.TypeString:
			if nStr < maxString {
				nStr++
				out = append(out, Slot{c, fmt.Sprintf("String%02d", nStr)})
			}
		case c.Type == block.TypeInt && perType:
			if nInt < maxInt {
				nInt++
				out = append(out, Slot{c, fmt.Sprintf("Int%02d", nInt)})
			}
		}
	}
	return out
}

// PutDedicated adds the dedicated attributes held in group d (a
// DedicatedAttributes group) to dst: no value leaves the attribute out, one
// value is a scalar, several are an array (vParquet5 semantics, which also
// fit vParquet3/4's optional scalars).
func PutDedicated(dst pcommon.Map, d *Group, slots []Slot) {
	if d == nil {
		return
	}
	for _, s := range slots {
		vals := d.Values(s.Field)
		if len(vals) == 0 {
			continue
		}
		put := func(dst pcommon.Value, v parquet.Value) {
			if s.Type == block.TypeInt {
				dst.SetInt(int64Of(v))
			} else {
				dst.SetStr(string(v.ByteArray()))
			}
		}
		if len(vals) == 1 {
			put(dst.PutEmpty(s.Name), vals[0])
			continue
		}
		arr := dst.PutEmptySlice(s.Name)
		for _, v := range vals {
			put(arr.AppendEmpty(), v)
		}
	}
}

// PutSpanFields sets the span columns vParquet3 and vParquet5 share (IDs, name,
// kind, trace state, times, status) from the span group g, and returns the
// stored span ID bytes (for errors) and the start time.
func PutSpanFields(g *Group, tid pcommon.TraceID, sp ptrace.Span) (sid []byte, start uint64) {
	sp.SetTraceID(tid)
	sid = g.Bytes("SpanID")
	sp.SetSpanID(SpanID(sid))
	if p := g.Bytes("ParentSpanID"); len(p) > 0 {
		sp.SetParentSpanID(SpanID(p))
	}
	sp.SetName(g.Str("Name"))
	sp.SetKind(ptrace.SpanKind(g.Int64("Kind")))
	sp.TraceState().FromRaw(g.Str("TraceState"))
	start = g.Uint64("StartTimeUnixNano")
	sp.SetStartTimestamp(pcommon.Timestamp(start))
	sp.SetEndTimestamp(pcommon.Timestamp(start + g.Uint64("DurationNano")))
	sp.Status().SetCode(ptrace.StatusCode(g.Int64("StatusCode")))
	sp.Status().SetMessage(g.Str("StatusMessage"))
	return sid, start
}

// SpanID converts stored span ID bytes (8 as OTLP sends them) to a span ID,
// left-padding shorter IDs with zeros and keeping the last 8 bytes of longer
// ones.
func SpanID(b []byte) pcommon.SpanID {
	var id pcommon.SpanID
	if len(b) > len(id) {
		b = b[len(b)-len(id):]
	}
	copy(id[len(id)-len(b):], b)
	return id
}

// TraceID converts stored trace ID bytes to a trace ID, left-padding shorter
// IDs with zeros (as Tempo does) and keeping the last 16 bytes of longer ones.
func TraceID(b []byte) pcommon.TraceID {
	var id pcommon.TraceID
	if len(b) > len(id) {
		b = b[len(b)-len(id):]
	}
	copy(id[len(id)-len(b):], b)
	return id
}

// spanKey identifies repeats: the same span ID and kind.
type spanKey struct {
	id   pcommon.SpanID
	kind ptrace.SpanKind
}

// HasRepeatedSpans reports whether td holds a span ID + kind more than once.
func HasRepeatedSpans(td ptrace.Traces) bool {
	seen := map[spanKey]bool{}
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		sss := rss.At(i).ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			spans := sss.At(j).Spans()
			for k := 0; k < spans.Len(); k++ {
				sp := spans.At(k)
				kk := spanKey{sp.SpanID(), sp.Kind()}
				if seen[kk] {
					return true
				}
				seen[kk] = true
			}
		}
	}
	return false
}

// DropRepeatedSpans returns td without repeats of a span ID + kind (the
// first copy of each stays; scopes and resources left empty go too) and
// whether there were any. td is not changed; without repeats td itself is
// returned.
func DropRepeatedSpans(td ptrace.Traces) (ptrace.Traces, bool) {
	if !HasRepeatedSpans(td) {
		return td, false
	}
	out := ptrace.NewTraces()
	td.CopyTo(out)
	seen := map[spanKey]bool{}
	out.ResourceSpans().RemoveIf(func(rs ptrace.ResourceSpans) bool {
		rs.ScopeSpans().RemoveIf(func(ss ptrace.ScopeSpans) bool {
			ss.Spans().RemoveIf(func(sp ptrace.Span) bool {
				kk := spanKey{sp.SpanID(), sp.Kind()}
				if seen[kk] {
					return true
				}
				seen[kk] = true
				return false
			})
			return ss.Spans().Len() == 0
		})
		return rs.ScopeSpans().Len() == 0
	})
	return out, true
}
