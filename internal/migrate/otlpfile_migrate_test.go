package migrate

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/tracectl/tracectl/internal/blocks"
	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/otlptest"
	"github.com/tracectl/tracectl/internal/storage"
	"github.com/tracectl/tracectl/internal/storage/storagetest"
)

func openMem(t *testing.T) *storage.Bucket {
	b := storagetest.OpenMem(t)
	return b
}

// findAll looks every corpus trace up in the bucket and compares it.
func findAll(t *testing.T, b *storage.Bucket, corpus *otlptest.Corpus) {
	t.Helper()
	ctx := context.Background()
	l, err := blocks.List(ctx, b, block.DefaultTenant, blocks.ListOptions{})
	if err != nil || len(l.Problems) > 0 {
		t.Fatalf("list: %v %v", err, l.Problems)
	}
	var metas []*block.Meta
	for _, bi := range l.Blocks {
		metas = append(metas, bi.Meta)
	}
	for _, hex := range corpus.IDs {
		id, _ := block.ParseTraceID(hex)
		res, err := blocks.FindTrace(ctx, b, metas, id, blocks.FindOptions{})
		if err != nil || !res.Found {
			t.Errorf("%s not found: %v", otlptest.Label(hex), err)
			continue
		}
		otlptest.AssertEqual(t, corpus.ByID[hex], res.Trace, otlptest.MaxDiffs(5))
	}
}

func TestMigrateOTLPFilesCorpus(t *testing.T) {
	corpus := otlptest.LoadCorpus(t)
	path := corpusFile(t)
	for _, maxBytes := range []int64{0, 20_000} { // one block; many small blocks
		b := storagetest.OpenMem(t)
		s, err := MigrateOTLPFiles(context.Background(), OTLPFileOptions{
			Paths: []string{path}, Bucket: b, Tenant: block.DefaultTenant, MaxBlockBytes: maxBytes, MaxErrors: -1,
		})
		if err != nil {
			t.Fatal(err)
		}
		if s.SpansRead != corpusSpansSent || s.SpansWritten != s.SpansRead || s.Skipped != 0 {
			t.Errorf("max %d: summary %+v", maxBytes, s)
		}
		if maxBytes == 0 && len(s.Blocks) != 1 {
			t.Errorf("default budget cut %d blocks, want 1", len(s.Blocks))
		}
		if maxBytes > 0 && len(s.Blocks) < 5 {
			t.Errorf("20 kB budget cut only %d blocks", len(s.Blocks))
		}
		findAll(t, b, corpus)
	}
}

func corpusFile(t *testing.T) string {
	t.Helper()
	lines := corpusLines(t)
	p := filepath.Join(t.TempDir(), "corpus.jsonl")
	if err := os.WriteFile(p, bytes.Join(lines, []byte("\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestMigrateOTLPFilesBadInputAndLimits(t *testing.T) {
	lines := corpusLines(t)
	dir := t.TempDir()
	p := filepath.Join(dir, "mixed.jsonl")
	os.WriteFile(p, bytes.Join([][]byte{lines[0], []byte("garbage"), lines[1], []byte("{bad"), lines[2]}, []byte("\n")), 0o644)

	b := storagetest.OpenMem(t)
	s, err := MigrateOTLPFiles(context.Background(), OTLPFileOptions{Paths: []string{p}, Bucket: b, Tenant: "t1", MaxErrors: -1})
	if err != nil {
		t.Fatal(err)
	}
	if s.Skipped != 2 || s.Messages != 3 || s.SpansWritten != s.SpansRead || len(s.Blocks) != 1 {
		t.Errorf("summary %+v", s)
	}
	if s.SkippedFirst[0].Line != 2 || s.SkippedFirst[1].Line != 4 {
		t.Errorf("skipped lines %+v", s.SkippedFirst)
	}

	// --max-errors 1: stops at the second bad line, still writes what it read.
	b = storagetest.OpenMem(t)
	s, err = MigrateOTLPFiles(context.Background(), OTLPFileOptions{Paths: []string{p}, Bucket: b, Tenant: "t1", MaxErrors: 1})
	if !errors.Is(err, ErrTooManyErrors) {
		t.Fatalf("err = %v, want ErrTooManyErrors", err)
	}
	if s.Messages != 2 || s.SpansWritten != s.SpansRead || len(s.Blocks) != 1 {
		t.Errorf("accepted data not written before stopping: %+v", s)
	}
	// Blocks go to the tenant asked for.
	ids, _ := blocks.BlockIDs(context.Background(), b, "t1")
	if len(ids) != 1 {
		t.Errorf("tenant t1 has %d blocks", len(ids))
	}
}
