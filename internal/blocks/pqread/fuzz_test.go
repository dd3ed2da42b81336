package pqread

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/storage/storagetest"
	"github.com/tracectl/tracectl/internal/testfix"
)

// The decoders of values read from blocks must fail cleanly, never panic.

func FuzzAnyValueFromJSON(f *testing.F) {
	for _, s := range []string{`{"kvlistValue":{}}`, `{"bytesValue":"3q2+7wAB"}`, `{"arrayValue":{"values":[{"intValue":"1"}]}}`, `{`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		_ = AnyValueFromJSON(data, pcommon.NewValueEmpty())
	})
}

func FuzzAnyValueFromProtoOrJSON(f *testing.F) {
	for _, s := range [][]byte{{0x0a, 0x01, 'x'}, {0x18, 0x07}, {0x2a, 0x00}, []byte(`{"stringValue":"x"}`)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		_ = AnyValueFromProtoOrJSON(data, pcommon.NewValueEmpty())
	})
}

func FuzzLinksFromProto(f *testing.F) {
	f.Add([]byte{0x0a, 0x02, 0x12, 0x00})
	f.Add([]byte{0x0a, 0x10})
	f.Fuzz(func(t *testing.T, data []byte) {
		_ = LinksFromProto(data, ptrace.NewSpanLinkSlice())
	})
}

// FuzzDataFile reads arbitrary bytes as a block's data.parquet (seeded with
// a real vParquet5 file): iteration and lookups must end in an error or in
// rows, never in a panic.
func FuzzDataFile(f *testing.F) {
	dir := filepath.Join(testfix.Dir(f), "tempo", "vparquet5", block.DefaultTenant, "fc031651-caec-4ca4-b698-6cd434b2ac5d")
	raw, err := os.ReadFile(filepath.Join(dir, block.DataName))
	if err != nil {
		testfix.Missing(f, err.Error())
	}
	metaRaw, err := os.ReadFile(filepath.Join(dir, block.MetaName))
	if err != nil {
		f.Fatal(err)
	}
	meta, err := block.ParseMeta("meta.json", metaRaw)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	f.Add(raw[:len(raw)/2])
	f.Fuzz(func(t *testing.T, data []byte) {
		ctx := context.Background()
		b := storagetest.OpenMem(t)
		if err := b.Write(ctx, block.DataKey(meta.TenantID, meta.BlockID), data); err != nil {
			t.Fatal(err)
		}
		m := *meta
		m.Size, m.FooterSize = 0, 0 // let the parquet reader meet the damage
		d := NewDataFile(b, m)
		for _, err := range d.Rows(ctx) {
			if err != nil {
				break
			}
		}
		_, _ = d.FindRow(ctx, block.TraceID{0x30}, func(*Group) error { return nil })
	})
}
