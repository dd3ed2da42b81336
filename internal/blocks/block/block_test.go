package block

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/klauspost/compress/zstd"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tracectl/tracectl/internal/storage"
	"github.com/tracectl/tracectl/internal/storage/storagetest"
	"github.com/tracectl/tracectl/internal/testfix"
)

func TestParseTraceID(t *testing.T) {
	for _, tc := range []struct {
		in, hex, text string
		bad           bool
	}{
		{in: "5b8efff798038103", hex: "00000000000000005b8efff798038103", text: "5b8efff798038103"},
		{in: "00000F1E2D3C4B5A6978877665544332", hex: "00000f1e2d3c4b5a6978877665544332", text: "f1e2d3c4b5a6978877665544332"},
		{in: "1", hex: "00000000000000000000000000000001", text: "1"},
		{in: "abc", hex: "00000000000000000000000000000abc", text: "abc"},
		{in: "", bad: true},
		{in: "xyz", bad: true},
		{in: strings.Repeat("1", 33), bad: true},
	} {
		id, err := ParseTraceID(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("ParseTraceID(%q) = %v, want error", tc.in, id)
			}
			continue
		}
		if err != nil {
			t.Fatalf("ParseTraceID(%q): %v", tc.in, err)
		}
		if id.Hex() != tc.hex || id.Text() != tc.text {
			t.Errorf("ParseTraceID(%q) = %s / %s, want %s / %s", tc.in, id.Hex(), id.Text(), tc.hex, tc.text)
		}
	}
	id, err := TraceIDFromBytes([]byte{0x5b, 0x8e})
	if err != nil || id.Hex() != "00000000000000000000000000005b8e" {
		t.Errorf("TraceIDFromBytes = %s, %v", id, err)
	}
	if _, err := TraceIDFromBytes(make([]byte, 17)); err == nil {
		t.Error("17 bytes accepted")
	}
}

func TestBlockKeys(t *testing.T) {
	id := uuid.MustParse("b1db29cc-be7a-4217-88f9-2f72c202f0fa")
	if got := BloomKey("single-tenant", id, 3); got != "single-tenant/b1db29cc-be7a-4217-88f9-2f72c202f0fa/bloom-3" {
		t.Error(got)
	}
	tn, bid, name, ok := ParseBlockKey(MetaKey("t1", id))
	if !ok || tn != "t1" || bid != id || name != MetaName {
		t.Error(tn, bid, name, ok)
	}
	if _, _, _, ok := ParseBlockKey("single-tenant/index.json.gz"); ok {
		t.Error("tenant index parsed as block key")
	}
	if _, _, _, ok := ParseBlockKey("t/B1DB29CC-BE7A-4217-88F9-2F72C202F0FA/meta.json"); ok {
		t.Error("uppercase block ID accepted")
	}
}

// fixtureBlocks returns every block directory of the vParquet fixture buckets.
func fixtureBlocks(t *testing.T, buckets ...string) []string {
	t.Helper()
	var dirs []string
	for _, b := range buckets {
		root := testfix.Path(t, "tempo", b, "single-tenant")
		ents, err := os.ReadDir(root)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			if e.IsDir() {
				dirs = append(dirs, filepath.Join(root, e.Name()))
			}
		}
	}
	if len(dirs) == 0 {
		t.Fatal("no fixture blocks")
	}
	return dirs
}

func readMetaFile(t *testing.T, dir string) ([]byte, string) {
	t.Helper()
	for _, n := range []string{MetaName, CompactedMetaName} {
		if data, err := os.ReadFile(filepath.Join(dir, n)); err == nil {
			return data, n
		}
	}
	t.Fatalf("no meta in %s", dir)
	return nil, ""
}

// TestMetaRoundTripFixtures decodes every fixture meta and re-encodes it
// byte for byte.
func TestMetaRoundTripFixtures(t *testing.T) {
	for _, dir := range fixtureBlocks(t, "vparquet3", "vparquet4", "vparquet4-compacted", "vparquet5") {
		data, name := readMetaFile(t, dir)
		m, err := ParseMeta(name, data)
		if err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		if m.BlockID.String() != filepath.Base(dir) {
			t.Errorf("%s: blockID %s", dir, m.BlockID)
		}
		got, _ := m.MarshalJSON()
		if !bytes.Equal(got, data) {
			t.Errorf("%s: re-encoded meta differs\n got %s\nwant %s", dir, got, data)
		}
	}
}

