package vparquet3

import (
	"context"
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
	pqreadtest.FixturesMatchCorpus(t, "vparquet3", open, expected)
}

func TestFindTraceByID(t *testing.T) {
	pqreadtest.FindTraceByID(t, "vparquet3", open, expected)
}

func TestFindTraceByIDLeadingZeros(t *testing.T) {
	pqreadtest.FindTraceByIDLeadingZeros(t, "vparquet3", open)
}

// expected returns what a vParquet3 block keeps of td (§6), spelled out
// here rather than loosening the comparison:
//   - scopes keep name and version only: no attributes, no dropped count;
//   - resources have no dropped-attributes count;
//   - a generic resource or span attribute with a bytes value keeps only
//     its key (it reads back as an empty value). Bytes nested in kvlists or
//     arrays survive inside their JSON, and event attributes and links are
//     protobuf, so those keep bytes.
func expected(t *testing.T, td ptrace.Traces, _ []block.Meta) ptrace.Traces {
	t.Helper()
	dropBytes := func(m pcommon.Map) {
		m.Range(func(_ string, v pcommon.Value) bool {
			if v.Type() == pcommon.ValueTypeBytes {
				pcommon.NewValueEmpty().CopyTo(v)
			}
			return true
		})
	}
	out := otlptest.Merge(td)
	rss := out.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		res := rss.At(i).Resource()
		res.SetDroppedAttributesCount(0)
		dropBytes(res.Attributes())
		for j := 0; j < rss.At(i).ScopeSpans().Len(); j++ {
			ss := rss.At(i).ScopeSpans().At(j)
			ss.Scope().Attributes().Clear()
			ss.Scope().SetDroppedAttributesCount(0)
			for k := 0; k < ss.Spans().Len(); k++ {
				dropBytes(ss.Spans().At(k).Attributes())
			}
		}
	}
	return out
}
