package blocks

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/storage"
	"github.com/tracectl/tracectl/internal/storage/storagetest"
	"github.com/tracectl/tracectl/internal/testfix"
)

// copyFixtureBucket copies a fixture bucket root into a temporary directory
// (so tests may damage it) and opens it.
func copyFixtureBucket(t *testing.T, name string) (*storage.Bucket, string) {
	t.Helper()
	src := testfix.Path(t, "tempo", name)
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	b := storagetest.OpenDir(t, dst)
	return b, dst
}

func blockIDs(l *Listing) []string {
	var out []string
	for _, bi := range l.Blocks {
		out = append(out, bi.Meta.BlockID.String())
	}
	return out
}

func TestListFixtureBuckets(t *testing.T) {
	ctx := context.Background()
	v4 := []string{"b1db29cc-be7a-4217-88f9-2f72c202f0fa", "13a60468-ebb1-45a8-b97a-c8af8c7c3888", "8fde4fab-4bd6-4780-9c86-47fba0b9512e"}
	b, _ := copyFixtureBucket(t, "vparquet4")
	l, err := List(ctx, b, block.DefaultTenant, ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Problems) != 0 || l.FromIndex {
		t.Fatalf("problems %v, fromIndex %v", l.Problems, l.FromIndex)
	}
	got := blockIDs(l)
	if len(got) != 3 {
		t.Fatalf("listed %v", got)
	}
	// Sorted by start time: wave 1 starts first.
	if got[0] != v4[0] {
		t.Errorf("first block %s, want the wave-1 block %s", got[0], v4[0])
	}
	for _, id := range v4 {
		if !strings.Contains(strings.Join(got, " "), id) {
			t.Errorf("block %s not listed", id)
		}
	}

	// Compacted bucket: one live block, four compacted ones hidden by default.
	cb, _ := copyFixtureBucket(t, "vparquet4-compacted")
	l, err = List(ctx, cb, block.DefaultTenant, ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := blockIDs(l); len(got) != 1 || got[0] != "8638efc1-2742-4667-8de0-8bae4bda7236" {
		t.Errorf("live blocks %v, want only the level-2 block", got)
	}
	l, err = List(ctx, cb, block.DefaultTenant, ListOptions{IncludeCompacted: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Blocks) != 5 {
		t.Fatalf("with compacted: %d blocks, want 5", len(l.Blocks))
	}
	compacted := 0
	for _, bi := range l.Blocks {
		if bi.Compacted {
			compacted++
			if bi.CompactedTime.IsZero() {
				t.Errorf("compacted block %s has no compacted time", bi.Meta.BlockID)
			}
		}
	}
	if compacted != 4 {
		t.Errorf("%d compacted, want 4", compacted)
	}
}

func TestListUsesFreshTenantIndexOnly(t *testing.T) {
	ctx := context.Background()
	b, dir := copyFixtureBucket(t, "vparquet4")
	ti, err := block.ReadTenantIndex(ctx, b, block.DefaultTenant)
	if err != nil {
		t.Fatal(err)
	}
	// Remove a block from the bucket but not from the index: a fresh index
	// is trusted, a stale one is not.
	removed := "13a60468-ebb1-45a8-b97a-c8af8c7c3888"
	if err := os.RemoveAll(filepath.Join(dir, block.DefaultTenant, removed)); err != nil {
		t.Fatal(err)
	}
	fresh := func() time.Time { return ti.CreatedAt.Add(time.Minute) }
	l, err := List(ctx, b, block.DefaultTenant, ListOptions{IndexMaxAge: 5 * time.Minute, Now: fresh})
	if err != nil {
		t.Fatal(err)
	}
	if !l.FromIndex || len(l.Blocks) != 3 {
		t.Errorf("fresh index: fromIndex=%v blocks=%d, want true, 3", l.FromIndex, len(l.Blocks))
	}
	stale := func() time.Time { return ti.CreatedAt.Add(time.Hour) }
	l, err = List(ctx, b, block.DefaultTenant, ListOptions{IndexMaxAge: 5 * time.Minute, Now: stale})
	if err != nil {
		t.Fatal(err)
	}
	if l.FromIndex || len(l.Blocks) != 2 {
		t.Errorf("stale index: fromIndex=%v blocks=%d, want false, 2", l.FromIndex, len(l.Blocks))
	}
}

func TestListReportsDamagedBlocksAndKeepsHealthyOnes(t *testing.T) {
	ctx := context.Background()
	b, dir := copyFixtureBucket(t, "vparquet4")
	tdir := filepath.Join(dir, block.DefaultTenant)
	write := func(rel, content string) {
		if err := os.WriteFile(filepath.Join(tdir, rel), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Not JSON.
	write("13a60468-ebb1-45a8-b97a-c8af8c7c3888/meta.json", "{not json")
	// Unknown format.
	meta, _ := os.ReadFile(filepath.Join(tdir, "8fde4fab-4bd6-4780-9c86-47fba0b9512e", "meta.json"))
	write("8fde4fab-4bd6-4780-9c86-47fba0b9512e/meta.json", strings.Replace(string(meta), "vParquet4", "vParquet9", 1))
	// A block being written: no meta yet.
	os.MkdirAll(filepath.Join(tdir, "11111111-2222-4333-8444-555555555555"), 0o755)
	write("11111111-2222-4333-8444-555555555555/data.parquet", "partial")
	// A directory that is no block.
	os.MkdirAll(filepath.Join(tdir, "not-a-block"), 0o755)
	write("not-a-block/x", "")

	l, err := List(ctx, b, block.DefaultTenant, ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := blockIDs(l); len(got) != 1 || got[0] != "b1db29cc-be7a-4217-88f9-2f72c202f0fa" {
		t.Errorf("healthy blocks %v, want only b1db29cc…", got)
	}
	if l.Incomplete != 1 {
		t.Errorf("incomplete = %d, want 1", l.Incomplete)
	}
	if len(l.Problems) != 2 {
		t.Fatalf("problems = %v, want 2", l.Problems)
	}
	all := l.Problems[0].Error() + "\n" + l.Problems[1].Error()
	for _, want := range []string{"13a60468-ebb1-45a8-b97a-c8af8c7c3888, meta.json", "8fde4fab-4bd6-4780-9c86-47fba0b9512e, meta.json", "vParquet9"} {
		if !strings.Contains(all, want) {
			t.Errorf("problems do not mention %q:\n%s", want, all)
		}
	}
	var unknown bool
	for _, p := range l.Problems {
		unknown = unknown || errors.Is(p.Err, block.ErrUnknownFormat)
	}
	if !unknown {
		t.Error("unknown format problem does not wrap block.ErrUnknownFormat")
	}
}

func TestListTimeFilterAndTenants(t *testing.T) {
	ctx := context.Background()
	b, _ := copyFixtureBucket(t, "vparquet4")
	at := func(s string) time.Time { v, _ := time.Parse(time.RFC3339, s); return v }
	l, err := List(ctx, b, block.DefaultTenant, ListOptions{Since: at("2026-11-20T10:20:00Z")})
	if err != nil {
		t.Fatal(err)
	}
	for _, bi := range l.Blocks {
		if bi.Meta.EndTime.Before(at("2026-11-20T10:20:00Z")) {
			t.Errorf("block %s ends %v, before --since", bi.Meta.BlockID, bi.Meta.EndTime)
		}
	}
	if len(l.Blocks) == 0 || len(l.Blocks) == 3 {
		t.Errorf("--since kept %d blocks; the fixture's wave 1 ends at 10:19:23 so 1 or 2 should remain", len(l.Blocks))
	}
	l, _ = List(ctx, b, block.DefaultTenant, ListOptions{Until: at("2026-11-19T00:00:00Z")})
	if len(l.Blocks) != 0 {
		t.Errorf("--until before all data kept %d blocks", len(l.Blocks))
	}
	tenants, err := Tenants(ctx, b)
	if err != nil || len(tenants) != 1 || tenants[0] != block.DefaultTenant {
		t.Errorf("Tenants = %v, %v", tenants, err)
	}
	if _, err := List(ctx, b, "../etc", ListOptions{}); err == nil {
		t.Error("List accepted tenant ../etc")
	}
}
