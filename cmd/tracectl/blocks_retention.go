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

type blocksRetentionOptions struct {
	OlderThan          time.Duration
	CompactedRetention time.Duration
	DryRun             bool
}

func newBlocksRetentionCmd(g *globalOptions) *cobra.Command {
	o := &blocksRetentionOptions{}
	cmd := &cobra.Command{
		Use:   "retention",
		Short: "Retire blocks older than --older-than, then delete them",
		Long: `Apply retention to one tenant, as Tempo's block_retention does: every block
whose end time is older than --older-than (default 336h, Tempo's 14 days) is
marked compacted at once, so readers stop using it, and deleted once
--compacted-retention has passed, so running readers finish; other compacted
blocks past that age are deleted too. Blocks of other tenants are never touched.
Holds the tenant's compaction lease while it works.

--dry-run lists what would be retired and deleted. Output formats (-o): table
(default), json.

` + exitCodesHelp,
		Example: `  tracectl blocks retention --older-than 336h --dry-run
  tracectl blocks retention --older-than 720h --tenant team-a`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runBlocksRetention(cmd.Context(), g, o)
		},
	}
	f := cmd.Flags()
	f.DurationVar(&o.OlderThan, "older-than", compact.DefaultBlockRetention, "retire blocks whose newest span ended longer ago than this (env TRACECTL_OLDER_THAN)")
	f.DurationVar(&o.CompactedRetention, "compacted-retention", compact.DefaultCompactedRetention, "delete retired blocks this long after they were retired (env TRACECTL_COMPACTED_RETENTION)")
	f.BoolVar(&o.DryRun, "dry-run", false, "list what would be retired and deleted; change nothing (env TRACECTL_DRY_RUN)")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"table", "json"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

type retentionJSON struct {
	Tenant  string      `json:"tenant"`
	DryRun  bool        `json:"dryRun"`
	Retired []blockJSON `json:"retired"`
	Deleted []string    `json:"deleted"`
}

func runBlocksRetention(ctx context.Context, g *globalOptions, o *blocksRetentionOptions) error {
	switch g.Output {
	case "", "table", "json":
	default:
		return usageError("blocks retention: unknown output format %q; use table or json", g.Output)
	}
	if o.OlderThan < time.Hour {
		return usageError("blocks retention: --older-than %s would retire blocks still being queried; use 1h or more (Tempo's default is 336h)", o.OlderThan)
	}
	if o.CompactedRetention < 0 {
		return usageError("blocks retention: --compacted-retention must not be negative")
	}
	b, err := g.openBucket(ctx)
	if err != nil {
		return err
	}
	res, err := compact.Retention(ctx, b, g.Tenant, compact.RetentionOptions{OlderThan: o.OlderThan, CompactedRetention: o.CompactedRetention, DryRun: o.DryRun})
	if errors.Is(err, compact.ErrLeaseHeld) {
		return fmt.Errorf("retention for tenant %s in %s: %w; try again later", g.Tenant, b, err)
	}
	if err != nil {
		return fmt.Errorf("retention for tenant %s in %s: %w", g.Tenant, b, err)
	}
	out := retentionJSON{Tenant: g.Tenant, DryRun: o.DryRun, Retired: []blockJSON{}, Deleted: []string{}}
	for _, m := range res.Marked {
		out.Retired = append(out.Retired, blockJSON{BlockID: m.BlockID.String(), Tenant: m.TenantID, Format: m.Format,
			CompactionLevel: m.CompactionLevel, StartTime: m.StartTime.UTC(), EndTime: m.EndTime.UTC(), Traces: m.TotalObjects,
			Size: m.Size, RowGroups: m.TotalRecords, BloomShards: m.BloomShards, Compacted: !o.DryRun})
	}
	for _, id := range res.Deleted {
		out.Deleted = append(out.Deleted, id.String())
	}
	if g.Output == "json" {
		enc := json.NewEncoder(g.io.Out)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	t := render.NewTable(g.io.Out, g.io.Renderer(), g.io.IsStdoutTTY())
	t.Header("BLOCK ID", "ACTION", "END", "TRACES", "SIZE")
	verb := map[bool][2]string{false: {"retired", "deleted"}, true: {"would retire", "would delete"}}[o.DryRun]
	for _, r := range out.Retired {
		t.Row(r.BlockID, verb[0], r.EndTime.Format(time.RFC3339), fmt.Sprint(r.Traces), render.Bytes(r.Size))
	}
	for _, id := range out.Deleted {
		t.Row(id, verb[1], "", "", "")
	}
	if err := t.Flush(); err != nil {
		return err
	}
	if !g.Quiet && len(out.Retired)+len(out.Deleted) == 0 {
		fmt.Fprintf(g.io.ErrOut, "no block of tenant %s in %s is older than %s\n", g.Tenant, b, o.OlderThan)
	}
	return nil
}
