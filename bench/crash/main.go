// Command crash is a kill -9 harness for `tracectl serve`: it runs serve
// under sustained load from several protocols at once (OTLP gRPC, OTLP HTTP,
// Jaeger gRPC, Zipkin JSON), kills it with SIGKILL at a random moment,
// restarts it on the same WAL and bucket, and after -trials kills stops it
// cleanly and reads the whole bucket back to check that every acknowledged
// span is there exactly once. See README.md.
//
//	go run ./bench/crash -trials 50
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tracectl/tracectl/bench/internal/benchkit"
	"github.com/tracectl/tracectl/internal/blocks"
	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/storage"
)

type options struct {
	Trials           int
	Seed             uint64
	MinDelay         time.Duration
	MaxDelay         time.Duration
	Rate             float64
	Workers          int
	MaxBlockDuration time.Duration
	TraceIdlePeriod  time.Duration
	Timeout          time.Duration
	FindCheck        int
	Dir              string
	Keep             bool
	Out              string
	Tracectl         string
	Deadline         time.Duration
	Modes            []string
	Control          bool
	Target           string
}

// Kill modes, cycled through the trials.
const (
	// modeRandom kills -min-delay..-max-delay after ready.
	modeRandom = "random"
	// modeNearCut kills around the first time-based cut (-max-block-duration
	// after ready, -5ms..+45ms), when a block is being written and uploaded
	// (a block of a trial's load takes ~20ms on file://).
	modeNearCut = "near-cut"
	// modeOnStored kills 0–5ms after serve logs "block stored": between
	// meta.json landing and the flushed WAL segment being removed.
	modeOnStored = "on-stored"
	// modeOnJournal (-target serve-compaction) kills 0–40ms after the
	// background compactor's job journal lands: while it merges and
	// uploads an output block.
	modeOnJournal = "on-journal"
)

func main() {
	os.Exit(run())
}

