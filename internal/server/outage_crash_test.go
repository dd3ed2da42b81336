package server

import (
	"context"
	"testing"

	"github.com/tracectl/tracectl/internal/storage/faulty"
)

// TestReplayCrashDuringStorageOutage kills serve (as crashRig does: the WAL
// as it is on disk, nothing more flushed) three times while the store
// misbehaves, each time with new data and cuts whose flushes fail:
//  1. every write refused (an outage): two cuts queued, nothing stored;
//  2. meta.json stored but its write reported failed (a lost answer): the
//     blocks are there, the server does not know it;
//  3. data.parquet torn (a prefix stored, the write failed).
//
// Once the store is back, one more start and a clean stop must leave every
// acknowledged span stored exactly once, as raw rows, and nothing else.
func TestReplayCrashDuringStorageOutage(t *testing.T) {
	r := newCrashRig(t)
	in := faulty.Install(r.b)
	ctx := context.Background()

	in.Down(faulty.Write, faulty.Create)
	s1 := r.start()
	r.workload(s1, 0, "a", "b")
	if err := s1.flushPending(ctx); err == nil {
		t.Fatal("flush succeeded during an outage")
	}
	r.workload(s1, 1000, "a", "b")
	if err := s1.flushPending(ctx); err == nil {
		t.Fatal("flush succeeded during an outage")
	}
	crash(s1)

	in.Clear()
	lost := in.Add(&faulty.Rule{Ops: []string{faulty.Write}, Keys: "*/meta.json", Torn: true, Keep: 1 << 30})
	s2 := r.start()
	r.workload(s2, 2000, "a", "b")
	if err := s2.flushPending(ctx); err == nil {
		t.Fatal("flush reported success though every meta.json write failed")
	}
	if lost.Fired() == 0 {
		t.Fatal("no meta.json write was attempted: the test does not reach the lost-answer window")
	}
	crash(s2)

	in.Clear()
	torn := in.Add(&faulty.Rule{Ops: []string{faulty.Write}, Keys: "*/data.parquet", Torn: true, Keep: 100})
	s3 := r.start()
	r.workload(s3, 3000, "a", "b")
	if err := s3.flushPending(ctx); err == nil {
		t.Fatal("flush reported success though every data.parquet write was torn")
	}
	if torn.Fired() == 0 {
		t.Fatal("no data.parquet write was attempted")
	}
	crash(s3)

	in.Clear()
	r.finish("a", "b")
	if n := r.logged("already stored"); n == 0 {
		t.Error("no block found already stored after the lost meta.json answers; the test did not exercise that path")
	}
}
