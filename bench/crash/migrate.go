package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/migrate/jaegeres/estest"
	"github.com/tracectl/tracectl/internal/storage"
)

// Kill modes of the migrate target.
const (
	// mmodeRandom: 0..-migrate-max-delay after the start.
	mmodeRandom = "random"
	// mmodePending: 0..30ms after the checkpoint lands with a pending
	// block: while that block is written and uploaded.
	mmodePending = "on-pending"
	// mmodeBlock: 0..1ms after a block's meta.json lands: the block is
	// stored, the checkpoint does not account for it yet.
	mmodeBlock = "on-block"
	// mmodeCheckpoint: 0..1ms after the checkpoint lands without a pending
	// block: right after a block was accounted for.
	mmodeCheckpoint = "on-checkpoint"
)

var migrateModes = []string{mmodeRandom, mmodePending, mmodeBlock, mmodeCheckpoint}

type migrateOptions struct {
	Spans         int
	Days          int
	MaxBlockBytes int64
	MaxDelay      time.Duration
	PageDelay     time.Duration
	Batch         int
	ESVersion     string
}

type migrateTrial struct {
	killTrial
	// After the kill: the checkpoint's boundary, blocks it accounts for,
	// whether a block was pending, blocks in the bucket.
	After         string    `json:"checkpoint_after"`
	CPBlocks      int       `json:"checkpoint_blocks"`
	PendingLeft   bool      `json:"pending_left"`
	PendingStored bool      `json:"pending_block_stored"` // the pending block's meta.json had landed
	LiveBlocks    int       `json:"live_blocks"`
	Incomplete    int       `json:"incomplete_dirs"`
	Covered       int       `json:"covered_spans"` // spans of traces ≤ the checkpoint's boundary
	Check         judgement `json:"check_after_kill"`
}

type migrateSummary struct {
	Target             string         `json:"target"`
	Started            time.Time      `json:"started"`
	WallSeconds        float64        `json:"wall_seconds"`
	Commit             string         `json:"commit"`
	Dirty              bool           `json:"dirty"`
	Seed               uint64         `json:"seed"`
	Args               []string       `json:"migrate_args"`
	Options            map[string]any `json:"options"`
	ESDocs             int            `json:"es_span_documents"`
	ESTraces           int            `json:"es_traces"`
	ESTracesTwoIndices int            `json:"es_traces_in_two_indices"`
	killCounts
	KillsPending       int `json:"kills_leaving_a_pending_block"`
	KillsPendingStored int `json:"kills_leaving_a_stored_pending_block"`
	// After-kill checks: the bucket read as a reader sees it after every
	// kill: nothing duplicated (as read or raw) or unreadable, and every
	// span of a trace at or before the checkpoint's boundary present.
	ChecksAfterKill int               `json:"checks_after_kill"`
	ChecksFailed    int               `json:"checks_after_kill_failed"`
	MaxRawDupAfter  int               `json:"max_raw_duplicated_after_kill"`
	MaxLostCovered  int               `json:"max_lost_covered_after_kill"`
	FinalExit       string            `json:"final_exit"`
	FinalMs         int64             `json:"final_ms"`
	Final           judgement         `json:"final"`
	FinalBlocks     int               `json:"final_live_blocks"`
	FindChecked     int               `json:"find_checked"`
	FindMismatches  []string          `json:"find_mismatches,omitempty"`
	RerunResume     string            `json:"rerun_resume_exit"`
	RerunPlain      string            `json:"rerun_without_resume_exit"`
	RerunNewObjects int               `json:"rerun_new_objects"` // objects in the bucket the re-runs added
	TrialLog        []migrateTrial    `json:"trial_log"`
	Verdicts        map[string]string `json:"verdicts"`
	Control         string            `json:"control,omitempty"`
	WorkDir         string            `json:"work_dir,omitempty"`
}

// migrateDoc renders a Jaeger span document (v1 writer) for the test
// server; the kind is a tag, so it is stable across reads.
func migrateDoc(d *estest.Doc, dst []byte) []byte {
	kinds := []string{"server", "client", "producer", "consumer", "internal"}
	return fmt.Appendf(dst, `{"traceID":%q,"spanID":%q,"flags":1,"operationName":"op-%s","references":[],"startTime":%d,"startTimeMillis":%d,"duration":%d,`+
		`"tags":[{"key":"span.kind","type":"string","value":"%s"},{"key":"bench","type":"string","value":"crash"}],"logs":[],`+
		`"process":{"serviceName":%q,"tags":[{"key":"hostname","type":"string","value":"h-%s"}]}}`,
		d.TraceID, d.SpanID, d.SpanID[:2], d.StartTime, d.StartTime/1000, 100+d.StartTime%5000, kinds[int(d.SpanID[15])%5], d.Service, d.Service)
}