func run() int {
	o := &options{}
	flag.IntVar(&o.Trials, "trials", 50, "kills: serve is started, loaded and killed with SIGKILL this many times")
	flag.Uint64Var(&o.Seed, "seed", 0, "random seed for kill delays and load content (0: from the clock; printed)")
	flag.DurationVar(&o.MinDelay, "min-delay", 200*time.Millisecond, "shortest time from ready to SIGKILL")
	flag.DurationVar(&o.MaxDelay, "max-delay", 3*time.Second, "longest time from ready to SIGKILL")
	flag.Float64Var(&o.Rate, "rate", 40, "requests per second per worker")
	flag.IntVar(&o.Workers, "workers", 2, "load workers per protocol")
	flag.DurationVar(&o.MaxBlockDuration, "max-block-duration", time.Second, "serve --max-block-duration (short, so kills land during flushes)")
	flag.DurationVar(&o.TraceIdlePeriod, "trace-idle-period", 300*time.Millisecond, "serve --trace-idle-period")
	flag.DurationVar(&o.Timeout, "request-timeout", 5*time.Second, "client timeout of one request (a timed-out request is not acknowledged)")
	flag.IntVar(&o.FindCheck, "find-check", 2000, "acknowledged traces also looked up with blocks.FindTrace (bloom + trace-by-ID path) and compared")
	flag.StringVar(&o.Dir, "dir", "", "work directory for the WAL, bucket and serve log (default: a new temporary directory)")
	flag.BoolVar(&o.Keep, "keep", false, "keep the work directory (it is always kept when a figure misses)")
	flag.StringVar(&o.Out, "out", "", "summary JSON path (default bench/crash/results/<time>.json)")
	flag.StringVar(&o.Tracectl, "tracectl", "", "use this tracectl binary instead of building ./cmd/tracectl")
	flag.DurationVar(&o.Deadline, "deadline", 0, "stop starting trials after this long (0: none); the run still verifies")
	modes := flag.String("modes", "random,near-cut,on-stored", "kill modes cycled through the trials: random (-min-delay..-max-delay after ready), near-cut (around the first block cut), on-stored (right after \"block stored\" is logged); for -target serve-outage the outage kinds (down-503, down-hang, down-reset, torn, lost-reply), the outage starting -min-delay..-max-delay after ready")
	flag.BoolVar(&o.Control, "control", false, "negative control: delete one stored block's meta.json before reading the bucket back, so the run must report lost spans (checks the harness can fail)")
	flag.StringVar(&o.Target, "target", "serve", "what is killed: serve, serve-compaction (serve with --compaction), serve-outage (serve, killed during a storage outage of an S3 bucket the harness hosts), compact (tracectl blocks compact), migrate (tracectl migrate from jaeger-es --resume); see README.md")
	co := &compactOptions{}
	flag.DurationVar(&co.MaxDelay, "compact-max-delay", time.Second, "compact: longest start-to-SIGKILL delay of the random mode")
	flag.IntVar(&co.InitialBlocks, "compact-initial-blocks", 40, "compact: small blocks written before the first run")
	flag.IntVar(&co.SeedBlocks, "compact-seed-blocks", 4, "compact: about this many new small blocks are written before each run (half to one and a half times)")
	flag.DurationVar(&co.Retention, "compact-retention", time.Second, "compact: --compacted-retention (short, so kills land while compacted blocks are deleted)")
	flag.StringVar(&co.ExtraArgs, "compact-args", "", "compact: more arguments for tracectl blocks compact")
	oo := outageFlags(flag.CommandLine)
	mo := &migrateOptions{}
	flag.IntVar(&mo.Spans, "migrate-spans", 200_000, "migrate: span documents in the Elasticsearch test server")
	flag.IntVar(&mo.Days, "migrate-days", 3, "migrate: daily indices they are spread over")
	flag.Int64Var(&mo.MaxBlockBytes, "migrate-max-block-bytes", 300_000, "migrate: --max-block-bytes (small, so blocks are cut all the time)")
	flag.DurationVar(&mo.MaxDelay, "migrate-max-delay", 1500*time.Millisecond, "migrate: longest start-to-SIGKILL delay of the random mode")
	flag.DurationVar(&mo.PageDelay, "migrate-page-delay", 40*time.Millisecond, "migrate: the test server sleeps this long before each search answer (slows the migration down, so that -trials kills fit in one migration)")
	flag.IntVar(&mo.Batch, "migrate-batch", 100, "migrate: --batch-size")
	flag.StringVar(&mo.ESVersion, "migrate-es-version", "8.15.0", "migrate: the version the test server reports (7.9.0: no point in time, the migration reads with scroll)")
	flag.Parse()
	modesSet := false
	flag.Visit(func(f *flag.Flag) { modesSet = modesSet || f.Name == "modes" })
	valid := map[string]bool{modeRandom: true, modeNearCut: true, modeOnStored: true}
	switch o.Target {
	case "serve":
	case "serve-compaction":
		valid[modeOnJournal] = true
		if !modesSet {
			*modes = "random,near-cut,on-stored,on-journal,on-journal"
		}
	case "serve-outage":
		// The modes are the outage kinds.
		valid = map[string]bool{}
		for _, m := range outageKinds {
			valid[m] = true
		}
		if !modesSet {
			*modes = strings.Join(outageKinds, ",")
		}
	case "compact":
		valid = map[string]bool{}
		for _, m := range compactModes {
			valid[m] = true
		}
		if !modesSet {
			*modes = strings.Join(compactModes, ",")
		}
	case "migrate":
		valid = map[string]bool{}
		for _, m := range migrateModes {
			valid[m] = true
		}
		if !modesSet {
			*modes = strings.Join(migrateModes, ",")
		}
	default:
		fmt.Fprintf(os.Stderr, "crash: -target: unknown target %q (serve, serve-compaction, serve-outage, compact, migrate)\n", o.Target)
		return 1
	}
	for _, m := range strings.Split(*modes, ",") {
		m = strings.TrimSpace(m)
		if !valid[m] {
			fmt.Fprintf(os.Stderr, "crash: -modes: unknown mode %q for -target %s\n", m, o.Target)
			return 1
		}
		o.Modes = append(o.Modes, m)
	}
	var err error
	switch o.Target {
	case "compact":
		err = runCompact(o, co)
	case "migrate":
		err = runMigrate(o, mo)
	}
	if o.Target == "compact" || o.Target == "migrate" {
		if err != nil {
			fmt.Fprintln(os.Stderr, "crash: harness failure:", err)
			return 1
		}
		return 0
	}
	if o.Trials < 1 || o.MinDelay <= 0 || o.MaxDelay < o.MinDelay || o.Rate <= 0 || o.Workers < 1 {
		fmt.Fprintln(os.Stderr, "crash: bad flags: need -trials ≥ 1, 0 < -min-delay ≤ -max-delay, -rate > 0, -workers ≥ 1")
		return 1
	}
	if o.Target == "serve-outage" {
		err = runOutage(o, oo)
	} else {
		err = harness(o)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "crash: harness failure:", err)
		return 1
	}
	return 0
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05.000")}, args...)...)
}

