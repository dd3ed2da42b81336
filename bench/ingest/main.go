// Command ingest is the ingest benchmark of `tracectl serve`: it builds
// tracectl, starts `tracectl serve` pinned to one CPU with a fresh bucket and
// WAL and only the OTLP gRPC receiver, and replays the public OTLP corpus at
// it over concurrent gRPC Export calls from the other CPU.
//
//	go run ./bench/ingest -mode max -runs 3            # spans per server CPU-second at saturation
//	go run ./bench/ingest -mode sustained -duration 10m # 80% of 60,000 spans/s: memory, flush lag, latency
//
// It writes a JSON result (-out) and a human summary (stdout and beside the
// JSON), and exits non-zero only when the harness itself fails: a missed
// target is reported as MISS. See README.md.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tracectl/tracectl/bench/internal/benchkit"
)

type options struct {
	Mode             string        `json:"mode"`
	Duration         time.Duration `json:"-"`
	Warmup           time.Duration `json:"-"`
	Runs             int           `json:"runs"`
	Rate             float64       `json:"rate_spans_per_s,omitempty"`
	Target           float64       `json:"target_spans_per_cpu_s"`
	Concurrency      int           `json:"concurrency"`
	Conns            int           `json:"grpc_connections"`
	Batch            int           `json:"batch_spans_target"`
	CycleReps        int           `json:"template_cycle_reps"`
	Gzip             bool          `json:"gzip"`
	MaxBlockDuration time.Duration `json:"-"`
	ServerArgs       []string      `json:"extra_server_args,omitempty"`
	ServerCPU        int           `json:"server_cpu"`
	ClientCPU        int           `json:"client_cpu"`
	NoPin            bool          `json:"no_pin"`
	Seed             uint64        `json:"seed"`
	Out              string        `json:"-"`
	Tracectl         string        `json:"-"`
	tracectlTmp      string
	Src              string        `json:"src"`
	Fixtures         string        `json:"-"`
	Keep             bool          `json:"-"`
	Perf             bool          `json:"perf_attached"`
	MaxRSS           int64         `json:"target_peak_rss_bytes"`
	Drain            bool          `json:"drain"`
	Sample           time.Duration `json:"-"`
	QueryRate        float64       `json:"query_rate_per_s"`
	QueryConcurrency int           `json:"query_concurrency"`
	QueryRecent      time.Duration `json:"-"`
	QueryOld         time.Duration `json:"-"`
	QueryTraceSample int           `json:"query_trace_sample_every"`

	DurationS         float64 `json:"duration_s"`
	WarmupS           float64 `json:"warmup_s"`
	MaxBlockDurationS float64 `json:"max_block_duration_s"`
}

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, " ") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func main() {
	os.Exit(run())
}