// runMigrate is the migrate target: see README.md.
func runMigrate(o *options, mo *migrateOptions) error {
	started := time.Now()
	root, work, cleanup, err := setUp(o, started, "bench-crash-migrate-")
	defer cleanup()
	if err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(o.Seed, 0x3e5))
	bucketDir, cpDir := filepath.Join(work, "bucket"), filepath.Join(work, "cp")
	tenantDir := filepath.Join(bucketDir, block.DefaultTenant)
	cpPath := filepath.Join(cpDir, "checkpoint.json")
	bucket := "file://" + bucketDir
	logFile, err := openLog(work, "migrate.log", tenantDir, cpDir)
	if err != nil {
		return err
	}
	defer logFile.Close()
	ctx := context.Background()

	// The Elasticsearch test server, in this process (only the migration
	// is killed), holding -migrate-spans documents over -migrate-days
	// daily indices; some traces straddle midnight (two indices).
	es, err := estest.Start(estest.Config{Version: mo.ESVersion, Render: migrateDoc})
	if err != nil {
		return err
	}
	defer es.Close()
	if mo.PageDelay > 0 {
		es.SetFault(func(r *http.Request, body []byte) (int, string) {
			if strings.Contains(r.URL.Path, "_search") {
				time.Sleep(mo.PageDelay)
			}
			return 0, ""
		})
	}
	expected := map[spanKey]bool{}
	traceOf := map[spanKey]string{}
	base := time.Date(2026, 11, 18, 0, 0, 0, 0, time.UTC)
	byIndex := map[string][]*estest.Doc{}
	s := &migrateSummary{Target: "migrate", Started: started.UTC(), Seed: o.Seed, killCounts: killCounts{KillsByMode: map[string]int{}}}
	for n := 0; n < mo.Spans; s.ESTraces++ {
		hi, lo := rng.Uint64()|1<<63, rng.Uint64()
		tid := fmt.Sprintf("%016x%016x", hi, lo)
		day := rng.IntN(mo.Days)
		start := base.Add(time.Duration(day)*24*time.Hour + time.Duration(rng.Int64N(int64(24*time.Hour-time.Minute))))
		straddle := day < mo.Days-1 && rng.IntN(20) == 0
		if straddle {
			start = base.Add(time.Duration(day+1)*24*time.Hour - 2*time.Second)
			s.ESTracesTwoIndices++
		}
		k := 1 + rng.IntN(12)
		for i := 0; i < k && n < mo.Spans; i++ {
			st := start.Add(time.Duration(i) * 400 * time.Millisecond)
			sid := fmt.Sprintf("%016x", rng.Uint64()|1)
			idx := st.Format("jaeger-span-2006-01-02")
			byIndex[idx] = append(byIndex[idx], &estest.Doc{ID: fmt.Sprintf("d%d", n), TraceID: tid, SpanID: sid,
				Service: fmt.Sprintf("svc-%d", rng.IntN(5)), StartTime: st.UnixMicro()})
			var key spanKey
			hex.Decode(key.Trace[:], []byte(tid))
			hex.Decode(key.Span[:], []byte(sid))
			expected[key] = true
			traceOf[key] = tid
			n++
		}
	}
	for idx, docs := range byIndex {
		es.Add(idx, docs...)
	}
	s.ESDocs = len(expected)

	args := []string{"migrate", "from", "jaeger-es", "--es-url", es.URL, "--to", bucket, "--checkpoint", cpPath,
		"--batch-size", fmt.Sprint(mo.Batch), "--max-block-bytes", fmt.Sprint(mo.MaxBlockBytes), "-q"}
	s.Args = args
	s.Options = map[string]any{"trials": o.Trials, "max_delay": mo.MaxDelay.String(), "spans": mo.Spans, "days": mo.Days,
		"page_delay": mo.PageDelay.String(), "es_version": mo.ESVersion, "batch": mo.Batch, "max_block_bytes": mo.MaxBlockBytes, "modes": o.Modes}
	s.Commit, s.Dirty = gitState(root)
	logf("seed %d, work directory %s, %d span documents (%d traces, %d in two indices) at %s; tracectl %s (then --resume)",
		o.Seed, work, s.ESDocs, s.ESTraces, s.ESTracesTwoIndices, es.URL, strings.Join(args, " "))

	b, err := storage.Open(ctx, bucket)
	if err != nil {
		return err
	}
	defer b.Close()
	w, err := newDirWatcher(work)
	if err != nil {
		return err
	}
	defer w.Close()

	readCP := func() (after string, blocks int, pending *struct {
		BlockID string `json:"blockID"`
	}, done bool) {
		var cp struct {
			After string `json:"after"`
			Done  bool   `json:"done"`
			Stats struct {
				Blocks []string `json:"blocks"`
			} `json:"stats"`
			Pending *struct {
				BlockID string `json:"blockID"`
			} `json:"pending"`
		}
		data, err := os.ReadFile(cpPath)
		if err == nil {
			_ = json.Unmarshal(data, &cp)
		}
		return cp.After, len(cp.Stats.Blocks), cp.Pending, cp.Done
	}

	run := 0
	done := false
	for s.Kills < o.Trials && run < 3*o.Trials && !done {
		if o.Deadline > 0 && time.Since(started) > o.Deadline {
			logf("-deadline %s reached after %d kills", o.Deadline, s.Kills)
			break
		}
		mode := o.Modes[run%len(o.Modes)]
		tr := migrateTrial{killTrial: killTrial{Trial: run, Mode: mode, Event: 1 + rng.IntN(3)}}
		var delay time.Duration
		switch mode {
		case mmodeRandom:
			delay = time.Duration(rng.Int64N(int64(mo.MaxDelay) + 1))
			tr.Event = 0
		case mmodePending:
			delay = time.Duration(rng.Int64N(int64(30*time.Millisecond) + 1))
		default:
			delay = time.Duration(rng.Int64N(int64(time.Millisecond) + 1))
		}
		a := args
		if run > 0 {
			a = append(append([]string{}, args...), "--resume")
		}
		var match func(fsEvent) bool
		if mode != mmodeRandom {
			match = func(e fsEvent) bool {
				switch {
				case e.Removed:
				case mode == mmodeBlock:
					return e.Dir != tenantDir && strings.HasPrefix(e.Dir, tenantDir) && e.Name == block.MetaName
				case e.Dir == cpDir && e.Name == "checkpoint.json":
					_, _, p, _ := readCP()
					return (p != nil) == (mode == mmodePending)
				}
				return false
			}
		}
		if err := killRun(o.Tracectl, a, logFile, work, w, delay, match, &tr.killTrial, &s.killCounts); err != nil {
			return err
		}
		after, nb, pend, cpDone := readCP()
		done = cpDone
		tr.After, tr.CPBlocks, tr.PendingLeft = after, nb, pend != nil
		if pend != nil && tr.Killed {
			s.KillsPending++
			if _, err := os.Stat(filepath.Join(tenantDir, pend.BlockID, block.MetaName)); err == nil {
				tr.PendingStored = true
				s.KillsPendingStored++
			}
		}
		v, err := readBucket(ctx, b, true)
		if err != nil {
			return err
		}
		// Judged now: spans of traces the checkpoint accounts for.
		covered := map[spanKey]bool{}
		for k := range expected {
			if traceOf[k] <= after || cpDone {
				covered[k] = true
			}
		}
		tr.Covered = len(covered)
		j := judge(v, covered)
		// Spans the checkpoint does not cover yet may be stored (a block
		// stored before its checkpoint): not unknown unless never in ES.
		j.Unknown = 0
		for k := range v.Reader {
			if !expected[k] {
				j.Unknown++
			}
		}
		j.Found = len(v.Reader)
		tr.Check = j
		tr.LiveBlocks, tr.Incomplete = v.Blocks, v.Incomplete
		s.ChecksAfterKill++
		if !j.ok() || j.RawDuplicated > 0 {
			s.ChecksFailed++
			logf("run %d: the bucket after the kill is wrong: %v (raw duplicated %d)", run, j.Problems, j.RawDuplicated)
		}
		s.MaxRawDupAfter = max(s.MaxRawDupAfter, j.RawDuplicated)
		s.MaxLostCovered = max(s.MaxLostCovered, j.Lost)
		s.TrialLog = append(s.TrialLog, tr)
		logf("run %d (%s): %s after %dms (event %d at %dms); checkpoint: %d blocks, pending %v (stored %v), done %v; bucket %d blocks, %d incomplete, %d spans (%d covered); check: lost %d dup %d raw dup %d unreadable %d",
			run, mode, map[bool]string{true: "SIGKILL", false: "finished"}[tr.Killed], tr.KillAfterMs, tr.Event, tr.EventMs, nb, tr.PendingLeft, tr.PendingStored, cpDone,
			v.Blocks, v.Incomplete, len(v.Reader), len(covered), j.Lost, j.Duplicated, j.RawDuplicated, j.Unreadable)
		run++
	}
	s.Trials = run
	if done {
		logf("the migration finished after %d kills; raise -migrate-spans or -migrate-page-delay for more", s.Kills)
	}

	logf("final run (--resume --verify), left to finish ...")
	t0 := time.Now()
	_, err = runLogged(o.Tracectl, append(append([]string{}, args...), "--resume", "--verify"), logFile, "final", work)
	s.FinalMs = time.Since(t0).Milliseconds()
	s.FinalExit = "ok"
	if err != nil {
		s.FinalExit = err.Error()
	}
	objsBefore, _ := b.ListAll(ctx, "", "")
	// Re-running the finished migration writes nothing, with --resume and
	// without (a finished checkpoint makes the run a no-op).
	s.RerunResume, s.RerunPlain = "ok", "ok"
	if _, err := runLogged(o.Tracectl, append(append([]string{}, args...), "--resume"), logFile, "rerun --resume", work); err != nil {
		s.RerunResume = err.Error()
	}
	if _, err := runLogged(o.Tracectl, args, logFile, "rerun", work); err != nil {
		s.RerunPlain = err.Error()
	}
	objsAfter, _ := b.ListAll(ctx, "", "")
	had := map[string]bool{}
	for _, ob := range objsBefore {
		had[ob.Key] = true
	}
	for _, ob := range objsAfter {
		if !had[ob.Key] {
			s.RerunNewObjects++
		}
	}
	if o.Control {
		if controlDelete(tenantDir) == "" {
			return errors.New("-control: no live block to delete")
		}
		s.Control = "negative control: deleted one block's meta.json before reading back; lost must be > 0"
		logf("%s", s.Control)
	}
	v, err := readBucket(ctx, b, true)
	if err != nil {
		return err
	}
	s.Final = judge(v, expected)
	s.FinalBlocks = v.Blocks
	s.FindChecked, s.FindMismatches = findCheck(ctx, b, v, 500)

	s.WallSeconds = float64(time.Since(started).Milliseconds()) / 1000
	s.Verdicts = map[string]string{
		"lost == 0 (final)":                                   passMiss(s.Final.Lost == 0),
		"duplicated == 0 (final, as read)":                    passMiss(s.Final.Duplicated == 0),
		"raw duplicated == 0 (final, stored rows)":            passMiss(s.Final.RawDuplicated == 0),
		"unknown == 0 (final)":                                passMiss(s.Final.Unknown == 0),
		"unreadable blocks == 0 (final, + verify)":            passMiss(s.Final.Unreadable == 0),
		"every after-kill check clean (incl. raw duplicates)": passMiss(s.ChecksFailed == 0),
		"final run (--resume --verify) exited 0":              passMiss(s.FinalExit == "ok"),
		"find-trace agrees":                                   passMiss(len(s.FindMismatches) == 0),
		"re-running the finished migration writes nothing":    passMiss(s.RerunNewObjects == 0 && s.RerunResume == "ok" && s.RerunPlain == "ok"),
		"kills >= trials":                                     passMiss(s.Kills >= o.Trials),
	}
	s.WorkDir = keepWork(o, work, s.Verdicts)
	return report(root, o, started, s, func() { printMigrateSummary(s) })
}