// trialRecord is one trial of the summary.
type trialRecord struct {
	Trial         int            `json:"trial"`
	Mode          string         `json:"mode"`
	ReadyMs       int64          `json:"ready_ms"`      // start to "ready" (includes WAL replay)
	KillAfterMs   int64          `json:"kill_after_ms"` // ready to SIGKILL
	RequestsSent  map[string]int `json:"requests_sent"`
	RequestsAcked map[string]int `json:"requests_acked"`
	// StoredMs are the moments (ms after ready) serve logged "block stored"
	// before it was killed.
	StoredMs      []int64 `json:"block_stored_ms"`
	BlocksAfter   int     `json:"blocks_after"`     // blocks with meta.json after the kill
	IncompleteDir int     `json:"incomplete_after"` // block directories without meta.json after the kill
	// serve-compaction: the kill left a compaction journal / the lease held.
	JournalLeft  bool  `json:"journal_left,omitempty"`
	LeaseExpired bool  `json:"lease_expired,omitempty"`
	JournalMs    int64 `json:"journal_ms,omitempty"` // on-journal: when the journal landed (ms after ready; negative: before)
	JournalN     int   `json:"journal_n,omitempty"`  // on-journal: which job of the process (1–3) it waited for
	// serve-compaction: compaction journals written (jobs started) and
	// inputs marked compacted while this serve ran.
	CompactionJobs  int `json:"compaction_jobs_started,omitempty"`
	CompactedInputs int `json:"compaction_inputs_marked,omitempty"`
}

type summary struct {
	Target      string         `json:"target,omitempty"`
	Started     time.Time      `json:"started"`
	WallSeconds float64        `json:"wall_seconds"`
	Commit      string         `json:"commit"`
	Dirty       bool           `json:"dirty"`
	Seed        uint64         `json:"seed"`
	Options     map[string]any `json:"options"`
	ServeArgs   []string       `json:"serve_args"`
	Trials      int            `json:"trials"`
	Kills       int            `json:"kills"`
	KillsByMode map[string]int `json:"kills_by_mode"`
	// KillsMidUpload counts kills after which the bucket held more block
	// directories without meta.json than before (a block upload was cut).
	KillsMidUpload int `json:"kills_mid_upload"`
	// KillsLeaseHeld (serve-compaction) counts kills that left the
	// compaction lease held; the harness expires it (see expireLease).
	KillsLeaseHeld   int   `json:"kills_leaving_the_compaction_lease_held,omitempty"`
	KillsJournalLeft int   `json:"kills_leaving_a_compaction_journal,omitempty"`
	CompactionJobs   int   `json:"compaction_jobs_started,omitempty"`
	CompactedInputs  int   `json:"compaction_inputs_marked,omitempty"`
	CleanStop        bool  `json:"clean_stop"`
	CleanStopMs      int64 `json:"clean_stop_ms"`

	Judged string `json:"judged"`
	tally
	PerProtocol map[string]*protoFigures `json:"per_protocol"`

	Blocks           int      `json:"blocks"`
	IncompleteBlocks int      `json:"incomplete_blocks"` // directories without meta.json (left by kills; readers ignore them)
	Unreadable       int      `json:"unreadable_blocks"`
	UnreadableWhy    []string `json:"unreadable_why,omitempty"`
	VerifyProblems   []string `json:"verify_problems,omitempty"` // compact.Verify (blocks verify) findings
	// Raw copies beyond the first, by where the repeat is: in the same
	// block (one row holding a span twice: readers drop the repeat) or in
	// another block (readers combine the parts). Spans stored more than
	// once, by the trial that sent them.
	RawExtraSameBlock    int         `json:"raw_extra_copies_same_block"`
	RawExtraOtherBlocks  int         `json:"raw_extra_copies_other_blocks"`
	RawDuplicatedByTrial map[int]int `json:"raw_duplicated_by_trial,omitempty"`
	FindChecked          int         `json:"find_checked"`
	FindMismatches       int         `json:"find_mismatches"`
	FindMismatchWhy      []string    `json:"find_mismatch_why,omitempty"`

	LostSpans    []spanReport      `json:"lost_spans,omitempty"` // first 50
	DupSpans     []spanReport      `json:"duplicated_spans,omitempty"`
	UnknownSpans []string          `json:"unknown_spans,omitempty"`
	SendErrors   map[string]int    `json:"send_errors"`
	TrialLog     []trialRecord     `json:"trial_log"`
	Verdicts     map[string]string `json:"verdicts"`
	Control      string            `json:"control,omitempty"`
	WorkDir      string            `json:"work_dir,omitempty"`
}

type protoFigures struct {
	Acked     int `json:"acked_spans"`
	Lost      int `json:"lost"`
	Dup       int `json:"duplicated"`
	NotAcked  int `json:"not_acked_spans"`
	NotAckedF int `json:"not_acked_found"`
}

type spanReport struct {
	Span string `json:"span"` // trace ID / span ID
	spanOrigin
	KillAfterMs int64 `json:"trial_kill_after_ms"`
	Returned    int   `json:"returned"`
	Stored      int   `json:"stored"`
}

