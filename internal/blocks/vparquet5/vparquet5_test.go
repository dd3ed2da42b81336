package vparquet5

import (
	"context"
	"fmt"
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/blocks/pqread"
	"github.com/tracectl/tracectl/internal/blocks/pqread/pqreadtest"
	"github.com/tracectl/tracectl/internal/otlptest"
	"github.com/tracectl/tracectl/internal/storage"
)

func open(ctx context.Context, bucket *storage.Bucket, meta *block.Meta) *pqread.Reader {
	return OpenBlock(ctx, bucket, meta).Reader
}

func TestFixturesMatchCorpus(t *testing.T) {
	pqreadtest.FixturesMatchCorpus(t, "vparquet5", open, expected)
}

func TestFindTraceByID(t *testing.T) {
	pqreadtest.FindTraceByID(t, "vparquet5", open, expected)
}

func TestFindTraceByIDLeadingZeros(t *testing.T) {
	pqreadtest.FindTraceByIDLeadingZeros(t, "vparquet5", open)
}

// expected returns what a vParquet5 block keeps of td: an attribute stored
// in a dedicated column comes back as a scalar when it was a one-element
// array of the column's type (§7: one entry reads as a scalar; P15's
// url.route). Every other value round-trips, so nothing else changes.
func expected(t *testing.T, td ptrace.Traces, metas []block.Meta) ptrace.Traces {
	t.Helper()
	cols := metas[0].DedicatedColumns
	for _, m := range metas[1:] {
		if !block.DedicatedColumnsEqual(cols, m.DedicatedColumns) {
			t.Fatalf("blocks with different dedicated columns: adapt expected()")
		}
	}
	want := map[string]map[string]pcommon.ValueType{} // scope → name → element type
	for _, c := range cols {
		c = c.Normalize()
		if want[c.Scope] == nil {
			want[c.Scope] = map[string]pcommon.ValueType{}
		}
		want[c.Scope][c.Name] = pcommon.ValueTypeStr
		if c.Type == block.TypeInt {
			want[c.Scope][c.Name] = pcommon.ValueTypeInt
		}
	}
	flatten := func(m pcommon.Map, scope string) {
		m.Range(func(k string, v pcommon.Value) bool {
			typ, ok := want[scope][k]
			if ok && v.Type() == pcommon.ValueTypeSlice && v.Slice().Len() == 1 && v.Slice().At(0).Type() == typ {
				elem := pcommon.NewValueEmpty()
				v.Slice().At(0).CopyTo(elem)
				elem.CopyTo(v)
			}
			return true
		})
	}
	out := otlptest.Merge(td)
	rss := out.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		flatten(rss.At(i).Resource().Attributes(), block.ScopeResource)
		for j := 0; j < rss.At(i).ScopeSpans().Len(); j++ {
			spans := rss.At(i).ScopeSpans().At(j).Spans()
			for k := 0; k < spans.Len(); k++ {
				flatten(spans.At(k).Attributes(), block.ScopeSpan)
				for e := 0; e < spans.At(k).Events().Len(); e++ {
					flatten(spans.At(k).Events().At(e).Attributes(), block.ScopeEvent)
				}
			}
		}
	}
	return out
}

// TestConcurrentLookups shares one Block between goroutines: parsed
// footers are pooled, never used by two calls at once.
func TestConcurrentLookups(t *testing.T) {
	corpus := otlptest.LoadCorpus(t)
	bucket, metas := pqreadtest.FixtureBlocks(t, "vparquet5")
	ctx := context.Background()
	blk := OpenBlock(ctx, bucket, &metas[0])
	_, perBlock := pqreadtest.ReadAll(t, open, bucket, metas[:1])
	holds := map[string]bool{}
	for _, id := range perBlock[metas[0].BlockID.String()] {
		holds[id] = true
	}
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		go func() {
			for i := 0; i < 3; i++ {
				for _, hexID := range corpus.IDs {
					id, _ := block.ParseTraceID(hexID)
					td, found, err := blk.FindTraceByID(ctx, id)
					if err == nil && found != holds[hexID] {
						err = fmt.Errorf("%s: found = %v", otlptest.Label(hexID), found)
					}
					if err == nil && found && td.SpanCount() == 0 {
						err = fmt.Errorf("%s: no spans", otlptest.Label(hexID))
					}
					if err != nil {
						errs <- err
						return
					}
				}
			}
			errs <- nil
		}()
	}
	for g := 0; g < 8; g++ {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
