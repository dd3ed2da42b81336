package compact

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/tracectl/tracectl/internal/storage"
)

// DefaultLoopInterval is how often the background loop looks for work.
const DefaultLoopInterval = 30 * time.Second

// LoopOptions configure RunLoop.
type LoopOptions struct {
	// Compaction turns merging on; Retention (> 0) turns retention on
	// with that block age. The loop does nothing when both are off.
	Compaction bool
	Retention  time.Duration
	// Interval between rounds (default 30s).
	Interval time.Duration
	// Compact configures each compaction run; its CompactedRetention is
	// also the retention run's.
	Compact Options
}

// RunLoop compacts (and applies retention to) every tenant tenants
// returns, once per Interval, until ctx ends; it is what `serve
// --compaction` runs in the background. A tenant whose lease another
// compactor holds is skipped for that round; other errors are logged
// and the loop goes on. It returns when ctx is done.
func RunLoop(ctx context.Context, b *storage.Bucket, tenants func(context.Context) ([]string, error), opts LoopOptions, log *slog.Logger) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if !opts.Compaction && opts.Retention <= 0 {
		return
	}
	interval := cmp.Or(opts.Interval, DefaultLoopInterval)
	if opts.Compact.Owner == "" {
		opts.Compact.Owner = DefaultOwner()
	}
	for {
		RunOnce(ctx, b, tenants, opts, log)
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
	}
}

// RunOnce is one round of RunLoop.
func RunOnce(ctx context.Context, b *storage.Bucket, tenants func(context.Context) ([]string, error), opts LoopOptions, log *slog.Logger) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ts, err := tenants(ctx)
	if err != nil {
		if ctx.Err() == nil {
			log.Warn("compaction: listing tenants failed", "err", err)
		}
		return
	}
	for _, t := range ts {
		if ctx.Err() != nil {
			return
		}
		if opts.Retention > 0 {
			r, err := Retention(ctx, b, t, RetentionOptions{
				OlderThan: opts.Retention, CompactedRetention: opts.Compact.CompactedRetention,
				LeaseTTL: opts.Compact.LeaseTTL, Owner: opts.Compact.Owner, Now: opts.Compact.Now,
			})
			logRun(log, "retention", t, err, func() {
				if len(r.Marked) > 0 || len(r.Deleted) > 0 {
					log.Info("retention", "tenant", t, "retired", len(r.Marked), "deleted", len(r.Deleted))
				}
			})
		}
		if opts.Compaction {
			res, err := Compact(ctx, b, t, opts.Compact)
			logRun(log, "compaction", t, err, func() {
				for _, j := range res.Jobs {
					log.Info("compacted blocks", "tenant", t, "inputs", len(j.Job.Inputs), "output", j.Output.BlockID.String(),
						"level", j.Output.CompactionLevel, "traces", j.Stats.OutputTraces, "spans", j.Stats.OutputSpans,
						"bytes_in", j.Stats.InputBytes, "bytes_out", j.Stats.OutputBytes, "duration", j.Duration.Round(time.Millisecond).String())
				}
				if len(res.Deleted) > 0 || len(res.Orphans) > 0 {
					log.Info("deleted compacted blocks", "tenant", t, "blocks", len(res.Deleted), "orphans", len(res.Orphans))
				}
			})
		}
	}
}

func logRun(log *slog.Logger, what, tenantID string, err error, ok func()) {
	switch {
	case err == nil:
		ok()
	case errors.Is(err, ErrLeaseHeld):
		log.Debug(what+": another compactor is at work", "tenant", tenantID, "err", err)
	case errors.Is(err, context.Canceled):
	default:
		log.Error(what+" failed", "tenant", tenantID, "err", err)
	}
}