func harness(o *options) error {
	started := time.Now()
	root, work, cleanup, err := setUp(o, started, "bench-crash-")
	defer cleanup()
	if err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(o.Seed, 0xc7a5))
	runID := rng.Uint64()
	bucketDir, walDir := filepath.Join(work, "bucket"), filepath.Join(work, "wal")
	bucket := "file://" + bucketDir
	logFile, err := openLog(work, "serve.log", bucketDir, walDir)
	if err != nil {
		return err
	}
	defer logFile.Close()
	args := serveArgs(bucket, walDir, o)
	logf("seed %d, work directory %s, serve %s", o.Seed, work, strings.Join(args, " "))

	var w *dirWatcher
	var wb *storage.Bucket
	if o.Target == "serve-compaction" {
		if w, err = newDirWatcher(bucketDir); err != nil {
			return err
		}
		defer w.Close()
		if wb, err = storage.Open(context.Background(), bucket); err != nil {
			return err
		}
		defer wb.Close()
	}
	s := &summary{Target: o.Target, KillsByMode: map[string]int{}, Started: started.UTC(), Seed: o.Seed, ServeArgs: args, SendErrors: map[string]int{},
		Options: map[string]any{"trials": o.Trials, "min_delay": o.MinDelay.String(), "max_delay": o.MaxDelay.String(),
			"rate_per_worker": o.Rate, "workers_per_protocol": o.Workers, "protocols": protocols,
			"request_timeout": o.Timeout.String(), "find_check": o.FindCheck, "modes": o.Modes}}
	s.Commit, s.Dirty = gitState(root)
	rec := newRecorder()

	for trial := 0; trial < o.Trials; trial++ {
		if o.Deadline > 0 && time.Since(started) > o.Deadline {
			logf("-deadline %s reached after %d trials", o.Deadline, trial)
			break
		}
		tr, err := runTrial(o, args, logFile, rec, runID, trial, rng, w)
		if err != nil {
			return fmt.Errorf("trial %d: %w (work directory %s kept)", trial, err, work)
		}
		if wb != nil {
			s.CompactionJobs += tr.CompactionJobs
			s.CompactedInputs += tr.CompactedInputs
			if _, err := os.Stat(filepath.Join(bucketDir, block.DefaultTenant, "compactor.journal.json")); err == nil {
				tr.JournalLeft = true
				s.KillsJournalLeft++
			}
			held, err := expireLease(context.Background(), wb)
			if err != nil {
				return err
			}
			if held {
				tr.LeaseExpired = true
				s.KillsLeaseHeld++
			}
		}
		tr.BlocksAfter, tr.IncompleteDir = countBlockDirs(bucketDir)
		s.TrialLog = append(s.TrialLog, *tr)
		s.Trials++
		s.Kills++
		s.KillsByMode[tr.Mode]++
		if n := len(s.TrialLog); n > 1 && tr.IncompleteDir > s.TrialLog[n-2].IncompleteDir || n == 1 && tr.IncompleteDir > 0 {
			s.KillsMidUpload++
		}
		acked := 0
		for _, n := range tr.RequestsAcked {
			acked += n
		}
		logf("trial %d (%s): ready in %dms, SIGKILL after %dms, %d requests acknowledged, blocks stored at %v ms; bucket: %d blocks, %d incomplete",
			trial, tr.Mode, tr.ReadyMs, tr.KillAfterMs, acked, tr.StoredMs, tr.BlocksAfter, tr.IncompleteDir)
		if wb != nil {
			logf("  compaction: %d jobs started, %d inputs marked, journal %d at %dms; journal left %v, lease held %v",
				tr.CompactionJobs, tr.CompactedInputs, tr.JournalN, tr.JournalMs, tr.JournalLeft, tr.LeaseExpired)
		}
	}

	// Restart on the same WAL and stop cleanly: everything is stored.
	logf("final start, then SIGTERM ...")
	if err := finalStop(o, args, logFile, work, s); err != nil {
		return err
	}

	if o.Control {
		meta := controlDelete(filepath.Join(bucketDir, block.DefaultTenant))
		if meta == "" {
			return errors.New("-control: no stored block to delete")
		}
		s.Control = "negative control: deleted " + meta + " before reading back; lost must be > 0"
		logf("%s", s.Control)
	}
	logf("reading the bucket back ...")
	if err := verify(context.Background(), bucket, o, rec, s); err != nil {
		return fmt.Errorf("verify: %w (work directory %s kept)", err, work)
	}
	s.WallSeconds = float64(time.Since(started).Milliseconds()) / 1000
	for k, n := range rec.errs {
		s.SendErrors[k] = n
	}

	s.Judged = "per (trace ID, span ID) as a reader returns them: each block's rows converted as readers do (repeats of a span ID+kind within a trace dropped), then the parts of a trace across blocks merged with blocks.Combine, as blocks.FindTrace does; and as stored: no span in the rows of the blocks more than once (raw_duplicated == 0), which holds since serve de-duplicates at WAL replay (812f6fd)"
	s.Verdicts = serveVerdicts(s)
	s.WorkDir = keepWork(o, work, s.Verdicts)
	return report(root, o, started, s, func() { printSummary(s) })
}

