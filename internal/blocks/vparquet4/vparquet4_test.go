package vparquet4

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/encoding/thrift"
	"github.com/parquet-go/parquet-go/format"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/otlptest"
	"github.com/tracectl/tracectl/internal/storage"
	"github.com/tracectl/tracectl/internal/storage/storagetest"
	"github.com/tracectl/tracectl/internal/testfix"
)

// fixtureBucket opens a fixture bucket root read-only.
func fixtureBucket(t testing.TB, name string) *storage.Bucket {
	t.Helper()
	dir := testfix.Path(t, "tempo", name)
	b := storagetest.OpenDir(t, dir)
	return b
}

type fixtureBlock struct {
	meta      *block.Meta
	dir       string
	compacted bool
}

// fixtureBlocks lists the blocks of a fixture bucket, live and compacted.
func fixtureBlocks(t testing.TB, bucket string) []fixtureBlock {
	t.Helper()
	root := testfix.Path(t, "tempo", bucket, block.DefaultTenant)
	ents, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	var out []fixtureBlock
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		dir := filepath.Join(root, e.Name())
		fb := fixtureBlock{dir: dir}
		data, err := os.ReadFile(filepath.Join(dir, block.MetaName))
		if err != nil {
			data, err = os.ReadFile(filepath.Join(dir, block.CompactedMetaName))
			fb.compacted = true
		}
		if err != nil {
			t.Fatal(err)
		}
		if fb.meta, err = block.ParseMeta(dir, data); err != nil {
			t.Fatal(err)
		}
		out = append(out, fb)
	}
	return out
}

// readAll iterates a block and returns its rows and their OTLP forms.
func readAll(t testing.TB, blk *Block) ([]*Trace, map[block.TraceID]ptrace.Traces) {
	t.Helper()
	var rows []*Trace
	out := map[block.TraceID]ptrace.Traces{}
	for tr, err := range blk.Iterate(context.Background()) {
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) > 0 && bytes.Compare(rows[len(rows)-1].TraceID, tr.TraceID) >= 0 {
			t.Errorf("block %s: rows not in ascending ID order", blk.Meta().BlockID)
		}
		rows = append(rows, tr)
		td, err := blk.OTLP(tr)
		if err != nil {
			t.Fatal(err)
		}
		out[tr.ID()] = td
	}
	return rows, out
}

// leafInfo is what the schema test compares per leaf column.
type leafInfo struct {
	Path               string
	Type               string
	Logical, Converted string
	Repetition         string
	MaxDef, MaxRep     int
	Encodings          string
	Codec              string
}

func fileLeaves(t testing.TB, data []byte) []leafInfo {
	t.Helper()
	f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	md := f.Metadata()
	// Converted / logical types from the flat schema, by path.
	conv := map[string][2]string{}
	var walk func(i int, prefix string) int
	walk = func(i int, prefix string) int {
		el := md.Schema[i]
		path := el.Name
		if prefix != "" {
			path = prefix + "." + el.Name
		}
		if i == 0 {
			path = ""
		}
		next := i + 1
		for range el.NumChildren.V {
			next = walk(next, path)
		}
		lt := ""
		lt = el.LogicalType.String()
		ct := ""
		if el.ConvertedType.Valid {
			ct = fmt.Sprint(int(el.ConvertedType.V))
		}
		conv[path] = [2]string{lt, ct}
		return next
	}
	walk(0, "")
	var out []leafInfo
	for i, col := range f.Schema().Columns() {
		leaf, _ := f.Schema().Lookup(col...)
		cm := md.RowGroups[0].Columns[i].MetaData
		path := strings.Join(col, ".")
		rep := "REQUIRED"
		switch {
		case leaf.Node.Optional():
			rep = "OPTIONAL"
		case leaf.Node.Repeated():
			rep = "REPEATED"
		}
		encs := make([]string, len(cm.Encoding))
		for j, e := range cm.Encoding {
			encs[j] = e.String()
		}
		slices.Sort(encs)
		out = append(out, leafInfo{
			Path: path, Type: cm.Type.String(), Logical: conv[path][0], Converted: conv[path][1],
			Repetition: rep, MaxDef: leaf.MaxDefinitionLevel, MaxRep: leaf.MaxRepetitionLevel,
			Encodings: strings.Join(encs, ","), Codec: cm.Codec.String(),
		})
	}
	return out
}

