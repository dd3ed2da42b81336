package jaegeres

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tracectl/tracectl/internal/storage"
)

// CheckpointVersion is the format of the checkpoint file.
const CheckpointVersion = 1

// BucketCheckpointPrefix marks a --checkpoint that is an object key in the
// target bucket ("bucket:migrations/jaeger.json") rather than a local path.
const BucketCheckpointPrefix = "bucket:"

// checkpoint is the durable state of a migration. It is saved only after
// the blocks it accounts for are stored (meta.json written); a block being
// written is recorded first as Pending, so a run killed between the
// block's meta.json and the next save adopts it instead of writing its
// spans twice.
type checkpoint struct {
	Version     int       `json:"version"`
	Fingerprint string    `json:"fingerprint"`
	Params      params    `json:"params"`
	Started     time.Time `json:"started"`
	Updated     time.Time `json:"updated"`
	// After: every document whose stored traceID is ≤ After is accounted
	// for (in a stored block, a duplicate, or skipped).
	After string `json:"after"`
	Done  bool   `json:"done"`
	// Claimed are stored traceID forms > After whose documents were
	// already written with another form of the same trace.
	Claimed []string `json:"claimed,omitempty"`
	Stats   stats    `json:"stats"`
	Pending *pending `json:"pending,omitempty"`
	// Sample is a reservoir of written trace IDs for --verify.
	Sample []string `json:"sample,omitempty"`
	Seen   int64    `json:"seen"` // traces offered to the reservoir
}

type pending struct {
	BlockID string   `json:"blockID"`
	After   string   `json:"after"`
	Claimed []string `json:"claimed,omitempty"`
	Stats   stats    `json:"stats"`
}

// params identify a migration: resuming with other ones is refused.
type params struct {
	URLs           string    `json:"urls"`
	Bucket         string    `json:"bucket"`
	Tenant         string    `json:"tenant"`
	Prefixes       []string  `json:"prefixes"`
	DateSeparator  string    `json:"dateSeparator"`
	UseAliases     bool      `json:"useAliases,omitempty"`
	IncludeArchive bool      `json:"includeArchive,omitempty"`
	Since          time.Time `json:"since,omitzero"`
	Until          time.Time `json:"until,omitzero"`
	Services       []string  `json:"services,omitempty"`
}

func (p params) fingerprint() string {
	b, _ := json.Marshal(p)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// stats are additive counters, per index and in total.
type stats struct {
	Indices  map[string]*IndexStats `json:"indices"`
	Blocks   []string               `json:"blocks"`
	Bytes    uint64                 `json:"bytes"`
	Traces   int64                  `json:"traces"`
	Skipped  []SkippedDoc           `json:"skippedDocs"`
	NSkipped int64                  `json:"skipped"`
}

// IndexStats accounts for one index: Read = Written + Duplicates + Skipped.
// Related of those Read are outside the selection's _count: spans of other
// services read to complete the traces --services selected.
type IndexStats struct {
	Read       int64 `json:"read"`
	Written    int64 `json:"written"`
	Duplicates int64 `json:"duplicates"`
	Skipped    int64 `json:"skipped"`
	Related    int64 `json:"related,omitempty"`
}

// SkippedDoc is a document that could not be decoded.
type SkippedDoc struct {
	Index  string `json:"index"`
	ID     string `json:"id"`
	Reason string `json:"reason"`
}

func (s SkippedDoc) String() string { return s.Index + "/" + s.ID + ": " + s.Reason }

// maxReportedSkips bounds the skipped documents kept; all are counted.
const maxReportedSkips = 100

func (s *stats) index(name string) *IndexStats {
	if s.Indices == nil {
		s.Indices = map[string]*IndexStats{}
	}
	st := s.Indices[name]
	if st == nil {
		st = &IndexStats{}
		s.Indices[name] = st
	}
	return st
}

func (s *stats) skip(d SkippedDoc) {
	s.index(d.Index).Skipped++
	s.NSkipped++
	if len(s.Skipped) < maxReportedSkips {
		s.Skipped = append(s.Skipped, d)
	}
}

func (s *stats) add(o *stats) {
	for n, st := range o.Indices {
		t := s.index(n)
		t.Read += st.Read
		t.Written += st.Written
		t.Duplicates += st.Duplicates
		t.Skipped += st.Skipped
		t.Related += st.Related
	}
	s.Blocks = append(s.Blocks, o.Blocks...)
	s.Bytes += o.Bytes
	s.Traces += o.Traces
	s.NSkipped += o.NSkipped
	for _, d := range o.Skipped {
		if len(s.Skipped) < maxReportedSkips {
			s.Skipped = append(s.Skipped, d)
		}
	}
}

func (s *stats) total() IndexStats {
	var t IndexStats
	for _, st := range s.Indices {
		t.Read += st.Read
		t.Written += st.Written
		t.Duplicates += st.Duplicates
		t.Skipped += st.Skipped
		t.Related += st.Related
	}
	return t
}

// checkpointStore keeps the checkpoint in a local file or a bucket object.
type checkpointStore struct {
	path   string // local file
	bucket *storage.Bucket
	key    string
}

func newCheckpointStore(spec string, b *storage.Bucket) (*checkpointStore, error) {
	if key, ok := strings.CutPrefix(spec, BucketCheckpointPrefix); ok {
		key = strings.TrimLeft(key, "/")
		if key == "" || strings.Contains(key, "..") {
			return nil, fmt.Errorf("--checkpoint %q: want bucket:KEY with a plain object key", spec)
		}
		return &checkpointStore{bucket: b, key: key}, nil
	}
	if spec == "" {
		return nil, nil
	}
	return &checkpointStore{path: spec}, nil
}

func (c *checkpointStore) String() string {
	if c.bucket != nil {
		return c.key + " in " + c.bucket.String()
	}
	return c.path
}

// load returns nil when there is no checkpoint yet.
func (c *checkpointStore) load(ctx context.Context) (*checkpoint, error) {
	var data []byte
	var err error
	if c.bucket != nil {
		data, err = c.bucket.Read(ctx, c.key)
		if errors.Is(err, storage.ErrNotFound) {
			return nil, nil
		}
	} else {
		data, err = os.ReadFile(c.path)
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("reading checkpoint %s: %w", c, err)
	}
	var cp checkpoint
	if err := json.Unmarshal(data, &cp); err != nil {
		return nil, fmt.Errorf("checkpoint %s is not valid JSON (%v); remove it to start over", c, err)
	}
	if cp.Version != CheckpointVersion {
		return nil, fmt.Errorf("checkpoint %s has format %d, this tracectl writes %d; remove it to start over", c, cp.Version, CheckpointVersion)
	}
	return &cp, nil
}

// save stores the checkpoint atomically (a local file is written beside
// and renamed, after fsync).
func (c *checkpointStore) save(ctx context.Context, cp *checkpoint) error {
	cp.Updated = time.Now().UTC()
	data, err := json.MarshalIndent(cp, "", "  ")
	if err != nil {
		return err
	}
	if c.bucket != nil {
		if err := c.bucket.Write(ctx, c.key, data); err != nil {
			return fmt.Errorf("saving checkpoint %s: %w", c, err)
		}
		return nil
	}
	if err := writeFileAtomic(c.path, data); err != nil {
		return fmt.Errorf("saving checkpoint %s: %w", c, err)
	}
	return nil
}

func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".checkpoint-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
