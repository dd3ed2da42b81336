package main

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/tracectl/tracectl/internal/blocks"
	"github.com/tracectl/tracectl/internal/blocks/compact"
	"github.com/tracectl/tracectl/internal/storage"
)

// serveCompactionOptions are serve's background compaction and retention
// settings (see addServeCompactionFlags).
type serveCompactionOptions struct {
	Compaction         bool
	Interval           time.Duration
	Window             time.Duration
	MaxInputs          int
	CompactedRetention time.Duration
	Retention          time.Duration
	LeaseTTL           time.Duration
}

// addServeCompactionFlags adds serve's compaction and retention flags to
// cmd and returns where their values land.
func addServeCompactionFlags(cmd *cobra.Command) *serveCompactionOptions {
	o := &serveCompactionOptions{}
	f := cmd.Flags()
	f.BoolVar(&o.Compaction, "compaction", false, "merge small blocks in the background, as 'tracectl blocks compact' does; one compactor per tenant across processes (env TRACECTL_COMPACTION)")
	f.DurationVar(&o.Interval, "compaction-interval", compact.DefaultLoopInterval, "how often background compaction and retention look for work (env TRACECTL_COMPACTION_INTERVAL)")
	f.DurationVar(&o.Window, "compaction-window", compact.DefaultWindow, "only blocks whose end times fall in the same window merge (env TRACECTL_COMPACTION_WINDOW)")
	f.IntVar(&o.MaxInputs, "compaction-max-inputs", compact.DefaultMaxInputs, "most blocks one compaction job merges (env TRACECTL_COMPACTION_MAX_INPUTS)")
	f.DurationVar(&o.CompactedRetention, "compacted-retention", compact.DefaultCompactedRetention, "delete compacted blocks this long after they were compacted (env TRACECTL_COMPACTED_RETENTION)")
	f.DurationVar(&o.Retention, "block-retention", 0, "retire blocks whose newest span is older than this, e.g. 336h (Tempo's default); 0 keeps every block (env TRACECTL_BLOCK_RETENTION)")
	f.DurationVar(&o.LeaseTTL, "compaction-lease-ttl", compact.DefaultLeaseTTL, "the compaction lease lapses this long after its holder stops renewing it: after a crash, background compaction and retention wait this long (env TRACECTL_COMPACTION_LEASE_TTL)")
	return o
}

// minLeaseTTL is the shortest compaction lease serve and blocks compact
// take (see --compaction-lease-ttl, --lease-ttl).
const minLeaseTTL = 10 * time.Second

// startServeCompaction checks o and starts the background loop over every
// tenant of the bucket. stop cancels it and waits until it has returned
// (a job cut short is finished or undone by the next run). With neither
// --compaction nor --block-retention it starts nothing.
func startServeCompaction(ctx context.Context, b *storage.Bucket, o *serveCompactionOptions, log *slog.Logger) (stop func(), err error) {
	if o == nil || (!o.Compaction && o.Retention == 0) {
		return func() {}, nil
	}
	plan := compact.PlanOptions{Window: o.Window, MaxInputs: o.MaxInputs}
	if err := plan.Validate(); err != nil {
		return nil, usageError("--compaction-window/--compaction-max-inputs: %v", err)
	}
	if o.Interval < time.Second || o.CompactedRetention < 0 {
		return nil, usageError("--compaction-interval must be at least 1s and --compacted-retention not negative")
	}
	if o.LeaseTTL < minLeaseTTL {
		return nil, usageError("--compaction-lease-ttl %s is too short: the lease is renewed every third of it, and a renewal late by more than that (slow storage, a stalled process, clocks apart between hosts) hands it to another compactor mid-job; use %s or more", o.LeaseTTL, minLeaseTTL)
	}
	if o.Retention != 0 && o.Retention < time.Hour {
		return nil, usageError("--block-retention %s would retire blocks still being queried; use 1h or more, or 0 to keep every block", o.Retention)
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		compact.RunLoop(ctx, b, func(ctx context.Context) ([]string, error) { return blocks.Tenants(ctx, b) },
			compact.LoopOptions{Compaction: o.Compaction, Retention: o.Retention, Interval: o.Interval,
				Compact: compact.Options{Plan: plan, CompactedRetention: o.CompactedRetention, LeaseTTL: o.LeaseTTL}}, log)
	}()
	log.Info("background block maintenance on", "compaction", o.Compaction, "block_retention", o.Retention.String(), "interval", o.Interval.String(), "lease_ttl", o.LeaseTTL.String())
	return func() { cancel(); wg.Wait() }, nil
}
