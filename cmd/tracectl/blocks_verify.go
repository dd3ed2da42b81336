package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/charmbracelet/lipgloss"
	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/tracectl/tracectl/internal/blocks/compact"
)

type blocksVerifyOptions struct {
	Repair bool
}

func newBlocksVerifyCmd(g *globalOptions) *cobra.Command {
	o := &blocksVerifyOptions{}
	cmd := &cobra.Command{
		Use:   "verify [BLOCK-ID...]",
		Short: "Check that every block of a tenant is sound",
		Long: `Check every live block of the tenant (or the blocks named): meta.json parses
and matches data.parquet (size, footer size, row groups, trace count, a time
range covering every trace), rows are sorted and unique by trace ID, every
trace ID is in the bloom filter, the index object names each row group's last
trace ID, and every object meta.json implies is there. Only the trace-ID and
time columns are read, not whole blocks.

--repair rewrites what can be rebuilt from a sound data.parquet: the bloom
shards, the index object and meta.json (written last). Damaged or unsorted
data is never rewritten; such blocks stay reported.

Exit code 0 when every block is sound (or repaired), 1 when problems remain.
Output formats (-o): text (default), json.

` + exitCodesHelp,
		Example: `  tracectl blocks verify
  tracectl blocks verify 8638efc1-2742-4667-8de0-8bae4bda7236 --repair
  tracectl blocks verify -o json | jq '.blocks[] | select(.problems | length > 0)'`,
		ValidArgsFunction: g.completeBlockIDs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runBlocksVerify(cmd.Context(), g, o, args)
		},
	}
	cmd.Flags().BoolVar(&o.Repair, "repair", false, "rebuild bloom shards, index and meta.json where data.parquet is sound (env TRACECTL_REPAIR)")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"text", "json"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func runBlocksVerify(ctx context.Context, g *globalOptions, o *blocksVerifyOptions, args []string) error {
	switch g.Output {
	case "", "text", "json":
	default:
		return usageError("blocks verify: unknown output format %q; use text or json", g.Output)
	}
	var ids []uuid.UUID
	for _, a := range args {
		id, err := uuid.Parse(a)
		if err != nil {
			return usageError("%q is not a block ID; block IDs are UUIDs like 8638efc1-2742-4667-8de0-8bae4bda7236 (see 'tracectl blocks list')", a)
		}
		ids = append(ids, id)
	}
	b, err := g.openBucket(ctx)
	if err != nil {
		return err
	}
	res, err := compact.Verify(ctx, b, g.Tenant, compact.VerifyOptions{Blocks: ids, Repair: o.Repair})
	if err != nil {
		return fmt.Errorf("verifying tenant %s in %s: %w", g.Tenant, b, err)
	}
	for i := range res.Blocks {
		if res.Blocks[i].Problems == nil {
			res.Blocks[i].Problems = []string{}
		}
	}
	if res.Blocks == nil {
		res.Blocks = []compact.BlockReport{}
	}
	if g.Output == "json" {
		enc := json.NewEncoder(g.io.Out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return err
		}
	} else {
		r := g.io.Renderer()
		styled := g.io.IsStdoutTTY()
		okStyle, badStyle := r.NewStyle().Foreground(lipgloss.Color("2")), r.NewStyle().Foreground(lipgloss.Color("196")).Bold(true)
		for _, br := range res.Blocks {
			status := "ok"
			switch {
			case br.Fixed:
				status = "repaired"
			case !br.OK():
				status = "PROBLEMS"
			}
			if styled {
				if br.OK() {
					status = okStyle.Render(status)
				} else {
					status = badStyle.Render(status)
				}
			}
			fmt.Fprintf(g.io.Out, "%s %s %s %d traces\n", br.BlockID, status, br.Format, br.Traces)
			for _, p := range br.Problems {
				fmt.Fprintf(g.io.Out, "  problem: %s\n", p)
			}
			for _, p := range br.Repaired {
				fmt.Fprintf(g.io.Out, "  repaired: %s\n", p)
			}
		}
		if !g.Quiet {
			n := res.Problems()
			switch {
			case len(res.Blocks) == 0:
				fmt.Fprintf(g.io.ErrOut, "no blocks for tenant %s in %s\n", g.Tenant, b)
			case n == 0:
				fmt.Fprintf(g.io.ErrOut, "%d blocks verified, all sound\n", len(res.Blocks))
			default:
				hint := "; try --repair"
				if o.Repair {
					hint = "; what is left cannot be repaired safely"
				}
				fmt.Fprintf(g.io.ErrOut, "%d of %d blocks have problems%s\n", n, len(res.Blocks), hint)
			}
		}
	}
	if n := res.Problems(); n > 0 {
		var names []string
		for _, br := range res.Blocks {
			if !br.OK() {
				names = append(names, br.BlockID)
			}
		}
		return &exitErr{code: exitError, silent: true, err: fmt.Errorf("problems in %d blocks: %s", n, strings.Join(names, ", "))}
	}
	return nil
}
