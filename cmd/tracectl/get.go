package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tracectl/tracectl/internal/blocks"
	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/render"
	"github.com/tracectl/tracectl/internal/tempoclient"
)

func init() {
	registerCommand(func(root *cobra.Command, g *globalOptions) { root.AddCommand(newGetCmd(g)) })
}

type getOptions struct {
	Start, End string

	// --server mode: Tempo's (or tracectl's) HTTP query API.
	Server                string
	BearerToken           string
	User, Password        string
	TLSCAFile             string
	TLSCertFile           string
	TLSKeyFile            string
	TLSServerName         string
	TLSInsecureSkipVerify bool
	Timeout               time.Duration
	ServerEncoding        string

	// Tree view.
	Attrs   bool
	Depth   int
	Service string
	Errors  bool

	storageFlag bool // --storage given on the command line
}

const traceIDHelp = `The trace ID may be 32 or fewer hex digits in any case (leading zeros may be
left out, as Tempo prints them), or a whole W3C traceparent value
(00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01).`

// getOutputs are the -o formats of get.
var getOutputs = []string{"tree", "json", "otlp-json", "jaeger-json", "table", "raw"}

func newGetCmd(g *globalOptions) *cobra.Command {
	opts := &getOptions{}
	cmd := &cobra.Command{
		Use:   "get TRACE-ID",
		Short: "Fetch a trace by ID from a bucket or a Tempo server and print it",
		Long: `Find a trace and print it: from the blocks of the tenant in a bucket
(--storage, no server needed), or from a Tempo query frontend or tracectl serve
(--server, with --tenant sent as X-Scope-OrgID).

` + traceIDHelp + `

Output formats (-o):
  tree         a header and the span tree as a waterfall (default on a terminal);
               --attrs, --depth, --service and --errors shape it
  json         the JSON of Tempo's /api/v2/traces/<id> (default when piped)
  otlp-json    OTLP JSON (resourceSpans, hex IDs)
  jaeger-json  the JSON Jaeger's UI loads from a file
  table        one line per span
  raw          OTLP protobuf (TracesData) bytes; only to a file or pipe

Piped output, NO_COLOR and --color never have no colour; --color always forces it.

` + exitCodesHelp,
		Example: `  tracectl get 594dbe7e6cff645eb51079037485e52a --storage file:///var/tempo
  tracectl get 00-594dbe7e6cff645eb51079037485e52a-3cdeabd114afbf66-01 --errors
  tracectl get 5b8efff798038103 --server https://tempo.example.com --tenant team-a -o jaeger-json > trace.json`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError("get takes exactly one trace ID, got %d arguments\n%s", len(args), traceIDHelp)
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.storageFlag = cmd.Flags().Changed("storage")
			return runGet(cmd.Context(), g, opts, args[0])
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Start, "start", "", "only blocks with spans at or after this time: RFC 3339, Unix seconds or a duration ago (env TRACECTL_START)")
	f.StringVar(&opts.End, "end", "", "only blocks with spans at or before this time (env TRACECTL_END)")
	f.StringVar(&opts.Server, "server", "", "read from Tempo's HTTP API at this URL (http[s]://host:port[/prefix]) instead of a bucket (env TRACECTL_SERVER)")
	f.StringVar(&opts.BearerToken, "bearer-token", "", "with --server: send Authorization: Bearer (env TRACECTL_BEARER_TOKEN, better than the flag)")
	f.StringVar(&opts.User, "user", "", "with --server: basic-auth user (env TRACECTL_USER)")
	f.StringVar(&opts.Password, "password", "", "with --server: basic-auth password (env TRACECTL_PASSWORD, better than the flag)")
	f.StringVar(&opts.TLSCAFile, "tls-ca-file", "", "with --server: trust the CAs in this PEM file (env TRACECTL_TLS_CA_FILE)")
	f.StringVar(&opts.TLSCertFile, "tls-cert-file", "", "with --server: client certificate for mutual TLS (env TRACECTL_TLS_CERT_FILE)")
	f.StringVar(&opts.TLSKeyFile, "tls-key-file", "", "with --server: key of the client certificate (env TRACECTL_TLS_KEY_FILE)")
	f.StringVar(&opts.TLSServerName, "tls-server-name", "", "with --server: name to check in the server's certificate (env TRACECTL_TLS_SERVER_NAME)")
	f.BoolVar(&opts.TLSInsecureSkipVerify, "tls-insecure-skip-verify", false, "with --server: do not verify the server's certificate (test servers only) (env TRACECTL_TLS_INSECURE_SKIP_VERIFY)")
	f.DurationVar(&opts.Timeout, "timeout", tempoclient.DefaultTimeout, "with --server: give up on a request after this long (env TRACECTL_TIMEOUT)")
	f.StringVar(&opts.ServerEncoding, "server-encoding", "protobuf", "with --server: ask for protobuf (as Grafana does) or json (env TRACECTL_SERVER_ENCODING)")
	f.BoolVar(&opts.Attrs, "attrs", false, "tree: show span and resource attributes, events and links under each span (env TRACECTL_ATTRS)")
	f.IntVar(&opts.Depth, "depth", 0, "tree: show only this many levels (0: all) (env TRACECTL_DEPTH)")
	f.StringVar(&opts.Service, "service", "", "tree: keep spans of this service and their ancestors (env TRACECTL_SERVICE)")
	f.BoolVar(&opts.Errors, "errors", false, "tree: keep spans with error status and their ancestors (env TRACECTL_ERRORS)")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(getOutputs, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("server-encoding", cobra.FixedCompletions([]string{"protobuf", "json"}, cobra.ShellCompDirectiveNoFileComp))
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

// checkGetOptions rejects combinations that cannot work, before any
// request is made.
func checkGetOptions(g *globalOptions, opts *getOptions) error {
	if g.Output == "" {
		g.Output = "json"
		if g.io.IsStdoutTTY() {
			g.Output = "tree"
		}
	}
	known := false
	for _, o := range getOutputs {
		known = known || g.Output == o
	}
	if !known {
		return usageError("get: unknown output format %q; use %s", g.Output, strings.Join(getOutputs, ", "))
	}
	if g.Output != "tree" && (opts.Attrs || opts.Depth != 0 || opts.Service != "" || opts.Errors) {
		return usageError("--attrs, --depth, --service and --errors shape the tree view; use them with -o tree, not -o %s", g.Output)
	}
	if opts.Depth < 0 {
		return usageError("--depth %d: give a number of levels (1 shows the roots only; 0 shows all)", opts.Depth)
	}
	if g.Output == "raw" && g.io.IsStdoutTTY() {
		return usageError("-o raw writes protobuf bytes, which a terminal cannot show; redirect them: tracectl get ID -o raw > trace.pb")
	}
	if opts.Server != "" && opts.storageFlag {
		return usageError("--server and --storage both given; get reads from one source: a Tempo server or a bucket")
	}
	switch opts.ServerEncoding {
	case "protobuf", "json":
	default:
		return usageError("--server-encoding must be protobuf or json, not %q", opts.ServerEncoding)
	}
	if opts.Timeout <= 0 {
		return usageError("--timeout %s: give a positive duration (30s)", opts.Timeout)
	}
	return nil
}

func runGet(ctx context.Context, g *globalOptions, opts *getOptions, arg string) error {
	if err := checkGetOptions(g, opts); err != nil {
		return err
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
	if opts.Server != "" {
		return getFromServer(ctx, g, opts, id, start, end)
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
	return writeTrace(g, opts, res.Trace, uint64(res.Stats.InspectedBytes))
}

// getFromServer asks a Tempo-compatible query API, as Grafana does: v2,
// and v1 only when v2 is missing (404).
func getFromServer(ctx context.Context, g *globalOptions, opts *getOptions, id block.TraceID, start, end time.Time) error {
	c, err := tempoclient.New(opts.Server, tempoclient.Options{
		Tenant:      g.Tenant,
		BearerToken: opts.BearerToken,
		Username:    opts.User,
		Password:    opts.Password,
		TLS: tempoclient.TLSOptions{
			CAFile:             opts.TLSCAFile,
			CertFile:           opts.TLSCertFile,
			KeyFile:            opts.TLSKeyFile,
			ServerName:         opts.TLSServerName,
			InsecureSkipVerify: opts.TLSInsecureSkipVerify,
		},
		Timeout:   opts.Timeout,
		UserAgent: "tracectl/" + version,
	})
	if err != nil {
		return &exitErr{code: exitUsage, err: fmt.Errorf("--server: %w", err)}
	}
	enc := tempoclient.Protobuf
	if opts.ServerEncoding == "json" {
		enc = tempoclient.JSON
	}
	res, err := c.TraceByID(ctx, id.Hex(), tempoclient.TraceRequest{Start: start, End: end, Encoding: enc})
	switch {
	case err == nil:
	case errors.Is(err, tempoclient.ErrNotFound):
		var se *tempoclient.StatusError
		if errors.As(err, &se) {
			// Neither /api/v2/traces nor /api/traces exists there.
			return fmt.Errorf("%w; is %s a Tempo query frontend (or tracectl serve)?", err, c.URL())
		}
		return notFoundError("trace %s not found for tenant %s at %s", id.Hex(), g.Tenant, c.URL())
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(err, tempoclient.ErrUnauthorized):
		return fmt.Errorf("%w (--bearer-token, or --user and --password)", err)
	case errors.Is(err, tempoclient.ErrForbidden):
		return fmt.Errorf("%w (--tenant)", err)
	default:
		return err
	}
	if g.Verbose {
		fmt.Fprintf(g.io.ErrOut, "answered by %s (api %s, %d bytes inspected)\n", c.URL(), res.API, res.InspectedBytes)
	}
	if err := writeTrace(g, opts, res.Trace, res.InspectedBytes); err != nil {
		return err
	}
	if res.Partial {
		msg := res.Message
		if msg == "" {
			msg = "no reason given"
		}
		fmt.Fprintf(g.io.ErrOut, "tracectl: warning: the server returned part of trace %s only: %s\n", id.Hex(), msg)
		return &exitErr{code: exitPartial, err: errors.New("partial trace"), silent: true}
	}
	return nil
}

func writeTrace(g *globalOptions, opts *getOptions, td ptrace.Traces, inspected uint64) error {
	out := g.io.Out
	switch g.Output {
	case "tree":
		return render.WriteTree(out, td, render.TreeOptions{
			Renderer:   g.io.Renderer(),
			Width:      g.io.LayoutWidth(),
			Attrs:      opts.Attrs,
			MaxDepth:   opts.Depth,
			Service:    opts.Service,
			ErrorsOnly: opts.Errors,
		})
	case "table":
		return render.WriteSpanTable(out, td, g.io.Renderer(), g.io.ColorEnabled())
	case "jaeger-json":
		return render.WriteJaegerJSON(out, td)
	case "raw":
		data, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(td)
		if err != nil {
			return fmt.Errorf("encoding the trace as protobuf: %w", err)
		}
		_, err = out.Write(data)
		return err
	}
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
	_, err := out.Write(buf.Bytes())
	return err
}
