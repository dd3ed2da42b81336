package vparquet4

import (
	"bytes"
	"context"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"

	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/otlptest"
	"github.com/tracectl/tracectl/internal/storage"
	"github.com/tracectl/tracectl/internal/storage/storagetest"
)

// readRows reads every row of a block with a RowReader, cloning them.
func readRows(t *testing.T, b *storage.Bucket, m *block.Meta) []parquet.Row {
	t.Helper()
	r, err := OpenBlock(context.Background(), b, m).NewRowReader(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var out []parquet.Row
	for {
		row, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, row.Clone())
	}
}

// TestWriteRowsCopiesBlock reads a block row by row and writes the rows to
// a new block: same rows, same bloom filter, same meta but for the IDs and
// sizes, and row groups cut at about the same size.
func TestWriteRowsCopiesBlock(t *testing.T) {
	ctx := context.Background()
	c := otlptest.LoadCorpus(t)
	b := storagetest.OpenMem(t)
	src, err := WriteBlock(ctx, b, WriterConfig{RowGroupBytes: 16 << 10}, c.Lines...)
	if err != nil {
		t.Fatal(err)
	}
	rows := readRows(t, b, src)
	if int64(len(rows)) != src.TotalObjects {
		t.Fatalf("%d rows read, meta says %d", len(rows), src.TotalObjects)
	}
	spans := 0
	for _, r := range rows {
		spans += RowSpans(r)
	}
	want := 0
	for _, l := range c.Lines {
		want += l.SpanCount()
	}
	if spans != want {
		t.Errorf("RowSpans counted %d spans, the corpus has %d", spans, want)
	}

	w, err := NewBlockWriter(ctx, b, WriterConfig{RowGroupBytes: 16 << 10})
	if err != nil {
		t.Fatal(err)
	}
	// Uneven batches, as a merge hands them over.
	for i := 0; i < len(rows); {
		n := min(1+i%7, len(rows)-i)
		if err := w.WriteRows(rows[i : i+n]); err != nil {
			t.Fatal(err)
		}
		i += n
	}
	dst, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	if dst.TotalObjects != src.TotalObjects || !dst.StartTime.Equal(src.StartTime) || !dst.EndTime.Equal(src.EndTime) {
		t.Errorf("copy meta %+v, source %+v", dst, src)
	}
	if ratio := float64(dst.TotalRecords) / float64(src.TotalRecords); ratio < 0.5 || ratio > 2 {
		t.Errorf("copy has %d row groups, source %d: the row size estimate is off", dst.TotalRecords, src.TotalRecords)
	}
	wantRows, _ := readAll(t, OpenBlock(ctx, b, src))
	gotRows, _ := readAll(t, OpenBlock(ctx, b, dst))
	if !reflect.DeepEqual(wantRows, gotRows) {
		t.Error("rows copied with WriteRows differ from the source")
	}
	for i := range int(dst.BloomShards) {
		g, _ := b.Read(ctx, block.BloomKey(dst.TenantID, dst.BlockID, i))
		s, _ := b.Read(ctx, block.BloomKey(src.TenantID, src.BlockID, i))
		if !bytes.Equal(g, s) {
			t.Errorf("bloom-%d differs", i)
		}
	}

	// Order is enforced, also against traces added with Add.
	w2, _ := NewBlockWriter(ctx, b, WriterConfig{})
	if err := w2.WriteRows(rows[1:2]); err != nil {
		t.Fatal(err)
	}
	if err := w2.WriteRows(rows[0:1]); err == nil || !strings.Contains(err.Error(), "ascending") {
		t.Errorf("out-of-order row: %v", err)
	}
	w2.Abort()
}

