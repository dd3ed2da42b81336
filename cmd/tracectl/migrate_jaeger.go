package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/charmbracelet/lipgloss"
	"github.com/spf13/cobra"

	"github.com/tracectl/tracectl/internal/migrate/jaegeres"
	"github.com/tracectl/tracectl/internal/render"
)

type migrateJaegerOptions struct {
	To                 string
	URLs               []string
	Username, Password string
	APIKey             string
	CA                 string
	InsecureSkipVerify bool
	Sniff              bool
	Prefixes           []string
	DateSeparator      string
	UseAliases         bool
	IncludeArchive     bool
	Since, Until       string
	Services           []string
	Parallel           int
	BatchSize          int
	MaxBlockBytes      int64
	Checkpoint         string
	Resume             bool
	DryRun             bool
	Verify             bool
	VerifySample       int
	MaxErrors          int
	MemoryLimit        int64
}

func newMigrateJaegerESCmd(g *globalOptions) *cobra.Command {
	o := &migrateJaegerOptions{}
	cmd := &cobra.Command{
		Use:   "jaeger-es --es-url URL[,URL…] --to BUCKET-URL",
		Short: "Move Jaeger's span history from Elasticsearch or OpenSearch into blocks",
		Long: `Move Jaeger's span history from Elasticsearch or OpenSearch into vParquet4 blocks.

The server is detected (Elasticsearch 6 to 9, OpenSearch 1 to 3). Span indices
([prefix-]jaeger-span-YYYY-MM-DD, hourly, rollover, or the read alias with
--es-use-aliases) are read from one point in time (sliced scroll where the
server has none), sorted by trace ID, so every trace is written whole even when
it spans several indices. Every Jaeger document variant is read: string or typed
tag values, tags-as-fields, IDs without leading zeros, 64- and 128-bit IDs.
Documents that cannot be decoded are skipped and reported (index, _id, reason).
Nothing is written to the cluster.

A checkpoint (--checkpoint, a local file or bucket:KEY in the target bucket) is
saved after each stored block; after a crash, --resume continues where the last
stored block ended, and every span is written exactly once. Re-running a
finished migration writes nothing.

--dry-run prints the plan: indices, document counts, estimated output.
--verify compares each index's document count with the spans written plus
duplicates and skipped documents, then reads --verify-sample traces back from
the blocks and compares them with Elasticsearch span by span.

Progress goes to stderr: a bar per index on a terminal, a line every 10s when
piped, nothing with -q. Output formats (-o): text (default), json (the summary).

` + exitCodesHelp,
		Example: `  tracectl migrate from jaeger-es --es-url http://es:9200 --to s3://traces?region=eu-west-1
  tracectl migrate from jaeger-es --es-url https://es:9200 --es-username elastic --es-ca ca.pem \
      --index-prefix prod --since 2026-01-01 --to file:///var/tempo/traces --checkpoint bucket:migrations/prod.json
  tracectl migrate from jaeger-es --es-url http://es:9200 --to gs://traces --dry-run`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			applyBatchMemory(cmd, o.MemoryLimit, slog.New(slog.DiscardHandler))
			return runMigrateJaegerES(cmd.Context(), g, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.To, "to", "", "bucket URL to write to (default: --storage) (env TRACECTL_TO)")
	f.StringSliceVar(&o.URLs, "es-url", nil, "Elasticsearch/OpenSearch URLs, comma-separated (env TRACECTL_ES_URL)")
	f.StringVar(&o.Username, "es-username", "", "basic-auth user (env TRACECTL_ES_USERNAME)")
	f.StringVar(&o.Password, "es-password", "", "basic-auth password; prefer the environment (env TRACECTL_ES_PASSWORD)")
	f.StringVar(&o.APIKey, "es-api-key", "", "API key, sent as 'Authorization: ApiKey …' (env TRACECTL_ES_API_KEY)")
	f.StringVar(&o.CA, "es-ca", "", "PEM file of CAs to trust for https (env TRACECTL_ES_CA)")
	f.BoolVar(&o.InsecureSkipVerify, "es-insecure-skip-verify", false, "do not verify the server's certificate (env TRACECTL_ES_INSECURE_SKIP_VERIFY)")
	f.BoolVar(&o.Sniff, "es-sniff", false, "discover the cluster's nodes and talk to them directly (env TRACECTL_ES_SNIFF)")
	f.StringSliceVar(&o.Prefixes, "index-prefix", nil, "Jaeger's --es.index-prefix; several are several index sets; default none (env TRACECTL_INDEX_PREFIX)")
	f.StringVar(&o.DateSeparator, "index-date-separator", "-", "Jaeger's --es.index-date-separator (env TRACECTL_INDEX_DATE_SEPARATOR)")
	f.BoolVar(&o.UseAliases, "es-use-aliases", false, "read <prefix>jaeger-span-read (Jaeger's --es.use-aliases) (env TRACECTL_ES_USE_ALIASES)")
	f.BoolVar(&o.IncludeArchive, "include-archive", false, "also read jaeger-span-archive; copies are de-duplicated (env TRACECTL_INCLUDE_ARCHIVE)")
	f.StringVar(&o.Since, "since", "", "only spans starting at or after this time (RFC 3339 or YYYY-MM-DD, UTC) (env TRACECTL_SINCE)")
	f.StringVar(&o.Until, "until", "", "only spans starting before this time (env TRACECTL_UNTIL)")
	f.StringSliceVar(&o.Services, "services", nil, "only traces with a span of these services, each whole (env TRACECTL_SERVICES)")
	f.IntVar(&o.Parallel, "parallel", jaegeres.DefaultParallel, "slices read at once (env TRACECTL_PARALLEL)")
	f.IntVar(&o.BatchSize, "batch-size", jaegeres.DefaultBatchSize, "documents per request, at most 10000 (env TRACECTL_BATCH_SIZE)")
	f.Int64Var(&o.MaxBlockBytes, "max-block-bytes", jaegeres.DefaultMaxBlockBytes, "document bytes read before a block is cut (env TRACECTL_MAX_BLOCK_BYTES)")
	f.StringVar(&o.Checkpoint, "checkpoint", "tracectl-jaeger-es.checkpoint.json", "checkpoint: a local file, or bucket:KEY in the target bucket; '' for none (env TRACECTL_CHECKPOINT)")
	f.BoolVar(&o.Resume, "resume", false, "continue the migration of the checkpoint (env TRACECTL_RESUME)")
	f.BoolVar(&o.DryRun, "dry-run", false, "print the plan and write nothing (env TRACECTL_DRY_RUN)")
	f.BoolVar(&o.Verify, "verify", false, "check counts and compare a sample of traces with Elasticsearch (env TRACECTL_VERIFY)")
	f.IntVar(&o.VerifySample, "verify-sample", jaegeres.DefaultVerifySample, "traces compared by --verify (env TRACECTL_VERIFY_SAMPLE)")
	f.IntVar(&o.MaxErrors, "max-errors", -1, "stop after this many undecodable documents; -1 means no limit (env TRACECTL_MAX_ERRORS)")
	addMemoryLimitFlag(cmd, &o.MemoryLimit)
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"text", "json"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func parseWhen(flag, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, usageError("--%s %q: want RFC 3339 (2026-11-18T00:00:00Z) or a date (2026-11-18)", flag, v)
}

func runMigrateJaegerES(ctx context.Context, g *globalOptions, o *migrateJaegerOptions) error {
	switch g.Output {
	case "", "text", "json":
	default:
		return usageError("migrate: unknown output format %q; use text or json", g.Output)
	}
	if len(o.URLs) == 0 {
		return usageError("migrate from jaeger-es needs --es-url (or TRACECTL_ES_URL)")
	}
	since, err := parseWhen("since", o.Since)
	if err != nil {
		return err
	}
	until, err := parseWhen("until", o.Until)
	if err != nil {
		return err
	}
	if o.BatchSize < 1 || o.BatchSize > 10000 {
		return usageError("--batch-size %d: want 1 to 10000", o.BatchSize)
	}
	if o.Parallel < 1 || o.Parallel > 64 {
		return usageError("--parallel %d: want 1 to 64", o.Parallel)
	}
	if o.To != "" {
		g.Storage = o.To
	}
	b, err := g.openBucket(ctx)
	if err != nil {
		return err
	}
	prog := newMigrateProgress(g)
	s, runErr := jaegeres.Migrate(ctx, jaegeres.Options{
		Client: jaegeres.ClientOptions{
			URLs: o.URLs, Username: o.Username, Password: o.Password, APIKey: o.APIKey,
			CAFile: o.CA, InsecureSkipVerify: o.InsecureSkipVerify, Sniff: o.Sniff,
		},
		Selection: jaegeres.Selection{
			Prefixes: o.Prefixes, DateSeparator: o.DateSeparator, UseAliases: o.UseAliases,
			IncludeArchive: o.IncludeArchive, Since: since, Until: until, Services: o.Services,
		},
		Bucket: b, Tenant: g.Tenant,
		Parallel: o.Parallel, BatchSize: o.BatchSize, MaxBlockBytes: o.MaxBlockBytes,
		Checkpoint: o.Checkpoint, Resume: o.Resume, DryRun: o.DryRun,
		MaxErrors: o.MaxErrors, Verify: o.Verify, VerifySample: o.VerifySample,
		OnProgress: prog.update, ProgressEvery: prog.every,
	})
	prog.finish()
	if s != nil {
		if err := printMigrateJaegerSummary(g, s, b.String()); err != nil {
			return err
		}
	}
	switch {
	case runErr != nil && ctx.Err() != nil:
		return runErr
	case errors.Is(runErr, jaegeres.ErrUnfinishedCheckpoint):
		return &exitErr{code: exitUsage, err: fmt.Errorf("migrate from jaeger-es: %w", runErr)}
	case errors.Is(runErr, jaegeres.ErrTooManyErrors):
		return &exitErr{code: exitError, err: fmt.Errorf("migration stopped: %w (what was read before is written; --resume continues)", runErr)}
	case runErr != nil:
		return fmt.Errorf("migrate from jaeger-es: %w", runErr)
	case s.Skipped > 0:
		return &exitErr{code: exitPartial, err: fmt.Errorf("%d undecodable documents were skipped", s.Skipped)}
	}
	return nil
}

func printMigrateJaegerSummary(g *globalOptions, s *jaegeres.Summary, bucket string) error {
	if g.Output == "json" {
		enc := json.NewEncoder(g.io.Out)
		enc.SetIndent("", "  ")
		return enc.Encode(s)
	}
	out := g.io.Out
	if s.Plan != nil {
		fmt.Fprintf(out, "plan: %s, by %s\n", s.Server, s.Snapshot)
		for _, ix := range s.Indices {
			fmt.Fprintf(out, "  %-40s %10d documents\n", ix.Name, ix.Docs)
		}
		fmt.Fprintf(out, "%d documents in %d indices; about %s in about %d blocks (from %d sampled documents, %.0f bytes each)\n",
			s.Plan.Documents, len(s.Indices), render.Bytes(s.Plan.EstimatedBytes), s.Plan.EstimatedBlocks, s.Plan.SampledDocs, s.Plan.AvgSourceBytes)
		return nil
	}
	for _, d := range s.SkippedDocs {
		fmt.Fprintf(g.io.ErrOut, "tracectl: skipped %s\n", d)
	}
	if s.Skipped > int64(len(s.SkippedDocs)) {
		fmt.Fprintf(g.io.ErrOut, "tracectl: … and %d more skipped\n", s.Skipped-int64(len(s.SkippedDocs)))
	}
	if s.AlreadyDone {
		fmt.Fprintf(out, "already finished (checkpoint %s): nothing written\n", s.Checkpoint)
	}
	fmt.Fprintf(out, "%s: %d indices, %d documents read, %d spans written in %d traces to %d blocks (%s) in %s/%s; %d duplicates, %d skipped; %s\n",
		s.Server, len(s.Indices), s.Documents, s.SpansWritten, s.Traces, len(s.Blocks), render.Bytes(s.Bytes), bucket, g.Tenant, s.Duplicates, s.Skipped, s.Elapsed.String())
	if v := s.Verify; v != nil {
		state := "ok"
		if !v.OK {
			state = fmt.Sprintf("%d problems", len(v.Problems))
		}
		fmt.Fprintf(out, "verify: %d indices counted, %d of %d sampled traces match: %s\n", len(v.Indices), v.Matched, v.Sampled, state)
		for _, p := range v.Problems {
			fmt.Fprintf(g.io.ErrOut, "tracectl: verify: %s\n", p)
		}
	}
	return nil
}

// migrateProgress draws a bar per index on a terminal, or a plain line
// every 10s when stderr is piped; nothing with -q.
type migrateProgress struct {
	g     *globalOptions
	tty   bool
	off   bool
	every time.Duration
	lines int
	last  *jaegeres.Progress
}

func newMigrateProgress(g *globalOptions) *migrateProgress {
	p := &migrateProgress{g: g, tty: g.io.ShowProgress(), off: g.Quiet, every: 10 * time.Second}
	if p.tty {
		p.every = 250 * time.Millisecond
	}
	return p
}

func (p *migrateProgress) update(pr *jaegeres.Progress) {
	if p.off {
		return
	}
	p.last = pr
	w := p.g.io.ErrOut
	var read, total int64
	for _, ix := range pr.Indices {
		read += ix.Read
		total += ix.Total
	}
	rate := 0.0
	if s := pr.Elapsed.Seconds(); s > 0 {
		rate = float64(pr.Read) / s
	}
	eta := "?"
	if rate > 0 && total > read {
		eta = (time.Duration(float64(total-read)/rate) * time.Second).Round(time.Second).String()
	}
	if !p.tty {
		if !pr.Done {
			fmt.Fprintf(w, "progress: %d/%d documents (%s), %d spans written, %d blocks, %.0f docs/s, eta %s\n",
				read, total, pct(read, total), pr.Spans, pr.Blocks, rate, eta)
		}
		return
	}
	r := p.g.io.Renderer()
	done := r.NewStyle().Foreground(lipgloss.Color("10"))
	todo := r.NewStyle().Faint(true)
	var b strings.Builder
	if p.lines > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", p.lines)
	}
	const width = 30
	for _, ix := range pr.Indices {
		n := 0
		if ix.Total > 0 {
			n = int(min(ix.Read, ix.Total) * width / ix.Total)
		}
		fmt.Fprintf(&b, "\x1b[2K%-32s %s%s %s\n", ix.Name, done.Render(strings.Repeat("█", n)), todo.Render(strings.Repeat("░", width-n)), pct(ix.Read, ix.Total))
	}
	fmt.Fprintf(&b, "\x1b[2K%d spans written, %d blocks (%s), %.0f docs/s, eta %s\n", pr.Spans, pr.Blocks, render.Bytes(pr.Bytes), rate, eta)
	p.lines = len(pr.Indices) + 1
	io.WriteString(w, b.String())
}

func (p *migrateProgress) finish() {}

func pct(a, b int64) string {
	if b == 0 {
		return "100%"
	}
	return fmt.Sprintf("%.0f%%", float64(a)*100/float64(b))
}
