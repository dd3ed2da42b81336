package compact

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tracectl/tracectl/internal/blocks"
	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/otlptest"
	"github.com/tracectl/tracectl/internal/storage"
	"github.com/tracectl/tracectl/internal/storage/storagetest"
	"github.com/tracectl/tracectl/internal/testfix"
)

// fixtureInto copies a fixture bucket's tenant into b under tenant
// (default: the fixture's own).
func fixtureInto(t testing.TB, b *storage.Bucket, name, tenantID string) {
	t.Helper()
	root := testfix.Path(t, "tempo", name, block.DefaultTenant)
	if tenantID == "" {
		tenantID = block.DefaultTenant
	}
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if d.Name() == block.MetaName || d.Name() == block.CompactedMetaName {
			// A block's meta names its tenant: rewrite it for the copy.
			m, err := block.ParseMeta(p, data)
			if err != nil {
				return err
			}
			m.TenantID = tenantID
			data, _ = m.MarshalJSON()
		}
		return b.Write(context.Background(), tenantID+"/"+filepath.ToSlash(rel), data)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// fixtureBucket is a mem bucket holding a copy of a fixture bucket.
func fixtureBucket(t testing.TB, name string) *storage.Bucket {
	b := storagetest.OpenMem(t)
	fixtureInto(t, b, name, "")
	return b
}

// liveMetas lists the live blocks of a tenant.
func liveMetas(t testing.TB, b *storage.Bucket, tenantID string) []*block.Meta {
	t.Helper()
	l, err := blocks.List(context.Background(), b, tenantID, blocks.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Problems) > 0 {
		t.Fatalf("listing problems: %v", l.Problems)
	}
	var out []*block.Meta
	for _, bi := range l.Blocks {
		out = append(out, bi.Meta)
	}
	return out
}

// distinctSpans counts spans by ID + kind, as readers de-duplicate.
func distinctSpans(td ptrace.Traces) int {
	seen := map[string]bool{}
	for _, rs := range td.ResourceSpans().All() {
		for _, ss := range rs.ScopeSpans().All() {
			for _, sp := range ss.Spans().All() {
				seen[fmt.Sprintf("%x/%d", sp.SpanID(), sp.Kind())] = true
			}
		}
	}
	return len(seen)
}

// assertQueryable looks every corpus trace up in the tenant's live blocks,
// as `tracectl get` does: each must be complete, equal to what was sent,
// and without a repeated span.
func assertQueryable(t testing.TB, b *storage.Bucket, tenantID string, c *otlptest.Corpus) {
	t.Helper()
	metas := liveMetas(t, b, tenantID)
	var bad []string
	for hex, want := range c.ByID {
		id, _ := block.ParseTraceID(hex)
		res, err := blocks.FindTrace(context.Background(), b, metas, id, blocks.FindOptions{})
		if err != nil {
			t.Fatalf("finding %s: %v", otlptest.Label(hex), err)
		}
		if !res.Found {
			bad = append(bad, otlptest.Label(hex)+" not found")
			continue
		}
		if diffs := otlptest.Diff(want, res.Trace); len(diffs) > 0 {
			bad = append(bad, otlptest.Label(hex)+": "+strings.Join(diffs, "; "))
		}
		if got, want := res.Trace.SpanCount(), distinctSpans(want); got != want {
			bad = append(bad, fmt.Sprintf("%s: %d spans returned, %d distinct sent", otlptest.Label(hex), got, want))
		}
	}
	if len(bad) > 0 {
		t.Errorf("%d of %d traces wrong in %d live blocks:\n  %s", len(bad), len(c.ByID), len(metas), strings.Join(bad, "\n  "))
	}
}