func fixtureData(t testing.TB, bucket string, id string) []byte {
	t.Helper()
	data, err := os.ReadFile(testfix.Path(t, "tempo", bucket, block.DefaultTenant, id, block.DataName))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestSchemaMatchesFixture compares the schema of a file we write with
// Tempo's, leaf by leaf: path, types, repetition, levels, encodings, codec.
func TestSchemaMatchesFixture(t *testing.T) {
	c := otlptest.LoadCorpus(t)
	b := storagetest.OpenMem(t)
	m, err := WriteBlock(context.Background(), b, WriterConfig{}, c.Lines...)
	if err != nil {
		t.Fatal(err)
	}
	ours, err := b.Read(context.Background(), block.DataKey(m.TenantID, m.BlockID))
	if err != nil {
		t.Fatal(err)
	}
	want := fileLeaves(t, fixtureData(t, "vparquet4", "b1db29cc-be7a-4217-88f9-2f72c202f0fa"))
	got := fileLeaves(t, ours)
	if len(want) != 103 {
		t.Fatalf("fixture has %d leaves", len(want))
	}
	if len(got) != len(want) {
		t.Fatalf("%d leaves, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("leaf %d:\n got %+v\nwant %+v", i, got[i], want[i])
		}
	}
	// The compacted fixture has the same schema.
	comp := fileLeaves(t, fixtureData(t, "vparquet4-compacted", "8638efc1-2742-4667-8de0-8bae4bda7236"))
	for i := range want {
		if comp[i].Path != want[i].Path || comp[i].Type != want[i].Type {
			t.Errorf("compacted leaf %d differs: %+v", i, comp[i])
		}
	}
}

// waves are the corpus lines (0-based, end exclusive) of each level-0
// fixture block.
var waves = []struct {
	from, to int
	blockID  string
}{
	{0, 13, "b1db29cc-be7a-4217-88f9-2f72c202f0fa"},
	{13, 31, "13a60468-ebb1-45a8-b97a-c8af8c7c3888"},
	{31, 35, "8fde4fab-4bd6-4780-9c86-47fba0b9512e"},
}

func corpusByID(c *otlptest.Corpus) map[block.TraceID]ptrace.Traces {
	out := map[block.TraceID]ptrace.Traces{}
	for hex, td := range c.ByID {
		id, _ := block.ParseTraceID(hex)
		out[id] = td
	}
	return out
}

// mergeBlocks reads blocks and combines the pieces of each trace.
func mergeBlocks(t *testing.T, bucket *storage.Bucket, metas []*block.Meta) map[block.TraceID]ptrace.Traces {
	t.Helper()
	out := map[block.TraceID]ptrace.Traces{}
	for _, m := range metas {
		_, traces := readAll(t, OpenBlock(context.Background(), bucket, m))
		for id, td := range traces {
			if prev, ok := out[id]; ok {
				out[id] = otlptest.Merge(prev, td)
			} else {
				out[id] = td
			}
		}
	}
	return out
}

func compareWithCorpus(t *testing.T, what string, want, got map[block.TraceID]ptrace.Traces) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d traces, want %d", what, len(got), len(want))
	}
	for id, w := range want {
		g, ok := got[id]
		if !ok {
			t.Errorf("%s: trace %s (%s) missing", what, id, otlptest.Label(id.Hex()))
			continue
		}
		if diffs := otlptest.Diff(w, g); len(diffs) > 0 {
			t.Errorf("%s: trace %s (%s) differs:\n  %s", what, id, otlptest.Label(id.Hex()), strings.Join(diffs, "\n  "))
		}
	}
}

// TestReadFixtures reads every trace of every fixture block and compares it
// with the corpus. Traces split across blocks (P03 in the level-0 buckets)
// are compared after combining the pieces.
func TestReadFixtures(t *testing.T) {
	want := corpusByID(otlptest.LoadCorpus(t))
	v4 := fixtureBucket(t, "vparquet4")
	var metas []*block.Meta
	for _, fb := range fixtureBlocks(t, "vparquet4") {
		metas = append(metas, fb.meta)
	}
	compareWithCorpus(t, "vparquet4 level 0", want, mergeBlocks(t, v4, metas))

	comp := fixtureBucket(t, "vparquet4-compacted")
	byLevel := map[uint32][]*block.Meta{}
	for _, fb := range fixtureBlocks(t, "vparquet4-compacted") {
		byLevel[fb.meta.CompactionLevel] = append(byLevel[fb.meta.CompactionLevel], fb.meta)
	}
	if len(byLevel[2]) != 1 || len(byLevel[1]) != 1 || len(byLevel[0]) != 3 {
		t.Fatalf("compacted bucket levels: %v", byLevel)
	}
	if byLevel[2][0].TotalRecords != 10 {
		t.Fatalf("level-2 block has %d row groups", byLevel[2][0].TotalRecords)
	}
	compareWithCorpus(t, "compacted level 2", want, mergeBlocks(t, comp, byLevel[2]))
	// Level 1 (waves 1+2) plus the wave-3 level-0 block.
	var wave3 *block.Meta
	for _, m := range byLevel[0] {
		if m.BlockID.String() == "7cb5ccf8-8191-4950-918a-fa09279e1815" {
			wave3 = m
		}
	}
	compareWithCorpus(t, "compacted level 1 + wave 3", want, mergeBlocks(t, comp, append(byLevel[1], wave3)))
	compareWithCorpus(t, "compacted level 0", want, mergeBlocks(t, comp, byLevel[0]))
}