// TestRowCombiner combines P18 (a repeated span inside one part) with
// itself and P03's two parts from the level-0 fixtures: repeats across
// parts are dropped, repeats inside the first part kept, and the result
// reads back as the corpus trace.
func TestRowCombiner(t *testing.T) {
	ctx := context.Background()
	c := otlptest.LoadCorpus(t)
	fx := fixtureBucket(t, "vparquet4")
	byID := map[block.TraceID][]parquet.Row{}
	var metas []*block.Meta
	for _, fb := range fixtureBlocks(t, "vparquet4") {
		metas = append(metas, fb.meta)
	}
	// Wave order, as received.
	for _, wv := range waves {
		for _, m := range metas {
			if m.BlockID.String() == wv.blockID {
				for _, r := range readRows(t, fx, m) {
					byID[RowID(r)] = append(byID[RowID(r)], r)
				}
			}
		}
	}
	comb := NewRowCombiner(metas[0].DedicatedColumns)
	p03, _ := block.ParseTraceID(otlptest.IDOf("P03"))
	p18, _ := block.ParseTraceID(otlptest.IDOf("P18"))
	if len(byID[p03]) != 2 {
		t.Fatalf("P03 has %d parts in the fixtures, want 2", len(byID[p03]))
	}
	for _, tc := range []struct {
		id        block.TraceID
		parts     []parquet.Row
		wantSpans int
	}{
		{p03, byID[p03], RowSpans(byID[p03][0]) + RowSpans(byID[p03][1])},
		{p18, []parquet.Row{byID[p18][0], byID[p18][0]}, RowSpans(byID[p18][0])},
	} {
		row, err := comb.Combine(tc.parts)
		if err != nil {
			t.Fatal(err)
		}
		if got := RowSpans(row); got != tc.wantSpans {
			t.Errorf("%s: %d spans combined, want %d", otlptest.Label(tc.id.Hex()), got, tc.wantSpans)
		}
		b := storagetest.OpenMem(t)
		w, _ := NewBlockWriter(ctx, b, WriterConfig{DedicatedColumns: metas[0].DedicatedColumns})
		if err := w.WriteRows([]parquet.Row{row}); err != nil {
			t.Fatal(err)
		}
		m, err := w.Close()
		if err != nil {
			t.Fatal(err)
		}
		_, got := readAll(t, OpenBlock(ctx, b, m))
		otlptest.AssertEqual(t, c.ByID[tc.id.Hex()], got[tc.id])
	}
	if _, err := comb.Combine([]parquet.Row{byID[p03][0], byID[p18][0]}); err == nil {
		t.Error("rows of two traces combined")
	}
}

