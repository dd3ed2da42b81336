package jaegeres

import (
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jaegertracing/jaeger/model"
	jsoniter "github.com/json-iterator/go"
)

// DefaultDotReplacement is the character Jaeger puts for "." in the keys of
// tags-as-fields maps (--es.tags-as-fields.dot-replacement).
const DefaultDotReplacement = "@"

// Decoder turns Jaeger span documents (dbmodel.Span as stored by every
// Jaeger writer generation) into model spans. It is safe for concurrent use.
type Decoder struct {
	// DotReplacement is replaced by "." in keys of the tag{} and
	// process.tag{} maps; empty means DefaultDotReplacement.
	DotReplacement string
}

var jsonCfg = jsoniter.Config{UseNumber: true}.Froze()

// Decode decodes one document's _source. It also returns the traceID
// exactly as stored (the sort key of the export). Accepted: string or
// JSON-typed tag values (Jaeger before/after 1.69), tags-as-fields maps,
// IDs without leading zeros (before 1.16), 64- and 128-bit trace IDs,
// parentSpanID (v2 writers), null or empty references and logs.
func (d *Decoder) Decode(src []byte) (*model.Span, string, error) {
	return d.decode(src, nil)
}

func (d *Decoder) decode(src []byte, in *interner) (*model.Span, string, error) {
	it := jsonCfg.BorrowIterator(src)
	defer jsonCfg.ReturnIterator(it)
	if in != nil {
		it.Attachment = in
		defer func() { it.Attachment = nil }()
	}
	dot := d.DotReplacement
	if dot == "" {
		dot = DefaultDotReplacement
	}
	var (
		sp                    = &model.Span{}
		rawTrace, rawSpan     string
		rawParent             string
		haveStart, haveTrace  bool
		startUS, durUS        uint64
		tagMap, processTagMap []model.KeyValue
		err                   error
	)
	if it.WhatIsNext() != jsoniter.ObjectValue {
		return nil, "", errors.New("the document is not a JSON object")
	}
	for field := it.ReadObject(); field != "" && err == nil; field = it.ReadObject() {
		switch field {
		case "traceID":
			rawTrace, err = readID(it, field)
			haveTrace = true
		case "spanID":
			rawSpan, err = readID(it, field)
		case "parentSpanID":
			if !it.ReadNil() {
				rawParent, err = readID(it, field)
			}
		case "flags":
			var f uint64
			f, err = readUint(it, field)
			if err == nil && f > math.MaxUint32 {
				err = fmt.Errorf("flags %d out of range", f)
			}
			sp.Flags = model.Flags(f)
		case "operationName":
			sp.OperationName, err = readStringOrNull(it, field)
		case "references":
			sp.References, err = readRefs(it)
		case "startTime":
			startUS, err = readUint(it, field)
			haveStart = true
		case "duration":
			durUS, err = readUint(it, field)
		case "tags":
			sp.Tags, err = readKVs(it, "tags", sp.Tags)
		case "tag":
			tagMap, err = readTagMap(it, "tag", dot)
		case "logs":
			sp.Logs, err = readLogs(it)
		case "process":
			var p *model.Process
			p, processTagMap, err = readProcess(it, dot, in.scratchProcess())
			sp.Process = p
		default:
			it.Skip()
		}
		if err == nil && it.Error != nil {
			err = fmt.Errorf("%s: %w", field, it.Error)
		}
	}
	if err == nil && it.Error != nil {
		err = it.Error
	}
	if err != nil {
		return nil, rawTrace, err
	}
	if !haveTrace {
		return nil, "", errors.New("no traceID")
	}
	if sp.TraceID, err = ParseTraceID(rawTrace); err != nil {
		return nil, rawTrace, fmt.Errorf("traceID %q: %w", rawTrace, err)
	}
	if sp.SpanID, err = parseSpanID(rawSpan); err != nil {
		return nil, rawTrace, fmt.Errorf("spanID %q: %w", rawSpan, err)
	}
	if !haveStart {
		return nil, rawTrace, errors.New("no startTime")
	}
	if startUS > math.MaxInt64/1000 || durUS > math.MaxInt64/1000 {
		return nil, rawTrace, fmt.Errorf("startTime %d or duration %d out of range", startUS, durUS)
	}
	sp.StartTime = time.Unix(0, int64(startUS)*1000).UTC()
	sp.Duration = time.Duration(durUS) * time.Microsecond
	// Jaeger appends the tags-as-fields entries after tags[].
	sp.Tags = append(sp.Tags, tagMap...)
	if sp.Process == nil {
		sp.Process = &model.Process{}
	}
	sp.Process.Tags = append(sp.Process.Tags, processTagMap...)
	for i := range sp.References {
		r := &sp.References[i]
		if r.TraceID == (model.TraceID{}) {
			r.TraceID = sp.TraceID
		}
	}
	if rawParent != "" {
		parent, err := parseSpanID(rawParent)
		if err != nil {
			return nil, rawTrace, fmt.Errorf("parentSpanID %q: %w", rawParent, err)
		}
		if parent != 0 {
			sp.References = parentFirst(sp.References, sp.TraceID, parent)
		}
	}
	return sp, rawTrace, nil
}