func run() int {
	if len(os.Args) == 2 && os.Args[1] == "-calibrate" {
		return runCalibrationChild()
	}
	var o options
	var extra stringList
	fs := flag.NewFlagSet("ingest", flag.ContinueOnError)
	fs.StringVar(&o.Mode, "mode", "max", "max (saturate, spans per server CPU-second) or sustained (fixed rate: memory, flush lag, latency)")
	fs.DurationVar(&o.Duration, "duration", 0, "measured load duration (default 30s for max, 10m for sustained)")
	fs.DurationVar(&o.Warmup, "warmup", 5*time.Second, "max mode: load before the measured window starts")
	fs.IntVar(&o.Runs, "runs", 1, "repetitions (each with a fresh server); the median is reported")
	fs.Float64Var(&o.Rate, "rate", 0, "sustained mode: target spans/s (default 80% of -target)")
	fs.Float64Var(&o.Target, "target", 60000, "target spans per server CPU-second")
	fs.IntVar(&o.Concurrency, "concurrency", 0, "concurrent Export calls in flight: closed loop in max mode (default 8), upper bound in sustained mode (default 32, so the generator, not the server, is never what limits the rate)")
	fs.IntVar(&o.Conns, "conns", 2, "gRPC connections the calls are spread over")
	fs.IntVar(&o.Batch, "batch", 700, "spans per Export: corpus lines are concatenated until at least this many")
	fs.IntVar(&o.CycleReps, "cycle", 20, "corpus passes in one cycle of request templates")
	fs.BoolVar(&o.Gzip, "gzip", false, "gzip-compress requests (the Collector's default; telemetrygen sends uncompressed)")
	fs.DurationVar(&o.MaxBlockDuration, "max-block-duration", 30*time.Second, "--max-block-duration for the server")
	fs.Var(&extra, "server-arg", "extra argument for `tracectl serve` (repeatable), e.g. -server-arg=--wal-sync=none")
	fs.IntVar(&o.ServerCPU, "server-cpu", 0, "CPU the server is pinned to")
	fs.IntVar(&o.ClientCPU, "client-cpu", 1, "CPU the load generator (this program) is pinned to")
	fs.BoolVar(&o.NoPin, "no-pin", false, "do not pin (taskset) the server or the generator")
	fs.Uint64Var(&o.Seed, "seed", 1, "seed of the trace/span ID masks")
	fs.StringVar(&o.Out, "out", "", "JSON result path (default bench/ingest/results/<mode>-<time>.json); the summary goes beside it as .txt")
	fs.StringVar(&o.Tracectl, "tracectl", "", "use this tracectl binary instead of building ./cmd/tracectl")
	fs.StringVar(&o.tracectlTmp, "tracectl-tmp", "", "(internal) directory of the built binary, removed at the end")
	fs.StringVar(&o.Src, "src", "worktree", "what to build: worktree (the checkout as it is) or head (git archive HEAD)")
	fs.StringVar(&o.Fixtures, "fixtures", "", "fixtures directory (default $TRACECTL_FIXTURES, ../shared/fixtures beside the repository, /work/shared/fixtures)")
	fs.BoolVar(&o.Keep, "keep", false, "keep the servers' temporary directories (bucket, WAL, server.log)")
	fs.BoolVar(&o.Perf, "perf", false, "max mode: record the server with `perf record -g` during each measured window and write perf reports beside the JSON (figures are then perturbed)")
	fs.Int64Var(&o.MaxRSS, "max-rss", 1<<30, "sustained mode: peak RSS target in bytes")
	fs.BoolVar(&o.Drain, "drain", true, "sustained mode: after the load, wait until every acknowledged span is in a stored block (measures the last blocks' flush lag)")
	fs.DurationVar(&o.Sample, "sample", time.Second, "sampling interval of the server's metrics")
	fs.Float64Var(&o.QueryRate, "query-rate", 4, "sustained mode: queries/s (all kinds together) sent to the server's HTTP API while loading, as Grafana sends them; 0 for none")
	fs.IntVar(&o.QueryConcurrency, "query-concurrency", 4, "sustained mode: queries in flight at most")
	fs.DurationVar(&o.QueryRecent, "query-recent", 10*time.Second, "sustained mode: a \"recent\" trace-by-ID query asks for a trace acked at most this long ago")
	fs.DurationVar(&o.QueryOld, "query-old", 0, "sustained mode: an \"old\" trace-by-ID query asks for a trace acked at least this long ago (default 2 x -max-block-duration + 15s, so it is in a block)")
	fs.IntVar(&o.QueryTraceSample, "query-trace-sample", 16, "sustained mode: record every n-th acked trace as a candidate for trace-by-ID queries")
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	o.ServerArgs = extra
	switch o.Mode {
	case "max":
		if o.Duration == 0 {
			o.Duration = 30 * time.Second
		}
		if o.Concurrency == 0 {
			o.Concurrency = 8
		}
	case "sustained":
		if o.Duration == 0 {
			o.Duration = 10 * time.Minute
		}
		if o.Concurrency == 0 {
			o.Concurrency = 32
		}
		if o.Rate == 0 {
			o.Rate = 0.8 * o.Target
		}
	default:
		fmt.Fprintf(os.Stderr, "-mode %q: use max or sustained\n", o.Mode)
		return 2
	}
	if o.QueryOld == 0 {
		o.QueryOld = 2*o.MaxBlockDuration + 15*time.Second
	}
	if o.QueryRate < 0 || o.QueryConcurrency < 1 || o.QueryTraceSample < 1 || o.QueryRecent <= 0 {
		fmt.Fprintln(os.Stderr, "-query-rate must not be negative; -query-concurrency, -query-trace-sample and -query-recent must be positive")
		return 2
	}
	if o.Runs < 1 || o.Concurrency < 1 || o.Conns < 1 || o.Batch < 1 || o.CycleReps < 1 {
		fmt.Fprintln(os.Stderr, "-runs, -concurrency, -conns, -batch and -cycle must be positive")
		return 2
	}
	if o.Src != "worktree" && o.Src != "head" {
		fmt.Fprintf(os.Stderr, "-src %q: use worktree or head\n", o.Src)
		return 2
	}
	o.DurationS, o.WarmupS, o.MaxBlockDurationS = o.Duration.Seconds(), o.Warmup.Seconds(), o.MaxBlockDuration.Seconds()

	if err := harness(&o); err != nil {
		fmt.Fprintln(os.Stderr, "bench/ingest:", err)
		return 1
	}
	return 0
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// moduleRoot is benchkit.ModuleRoot.
func moduleRoot() (string, error) { return benchkit.ModuleRoot() }

// buildTracectl builds ./cmd/tracectl from the checkout (or from git archive
// HEAD) into a new temporary directory.
func buildTracectl(root, src string) (bin, dir string, err error) {
	dir, err = os.MkdirTemp("", "bench-ingest-bin-")
	if err != nil {
		return "", "", err
	}
	bin = filepath.Join(dir, "tracectl")
	buildDir := root
	if src == "head" {
		buildDir = filepath.Join(dir, "src")
		if err := os.MkdirAll(buildDir, 0o755); err != nil {
			return "", dir, err
		}
		sh := fmt.Sprintf("git -C %q archive HEAD | tar -x -C %q", root, buildDir)
		if out, err := exec.Command("sh", "-c", sh).CombinedOutput(); err != nil {
			return "", dir, fmt.Errorf("git archive HEAD: %v\n%s", err, out)
		}
	}
	logf("building tracectl (%s) ...", src)
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/tracectl")
	cmd.Dir = buildDir
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", dir, fmt.Errorf("go build ./cmd/tracectl: %v\n%s", err, out)
	}
	return bin, dir, nil
}

