package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tracectl/tracectl/internal/blocks"
	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/render"
)

func init() {
	registerCommand(func(root *cobra.Command, g *globalOptions) { root.AddCommand(newGetCmd(g)) })
}

type getOptions struct {
	Start, End string
}

const traceIDHelp = `The trace ID may be 32 or fewer hex digits in any case (leading zeros may be
left out, as Tempo prints them), or a whole W3C traceparent value
(00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01).`

func newGetCmd(g *globalOptions) *cobra.Command {
	opts := &getOptions{}
	cmd := &cobra.Command{
		Use:   "get TRACE-ID",
		Short: "Fetch a trace by ID from a bucket and print it",
		Long: `Find a trace in every block of the tenant and print it.

` + traceIDHelp + `

Output formats (-o): json (Tempo's /api/v2/traces JSON, default), otlp-json
(OTLP JSON: resourceSpans with hex IDs).

` + exitCodesHelp,
		Example: `  tracectl get 594dbe7e6cff645eb51079037485e52a --storage file:///var/tempo
  tracectl get 00-594dbe7e6cff645eb51079037485e52a-3cdeabd114afbf66-01 -o otlp-json`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError("get takes exactly one trace ID, got %d arguments\n%s", len(args), traceIDHelp)
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runGet(cmd.Context(), g, opts, args[0])
		},
	}
	cmd.Flags().StringVar(&opts.Start, "start", "", "only blocks with spans at or after this time: RFC 3339, Unix seconds or a duration ago (env TRACECTL_START)")
	cmd.Flags().StringVar(&opts.End, "end", "", "only blocks with spans at or before this time (env TRACECTL_END)")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"json", "otlp-json"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// parseTraceIDArg accepts hex IDs and W3C traceparent values.
func parseTraceIDArg(arg string) (block.TraceID, error) {
	s := strings.TrimSpace(arg)
	if parts := strings.Split(s, "-"); len(parts) == 4 && len(parts[0]) == 2 && len(parts[1]) == 32 && len(parts[2]) == 16 && len(parts[3]) == 2 {
		s = parts[1]
	}
	id, err := block.ParseTraceID(s)
	if err != nil || id == (block.TraceID{}) {
		return block.TraceID{}, usageError("%q is not a trace ID; give up to 32 hex digits (594dbe7e6cff645eb51079037485e52a, 5b8efff798038103) or a traceparent (00-594dbe7e6cff645eb51079037485e52a-3cdeabd114afbf66-01)", arg)
	}
	return id, nil
}

func runGet(ctx context.Context, g *globalOptions, opts *getOptions, arg string) error {
	switch g.Output {
	case "", "json", "otlp-json":
	default:
		return usageError("get: unknown output format %q; use json or otlp-json", g.Output)
	}
	id, err := parseTraceIDArg(arg)
	if err != nil {
		return err
	}
	now := time.Now()
	start, err := parseTimeFlag("start", opts.Start, now)
	if err != nil {
		return err
	}
	end, err := parseTimeFlag("end", opts.End, now)
	if err != nil {
		return err
	}
	b, err := g.openBucket(ctx)
	if err != nil {
		return err
	}
	l, err := blocks.List(ctx, b, g.Tenant, blocks.ListOptions{Since: start, Until: end})
	if err != nil {
		return fmt.Errorf("listing blocks of tenant %s in %s: %w", g.Tenant, b, err)
	}
	for _, p := range l.Problems {
		fmt.Fprintf(g.io.ErrOut, "tracectl: warning: %v\n", p)
	}
	metas := make([]*block.Meta, len(l.Blocks))
	for i, bi := range l.Blocks {
		metas[i] = bi.Meta
	}
	res, err := blocks.FindTrace(ctx, b, metas, id, blocks.FindOptions{Start: start, End: end})
	if err != nil {
		return fmt.Errorf("finding trace %s in %s: %w", id.Hex(), b, err)
	}
	for _, p := range res.Problems {
		fmt.Fprintf(g.io.ErrOut, "tracectl: warning: %v\n", p)
	}
	if g.Verbose {
		fmt.Fprintf(g.io.ErrOut, "%d blocks in range, %d ruled out by bloom filter, %d read, %d held the trace\n",
			res.Stats.Blocks, res.Stats.BloomNegatives, res.Stats.BlocksRead, res.Stats.BlocksFound)
	}
	if !res.Found {
		return notFoundError("trace %s not found for tenant %s in %s (%d blocks searched)", id.Hex(), g.Tenant, b, res.Stats.Blocks)
	}
	return writeTrace(g, res.Trace, uint64(res.Stats.InspectedBytes))
}

func writeTrace(g *globalOptions, td ptrace.Traces, inspected uint64) error {
	var buf bytes.Buffer
	switch g.Output {
	case "otlp-json":
		data, err := (&ptrace.JSONMarshaler{}).MarshalTraces(td)
		if err != nil {
			return err
		}
		buf.Write(data)
	default:
		if err := render.TraceByIDV2(&buf, &td, inspected); err != nil {
			return err
		}
	}
	buf.WriteByte('\n')
	_, err := g.io.Out.Write(buf.Bytes())
	return err
}