// parentFirst makes the CHILD_OF reference to parent the first one, so the
// parentSpanID field wins over other references (under Jaeger v2.20's
// omitParentSpanIDReference gate it is the only place the parent appears).
func parentFirst(refs []model.SpanRef, trace model.TraceID, parent model.SpanID) []model.SpanRef {
	want := model.SpanRef{TraceID: trace, SpanID: parent, RefType: model.ChildOf}
	if i := slices.IndexFunc(refs, func(r model.SpanRef) bool {
		return r.TraceID == trace && r.SpanID == parent && r.RefType == model.ChildOf
	}); i >= 0 {
		refs = slices.Delete(refs, i, i+1)
	}
	return slices.Insert(refs, 0, want)
}

// ParseTraceID parses a stored traceID: 1 to 32 hex digits, with or without
// leading zeros (writers before Jaeger 1.16 dropped them, also in the high
// half of a 128-bit ID: "%x%016x").
func ParseTraceID(s string) (model.TraceID, error) {
	if s == "" || len(s) > 32 {
		return model.TraceID{}, errors.New("want 1 to 32 hex digits")
	}
	var id model.TraceID
	var err error
	if len(s) > 16 {
		if id.High, err = strconv.ParseUint(s[:len(s)-16], 16, 64); err != nil {
			return id, errors.New("not hex")
		}
		s = s[len(s)-16:]
	}
	if id.Low, err = strconv.ParseUint(s, 16, 64); err != nil {
		return id, errors.New("not hex")
	}
	return id, nil
}

func parseSpanID(s string) (model.SpanID, error) {
	if s == "" || len(s) > 16 {
		return 0, errors.New("want 1 to 16 hex digits")
	}
	v, err := strconv.ParseUint(s, 16, 64)
	if err != nil {
		return 0, errors.New("not hex")
	}
	return model.SpanID(v), nil
}

// TraceIDForms lists every way a Jaeger writer may have stored id: the
// 32-digit form (v2 writers, v1 for 128-bit IDs), the 16-digit one when the
// high half is 0 (v1), and the forms without leading zeros (before 1.16).
func TraceIDForms(id model.TraceID) []string {
	full := fmt.Sprintf("%016x%016x", id.High, id.Low)
	forms := []string{full}
	add := func(s string) {
		if !slices.Contains(forms, s) {
			forms = append(forms, s)
		}
	}
	if id.High == 0 {
		add(fmt.Sprintf("%016x", id.Low))
		add(fmt.Sprintf("%x", id.Low))
	} else {
		add(fmt.Sprintf("%x%016x", id.High, id.Low))
	}
	return forms
}

func readString(it *jsoniter.Iterator, field string) (string, error) {
	if it.WhatIsNext() != jsoniter.StringValue {
		return "", fmt.Errorf("%s: want a string", field)
	}
	return readStr(it), nil
}

func readStringOrNull(it *jsoniter.Iterator, field string) (string, error) {
	if it.ReadNil() {
		return "", nil
	}
	return readString(it, field)
}

func readUint(it *jsoniter.Iterator, field string) (uint64, error) {
	switch it.WhatIsNext() {
	case jsoniter.NumberValue:
		n := it.ReadNumber()
		v, err := strconv.ParseUint(string(n), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %s is not an unsigned integer", field, n)
		}
		return v, nil
	case jsoniter.StringValue: // tolerated: numbers stored as strings
		s := readStr(it)
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %q is not an unsigned integer", field, s)
		}
		return v, nil
	case jsoniter.NilValue:
		it.Skip()
		return 0, nil
	}
	return 0, fmt.Errorf("%s: want a number", field)
}