// finalStop starts serve once more on the run's WAL and stops it with
// SIGTERM (it stores everything), recording the clean stop in s.
func finalStop(o *options, args []string, logFile *os.File, work string, s *summary) error {
	c, err := startServe(o.Tracectl, args, logFile, "final")
	if err != nil {
		return fmt.Errorf("final start: %w (work directory %s kept)", err, work)
	}
	t0 := time.Now()
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case err := <-c.exited:
		s.CleanStop = err == nil
		if err != nil {
			logf("clean stop: serve exited with %v", err)
		}
	case <-time.After(3 * time.Minute):
		c.cmd.Process.Kill()
		<-c.exited
		logf("clean stop: serve did not exit within 3m; killed")
	}
	s.CleanStopMs = time.Since(t0).Milliseconds()
	return nil
}

// serveVerdicts are the verdicts of every serve target.
func serveVerdicts(s *summary) map[string]string {
	return map[string]string{
		"lost == 0":              passMiss(s.Lost == 0),
		"duplicated == 0":        passMiss(s.Duplicated == 0),
		"raw_duplicated == 0":    passMiss(s.RawDuplicated == 0),
		"unknown == 0":           passMiss(s.Unknown == 0),
		"unreadable blocks == 0": passMiss(s.Unreadable == 0 && len(s.VerifyProblems) == 0),
		"clean stop":             passMiss(s.CleanStop),
		"find-trace agrees":      passMiss(s.FindMismatches == 0),
		"load ran (acked > 0 every protocol)": passMiss(func() bool {
			for _, p := range protocols {
				if s.PerProtocol[p] == nil || s.PerProtocol[p].Acked == 0 {
					return false
				}
			}
			return true
		}()),
	}
}

func serveArgs(bucket, walDir string, o *options) []string {
	args := []string{"serve", "--storage", bucket, "--wal-dir", walDir, "--log-format", "json",
		"--http-listen-address", "127.0.0.1:0",
		"--otlp-grpc-endpoint", "127.0.0.1:0", "--otlp-http-endpoint", "127.0.0.1:0",
		"--jaeger-grpc-endpoint", "127.0.0.1:0", "--zipkin-endpoint", "127.0.0.1:0",
		"--jaeger-thrift-http-endpoint", "off", "--jaeger-thrift-compact-endpoint", "off", "--jaeger-thrift-binary-endpoint", "off",
		"--ingestion-rate-bytes", "-1",
		"--max-block-duration", o.MaxBlockDuration.String(), "--trace-idle-period", o.TraceIdlePeriod.String()}
	if o.Target == "serve-compaction" {
		// Background compaction every second over 1m windows: serve's
		// 1s blocks merge all the time; compacted blocks are deleted 5s
		// after they were compacted.
		args = append(args, "--compaction", "--compaction-interval", "1s", "--compaction-window", "1m", "--compacted-retention", "5s")
	}
	return args
}

// serveProc is one serve child.
type serveProc struct {
	cmd    *exec.Cmd
	addrs  map[string]string
	exited chan error

	mu       sync.Mutex
	stored   []time.Time   // when it logged "block stored"
	storedCh chan struct{} // a value per "block stored" (dropped when full)
}

// startServe starts serve and waits until it logs that it is ready; its log
// lines go to logFile, prefixed with tag.
func startServe(bin string, args []string, logFile *os.File, tag string) (*serveProc, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+filepath.Join(filepath.Dir(logFile.Name()), "xdg"))
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &serveProc{cmd: cmd, addrs: map[string]string{}, exited: make(chan error, 1), storedCh: make(chan struct{}, 64)}
	ready := make(chan map[string]string, 1)
	var logMu sync.Mutex
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(nil, 1<<20)
		addrs := map[string]string{}
		sent := false
		for sc.Scan() {
			line := sc.Bytes()
			logMu.Lock()
			fmt.Fprintf(logFile, "[%s] %s\n", tag, line)
			logMu.Unlock()
			if sent {
				if strings.Contains(string(line), `"msg":"block stored"`) {
					p.mu.Lock()
					p.stored = append(p.stored, time.Now())
					p.mu.Unlock()
					select {
					case p.storedCh <- struct{}{}:
					default:
					}
				}
				continue
			}
			var rec map[string]any
			if json.Unmarshal(line, &rec) != nil {
				continue
			}
			if rec["msg"] == "receiver listening" {
				addrs[fmt.Sprint(rec["protocol"])] = fmt.Sprint(rec["addr"])
			}
			if rec["msg"] == "tracectl serve ready" {
				ready <- addrs
				sent = true
			}
		}
		p.exited <- cmd.Wait()
	}()
	select {
	case p.addrs = <-ready:
		return p, nil
	case err := <-p.exited:
		return nil, fmt.Errorf("serve exited before it was ready: %v (see serve.log, [%s])", err, tag)
	case <-time.After(90 * time.Second):
		cmd.Process.Kill()
		<-p.exited
		return nil, fmt.Errorf("serve not ready after 90s (see serve.log, [%s])", tag)
	}
}