func harness(o *options) error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	taskset, _ := exec.LookPath("taskset")
	pinNote := ""
	switch {
	case o.NoPin:
		pinNote = "pinning switched off (-no-pin): server and generator unpinned"
	case taskset == "":
		pinNote = "taskset (util-linux) not found: server and generator run UNPINNED; figures are not comparable to pinned runs"
	}
	if o.Tracectl == "" {
		bin, dir, err := buildTracectl(root, o.Src)
		if err != nil {
			if dir != "" {
				os.RemoveAll(dir)
			}
			return err
		}
		o.Tracectl, o.tracectlTmp = bin, dir
	}
	// Pin the generator by re-executing under taskset (LockOSThread would
	// pin one thread, not the Go runtime's other threads or GOMAXPROCS).
	if !o.NoPin && taskset != "" && os.Getenv("BENCH_INGEST_PINNED") == "" {
		self, err := os.Executable()
		if err != nil {
			return err
		}
		args := []string{"taskset", "-c", strconv.Itoa(o.ClientCPU), self}
		args = append(args, os.Args[1:]...)
		args = append(args, "-tracectl", o.Tracectl)
		if o.tracectlTmp != "" {
			args = append(args, "-tracectl-tmp", o.tracectlTmp)
		}
		env := append(os.Environ(), "BENCH_INGEST_PINNED=1")
		logf("re-executing the generator under taskset -c %d", o.ClientCPU)
		return syscall.Exec(taskset, args, env)
	}
	if o.tracectlTmp != "" {
		defer os.RemoveAll(o.tracectlTmp)
	}
	if o.NoPin || taskset == "" {
		o.ServerCPU, o.ClientCPU = -1, -1
	}

	fixtures, err := findFixtures(o.Fixtures, root)
	if err != nil {
		return err
	}
	corpus, err := loadCorpus(filepath.Join(fixtures, "corpus", "public.otlp.jsonl"))
	if err != nil {
		return err
	}
	if err := corpus.buildTemplates(o.Batch, o.CycleReps, o.Seed); err != nil {
		return fmt.Errorf("encoding request templates: %w", err)
	}

	if o.Out == "" {
		o.Out = filepath.Join(root, "bench", "ingest", "results", fmt.Sprintf("%s-%s.json", o.Mode, time.Now().UTC().Format("20060102T150405Z")))
	}
	if err := os.MkdirAll(filepath.Dir(o.Out), 0o755); err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	res := &result{Mode: o.Mode, StartedAt: time.Now().UTC(), Command: os.Args, Options: *o}
	res.Env = environment(root, o, taskset, pinNote)
	minS, maxS, meanS, meanB := corpus.templateStats()
	res.Corpus = corpusInfo{Path: corpus.path, Lines: len(corpus.lines), SpansPerPass: corpus.repSpans, Templates: len(corpus.templates),
		BatchSpansMin: minS, BatchSpansMax: maxS, BatchSpansMean: round(meanS, 1), BatchBytesMean: round(meanB, 0),
		BytesPerSpan: round(meanB/meanS, 1)}
	logf("corpus %s: %d lines, %d spans per pass; %d request templates of %d..%d spans (mean %.0f spans, %.0f KB)",
		corpus.path, len(corpus.lines), corpus.repSpans, len(corpus.templates), minS, maxS, meanS, meanB/1024)
	if pinNote != "" {
		logf("WARNING: %s", pinNote)
	}

	switch o.Mode {
	case "max":
		err = runMax(ctx, o, corpus, res)
	case "sustained":
		err = runSustained(ctx, o, corpus, res)
	}
	res.FinishedAt = time.Now().UTC()
	res.LoadAvgEnd = loadAvg()
	if err != nil {
		return err
	}
	summary := res.summary()
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(o.Out, append(b, '\n'), 0o644); err != nil {
		return err
	}
	txt := strings.TrimSuffix(o.Out, ".json") + ".txt"
	if err := os.WriteFile(txt, []byte(summary), 0o644); err != nil {
		return err
	}
	fmt.Print(summary)
	fmt.Printf("\nresult: %s\nsummary: %s\n", o.Out, txt)
	return nil
}