func readRefs(it *jsoniter.Iterator) ([]model.SpanRef, error) {
	if it.ReadNil() {
		return nil, nil
	}
	if it.WhatIsNext() != jsoniter.ArrayValue {
		return nil, errors.New("references: want an array")
	}
	var refs []model.SpanRef
	var err error
	for it.ReadArray() {
		if err != nil {
			it.Skip()
			continue
		}
		var r model.SpanRef
		var rawT, rawS, typ string
		for f := it.ReadObject(); f != ""; f = it.ReadObject() {
			switch f {
			case "refType":
				typ, err = readString(it, "references.refType")
			case "traceID":
				rawT, err = readID(it, "references.traceID")
			case "spanID":
				rawS, err = readID(it, "references.spanID")
			default:
				it.Skip()
			}
		}
		if err != nil {
			continue
		}
		switch typ {
		case "CHILD_OF", "":
			r.RefType = model.ChildOf
		case "FOLLOWS_FROM":
			r.RefType = model.FollowsFrom
		default:
			err = fmt.Errorf("references: unknown refType %q", typ)
			continue
		}
		if rawT != "" {
			if r.TraceID, err = ParseTraceID(rawT); err != nil {
				err = fmt.Errorf("references.traceID %q: %w", rawT, err)
				continue
			}
		}
		if r.SpanID, err = parseSpanID(rawS); err != nil {
			err = fmt.Errorf("references.spanID %q: %w", rawS, err)
			continue
		}
		refs = append(refs, r)
	}
	return refs, err
}

func readKVs(it *jsoniter.Iterator, what string, into []model.KeyValue) ([]model.KeyValue, error) {
	if it.ReadNil() {
		return into, nil
	}
	if it.WhatIsNext() != jsoniter.ArrayValue {
		return nil, fmt.Errorf("%s: want an array", what)
	}
	// The values are gathered on the stack and appended to into at once:
	// growing into one tag at a time allocated about twice the size of
	// the tags (model.KeyValue is 100-odd bytes), the largest share of
	// the decoder's allocations, and left that spare capacity on every
	// span buffered for a block.
	var local [16]model.KeyValue
	kvs := local[:0]
	var err error
	for it.ReadArray() {
		if err != nil {
			it.Skip()
			continue
		}
		var kv model.KeyValue
		kv, err = readKV(it, what)
		if err == nil {
			kvs = append(kvs, kv)
		}
	}
	if len(kvs) == 0 {
		return into, err
	}
	if into == nil {
		into = make([]model.KeyValue, 0, len(kvs))
	}
	return append(into, kvs...), err
}

// readKV reads {key, type, value}; value is a string in every Jaeger
// before 1.69 and JSON-typed for bool and numbers after.
func readKV(it *jsoniter.Iterator, what string) (model.KeyValue, error) {
	var (
		kv      model.KeyValue
		typ     string
		valKind jsoniter.ValueType
		str     string
		num     string
		b       bool
		err     error
	)
	for f := it.ReadObject(); f != ""; f = it.ReadObject() {
		switch f {
		case "key":
			kv.Key, err = readString(it, what+".key")
		case "type":
			typ, err = readString(it, what+".type")
		case "value":
			valKind = it.WhatIsNext()
			switch valKind {
			case jsoniter.StringValue:
				str = readStr(it)
			case jsoniter.NumberValue:
				num = string(it.ReadNumber())
			case jsoniter.BoolValue:
				b = it.ReadBool()
			default:
				it.Skip()
			}
		default:
			it.Skip()
		}
		if err != nil {
			return kv, err
		}
	}
	bad := func() (model.KeyValue, error) {
		v := str
		switch valKind {
		case jsoniter.NumberValue:
			v = num
		case jsoniter.BoolValue:
			v = strconv.FormatBool(b)
		}
		return kv, fmt.Errorf("%s: tag %q: value %q is not a valid %s", what, kv.Key, v, typ)
	}
	switch typ {
	case "string", "":
		kv.VType = model.StringType
		switch valKind {
		case jsoniter.StringValue:
			kv.VStr = str
		case jsoniter.NumberValue:
			kv.VStr = num
		case jsoniter.BoolValue:
			kv.VStr = strconv.FormatBool(b)
		}
	case "bool":
		kv.VType = model.BoolType
		switch valKind {
		case jsoniter.BoolValue:
			kv.VBool = b
		case jsoniter.StringValue:
			v, err := strconv.ParseBool(str)
			if err != nil {
				return bad()
			}
			kv.VBool = v
		default:
			return bad()
		}
	case "int64":
		kv.VType = model.Int64Type
		s := str
		if valKind == jsoniter.NumberValue {
			s = num
		} else if valKind != jsoniter.StringValue {
			return bad()
		}
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			f, ferr := strconv.ParseFloat(s, 64)
			if ferr != nil || f != math.Trunc(f) || math.Abs(f) > 1<<63 {
				return bad()
			}
			v = int64(f)
		}
		kv.VInt64 = v
	case "float64":
		kv.VType = model.Float64Type
		s := str
		if valKind == jsoniter.NumberValue {
			s = num
		} else if valKind != jsoniter.StringValue {
			return bad()
		}
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return bad()
		}
		kv.VFloat64 = v
	case "binary":
		kv.VType = model.BinaryType
		if valKind != jsoniter.StringValue {
			return bad()
		}
		v, err := hex.DecodeString(str)
		if err != nil {
			return bad()
		}
		kv.VBinary = v
	default:
		return kv, fmt.Errorf("%s: tag %q: unknown type %q", what, kv.Key, typ)
	}
	return kv, nil
}

