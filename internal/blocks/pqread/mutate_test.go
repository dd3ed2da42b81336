package pqread

import (
	"context"
	"math/rand"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/storage"
	"github.com/tracectl/tracectl/internal/testfix"
)

// TestMutatedFilesFailCleanly damages a real vParquet5 data.parquet in
// deterministic random ways (changed, inserted and deleted bytes) and reads
// each result: every read must end in rows or in an error naming the block,
// never in a panic, and must not allocate more than a bounded amount (a
// damaged page header or level run once made parquet-go allocate
// gigabytes). PQREAD_MUTATIONS=n runs n inputs instead of 300.
func TestMutatedFilesFailCleanly(t *testing.T) {
	dir := filepath.Join(testfix.Dir(t), "tempo", "vparquet5", block.DefaultTenant, "fc031651-caec-4ca4-b698-6cd434b2ac5d")
	raw, err := os.ReadFile(filepath.Join(dir, block.DataName))
	if err != nil {
		testfix.Missing(t, err.Error())
	}
	metaRaw, err := os.ReadFile(filepath.Join(dir, block.MetaName))
	if err != nil {
		t.Fatal(err)
	}
	meta, err := block.ParseMeta("meta.json", metaRaw)
	if err != nil {
		t.Fatal(err)
	}
	n := 300
	if s := os.Getenv("PQREAD_MUTATIONS"); s != "" {
		if n, err = strconv.Atoi(s); err != nil {
			t.Fatal(err)
		}
	}
	const maxAlloc = 128 << 20
	rng := rand.New(rand.NewSource(1))
	ctx := context.Background()
	for i := 0; i < n; i++ {
		data := append([]byte(nil), raw...)
		for k := 0; k < 1+rng.Intn(4); k++ {
			p := rng.Intn(len(data))
			switch rng.Intn(5) {
			case 0:
				data[p] ^= byte(1 << rng.Intn(8))
			case 1:
				data[p] = byte(rng.Intn(256))
			case 2:
				data[p] = 0xff
			case 3:
				ins := make([]byte, 1+rng.Intn(8))
				rng.Read(ins)
				data = append(data[:p], append(ins, data[p:]...)...)
			case 4:
				if d := 1 + rng.Intn(16); p+d < len(data) {
					data = append(data[:p], data[p+d:]...)
				}
			}
		}
		b, err := storage.Open(ctx, "mem://")
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Write(ctx, block.DataKey(meta.TenantID, meta.BlockID), data); err != nil {
			t.Fatal(err)
		}
		m := *meta
		m.Size, m.FooterSize = 0, 0 // no trailer check: the parquet reader meets the damage
		d := NewDataFile(b, m)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Fatalf("input %d: panic: %v", i, r)
				}
			}()
			for _, err := range d.Rows(ctx) {
				if err != nil {
					if !strings.Contains(err.Error(), meta.BlockID.String()) {
						t.Errorf("input %d: error does not name the block: %v", i, err)
					}
					break
				}
			}
			_, _ = d.FindRow(ctx, block.TraceID{0x30}, func(*Group) error { return nil })
		}()
		runtime.ReadMemStats(&after)
		if a := after.TotalAlloc - before.TotalAlloc; a > maxAlloc {
			t.Errorf("input %d: reading allocated %d MiB", i, a>>20)
		}
		b.Close()
	}
}