func runTrial(o *options, args []string, logFile *os.File, rec *recorder, runID uint64, trial int, rng *rand.Rand, w *dirWatcher) (*trialRecord, error) {
	mode := o.Modes[trial%len(o.Modes)]
	var delay time.Duration
	journalN := 0 // on-journal: kill after this journal of the process
	switch mode {
	case modeRandom:
		delay = o.MinDelay + time.Duration(rng.Int64N(int64(o.MaxDelay-o.MinDelay)+1))
	case modeNearCut:
		delay = o.MaxBlockDuration + time.Duration(rng.Int64N(int64(50*time.Millisecond))) - 5*time.Millisecond
	case modeOnStored:
		delay = time.Duration(rng.Int64N(int64(5*time.Millisecond) + 1)) // after "block stored"
	case modeOnJournal:
		delay = time.Duration(rng.Int64N(int64(40*time.Millisecond) + 1)) // after the compaction journal lands
		journalN = 1 + rng.IntN(3)
	}
	if w != nil {
		w.drain()
	}
	t0 := time.Now()
	c, err := startServe(o.Tracectl, args, logFile, fmt.Sprintf("trial %d", trial))
	if err != nil {
		return nil, err
	}
	ready := time.Now()
	tr := &trialRecord{Trial: trial, Mode: mode, ReadyMs: ready.Sub(t0).Milliseconds(), RequestsSent: map[string]int{}, RequestsAcked: map[string]int{}}
	tr.JournalN = journalN
	l := &trialLoad{run: runID, trial: trial, ready: ready, rate: o.Rate, timeout: o.Timeout, rec: rec,
		seed: o.Seed, sent: tr.RequestsSent, acked: tr.RequestsAcked}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var senders []sender
	for pi, proto := range protocols {
		addr := c.addrs[proto]
		if addr == "" {
			c.cmd.Process.Kill()
			<-c.exited
			return nil, fmt.Errorf("serve did not log a %s receiver", proto)
		}
		for w := 0; w < o.Workers; w++ {
			s, err := newSender(proto, addr)
			if err != nil {
				c.cmd.Process.Kill()
				<-c.exited
				return nil, err
			}
			senders = append(senders, s)
			wg.Add(1)
			go func() {
				defer wg.Done()
				l.worker(proto, s, pi*o.Workers+w, stop)
			}()
		}
	}
	if mode == modeOnStored {
		// The first block of this process; -max-delay and more when none comes.
		select {
		case <-c.storedCh:
			time.Sleep(delay)
		case <-time.After(o.MaxDelay + 2*o.MaxBlockDuration):
		}
	} else if mode == modeOnJournal {
		// The first compaction job of this process; -max-delay and more
		// when none comes.
		timeout := time.After(o.MaxDelay + 5*time.Second)
	wait:
		for {
			select {
			case e := <-w.Events:
				countCompaction(tr, e)
				if !e.Removed && e.Name == "compactor.journal.json" && tr.CompactionJobs == journalN {
					tr.JournalMs = e.At.Sub(ready).Milliseconds()
					time.Sleep(time.Until(e.At.Add(delay)))
					break wait
				}
			case <-timeout:
				break wait
			}
		}
	} else {
		time.Sleep(time.Until(ready.Add(delay)))
	}
	tr.KillAfterMs = time.Since(ready).Milliseconds()
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		return nil, err
	}
	select {
	case <-c.exited:
	case <-time.After(30 * time.Second):
		return nil, errors.New("serve did not exit 30s after SIGKILL")
	}
	c.mu.Lock()
	for _, at := range c.stored {
		tr.StoredMs = append(tr.StoredMs, at.Sub(ready).Milliseconds())
	}
	c.mu.Unlock()
	if w != nil {
		for _, e := range drainEvents(w) {
			countCompaction(tr, e)
		}
	}
	close(stop)
	wg.Wait()
	for _, s := range senders {
		s.close()
	}
	return tr, nil
}

// countCompaction counts the background compactor's work seen by w.
func countCompaction(tr *trialRecord, e fsEvent) {
	switch {
	case e.Removed:
	case e.Name == "compactor.journal.json":
		tr.CompactionJobs++
	case e.Name == block.CompactedMetaName:
		tr.CompactedInputs++
	}
}

// countBlockDirs counts the default tenant's block directories with and
// without meta.json (empty directories are not counted).
func countBlockDirs(bucketDir string) (complete, incomplete int) {
	ents, _ := os.ReadDir(filepath.Join(bucketDir, block.DefaultTenant))
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		if _, err := os.Stat(filepath.Join(bucketDir, block.DefaultTenant, e.Name(), "meta.json")); err == nil {
			complete++
		} else if _, err := os.Stat(filepath.Join(bucketDir, block.DefaultTenant, e.Name(), "meta.compacted.json")); err != nil {
			// An empty directory is a deleted block (serve-compaction
			// deletes compacted blocks; file:// leaves the directory).
			if files, _ := os.ReadDir(filepath.Join(bucketDir, block.DefaultTenant, e.Name())); len(files) > 0 {
				incomplete++
			}
		}
	}
	return complete, incomplete
}

