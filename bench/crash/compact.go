package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/blocks/vparquet4"
	"github.com/tracectl/tracectl/internal/storage"
)

// Kill modes of the compact target, keyed to what `blocks compact` does
// to the bucket (seen with inotify) or to a random moment.
const (
	// cmodeRandom: 0..-compact-max-delay after the start (includes the
	// start-up: lease, journal recovery, planning).
	cmodeRandom = "random"
	// cmodeJournal: 0..40ms after the compaction journal lands (a job
	// starts): during the merge and the output block's upload.
	cmodeJournal = "on-journal"
	// cmodeOutput: 0..1ms after an output block's meta.json lands: output
	// live, inputs not yet marked compacted.
	cmodeOutput = "on-output"
	// cmodeMark: 0..1ms after an input's meta.compacted.json lands: while
	// marking inputs (meta.json of that input maybe not yet removed).
	cmodeMark = "on-mark"
	// cmodeDelete: 0..1ms after a data.parquet is removed: while deleting
	// compacted blocks past --compacted-retention, or undoing a job.
	cmodeDelete = "on-delete"
)

var compactModes = []string{cmodeRandom, cmodeJournal, cmodeOutput, cmodeMark, cmodeDelete}

type compactOptions struct {
	MaxDelay      time.Duration
	InitialBlocks int
	SeedBlocks    int
	Retention     time.Duration
	ExtraArgs     string
}

type compactTrial struct {
	killTrial
	SeededBlks int `json:"seeded_blocks"`
	// After the kill: blocks live, compacted, incomplete; whether a job
	// journal was left; whether the dead run's lease had to be expired.
	LiveBlocks    int    `json:"live_blocks"`
	Compacted     int    `json:"compacted_blocks"`
	Incomplete    int    `json:"incomplete_dirs"`
	JournalLeft   bool   `json:"journal_left"`
	LeaseExpired  bool   `json:"lease_expired"`
	OutputsLanded int    `json:"outputs_landed"`
	MaxLevel      uint32 `json:"max_level"`
	// The bucket as a reader sees it right after the kill.
	Check judgement `json:"check_after_kill"`
}

type compactSummary struct {
	Target      string         `json:"target"`
	Started     time.Time      `json:"started"`
	WallSeconds float64        `json:"wall_seconds"`
	Commit      string         `json:"commit"`
	Dirty       bool           `json:"dirty"`
	Seed        uint64         `json:"seed"`
	Args        []string       `json:"compact_args"`
	Options     map[string]any `json:"options"`
	killCounts
	KillsJournalLeft  int `json:"kills_leaving_a_journal"`
	KillsLeaseExpired int `json:"kills_leaving_the_lease_held"`
	BlocksSeeded      int `json:"blocks_seeded"`
	SpansSeeded       int `json:"spans_seeded"`
	SpansInTwoBlocks  int `json:"spans_seeded_twice"`
	// After-kill checks: the bucket read as a reader sees it after every
	// kill, before the restart.
	ChecksAfterKill    int `json:"checks_after_kill"`
	ChecksFailed       int `json:"checks_after_kill_failed"`
	MaxLostAfterKill   int `json:"max_lost_after_kill"`
	MaxDupAfterKill    int `json:"max_duplicated_after_kill"`
	MaxUnreadableAfter int `json:"max_unreadable_after_kill"`
	// Final: the last run left to finish, then the bucket read back.
	FinalExit      string            `json:"final_exit"`
	FinalMs        int64             `json:"final_ms"`
	Final          judgement         `json:"final"`
	FinalBlocks    int               `json:"final_live_blocks"`
	FinalLevel     uint32            `json:"final_max_level"`
	FindChecked    int               `json:"find_checked"`
	FindMismatches []string          `json:"find_mismatches,omitempty"`
	RerunJobs      int               `json:"rerun_jobs"` // jobs of one more run after the final: 0 unless new work appeared
	RerunChanged   bool              `json:"rerun_changed_live_blocks"`
	TrialLog       []compactTrial    `json:"trial_log"`
	Verdicts       map[string]string `json:"verdicts"`
	Control        string            `json:"control,omitempty"`
	WorkDir        string            `json:"work_dir,omitempty"`
}

// seedSpan is a span the harness wrote into a block.
type seedSpan struct {
	key   spanKey
	name  string
	start time.Time
	dur   time.Duration
	kind  ptrace.SpanKind
}

