package compact

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/tracectl/tracectl/internal/blocks/block"
)

// Defaults of PlanOptions, as Tempo's compactor has them.
const (
	DefaultWindow     = time.Hour
	DefaultMinInputs  = 2
	DefaultMaxInputs  = 4
	DefaultMaxObjects = 6_000_000
	DefaultMaxBytes   = 100 << 30
)

// PlanOptions choose which blocks merge. Zero values take the defaults.
type PlanOptions struct {
	// Window groups blocks by the time window their end time falls in;
	// only blocks of one window merge (default 1h).
	Window time.Duration
	// MinInputs and MaxInputs bound the inputs of one job (2 and 4).
	MinInputs, MaxInputs int
	// MaxObjects and MaxBytes cap a job's output: the sum of the inputs'
	// traces and data.parquet bytes (6,000,000 and 100 GiB).
	MaxObjects int64
	MaxBytes   uint64
	// Now is the clock (default time.Now): in a window that ended more
	// than one window ago, blocks of different levels merge too.
	Now func() time.Time
}

func (o PlanOptions) withDefaults() PlanOptions {
	o.Window = cmp.Or(o.Window, DefaultWindow)
	o.MinInputs = cmp.Or(o.MinInputs, DefaultMinInputs)
	o.MaxInputs = cmp.Or(o.MaxInputs, DefaultMaxInputs)
	o.MaxObjects = cmp.Or(o.MaxObjects, DefaultMaxObjects)
	o.MaxBytes = cmp.Or(o.MaxBytes, DefaultMaxBytes)
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Validate reports options a user got wrong.
func (o PlanOptions) Validate() error {
	o = o.withDefaults()
	switch {
	case o.Window < time.Minute:
		return fmt.Errorf("compaction window %s is too small; use 1m or more (Tempo's default is 1h)", o.Window)
	case o.MinInputs < 2:
		return fmt.Errorf("min inputs %d: a job merges at least 2 blocks", o.MinInputs)
	case o.MaxInputs < o.MinInputs:
		return fmt.Errorf("max inputs %d is below min inputs %d", o.MaxInputs, o.MinInputs)
	case o.MaxObjects < 0:
		return fmt.Errorf("max objects %d: must be positive", o.MaxObjects)
	}
	return nil
}

// Job is one planned merge.
type Job struct {
	Tenant string
	// Window is the start of the time window of the inputs' end times.
	Window time.Time
	// Level is the output's compaction level: highest input level + 1.
	Level  uint32
	Inputs []*block.Meta // in merge order: start time, then block ID
	// Start and End are the output's time range (the inputs' union).
	Start, End time.Time
	// Traces and Bytes sum the inputs: an upper bound of the output's
	// traces (a trace in several inputs becomes one row).
	Traces int64
	Bytes  uint64
}

// Skipped is a block the planner left out, and why.
type Skipped struct {
	Meta   *block.Meta
	Reason string
}

// Plan groups live blocks into jobs as Tempo's compactor selects them:
// blocks of the same format (only vParquet4 is merged), dedicated-column
// list and replication factor, whose end times fall in the same window;
// within a window blocks of the same level first, lowest level and
// smallest first, MinInputs to MaxInputs per job under the object and
// byte caps. In a window that ended more than one window ago, blocks left
// over at different levels merge together too, so an old window ends up
// as one block (while a window is filling, that would rewrite its largest
// block for every small one added). noCompact
// holds the blocks with nocompact.flg. Blocks whose meta names another
// tenant than tenantID are left out. Jobs never share a block.
func Plan(tenantID string, metas []*block.Meta, noCompact map[string]bool, opts PlanOptions) ([]Job, []Skipped) {
	opts = opts.withDefaults()
	type groupKey struct {
		window  int64
		ded     string
		rf      uint32
		version string
	}
	groups := map[groupKey][]*block.Meta{}
	var keys []groupKey
	var skipped []Skipped
	for _, m := range metas {
		switch {
		case m.Format != block.FormatVParquet4:
			skipped = append(skipped, Skipped{m, fmt.Sprintf("format %s: tracectl merges only %s blocks", m.Format, block.FormatVParquet4)})
			continue
		case m.TenantID != tenantID:
			skipped = append(skipped, Skipped{m, fmt.Sprintf("meta.json names tenant %q but the block is under tenant %q; it was copied by hand", m.TenantID, tenantID)})
			continue
		case noCompact[m.BlockID.String()]:
			skipped = append(skipped, Skipped{m, block.NoCompactName + " is set"})
			continue
		}
		k := groupKey{
			window: m.EndTime.Truncate(opts.Window).Unix(),
			ded:    string(block.MarshalDedicatedColumns(m.DedicatedColumns)), rf: m.ReplicationFactor, version: m.Format,
		}
		if _, ok := groups[k]; !ok {
			keys = append(keys, k)
		}
		groups[k] = append(groups[k], m)
	}
	// Oldest windows first, so a backlog is worked off in time order.
	slices.SortStableFunc(keys, func(a, b groupKey) int { return cmp.Compare(a.window, b.window) })

	now := opts.Now()
	var jobs []Job
	for _, k := range keys {
		cands := groups[k]
		slices.SortFunc(cands, func(a, b *block.Meta) int {
			return cmp.Or(cmp.Compare(a.CompactionLevel, b.CompactionLevel), cmp.Compare(a.Size, b.Size),
				a.StartTime.Compare(b.StartTime), cmp.Compare(a.BlockID.String(), b.BlockID.String()))
		})
		used := map[*block.Meta]bool{}
		// Same level first.
		for i := 0; i < len(cands); {
			j := i
			for j < len(cands) && cands[j].CompactionLevel == cands[i].CompactionLevel {
				j++
			}
			jobs = append(jobs, pick(cands[i:j], used, opts)...)
			i = j
		}
		// Leftovers of an ended window, across levels.
		windowEnd := time.Unix(k.window, 0).Add(opts.Window)
		if !now.Before(windowEnd.Add(opts.Window)) {
			var rest []*block.Meta
			for _, m := range cands {
				if !used[m] {
					rest = append(rest, m)
				}
			}
			jobs = append(jobs, pick(rest, used, opts)...)
		}
	}
	for i := range jobs {
		jobs[i].Window = jobs[i].Inputs[0].EndTime.Truncate(opts.Window)
	}
	return jobs, skipped
}

// pick cuts jobs from cands (sorted smallest first) under the caps.
func pick(cands []*block.Meta, used map[*block.Meta]bool, opts PlanOptions) []Job {
	var jobs []Job
	var cur []*block.Meta
	var objects int64
	var bytes uint64
	flush := func() {
		if len(cur) >= opts.MinInputs {
			jobs = append(jobs, newJob(cur))
			for _, m := range cur {
				used[m] = true
			}
		}
		cur, objects, bytes = nil, 0, 0
	}
	for _, m := range cands {
		if used[m] {
			continue
		}
		if len(cur) > 0 && (objects+m.TotalObjects > opts.MaxObjects || bytes+m.Size > opts.MaxBytes) {
			// Smallest first: this block and every later one would
			// overflow the current job; start a new one with it.
			flush()
		}
		if m.TotalObjects > opts.MaxObjects || m.Size > opts.MaxBytes {
			continue // too large to merge with anything
		}
		cur = append(cur, m)
		objects += m.TotalObjects
		bytes += m.Size
		if len(cur) == opts.MaxInputs {
			flush()
		}
	}
	flush()
	return jobs
}

func newJob(inputs []*block.Meta) Job {
	in := slices.Clone(inputs)
	slices.SortFunc(in, func(a, b *block.Meta) int {
		return cmp.Or(a.StartTime.Compare(b.StartTime), cmp.Compare(a.BlockID.String(), b.BlockID.String()))
	})
	j := Job{Tenant: in[0].TenantID, Inputs: in, Start: in[0].StartTime, End: in[0].EndTime}
	for _, m := range in {
		j.Level = max(j.Level, m.CompactionLevel+1)
		if m.StartTime.Before(j.Start) {
			j.Start = m.StartTime
		}
		if m.EndTime.After(j.End) {
			j.End = m.EndTime
		}
		j.Traces += m.TotalObjects
		j.Bytes += m.Size
	}
	return j
}
