package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/tracectl/tracectl/internal/blocks"
	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/render"
	"github.com/tracectl/tracectl/internal/search"
	"github.com/tracectl/tracectl/internal/tempoclient"
)

func init() {
	registerCommand(func(root *cobra.Command, g *globalOptions) { root.AddCommand(newSearchCmd(g)) })
}

type searchOptions struct {
	Server                   string
	Tags                     string
	MinDuration, MaxDuration time.Duration
	Start, End               string
	Limit, SpansPerSpanSet   int
	Timeout                  time.Duration
}

func newSearchCmd(g *globalOptions) *cobra.Command {
	o := &searchOptions{}
	cmd := &cobra.Command{
		Use:   "search [TRACEQL]",
		Short: "Find traces with TraceQL or tags, in a bucket or through a Tempo/tracectl server",
		Long: `Search traces the way Grafana does: with a TraceQL query
({ resource.service.name = "frontend" && duration > 100ms }), or with --tags in
Tempo's older logfmt form (service.name=frontend http.status_code=500). Without
either, every trace matches ({}).

With --server the search runs on a Tempo or tracectl serve (GET /api/search; the
tenant is sent as X-Scope-OrgID). Otherwise tracectl reads the blocks of the
bucket (--storage) itself. Without --start/--end a bucket is searched whole,
while Tempo searches only the recent data it holds in memory: give a window.

Output (-o): table on a terminal, json (Tempo's search response, as /api/search
returns it) otherwise or when asked for.

` + exitCodesHelp,
		Example: `  tracectl search '{ resource.service.name = "frontend" && status = error }' --start 24h
  tracectl search --tags 'service.name=checkout' --min-duration 100ms --storage s3://traces?region=eu-west-1
  tracectl search '{ span.http.status_code >= 500 }' --server http://tempo:3200 --start 2026-11-20 -o json | jq -r '.traces[].traceID'`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usageError("search takes one TraceQL query (quote it), got %d arguments", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			q := ""
			if len(args) == 1 {
				q = args[0]
			}
			return runSearch(cmd.Context(), g, o, q)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Server, "server", "", "search through this Tempo or tracectl serve (http://host:3200) instead of reading the bucket (env TRACECTL_SERVER)")
	f.StringVar(&o.Tags, "tags", "", "logfmt tag search instead of TraceQL: 'service.name=frontend http.status_code=500' (env TRACECTL_TAGS)")
	f.DurationVar(&o.MinDuration, "min-duration", 0, "only traces at least this long (env TRACECTL_MIN_DURATION)")
	f.DurationVar(&o.MaxDuration, "max-duration", 0, "only traces at most this long (env TRACECTL_MAX_DURATION)")
	f.StringVar(&o.Start, "start", "", "only traces with spans at or after this time: RFC 3339, a date, Unix seconds or a duration ago (env TRACECTL_START)")
	f.StringVar(&o.End, "end", "", "only traces with spans at or before this time (env TRACECTL_END)")
	f.IntVar(&o.Limit, "limit", 0, fmt.Sprintf("most traces returned; 0 leaves it to the server (Tempo: %d) (env TRACECTL_LIMIT)", search.DefaultLimit))
	f.IntVar(&o.SpansPerSpanSet, "spss", 0, fmt.Sprintf("most matched spans shown per trace; 0 leaves it to the server (Tempo: %d) (env TRACECTL_SPSS)", search.DefaultSpansPerSpanSet))
	f.DurationVar(&o.Timeout, "timeout", tempoclient.DefaultTimeout, "longest wait for --server (env TRACECTL_TIMEOUT)")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"table", "json"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func runSearch(ctx context.Context, g *globalOptions, o *searchOptions, q string) error {
	format := g.Output
	switch format {
	case "":
		format = "json"
		if g.io.IsStdoutTTY() {
			format = "table"
		}
	case "table", "json":
	default:
		return usageError("search: unknown output format %q; use table or json", g.Output)
	}
	if q != "" && o.Tags != "" {
		return usageError("give a TraceQL query or --tags, not both")
	}
	if q == "" && o.Tags == "" {
		q = "{}"
	}
	if o.Limit < 0 || o.SpansPerSpanSet < 0 {
		return usageError("--limit and --spss must not be negative")
	}
	if o.MinDuration < 0 || o.MaxDuration < 0 || (o.MaxDuration > 0 && o.MinDuration > o.MaxDuration) {
		return usageError("--min-duration and --max-duration: want 0 <= min <= max")
	}
	now := time.Now()
	start, err := parseTimeFlag("start", o.Start, now)
	if err != nil {
		return err
	}
	end, err := parseTimeFlag("end", o.End, now)
	if err != nil {
		return err
	}
	if !start.IsZero() && !end.IsZero() && end.Before(start) {
		return usageError("--end (%s) is before --start (%s)", end.Format(time.RFC3339), start.Format(time.RFC3339))
	}
	req := tempoclient.SearchRequest{Query: q, Tags: o.Tags, MinDuration: o.MinDuration, MaxDuration: o.MaxDuration,
		Limit: o.Limit, SpansPerSpanSet: o.SpansPerSpanSet, Start: start, End: end}

	var raw []byte
	where := ""
	if o.Server != "" {
		raw, where, err = searchServer(ctx, g, o, req)
	} else {
		raw, where, err = searchBucket(ctx, g, req)
	}
	if err != nil {
		return err
	}
	if format == "json" {
		_, err := g.io.Out.Write(append(raw, '\n'))
		return err
	}
	var res tempoclient.SearchResult
	if err := json.Unmarshal(raw, &res); err != nil {
		return fmt.Errorf("decoding the search answer of %s: %w", where, err)
	}
	return writeSearchTable(g, &res, where)
}

// searchServer asks a Tempo-compatible server and returns its JSON answer.
func searchServer(ctx context.Context, g *globalOptions, o *searchOptions, req tempoclient.SearchRequest) ([]byte, string, error) {
	c, err := tempoclient.New(o.Server, tempoclient.Options{Tenant: g.Tenant, Timeout: o.Timeout, UserAgent: "tracectl/" + version})
	if err != nil {
		return nil, "", usageError("--server: %v", err)
	}
	res, err := c.Search(ctx, req)
	if err != nil {
		if errors.Is(err, tempoclient.ErrBadRequest) {
			return nil, "", &exitErr{code: exitUsage, err: err}
		}
		return nil, "", err
	}
	return res.Raw, c.URL(), nil
}

// searchBucket runs the search engine over the tenant's blocks and
// returns Tempo's JSON answer.
func searchBucket(ctx context.Context, g *globalOptions, req tempoclient.SearchRequest) ([]byte, string, error) {
	// The engine parses the request exactly as the server's /api/search.
	sreq, err := search.ParseRequest(req.Values())
	if err != nil {
		return nil, "", &exitErr{code: exitUsage, err: err}
	}
	b, err := g.openBucket(ctx)
	if err != nil {
		return nil, "", err
	}
	l, err := blocks.List(ctx, b, g.Tenant, blocks.ListOptions{Since: req.Start, Until: req.End})
	if err != nil {
		return nil, "", fmt.Errorf("listing blocks of tenant %s in %s: %w", g.Tenant, b, err)
	}
	for _, p := range l.Problems {
		fmt.Fprintf(g.io.ErrOut, "tracectl: warning: %v\n", p)
	}
	metas := make([]*block.Meta, len(l.Blocks))
	for i, bi := range l.Blocks {
		metas[i] = bi.Meta
	}
	// A block that cannot be read is skipped with a warning, as `get`
	// does; the search fails only when every block failed.
	var warnMu sync.Mutex
	eng := search.NewEngine(b, search.Options{SkipUnreadable: true, OnSkip: func(_, tenant string, m *block.Meta, err error) {
		warnMu.Lock()
		defer warnMu.Unlock()
		fmt.Fprintf(g.io.ErrOut, "tracectl: warning: block %s/%s skipped, it cannot be read: %v\n", tenant, m.BlockID, err)
	}})
	resp, err := eng.Search(ctx, g.Tenant, metas, nil, sreq)
	if err != nil {
		if errors.Is(err, search.ErrBadRequest) || errors.Is(err, search.ErrUnsupported) {
			return nil, "", &exitErr{code: exitUsage, err: err}
		}
		return nil, "", fmt.Errorf("searching tenant %s in %s: %w", g.Tenant, b, err)
	}
	raw, err := json.Marshal(resp)
	if err != nil {
		return nil, "", err
	}
	if g.Verbose {
		fmt.Fprintf(g.io.ErrOut, "%d blocks of tenant %s in range\n", len(metas), g.Tenant)
	}
	return raw, b.String(), nil
}

func writeSearchTable(g *globalOptions, res *tempoclient.SearchResult, where string) error {
	t := render.NewTable(g.io.Out, g.io.Renderer(), g.io.IsStdoutTTY())
	t.Header("TRACE ID", "START", "DURATION", "ROOT SERVICE", "ROOT SPAN", "MATCHED", "SERVICES")
	for _, tr := range res.Traces {
		start := ""
		if tr.StartTimeUnixNano > 0 {
			start = time.Unix(0, int64(tr.StartTimeUnixNano)).UTC().Format("2006-01-02T15:04:05.000Z")
		}
		matched := ""
		if len(tr.SpanSets) > 0 {
			n := uint32(0)
			for _, s := range tr.SpanSets {
				n += s.Matched
			}
			matched = strconv.FormatUint(uint64(n), 10)
		}
		t.Row(tr.TraceID, start, (time.Duration(tr.DurationMs) * time.Millisecond).String(),
			oneLine(tr.RootServiceName), oneLine(tr.RootTraceName), matched, services(tr.ServiceStats))
	}
	if err := t.Flush(); err != nil {
		return err
	}
	if len(res.Traces) == 0 && !g.Quiet {
		fmt.Fprintf(g.io.ErrOut, "no traces found for tenant %s in %s\n", g.Tenant, where)
	}
	return nil
}

// services lists a trace's services, the ones with errors marked.
func services(stats map[string]tempoclient.ServiceStats) string {
	names := make([]string, 0, len(stats))
	for name, s := range stats {
		if s.ErrorCount > 0 {
			name += "(" + strconv.FormatUint(uint64(s.ErrorCount), 10) + " err)"
		}
		names = append(names, oneLine(name))
	}
	sort.Strings(names)
	return strings.Join(names, ",")
}

// oneLine keeps a table cell on one line and free of control characters
// (names come from traces, which anyone can send).
func oneLine(s string) string {
	var b bytes.Buffer
	for _, r := range s {
		switch {
		case r == '\n' || r == '\r' || r == '\t':
			b.WriteByte(' ')
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