// seeder writes small blocks with the project's block writer: traces
// split across blocks and windows, and some spans written into two blocks.
type seeder struct {
	run       uint64
	rng       *rand.Rand
	b         *storage.Bucket
	windows   []time.Time // starts of the windows blocks fall in
	traces    [][16]byte
	spans     []seedSpan
	nextTrace uint32
	nextSpan  uint32
	expected  map[spanKey]bool
	blocks    int
	twice     int
}

func newSeeder(run uint64, rng *rand.Rand, b *storage.Bucket) *seeder {
	now := time.Now().UTC().Truncate(time.Hour)
	s := &seeder{run: run, rng: rng, b: b, expected: map[spanKey]bool{}}
	// Six windows that ended long ago (levels merge across once leftover)
	// and the previous hour (same-level merges only).
	for h := 8; h >= 1; h-- {
		if h == 2 {
			continue
		}
		s.windows = append(s.windows, now.Add(-time.Duration(h)*time.Hour))
	}
	return s
}

func (s *seeder) newSpan(trace [16]byte, w time.Time) seedSpan {
	s.nextSpan++
	return seedSpan{
		key:   spanKey{Trace: trace, Span: spanIDFor(0xC0, s.nextSpan)},
		name:  fmt.Sprintf("op-%d", s.rng.IntN(20)),
		start: w.Add(time.Duration(s.rng.Int64N(int64(55 * time.Minute)))),
		dur:   time.Duration(1+s.rng.IntN(500)) * time.Millisecond,
		kind:  ptrace.SpanKind(1 + s.rng.IntN(5)),
	}
}

// writeBlock writes one small block: 5–25 new traces, parts of 0–5
// existing traces, and (one block in three) 1–10 copies of spans already
// in another block.
func (s *seeder) writeBlock(ctx context.Context) error {
	w := s.windows[s.rng.IntN(len(s.windows))]
	byTrace := map[[16]byte][]seedSpan{}
	for range 5 + s.rng.IntN(21) {
		s.nextTrace++
		id := traceIDFor(s.run, 0xC0, s.nextTrace)
		s.traces = append(s.traces, id)
		for range 1 + s.rng.IntN(4) {
			byTrace[id] = append(byTrace[id], s.newSpan(id, w))
		}
	}
	if len(s.traces) > 30 {
		for range s.rng.IntN(6) {
			id := s.traces[s.rng.IntN(len(s.traces)-25)] // an older trace: most are in other blocks
			for range 1 + s.rng.IntN(3) {
				byTrace[id] = append(byTrace[id], s.newSpan(id, w))
			}
		}
	}
	var copies []seedSpan
	if len(s.spans) > 0 && s.rng.IntN(3) == 0 {
		for range 1 + s.rng.IntN(10) {
			sp := s.spans[s.rng.IntN(len(s.spans))]
			dup := false
			for _, o := range byTrace[sp.key.Trace] {
				dup = dup || o.key == sp.key
			}
			if !dup {
				byTrace[sp.key.Trace] = append(byTrace[sp.key.Trace], sp)
				copies = append(copies, sp)
			}
		}
	}
	ids := make([][16]byte, 0, len(byTrace))
	for id := range byTrace {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return string(ids[i][:]) < string(ids[j][:]) })
	bw, err := vparquet4.NewBlockWriter(ctx, s.b, vparquet4.WriterConfig{TenantID: block.DefaultTenant, ExpectedTraces: len(ids)})
	if err != nil {
		return err
	}
	for _, id := range ids {
		td := ptrace.NewTraces()
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", fmt.Sprintf("svc-%d", id[15]%4))
		ss := rs.ScopeSpans().AppendEmpty()
		ss.Scope().SetName("bench/crash/compact")
		for _, sp := range byTrace[id] {
			p := ss.Spans().AppendEmpty()
			p.SetTraceID(pcommon.TraceID(sp.key.Trace))
			p.SetSpanID(pcommon.SpanID(sp.key.Span))
			p.SetName(sp.name)
			p.SetKind(sp.kind)
			p.SetStartTimestamp(pcommon.NewTimestampFromTime(sp.start))
			p.SetEndTimestamp(pcommon.NewTimestampFromTime(sp.start.Add(sp.dur)))
			p.Attributes().PutStr("bench", "crash")
		}
		if err := bw.Add(block.TraceID(id), td); err != nil {
			bw.Abort()
			return err
		}
	}
	if _, err := bw.Close(); err != nil {
		return err
	}
	// Only now (the block is stored) are its spans expected.
	for _, id := range ids {
		for _, sp := range byTrace[id] {
			if !s.expected[sp.key] {
				s.expected[sp.key] = true
				s.spans = append(s.spans, sp)
			}
		}
	}
	s.twice += len(copies)
	s.blocks++
	return nil
}

