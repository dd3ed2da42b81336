package vparquet4

import (
	"bytes"
	"context"
	"slices"
	"testing"

	"github.com/google/uuid"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/otlptest"
)

// TestAddRefsWritesWhatAddWrites: writing the corpus request by request
// through IndexByTrace + AddRefs (the serve head's zero-copy path) gives
// the same data.parquet bytes as GroupByTrace copies + Add.
func TestAddRefsWritesWhatAddWrites(t *testing.T) {
	c := otlptest.LoadCorpus(t)
	type piece struct {
		id   block.TraceID
		refs []ScopeRef
		td   ptrace.Traces
	}
	var pieces []piece
	for _, line := range c.Lines {
		idx := IndexByTrace(line)
		groups := GroupByTrace(line)
		if len(idx) != len(groups) {
			t.Fatalf("IndexByTrace found %d traces, GroupByTrace %d", len(idx), len(groups))
		}
		for _, tr := range idx {
			g := groups[slices.IndexFunc(groups, func(g TraceGroup) bool { return g.ID == tr.ID })]
			if tr.Spans != g.Traces.SpanCount() {
				t.Fatalf("trace %s: %d spans referenced, %d grouped", tr.ID, tr.Spans, g.Traces.SpanCount())
			}
			// AppendRefs copies exactly what GroupByTrace copies.
			cp := ptrace.NewTraces()
			AppendRefs(cp, tr.Scopes)
			if d := otlptest.Diff(g.Traces, cp); len(d) > 0 {
				t.Fatalf("trace %s: AppendRefs differs from GroupByTrace: %v", tr.ID, d[:min(len(d), 5)])
			}
			pieces = append(pieces, piece{tr.ID, tr.Scopes, g.Traces})
		}
	}
	slices.SortStableFunc(pieces, func(a, b piece) int { return a.id.Compare(b.id) })

	write := func(add func(w *BlockWriter, p piece) error) []byte {
		b := memBucket(t)
		id := uuid.MustParse("5a3c0e62-5c55-4d0a-9a45-1b3a8f9a7a01")
		w, err := NewBlockWriter(context.Background(), b, WriterConfig{BlockID: id})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pieces {
			if err := add(w, p); err != nil {
				t.Fatal(err)
			}
		}
		m, err := w.Close()
		if err != nil {
			t.Fatal(err)
		}
		data, err := b.Read(context.Background(), block.DataKey(m.TenantID, m.BlockID))
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	viaAdd := write(func(w *BlockWriter, p piece) error { return w.Add(p.id, p.td) })
	viaRefs := write(func(w *BlockWriter, p piece) error { return w.AddRefs(p.id, p.refs) })
	if !bytes.Equal(viaAdd, viaRefs) {
		t.Fatalf("data.parquet differs: Add %d bytes, AddRefs %d bytes", len(viaAdd), len(viaRefs))
	}

	// Spans of another trace are refused, as with Add.
	w, _ := NewBlockWriter(context.Background(), memBucket(t), WriterConfig{})
	defer w.Abort()
	if err := w.AddRefs(pieces[1].id, pieces[0].refs); err == nil && pieces[0].id != pieces[1].id {
		t.Error("AddRefs accepted spans of another trace")
	}
}
