package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/spf13/cobra"

	"github.com/tracectl/tracectl/internal/blocks"
	"github.com/tracectl/tracectl/internal/render"
	"github.com/tracectl/tracectl/internal/storage"
)

func init() {
	registerCommand(func(root *cobra.Command, g *globalOptions) {
		cmd := &cobra.Command{
			Use:   "blocks",
			Short: "List and inspect the blocks of a bucket",
			Args:  cobra.NoArgs,
		}
		cmd.AddCommand(append([]*cobra.Command{newBlocksListCmd(g), newBlocksInspectCmd(g)}, blocksMaintenanceCommands(g)...)...)
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

func newBlocksInspectCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "inspect BLOCK-ID",
		Short: "Show a block's meta, row groups, column sizes and bloom filters",
		Long: `Show one block in detail: its meta.json, its objects, the parquet row groups
(rows, sizes, trace-ID range), every column's compressed and uncompressed size,
and the bloom filter shards with their estimated false-positive rate.

Damage found on the way (a truncated data.parquet, a bad bloom shard, sizes that
disagree with meta.json) is reported on stderr and gives exit code 4.

Output formats (-o): text (default), json.

` + exitCodesHelp,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError("blocks inspect takes one block ID (see 'tracectl blocks list')")
			}
			return nil
		},
		ValidArgsFunction: g.completeBlockIDs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runBlocksInspect(cmd.Context(), g, args[0])
		},
	}
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"text", "json"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

type inspectJSON struct {
	Block     blockJSON             `json:"block"`
	Meta      json.RawMessage       `json:"meta"`
	CreatedBy string                `json:"createdBy"`
	Objects   []blocks.ObjectInfo   `json:"objects"`
	RowGroups []blocks.RowGroupInfo `json:"rowGroups"`
	Columns   []blocks.ColumnInfo   `json:"columns"`
	Blooms    []blocks.BloomInfo    `json:"blooms"`
	Problems  []string              `json:"problems"`
}

func runBlocksInspect(ctx context.Context, g *globalOptions, arg string) error {
	switch g.Output {
	case "", "text", "json":
	default:
		return usageError("blocks inspect: unknown output format %q; use text or json", g.Output)
	}
	id, err := uuid.Parse(arg)
	if err != nil {
		return usageError("%q is not a block ID; block IDs are UUIDs like 8638efc1-2742-4667-8de0-8bae4bda7236 (see 'tracectl blocks list')", arg)
	}
	b, err := g.openBucket(ctx)
	if err != nil {
		return err
	}
	in, err := blocks.Inspect(ctx, b, g.Tenant, id)
	if err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return notFoundError("block %s not found for tenant %s in %s", id, g.Tenant, b)
		}
		return err
	}
	problems := make([]string, len(in.Problems))
	for i, p := range in.Problems {
		problems[i] = p.Error()
	}
	if g.Output == "json" {
		meta, _ := json.Marshal(in.Info.Meta)
		enc := json.NewEncoder(g.io.Out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(inspectJSON{Block: toBlockJSON(in.Info), Meta: meta, CreatedBy: in.CreatedBy, Objects: in.Objects,
			RowGroups: in.RowGroups, Columns: in.Columns, Blooms: in.Blooms, Problems: problems}); err != nil {
			return err
		}
	} else if err := writeInspectText(g, in); err != nil {
		return err
	}
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintf(g.io.ErrOut, "tracectl: warning: %s\n", p)
		}
		return &exitErr{code: exitPartial, silent: true, err: fmt.Errorf("%d problems", len(problems))}
	}
	return nil
}

func writeInspectText(g *globalOptions, in *blocks.Inspection) error {
	r := g.io.Renderer()
	title := r.NewStyle().Bold(true)
	styled := g.io.IsStdoutTTY()
	section := func(s string) string {
		if styled {
			return title.Render(s)
		}
		return s
	}
	m := in.Info.Meta
	w := g.io.Out
	fmt.Fprintf(w, "%s %s\n", section("Block"), m.BlockID)
	kv := render.NewTable(w, r, false)
	kv.Row("  tenant", m.TenantID)
	kv.Row("  format", m.Format)
	kv.Row("  compaction level", fmt.Sprint(m.CompactionLevel))
	kv.Row("  time range", m.StartTime.UTC().Format(time.RFC3339)+" .. "+m.EndTime.UTC().Format(time.RFC3339))
	kv.Row("  traces", fmt.Sprint(m.TotalObjects))
	kv.Row("  data.parquet", fmt.Sprintf("%s (%d bytes), footer %d bytes", render.Bytes(m.Size), m.Size, m.FooterSize))
	kv.Row("  written by", in.CreatedBy)
	var ded []string
	for _, c := range m.DedicatedColumns {
		ded = append(ded, c.Name)
	}
	kv.Row("  dedicated columns", strings.Join(ded, ", "))
	if in.Info.Compacted {
		kv.Row("  compacted", in.Info.CompactedTime.UTC().Format(time.RFC3339))
	}
	if err := kv.Flush(); err != nil {
		return err
	}

	fmt.Fprintf(w, "\n%s\n", section("Objects"))
	t := render.NewTable(w, r, styled)
	t.Header("  NAME", "SIZE")
	for _, o := range in.Objects {
		t.Row("  "+o.Name, fmt.Sprint(o.Size))
	}
	if err := t.Flush(); err != nil {
		return err
	}

	fmt.Fprintf(w, "\n%s\n", section("Row groups"))
	t = render.NewTable(w, r, styled)
	t.Header("  #", "ROWS", "COMPRESSED", "UNCOMPRESSED", "FIRST TRACE ID", "LAST TRACE ID")
	for i, rg := range in.RowGroups {
		t.Row(fmt.Sprintf("  %d", i), fmt.Sprint(rg.Rows), render.Bytes(uint64(rg.CompressedSize)), render.Bytes(uint64(rg.UncompressedSize)), rg.MinTraceID, rg.MaxTraceID)
	}
	if err := t.Flush(); err != nil {
		return err
	}

	fmt.Fprintf(w, "\n%s\n", section("Columns"))
	t = render.NewTable(w, r, styled)
	t.Header("  COLUMN", "VALUES", "COMPRESSED", "UNCOMPRESSED", "CODEC", "ENCODINGS")
	for _, c := range in.Columns {
		t.Row("  "+c.Path, fmt.Sprint(c.Values), fmt.Sprint(c.CompressedSize), fmt.Sprint(c.UncompressedSize), c.Codec, strings.Join(c.Encodings, ","))
	}
	if err := t.Flush(); err != nil {
		return err
	}

	fmt.Fprintf(w, "\n%s\n", section("Bloom filter"))
	t = render.NewTable(w, r, styled)
	t.Header("  SHARD", "SIZE", "BITS SET", "EST. FALSE POSITIVES")
	for _, bl := range in.Blooms {
		t.Row(fmt.Sprintf("  bloom-%d", bl.Shard), fmt.Sprint(bl.Size), fmt.Sprintf("%.2f%%", 100*bl.FillRatio), fmt.Sprintf("%.4f%%", 100*bl.FalsePositiveRate))
	}
	return t.Flush()
}