// runCompact is the compact target: see README.md.
func runCompact(o *options, co *compactOptions) error {
	started := time.Now()
	root, work, cleanup, err := setUp(o, started, "bench-crash-compact-")
	defer cleanup()
	if err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(o.Seed, 0xc0c0))
	bucketDir := filepath.Join(work, "bucket")
	tenantDir := filepath.Join(bucketDir, block.DefaultTenant)
	bucket := "file://" + bucketDir
	logFile, err := openLog(work, "compact.log", tenantDir)
	if err != nil {
		return err
	}
	defer logFile.Close()
	ctx := context.Background()
	b, err := storage.Open(ctx, bucket)
	if err != nil {
		return err
	}
	defer b.Close()

	args := []string{"blocks", "compact", "--storage", bucket, "--lease-ttl", "10s",
		"--compacted-retention", co.Retention.String(), "-o", "json"}
	if co.ExtraArgs != "" {
		args = append(args, strings.Fields(co.ExtraArgs)...)
	}
	s := &compactSummary{Target: "compact", Started: started.UTC(), Seed: o.Seed, Args: args, killCounts: killCounts{KillsByMode: map[string]int{}},
		Options: map[string]any{"trials": o.Trials, "max_delay": co.MaxDelay.String(), "initial_blocks": co.InitialBlocks,
			"seed_blocks_per_trial": co.SeedBlocks, "modes": o.Modes, "compacted_retention": co.Retention.String()}}
	s.Commit, s.Dirty = gitState(root)
	logf("seed %d, work directory %s, tracectl %s", o.Seed, work, strings.Join(args, " "))

	sd := newSeeder(rng.Uint64(), rng, b)
	for range co.InitialBlocks {
		if err := sd.writeBlock(ctx); err != nil {
			return fmt.Errorf("seeding: %w", err)
		}
	}
	// The starting point as a reader returns it must be what was written.
	v, err := readBucket(ctx, b, true)
	if err != nil {
		return err
	}
	if j := judge(v, sd.expected); !j.ok() {
		return fmt.Errorf("the seeded bucket does not read back as written: %+v", j)
	}
	logf("seeded %d blocks, %d spans (%d written into two blocks), %d traces in several blocks", sd.blocks, len(sd.expected), sd.twice, v.TracesInManyBlks)

	w, err := newDirWatcher(bucketDir)
	if err != nil {
		return err
	}
	defer w.Close()

	run := 0
	for s.Kills < o.Trials && run < 4*o.Trials {
		if o.Deadline > 0 && time.Since(started) > o.Deadline {
			logf("-deadline %s reached after %d kills", o.Deadline, s.Kills)
			break
		}
		mode := o.Modes[run%len(o.Modes)]
		tr := compactTrial{killTrial: killTrial{Trial: run, Mode: mode}}
		n := co.SeedBlocks/2 + rng.IntN(co.SeedBlocks+1)
		for range n {
			if err := sd.writeBlock(ctx); err != nil {
				return fmt.Errorf("seeding: %w", err)
			}
		}
		tr.SeededBlks = n
		delay := time.Duration(rng.Int64N(int64(co.MaxDelay) + 1))
		tr.Event = 1 + rng.IntN(3)
		switch mode {
		case cmodeJournal:
			delay = time.Duration(rng.Int64N(int64(40*time.Millisecond) + 1))
		case cmodeOutput, cmodeMark, cmodeDelete:
			delay = time.Duration(rng.Int64N(int64(time.Millisecond) + 1))
		case cmodeRandom:
			tr.Event = 0
		}
		var match func(fsEvent) bool
		if mode != cmodeRandom {
			match = func(e fsEvent) bool {
				if matchCompactEvent(cmodeOutput, e, tenantDir) {
					tr.OutputsLanded++
				}
				return matchCompactEvent(mode, e, tenantDir)
			}
		}
		if err := killRun(o.Tracectl, args, logFile, work, w, delay, match, &tr.killTrial, &s.killCounts); err != nil {
			return err
		}
		// Count outputs that landed in this run.
		for _, e := range drainEvents(w) {
			if matchCompactEvent(cmodeOutput, e, tenantDir) {
				tr.OutputsLanded++
			}
		}
		if _, err := os.Stat(filepath.Join(tenantDir, "compactor.journal.json")); err == nil {
			tr.JournalLeft = true
			if tr.Killed {
				s.KillsJournalLeft++
			}
		}
		if tr.LeaseExpired, err = expireLease(ctx, b); err != nil {
			return err
		}
		if tr.LeaseExpired {
			s.KillsLeaseExpired++
		}
		// The bucket as a reader sees it now, before the restart.
		v, err := readBucket(ctx, b, true)
		if err != nil {
			return err
		}
		tr.Check = judge(v, sd.expected)
		tr.LiveBlocks, tr.Compacted, tr.Incomplete, tr.MaxLevel = v.Blocks, v.Compacted, v.Incomplete, v.MaxLevel
		s.ChecksAfterKill++
		if !tr.Check.ok() {
			s.ChecksFailed++
			logf("run %d: the bucket after the kill is wrong: %v", run, tr.Check.Problems)
		}
		s.MaxLostAfterKill = max(s.MaxLostAfterKill, tr.Check.Lost)
		s.MaxDupAfterKill = max(s.MaxDupAfterKill, tr.Check.Duplicated)
		s.MaxUnreadableAfter = max(s.MaxUnreadableAfter, tr.Check.Unreadable)
		s.TrialLog = append(s.TrialLog, tr)
		logf("run %d (%s): %s after %dms (event %d at %dms); seeded %d blocks; %d outputs landed; bucket: %d live (max level %d), %d compacted, %d incomplete, journal left %v; reader check: lost %d dup %d unreadable %d",
			run, mode, map[bool]string{true: "SIGKILL", false: "finished"}[tr.Killed], tr.KillAfterMs, tr.Event, tr.EventMs, n, tr.OutputsLanded,
			tr.LiveBlocks, tr.MaxLevel, tr.Compacted, tr.Incomplete, tr.JournalLeft, tr.Check.Lost, tr.Check.Duplicated, tr.Check.Unreadable)
		run++
	}
	s.Trials = run
	s.BlocksSeeded, s.SpansSeeded, s.SpansInTwoBlocks = sd.blocks, len(sd.expected), sd.twice

	// Let one run finish.
	logf("final run, left to finish ...")
	t0 := time.Now()
	out, err := runLogged(o.Tracectl, args, logFile, "final", work)
	s.FinalMs = time.Since(t0).Milliseconds()
	s.FinalExit = "ok"
	if err != nil {
		s.FinalExit = err.Error()
	}
	if _, err := expireLease(ctx, b); err != nil {
		return err
	}
	if o.Control {
		if controlDelete(tenantDir) == "" {
			return errors.New("-control: no live block to delete")
		}
		s.Control = "negative control: deleted one live block's meta.json before reading back; lost must be > 0"
		logf("%s", s.Control)
	}
	v, err = readBucket(ctx, b, true)
	if err != nil {
		return err
	}
	s.Final = judge(v, sd.expected)
	s.FinalBlocks, s.FinalLevel = v.Blocks, v.MaxLevel
	s.FindChecked, s.FindMismatches = findCheck(ctx, b, v, 500)
	before := liveSet(v)
	// Once more: nothing is left to merge, so nothing is written.
	out, err = runLogged(o.Tracectl, args, logFile, "rerun", work)
	if err != nil {
		return fmt.Errorf("re-run after the final run: %w", err)
	}
	var rr struct {
		Jobs []json.RawMessage `json:"jobs"`
	}
	_ = json.Unmarshal(out, &rr)
	s.RerunJobs = len(rr.Jobs)
	if v2, err := readBucket(ctx, b, false); err == nil {
		s.RerunChanged = liveSet(v2) != before
	}
	_ = out

	s.WallSeconds = float64(time.Since(started).Milliseconds()) / 1000
	s.Verdicts = map[string]string{
		"lost == 0 (final)":                         passMiss(s.Final.Lost == 0),
		"duplicated == 0 (final, as read)":          passMiss(s.Final.Duplicated == 0),
		"unknown == 0 (final)":                      passMiss(s.Final.Unknown == 0),
		"unreadable blocks == 0 (final, + verify)":  passMiss(s.Final.Unreadable == 0),
		"every after-kill check clean":              passMiss(s.ChecksFailed == 0),
		"final run exited 0":                        passMiss(s.FinalExit == "ok"),
		"find-trace agrees":                         passMiss(len(s.FindMismatches) == 0),
		"re-run after the final run writes nothing": passMiss(s.RerunJobs == 0 && !s.RerunChanged),
		"kills >= trials":                           passMiss(s.Kills >= o.Trials),
	}
	s.WorkDir = keepWork(o, work, s.Verdicts)
	return report(root, o, started, s, func() { printCompactSummary(s) })
}