// TestFindTraceByIDFixtures looks up every trace of every fixture block by
// ID: the result equals the iterated row, costs at most two object reads
// (footer and row group), and absent IDs are not found.
func TestFindTraceByIDFixtures(t *testing.T) {
	for _, bucket := range []string{"vparquet4", "vparquet4-compacted"} {
		bkt := fixtureBucket(t, bucket)
		for _, fb := range fixtureBlocks(t, bucket) {
			blk := OpenBlock(context.Background(), bkt, fb.meta)
			var readers []*storage.ReaderAt
			blk.onReaderAt = func(r *storage.ReaderAt) { readers = append(readers, r) }
			_, all := readAll(t, blk)
			if int64(len(all)) != fb.meta.TotalObjects {
				t.Errorf("%s: %d rows, meta says %d", fb.meta.BlockID, len(all), fb.meta.TotalObjects)
			}
			for id, want := range all {
				readers = nil
				got, found, err := blk.FindTraceByID(context.Background(), id)
				if err != nil || !found {
					t.Fatalf("%s: FindTraceByID(%s) = %v, %v", fb.meta.BlockID, id, found, err)
				}
				if diffs := otlptest.Diff(want, got); len(diffs) > 0 {
					t.Errorf("%s: trace %s by ID differs from iteration: %v", fb.meta.BlockID, id, diffs)
				}
				if len(readers) != 1 || readers[0].Reads > 2 {
					t.Errorf("%s: FindTraceByID(%s) used %d readers, %d reads; want 1 reader, ≤ 2 reads",
						fb.meta.BlockID, id, len(readers), readers[0].Reads)
				}
				// An ID just above this one is not in the block (IDs are random).
				miss := id
				miss[15] ^= 0x5a
				if _, ok := all[miss]; !ok {
					if _, found, err := blk.FindTraceByID(context.Background(), miss); err != nil || found {
						t.Errorf("%s: absent %s: found=%v err=%v", fb.meta.BlockID, miss, found, err)
					}
				}
			}
		}
	}
}

// TestRoundTrip writes the corpus with our writer and reads it back.
func TestRoundTrip(t *testing.T) {
	c := otlptest.LoadCorpus(t)
	want := corpusByID(c)
	for _, rg := range []int{0, 4096} { // one row group; many small ones
		b := storagetest.OpenMem(t)
		m, err := WriteBlock(context.Background(), b, WriterConfig{RowGroupBytes: rg}, c.Lines...)
		if err != nil {
			t.Fatal(err)
		}
		if rg > 0 && m.TotalRecords < 5 {
			t.Errorf("RowGroupBytes %d: only %d row groups", rg, m.TotalRecords)
		}
		compareWithCorpus(t, fmt.Sprintf("round trip (row groups %d)", m.TotalRecords), want, mergeBlocks(t, b, []*block.Meta{m}))
		blk := OpenBlock(context.Background(), b, m)
		for id, w := range want {
			got, found, err := blk.FindTraceByID(context.Background(), id)
			if err != nil || !found {
				t.Fatalf("FindTraceByID(%s): %v %v", id, found, err)
			}
			if diffs := otlptest.Diff(w, got); len(diffs) > 0 {
				t.Errorf("by ID %s: %v", id, diffs)
			}
		}
	}
}