// verify reads every block of the bucket and fills the figures of s.
func verify(ctx context.Context, bucket string, o *options, rec *recorder, s *summary) error {
	b, err := storage.Open(ctx, bucket)
	if err != nil {
		return err
	}
	defer b.Close()
	v, err := readBucket(ctx, b, true)
	if err != nil {
		return err
	}
	s.Blocks, s.IncompleteBlocks = v.Blocks, v.Incomplete
	s.Unreadable, s.UnreadableWhy = len(v.Unreadable), v.Unreadable
	s.VerifyProblems = v.VerifyProblems
	s.RawExtraSameBlock, s.RawExtraOtherBlocks = v.RawExtraSame, v.RawExtraOther
	s.RawDuplicatedByTrial = map[int]int{}
	for k, n := range v.Raw {
		if n > 1 {
			s.RawDuplicatedByTrial[int(trialOfSpan(k.Span))]++
		}
	}
	reader, raw, parts, metas := v.Reader, v.Raw, v.Parts, v.Metas

	t, lost, dup, unknown := countSpans(rec.origins, reader, raw)
	s.tally = t
	s.PerProtocol = map[string]*protoFigures{}
	for _, p := range protocols {
		s.PerProtocol[p] = &protoFigures{}
	}
	for k, or := range rec.origins {
		pf := s.PerProtocol[or.Protocol]
		n := reader[k]
		if or.AckMs >= 0 {
			pf.Acked++
			if n == 0 {
				pf.Lost++
			}
			if n > 1 {
				pf.Dup++
			}
		} else {
			pf.NotAcked++
			if n > 0 {
				pf.NotAckedF++
			}
		}
	}
	report := func(keys []spanKey) []spanReport {
		var out []spanReport
		for _, k := range keys {
			if len(out) == 50 {
				break
			}
			or := rec.origins[k]
			r := spanReport{Span: k.String(), spanOrigin: or, Returned: reader[k], Stored: raw[k]}
			if or.Trial < len(s.TrialLog) {
				r.KillAfterMs = s.TrialLog[or.Trial].KillAfterMs
			}
			out = append(out, r)
		}
		return out
	}
	s.LostSpans, s.DupSpans = report(lost), report(dup)
	for i, k := range unknown {
		if i == 50 {
			break
		}
		s.UnknownSpans = append(s.UnknownSpans, k.String())
	}

	// Cross-check a sample of acknowledged traces through the lookup path
	// readers use (bloom filters, trace-by-ID).
	ackedTraces := map[[16]byte]bool{}
	for k, or := range rec.origins {
		if or.AckMs >= 0 {
			ackedTraces[k.Trace] = true
		}
	}
	ids := make([][16]byte, 0, len(ackedTraces))
	for id := range ackedTraces {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return string(ids[i][:]) < string(ids[j][:]) })
	rng := rand.New(rand.NewPCG(o.Seed, 0xf1d))
	rng.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	if len(ids) > o.FindCheck {
		ids = ids[:o.FindCheck]
	}
	cache := blocks.NewBloomCache(64 << 20)
	for _, id := range ids {
		res, err := blocks.FindTrace(ctx, b, metas, block.TraceID(id), blocks.FindOptions{Blooms: cache, Concurrency: 2})
		s.FindChecked++
		got := map[spanKey]int{}
		if err == nil {
			forEachSpan(res.Trace, func(k spanKey) { got[k]++ })
		}
		want := map[spanKey]int{}
		forEachSpan(blocks.Combine(parts[id]...), func(k spanKey) { want[k]++ })
		if err != nil || len(got) != len(want) || !sameCounts(got, want) {
			s.FindMismatches++
			if len(s.FindMismatchWhy) < 20 {
				s.FindMismatchWhy = append(s.FindMismatchWhy, fmt.Sprintf("trace %x: FindTrace returned %d spans, the block scan %d (err %v)", id, len(got), len(want), err))
			}
		}
	}
	return nil
}

func sameCounts(a, b map[spanKey]int) bool {
	for k, n := range a {
		if b[k] != n {
			return false
		}
	}
	return true
}

func forEachSpan(td ptrace.Traces, f func(spanKey)) {
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		sss := rss.At(i).ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			spans := sss.At(j).Spans()
			for k := 0; k < spans.Len(); k++ {
				sp := spans.At(k)
				f(spanKey{Trace: sp.TraceID(), Span: sp.SpanID()})
			}
		}
	}
}

