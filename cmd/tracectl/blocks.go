package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/tracectl/tracectl/internal/blocks"
	"github.com/tracectl/tracectl/internal/render"
)

func init() {
	registerCommand(func(root *cobra.Command, g *globalOptions) {
		cmd := &cobra.Command{
			Use:   "blocks",
			Short: "List and inspect the blocks of a bucket",
			Args:  cobra.NoArgs,
		}
		cmd.AddCommand(newBlocksListCmd(g))
		root.AddCommand(cmd)
	})
}

type blocksListOptions struct {
	IncludeCompacted bool
	Since, Until     string
	IndexMaxAge      time.Duration
}

func newBlocksListCmd(g *globalOptions) *cobra.Command {
	opts := &blocksListOptions{}
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the blocks of a tenant",
		Long: `List the blocks of a tenant: block ID, format version, compaction level,
start and end time of the spans, traces, data size and row groups.

The tenant index (index.pb.zst) is used when it is younger than --index-max-age;
otherwise the bucket is listed and every meta.json read. A block whose meta cannot
be read is reported on stderr and the others are still listed (exit code 4).

Output formats (-o): table (default), json, jsonl.

` + exitCodesHelp,
		Example: `  tracectl blocks list --storage s3://traces?region=eu-west-1
  tracectl blocks list --since 2026-11-20T10:00:00Z -o json | jq '.[].blockID'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runBlocksList(cmd.Context(), g, opts)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&opts.IncludeCompacted, "include-compacted", false, "also list blocks compacted away (env TRACECTL_INCLUDE_COMPACTED)")
	f.StringVar(&opts.Since, "since", "", "only blocks with spans at or after this time: RFC 3339 or a duration ago like 24h (env TRACECTL_SINCE)")
	f.StringVar(&opts.Until, "until", "", "only blocks with spans at or before this time: RFC 3339 or a duration ago (env TRACECTL_UNTIL)")
	f.DurationVar(&opts.IndexMaxAge, "index-max-age", 5*time.Minute, "trust the tenant index up to this age; 0 always lists the bucket (env TRACECTL_INDEX_MAX_AGE)")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"table", "json", "jsonl"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// parseTimeFlag accepts RFC 3339, a date, Unix seconds, or a duration
// meaning "that long ago".
func parseTimeFlag(name, v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(v); err == nil {
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, nil
		}
	}
	var secs int64
	if _, err := fmt.Sscanf(v, "%d", &secs); err == nil && fmt.Sprint(secs) == v {
		return time.Unix(secs, 0), nil
	}
	return time.Time{}, usageError("--%s %q: use RFC 3339 (2026-11-20T10:00:00Z), a date (2026-11-20), Unix seconds, or a duration ago (24h)", name, v)
}

// blockJSON is the stable JSON shape of one block for scripts.
type blockJSON struct {
	BlockID         string     `json:"blockID"`
	Tenant          string     `json:"tenant"`
	Format          string     `json:"format"`
	CompactionLevel uint32     `json:"compactionLevel"`
	StartTime       time.Time  `json:"startTime"`
	EndTime         time.Time  `json:"endTime"`
	Traces          int64      `json:"traces"`
	Size            uint64     `json:"size"`
	RowGroups       uint32     `json:"rowGroups"`
	BloomShards     uint32     `json:"bloomShards"`
	Compacted       bool       `json:"compacted"`
	CompactedTime   *time.Time `json:"compactedTime,omitempty"`
}

func toBlockJSON(bi blocks.BlockInfo) blockJSON {
	m := bi.Meta
	j := blockJSON{
		BlockID: m.BlockID.String(), Tenant: m.TenantID, Format: m.Format, CompactionLevel: m.CompactionLevel,
		StartTime: m.StartTime.UTC(), EndTime: m.EndTime.UTC(), Traces: m.TotalObjects, Size: m.Size,
		RowGroups: m.TotalRecords, BloomShards: m.BloomShards, Compacted: bi.Compacted,
	}
	if bi.Compacted && !bi.CompactedTime.IsZero() {
		t := bi.CompactedTime.UTC()
		j.CompactedTime = &t
	}
	return j
}

func runBlocksList(ctx context.Context, g *globalOptions, opts *blocksListOptions) error {
	switch g.Output {
	case "", "table", "json", "jsonl":
	default:
		return usageError("blocks list: unknown output format %q; use table, json or jsonl", g.Output)
	}
	now := time.Now()
	since, err := parseTimeFlag("since", opts.Since, now)
	if err != nil {
		return err
	}
	until, err := parseTimeFlag("until", opts.Until, now)
	if err != nil {
		return err
	}
	b, err := g.openBucket(ctx)
	if err != nil {
		return err
	}
	l, err := blocks.List(ctx, b, g.Tenant, blocks.ListOptions{
		IncludeCompacted: opts.IncludeCompacted, IndexMaxAge: opts.IndexMaxAge, Since: since, Until: until,
	})
	if err != nil {
		return fmt.Errorf("listing blocks of tenant %s in %s: %w", g.Tenant, b, err)
	}
	rows := make([]blockJSON, len(l.Blocks))
	for i, bi := range l.Blocks {
		rows[i] = toBlockJSON(bi)
	}
	switch g.Output {
	case "json":
		enc := json.NewEncoder(g.io.Out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rows); err != nil {
			return err
		}
	case "jsonl":
		enc := json.NewEncoder(g.io.Out)
		for _, r := range rows {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
	default:
		t := render.NewTable(g.io.Out, g.io.Renderer(), g.io.IsStdoutTTY())
		header := []string{"BLOCK ID", "VERSION", "LEVEL", "START", "END", "TRACES", "SIZE", "ROW GROUPS"}
		if opts.IncludeCompacted {
			header = append(header, "COMPACTED")
		}
		t.Header(header...)
		for _, r := range rows {
			cells := []string{r.BlockID, r.Format, fmt.Sprint(r.CompactionLevel),
				r.StartTime.Format(time.RFC3339), r.EndTime.Format(time.RFC3339),
				fmt.Sprint(r.Traces), render.Bytes(r.Size), fmt.Sprint(r.RowGroups)}
			if opts.IncludeCompacted {
				c := ""
				if r.CompactedTime != nil {
					c = r.CompactedTime.Format(time.RFC3339)
				} else if r.Compacted {
					c = "yes"
				}
				cells = append(cells, c)
			}
			t.Row(cells...)
		}
		if err := t.Flush(); err != nil {
			return err
		}
		if len(rows) == 0 && !g.Quiet {
			fmt.Fprintf(g.io.ErrOut, "no blocks for tenant %s in %s\n", g.Tenant, b)
		}
	}
	if g.Verbose && l.FromIndex {
		fmt.Fprintf(g.io.ErrOut, "listed from the tenant index of %s\n", g.Tenant)
	}
	if l.Incomplete > 0 && g.Verbose {
		fmt.Fprintf(g.io.ErrOut, "%d block directories have no meta.json yet (being written, or left by a crashed writer)\n", l.Incomplete)
	}
	if len(l.Problems) > 0 {
		for _, p := range l.Problems {
			fmt.Fprintf(g.io.ErrOut, "tracectl: warning: %v\n", p)
		}
		return &exitErr{code: exitPartial, silent: true, err: fmt.Errorf("%d damaged blocks", len(l.Problems))}
	}
	return nil
}
