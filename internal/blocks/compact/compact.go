package compact

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/tracectl/tracectl/internal/blocks"
	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/storage"
	"github.com/tracectl/tracectl/internal/tenant"
)

// DefaultCompactedRetention is how long a compacted block stays before it
// is deleted, so that running readers finish (Tempo's default).
const DefaultCompactedRetention = time.Hour

// DefaultOrphanAge is how old the objects of a block directory without
// meta.json or meta.compacted.json must be before they are deleted: such a
// directory is a block whose writer crashed. On file:// buckets the
// temporary files of the directory's writes count as its objects (a fresh
// one is a live writer's) and go with it, as does the directory.
const DefaultOrphanAge = 24 * time.Hour

// Options configure a compaction run. Zero values take defaults.
type Options struct {
	Plan PlanOptions
	// CompactedRetention: compacted blocks older than this are deleted.
	CompactedRetention time.Duration
	// OrphanAge: see DefaultOrphanAge.
	OrphanAge time.Duration
	// LeaseTTL is the lease's lifetime without renewal (renewed every
	// third of it while working).
	LeaseTTL time.Duration
	// Owner names this compactor in the lease (default DefaultOwner()).
	Owner string
	// DryRun plans without writing anything and without taking the lease.
	DryRun bool
	// MaxJobs stops after this many jobs (0: until nothing is left).
	MaxJobs int
	// RowGroupBytes is the output writer's row-group budget.
	RowGroupBytes int
	// Now is the clock (default time.Now).
	Now func() time.Time
	// OnJob, when set, is called after each finished job.
	OnJob func(JobResult)
}

func (o Options) withDefaults() Options {
	o.CompactedRetention = cmp.Or(o.CompactedRetention, DefaultCompactedRetention)
	o.OrphanAge = cmp.Or(o.OrphanAge, DefaultOrphanAge)
	o.LeaseTTL = cmp.Or(o.LeaseTTL, DefaultLeaseTTL)
	o.Owner = cmp.Or(o.Owner, DefaultOwner())
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Plan.Now == nil {
		o.Plan.Now = o.Now
	}
	return o
}

// JobResult is a finished job.
type JobResult struct {
	Job      Job
	Output   *block.Meta
	Stats    MergeStats
	Duration time.Duration
}

// Result is what a compaction run did (or, with DryRun, would do).
type Result struct {
	Tenant  string
	Planned []Job // DryRun: the jobs of the first round
	Skipped []Skipped
	Jobs    []JobResult
	// Recovered is the job an earlier run left unfinished, if any.
	Recovered *Recovery
	// Deleted are compacted blocks removed after CompactedRetention;
	// Orphans block directories without meta removed after OrphanAge.
	Deleted      []uuid.UUID
	Orphans      []uuid.UUID
	IndexUpdated bool
}