// TestStreamingWriterPieces feeds every trace in pieces (one per corpus
// line) to a BlockWriter in ID order, then checks order errors.
func TestStreamingWriterPieces(t *testing.T) {
	c := otlptest.LoadCorpus(t)
	type piece struct {
		id block.TraceID
		td ptrace.Traces
	}
	var pieces []piece
	for _, line := range c.Lines {
		for hex, td := range otlptest.SplitByTrace(line) {
			id, _ := block.ParseTraceID(hex)
			pieces = append(pieces, piece{id, td})
		}
	}
	slices.SortStableFunc(pieces, func(a, b piece) int { return a.id.Compare(b.id) })
	b := storagetest.OpenMem(t)
	w, err := NewBlockWriter(context.Background(), b, WriterConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pieces {
		if err := w.Add(p.id, p.td); err != nil {
			t.Fatal(err)
		}
	}
	m, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	if m.TotalObjects != 40 {
		t.Errorf("%d traces", m.TotalObjects)
	}
	compareWithCorpus(t, "streamed pieces", corpusByID(c), mergeBlocks(t, b, []*block.Meta{m}))

	w2, _ := NewBlockWriter(context.Background(), b, WriterConfig{})
	if err := w2.Add(pieces[len(pieces)-1].id, pieces[len(pieces)-1].td); err != nil {
		t.Fatal(err)
	}
	if err := w2.Add(pieces[0].id, pieces[0].td); err == nil || !strings.Contains(err.Error(), "ascending") {
		t.Errorf("out-of-order Add: %v", err)
	}
	w2.Abort()
	if err := w2.Add(pieces[1].id, pieces[0].td); err == nil {
		t.Error("spans of another trace accepted")
	}
}

// TestWriterMatchesFixture writes each wave of the corpus as Tempo did and
// compares with Tempo's block: meta (except blockID, size, footerSize), bloom
// bytes, and per row the trace-level columns and nested-set numbering.
func TestWriterMatchesFixture(t *testing.T) {
	c := otlptest.LoadCorpus(t)
	fx := fixtureBucket(t, "vparquet4")
	ctx := context.Background()
	for _, wv := range waves {
		b := storagetest.OpenMem(t)
		m, err := WriteBlock(ctx, b, WriterConfig{}, c.Lines[wv.from:wv.to]...)
		if err != nil {
			t.Fatal(err)
		}
		fm, err := block.ReadMeta(ctx, fx, block.DefaultTenant, uuid.MustParse(wv.blockID))
		if err != nil {
			t.Fatal(err)
		}
		cm := *m
		cm.BlockID, cm.Size, cm.FooterSize = fm.BlockID, fm.Size, fm.FooterSize
		gotJS, _ := cm.MarshalJSON()
		wantJS, _ := fm.MarshalJSON()
		if !bytes.Equal(gotJS, wantJS) {
			t.Errorf("wave %s meta:\n got %s\nwant %s", wv.blockID, gotJS, wantJS)
		}
		t.Logf("wave %s: data.parquet %d bytes, Tempo %d (%.3f×)", wv.blockID, m.Size, fm.Size, float64(m.Size)/float64(fm.Size))
		if m.Size > fm.Size {
			t.Errorf("wave %s: data.parquet %d bytes > Tempo's %d", wv.blockID, m.Size, fm.Size)
		}
		for i := range int(m.BloomShards) {
			got, _ := b.Read(ctx, block.BloomKey(m.TenantID, m.BlockID, i))
			want, _ := fx.Read(ctx, block.BloomKey(fm.TenantID, fm.BlockID, i))
			if !bytes.Equal(got, want) {
				t.Errorf("wave %s: bloom-%d differs", wv.blockID, i)
			}
		}
		gotIdx, _ := b.Read(ctx, block.IndexKey(m.TenantID, m.BlockID))
		wantIdx, _ := fx.Read(ctx, block.IndexKey(fm.TenantID, fm.BlockID))
		if !bytes.Equal(gotIdx, wantIdx) {
			t.Errorf("wave %s: index %s, want %s", wv.blockID, gotIdx, wantIdx)
		}
		gotRows, _ := readAll(t, OpenBlock(ctx, b, m))
		wantRows, _ := readAll(t, OpenBlock(ctx, fx, fm))
		if len(gotRows) != len(wantRows) {
			t.Fatalf("wave %s: %d rows, want %d", wv.blockID, len(gotRows), len(wantRows))
		}
		for i := range wantRows {
			compareTraceColumns(t, wantRows[i], gotRows[i])
			if !reflect.DeepEqual(wantRows[i], gotRows[i]) {
				t.Errorf("wave %s: row %d (%s) differs from Tempo's", wv.blockID, i, otlptest.Label(wantRows[i].ID().Hex()))
			}
		}
		// Same rows, same parquet settings: the pages and page indexes are
		// byte-identical to Tempo's, and the footers differ only in created_by.
		gotData, _ := b.Read(ctx, block.DataKey(m.TenantID, m.BlockID))
		wantData, _ := fx.Read(ctx, block.DataKey(fm.TenantID, fm.BlockID))
		gotBody := gotData[:len(gotData)-8-int(m.FooterSize)]
		wantBody := wantData[:len(wantData)-8-int(fm.FooterSize)]
		if !bytes.Equal(gotBody, wantBody) {
			t.Errorf("wave %s: data pages differ from Tempo's (%d vs %d bytes before the footer)", wv.blockID, len(gotBody), len(wantBody))
		}
		gf := footerOf(t, gotData)
		wf := footerOf(t, wantData)
		if !strings.HasPrefix(wf.CreatedBy, "github.com/parquet-go/parquet-go") {
			t.Errorf("fixture created_by %q", wf.CreatedBy)
		}
		gf.CreatedBy, wf.CreatedBy = "", ""
		if !reflect.DeepEqual(gf, wf) {
			t.Errorf("wave %s: footer differs from Tempo's beyond created_by", wv.blockID)
		}
	}
}

func footerOf(t *testing.T, data []byte) *format.FileMetaData {
	t.Helper()
	f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	return f.Metadata()
}

// compareTraceColumns checks the trace-level columns and the per-span
// nested-set columns of two rows of the same trace.
func compareTraceColumns(t *testing.T, want, got *Trace) {
	t.Helper()
	label := otlptest.Label(want.ID().Hex())
	type tl struct {
		ID, Text              string
		Start, End, Dur       uint64
		RootService, RootSpan string
		Stats                 map[string]ServiceStats
	}
	w := tl{fmt.Sprintf("%x", want.TraceID), want.TraceIDText, want.StartTimeUnixNano, want.EndTimeUnixNano, want.DurationNano, want.RootServiceName, want.RootSpanName, want.ServiceStats}
	g := tl{fmt.Sprintf("%x", got.TraceID), got.TraceIDText, got.StartTimeUnixNano, got.EndTimeUnixNano, got.DurationNano, got.RootServiceName, got.RootSpanName, got.ServiceStats}
	if fmt.Sprint(w) != fmt.Sprint(g) {
		t.Errorf("%s trace columns:\n got %+v\nwant %+v", label, g, w)
	}
	ns := func(tr *Trace) []string {
		var out []string
		for _, rs := range tr.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				for _, sp := range ss.Spans {
					out = append(out, fmt.Sprintf("%x:%d/%d/%d", sp.SpanID, sp.NestedSetLeft, sp.NestedSetRight, sp.ParentID))
				}
			}
		}
		slices.Sort(out) // stored order may differ where resources merge differently
		return out
	}
	if gw, gg := ns(want), ns(got); !slices.Equal(gw, gg) {
		t.Errorf("%s nested set:\n got %v\nwant %v", label, gg, gw)
	}
}

// TestNestedSetP00 checks §3.8's worked example on Tempo's own row and ours.
func TestNestedSetP00(t *testing.T) {
	c := otlptest.LoadCorpus(t)
	b := storagetest.OpenMem(t)
	m, err := WriteBlock(context.Background(), b, WriterConfig{}, c.Lines[0])
	if err != nil {
		t.Fatal(err)
	}
	rows, _ := readAll(t, OpenBlock(context.Background(), b, m))
	var p00 *Trace
	for _, r := range rows {
		if otlptest.Label(r.ID().Hex()) == "P00" {
			p00 = r
		}
	}
	if p00 == nil {
		t.Fatal("P00 not written")
	}
	var l, r, p []int32
	for _, rs := range p00.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			for _, sp := range ss.Spans {
				l, r, p = append(l, sp.NestedSetLeft), append(r, sp.NestedSetRight), append(p, sp.ParentID)
			}
		}
	}
	if fmt.Sprint(l, r, p) != "[1 2 14 3 4 8 10 5] [16 13 15 12 7 9 11 6] [-1 1 1 2 3 3 3 4]" {
		t.Errorf("P00 nested set = %v %v %v", l, r, p)
	}
}

