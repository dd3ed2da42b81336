package vparquet4

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"strconv"

	"go.opentelemetry.io/collector/pdata/pcommon"
)

// appendAttr encodes one OTLP attribute into the generic 7-leaf group of
// §3.7. buf is scratch space for ValueUnsupported JSON.
func appendAttr(dst []Attribute, key string, v pcommon.Value, a *arena) []Attribute {
	dst = growAttrs(dst)
	at := &dst[len(dst)-1]
	at.Key = key
	switch v.Type() {
	case pcommon.ValueTypeStr:
		at.Value = append(at.Value, v.Str())
	case pcommon.ValueTypeInt:
		at.ValueInt = append(at.ValueInt, v.Int())
	case pcommon.ValueTypeDouble:
		at.ValueDouble = append(at.ValueDouble, v.Double())
	case pcommon.ValueTypeBool:
		at.ValueBool = append(at.ValueBool, v.Bool())
	case pcommon.ValueTypeSlice:
		s := v.Slice()
		if s.Len() == 0 {
			at.IsArray = true
			break
		}
		t := s.At(0).Type()
		homogeneous := t == pcommon.ValueTypeStr || t == pcommon.ValueTypeInt || t == pcommon.ValueTypeDouble || t == pcommon.ValueTypeBool
		for i := 1; homogeneous && i < s.Len(); i++ {
			homogeneous = s.At(i).Type() == t
		}
		if !homogeneous {
			at.ValueUnsupported = a.str(string(appendAnyValueJSON(a.scratch[:0], v)))
			break
		}
		at.IsArray = true
		for i := range s.Len() {
			e := s.At(i)
			switch t {
			case pcommon.ValueTypeStr:
				at.Value = append(at.Value, e.Str())
			case pcommon.ValueTypeInt:
				at.ValueInt = append(at.ValueInt, e.Int())
			case pcommon.ValueTypeDouble:
				at.ValueDouble = append(at.ValueDouble, e.Double())
			case pcommon.ValueTypeBool:
				at.ValueBool = append(at.ValueBool, e.Bool())
			}
		}
	default: // map, bytes, empty
		a.scratch = appendAnyValueJSON(a.scratch[:0], v)
		at.ValueUnsupported = a.str(string(a.scratch))
	}
	return dst
}

// growAttrs extends dst by one element, reusing the old element's slices.
// Fields are only written when they change: every pointer store costs a
// write barrier while the GC runs.
func growAttrs(dst []Attribute) []Attribute {
	if len(dst) < cap(dst) {
		dst = dst[:len(dst)+1]
		at := &dst[len(dst)-1]
		at.IsArray = false
		if len(at.Value) > 0 {
			at.Value = at.Value[:0]
		}
		if len(at.ValueInt) > 0 {
			at.ValueInt = at.ValueInt[:0]
		}
		if len(at.ValueDouble) > 0 {
			at.ValueDouble = at.ValueDouble[:0]
		}
		if len(at.ValueBool) > 0 {
			at.ValueBool = at.ValueBool[:0]
		}
		if at.ValueUnsupported != nil {
			at.ValueUnsupported = nil
		}
		return dst
	}
	return append(dst, Attribute{})
}

// attrToValue decodes the generic group back into dst (§3.7 "Reading").
func attrToValue(at *Attribute, dst pcommon.Value) error {
	if at.IsArray {
		s := dst.SetEmptySlice()
		switch {
		case len(at.Value) > 0:
			s.EnsureCapacity(len(at.Value))
			for _, x := range at.Value {
				s.AppendEmpty().SetStr(x)
			}
		case len(at.ValueInt) > 0:
			s.EnsureCapacity(len(at.ValueInt))
			for _, x := range at.ValueInt {
				s.AppendEmpty().SetInt(x)
			}
		case len(at.ValueDouble) > 0:
			s.EnsureCapacity(len(at.ValueDouble))
			for _, x := range at.ValueDouble {
				s.AppendEmpty().SetDouble(x)
			}
		case len(at.ValueBool) > 0:
			s.EnsureCapacity(len(at.ValueBool))
			for _, x := range at.ValueBool {
				s.AppendEmpty().SetBool(x)
			}
		}
		return nil
	}
	switch {
	case len(at.Value) > 0:
		dst.SetStr(at.Value[0])
	case len(at.ValueInt) > 0:
		dst.SetInt(at.ValueInt[0])
	case len(at.ValueDouble) > 0:
		dst.SetDouble(at.ValueDouble[0])
	case len(at.ValueBool) > 0:
		dst.SetBool(at.ValueBool[0])
	case at.ValueUnsupported != nil:
		return parseAnyValueJSON([]byte(*at.ValueUnsupported), dst)
	}
	return nil
}

