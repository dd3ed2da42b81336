package blocks

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/tracectl/tracectl/internal/blocks/block"
)

func TestInspectFixtureBlock(t *testing.T) {
	ctx := context.Background()
	b, dir := copyFixtureBucket(t, "vparquet4-compacted")
	id := uuid.MustParse("8638efc1-2742-4667-8de0-8bae4bda7236")
	in, err := Inspect(ctx, b, block.DefaultTenant, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(in.Problems) != 0 {
		t.Fatalf("problems on a healthy block: %v", in.Problems)
	}
	if len(in.RowGroups) != 10 {
		t.Errorf("%d row groups, want 10", len(in.RowGroups))
	}
	var rows int64
	prevMax := ""
	for _, rg := range in.RowGroups {
		rows += rg.Rows
		if rg.MinTraceID == "" || rg.MinTraceID > rg.MaxTraceID || rg.MinTraceID <= prevMax {
			t.Errorf("row group trace ID bounds out of order: %+v after %s", rg, prevMax)
		}
		prevMax = rg.MaxTraceID
	}
	if rows != in.Info.Meta.TotalObjects {
		t.Errorf("rows %d, meta totalObjects %d", rows, in.Info.Meta.TotalObjects)
	}
	if len(in.Columns) != 103 || in.Columns[0].Path != "TraceID" {
		t.Errorf("%d columns (want 103), first %q", len(in.Columns), in.Columns[0].Path)
	}
	var sum int64
	for _, c := range in.Columns {
		sum += c.CompressedSize
	}
	if sum <= 0 || uint64(sum) >= in.Info.Meta.Size {
		t.Errorf("column bytes %d vs file %d", sum, in.Info.Meta.Size)
	}
	if len(in.Blooms) != 1 || in.Blooms[0].FalsePositiveRate <= 0 || in.Blooms[0].FalsePositiveRate > 0.01 {
		t.Errorf("bloom %+v: want one shard with 0 < fpr <= 1%%", in.Blooms)
	}
	if !strings.Contains(in.CreatedBy, "parquet-go") {
		t.Errorf("created by %q", in.CreatedBy)
	}

	// Damage: truncated data and a short bloom shard become problems.
	bdir := filepath.Join(dir, block.DefaultTenant, id.String())
	data, _ := os.ReadFile(filepath.Join(bdir, "data.parquet"))
	os.WriteFile(filepath.Join(bdir, "data.parquet"), data[:len(data)/2], 0o644)
	os.WriteFile(filepath.Join(bdir, "bloom-0"), []byte("short"), 0o644)
	in, err = Inspect(ctx, b, block.DefaultTenant, id)
	if err != nil {
		t.Fatal(err)
	}
	var objs []string
	for _, p := range in.Problems {
		objs = append(objs, p.Object)
	}
	if got := strings.Join(objs, ","); !strings.Contains(got, "data.parquet") || !strings.Contains(got, "bloom-0") {
		t.Errorf("problems %v, want data.parquet and bloom-0", in.Problems)
	}

	if _, err := Inspect(ctx, b, block.DefaultTenant, uuid.New()); err == nil {
		t.Error("inspecting a missing block gave no error")
	}
}