func TestMetaDecodeTolerant(t *testing.T) {
	in := `{"format":"vParquet4","blockID":"b1db29cc-be7a-4217-88f9-2f72c202f0fa","tenantID":"t","startTime":"2026-11-20T11:00:04+01:00","endTime":"2026-11-20T05:19:23.5-05:00","totalObjects":1,"compactionLevel":0,"indexPageSize":0,"totalRecords":1,"bloomShards":1,"footerSize":1,"dedicatedColumns":[{"s":"resource","n":"a"},{"n":"b","t":"int"}],"unknownKey":7}`
	m, err := ParseMeta("meta.json", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if !m.StartTime.Equal(time.Date(2026, 11, 20, 10, 0, 4, 0, time.UTC)) || m.StartTime.Location() != time.UTC {
		t.Errorf("start %v", m.StartTime)
	}
	if !m.EndTime.Equal(time.Date(2026, 11, 20, 10, 19, 23, 5e8, time.UTC)) {
		t.Errorf("end %v", m.EndTime)
	}
	want := []DedicatedColumn{{Scope: "resource", Name: "a", Type: "string"}, {Scope: "span", Name: "b", Type: "int"}}
	if !DedicatedColumnsEqual(m.DedicatedColumns, want) || m.DedicatedColumns[1].Scope != "span" {
		t.Errorf("dedicated %+v", m.DedicatedColumns)
	}
	if got := string(MarshalDedicatedColumns(m.DedicatedColumns)); got != `[{"s":"resource","n":"a"},{"n":"b","t":"int"}]` {
		t.Error(got)
	}
	// size 0 and no dedicated columns / replication factor are left out.
	m.DedicatedColumns = nil
	m.ReplicationFactor = 0
	js, _ := m.MarshalJSON()
	if bytes.Contains(js, []byte(`"size"`)) || bytes.Contains(js, []byte("dedicated")) || bytes.Contains(js, []byte("replication")) {
		t.Error(string(js))
	}
}

func TestMetaUnknownFormat(t *testing.T) {
	in := `{"format":"vParquet9","blockID":"b1db29cc-be7a-4217-88f9-2f72c202f0fa","tenantID":"t"}`
	_, err := ParseMeta("t/b1db29cc-be7a-4217-88f9-2f72c202f0fa/meta.json", []byte(in))
	if !errors.Is(err, ErrUnknownFormat) {
		t.Fatalf("err = %v, want ErrUnknownFormat", err)
	}
	for _, want := range []string{"vParquet9", "b1db29cc-be7a-4217-88f9-2f72c202f0fa", "meta.json"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	if _, err := ParseMeta("x", []byte(`{"format":"vParquet4","blockID":"nope"}`)); err == nil {
		t.Error("bad block ID accepted")
	}
	if _, err := ParseMeta("x", []byte(`{`)); err == nil {
		t.Error("truncated JSON accepted")
	}
}

// TestTenantIndexFixtures reads both tenant-index forms of every fixture
// bucket, checks them against the block metas, and re-encodes them exactly
// (JSON bytes; protobuf bytes before compression).
func TestTenantIndexFixtures(t *testing.T) {
	for _, b := range []string{"vparquet3", "vparquet4", "vparquet4-compacted", "vparquet5"} {
		root := testfix.Path(t, "tempo", b, "single-tenant")
		gz, err := os.ReadFile(filepath.Join(root, TenantIndexJSONName))
		if err != nil {
			t.Fatal(err)
		}
		pbz, err := os.ReadFile(filepath.Join(root, TenantIndexProtoName))
		if err != nil {
			t.Fatal(err)
		}
		tj, err := DecodeTenantIndexJSONGz(gz)
		if err != nil {
			t.Fatal(err)
		}
		tp, err := DecodeTenantIndexPbZst(pbz)
		if err != nil {
			t.Fatal(err)
		}
		// Every block of the bucket is listed, with its meta.
		metas := map[uuid.UUID][]byte{}
		for _, dir := range fixtureBlocks(t, b) {
			data, _ := readMetaFile(t, dir)
			metas[uuid.MustParse(filepath.Base(dir))] = data
		}
		for _, ti := range []*TenantIndex{tj, tp} {
			if len(ti.Meta)+len(ti.Compacted) != len(metas) {
				t.Errorf("%s: index lists %d+%d blocks, bucket has %d", b, len(ti.Meta), len(ti.Compacted), len(metas))
			}
			for _, m := range ti.Meta {
				js, _ := m.MarshalJSON()
				if !bytes.Equal(js, metas[m.BlockID]) {
					t.Errorf("%s: index meta %s\n got %s\nwant %s", b, m.BlockID, js, metas[m.BlockID])
				}
			}
			for _, c := range ti.Compacted {
				js, _ := c.Meta.MarshalJSON()
				if !bytes.Equal(js, metas[c.BlockID]) {
					t.Errorf("%s: compacted meta %s\n got %s\nwant %s", b, c.BlockID, js, metas[c.BlockID])
				}
				if c.CompactedTime.IsZero() {
					t.Errorf("%s: compactedTime missing", b)
				}
			}
		}
		if !tj.CreatedAt.Equal(tp.CreatedAt) {
			t.Errorf("%s: created_at json %v proto %v", b, tj.CreatedAt, tp.CreatedAt)
		}
		// Exact re-encoding.
		rawJSON := gunzip(t, gz)
		if got, _ := tj.MarshalJSON(); !bytes.Equal(got, rawJSON) {
			t.Errorf("%s: JSON re-encoding differs\n got %s\nwant %s", b, got, rawJSON)
		}
		dec, _ := zstd.NewReader(nil)
		rawPB, err := dec.DecodeAll(pbz, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := tp.MarshalProto(); !bytes.Equal(got, rawPB) {
			t.Errorf("%s: protobuf re-encoding differs\n got %x\nwant %x", b, got, rawPB)
		}
		// Our own compressed forms decode back to the same thing.
		gz2, _ := tp.EncodeJSONGz()
		if got := gunzip(t, gz2); !bytes.Equal(got, rawJSON) {
			t.Errorf("%s: own gzip differs", b)
		}
		if !bytes.Equal(gz2[3:4], gz[3:4]) || !bytes.Contains(gz2[:30], []byte("index.json\x00")) {
			t.Errorf("%s: gzip header %x, want embedded name index.json like %x", b, gz2[:24], gz[:24])
		}
		pb2, _ := tp.EncodePbZst()
		tp2, err := DecodeTenantIndexPbZst(pb2)
		if err != nil || !bytes.Equal(tp2.MarshalProto(), rawPB) {
			t.Errorf("%s: own zstd round trip: %v", b, err)
		}
	}
}

func TestTenantIndexEmpty(t *testing.T) {
	ti := &TenantIndex{CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)}
	js, _ := ti.MarshalJSON()
	if string(js) != `{"created_at":"2026-01-02T03:04:05.000000006Z","meta":[],"compacted":[]}` {
		t.Error(string(js))
	}
	if _, err := DecodeTenantIndexPbZst([]byte("garbage")); err == nil {
		t.Error("garbage accepted")
	}
}

func gunzip(t *testing.T, data []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	zr, err := newGzipReader(data)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := out.ReadFrom(zr); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func TestBloomParams(t *testing.T) {
	for _, tc := range []struct {
		n      int
		shards int
		k      uint
	}{{0, 1, 7}, {19, 1, 7}, {85000, 1, 7}, {86000, 2, 7}, {1e9, 1000, 7}} {
		s, k := BloomParams(tc.n)
		if s != tc.shards || k != tc.k {
			t.Errorf("BloomParams(%d) = %d, %d; want %d, %d", tc.n, s, k, tc.shards, tc.k)
		}
	}
}

// TestBloomFixtures checks every fixture shard: each trace ID of the block
// tests positive, random IDs mostly negative, and our own shards for the
// same IDs are byte-identical. The IDs come from the block's index object
// and the corpus (trace IDs of the corpus that Tempo put in the block are
// exactly those that test positive in the fixture).
func TestBloomFixtures(t *testing.T) {
	corpusIDs := corpusTraceIDs(t)
	rng := rand.New(rand.NewPCG(1, 2))
	for _, dir := range fixtureBlocks(t, "vparquet3", "vparquet4", "vparquet4-compacted", "vparquet5") {
		data, name := readMetaFile(t, dir)
		m, err := ParseMeta(name, data)
		if err != nil {
			t.Fatal(err)
		}
		shards := make([]*BloomShard, m.BloomShards)
		raw := make([][]byte, m.BloomShards)
		for i := range shards {
			raw[i], err = os.ReadFile(filepath.Join(dir, BloomName(i)))
			if err != nil {
				t.Fatal(err)
			}
			if shards[i], err = ParseBloomShard(BloomName(i), raw[i]); err != nil {
				t.Fatal(err)
			}
		}
		var in []TraceID
		for _, id := range corpusIDs {
			if shards[BloomShardOf(id, len(shards))].Test(id) {
				in = append(in, id)
			}
		}
		if int64(len(in)) != m.TotalObjects {
			t.Errorf("%s: %d corpus IDs test positive, block has %d traces", dir, len(in), m.TotalObjects)
		}
		fp := 0
		for range 2000 {
			var id TraceID
			for j := range id {
				id[j] = byte(rng.Uint32())
			}
			if shards[BloomShardOf(id, len(shards))].Test(id) {
				fp++
			}
		}
		if fp > 40 {
			t.Errorf("%s: %d of 2000 random IDs positive", dir, fp)
		}
		own := NewBloom(int(m.TotalObjects))
		for _, id := range in {
			own.Add(id)
		}
		if own.Shards() != len(shards) {
			t.Fatalf("%s: %d shards, fixture %d", dir, own.Shards(), len(shards))
		}
		for i := range shards {
			got, err := own.Marshal(i)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, raw[i]) {
				t.Errorf("%s: own bloom-%d differs from fixture", dir, i)
			}
		}
	}
}

func TestBloomCorrupt(t *testing.T) {
	b := NewBloom(10)
	data, _ := b.Marshal(0)
	if len(data) != BloomShardObjectSize {
		t.Fatalf("shard is %d bytes", len(data))
	}
	for _, bad := range [][]byte{nil, data[:100], data[:len(data)-8], append(append([]byte{}, data...), 0)} {
		_, err := ParseBloomShard("t/x/bloom-0", bad)
		if err == nil || !strings.Contains(err.Error(), "t/x/bloom-0") {
			t.Errorf("%d bytes: err = %v", len(bad), err)
		}
	}
}

func newGzipReader(data []byte) (*gzip.Reader, error) { return gzip.NewReader(bytes.NewReader(data)) }

// corpusTraceIDs returns the distinct trace IDs of the spans of the corpus.
func corpusTraceIDs(t *testing.T) []TraceID {
	t.Helper()
	data, err := os.ReadFile(testfix.Path(t, "corpus", "public.otlp.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[TraceID]bool{}
	var ids []TraceID
	var um ptrace.JSONUnmarshaler
	for line := range bytes.Lines(data) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		td, err := um.UnmarshalTraces(line)
		if err != nil {
			t.Fatal(err)
		}
		for _, rs := range td.ResourceSpans().All() {
			for _, ss := range rs.ScopeSpans().All() {
				for _, sp := range ss.Spans().All() {
					id := TraceID(sp.TraceID())
					if !seen[id] {
						seen[id] = true
						ids = append(ids, id)
					}
				}
			}
		}
	}
	if len(ids) != 40 {
		t.Fatalf("corpus has %d trace IDs, want 40", len(ids))
	}
	return ids
}

func TestMayContainFixture(t *testing.T) {
	dir := testfix.Path(t, "tempo", "vparquet4")
	b := storagetest.OpenDir(t, dir)
	m, err := ReadMeta(context.Background(), b, DefaultTenant, uuid.MustParse("b1db29cc-be7a-4217-88f9-2f72c202f0fa"))
	if err != nil {
		t.Fatal(err)
	}
	p05, _ := ParseTraceID("5b8efff798038103")                 // wave 1: in this block
	p10, _ := ParseTraceID("d13dc426159551a1730f07ce7e03d001") // wave 2: not
	for id, want := range map[TraceID]bool{p05: true, p10: false} {
		got, err := MayContain(context.Background(), b, m, id)
		if err != nil || got != want {
			t.Errorf("MayContain(%s) = %v, %v; want %v", id, got, err, want)
		}
	}
	gone := *m
	gone.BlockID = uuid.New()
	if _, err := MayContain(context.Background(), b, &gone, p05); !errors.Is(err, storage.ErrNotFound) || !strings.Contains(err.Error(), gone.BlockID.String()) {
		t.Errorf("missing shard: %v", err)
	}
}

// TestBuildTenantIndexFixture rebuilds the compacted bucket's tenant index
// from its blocks and compares it with Tempo's (compactedTime aside: git
// does not keep the file times it comes from).
func TestBuildTenantIndexFixture(t *testing.T) {
	ctx := context.Background()
	dir := testfix.Path(t, "tempo", "vparquet4-compacted")
	b := storagetest.OpenDir(t, dir)
	got, err := BuildTenantIndex(ctx, b, DefaultTenant, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	want, err := ReadTenantIndex(ctx, b, DefaultTenant)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Meta) != len(want.Meta) || len(got.Compacted) != len(want.Compacted) {
		t.Fatalf("built %d live + %d compacted, Tempo's index %d + %d", len(got.Meta), len(got.Compacted), len(want.Meta), len(want.Compacted))
	}
	for i := range want.Meta {
		g, _ := got.Meta[i].MarshalJSON()
		w, _ := want.Meta[i].MarshalJSON()
		if !bytes.Equal(g, w) {
			t.Errorf("live %d:\n got %s\nwant %s", i, g, w)
		}
	}
	for i := range want.Compacted {
		g, _ := got.Compacted[i].Meta.MarshalJSON()
		w, _ := want.Compacted[i].Meta.MarshalJSON()
		if !bytes.Equal(g, w) || got.Compacted[i].CompactedTime.IsZero() {
			t.Errorf("compacted %d:\n got %s\nwant %s", i, g, w)
		}
	}
}

func TestMarkCompactedAndNoCompact(t *testing.T) {
	ctx := context.Background()
	b := storagetest.OpenMem(t)
	m := &Meta{Format: FormatVParquet4, BlockID: uuid.New(), TenantID: "t1", TotalObjects: 1, ReplicationFactor: 1}
	if err := WriteNoCompact(ctx, b, m.TenantID, m.BlockID); err != nil {
		t.Fatal(err)
	}
	if err := WriteMeta(ctx, b, m); err != nil {
		t.Fatal(err)
	}
	// A directory without any meta (a block being written) is left out.
	if err := b.Write(ctx, DataKey("t1", uuid.New()), []byte("x")); err != nil {
		t.Fatal(err)
	}
	ti, err := BuildTenantIndex(ctx, b, "t1", time.Now())
	if err != nil || len(ti.Meta) != 1 || len(ti.Compacted) != 0 {
		t.Fatalf("before: %+v, %v", ti, err)
	}
	if ok, _ := b.Exists(ctx, NoCompactKey("t1", m.BlockID)); !ok {
		t.Error("nocompact.flg missing")
	}
	if err := MarkCompacted(ctx, b, m.TenantID, m.BlockID); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadMeta(ctx, b, m.TenantID, m.BlockID); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("meta.json still readable: %v", err)
	}
	ti, err = BuildTenantIndex(ctx, b, "t1", time.Now())
	if err != nil || len(ti.Meta) != 0 || len(ti.Compacted) != 1 || ti.Compacted[0].BlockID != m.BlockID {
		t.Fatalf("after: %+v, %v", ti, err)
	}
	// Written and read back through the bucket.
	if err := WriteTenantIndex(ctx, b, "t1", ti); err != nil {
		t.Fatal(err)
	}
	back, err := ReadTenantIndex(ctx, b, "t1")
	if err != nil || len(back.Compacted) != 1 || !back.Compacted[0].CompactedTime.Equal(ti.Compacted[0].CompactedTime) {
		t.Errorf("read back %+v, %v", back, err)
	}
	// Without the protobuf object, the JSON one is read.
	if err := b.Delete(ctx, TenantIndexProtoKey("t1")); err != nil {
		t.Fatal(err)
	}
	if back, err := ReadTenantIndex(ctx, b, "t1"); err != nil || len(back.Compacted) != 1 {
		t.Errorf("JSON fallback: %+v, %v", back, err)
	}
	if _, err := ReadTenantIndex(ctx, b, "nobody"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("missing index: %v", err)
	}
}