// TestCorruptInput: truncated data, wrong format, wrong footer size all give
// errors naming the block and object, never a panic.
func TestCorruptInput(t *testing.T) {
	ctx := context.Background()
	c := otlptest.LoadCorpus(t)
	b := storagetest.OpenMem(t)
	m, err := WriteBlock(ctx, b, WriterConfig{NoCompact: true}, c.Lines...)
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := b.Exists(ctx, block.NoCompactKey(m.TenantID, m.BlockID)); !ok {
		t.Error("NoCompact: nocompact.flg not written")
	}
	data, _ := b.Read(ctx, block.DataKey(m.TenantID, m.BlockID))
	someID, _ := block.ParseTraceID(c.IDs[3])
	check := func(what string, meta *block.Meta) {
		t.Helper()
		blk := OpenBlock(ctx, b, meta)
		_, _, err := blk.FindTraceByID(ctx, someID)
		if err == nil || !strings.Contains(err.Error(), meta.BlockID.String()) ||
			!(strings.Contains(err.Error(), block.DataName) || strings.Contains(err.Error(), block.MetaName)) {
			t.Errorf("%s: FindTraceByID err = %v, want one naming the block and the object", what, err)
		} else {
			t.Logf("%s: %v", what, err)
		}
		var iterErr error
		for _, err := range blk.Iterate(ctx) {
			if err != nil {
				iterErr = err
			}
		}
		if iterErr == nil || !strings.Contains(iterErr.Error(), meta.BlockID.String()) {
			t.Errorf("%s: Iterate err = %v", what, iterErr)
		}
	}
	// Truncated data.parquet (meta still claims the full size).
	for _, cut := range []int{len(data) / 2, len(data) - 3, 10} {
		tm := *m
		tm.BlockID = uuid.New()
		if err := b.Write(ctx, block.DataKey(tm.TenantID, tm.BlockID), data[:cut]); err != nil {
			t.Fatal(err)
		}
		check(fmt.Sprintf("truncated to %d", cut), &tm)
		// And with meta sizes matching the truncated object.
		tm2 := tm
		tm2.Size = uint64(cut)
		check(fmt.Sprintf("truncated to %d, size adjusted", cut), &tm2)
		tm3 := tm2
		tm3.FooterSize = 0
		check(fmt.Sprintf("truncated to %d, no footer size", cut), &tm3)
	}
	// Garbage in the middle of the data (footer intact).
	bad := append([]byte{}, data...)
	for i := 4; i < len(bad)/2; i++ {
		bad[i] ^= 0xff
	}
	gm := *m
	gm.BlockID = uuid.New()
	b.Write(ctx, block.DataKey(gm.TenantID, gm.BlockID), bad)
	check("garbled pages", &gm)
	// Wrong footer size in meta.
	fm := *m
	fm.FooterSize += 7
	check("wrong footerSize", &fm)
	// Unknown format.
	um := *m
	um.Format = "vParquet9"
	check("unknown format", &um)
	// A bloom shard of the wrong size.
	shard, _ := b.Read(ctx, block.BloomKey(m.TenantID, m.BlockID, 0))
	if _, err := block.ParseBloomShard(block.BloomKey(m.TenantID, m.BlockID, 0), shard[:len(shard)-1]); err == nil ||
		!strings.Contains(err.Error(), m.BlockID.String()) || !strings.Contains(err.Error(), "bloom-0") {
		t.Errorf("short bloom shard: %v", err)
	}
	// Missing data object.
	mm := *m
	mm.BlockID = uuid.New()
	check("missing data.parquet", &mm)
}