// appendAnyValueJSON appends the protobuf-JSON form of an OTLP AnyValue:
// one key named after the set field, 64-bit ints as strings, bytes as
// base64, empty lists left out.
func appendAnyValueJSON(b []byte, v pcommon.Value) []byte {
	switch v.Type() {
	case pcommon.ValueTypeStr:
		b = append(b, `{"stringValue":`...)
		b = appendJSONString(b, v.Str())
		return append(b, '}')
	case pcommon.ValueTypeInt:
		b = append(b, `{"intValue":"`...)
		b = strconv.AppendInt(b, v.Int(), 10)
		return append(b, `"}`...)
	case pcommon.ValueTypeDouble:
		b = append(b, `{"doubleValue":`...)
		b = appendJSONDouble(b, v.Double())
		return append(b, '}')
	case pcommon.ValueTypeBool:
		b = append(b, `{"boolValue":`...)
		b = strconv.AppendBool(b, v.Bool())
		return append(b, '}')
	case pcommon.ValueTypeBytes:
		b = append(b, `{"bytesValue":"`...)
		b = base64.StdEncoding.AppendEncode(b, v.Bytes().AsRaw())
		return append(b, `"}`...)
	case pcommon.ValueTypeSlice:
		s := v.Slice()
		if s.Len() == 0 {
			return append(b, `{"arrayValue":{}}`...)
		}
		b = append(b, `{"arrayValue":{"values":[`...)
		for i := range s.Len() {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendAnyValueJSON(b, s.At(i))
		}
		return append(b, `]}}`...)
	case pcommon.ValueTypeMap:
		m := v.Map()
		if m.Len() == 0 {
			return append(b, `{"kvlistValue":{}}`...)
		}
		b = append(b, `{"kvlistValue":{"values":[`...)
		i := 0
		for k, e := range m.All() {
			if i > 0 {
				b = append(b, ',')
			}
			i++
			b = append(b, `{"key":`...)
			b = appendJSONString(b, k)
			b = append(b, `,"value":`...)
			b = appendAnyValueJSON(b, e)
			b = append(b, '}')
		}
		return append(b, `]}}`...)
	}
	return append(b, `{}`...)
}

func appendJSONString(b []byte, s string) []byte {
	enc, _ := json.Marshal(s)
	return append(b, enc...)
}

// appendJSONDouble writes a double as protobuf-JSON does: special values
// as strings, others as the shortest round-tripping number.
func appendJSONDouble(b []byte, f float64) []byte {
	switch {
	case math.IsNaN(f):
		return append(b, `"NaN"`...)
	case math.IsInf(f, 1):
		return append(b, `"Infinity"`...)
	case math.IsInf(f, -1):
		return append(b, `"-Infinity"`...)
	}
	enc, _ := json.Marshal(f)
	return append(b, enc...)
}

// parseAnyValueJSON parses the protobuf-JSON form of an AnyValue into dst.
// It accepts both camelCase and the proto field names, and ints and
// doubles as numbers or strings.
func parseAnyValueJSON(data []byte, dst pcommon.Value) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var raw any
	if err := dec.Decode(&raw); err != nil {
		return fmt.Errorf("attribute value %q: %w", truncate(data), err)
	}
	if err := setAnyValue(raw, dst); err != nil {
		return fmt.Errorf("attribute value %q: %w", truncate(data), err)
	}
	return nil
}

func truncate(b []byte) string {
	if len(b) > 64 {
		return string(b[:64]) + "…"
	}
	return string(b)
}

func setAnyValue(raw any, dst pcommon.Value) error {
	obj, ok := raw.(map[string]any)
	if !ok {
		return fmt.Errorf("want an object, got %T", raw)
	}
	for k, v := range obj {
		switch k {
		case "stringValue", "string_value":
			s, ok := v.(string)
			if !ok {
				return fmt.Errorf("stringValue: want a string")
			}
			dst.SetStr(s)
		case "intValue", "int_value":
			n, err := jsonInt(v)
			if err != nil {
				return err
			}
			dst.SetInt(n)
		case "doubleValue", "double_value":
			f, err := jsonDouble(v)
			if err != nil {
				return err
			}
			dst.SetDouble(f)
		case "boolValue", "bool_value":
			bv, ok := v.(bool)
			if !ok {
				return fmt.Errorf("boolValue: want a bool")
			}
			dst.SetBool(bv)
		case "bytesValue", "bytes_value":
			s, _ := v.(string)
			data, err := base64.StdEncoding.DecodeString(s)
			if err != nil {
				if data, err = base64.URLEncoding.DecodeString(s); err != nil {
					return fmt.Errorf("bytesValue: %w", err)
				}
			}
			dst.SetEmptyBytes().FromRaw(data)
		case "arrayValue", "array_value":
			s := dst.SetEmptySlice()
			av, _ := v.(map[string]any)
			vals, _ := av["values"].([]any)
			for _, e := range vals {
				if err := setAnyValue(e, s.AppendEmpty()); err != nil {
					return err
				}
			}
		case "kvlistValue", "kvlist_value":
			m := dst.SetEmptyMap()
			kv, _ := v.(map[string]any)
			vals, _ := kv["values"].([]any)
			for _, e := range vals {
				eo, _ := e.(map[string]any)
				key, _ := eo["key"].(string)
				if val, ok := eo["value"]; ok {
					if err := setAnyValue(val, m.PutEmpty(key)); err != nil {
						return err
					}
				} else {
					m.PutEmpty(key)
				}
			}
		}
	}
	return nil
}

func jsonInt(v any) (int64, error) {
	switch x := v.(type) {
	case json.Number:
		return strconv.ParseInt(x.String(), 10, 64)
	case string:
		return strconv.ParseInt(x, 10, 64)
	}
	return 0, fmt.Errorf("intValue: want a number, got %T", v)
}

func jsonDouble(v any) (float64, error) {
	switch x := v.(type) {
	case json.Number:
		return strconv.ParseFloat(x.String(), 64)
	case string:
		switch x {
		case "NaN":
			return math.NaN(), nil
		case "Infinity":
			return math.Inf(1), nil
		case "-Infinity":
			return math.Inf(-1), nil
		}
		return strconv.ParseFloat(x, 64)
	}
	return 0, fmt.Errorf("doubleValue: want a number, got %T", v)
}
