package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tracectl/tracectl/internal/iostreams"
	"github.com/tracectl/tracectl/internal/storage"
	"github.com/tracectl/tracectl/internal/tenant"
)

// Exit codes, documented in `tracectl --help` and the README.
const (
	exitOK          = 0
	exitError       = 1
	exitUsage       = 2
	exitNotFound    = 3
	exitPartial     = 4
	exitInterrupted = 130
)

const exitCodesHelp = `Exit codes:
  0    success
  1    error
  2    usage error (bad flag, argument or configuration)
  3    not found (trace, block)
  4    partial success (some input was skipped)
  130  interrupted`

// exitErr carries an exit code with an error. silent means the message was
// already printed (or there is none to print).
type exitErr struct {
	code   int
	err    error
	silent bool
}

func (e *exitErr) Error() string { return e.err.Error() }
func (e *exitErr) Unwrap() error { return e.err }

func usageError(format string, a ...any) error {
	return &exitErr{code: exitUsage, err: fmt.Errorf(format, a...)}
}

func notFoundError(format string, a ...any) error {
	return &exitErr{code: exitNotFound, err: fmt.Errorf(format, a...)}
}

// globalOptions are the flags every command has. After PersistentPreRunE
// they hold the effective values (flag > environment > config file > default).
type globalOptions struct {
	ConfigFile string
	Storage    string
	Tenant     string
	Output     string
	Color      string
	Verbose    bool
	Quiet      bool

	io  *iostreams.IOStreams
	cfg *config
	// bucket is opened on first use so that --help and completion never
	// touch the network.
	bucket *storage.Bucket
}

// openBucket opens the configured bucket once per run; a remote bucket
// must answer (storage.Open checks it).
func (g *globalOptions) openBucket(ctx context.Context) (*storage.Bucket, error) {
	return g.openBucketChecked(ctx, func(b *storage.Bucket) error { return b.Check(ctx) })
}

// openBucketChecked opens the configured bucket without a request, then
// runs check on it; check's error fails the open.
func (g *globalOptions) openBucketChecked(ctx context.Context, check func(*storage.Bucket) error) (*storage.Bucket, error) {
	if g.bucket != nil {
		return g.bucket, nil
	}
	url, err := g.cfg.storageURL()
	if err != nil {
		return nil, &exitErr{code: exitUsage, err: err}
	}
	if err := g.cfg.applyStorageCredentials(); err != nil {
		return nil, &exitErr{code: exitUsage, err: err}
	}
	b, err := storage.OpenUnchecked(ctx, url)
	if err == nil {
		if err = check(b); err != nil {
			_ = b.Close()
		}
	}
	if err != nil {
		if storage.KindOf(err) == storage.KindInvalid {
			return nil, &exitErr{code: exitUsage, err: err}
		}
		return nil, err
	}
	g.bucket = b
	return b, nil
}

func (g *globalOptions) close() {
	if g.bucket != nil {
		_ = g.bucket.Close()
	}
}

// buildInfo is set by ldflags at release time (see .goreleaser.yaml).
var (
	version = "dev"
	commit  = "none"
	date    = "unknown"
)

