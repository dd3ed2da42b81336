// Package pqreadtest holds the fixture checks every pqread-based block
// reader (vParquet3, vParquet5) must pass against the blocks real Tempo
// wrote from the public corpus: iteration in ID order, OTLP conversion,
// bloom shards, trace by ID, and IDs with leading zeros. Each format
// supplies how to open a block and what its format keeps of a trace.
package pqreadtest

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/blocks/pqread"
	"github.com/tracectl/tracectl/internal/otlptest"
	"github.com/tracectl/tracectl/internal/storage"
	"github.com/tracectl/tracectl/internal/storage/storagetest"
	"github.com/tracectl/tracectl/internal/testfix"
)

// Open opens one block of a format for reading.
type Open func(ctx context.Context, bucket *storage.Bucket, meta *block.Meta) *pqread.Reader

// Expected returns what a block of the format keeps of the corpus trace td
// (metas are the fixture blocks, for formats whose columns they name).
type Expected func(t *testing.T, td ptrace.Traces, metas []block.Meta) ptrace.Traces

// FixtureBlocks opens the fixture bucket fixtures/tempo/<dir> and returns it
// with the metas of its live blocks, sorted by block ID.
func FixtureBlocks(t *testing.T, dir string) (*storage.Bucket, []block.Meta) {
	t.Helper()
	b := storagetest.OpenDir(t, testfix.Path(t, "tempo", dir))
	metas := FixtureMetas(t, dir)
	sort.Slice(metas, func(i, j int) bool { return metas[i].BlockID.String() < metas[j].BlockID.String() })
	return b, metas
}

// FixtureMetas returns the metas of the live blocks of fixtures/tempo/<dir>.
func FixtureMetas(t *testing.T, dir string) []block.Meta {
	t.Helper()
	root := testfix.Path(t, "tempo", dir)
	files, err := filepath.Glob(filepath.Join(root, "single-tenant", "*", block.MetaName))
	if err != nil || len(files) == 0 {
		t.Fatalf("no blocks under %s: %v", root, err)
	}
	var metas []block.Meta
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		m, err := block.ParseMeta(f, data)
		if err != nil {
			t.Fatal(err)
		}
		metas = append(metas, *m)
	}
	return metas
}

// ReadAll iterates every block and returns the traces per ID (parts of a
// trace from several blocks combined) and the IDs per block.
func ReadAll(t *testing.T, open Open, bucket *storage.Bucket, metas []block.Meta) (map[string]ptrace.Traces, map[string][]string) {
	t.Helper()
	ctx := context.Background()
	traces := map[string]ptrace.Traces{}
	perBlock := map[string][]string{}
	for _, m := range metas {
		blk := open(ctx, bucket, &m)
		var last block.TraceID
		n := 0
		for tr, err := range blk.Iterate(ctx) {
			if err != nil {
				t.Fatalf("block %s: %v", m.BlockID, err)
			}
			if n > 0 && tr.ID().Compare(last) <= 0 {
				t.Errorf("block %s: trace %s after %s: not in ID order", m.BlockID, tr.ID(), last)
			}
			last = tr.ID()
			n++
			id := tr.ID().Hex()
			if tr.TraceIDText != tr.ID().Text() {
				t.Errorf("block %s: TraceIDText %q for %s", m.BlockID, tr.TraceIDText, id)
			}
			td, err := blk.OTLPAll(tr)
			if err != nil || td.SpanCount() != tr.SpanCount() {
				t.Fatalf("block %s: OTLPAll: %v", m.BlockID, err)
			}
			// OTLP drops repeats of a span ID + kind (P18) and nothing else.
			dedup, err := blk.OTLP(tr)
			if err != nil {
				t.Fatal(err)
			}
			if d := otlptest.Diff(td, dedup); d != nil {
				t.Errorf("block %s: OTLP and OTLPAll differ beyond repeats: %v", m.BlockID, d)
			}
			if id == otlptest.IDOf("P18") && (td.SpanCount() != 4 || dedup.SpanCount() != 3) {
				t.Errorf("P18: OTLPAll %d spans, OTLP %d; want 4 and 3", td.SpanCount(), dedup.SpanCount())
			}
			if ok, err := blk.MayContain(ctx, tr.ID()); !ok || err != nil {
				t.Errorf("block %s: bloom rules out stored trace %s (%v)", m.BlockID, id, err)
			}
			perBlock[m.BlockID.String()] = append(perBlock[m.BlockID.String()], id)
			if prev, ok := traces[id]; ok {
				traces[id] = otlptest.Merge(prev, td)
			} else {
				traces[id] = td
			}
		}
		if int64(n) != m.TotalObjects {
			t.Errorf("block %s: %d traces, meta says %d", m.BlockID, n, m.TotalObjects)
		}
	}
	return traces, perBlock
}