type envInfo struct {
	GoVersion          string     `json:"go_version"`
	NumCPU             int        `json:"num_cpu"`
	Kernel             string     `json:"kernel"`
	CPUModel           string     `json:"cpu_model"`
	ClkTck             float64    `json:"clk_tck"`
	Taskset            string     `json:"taskset"`
	Pinned             bool       `json:"pinned"`
	PinNote            string     `json:"pin_note,omitempty"`
	GeneratorAffinity  string     `json:"generator_cpus_allowed"`
	GeneratorGOMAXPROC int        `json:"generator_gomaxprocs"`
	GitHead            string     `json:"git_head"`
	GitDirty           []string   `json:"git_dirty_files,omitempty"`
	Src                string     `json:"src"`
	Tracectl           string     `json:"tracectl_binary"`
	LoadAvgStart       [3]float64 `json:"loadavg_start"`
}

func environment(root string, o *options, taskset, note string) envInfo {
	e := envInfo{GoVersion: runtime.Version(), NumCPU: onlineCPUs(), ClkTck: clkTck, Taskset: taskset,
		Pinned: note == "", PinNote: note, GeneratorGOMAXPROC: runtime.GOMAXPROCS(0), Src: o.Src, Tracectl: o.Tracectl,
		LoadAvgStart: loadAvg()}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		e.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				e.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if st, err := procStatus(os.Getpid()); err == nil {
		e.GeneratorAffinity = st["Cpus_allowed_list"]
	}
	if out, err := exec.Command("git", "-C", root, "rev-parse", "HEAD").Output(); err == nil {
		e.GitHead = strings.TrimSpace(string(out))
	}
	if o.Src == "worktree" {
		if out, err := exec.Command("git", "-C", root, "status", "--porcelain", "--untracked-files=no").Output(); err == nil {
			for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
				if l = strings.TrimSpace(l); l != "" && !strings.Contains(l, "bench/ingest/") {
					e.GitDirty = append(e.GitDirty, l)
				}
			}
		}
	}
	return e
}

type corpusInfo struct {
	Path           string  `json:"path"`
	Lines          int     `json:"lines"`
	SpansPerPass   int     `json:"spans_per_pass"`
	Templates      int     `json:"request_templates"`
	BatchSpansMin  int     `json:"batch_spans_min"`
	BatchSpansMax  int     `json:"batch_spans_max"`
	BatchSpansMean float64 `json:"batch_spans_mean"`
	BatchBytesMean float64 `json:"batch_bytes_mean"`
	BytesPerSpan   float64 `json:"protobuf_bytes_per_span"`
}

type target struct {
	Name   string `json:"name"`
	Goal   string `json:"goal"`
	Value  string `json:"value"`
	Status string `json:"status"` // PASS, MISS
	Note   string `json:"note,omitempty"`
}

type result struct {
	Mode       string           `json:"mode"`
	StartedAt  time.Time        `json:"started_at"`
	FinishedAt time.Time        `json:"finished_at"`
	Command    []string         `json:"command"`
	Options    options          `json:"options"`
	Env        envInfo          `json:"environment"`
	Corpus     corpusInfo       `json:"corpus"`
	Runs       []*maxRun        `json:"max_runs,omitempty"`
	Median     *maxMedian       `json:"max_median,omitempty"`
	Sustained  *sustainedResult `json:"sustained,omitempty"`
	Targets    []target         `json:"targets"`
	LoadAvgEnd [3]float64       `json:"loadavg_end"`
}

func passMiss(ok bool) string {
	if ok {
		return "PASS"
	}
	return "MISS"
}

func round(v float64, digits int) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func mb(b float64) float64 { return round(b/(1<<20), 1) }

// onlineCPUs counts the machine's CPUs (runtime.NumCPU counts only those
// this process may run on, which is one once pinned).
func onlineCPUs() int {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.NumCPU()
	}
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		if k, _, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "processor" {
			n++
		}
	}
	if n == 0 {
		return runtime.NumCPU()
	}
	return n
}