// TestAddPartsLikeCombine: the writer's AddParts makes the row
// RowCombiner.Combine makes (P03's two parts; P18 with itself), and
// refuses parts of two traces.
func TestAddPartsLikeCombine(t *testing.T) {
	ctx := context.Background()
	fx := fixtureBucket(t, "vparquet4")
	byID := map[block.TraceID][]parquet.Row{}
	var metas []*block.Meta
	for _, fb := range fixtureBlocks(t, "vparquet4") {
		metas = append(metas, fb.meta)
	}
	for _, wv := range waves {
		for _, m := range metas {
			if m.BlockID.String() == wv.blockID {
				for _, r := range readRows(t, fx, m) {
					byID[RowID(r)] = append(byID[RowID(r)], r)
				}
			}
		}
	}
	ded := metas[0].DedicatedColumns
	comb := NewRowCombiner(ded)
	p03, _ := block.ParseTraceID(otlptest.IDOf("P03"))
	p18, _ := block.ParseTraceID(otlptest.IDOf("P18"))
	b := storagetest.OpenMem(t)
	for _, parts := range [][]parquet.Row{byID[p03], {byID[p18][0], byID[p18][0]}} {
		row, err := comb.Combine(parts)
		if err != nil {
			t.Fatal(err)
		}
		row = row.Clone()
		w1, _ := NewBlockWriter(ctx, b, WriterConfig{DedicatedColumns: ded})
		if err := w1.WriteRows([]parquet.Row{row}); err != nil {
			t.Fatal(err)
		}
		m1, err := w1.Close()
		if err != nil {
			t.Fatal(err)
		}
		w2, _ := NewBlockWriter(ctx, b, WriterConfig{DedicatedColumns: ded, DropDuplicateSpans: true})
		n, err := w2.AddParts(parts)
		if err != nil {
			t.Fatal(err)
		}
		if n != RowSpans(row) {
			t.Errorf("AddParts: %d spans, Combine %d", n, RowSpans(row))
		}
		m2, err := w2.Close()
		if err != nil {
			t.Fatal(err)
		}
		want, _ := readAll(t, OpenBlock(ctx, b, m1))
		got, _ := readAll(t, OpenBlock(ctx, b, m2))
		if !reflect.DeepEqual(want, got) {
			t.Errorf("%s: AddParts row differs from Combine's", RowID(parts[0]))
		}
	}
	w, _ := NewBlockWriter(ctx, b, WriterConfig{DedicatedColumns: ded, DropDuplicateSpans: true})
	if _, err := w.AddParts([]parquet.Row{byID[p03][0], byID[p18][0]}); err == nil {
		t.Error("rows of two traces added as parts of one")
	}
	w.Abort()
	w, _ = NewBlockWriter(ctx, b, WriterConfig{DedicatedColumns: ded})
	if _, err := w.AddParts(byID[p03]); err == nil {
		t.Error("AddParts without DropDuplicateSpans")
	}
	w.Abort()
}

// TestWriteRowsMixedWithStructs interleaves WriteRows with rows built by
// the writer (AddParts, Add), in several patterns and across row groups:
// every row is stored, in order, as each path makes it. (parquet-go's
// first write of structs replaces the column buffers WriteRows filled.)
func TestWriteRowsMixedWithStructs(t *testing.T) {
	ctx := context.Background()
	c := otlptest.LoadCorpus(t)
	b := storagetest.OpenMem(t)
	cfg := WriterConfig{DropDuplicateSpans: true, RowGroupBytes: 16 << 10}
	src, err := WriteBlock(ctx, b, cfg, c.Lines...)
	if err != nil {
		t.Fatal(err)
	}
	rows := readRows(t, b, src)
	groups := GroupByTrace(c.Lines...)
	// References: every row copied (R), every row rebuilt from its part (A).
	wantR, _ := readAll(t, OpenBlock(ctx, b, src))
	w, _ := NewBlockWriter(ctx, b, cfg)
	for _, r := range rows {
		if _, err := w.AddParts([]parquet.Row{r}); err != nil {
			t.Fatal(err)
		}
	}
	allA, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	wantA, _ := readAll(t, OpenBlock(ctx, b, allA))
	for _, pattern := range []string{"RRRRARRRR", "RARARARAR", "AARRRRAAR", "RDRRDDRRR", "RRRRRRRRR"} {
		w, _ := NewBlockWriter(ctx, b, cfg)
		var want []*Trace
		for i, r := range rows {
			switch pattern[i%len(pattern)] {
			case 'R':
				err = w.WriteRows([]parquet.Row{r})
				want = append(want, wantR[i])
			case 'A':
				_, err = w.AddParts([]parquet.Row{r})
				want = append(want, wantA[i])
			case 'D':
				err = w.Add(groups[i].ID, groups[i].Traces)
				want = append(want, wantA[i])
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		m, err := w.Close()
		if err != nil {
			t.Fatal(err)
		}
		got, _ := readAll(t, OpenBlock(ctx, b, m))
		if len(got) != len(rows) || m.TotalObjects != int64(len(rows)) {
			t.Fatalf("%s: %d rows read, meta %d, want %d", pattern, len(got), m.TotalObjects, len(rows))
		}
		if !reflect.DeepEqual(want, got) {
			t.Errorf("%s: rows differ", pattern)
		}
	}
}
