package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/tracectl/tracectl/internal/migrate"
	"github.com/tracectl/tracectl/internal/render"
)

func init() {
	registerCommand(func(root *cobra.Command, g *globalOptions) {
		m := &cobra.Command{
			Use:   "migrate",
			Short: "Move traces from other stores into blocks",
			Args:  cobra.NoArgs,
		}
		from := &cobra.Command{
			Use:   "from",
			Short: "Migrate from a source (otlp-file)",
			Args:  cobra.NoArgs,
		}
		from.AddCommand(newMigrateOTLPFileCmd(g), newMigrateJaegerESCmd(g))
		m.AddCommand(from)
		root.AddCommand(m)
	})
}

type migrateOTLPFileOptions struct {
	To            string
	MaxErrors     int
	MaxBlockBytes int64
}

func newMigrateOTLPFileCmd(g *globalOptions) *cobra.Command {
	opts := &migrateOTLPFileOptions{}
	cmd := &cobra.Command{
		Use:   "otlp-file FILE...",
		Short: "Load OTLP files (JSON lines or protobuf, optionally gzip) into blocks",
		Long: `Load OTLP trace files into vParquet4 blocks.

A file holds OTLP/JSON ExportTraceServiceRequest objects one per line (what the
OpenTelemetry Collector's file exporter writes), or OTLP protobuf (length-prefixed
messages as the file exporter writes them, or one bare message). Gzip is detected.
Blocks carry the spans' own time range, so old traces stay findable by time.

Lines that cannot be read are reported with file and line number and skipped;
--max-errors stops the run after that many (what was read is still written).

Output formats (-o): text (default), json (the summary, for scripts).

` + exitCodesHelp,
		Example: `  tracectl migrate from otlp-file traces.jsonl --to file:///var/tempo/traces
  tracectl migrate from otlp-file export-*.json.gz --to s3://traces?region=eu-west-1 --tenant team-a -o json`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageError("migrate from otlp-file needs at least one FILE")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runMigrateOTLPFile(cmd.Context(), g, opts, args)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.To, "to", "", "bucket URL to write to (default: --storage) (env TRACECTL_TO)")
	f.IntVar(&opts.MaxErrors, "max-errors", -1, "stop after this many unreadable lines or messages; -1 means no limit (env TRACECTL_MAX_ERRORS)")
	f.Int64Var(&opts.MaxBlockBytes, "max-block-bytes", migrate.DefaultMaxBlockBytes, "OTLP bytes buffered before a block is cut (env TRACECTL_MAX_BLOCK_BYTES)")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"text", "json"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func runMigrateOTLPFile(ctx context.Context, g *globalOptions, opts *migrateOTLPFileOptions, files []string) error {
	switch g.Output {
	case "", "text", "json":
	default:
		return usageError("migrate: unknown output format %q; use text or json", g.Output)
	}
	if opts.To != "" {
		g.Storage = opts.To
	}
	b, err := g.openBucket(ctx)
	if err != nil {
		return err
	}
	s, runErr := migrate.MigrateOTLPFiles(ctx, migrate.OTLPFileOptions{
		Paths: files, Bucket: b, Tenant: g.Tenant, MaxBlockBytes: opts.MaxBlockBytes, MaxErrors: opts.MaxErrors,
		OnFile: func(path string, s *migrate.Summary) {
			if g.io.ShowProgress() {
				fmt.Fprintf(g.io.ErrOut, "%s: %d spans read so far, %d blocks written\n", path, s.SpansRead, len(s.Blocks))
			}
		},
	})
	if s != nil {
		if g.Output == "json" {
			enc := json.NewEncoder(g.io.Out)
			enc.SetIndent("", "  ")
			if err := enc.Encode(s); err != nil {
				return err
			}
		} else {
			for _, bad := range s.SkippedFirst {
				fmt.Fprintf(g.io.ErrOut, "tracectl: skipped %s\n", bad)
			}
			if s.Skipped > len(s.SkippedFirst) {
				fmt.Fprintf(g.io.ErrOut, "tracectl: … and %d more skipped\n", s.Skipped-len(s.SkippedFirst))
			}
			fmt.Fprintf(g.io.Out, "%d files, %d spans read, %d spans written in %d traces to %d blocks (%s) in %s/%s; %d inputs skipped; %s\n",
				s.Files, s.SpansRead, s.SpansWritten, s.Traces, len(s.Blocks), render.Bytes(s.Bytes), b, g.Tenant, s.Skipped, s.Elapsed.String())
		}
	}
	switch {
	case runErr != nil && ctx.Err() != nil:
		return runErr
	case errors.Is(runErr, migrate.ErrTooManyErrors):
		return &exitErr{code: exitError, err: fmt.Errorf("migration stopped: %w (what was read before is written)", runErr)}
	case runErr != nil:
		return runErr
	case s.Skipped > 0:
		return &exitErr{code: exitPartial, err: fmt.Errorf("%d unreadable inputs were skipped", s.Skipped)}
	}
	return nil
}