func printSummary(s *summary) {
	fmt.Printf("\ncrash harness: %d trials, %d kills (SIGKILL), seed %d, %.1fs wall, commit %.12s%s\n",
		s.Trials, s.Kills, s.Seed, s.WallSeconds, s.Commit, map[bool]string{true: " (dirty)", false: ""}[s.Dirty])
	fmt.Printf("  kills by mode %v; kills that cut a block upload (new directory without meta.json) %d\n", s.KillsByMode, s.KillsMidUpload)
	if s.Target == "serve-compaction" {
		fmt.Printf("  target serve-compaction: compaction jobs started %d, inputs marked compacted %d; kills leaving a compaction journal %d, leaving the compaction lease held %d (expired by the harness)\n",
			s.CompactionJobs, s.CompactedInputs, s.KillsJournalLeft, s.KillsLeaseHeld)
	}
	fmt.Printf("  spans sent %d: acknowledged %d, not acknowledged %d\n", s.SpansSent, s.AckedSpans, s.NotAckedSpans)
	fmt.Printf("  bucket: %d blocks, %d incomplete block directories, %d unreadable; blocks verify: %d problems\n",
		s.Blocks, s.IncompleteBlocks, s.Unreadable, len(s.VerifyProblems))
	fmt.Printf("  spans a reader returns %d: acknowledged %d, not acknowledged %d, unknown %d\n", s.SpansFound, s.AckedFound, s.NotAckedFound, s.Unknown)
	fmt.Printf("  lost %d, duplicated %d (judged after the reader's combine); stored more than once %d spans (%d extra copies, combined by readers)\n",
		s.Lost, s.Duplicated, s.RawDuplicated, s.RawExtraCopies)
	fmt.Printf("    extra copies in the same block (repeats within a row) %d, in other blocks %d\n", s.RawExtraSameBlock, s.RawExtraOtherBlocks)
	if len(s.RawDuplicatedByTrial) > 0 {
		var tr []int
		for t := range s.RawDuplicatedByTrial {
			tr = append(tr, t)
		}
		sort.Ints(tr)
		fmt.Printf("    spans stored more than once, by the trial that sent them (mode, kill ms, blocks stored at ms):")
		for _, t := range tr {
			if t < len(s.TrialLog) {
				l := s.TrialLog[t]
				fmt.Printf(" %d:%d(%s,%d,%v)", t, s.RawDuplicatedByTrial[t], l.Mode, l.KillAfterMs, l.StoredMs)
			} else {
				fmt.Printf(" %d:%d", t, s.RawDuplicatedByTrial[t])
			}
		}
		fmt.Println()
	}
	fmt.Printf("  clean stop after the kills: %v in %dms; FindTrace cross-check: %d traces, %d mismatches\n", s.CleanStop, s.CleanStopMs, s.FindChecked, s.FindMismatches)
	for _, p := range protocols {
		if f := s.PerProtocol[p]; f != nil {
			fmt.Printf("    %-12s acknowledged %7d  lost %d  duplicated %d  not acknowledged %d (found %d)\n", p, f.Acked, f.Lost, f.Dup, f.NotAcked, f.NotAckedF)
		}
	}
	keys := make([]string, 0, len(s.Verdicts))
	for k := range s.Verdicts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Printf("  %-4s %s\n", s.Verdicts[k], k)
	}
	if s.Control != "" {
		fmt.Printf("  CONTROL RUN (%s): %s\n", s.Control, passMiss(s.Lost > 0)+" when lost > 0")
	}
	for i, r := range s.LostSpans {
		if i == 10 {
			fmt.Printf("  ... %d lost in all; the first 50 are in the JSON summary\n", s.Lost)
			break
		}
		fmt.Printf("  LOST %s trial %d %s sent %dms ack %dms (kill at %dms), stored %d\n", r.Span, r.Trial, r.Protocol, r.SentMs, r.AckMs, r.KillAfterMs, r.Stored)
	}
	for i, r := range s.DupSpans {
		if i == 10 {
			fmt.Printf("  ... %d duplicated in all; the first 50 are in the JSON summary\n", s.Duplicated)
			break
		}
		fmt.Printf("  DUP  %s trial %d %s returned %d, stored %d\n", r.Span, r.Trial, r.Protocol, r.Returned, r.Stored)
	}
	for _, w := range s.UnreadableWhy {
		fmt.Printf("  UNREADABLE %s\n", w)
	}
}

func passMiss(ok bool) string {
	if ok {
		return "PASS"
	}
	return "MISS"
}

func gitState(root string) (string, bool) {
	out, err := exec.Command("git", "-C", root, "rev-parse", "HEAD").Output()
	if err != nil {
		return "", false
	}
	st, _ := exec.Command("git", "-C", root, "status", "--porcelain", "--untracked-files=no").Output()
	return strings.TrimSpace(string(out)), len(strings.TrimSpace(string(st))) > 0
}

// moduleRoot is benchkit.ModuleRoot.
func moduleRoot() (string, error) { return benchkit.ModuleRoot() }
