package compact

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tracectl/tracectl/internal/blocks"
	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/storage"
)

// TestOrphanSweepRemovesKilledWritersTempFiles: on a file:// bucket a
// writer killed mid-object leaves fileblob's temporary file in the block
// directory, hidden from listings. The orphan sweep removes it once it is
// older than the orphan age, with the directory, but leaves a live
// writer's fresh temporary file, and the directory it is in, alone.
func TestOrphanSweepRemovesKilledWritersTempFiles(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b, err := storage.Open(ctx, "file://"+dir)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	tn := block.DefaultTenant
	day := time.Now().Add(-25 * time.Hour)
	age := func(key string) {
		t.Helper()
		if err := os.Chtimes(filepath.Join(dir, filepath.FromSlash(key)), day, day); err != nil {
			t.Fatal(err)
		}
	}
	// writing starts writing key and leaves the write open: on disk, what a
	// writer killed at that point leaves (fileblob's temporary file beside
	// the key). It returns the temporary file's key.
	writing := func(key string) string {
		t.Helper()
		w, err := b.NewWriter(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(w.Abort)
		if _, err := w.Write(make([]byte, 4096)); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			ts, err := b.TempFiles(ctx, key)
			if err == nil && len(ts) == 1 && ts[0].Size > 0 {
				return ts[0].Key
			}
			if time.Now().After(deadline) {
				t.Fatalf("no temporary file for %s: %v %v", key, ts, err)
			}
		}
	}
	killed, killedMid, live, liveMid := uuid.New(), uuid.New(), uuid.New(), uuid.New()
	// killed: a block whose first object's writer was killed a day ago.
	age(writing(block.BlockPrefix(tn, killed) + "data.parquet"))
	// killedMid: one object stored, the next cut short, a day ago.
	if err := b.Write(ctx, block.BlockPrefix(tn, killedMid)+"bloom-0", []byte("bloom")); err != nil {
		t.Fatal(err)
	}
	age(block.BlockPrefix(tn, killedMid) + "bloom-0")
	age(writing(block.BlockPrefix(tn, killedMid) + "data.parquet"))
	// live: a writer at work on its first object.
	liveTemp := writing(block.BlockPrefix(tn, live) + "data.parquet")
	// liveMid: an old object, and a writer at work on the next.
	if err := b.Write(ctx, block.BlockPrefix(tn, liveMid)+"bloom-0", []byte("bloom")); err != nil {
		t.Fatal(err)
	}
	age(block.BlockPrefix(tn, liveMid) + "bloom-0")
	liveMidTemp := writing(block.BlockPrefix(tn, liveMid) + "data.parquet")

	if l, err := blocks.List(ctx, b, tn, blocks.ListOptions{}); err != nil || l.Incomplete != 4 {
		t.Fatalf("before: %v incomplete, %v; want 4", l.Incomplete, err)
	}
	res, err := Compact(ctx, b, tn, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := []uuid.UUID{killed, killedMid}
	slices.SortFunc(want, func(x, y uuid.UUID) int { return slices.Compare(x[:], y[:]) })
	got := slices.Clone(res.Orphans)
	slices.SortFunc(got, func(x, y uuid.UUID) int { return slices.Compare(x[:], y[:]) })
	if !slices.Equal(got, want) {
		t.Errorf("orphans %v, want %v (the killed writers' blocks)", got, want)
	}
	for _, id := range []uuid.UUID{killed, killedMid} {
		if _, err := os.Stat(filepath.Join(dir, tn, id.String())); !os.IsNotExist(err) {
			t.Errorf("block directory %s of a killed writer is still there: %v", id, err)
		}
	}
	for _, key := range []string{liveTemp, liveMidTemp, block.BlockPrefix(tn, liveMid) + "bloom-0"} {
		if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(key))); err != nil {
			t.Errorf("%s of a live writer's block was removed: %v", key, err)
		}
	}
	if l, err := blocks.List(ctx, b, tn, blocks.ListOptions{}); err != nil || l.Incomplete != 2 {
		t.Errorf("after: %v incomplete, %v; want 2 (the live writers')", l.Incomplete, err)
	}

	// A day later the live writers are gone too (killed: their files
	// stop changing) and the next sweep removes what they left.
	age(liveTemp)
	age(liveMidTemp)
	if res, err = Compact(ctx, b, tn, Options{}); err != nil || len(res.Orphans) != 2 {
		t.Fatalf("second sweep: %v orphans, %v; want 2", res.Orphans, err)
	}
	ents, err := os.ReadDir(filepath.Join(dir, tn))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.IsDir() {
			t.Errorf("block directory %s left after the second sweep", e.Name())
		}
	}
}