// TestCombinePartsLikeTempo merges the three level-0 fixture blocks the way
// a compactor would (parts in block order, DropDuplicateSpans) and compares
// the trace-level columns with Tempo's own compacted block of the same
// traces: P03's two parts become one row, P18's repeated span is kept
// (it repeats inside one part), root names come from the part with the root.
func TestCombinePartsLikeTempo(t *testing.T) {
	ctx := context.Background()
	fx := fixtureBucket(t, "vparquet4")
	parts := map[block.TraceID][]ptrace.Traces{}
	var ids []block.TraceID
	var inputs []*block.Meta
	for _, fb := range fixtureBlocks(t, "vparquet4") {
		inputs = append(inputs, fb.meta)
	}
	// Wave order: the order Tempo received the parts.
	slices.SortFunc(inputs, func(a, b *block.Meta) int { return a.StartTime.Compare(b.StartTime) })
	for _, m := range inputs {
		blk := OpenBlock(ctx, fx, m)
		for tr, err := range blk.Iterate(ctx) {
			if err != nil {
				t.Fatal(err)
			}
			td, err := blk.OTLPAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := parts[tr.ID()]; !ok {
				ids = append(ids, tr.ID())
			}
			parts[tr.ID()] = append(parts[tr.ID()], td)
		}
	}
	slices.SortFunc(ids, block.TraceID.Compare)
	b := storagetest.OpenMem(t)
	w, err := NewBlockWriter(ctx, b, WriterConfig{DropDuplicateSpans: true, CompactionLevel: 1, RowGroupBytes: 8 << 10})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range inputs {
		w.ExtendTimeRange(m.StartTime, m.EndTime)
	}
	for _, id := range ids {
		for _, p := range parts[id] {
			if err := w.Add(id, p); err != nil {
				t.Fatal(err)
			}
		}
	}
	m, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	comp := fixtureBucket(t, "vparquet4-compacted")
	var want *block.Meta
	for _, fb := range fixtureBlocks(t, "vparquet4-compacted") {
		if fb.meta.CompactionLevel == 2 {
			want = fb.meta
		}
	}
	if !m.StartTime.Equal(want.StartTime) || !m.EndTime.Equal(want.EndTime) || m.TotalObjects != want.TotalObjects {
		t.Errorf("meta %s…%s %d traces, want %s…%s %d", m.StartTime, m.EndTime, m.TotalObjects, want.StartTime, want.EndTime, want.TotalObjects)
	}
	gotRows, _ := readAll(t, OpenBlock(ctx, b, m))
	wantRows, _ := readAll(t, OpenBlock(ctx, comp, want))
	if len(gotRows) != len(wantRows) {
		t.Fatalf("%d rows, want %d", len(gotRows), len(wantRows))
	}
	for i := range wantRows {
		compareTraceColumns(t, wantRows[i], gotRows[i])
		if got, want := gotRows[i].SpanCount(), wantRows[i].SpanCount(); got != want {
			t.Errorf("%s: %d spans stored, Tempo %d", otlptest.Label(wantRows[i].ID().Hex()), got, want)
		}
	}
}

// TestDropDuplicateSpans: with DropDuplicateSpans a part repeating spans of
// an earlier part adds nothing; repeats inside one part, and every repeat
// without the option, are stored (Tempo's behaviour, P18).
func TestDropDuplicateSpans(t *testing.T) {
	c := otlptest.LoadCorpus(t)
	hex := otlptest.IDOf("P18")
	id, _ := block.ParseTraceID(hex)
	p18 := c.ByID[hex] // 4 spans sent, one of them twice
	for _, tc := range []struct {
		drop bool
		want int
	}{{false, 8}, {true, 4}} {
		b := storagetest.OpenMem(t)
		w, _ := NewBlockWriter(context.Background(), b, WriterConfig{DropDuplicateSpans: tc.drop})
		w.Add(id, p18)
		w.Add(id, p18)
		m, err := w.Close()
		if err != nil {
			t.Fatal(err)
		}
		rows, _ := readAll(t, OpenBlock(context.Background(), b, m))
		if got := rows[0].SpanCount(); got != tc.want {
			t.Errorf("DropDuplicateSpans=%v: %d spans stored, want %d", tc.drop, got, tc.want)
		}
		if got := rows[0].ServiceStats["inventory"].SpanCount; int(got) != tc.want {
			t.Errorf("DropDuplicateSpans=%v: service stats %d", tc.drop, got)
		}
		td, _, _ := OpenBlock(context.Background(), b, m).FindTraceByID(context.Background(), id)
		if td.SpanCount() != 3 {
			t.Errorf("read back %d spans, want the 3 distinct ones", td.SpanCount())
		}
	}
}