func newRootCmd(io *iostreams.IOStreams) (*cobra.Command, *globalOptions) {
	g := &globalOptions{io: io}
	root := &cobra.Command{
		Use:   "tracectl",
		Short: "Store, find and move distributed traces in object storage (Tempo vParquet4 blocks)",
		Long: `tracectl keeps distributed traces in cheap object storage (a local directory,
S3, GCS or Azure Blob) as Grafana Tempo vParquet4 blocks, found by trace ID with
no index cluster. A bucket written by tracectl is one Tempo can serve, and
tracectl reads any Tempo bucket.

` + exitCodesHelp,
		SilenceUsage:  true,
		SilenceErrors: true,
		// Flags and arguments problems are usage errors (exit 2).
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig(cmd, g)
			if err != nil {
				return &exitErr{code: exitUsage, err: err}
			}
			g.cfg = cfg
			if err := tenant.Validate(g.Tenant); err != nil {
				return &exitErr{code: exitUsage, err: fmt.Errorf("tenant (%s): %w", cfg.origin("tenant"), err)}
			}
			switch iostreams.ColorMode(g.Color) {
			case iostreams.ColorAuto, iostreams.ColorAlways, iostreams.ColorNever:
				io.SetColorMode(iostreams.ColorMode(g.Color))
			default:
				return usageError("color (%s) must be auto, always or never, not %q", cfg.origin("color"), g.Color)
			}
			if g.Quiet && g.Verbose {
				return usageError("--quiet and --verbose cannot be used together")
			}
			io.Quiet, io.Verbose = g.Quiet, g.Verbose
			return nil
		},
	}
	root.SetIn(io.In)
	root.SetOut(io.Out)
	root.SetErr(io.ErrOut)
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return &exitErr{code: exitUsage, err: fmt.Errorf("%w\nsee '%s --help'", err, cmd.CommandPath())}
	})

	pf := root.PersistentFlags()
	pf.StringVar(&g.ConfigFile, "config", "", "config file (env TRACECTL_CONFIG; default $XDG_CONFIG_HOME/tracectl/config.yaml)")
	pf.StringVar(&g.Storage, "storage", "", "bucket URL: file:///dir, s3://bucket?region=R, gs://bucket, azblob://container, mem:// (env TRACECTL_STORAGE; default ./tracectl-data)")
	pf.StringVar(&g.Tenant, "tenant", tenant.Default, "tenant ID (env TRACECTL_TENANT)")
	pf.StringVarP(&g.Output, "output", "o", "", "output format; each command lists its formats (env TRACECTL_OUTPUT)")
	pf.StringVar(&g.Color, "color", string(iostreams.ColorAuto), "colour: auto, always or never (env TRACECTL_COLOR; NO_COLOR is honoured)")
	pf.BoolVarP(&g.Verbose, "verbose", "v", false, "print more detail to stderr (env TRACECTL_VERBOSE)")
	pf.BoolVarP(&g.Quiet, "quiet", "q", false, "print nothing but results and errors (env TRACECTL_QUIET)")
	_ = root.RegisterFlagCompletionFunc("color", cobra.FixedCompletions([]string{"auto", "always", "never"}, cobra.ShellCompDirectiveNoFileComp))
	_ = root.RegisterFlagCompletionFunc("tenant", g.completeTenants)

	root.AddCommand(
		newVersionCmd(g),
		newConfigCmd(g),
		newGenManCmd(),
	)
	addCommands(root, g)
	return root, g
}

// addCommands is where commands from other files register themselves; it is
// a variable so that each command file can add to it in init without the
// root knowing every file.
var addCommands = func(root *cobra.Command, g *globalOptions) {}

func registerCommand(f func(root *cobra.Command, g *globalOptions)) {
	prev := addCommands
	addCommands = func(root *cobra.Command, g *globalOptions) {
		prev(root, g)
		f(root, g)
	}
}

// run executes tracectl with args and returns the process exit code. Errors
// are printed here, once.
func run(ctx context.Context, args []string, io *iostreams.IOStreams) int {
	root, g := newRootCmd(io)
	defer g.close()
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	code := exitError
	var ee *exitErr
	switch {
	case errors.As(err, &ee):
		code = ee.code
		if ee.silent {
			return code
		}
	case ctx.Err() != nil && errors.Is(err, context.Canceled):
		fmt.Fprintln(io.ErrOut, "tracectl: interrupted")
		return exitInterrupted
	case isCobraUsageError(err):
		code = exitUsage
		err = fmt.Errorf("%w\nsee 'tracectl --help'", err)
	}
	fmt.Fprintf(io.ErrOut, "tracectl: %v\n", err)
	return code
}

// isCobraUsageError recognises argument errors cobra creates itself
// (unknown command, wrong number of arguments).
func isCobraUsageError(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "accepts ", "requires at least", "requires at most", "unknown flag", "invalid argument"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}

func defaultStreams() *iostreams.IOStreams { return iostreams.System() }
