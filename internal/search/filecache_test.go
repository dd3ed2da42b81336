package search

import (
	"context"
	"slices"
	"testing"

	"github.com/google/uuid"

	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/blocks/vparquet4"
	"github.com/tracectl/tracectl/internal/storage"
)

// TestFileCacheBudget checks that the footer cache holds blocks within its
// byte budget, dropping the least recently used first, so that a server
// storing a block every few seconds while queries run keeps a bounded heap.
func TestFileCacheBudget(t *testing.T) {
	ctx := context.Background()
	b, err := storage.Open(ctx, "mem://")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	meta := func(footer uint32) *block.Meta {
		return &block.Meta{TenantID: "t", BlockID: uuid.New(), Size: 17 << 20, FooterSize: footer}
	}
	const footer = 380 << 10
	cost := footerCost(meta(footer))
	if want := int64(7 * footer * vparquet4.MaxIdleFiles); cost != want {
		t.Fatalf("cost of a 380 KB footer = %d, want %d", cost, want)
	}
	c := newFileCache(b, 3*cost)
	ms := []*block.Meta{meta(footer), meta(footer), meta(footer), meta(footer)}
	cached := func() []string {
		var keys []string
		for k := range c.m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		return keys
	}
	want := func(ms ...*block.Meta) []string {
		var keys []string
		for _, m := range ms {
			keys = append(keys, m.String())
		}
		slices.Sort(keys)
		return keys
	}

	a := c.get(ctx, ms[0])
	c.get(ctx, ms[1])
	c.get(ctx, ms[2])
	if got := c.get(ctx, ms[0]); got != a {
		t.Error("a cached block was opened again")
	}
	c.get(ctx, ms[3]) // over the budget: ms[1], least recently used, goes
	if got, w := cached(), want(ms[0], ms[2], ms[3]); !slices.Equal(got, w) {
		t.Errorf("cached %v, want %v (LRU eviction)", got, w)
	}
	if c.used > c.budget || c.used != 3*cost {
		t.Errorf("used %d of %d, want %d", c.used, c.budget, 3*cost)
	}

	// A block whose footer alone is over the budget is read, not cached.
	big := meta(uint32(c.budget))
	if c.get(ctx, big) == nil {
		t.Fatal("no reader for a block over the budget")
	}
	if _, ok := c.m[big.String()]; ok || c.used > c.budget {
		t.Errorf("a block over the budget was cached (used %d of %d)", c.used, c.budget)
	}

	// A thousand blocks through the cache: it never holds more than the budget.
	for range 1000 {
		c.get(ctx, meta(footer))
		if c.used > c.budget || len(c.m) != c.lru.Len() {
			t.Fatalf("used %d of %d, %d keys, %d entries", c.used, c.budget, len(c.m), c.lru.Len())
		}
	}
	if len(c.m) != 3 {
		t.Errorf("%d blocks cached after 1000, want 3", len(c.m))
	}
}