// TestFindTraceByIDConcurrent: a Block serves concurrent lookups (files are
// reused across calls); after the first, a lookup reads only its row group.
func TestFindTraceByIDConcurrent(t *testing.T) {
	c := otlptest.LoadCorpus(t)
	b := storagetest.OpenMem(t)
	ctx := context.Background()
	m, err := WriteBlock(ctx, b, WriterConfig{RowGroupBytes: 16 << 10}, c.Lines...)
	if err != nil {
		t.Fatal(err)
	}
	blk := OpenBlock(ctx, b, m)
	want := corpusByID(c)
	errs := make(chan error, 4)
	for g := range 4 {
		go func() {
			for i, hex := range c.IDs {
				if i%4 != g && g != 0 {
					continue
				}
				id, _ := block.ParseTraceID(hex)
				td, found, err := blk.FindTraceByID(ctx, id)
				if err != nil || !found {
					errs <- fmt.Errorf("%s: %v %v", hex, found, err)
					return
				}
				if d := otlptest.Diff(want[id], td); len(d) > 0 {
					errs <- fmt.Errorf("%s: %v", hex, d)
					return
				}
			}
			errs <- nil
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	var readers []*storage.ReaderAt
	blk.onReaderAt = func(r *storage.ReaderAt) { readers = append(readers, r) }
	id, _ := block.ParseTraceID(c.IDs[0])
	if _, found, err := blk.FindTraceByID(ctx, id); !found || err != nil {
		t.Fatal(found, err)
	}
	if len(readers) != 1 || readers[0].Reads != 1 {
		t.Errorf("warm lookup: %d readers, %d reads; want 1 read (row group only)", len(readers), readers[0].Reads)
	}
}

// TestCustomDedicatedColumns writes the corpus with a list that has resource
// and span entries, a name with a fixed column (dropped from the list) and
// an attribute whose values are not all strings (those stay generic), then
// reads it back exactly.
func TestCustomDedicatedColumns(t *testing.T) {
	c := otlptest.LoadCorpus(t)
	ctx := context.Background()
	b := storagetest.OpenMem(t)
	cols := []block.DedicatedColumn{
		{Scope: "resource", Name: "host.name"},
		{Scope: "resource", Name: "service.name"}, // fixed column: dropped
		{Name: "db.system"},
		{Name: "http.method"},                  // fixed column: dropped
		{Name: "http.status_code"},             // fixed column: dropped
		{Name: "user.id"},                      // ints in the corpus stay generic
		{Name: "x", Type: "int"},               // not a string column: dropped
		{Name: "y", Options: []string{"blob"}}, // v5 only: dropped
	}
	m, err := WriteBlock(ctx, b, WriterConfig{DedicatedColumns: cols}, c.Lines...)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(block.MarshalDedicatedColumns(m.DedicatedColumns)); got != `[{"s":"resource","n":"host.name"},{"n":"db.system"},{"n":"user.id"}]` {
		t.Errorf("meta list %s", got)
	}
	rows, traces := readAll(t, OpenBlock(ctx, b, m))
	compareWithCorpus(t, "custom dedicated", corpusByID(c), traces)
	hosts, db := 0, 0
	for _, r := range rows {
		for _, rs := range r.ResourceSpans {
			if rs.Resource.DedicatedAttributes.String01 != nil {
				hosts++
			}
			for _, a := range rs.Resource.Attrs {
				if a.Key == "host.name" && len(a.Value) > 0 {
					t.Errorf("string host.name left generic")
				}
			}
			for _, ss := range rs.ScopeSpans {
				for _, sp := range ss.Spans {
					if sp.DedicatedAttributes.String01 != nil {
						db++
					}
				}
			}
		}
	}
	if hosts == 0 || db == 0 {
		t.Errorf("dedicated columns unused: %d resources with host.name, %d spans with db.system", hosts, db)
	}
	// The same block read with no list would lose them: the list matters.
	nm := *m
	nm.DedicatedColumns = nil
	_, plain := readAll(t, OpenBlock(ctx, b, &nm))
	diffs := 0
	for id, td := range corpusByID(c) {
		diffs += len(otlptest.Diff(td, plain[id]))
	}
	if diffs == 0 {
		t.Error("reading without the block's list changed nothing; dedicated columns not exercised")
	}
}

// TestRootAcrossParts: at ingest the last root candidate received wins
// (P13); when combining parts the first part with a root gives the names.
func TestRootAcrossParts(t *testing.T) {
	c := otlptest.LoadCorpus(t)
	hex := otlptest.IDOf("P13") // two parentless spans in different services
	id, _ := block.ParseTraceID(hex)
	td := c.ByID[hex]
	var roots []ptrace.Traces // one part per parentless span, in received order
	for _, rs := range td.ResourceSpans().All() {
		for _, ss := range rs.ScopeSpans().All() {
			for _, sp := range ss.Spans().All() {
				if sp.ParentSpanID().IsEmpty() {
					part := ptrace.NewTraces()
					prs := part.ResourceSpans().AppendEmpty()
					rs.Resource().CopyTo(prs.Resource())
					pss := prs.ScopeSpans().AppendEmpty()
					sp.CopyTo(pss.Spans().AppendEmpty())
					roots = append(roots, part)
				}
			}
		}
	}
	if len(roots) != 2 {
		t.Fatalf("P13 has %d parentless spans", len(roots))
	}
	name := func(p ptrace.Traces) string { return p.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).Name() }
	for _, tc := range []struct {
		drop bool
		want string
	}{{false, name(roots[1])}, {true, name(roots[0])}} {
		b := storagetest.OpenMem(t)
		w, _ := NewBlockWriter(context.Background(), b, WriterConfig{DropDuplicateSpans: tc.drop})
		w.Add(id, roots[0])
		w.Add(id, roots[1])
		m, err := w.Close()
		if err != nil {
			t.Fatal(err)
		}
		rows, _ := readAll(t, OpenBlock(context.Background(), b, m))
		if rows[0].RootSpanName != tc.want {
			t.Errorf("DropDuplicateSpans=%v: root %q, want %q", tc.drop, rows[0].RootSpanName, tc.want)
		}
	}
}

// TestLocateWithoutStatistics: a file without TraceID statistics is
// searched group by group.
func TestLocateWithoutStatistics(t *testing.T) {
	c := otlptest.LoadCorpus(t)
	ctx := context.Background()
	b := storagetest.OpenMem(t)
	m, err := WriteBlock(ctx, b, WriterConfig{RowGroupBytes: 8 << 10}, c.Lines...)
	if err != nil {
		t.Fatal(err)
	}
	blk := OpenBlock(ctx, b, m)
	of, err := blk.acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range of.f.Metadata().RowGroups {
		of.f.Metadata().RowGroups[i].Columns[0].MetaData.Statistics = format.Statistics{}
	}
	for n, hex := range c.IDs {
		id, _ := block.ParseTraceID(hex)
		rg, row, err := blk.locate(of.f, of.c, id)
		if err != nil || row < 0 {
			t.Fatalf("%s: rg %d row %d err %v", hex, rg, row, err)
		}
		if n > 0 && rg == 0 && row == 0 {
			t.Errorf("%s found at the first row", hex)
		}
	}
	if _, row, err := blk.locate(of.f, of.c, block.TraceID{}); err != nil || row >= 0 {
		t.Errorf("zero ID: row %d err %v", row, err)
	}
}

// TestMutatedDataBoundedAllocation damages random bytes of the pages of a
// block (footer intact) and reads it: every read ends in a result or an
// error, and none allocates more than a bounded amount, whatever sizes the
// damaged headers claim.
func TestMutatedDataBoundedAllocation(t *testing.T) {
	c := otlptest.LoadCorpus(t)
	ctx := context.Background()
	b := storagetest.OpenMem(t)
	m, err := WriteBlock(ctx, b, WriterConfig{}, c.Lines...)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := b.Read(ctx, block.DataKey(m.TenantID, m.BlockID))
	body := len(data) - 8 - int(m.FooterSize)
	id, _ := block.ParseTraceID(c.IDs[7])
	rng := rand.New(rand.NewPCG(3, 4))
	var ms runtime.MemStats
	worst, failures := uint64(0), 0
	// Mutations are drawn from a seeded stream; reads run for the first 300
	// and for number 1196, which (found by running 3,000) makes parquet-go
	// allocate 128 MB from a damaged 120 KB file unless pages are checked.
	reads := 0
	for iter := range 1197 {
		bad := append([]byte{}, data...)
		for range 1 + rng.IntN(4) {
			bad[4+rng.IntN(body-4)] = byte(rng.Uint32())
		}
		if iter >= 300 && iter != 1196 {
			continue
		}
		reads++
		mm := *m
		mm.BlockID = uuid.New()
		if err := b.Write(ctx, block.DataKey(mm.TenantID, mm.BlockID), bad); err != nil {
			t.Fatal(err)
		}
		blk := OpenBlock(ctx, b, &mm)
		runtime.ReadMemStats(&ms)
		before := ms.TotalAlloc
		if _, _, err := blk.FindTraceByID(ctx, id); err != nil {
			failures++
		}
		for _, err := range blk.Iterate(ctx) {
			if err != nil {
				break
			}
		}
		runtime.ReadMemStats(&ms)
		if got := ms.TotalAlloc - before; got > worst {
			worst = got
			t.Logf("mutation %d: %d bytes allocated", iter, got)
		}
		b.Delete(ctx, block.DataKey(mm.TenantID, mm.BlockID))
	}
	t.Logf("%d damaged files read: %d lookups failed cleanly; worst allocation %d bytes", reads, failures, worst)
	if worst > 48<<20 {
		t.Errorf("a damaged 120 KB file made a read allocate %d bytes", worst)
	}
}

// TestHostileSizesRejected writes sizes that parquet-go would allocate
// before noticing (a snappy length of 2 GiB, a definition-level run of 2^28
// entries) into one page and checks that reads fail fast with an error
// naming the block, without allocating them.
func TestHostileSizesRejected(t *testing.T) {
	c := otlptest.LoadCorpus(t)
	ctx := context.Background()
	b := storagetest.OpenMem(t)
	m, err := WriteBlock(ctx, b, WriterConfig{}, c.Lines...)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := b.Read(ctx, block.DataKey(m.TenantID, m.BlockID))
	md := footerOf(t, data)
	// The first data page of a snappy column with levels: span attribute keys.
	col := -1
	for i, cc := range md.RowGroups[0].Columns {
		if strings.Join(cc.MetaData.PathInSchema, ".") == "rs.list.element.ss.list.element.Spans.list.element.Attrs.list.element.Key" {
			col = i
		}
	}
	cm := md.RowGroups[0].Columns[col].MetaData
	pos := cm.DataPageOffset
	var h format.PageHeader
	var proto thrift.CompactProtocol
	r := proto.NewReaderFromBytes(data[pos:])
	if err := thrift.NewDecoder(r).Decode(&h); err != nil {
		t.Fatal(err)
	}
	hdr := int64(r.(interface{ BytesRead() int }).BytesRead())
	v2 := h.DataPageHeaderV2.V
	levelsAt := pos + hdr
	bodyAt := levelsAt + int64(v2.RepetitionLevelsByteLength+v2.DefinitionLevelsByteLength)
	for name, patch := range map[string]struct {
		at  int64
		val []byte
	}{
		"snappy length 2 GiB": {bodyAt, binary.AppendUvarint(nil, 1<<31)},
		"level run 2^28":      {levelsAt + int64(v2.RepetitionLevelsByteLength), binary.AppendUvarint(nil, (1<<28)<<1)},
	} {
		bad := append([]byte{}, data...)
		copy(bad[patch.at:], patch.val)
		mm := *m
		mm.BlockID = uuid.New()
		b.Write(ctx, block.DataKey(mm.TenantID, mm.BlockID), bad)
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		before := ms.TotalAlloc
		_, _, err := OpenBlock(ctx, b, &mm).FindTraceByID(ctx, block.TraceID(md.RowGroups[0].Columns[0].MetaData.Statistics.MinValue))
		runtime.ReadMemStats(&ms)
		if err == nil || !strings.Contains(err.Error(), mm.BlockID.String()) {
			t.Errorf("%s: err = %v", name, err)
		} else {
			t.Logf("%s: %v", name, err)
		}
		if got := ms.TotalAlloc - before; got > 64<<20 {
			t.Errorf("%s: allocated %d bytes", name, got)
		}
	}
}
