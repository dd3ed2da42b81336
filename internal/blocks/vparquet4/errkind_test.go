package vparquet4

import (
	"context"
	"testing"

	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/otlptest"
	"github.com/tracectl/tracectl/internal/storage"
	"github.com/tracectl/tracectl/internal/storage/faulty"
	"github.com/tracectl/tracectl/internal/storage/storagetest"
)

// TestReadErrorsKeepTheirKind: a storage failure met while reading a block
// (the footer, or a row group after the footer was parsed) reaches the
// caller with its kind, so the query API answers an outage 503 and knows
// a deleted block from a damaged one.
func TestReadErrorsKeepTheirKind(t *testing.T) {
	corpus := otlptest.LoadCorpus(t)
	ctx := context.Background()
	id := otlptest.IDOf("P00")
	tid, _ := block.ParseTraceID(id)
	for _, tc := range []struct {
		name string
		kind storage.Kind
		warm bool // the footer was read and parsed before the fault
	}{
		{"unavailable at the footer", storage.KindUnavailable, false},
		{"unavailable in a row group", storage.KindUnavailable, true},
		{"gone at the footer", storage.KindNotFound, false},
		{"gone in a row group", storage.KindNotFound, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := storagetest.OpenMem(t)
			m, err := WriteBlock(ctx, b, WriterConfig{TenantID: "t"}, corpus.ByID[id])
			if err != nil {
				t.Fatal(err)
			}
			blk := OpenBlock(ctx, b, m)
			if tc.warm {
				if _, found, err := blk.FindTraceByID(ctx, tid); err != nil || !found {
					t.Fatalf("before the fault: found=%v err=%v", found, err)
				}
			}
			faulty.Install(b).Add(&faulty.Rule{Ops: []string{faulty.Read, faulty.Stat}, Keys: "*/" + block.DataName, Kind: tc.kind})
			_, _, err = blk.FindTraceByID(ctx, tid)
			if got := storage.KindOf(err); got != tc.kind {
				t.Errorf("FindTraceByID: kind %v, want %v (%v)", got, tc.kind, err)
			}
			for _, err := range blk.Iterate(ctx) {
				if err != nil {
					if got := storage.KindOf(err); got != tc.kind {
						t.Errorf("Iterate: kind %v, want %v (%v)", got, tc.kind, err)
					}
					break
				}
			}
		})
	}
}
