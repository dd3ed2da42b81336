package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/tracectl/tracectl/internal/blocks/compact"
	"github.com/tracectl/tracectl/internal/render"
)

// blocksMaintenanceCommands are added to `tracectl blocks` (see blocks.go).
func blocksMaintenanceCommands(g *globalOptions) []*cobra.Command {
	return []*cobra.Command{newBlocksCompactCmd(g), newBlocksRetentionCmd(g), newBlocksVerifyCmd(g)}
}

type blocksCompactOptions struct {
	Window             time.Duration
	MinInputs          int
	MaxInputs          int
	MaxObjects         int64
	MaxBytes           int64
	MaxJobs            int
	CompactedRetention time.Duration
	LeaseTTL           time.Duration
	DryRun             bool
}

func newBlocksCompactCmd(g *globalOptions) *cobra.Command {
	o := &blocksCompactOptions{}
	cmd := &cobra.Command{
		Use:   "compact",
		Short: "Merge small blocks into larger ones, as Tempo's compactor does",
		Long: `Merge the tenant's small vParquet4 blocks into larger ones. Blocks whose end
times fall in the same --window, of the same compaction level, are merged
smallest first, --min-inputs to --max-inputs at a time, under --max-objects
traces and --max-bytes; once a window is older than two windows, blocks of
different levels in it merge too. The output is one vParquet4 block at level
max(inputs)+1 that Tempo reads; the inputs are marked compacted
(meta.compacted.json) and deleted after --compacted-retention, so that running
readers finish; keep it longer than the block-list poll interval of every reader
(serve's --query-poll-interval, Tempo's blocklist_poll), or a reader may look
for a deleted block before it sees the output (serve then reads its block list
again at once, and trace by ID asks again; Tempo answers without the block
until its next poll). Runs until nothing is left to merge (or --max-jobs).

Safe to run while 'tracectl serve' (or Tempo) writes and queries the bucket:
one compactor per tenant holds a lease (an object created with a conditional
write, renewed while working, taken over after --lease-ttl if its holder
died). Killed at any moment, no span is lost or duplicated in query results;
the next run finishes or undoes the interrupted job.

--dry-run prints the plan and writes nothing. Output formats (-o): table
(default), json.

` + exitCodesHelp,
		Example: `  tracectl blocks compact --dry-run
  tracectl blocks compact --storage s3://traces?region=eu-west-1 --tenant team-a
  tracectl blocks compact --window 6h --max-inputs 8 -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runBlocksCompact(cmd.Context(), g, o)
		},
	}
	f := cmd.Flags()
	f.DurationVar(&o.Window, "window", compact.DefaultWindow, "only blocks whose end times fall in the same window merge (env TRACECTL_WINDOW)")
	f.IntVar(&o.MinInputs, "min-inputs", compact.DefaultMinInputs, "fewest blocks a job merges (env TRACECTL_MIN_INPUTS)")
	f.IntVar(&o.MaxInputs, "max-inputs", compact.DefaultMaxInputs, "most blocks a job merges (env TRACECTL_MAX_INPUTS)")
	f.Int64Var(&o.MaxObjects, "max-objects", compact.DefaultMaxObjects, "most traces in a job's output (env TRACECTL_MAX_OBJECTS)")
	f.Int64Var(&o.MaxBytes, "max-bytes", compact.DefaultMaxBytes, "most data.parquet bytes a job reads (env TRACECTL_MAX_BYTES)")
	f.IntVar(&o.MaxJobs, "max-jobs", 0, "stop after this many jobs; 0 runs until nothing is left (env TRACECTL_MAX_JOBS)")
	f.DurationVar(&o.CompactedRetention, "compacted-retention", compact.DefaultCompactedRetention, "delete compacted blocks this long after they were compacted (env TRACECTL_COMPACTED_RETENTION)")
	f.DurationVar(&o.LeaseTTL, "lease-ttl", compact.DefaultLeaseTTL, "the compaction lease lapses this long after its holder stops renewing it (env TRACECTL_LEASE_TTL)")
	f.BoolVar(&o.DryRun, "dry-run", false, "print the plan; write nothing (env TRACECTL_DRY_RUN)")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"table", "json"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// compactJobJSON is the stable JSON shape of one job for scripts.
type compactJobJSON struct {
	Inputs         []string  `json:"inputs"`
	Output         string    `json:"output,omitempty"`
	Level          uint32    `json:"level"`
	Start          time.Time `json:"startTime"`
	End            time.Time `json:"endTime"`
	InputTraces    int64     `json:"inputTraces"`
	InputBytes     uint64    `json:"inputBytes"`
	OutputTraces   int64     `json:"outputTraces,omitempty"`
	OutputBytes    uint64    `json:"outputBytes,omitempty"`
	InputSpans     int64     `json:"inputSpans,omitempty"`
	OutputSpans    int64     `json:"outputSpans,omitempty"`
	CombinedTraces int64     `json:"combinedTraces,omitempty"`
	DurationMs     int64     `json:"durationMs,omitempty"`
}

type compactJSON struct {
	Tenant    string           `json:"tenant"`
	DryRun    bool             `json:"dryRun"`
	Jobs      []compactJobJSON `json:"jobs"`
	Recovered *compactRecovery `json:"recovered,omitempty"`
	Deleted   []string         `json:"deleted"`
	Skipped   []string         `json:"skipped"`
}

type compactRecovery struct {
	Output   string `json:"output"`
	Finished bool   `json:"finished"`
	Undone   bool   `json:"undone"`
}

func jobJSON(j compact.Job) compactJobJSON {
	out := compactJobJSON{Level: j.Level, Start: j.Start.UTC(), End: j.End.UTC(), InputTraces: j.Traces, InputBytes: j.Bytes}
	for _, m := range j.Inputs {
		out.Inputs = append(out.Inputs, m.BlockID.String())
	}
	return out
}

func runBlocksCompact(ctx context.Context, g *globalOptions, o *blocksCompactOptions) error {
	switch g.Output {
	case "", "table", "json":
	default:
		return usageError("blocks compact: unknown output format %q; use table or json", g.Output)
	}
	plan := compact.PlanOptions{Window: o.Window, MinInputs: o.MinInputs, MaxInputs: o.MaxInputs, MaxObjects: o.MaxObjects, MaxBytes: uint64(max(o.MaxBytes, 0))}
	if err := plan.Validate(); err != nil {
		return usageError("blocks compact: %v", err)
	}
	if o.MaxBytes <= 0 || o.CompactedRetention < 0 || o.LeaseTTL < minLeaseTTL || o.MaxJobs < 0 {
		return usageError("blocks compact: --max-bytes must be positive, --compacted-retention not negative, --lease-ttl at least 10s, --max-jobs not negative")
	}
	b, err := g.openBucket(ctx)
	if err != nil {
		return err
	}
	progress := func(j compact.JobResult) {
		if g.io.ShowProgress() {
			fmt.Fprintf(g.io.ErrOut, "merged %d blocks into %s (%d traces, %s)\n", len(j.Job.Inputs), j.Output.BlockID, j.Output.TotalObjects, render.Bytes(j.Output.Size))
		}
	}
	res, err := compact.Compact(ctx, b, g.Tenant, compact.Options{
		Plan: plan, CompactedRetention: o.CompactedRetention, LeaseTTL: o.LeaseTTL,
		DryRun: o.DryRun, MaxJobs: o.MaxJobs, OnJob: progress,
	})
	if errors.Is(err, compact.ErrLeaseHeld) {
		return fmt.Errorf("compacting tenant %s in %s: %w; try again later, or after --lease-ttl if that compactor died", g.Tenant, b, err)
	}
	if err != nil {
		if res != nil && len(res.Jobs) > 0 {
			fmt.Fprintf(g.io.ErrOut, "tracectl: %d jobs finished before the error\n", len(res.Jobs))
		}
		return fmt.Errorf("compacting tenant %s in %s: %w", g.Tenant, b, err)
	}
	out := compactJSON{Tenant: g.Tenant, DryRun: o.DryRun, Jobs: []compactJobJSON{}, Deleted: []string{}, Skipped: []string{}}
	for _, j := range res.Planned {
		out.Jobs = append(out.Jobs, jobJSON(j))
	}
	for _, jr := range res.Jobs {
		j := jobJSON(jr.Job)
		j.Output = jr.Output.BlockID.String()
		j.Level = jr.Output.CompactionLevel
		j.OutputTraces, j.OutputBytes = jr.Stats.OutputTraces, jr.Stats.OutputBytes
		j.InputSpans, j.OutputSpans, j.CombinedTraces = jr.Stats.InputSpans, jr.Stats.OutputSpans, jr.Stats.CombinedTraces
		j.DurationMs = jr.Duration.Milliseconds()
		out.Jobs = append(out.Jobs, j)
	}
	if r := res.Recovered; r != nil {
		out.Recovered = &compactRecovery{Output: r.Output.String(), Finished: r.Finished, Undone: r.Undone}
	}
	for _, id := range res.Deleted {
		out.Deleted = append(out.Deleted, id.String())
	}
	for _, s := range res.Skipped {
		name := s.Meta.BlockID.String()
		out.Skipped = append(out.Skipped, name+": "+s.Reason)
	}
	if g.Output == "json" {
		enc := json.NewEncoder(g.io.Out)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	if out.Recovered != nil && !g.Quiet {
		what := "finished"
		if out.Recovered.Undone {
			what = "undone"
		}
		fmt.Fprintf(g.io.ErrOut, "an interrupted compaction into block %s was %s\n", out.Recovered.Output, what)
	}
	t := render.NewTable(g.io.Out, g.io.Renderer(), g.io.IsStdoutTTY())
	if o.DryRun {
		t.Header("LEVEL", "INPUTS", "START", "END", "TRACES (AT MOST)", "SIZE IN")
	} else {
		t.Header("OUTPUT", "LEVEL", "INPUTS", "TRACES", "SPANS", "SIZE IN", "SIZE OUT", "TIME")
	}
	for _, j := range out.Jobs {
		if o.DryRun {
			t.Row(fmt.Sprint(j.Level), fmt.Sprint(len(j.Inputs)), j.Start.Format(time.RFC3339), j.End.Format(time.RFC3339), fmt.Sprint(j.InputTraces), render.Bytes(j.InputBytes))
		} else {
			t.Row(j.Output, fmt.Sprint(j.Level), fmt.Sprint(len(j.Inputs)), fmt.Sprint(j.OutputTraces), fmt.Sprint(j.OutputSpans),
				render.Bytes(j.InputBytes), render.Bytes(j.OutputBytes), (time.Duration(j.DurationMs) * time.Millisecond).String())
		}
	}
	if err := t.Flush(); err != nil {
		return err
	}
	if !g.Quiet {
		switch {
		case len(out.Jobs) == 0:
			fmt.Fprintf(g.io.ErrOut, "nothing to compact for tenant %s in %s\n", g.Tenant, b)
		case o.DryRun:
			fmt.Fprintf(g.io.ErrOut, "dry run: %d jobs planned, nothing written\n", len(out.Jobs))
		}
		if len(out.Deleted) > 0 {
			fmt.Fprintf(g.io.ErrOut, "deleted %d compacted blocks past --compacted-retention\n", len(out.Deleted))
		}
		if g.Verbose {
			for _, s := range out.Skipped {
				fmt.Fprintf(g.io.ErrOut, "skipped %s\n", s)
			}
		}
	}
	return nil
}