// Compact runs compaction for one tenant: it takes the tenant's lease,
// finishes a job an earlier run left unfinished, then plans and runs jobs
// round after round (outputs may merge again at the next level) until
// nothing is left to merge or MaxJobs is reached, deletes compacted blocks
// past their retention, and rewrites the tenant index if the bucket has
// one. An error wrapping ErrLeaseHeld means another compactor is at work.
//
// Each job: record it in the tenant's journal; write the output block
// (meta.json last); mark every input compacted (meta.compacted.json, then
// meta.json removed); clear the journal. Killed at any step, no span is
// lost (inputs stay live until the output is) and none is duplicated in
// query results (readers drop repeated spans across blocks); the next run
// finishes or undoes the journaled job.
func Compact(ctx context.Context, b *storage.Bucket, tenantID string, opts Options) (*Result, error) {
	if err := tenant.Validate(tenantID); err != nil {
		return nil, err
	}
	if err := opts.Plan.Validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	res := &Result{Tenant: tenantID}
	if opts.DryRun {
		jobs, skipped, err := planTenant(ctx, b, tenantID, opts.Plan)
		if err != nil {
			return nil, err
		}
		res.Planned, res.Skipped = jobs, skipped
		return res, nil
	}
	err := withLease(ctx, b, tenantID, opts.Owner, opts.LeaseTTL, opts.Now, func(ctx context.Context, l *Lease) error {
		rec, err := recoverJournal(ctx, b, tenantID)
		if err != nil {
			return err
		}
		res.Recovered = rec
		for opts.MaxJobs == 0 || len(res.Jobs) < opts.MaxJobs {
			jobs, skipped, err := planTenant(ctx, b, tenantID, opts.Plan)
			if err != nil {
				return err
			}
			if res.Skipped == nil {
				res.Skipped = skipped
			}
			if len(jobs) == 0 {
				break
			}
			for _, j := range jobs {
				if opts.MaxJobs > 0 && len(res.Jobs) >= opts.MaxJobs {
					break
				}
				jr, err := runJob(ctx, b, l, j, opts)
				if err != nil {
					return err
				}
				res.Jobs = append(res.Jobs, jr)
				if opts.OnJob != nil {
					opts.OnJob(jr)
				}
			}
		}
		if res.Deleted, res.Orphans, err = deleteExpired(ctx, b, tenantID, opts.CompactedRetention, opts.OrphanAge, opts.Now(), false); err != nil {
			return err
		}
		if rec != nil || len(res.Jobs) > 0 || len(res.Deleted) > 0 || len(res.Orphans) > 0 {
			if res.IndexUpdated, err = updateTenantIndex(ctx, b, tenantID, opts.Now()); err != nil {
				return err
			}
		}
		return nil
	})
	return res, err
}

// withLease runs fn holding the tenant's lease, renewed in the background;
// fn's context is cancelled (cause ErrLeaseLost) if the lease is lost.
func withLease(ctx context.Context, b *storage.Bucket, tenantID, owner string, ttl time.Duration, now func() time.Time, fn func(context.Context, *Lease) error) error {
	l, err := AcquireLease(ctx, b, tenantID, owner, ttl, now)
	if err != nil {
		return err
	}
	wctx, cancel := context.WithCancelCause(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.keepRenewed(wctx, cancel)
	}()
	err = fn(wctx, l)
	if cause := context.Cause(wctx); err != nil && errors.Is(cause, ErrLeaseLost) {
		err = cause
	}
	cancel(nil)
	<-done
	if rerr := l.Release(context.WithoutCancel(ctx)); rerr != nil && err == nil && !errors.Is(rerr, ErrLeaseLost) {
		err = rerr
	}
	return err
}

// planTenant lists the tenant's live blocks and plans.
func planTenant(ctx context.Context, b *storage.Bucket, tenantID string, opts PlanOptions) ([]Job, []Skipped, error) {
	l, err := blocks.List(ctx, b, tenantID, blocks.ListOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("listing blocks of tenant %s: %w", tenantID, err)
	}
	metas := make([]*block.Meta, 0, len(l.Blocks))
	noCompact := map[string]bool{}
	for _, bi := range l.Blocks {
		metas = append(metas, bi.Meta)
		ok, err := b.Exists(ctx, block.NoCompactKey(tenantID, bi.Meta.BlockID))
		if err != nil {
			return nil, nil, err
		}
		noCompact[bi.Meta.BlockID.String()] = ok
	}
	jobs, skipped := Plan(tenantID, metas, noCompact, opts)
	for _, p := range l.Problems {
		skipped = append(skipped, Skipped{Meta: &block.Meta{TenantID: p.Tenant}, Reason: p.Error()})
	}
	return jobs, skipped, nil
}