func matchCompactEvent(mode string, e fsEvent, tenantDir string) bool {
	switch mode {
	case cmodeJournal:
		return !e.Removed && e.Dir == tenantDir && e.Name == "compactor.journal.json"
	case cmodeOutput:
		return !e.Removed && e.Dir != tenantDir && e.Name == block.MetaName
	case cmodeMark:
		return !e.Removed && e.Name == block.CompactedMetaName
	case cmodeDelete:
		return e.Removed && e.Name == block.DataName
	}
	return false
}

func drainEvents(w *dirWatcher) []fsEvent {
	var out []fsEvent
	for {
		select {
		case e := <-w.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

// liveSet is the sorted list of live block IDs, as one string.
func liveSet(v *bucketView) string {
	var ids []string
	for _, m := range v.Metas {
		ids = append(ids, m.BlockID.String())
	}
	sort.Strings(ids)
	return strings.Join(ids, ",")
}

// startLogged starts bin with its stdout and stderr going to logFile,
// each line tagged.
func startLogged(bin string, args []string, logFile *os.File, tag, work string) (*exec.Cmd, chan error, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+filepath.Join(work, "xdg"))
	fmt.Fprintf(logFile, "[%s] start %s\n", tag, time.Now().Format(time.RFC3339Nano))
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	return cmd, exited, nil
}

// runLogged runs bin to the end (at most 10 minutes) and returns its stdout.
func runLogged(bin string, args []string, logFile *os.File, tag, work string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+filepath.Join(work, "xdg"))
	fmt.Fprintf(logFile, "[%s] start %s\n", tag, time.Now().Format(time.RFC3339Nano))
	cmd.Stderr = logFile
	out, err := cmd.Output()
	fmt.Fprintf(logFile, "[%s] stdout: %s\n", tag, out)
	return out, err
}

func printCompactSummary(s *compactSummary) {
	fmt.Printf("\ncrash harness, target compact: %d runs, %d kills (SIGKILL), %d runs finished before their kill moment, seed %d, %.1fs wall, commit %.12s%s\n",
		s.Trials, s.Kills, s.FinishedBeforeKill, s.Seed, s.WallSeconds, s.Commit, map[bool]string{true: " (dirty)", false: ""}[s.Dirty])
	fmt.Printf("  kills by mode %v; kills leaving a job journal %d, leaving the lease held %d\n", s.KillsByMode, s.KillsJournalLeft, s.KillsLeaseExpired)
	fmt.Printf("  seeded %d blocks, %d spans (%d copies written into a second block)\n", s.BlocksSeeded, s.SpansSeeded, s.SpansInTwoBlocks)
	fmt.Printf("  after-kill reader checks %d, failed %d (max lost %d, max duplicated %d, max unreadable %d)\n",
		s.ChecksAfterKill, s.ChecksFailed, s.MaxLostAfterKill, s.MaxDupAfterKill, s.MaxUnreadableAfter)
	f := s.Final
	fmt.Printf("  final run: %s in %dms; %d live blocks (max level %d)\n", s.FinalExit, s.FinalMs, s.FinalBlocks, s.FinalLevel)
	fmt.Printf("  final: expected %d spans, a reader returns %d; lost %d, duplicated %d, unknown %d, unreadable %d; raw: %d spans stored more than once (%d extra copies: %d same block, %d other blocks)\n",
		f.Expected, f.Found, f.Lost, f.Duplicated, f.Unknown, f.Unreadable, f.RawDuplicated, f.RawExtra, f.RawExtraSame, f.RawExtraOther)
	fmt.Printf("  FindTrace cross-check: %d traces, %d mismatches; re-run: %d jobs, live blocks changed %v\n", s.FindChecked, len(s.FindMismatches), s.RerunJobs, s.RerunChanged)
	printVerdicts(s.Verdicts)
	if s.Control != "" {
		fmt.Printf("  CONTROL RUN (%s): %s when lost > 0 (lost %d)\n", s.Control, passMiss(f.Lost > 0), f.Lost)
	}
	for _, p := range f.Problems {
		fmt.Printf("  %s\n", p)
	}
}

func printVerdicts(v map[string]string) {
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Printf("  %-4s %s\n", v[k], k)
	}
}
