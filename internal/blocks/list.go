// Package blocks gives a bucket of Tempo blocks its meaning for the rest of
// tracectl: which tenants and blocks there are, where a trace is, and how to
// read or write a block whatever its format. The formats themselves live in
// the sub-packages (block for the shared objects, vparquet3/4/5 for
// data.parquet); this package picks the right one and combines their
// answers. It never talks to a provider directly: all bytes move through
// internal/storage.
package blocks

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/storage"
	"github.com/tracectl/tracectl/internal/tenant"
)

// BlockInfo is one block of a listing.
type BlockInfo struct {
	Meta          *block.Meta
	Compacted     bool      // only meta.compacted.json is present
	CompactedTime time.Time // when it was compacted away (object mtime or index entry)
}

// Problem is a block that could not be listed or read; the rest of the
// bucket is still usable.
type Problem struct {
	Tenant  string
	BlockID string
	Object  string // the object at fault, e.g. "meta.json"
	Err     error
}

func (p Problem) Error() string {
	return fmt.Sprintf("block %s/%s, %s: %v", p.Tenant, p.BlockID, p.Object, p.Err)
}

// ListOptions narrows a listing.
type ListOptions struct {
	// IncludeCompacted also returns blocks that were compacted away.
	IncludeCompacted bool
	// IndexMaxAge is how old a tenant index may be and still be trusted
	// instead of listing the bucket. Zero means never use the index.
	IndexMaxAge time.Duration
	// Since and Until keep blocks whose [start, end] overlaps them (zero = open).
	Since, Until time.Time
	// Concurrency bounds parallel meta reads (default 16).
	Concurrency int
	// Now is the clock, for tests (default time.Now).
	Now func() time.Time
}

// Listing is the result of List.
type Listing struct {
	Blocks    []BlockInfo // sorted by start time, then block ID
	Problems  []Problem
	FromIndex bool // true when the tenant index was used
	// Incomplete counts block directories without meta.json or
	// meta.compacted.json: blocks being written, or left by a crashed writer.
	Incomplete int
}

