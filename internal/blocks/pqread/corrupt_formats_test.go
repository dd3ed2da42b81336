package pqread_test

import (
	"context"
	"errors"
	"iter"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/blocks/pqread"
	"github.com/tracectl/tracectl/internal/blocks/pqread/pqreadtest"
	"github.com/tracectl/tracectl/internal/blocks/vparquet3"
	"github.com/tracectl/tracectl/internal/blocks/vparquet5"
	"github.com/tracectl/tracectl/internal/otlptest"
	"github.com/tracectl/tracectl/internal/storage"
	"github.com/tracectl/tracectl/internal/storage/storagetest"
	"github.com/tracectl/tracectl/internal/testfix"
)

// reader is what the corrupt-input tests need of a format's block.
type reader interface {
	Iterate(ctx context.Context) iter.Seq2[*pqread.Trace, error]
	FindTraceByID(ctx context.Context, id block.TraceID) (ptrace.Traces, bool, error)
}

// formats are the formats read through pqread, by fixture directory.
var formats = []struct {
	dir  string
	open func(ctx context.Context, b *storage.Bucket, m *block.Meta) reader
}{
	{"vparquet3", func(ctx context.Context, b *storage.Bucket, m *block.Meta) reader {
		return vparquet3.OpenBlock(ctx, b, m)
	}},
	{"vparquet5", func(ctx context.Context, b *storage.Bucket, m *block.Meta) reader {
		return vparquet5.OpenBlock(ctx, b, m)
	}},
}

// fixtureMetas returns the metas of a fixture bucket, smallest data first.
func fixtureMetas(t *testing.T, dir string) []block.Meta {
	t.Helper()
	metas := pqreadtest.FixtureMetas(t, dir)
	sort.Slice(metas, func(i, j int) bool { return metas[i].Size < metas[j].Size })
	return metas
}

// memBlock puts a fixture block into a fresh in-memory bucket, with
// data.parquet replaced by data (nil: left out).
func memBlock(t *testing.T, dir string, m block.Meta, data []byte) *storage.Bucket {
	t.Helper()
	ctx := context.Background()
	b := storagetest.OpenMem(t)
	src := testfix.Path(t, "tempo", dir, m.TenantID, m.BlockID.String())
	for _, name := range []string{block.MetaName, block.BloomName(0), block.IndexName} {
		raw, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Write(ctx, block.ObjectKey(m.TenantID, m.BlockID, name), raw); err != nil {
			t.Fatal(err)
		}
	}
	if data != nil {
		if err := b.Write(ctx, block.DataKey(m.TenantID, m.BlockID), data); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

func fixtureData(t *testing.T, dir string, m block.Meta) []byte {
	t.Helper()
	data, err := os.ReadFile(testfix.Path(t, "tempo", dir, m.TenantID, m.BlockID.String(), block.DataName))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// readEverything iterates the block and looks up some corpus IDs,
// returning the first error.
func readEverything(blk reader) error {
	ctx := context.Background()
	var first error
	for _, err := range blk.Iterate(ctx) {
		if err != nil {
			first = err
			break
		}
	}
	for _, label := range []string{"P00", "P05", "P04", "P39", "P28"} {
		id, _ := block.ParseTraceID(otlptest.IDOf(label))
		if _, _, err := blk.FindTraceByID(ctx, id); err != nil && first == nil {
			first = err
		}
	}
	return first
}

func checkNamesBlock(t *testing.T, err error, m block.Meta) {
	t.Helper()
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	if !strings.Contains(msg, m.BlockID.String()) || !strings.Contains(msg, block.DataName) {
		t.Errorf("error does not name block and object: %v", err)
	}
}

func TestTruncatedData(t *testing.T) {
	for _, f := range formats {
		t.Run(f.dir, func(t *testing.T) {
			m := fixtureMetas(t, f.dir)[0]
			data := fixtureData(t, f.dir, m)
			ctx := context.Background()
			for _, n := range []int{0, 4, 100, len(data) / 2, len(data) - 9, len(data) - 1} {
				bucket := memBlock(t, f.dir, m, data[:n])
				// As meta.json says (size mismatch) …
				checkNamesBlock(t, readEverything(f.open(ctx, bucket, &m)), m)
				// … and without a size, so the parquet reader meets the damage.
				m0 := m
				m0.Size = 0
				checkNamesBlock(t, readEverything(f.open(ctx, bucket, &m0)), m0)
			}
		})
	}
}

func TestMissingData(t *testing.T) {
	for _, f := range formats {
		t.Run(f.dir, func(t *testing.T) {
			m := fixtureMetas(t, f.dir)[0]
			err := readEverything(f.open(context.Background(), memBlock(t, f.dir, m, nil), &m))
			checkNamesBlock(t, err, m)
			if !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("error does not match storage.ErrNotFound: %v", err)
			}
		})
	}
}

func TestWrongFormat(t *testing.T) {
	for _, f := range formats {
		t.Run(f.dir, func(t *testing.T) {
			m := fixtureMetas(t, f.dir)[0]
			bucket := memBlock(t, f.dir, m, fixtureData(t, f.dir, m))
			m.Format = block.FormatVParquet4
			err := readEverything(f.open(context.Background(), bucket, &m))
			if err == nil || !strings.Contains(err.Error(), m.BlockID.String()) {
				t.Errorf("err = %v", err)
			}
		})
	}
}

// TestDamagedBytesNeverPanic flips bytes all over data.parquet: reading may
// fail or (for bytes inside values) succeed with other values, but must not
// panic, and errors must name the block.
func TestDamagedBytesNeverPanic(t *testing.T) {
	for _, f := range formats {
		t.Run(f.dir, func(t *testing.T) {
			m := fixtureMetas(t, f.dir)[0] // the smallest file
			orig := fixtureData(t, f.dir, m)
			ctx := context.Background()
			step := len(orig) / 60
			if testing.Short() {
				step = len(orig) / 20
			}
			failed := 0
			for pos := 0; pos < len(orig); pos += step {
				data := append([]byte(nil), orig...)
				data[pos] ^= 0xff
				bucket := memBlock(t, f.dir, m, data)
				func() {
					defer func() {
						if r := recover(); r != nil {
							t.Fatalf("byte %d flipped: panic: %v", pos, r)
						}
					}()
					if err := readEverything(f.open(ctx, bucket, &m)); err != nil {
						failed++
						if !strings.Contains(err.Error(), m.BlockID.String()) {
							t.Errorf("byte %d flipped: error does not name the block: %v", pos, err)
						}
					}
				}()
			}
			if failed == 0 {
				t.Errorf("no damaged file gave an error")
			}
			t.Logf("%d of %d damaged files gave errors", failed, len(orig)/step+1)
		})
	}
}