func printMigrateSummary(s *migrateSummary) {
	fmt.Printf("\ncrash harness, target migrate: %d runs, %d kills (SIGKILL), %d runs finished before their kill moment, seed %d, %.1fs wall, commit %.12s%s\n",
		s.Trials, s.Kills, s.FinishedBeforeKill, s.Seed, s.WallSeconds, s.Commit, map[bool]string{true: " (dirty)", false: ""}[s.Dirty])
	fmt.Printf("  Elasticsearch test server: %d span documents, %d traces (%d in two daily indices)\n", s.ESDocs, s.ESTraces, s.ESTracesTwoIndices)
	fmt.Printf("  kills by mode %v; kills leaving a pending block %d (its meta.json already stored %d)\n", s.KillsByMode, s.KillsPending, s.KillsPendingStored)
	fmt.Printf("  after-kill checks %d, failed %d (max lost of checkpointed spans %d, max raw duplicated %d)\n", s.ChecksAfterKill, s.ChecksFailed, s.MaxLostCovered, s.MaxRawDupAfter)
	f := s.Final
	fmt.Printf("  final run: %s in %dms; %d blocks\n", s.FinalExit, s.FinalMs, s.FinalBlocks)
	fmt.Printf("  final: expected %d spans, a reader returns %d; lost %d, duplicated %d, unknown %d, unreadable %d; raw: %d spans stored more than once (%d extra copies: %d same block, %d other blocks)\n",
		f.Expected, f.Found, f.Lost, f.Duplicated, f.Unknown, f.Unreadable, f.RawDuplicated, f.RawExtra, f.RawExtraSame, f.RawExtraOther)
	fmt.Printf("  FindTrace cross-check: %d traces, %d mismatches; re-runs: --resume %s, without %s, new objects %d\n", s.FindChecked, len(s.FindMismatches), s.RerunResume, s.RerunPlain, s.RerunNewObjects)
	printVerdicts(s.Verdicts)
	if s.Control != "" {
		fmt.Printf("  CONTROL RUN (%s): %s when lost > 0 (lost %d)\n", s.Control, passMiss(f.Lost > 0), f.Lost)
	}
	for _, p := range f.Problems {
		fmt.Printf("  %s\n", p)
	}
}
