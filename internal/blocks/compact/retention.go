package compact

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/tracectl/tracectl/internal/blocks"
	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/storage"
	"github.com/tracectl/tracectl/internal/tenant"
)

// DefaultBlockRetention is Tempo's block_retention: 14 days.
const DefaultBlockRetention = 336 * time.Hour

// RetentionOptions configure a retention run. Zero values take defaults.
type RetentionOptions struct {
	// OlderThan: live blocks whose end time is older are retired.
	OlderThan time.Duration
	// CompactedRetention: retired (compacted) blocks are deleted after it.
	CompactedRetention time.Duration
	DryRun             bool
	LeaseTTL           time.Duration
	Owner              string
	Now                func() time.Time
}

// RetentionResult is what a retention run did (or would do).
type RetentionResult struct {
	Tenant string
	// Marked are live blocks retired (marked compacted).
	Marked []*block.Meta
	// Deleted are compacted blocks past CompactedRetention, removed.
	Deleted      []uuid.UUID
	IndexUpdated bool
}

// Retention retires a tenant's blocks whose end time is older than
// OlderThan, as Tempo's retention does: they are marked compacted at once
// (readers stop using them) and deleted once CompactedRetention has passed
// (running readers finish), together with any other compacted block past
// it. It holds the tenant's compaction lease (retention and compaction do
// not interleave) and touches no other tenant.
func Retention(ctx context.Context, b *storage.Bucket, tenantID string, opts RetentionOptions) (*RetentionResult, error) {
	if err := tenant.Validate(tenantID); err != nil {
		return nil, err
	}
	if opts.OlderThan < 0 {
		return nil, fmt.Errorf("retention %s: must be positive", opts.OlderThan)
	}
	opts.OlderThan = cmp.Or(opts.OlderThan, DefaultBlockRetention)
	opts.CompactedRetention = cmp.Or(opts.CompactedRetention, DefaultCompactedRetention)
	opts.LeaseTTL = cmp.Or(opts.LeaseTTL, DefaultLeaseTTL)
	opts.Owner = cmp.Or(opts.Owner, DefaultOwner())
	if opts.Now == nil {
		opts.Now = time.Now
	}
	res := &RetentionResult{Tenant: tenantID}
	run := func(ctx context.Context) error {
		now := opts.Now()
		cutoff := now.Add(-opts.OlderThan)
		l, err := blocks.List(ctx, b, tenantID, blocks.ListOptions{})
		if err != nil {
			return fmt.Errorf("listing blocks of tenant %s: %w", tenantID, err)
		}
		for _, bi := range l.Blocks {
			m := bi.Meta
			if !m.EndTime.Before(cutoff) {
				continue
			}
			if m.TenantID != tenantID {
				continue // a meta naming another tenant: never touch it
			}
			res.Marked = append(res.Marked, m)
			if opts.DryRun {
				continue
			}
			if err := block.MarkCompacted(ctx, b, tenantID, m.BlockID); err != nil && !errors.Is(err, storage.ErrNotFound) {
				return fmt.Errorf("retiring block %s: %w", m, err)
			}
		}
		res.Deleted, _, err = deleteExpired(ctx, b, tenantID, opts.CompactedRetention, 1<<62, now, opts.DryRun)
		if err != nil {
			return err
		}
		if !opts.DryRun && (len(res.Marked) > 0 || len(res.Deleted) > 0) {
			if res.IndexUpdated, err = updateTenantIndex(ctx, b, tenantID, now); err != nil {
				return err
			}
		}
		return nil
	}
	if opts.DryRun {
		return res, run(ctx)
	}
	err := withLease(ctx, b, tenantID, opts.Owner, opts.LeaseTTL, opts.Now, func(ctx context.Context, _ *Lease) error {
		return run(ctx)
	})
	return res, err
}
