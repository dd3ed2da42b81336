package vparquet4

import (
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
)

// FuzzParseAnyValueJSON: ValueUnsupported comes from files written by
// anyone; parsing must not panic, and what we write must parse back.
func FuzzParseAnyValueJSON(f *testing.F) {
	for _, s := range []string{
		`{"kvlistValue":{"values":[{"key":"k1","value":{"stringValue":"v1"}}]}}`,
		`{"kvlistValue":{}}`, `{"bytesValue":"3q2+7wAB"}`,
		`{"arrayValue":{"values":[{"stringValue":"a"},{"intValue":"1"},{"doubleValue":1.5},{"boolValue":true}]}}`,
		`{"doubleValue":"NaN"}`, `{"intValue":12}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v := pcommon.NewValueEmpty()
		if err := parseAnyValueJSON(data, v); err != nil {
			return
		}
		enc := appendAnyValueJSON(nil, v)
		v2 := pcommon.NewValueEmpty()
		if err := parseAnyValueJSON(enc, v2); err != nil {
			t.Fatalf("our own JSON %s does not parse: %v", enc, err)
		}
		if enc2 := appendAnyValueJSON(nil, v2); string(enc2) != string(enc) {
			t.Fatalf("unstable: %s vs %s", enc, enc2)
		}
	})
}