// FixturesMatchCorpus reads every block of fixtures/tempo/<dir>: each
// corpus trace is stored as the format keeps it, P03 split over two blocks
// and P18's repeated span stored twice.
func FixturesMatchCorpus(t *testing.T, dir string, open Open, expected Expected) {
	t.Helper()
	corpus := otlptest.LoadCorpus(t)
	bucket, metas := FixtureBlocks(t, dir)
	if len(metas) != 3 {
		t.Fatalf("%d blocks, want 3", len(metas))
	}
	got, perBlock := ReadAll(t, open, bucket, metas)

	// P03 is split across the wave-1 and wave-3 blocks.
	p03 := otlptest.IDOf("P03")
	inBlocks := 0
	for _, ids := range perBlock {
		for _, id := range ids {
			if id == p03 {
				inBlocks++
			}
		}
	}
	if inBlocks != 2 {
		t.Errorf("P03 is in %d blocks, want 2", inBlocks)
	}

	for _, id := range corpus.IDs {
		label := otlptest.Label(id)
		g, ok := got[id]
		if !ok {
			t.Errorf("%s %s: not in any block", label, id)
			continue
		}
		want := expected(t, corpus.ByID[id], metas)
		// CountDuplicates: P18's span was sent twice and is stored twice.
		if d := otlptest.Diff(want, g, otlptest.CountDuplicates()); d != nil {
			t.Errorf("%s differs from the corpus:\n  %s", label, strings.Join(d, "\n  "))
		}
	}
	if len(got) != len(corpus.IDs) {
		t.Errorf("blocks hold %d traces, corpus %d", len(got), len(corpus.IDs))
	}
	if n := got[otlptest.IDOf("P18")].SpanCount(); n != 4 {
		t.Errorf("P18: %d span copies, want 4 (span B stored twice)", n)
	}
}

// FindTraceByID asks every block of fixtures/tempo/<dir> for every corpus
// trace: found exactly where iteration saw it, and whole.
func FindTraceByID(t *testing.T, dir string, open Open, expected Expected) {
	t.Helper()
	corpus := otlptest.LoadCorpus(t)
	bucket, metas := FixtureBlocks(t, dir)
	_, perBlock := ReadAll(t, open, bucket, metas)
	ctx := context.Background()
	for _, m := range metas {
		blk := open(ctx, bucket, &m)
		holds := map[string]bool{}
		for _, id := range perBlock[m.BlockID.String()] {
			holds[id] = true
		}
		for _, hexID := range corpus.IDs {
			id, err := block.ParseTraceID(hexID)
			if err != nil {
				t.Fatal(err)
			}
			td, found, err := blk.FindTraceByID(ctx, id)
			if err != nil {
				t.Fatalf("block %s, %s: %v", m.BlockID, otlptest.Label(hexID), err)
			}
			if found != holds[hexID] {
				t.Errorf("block %s, %s: found = %v, want %v", m.BlockID, otlptest.Label(hexID), found, holds[hexID])
				continue
			}
			if !found {
				continue
			}
			// The part in this block is the corpus trace restricted to the
			// spans this block holds; for every trace but P03 that is all.
			if hexID == otlptest.IDOf("P03") {
				if td.SpanCount() == 0 {
					t.Errorf("block %s: P03 part has no spans", m.BlockID)
				}
				continue
			}
			if hexID == otlptest.IDOf("P18") && td.SpanCount() != 3 {
				t.Errorf("P18: %d spans, want 3 (the repeat dropped)", td.SpanCount())
			}
			if d := otlptest.Diff(expected(t, corpus.ByID[hexID], metas), td); d != nil {
				t.Errorf("block %s, %s:\n  %s", m.BlockID, otlptest.Label(hexID), strings.Join(d, "\n  "))
			}
		}
	}
}

// FindTraceByIDLeadingZeros finds IDs written with their leading zeros
// dropped (P04, P05), and finds nothing for IDs below, between and above
// the stored ones.
func FindTraceByIDLeadingZeros(t *testing.T, dir string, open Open) {
	t.Helper()
	bucket, metas := FixtureBlocks(t, dir)
	ctx := context.Background()
	for _, short := range []string{"f1e2d3c4b5a6978877665544332", "5b8efff798038103"} { // P04, P05
		id, err := block.ParseTraceID(short)
		if err != nil {
			t.Fatal(err)
		}
		found := 0
		for _, m := range metas {
			td, ok, err := open(ctx, bucket, &m).FindTraceByID(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				found++
				if got := otlptest.TraceIDHex(td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).TraceID()); got != id.Hex() {
					t.Errorf("%s: span trace ID %s", short, got)
				}
			}
		}
		if found != 1 {
			t.Errorf("%s found in %d blocks, want 1", short, found)
		}
	}
	// An ID that no block holds, below, between and above the stored ones.
	for _, s := range []string{"1", "594dbe7e6cff645eb51079037485e52b", "ffffffffffffffffffffffffffffffff"} {
		id, _ := block.ParseTraceID(s)
		for _, m := range metas {
			if _, ok, err := open(ctx, bucket, &m).FindTraceByID(ctx, id); ok || err != nil {
				t.Errorf("%s in block %s: found=%v err=%v", s, m.BlockID, ok, err)
			}
		}
	}
}