// readTagMap reads a tags-as-fields map. Values keep their JSON type; an
// integral number is an int64 (Jaeger writes 1.0 as 1), others float64.
// Keys are sorted: Jaeger appends them in random map order.
func readTagMap(it *jsoniter.Iterator, what, dot string) ([]model.KeyValue, error) {
	if it.ReadNil() {
		return nil, nil
	}
	if it.WhatIsNext() != jsoniter.ObjectValue {
		return nil, fmt.Errorf("%s: want an object", what)
	}
	var out []model.KeyValue
	var err error
	for k := it.ReadObject(); k != ""; k = it.ReadObject() {
		key := strings.ReplaceAll(k, dot, ".")
		switch it.WhatIsNext() {
		case jsoniter.StringValue:
			out = append(out, model.String(key, readStr(it)))
		case jsoniter.BoolValue:
			out = append(out, model.Bool(key, it.ReadBool()))
		case jsoniter.NumberValue:
			n := string(it.ReadNumber())
			if v, perr := strconv.ParseInt(n, 10, 64); perr == nil {
				out = append(out, model.Int64(key, v))
			} else if f, perr := strconv.ParseFloat(n, 64); perr == nil {
				if f == math.Trunc(f) && math.Abs(f) < 1<<63 {
					out = append(out, model.Int64(key, int64(f)))
				} else {
					out = append(out, model.Float64(key, f))
				}
			} else if err == nil {
				err = fmt.Errorf("%s.%s: %s is not a number", what, k, n)
			}
		case jsoniter.NilValue:
			it.Skip()
		default:
			it.Skip()
			if err == nil {
				err = fmt.Errorf("%s.%s: want a string, number or bool", what, k)
			}
		}
	}
	slices.SortFunc(out, func(a, b model.KeyValue) int { return strings.Compare(a.Key, b.Key) })
	return out, err
}

func readLogs(it *jsoniter.Iterator) ([]model.Log, error) {
	if it.ReadNil() {
		return nil, nil
	}
	if it.WhatIsNext() != jsoniter.ArrayValue {
		return nil, errors.New("logs: want an array")
	}
	var logs []model.Log
	var err error
	for it.ReadArray() {
		if err != nil {
			it.Skip()
			continue
		}
		var l model.Log
		for f := it.ReadObject(); f != "" && err == nil; f = it.ReadObject() {
			switch f {
			case "timestamp":
				var us uint64
				us, err = readUint(it, "logs.timestamp")
				if err == nil && us > math.MaxInt64/1000 {
					err = fmt.Errorf("logs.timestamp %d out of range", us)
				}
				l.Timestamp = time.Unix(0, int64(us)*1000).UTC()
			case "fields":
				l.Fields, err = readKVs(it, "logs.fields", nil)
			default:
				it.Skip()
			}
		}
		logs = append(logs, l)
	}
	return logs, err
}

// readProcess reads into p when given (the interner's scratch process),
// else into a new one.
func readProcess(it *jsoniter.Iterator, dot string, p *model.Process) (*model.Process, []model.KeyValue, error) {
	if it.ReadNil() {
		return nil, nil, nil
	}
	if it.WhatIsNext() != jsoniter.ObjectValue {
		return nil, nil, errors.New("process: want an object")
	}
	if p == nil {
		p = &model.Process{}
	}
	var m []model.KeyValue
	var err error
	for f := it.ReadObject(); f != "" && err == nil; f = it.ReadObject() {
		switch f {
		case "serviceName":
			p.ServiceName, err = readStringOrNull(it, "process.serviceName")
		case "tags":
			p.Tags, err = readKVs(it, "process.tags", p.Tags)
		case "tag":
			m, err = readTagMap(it, "process.tag", dot)
		default:
			it.Skip()
		}
	}
	return p, m, err
}
