package blocks

import (
	"context"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/otlptest"
)

// TestFindEveryCorpusTraceInEveryFixtureBucket looks every corpus trace up
// by ID in each real Tempo bucket through the format dispatch, bloom
// filters and combining, and compares it with what was sent.
func TestFindEveryCorpusTraceInEveryFixtureBucket(t *testing.T) {
	ctx := context.Background()
	corpus := otlptest.LoadCorpus(t)
	for _, name := range []string{"vparquet4", "vparquet4-compacted", "vparquet5", "vparquet3"} {
		t.Run(name, func(t *testing.T) {
			b, _ := copyFixtureBucket(t, name)
			l, err := List(ctx, b, block.DefaultTenant, ListOptions{})
			if err != nil || len(l.Problems) > 0 {
				t.Fatalf("list: %v %v", err, l.Problems)
			}
			metas := make([]*block.Meta, len(l.Blocks))
			for i, bi := range l.Blocks {
				metas[i] = bi.Meta
			}
			for _, hex := range corpus.IDs {
				id, _ := block.ParseTraceID(hex)
				res, err := FindTrace(ctx, b, metas, id, FindOptions{})
				if err != nil || !res.Found {
					t.Errorf("%s (%s): found=%v err=%v", otlptest.Label(hex), hex, res != nil && res.Found, err)
					continue
				}
				want := corpus.ByID[hex]
				if name == "vparquet3" {
					// vParquet3 stores less (no scope attributes, no bytes
					// values: TEMPO-FORMAT §6); package vparquet3 compares
					// its content in detail. Here: the same distinct spans.
					if w, g := distinctSpans(want), distinctSpans(res.Trace); w != g {
						t.Errorf("%s: %d distinct spans, want %d", otlptest.Label(hex), g, w)
					}
				} else if diffs := otlptest.Diff(want, res.Trace); len(diffs) > 0 && !knownFormatLoss(name, diffs) {
					t.Errorf("%s (%s) differs from the corpus:\n%v", otlptest.Label(hex), hex, diffs)
				}
				// A trace split across blocks (P03 in level-0 buckets) comes
				// from two blocks; bloom filters keep the others untouched.
				if res.Stats.BlocksRead > res.Stats.BlocksFound+1 {
					t.Errorf("%s: read %d blocks, found in %d: bloom filters not used", otlptest.Label(hex), res.Stats.BlocksRead, res.Stats.BlocksFound)
				}
			}
		})
	}
}

func distinctSpans(td ptrace.Traces) int {
	seen := map[spanKey]bool{}
	for _, rs := range td.ResourceSpans().All() {
		for _, ss := range rs.ScopeSpans().All() {
			for _, sp := range ss.Spans().All() {
				seen[spanKey{sp.SpanID(), sp.Kind()}] = true
			}
		}
	}
	return len(seen)
}

// knownFormatLoss accepts exactly the differences a format cannot avoid:
// vParquet5 stores a one-element array in a dedicated column as one value
// and reads it back as a scalar (TEMPO-FORMAT §7); P15 sends url.route so.
func knownFormatLoss(format string, diffs []string) bool {
	return format == "vparquet5" && len(diffs) == 1 &&
		strings.HasSuffix(diffs[0], `"wrong types 2": attr[url.route]: want array[str "/x"], got str "/x"`)
}
