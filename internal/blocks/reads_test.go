package blocks

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/otlptest"
	"github.com/tracectl/tracectl/internal/storage"
	"github.com/tracectl/tracectl/internal/storage/storagetest"
	"github.com/tracectl/tracectl/internal/testfix"
)

// TestFindTraceObjectReads counts the requests an S3 peer answers for
// trace-by-ID: a block the bloom filter rules out costs exactly one read
// (its bloom shard), a block that may hold the trace at most three (bloom,
// parquet footer, data).
func TestFindTraceObjectReads(t *testing.T) {
	ctx := context.Background()
	s3 := storagetest.StartS3(t)
	b, err := storage.Open(ctx, s3.Bucket(t, "traces"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	src := testfix.Path(t, "tempo", "vparquet4")
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return b.Write(ctx, filepath.ToSlash(rel), data)
	})
	if err != nil {
		t.Fatal(err)
	}
	l, err := List(ctx, b, block.DefaultTenant, ListOptions{})
	if err != nil || len(l.Blocks) != 3 {
		t.Fatalf("list: %v, %d blocks", err, len(l.Blocks))
	}
	var metas []*block.Meta
	for _, bi := range l.Blocks {
		metas = append(metas, bi.Meta)
	}
	corpus := otlptest.LoadCorpus(t)
	for _, hex := range corpus.IDs {
		id, _ := block.ParseTraceID(hex)
		before := s3.Requests()
		res, err := FindTrace(ctx, b, metas, id, FindOptions{})
		if err != nil || !res.Found {
			t.Fatalf("%s: %v", otlptest.Label(hex), err)
		}
		reads := s3.Requests() - before
		negatives := int64(res.Stats.BloomNegatives)
		maybe := int64(res.Stats.BlocksRead)
		if reads > negatives+3*maybe || reads < negatives+maybe {
			t.Errorf("%s: %d object reads for %d bloom-negative blocks and %d candidate blocks; want exactly 1 per negative and at most 3 per candidate",
				otlptest.Label(hex), reads, negatives, maybe)
		}
	}
	// A trace in no block: one bloom read per block (unless a false positive).
	before := s3.Requests()
	res, err := FindTrace(ctx, b, metas, block.TraceID{1, 2, 3}, FindOptions{})
	if err != nil || res.Found {
		t.Fatalf("absent trace: found=%v err=%v", res.Found, err)
	}
	reads := s3.Requests() - before
	if res.Stats.BloomNegatives != 3 || reads != 3 {
		t.Errorf("absent trace: %d reads, %d bloom negatives; want 3 and 3", reads, res.Stats.BloomNegatives)
	}
}

// TestBloomCache: with a cache, a repeated lookup reads no bloom shard, and
// the cache stays within its size.
func TestBloomCache(t *testing.T) {
	ctx := context.Background()
	b, _ := copyFixtureBucket(t, "vparquet4")
	l, _ := List(ctx, b, block.DefaultTenant, ListOptions{})
	var metas []*block.Meta
	for _, bi := range l.Blocks {
		metas = append(metas, bi.Meta)
	}
	cache := NewBloomCache(1 << 20)
	id, _ := block.ParseTraceID(otlptest.IDOf("P00"))
	res, err := FindTrace(ctx, b, metas, id, FindOptions{Blooms: cache})
	if err != nil || !res.Found || cache.Len() != 3 {
		t.Fatalf("first lookup: found=%v err=%v cached=%d", res.Found, err, cache.Len())
	}
	before := b.Requests()
	res, err = FindTrace(ctx, b, metas, block.TraceID{9, 9}, FindOptions{Blooms: cache})
	if err != nil || res.Found {
		t.Fatal(err)
	}
	if reads := b.Requests() - before; reads != 0 {
		t.Errorf("absent trace with warm bloom cache: %d reads, want 0", reads)
	}
	small := NewBloomCache(150_000) // room for one shard
	FindTrace(ctx, b, metas, id, FindOptions{Blooms: small})
	if small.Len() != 1 {
		t.Errorf("cache of one shard's size holds %d", small.Len())
	}
}