// runJob merges one job's inputs and retires them (see Compact).
func runJob(ctx context.Context, b *storage.Bucket, l *Lease, j Job, opts Options) (JobResult, error) {
	t0 := time.Now()
	jr := JobResult{Job: j}
	if err := l.Check(ctx); err != nil {
		return jr, err
	}
	out := uuid.New()
	jn := journal{Output: out, Started: opts.Now().UTC()}
	for _, m := range j.Inputs {
		jn.Inputs = append(jn.Inputs, m.BlockID)
	}
	if err := writeJournal(ctx, b, j.Tenant, &jn); err != nil {
		return jr, err
	}
	meta, st, err := Merge(ctx, b, j.Inputs, MergeOptions{BlockID: out, RowGroupBytes: opts.RowGroupBytes})
	jr.Stats = st
	if err != nil {
		if cause := context.Cause(ctx); cause != nil && errors.Is(cause, ErrLeaseLost) {
			return jr, cause
		}
		return jr, fmt.Errorf("compacting %d blocks of tenant %s: %w", len(j.Inputs), j.Tenant, err)
	}
	jr.Output = meta
	if err := l.Check(ctx); err != nil {
		// The output is live; whoever holds the lease now finishes the
		// job from the journal.
		return jr, err
	}
	if err := markInputs(ctx, b, j.Tenant, jn.Inputs); err != nil {
		return jr, err
	}
	if err := b.Delete(ctx, journalKey(j.Tenant)); err != nil && !errors.Is(err, storage.ErrNotFound) {
		return jr, fmt.Errorf("clearing the compaction journal of tenant %s: %w", j.Tenant, err)
	}
	jr.Duration = time.Since(t0)
	return jr, nil
}

// markInputs marks blocks compacted; a block already marked is skipped.
func markInputs(ctx context.Context, b *storage.Bucket, tenantID string, ids []uuid.UUID) error {
	for _, id := range ids {
		ok, err := b.Exists(ctx, block.MetaKey(tenantID, id))
		if err != nil {
			return err
		}
		if !ok {
			continue // marked by an earlier run, or by retention
		}
		if err := block.MarkCompacted(ctx, b, tenantID, id); err != nil {
			return err
		}
	}
	return nil
}

// journal records the job in progress, so that the next run can finish it
// (output live: mark the inputs) or undo it (output not live: delete it).
type journal struct {
	Output  uuid.UUID   `json:"output"`
	Inputs  []uuid.UUID `json:"inputs"`
	Started time.Time   `json:"started"`
}

// journalName is the journal object at the tenant root (not a block
// directory, so Tempo and block listings ignore it).
const journalName = "compactor.journal.json"

func journalKey(tenantID string) string { return tenantID + "/" + journalName }

func writeJournal(ctx context.Context, b *storage.Bucket, tenantID string, j *journal) error {
	data, _ := json.Marshal(j)
	if err := b.Write(ctx, journalKey(tenantID), data); err != nil {
		return fmt.Errorf("writing the compaction journal of tenant %s: %w", tenantID, err)
	}
	return nil
}

// Recovery is what was done about a job an earlier run left unfinished.
type Recovery struct {
	Output   uuid.UUID
	Inputs   []uuid.UUID
	Finished bool // output was live: inputs marked compacted
	Undone   bool // output was not live: its objects deleted
}

// recoverJournal finishes or undoes the journaled job (lease held).
func recoverJournal(ctx context.Context, b *storage.Bucket, tenantID string) (*Recovery, error) {
	data, err := b.Read(ctx, journalKey(tenantID))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the compaction journal of tenant %s: %w", tenantID, err)
	}
	var j journal
	if err := json.Unmarshal(data, &j); err != nil || j.Output == (uuid.UUID{}) {
		// Unreadable: nothing can be finished; the output, if any, has no
		// meta.json until it is live, and is then a valid block whose
		// inputs' spans readers de-duplicate. Drop the journal.
		if err := b.Delete(ctx, journalKey(tenantID)); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return nil, err
		}
		return &Recovery{}, nil
	}
	rec := &Recovery{Output: j.Output, Inputs: j.Inputs}
	live, err := b.Exists(ctx, block.MetaKey(tenantID, j.Output))
	if err != nil {
		return nil, err
	}
	if live {
		if err := markInputs(ctx, b, tenantID, j.Inputs); err != nil {
			return nil, fmt.Errorf("finishing the interrupted compaction into block %s: %w", j.Output, err)
		}
		rec.Finished = true
	} else {
		if err := deleteBlockObjects(ctx, b, tenantID, j.Output); err != nil {
			return nil, fmt.Errorf("removing block %s of an interrupted compaction: %w", j.Output, err)
		}
		rec.Undone = true
	}
	if err := b.Delete(ctx, journalKey(tenantID)); err != nil && !errors.Is(err, storage.ErrNotFound) {
		return nil, err
	}
	return rec, nil
}

