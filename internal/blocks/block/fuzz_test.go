package block

import (
	"testing"
)

// Decoders of outside input must return errors, never panic.

func FuzzParseMeta(f *testing.F) {
	f.Add([]byte(`{"format":"vParquet4","blockID":"b1db29cc-be7a-4217-88f9-2f72c202f0fa","tenantID":"t","startTime":"2026-11-20T10:00:04Z","endTime":"2026-11-20T10:19:23Z","totalObjects":19,"size":72690,"compactionLevel":0,"indexPageSize":0,"totalRecords":1,"bloomShards":1,"footerSize":21001,"dedicatedColumns":[{"n":"http.request.method"}],"replicationFactor":1}`))
	f.Add([]byte(`{"format":"vParquet9"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseMeta("meta.json", data)
		if err != nil {
			return
		}
		// What decodes re-encodes and decodes to the same meta.
		js, _ := m.MarshalJSON()
		m2, err := ParseMeta("meta.json", js)
		if err != nil {
			t.Fatalf("re-encoded meta does not decode: %v\n%s", err, js)
		}
		js2, _ := m2.MarshalJSON()
		if string(js) != string(js2) {
			t.Fatalf("unstable encoding:\n%s\n%s", js, js2)
		}
	})
}

func FuzzDecodeTenantIndex(f *testing.F) {
	ti := &TenantIndex{}
	pb, _ := ti.EncodePbZst()
	gz, _ := ti.EncodeJSONGz()
	f.Add(pb)
	f.Add(gz)
	f.Add(ti.MarshalProto())
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = DecodeTenantIndexPbZst(data)
		_, _ = DecodeTenantIndexJSONGz(data)
		_, _ = UnmarshalTenantIndexProto(data)
	})
}

func FuzzParseBloomShard(f *testing.F) {
	b := NewBloom(1)
	data, _ := b.Marshal(0)
	f.Add(data[:64])
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 64, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 64, 1, 2, 3, 4, 5, 6, 7, 8})
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseBloomShard("bloom-0", data)
		if err == nil {
			s.Test(TraceID{1})
		}
	})
}

func FuzzParseTraceID(f *testing.F) {
	f.Add("5b8efff798038103")
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseTraceID(s)
		if err != nil {
			return
		}
		back, err := ParseTraceID(id.Hex())
		if err != nil || back != id {
			t.Fatalf("%q -> %s -> %v", s, id, err)
		}
	})
}