// List returns the blocks of tenant. A block whose meta cannot be read or
// parsed becomes a Problem; every healthy block is still listed. The error
// is non-nil only when the tenant cannot be listed at all.
func List(ctx context.Context, b *storage.Bucket, tenantID string, opts ListOptions) (*Listing, error) {
	if err := tenant.Validate(tenantID); err != nil {
		return nil, err
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 16
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	var l *Listing
	if opts.IndexMaxAge > 0 {
		ti, err := block.ReadTenantIndex(ctx, b, tenantID)
		switch {
		case err == nil && now().Sub(ti.CreatedAt) <= opts.IndexMaxAge:
			l = fromIndex(ti)
		case err != nil && !errors.Is(err, storage.ErrNotFound) && storage.KindOf(err) != storage.KindOther:
			// Storage trouble: listing would fail the same way.
			return nil, err
		}
	}
	if l == nil {
		var err error
		l, err = listBucket(ctx, b, tenantID, opts.Concurrency)
		if err != nil {
			return nil, err
		}
	}
	l.Blocks = filter(l.Blocks, opts)
	sort.Slice(l.Blocks, func(i, j int) bool {
		a, c := l.Blocks[i].Meta, l.Blocks[j].Meta
		if !a.StartTime.Equal(c.StartTime) {
			return a.StartTime.Before(c.StartTime)
		}
		return a.BlockID.String() < c.BlockID.String()
	})
	return l, nil
}

func fromIndex(ti *block.TenantIndex) *Listing {
	l := &Listing{FromIndex: true}
	for _, m := range ti.Meta {
		l.Blocks = append(l.Blocks, BlockInfo{Meta: m})
	}
	for _, c := range ti.Compacted {
		m := c.Meta
		l.Blocks = append(l.Blocks, BlockInfo{Meta: &m, Compacted: true, CompactedTime: c.CompactedTime})
	}
	return l
}

func filter(in []BlockInfo, opts ListOptions) []BlockInfo {
	out := in[:0]
	for _, bi := range in {
		if bi.Compacted && !opts.IncludeCompacted {
			continue
		}
		if !opts.Since.IsZero() && bi.Meta.EndTime.Before(opts.Since.Truncate(time.Second)) {
			continue
		}
		if !opts.Until.IsZero() && bi.Meta.StartTime.After(opts.Until) {
			continue
		}
		out = append(out, bi)
	}
	return out
}

// BlockIDs lists the block directories of tenant (names that are UUIDs).
func BlockIDs(ctx context.Context, b *storage.Bucket, tenantID string) ([]uuid.UUID, error) {
	prefix := tenantID + "/"
	var ids []uuid.UUID
	for o, err := range b.List(ctx, prefix, "/") {
		if err != nil {
			return nil, fmt.Errorf("listing blocks of tenant %s: %w", tenantID, err)
		}
		if !o.IsDir {
			continue
		}
		id, err := uuid.Parse(strings.TrimSuffix(strings.TrimPrefix(o.Key, prefix), "/"))
		if err != nil {
			continue // not a block directory
		}
		ids = append(ids, id)
	}
	return ids, nil
}

func listBucket(ctx context.Context, b *storage.Bucket, tenantID string, concurrency int) (*Listing, error) {
	ids, err := BlockIDs(ctx, b, tenantID)
	if err != nil {
		return nil, err
	}
	type result struct {
		info       *BlockInfo
		problem    *Problem
		incomplete bool
	}
	results := make([]result, len(ids))
	var wg sync.WaitGroup
	sem := make(chan struct{}, concurrency)
	for i, id := range ids {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			info, prob, err := ReadBlockMeta(ctx, b, tenantID, id)
			switch {
			case prob != nil:
				results[i].problem = prob
			case err != nil:
				results[i].incomplete = true
			default:
				results[i].info = info
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	l := &Listing{}
	for _, r := range results {
		switch {
		case r.info != nil:
			l.Blocks = append(l.Blocks, *r.info)
		case r.problem != nil:
			l.Problems = append(l.Problems, *r.problem)
		case r.incomplete:
			l.Incomplete++
		}
	}
	return l, nil
}

// errNoMeta means a block directory has neither meta object.
var errNoMeta = errors.New("block has no meta.json or meta.compacted.json")

// ReadBlockMeta reads the meta of one block: meta.json, else
// meta.compacted.json. A block with neither returns an error matching
// storage.ErrNotFound and no Problem; an unreadable or invalid meta returns
// a Problem naming the object.
func ReadBlockMeta(ctx context.Context, b *storage.Bucket, tenantID string, id uuid.UUID) (*BlockInfo, *Problem, error) {
	key := block.MetaKey(tenantID, id)
	data, err := b.Read(ctx, key)
	if err == nil {
		m, perr := block.ParseMeta(key, data)
		if perr != nil {
			return nil, &Problem{Tenant: tenantID, BlockID: id.String(), Object: block.MetaName, Err: perr}, nil
		}
		if p := checkMetaMatches(tenantID, id, block.MetaName, m); p != nil {
			return nil, p, nil
		}
		return &BlockInfo{Meta: m}, nil, nil
	}
	if !errors.Is(err, storage.ErrNotFound) {
		return nil, &Problem{Tenant: tenantID, BlockID: id.String(), Object: block.MetaName, Err: err}, nil
	}
	ckey := block.CompactedMetaKey(tenantID, id)
	data, err = b.Read(ctx, ckey)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil, fmt.Errorf("%s/%s: %w: %w", tenantID, id, errNoMeta, err)
	}
	if err != nil {
		return nil, &Problem{Tenant: tenantID, BlockID: id.String(), Object: block.CompactedMetaName, Err: err}, nil
	}
	m, perr := block.ParseMeta(ckey, data)
	if perr != nil {
		return nil, &Problem{Tenant: tenantID, BlockID: id.String(), Object: block.CompactedMetaName, Err: perr}, nil
	}
	if p := checkMetaMatches(tenantID, id, block.CompactedMetaName, m); p != nil {
		return nil, p, nil
	}
	info := &BlockInfo{Meta: m, Compacted: true}
	if a, err := b.Attributes(ctx, ckey); err == nil {
		info.CompactedTime = a.ModTime
	}
	return info, nil, nil
}

// checkMetaMatches refuses a meta whose block ID is not its directory's: a
// copied or hand-edited meta would otherwise send reads to another block.
func checkMetaMatches(tenantID string, id uuid.UUID, object string, m *block.Meta) *Problem {
	if m.BlockID != id {
		return &Problem{Tenant: tenantID, BlockID: id.String(), Object: object,
			Err: fmt.Errorf("blockID %s in the meta does not match the directory; the block was copied or edited by hand", m.BlockID)}
	}
	return nil
}

// Tenants lists the tenant directories of the bucket: top-level prefixes
// that are valid tenant IDs (root files such as Tempo's work.json are not).
func Tenants(ctx context.Context, b *storage.Bucket) ([]string, error) {
	var out []string
	for o, err := range b.List(ctx, "", "/") {
		if err != nil {
			return nil, fmt.Errorf("listing tenants: %w", err)
		}
		name := strings.TrimSuffix(o.Key, "/")
		if o.IsDir && tenant.Validate(name) == nil {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out, nil
}