// deleteBlockObjects removes every object of a block directory, the meta
// objects last (so a half-deleted block is still seen as compacted or
// incomplete, never as a live block missing data).
func deleteBlockObjects(ctx context.Context, b *storage.Bucket, tenantID string, id uuid.UUID) error {
	objs, err := b.ListAll(ctx, block.BlockPrefix(tenantID, id), "")
	if err != nil {
		return err
	}
	var last []string
	for _, o := range objs {
		switch o.Key {
		case block.MetaKey(tenantID, id), block.CompactedMetaKey(tenantID, id):
			last = append(last, o.Key)
			continue
		}
		if err := b.Delete(ctx, o.Key); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return err
		}
	}
	for _, k := range last {
		if err := b.Delete(ctx, k); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return err
		}
	}
	return nil
}

// deleteExpired deletes compacted blocks older than retention and
// orphaned block directories older than orphanAge (dryRun: only lists).
func deleteExpired(ctx context.Context, b *storage.Bucket, tenantID string, retention, orphanAge time.Duration, now time.Time, dryRun bool) (deleted, orphans []uuid.UUID, err error) {
	ids, err := blocks.BlockIDs(ctx, b, tenantID)
	if err != nil {
		return nil, nil, err
	}
	for _, id := range ids {
		info, prob, err := blocks.ReadBlockMeta(ctx, b, tenantID, id)
		switch {
		case prob != nil:
			continue // damaged: left for verify and a human
		case err != nil && errors.Is(err, storage.ErrNotFound):
			// No meta at all: orphaned once every object is old enough,
			// and every temporary file a killed file:// writer left.
			objs, lerr := b.ListAll(ctx, block.BlockPrefix(tenantID, id), "")
			if lerr != nil {
				return deleted, orphans, lerr
			}
			temps, lerr := b.TempFiles(ctx, block.BlockPrefix(tenantID, id))
			if lerr != nil {
				return deleted, orphans, lerr
			}
			objs = append(objs, temps...)
			old := len(objs) > 0
			for _, o := range objs {
				if now.Sub(o.ModTime) < orphanAge {
					old = false
				}
			}
			if !old {
				continue
			}
			orphans = append(orphans, id)
		case err != nil:
			return deleted, orphans, err
		case info.Compacted && !info.CompactedTime.IsZero() && now.Sub(info.CompactedTime) >= retention:
			deleted = append(deleted, id)
		default:
			continue
		}
		if dryRun {
			continue
		}
		if err := deleteBlockObjects(ctx, b, tenantID, id); err != nil {
			return deleted, orphans, fmt.Errorf("deleting block %s/%s: %w", tenantID, id, err)
		}
		if err := removeFileLeftovers(ctx, b, tenantID, id, now.Add(-orphanAge)); err != nil {
			return deleted, orphans, fmt.Errorf("deleting block %s/%s: %w", tenantID, id, err)
		}
	}
	return deleted, orphans, nil
}

// updateTenantIndex rewrites the tenant index if the bucket has one, so
// that readers trusting it (Tempo's queriers, blocks list) see the change
// before the next poll.
func updateTenantIndex(ctx context.Context, b *storage.Bucket, tenantID string, now time.Time) (bool, error) {
	if _, err := block.ReadTenantIndex(ctx, b, tenantID); err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return false, nil
		}
		// Unreadable: rebuild it anyway.
	}
	ti, err := block.BuildTenantIndex(ctx, b, tenantID, now)
	if err != nil {
		return false, fmt.Errorf("rebuilding the tenant index of %s: %w", tenantID, err)
	}
	if err := block.WriteTenantIndex(ctx, b, tenantID, ti); err != nil {
		return false, fmt.Errorf("writing the tenant index of %s: %w", tenantID, err)
	}
	return true, nil
}
