package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/storage"
)

// -target serve-outage: SIGKILL during a storage outage. serve stores
// its blocks in an S3 bucket the harness hosts (gofakes3, in memory,
// s3fault.go); while the load runs, the harness takes storage down in one
// of several ways (the outage kinds, cycled through the trials as
// -modes), kills serve inside the outage, and brings storage back before
// the restart or only a few seconds after it, so that some restarts
// replay the WAL while storage is still down. See README.md.

// outageOptions are the flags of -target serve-outage.
type outageOptions struct {
	KillMin, KillMax       time.Duration
	RecoverMin, RecoverMax time.Duration
	WALMaxBytes            int64
	MaxHang                time.Duration
	MaxKills               int
}

// outageFlags registers the flags of -target serve-outage on fs.
func outageFlags(fs *flag.FlagSet) *outageOptions {
	oo := &outageOptions{}
	fs.DurationVar(&oo.KillMin, "outage-kill-min", 500*time.Millisecond, "serve-outage: shortest time from the start of the outage to SIGKILL")
	fs.DurationVar(&oo.KillMax, "outage-kill-max", 4*time.Second, "serve-outage: longest time from the start of the outage to SIGKILL")
	fs.DurationVar(&oo.RecoverMin, "outage-recover-min", 2*time.Second, "serve-outage: when storage stays down over a restart, it comes back at the earliest this long after serve is started")
	fs.DurationVar(&oo.RecoverMax, "outage-recover-max", 6*time.Second, "serve-outage: ... and at the latest this long")
	fs.Int64Var(&oo.WALMaxBytes, "outage-wal-max-bytes", 512<<10, "serve-outage: serve --wal-max-bytes (small, so that longer outages fill the WAL and serve refuses)")
	fs.DurationVar(&oo.MaxHang, "outage-max-hang", 30*time.Second, "serve-outage: down-hang holds a request at most this long, then answers 503")
	fs.IntVar(&oo.MaxKills, "outage-max-kills", 3, "serve-outage: most kills in one outage (storage staying down over that many restarts)")
	return oo
}

// outageTrial is what a serve-outage trial records besides its
// trialRecord.
type outageTrial struct {
	Trial  int    `json:"trial"`
	Outage string `json:"outage"` // the outage kind in force at the kill
	// StartedDown: storage was still down (CarriedKind) when this serve
	// was started, so the WAL was replayed during the outage.
	StartedDown bool   `json:"started_down"`
	CarriedKind string `json:"carried_outage,omitempty"`
	// ReadyWhileDown (started down): serve said ready before storage came
	// back. StartFailed: it exited before it was ready (its error and last
	// log lines); the harness then brought storage back and started it
	// again.
	ReadyWhileDown *bool    `json:"ready_while_down,omitempty"`
	StartFailed    string   `json:"start_failed,omitempty"`
	StartFailedLog []string `json:"start_failed_log,omitempty"`
	// RecoveredAfterStartMs (started down): storage came back this long
	// after serve was started (0: it stayed down over the kill).
	RecoveredAfterStartMs int64 `json:"recovered_after_start_ms,omitempty"`
	// OutageAtMs: the outage in force at the kill began this long after
	// ready (negative: before this serve was started).
	OutageAtMs       int64 `json:"outage_at_ms"`
	KillIntoOutageMs int64 `json:"kill_into_outage_ms"`
	KillOfOutage     int   `json:"kill_of_outage"`     // 1: the first kill during this outage
	StaysDown        bool  `json:"storage_stays_down"` // still down when the next serve starts
	AckedDuringOut   int64 `json:"requests_acked_during_outage"`
	RefusedWALFull   int64 `json:"requests_refused_wal_full"`
	RefusedLive      int64 `json:"requests_refused_live_bytes"`
	OtherErrOutage   int64 `json:"other_errors_during_outage"` // before the kill, not a limit refusal
	OtherErrUp       int64 `json:"other_errors_storage_up"`    // before the kill, storage up, not a limit refusal
	// AckedByKind: requests acknowledged during an outage by the outage
	// in force then (a trial that started down has two);
	// OtherErrClasses: the other errors by state and class.
	AckedByKind     map[string]int64 `json:"requests_acked_during_outage_by_kind,omitempty"`
	OtherErrClasses map[string]int   `json:"other_error_classes,omitempty"`
	FlushFailures   int              `json:"flush_failures_logged"`
	FlushFailure    string           `json:"flush_failure_sample,omitempty"`
	StoreRequests   int64            `json:"store_requests"`
	FaultedRequests int64            `json:"store_requests_faulted"`
}

// outageFigures are the serve-outage figures of the summary.
type outageFigures struct {
	Kinds       []string       `json:"kinds"`
	KillsByKind map[string]int `json:"kills_by_kind"`
	// Kills during an outage that had seen a kill already (storage down
	// over the restart, the restarted serve killed again before it came
	// back).
	KillsRepeated       int            `json:"kills_in_an_outage_with_an_earlier_kill"`
	StartsDown          int            `json:"starts_with_storage_down"`
	StartsDownByKind    map[string]int `json:"starts_with_storage_down_by_kind"`
	ReadyWhileDown      int            `json:"ready_while_storage_down"`
	ReadyAfterRecovery  int            `json:"ready_only_after_storage_came_back"`
	StartFailures       int            `json:"start_failures_while_storage_down"`
	StartFailuresByKind map[string]int `json:"start_failures_by_kind"`
	// Requests acknowledged while the switch was in an outage state, by
	// state; refusals by serve's limits; other errors before the kill.
	AckedDuringOutage       int64            `json:"requests_acked_during_outage"`
	AckedDuringOutageByKind map[string]int64 `json:"requests_acked_during_outage_by_kind"`
	RefusedWALFull          int64            `json:"requests_refused_wal_full"`
	RefusedLiveBytes        int64            `json:"requests_refused_live_bytes"`
	OtherErrorsDuringOutage int64            `json:"other_errors_during_outage"`
	OtherErrorsUp           int64            `json:"other_errors_storage_up"`
	OtherErrorClasses       map[string]int   `json:"other_error_classes,omitempty"`
	FlushFailuresLogged     int              `json:"flush_failures_logged"`
	TrialsWithFlushFailures map[string]int   `json:"trials_with_flush_failures_by_kind"`
	StoreRequests           int64            `json:"store_requests"`
	FaultedRequests         int64            `json:"store_requests_faulted"`
	FaultedByKind           map[string]int64 `json:"store_requests_faulted_by_kind"`
	WALMaxBytes             int64            `json:"wal_max_bytes"`
	Bucket                  string           `json:"bucket"`
}

type outageSummary struct {
	summary
	Outage    outageFigures `json:"outage"`
	OutageLog []outageTrial `json:"outage_log"`
}

// outageRun is the storage state carried from one trial to the next.
type outageRun struct {
	down  bool      // storage is down now
	kind  string    // which outage
	since time.Time // when it began
	kills int       // kills during it so far
}

// outageCounters count, for one trial's load, what happened to requests
// during outages. Errors after the kill (requests cut by it) are not
// counted.
type outageCounters struct {
	sw          *faultSwitch
	killed      atomic.Bool
	ackedDown   atomic.Int64
	refusedWAL  atomic.Int64
	refusedLive atomic.Int64
	otherDown   atomic.Int64
	otherUp     atomic.Int64

	mu      sync.Mutex
	byKind  map[string]int64 // acks during an outage, by outage kind
	classes map[string]int   // other errors: state + class
}

// outageSender counts a sender's outcomes in c.
type outageSender struct {
	sender
	c *outageCounters
}

func (s *outageSender) send(ctx context.Context, spans []span) error {
	err := s.sender.send(ctx, spans)
	state := s.c.sw.State()
	down := state != stateUp
	if err == nil {
		if down {
			s.c.ackedDown.Add(1)
			s.c.mu.Lock()
			s.c.byKind[state]++
			s.c.mu.Unlock()
		}
		return nil
	}
	if s.c.killed.Load() {
		return err
	}
	switch msg := err.Error(); {
	case strings.Contains(msg, "write-ahead log is full"):
		s.c.refusedWAL.Add(1)
	case strings.Contains(msg, "not yet stored"):
		s.c.refusedLive.Add(1)
	default:
		if down {
			s.c.otherDown.Add(1)
		} else {
			s.c.otherUp.Add(1)
		}
		s.c.mu.Lock()
		s.c.classes[state+": "+errClass(err)]++
		s.c.mu.Unlock()
	}
	return err
}

// runOutage is -target serve-outage.
func runOutage(o *options, oo *outageOptions) error {
	if oo.KillMin <= 0 || oo.KillMax < oo.KillMin || oo.RecoverMin <= 0 || oo.RecoverMax < oo.RecoverMin || oo.MaxKills < 1 || oo.MaxHang <= 0 {
		return errors.New("bad flags: need 0 < -outage-kill-min ≤ -outage-kill-max, 0 < -outage-recover-min ≤ -outage-recover-max, -outage-max-kills ≥ 1, -outage-max-hang > 0")
	}
	started := time.Now()
	root, work, cleanup, err := setUp(o, started, "bench-crash-outage-")
	defer cleanup()
	if err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(o.Seed, 0x0a7a9e))
	runID := rng.Uint64()
	walDir := filepath.Join(work, "wal")
	logFile, err := openLog(work, "serve.log", walDir)
	if err != nil {
		return err
	}
	defer logFile.Close()
	if err := setAWSEnv(work); err != nil {
		return err
	}
	peer, err := startS3Peer("traces", oo.MaxHang)
	if err != nil {
		return err
	}
	defer peer.Close()
	ctx := context.Background()
	// The harness looks at the bucket past the fault switch (storage may
	// be "down" between trials); the final read-back goes through it.
	hb, err := storage.Open(ctx, peer.DirectURL())
	if err != nil {
		return err
	}
	defer hb.Close()
	args := append(serveArgs(peer.URL(), walDir, o), "--wal-max-bytes", strconv.FormatInt(oo.WALMaxBytes, 10))
	logf("seed %d, work directory %s, S3 (gofakes3) on %s (fault switch) and %s (direct); serve %s",
		o.Seed, work, peer.Addr, peer.DirectAddr, strings.Join(args, " "))

	s := &outageSummary{summary: summary{Target: o.Target, KillsByMode: map[string]int{}, Started: started.UTC(), Seed: o.Seed, ServeArgs: args,
		SendErrors: map[string]int{},
		Options: map[string]any{"trials": o.Trials, "outage_start_min_delay": o.MinDelay.String(), "outage_start_max_delay": o.MaxDelay.String(),
			"outage_kill_min": oo.KillMin.String(), "outage_kill_max": oo.KillMax.String(),
			"outage_recover_min": oo.RecoverMin.String(), "outage_recover_max": oo.RecoverMax.String(),
			"outage_max_hang": oo.MaxHang.String(), "outage_max_kills": oo.MaxKills,
			"rate_per_worker": o.Rate, "workers_per_protocol": o.Workers, "protocols": protocols,
			"request_timeout": o.Timeout.String(), "find_check": o.FindCheck, "modes": o.Modes}}}
	s.Commit, s.Dirty = gitState(root)
	f := &s.Outage
	*f = outageFigures{Kinds: o.Modes, KillsByKind: map[string]int{}, StartsDownByKind: map[string]int{}, StartFailuresByKind: map[string]int{},
		AckedDuringOutageByKind: map[string]int64{}, OtherErrorClasses: map[string]int{}, TrialsWithFlushFailures: map[string]int{},
		WALMaxBytes: oo.WALMaxBytes, Bucket: peer.URL()}
	rec := newRecorder()
	st := &outageRun{}

	for trial := 0; trial < o.Trials; trial++ {
		if o.Deadline > 0 && time.Since(started) > o.Deadline {
			logf("-deadline %s reached after %d trials", o.Deadline, trial)
			break
		}
		tr, ot, err := runOutageTrial(o, oo, args, logFile, rec, runID, trial, rng, peer, st)
		if err != nil {
			return fmt.Errorf("trial %d: %w (work directory %s kept)", trial, err, work)
		}
		if tr.BlocksAfter, tr.IncompleteDir, err = countBucketBlocks(ctx, hb); err != nil {
			return fmt.Errorf("trial %d: listing the bucket: %w", trial, err)
		}
		s.TrialLog = append(s.TrialLog, *tr)
		s.OutageLog = append(s.OutageLog, *ot)
		s.Trials++
		s.Kills++
		s.KillsByMode[ot.Outage]++
		f.KillsByKind[ot.Outage]++
		if n := len(s.TrialLog); n > 1 && tr.IncompleteDir > s.TrialLog[n-2].IncompleteDir || n == 1 && tr.IncompleteDir > 0 {
			s.KillsMidUpload++
		}
		if ot.KillOfOutage > 1 {
			f.KillsRepeated++
		}
		if ot.StartedDown {
			f.StartsDown++
			f.StartsDownByKind[ot.CarriedKind]++
			switch {
			case ot.StartFailed != "":
				f.StartFailures++
				f.StartFailuresByKind[ot.CarriedKind]++
			case *ot.ReadyWhileDown:
				f.ReadyWhileDown++
			default:
				f.ReadyAfterRecovery++
			}
		}
		f.AckedDuringOutage += ot.AckedDuringOut
		for k, n := range ot.AckedByKind {
			f.AckedDuringOutageByKind[k] += n
		}
		for k, n := range ot.OtherErrClasses {
			f.OtherErrorClasses[k] += n
		}
		f.RefusedWALFull += ot.RefusedWALFull
		f.RefusedLiveBytes += ot.RefusedLive
		f.OtherErrorsDuringOutage += ot.OtherErrOutage
		f.OtherErrorsUp += ot.OtherErrUp
		f.FlushFailuresLogged += ot.FlushFailures
		if ot.FlushFailures > 0 {
			f.TrialsWithFlushFailures[ot.Outage]++
		}
		f.StoreRequests += ot.StoreRequests
		f.FaultedRequests += ot.FaultedRequests
		acked := 0
		for _, n := range tr.RequestsAcked {
			acked += n
		}
		down := ""
		if ot.StartedDown {
			down = fmt.Sprintf("started with storage down (%s): ", ot.CarriedKind)
			switch {
			case ot.StartFailed != "":
				down += "serve exited before ready: " + ot.StartFailed + "; "
			case *ot.ReadyWhileDown:
				down += "ready while down; "
			default:
				down += "ready only after storage came back; "
			}
		}
		logf("trial %d (%s, kill %d of the outage): %sready in %dms, outage at %dms, SIGKILL %dms into it; %d requests acknowledged (%d during the outage, %d refused: WAL full, %d: live bytes, %d other errors), %d flush failures logged, blocks stored at %v ms; storage %s; bucket: %d blocks, %d incomplete",
			trial, ot.Outage, ot.KillOfOutage, down, tr.ReadyMs, ot.OutageAtMs, ot.KillIntoOutageMs, acked, ot.AckedDuringOut, ot.RefusedWALFull, ot.RefusedLive,
			ot.OtherErrOutage+ot.OtherErrUp, ot.FlushFailures, tr.StoredMs, map[bool]string{true: "stays down over the restart", false: "back before the restart"}[ot.StaysDown],
			tr.BlocksAfter, tr.IncompleteDir)
	}

	// Storage up, restart on the same WAL and stop cleanly: everything is stored.
	peer.Switch.Set(stateUp)
	logf("storage up; final start, then SIGTERM ...")
	if err := finalStop(o, args, logFile, work, &s.summary); err != nil {
		return err
	}

	if o.Control {
		key, err := controlDeleteMeta(ctx, hb)
		if err != nil {
			return fmt.Errorf("-control: %w", err)
		}
		if key == "" {
			return errors.New("-control: no stored block to delete")
		}
		s.Control = "negative control: deleted " + key + " (through the bucket) before reading back; lost must be > 0"
		logf("%s", s.Control)
	}
	logf("reading the bucket back through %s ...", peer.URL())
	if err := verify(ctx, peer.URL(), o, rec, &s.summary); err != nil {
		return fmt.Errorf("verify: %w (work directory %s kept)", err, work)
	}
	s.WallSeconds = float64(time.Since(started).Milliseconds()) / 1000
	for k, n := range rec.errs {
		s.SendErrors[k] = n
	}

	s.Judged = "as -target serve (per (trace ID, span ID) as a reader returns them, and as stored: raw_duplicated == 0), plus: every serve started while storage was down became ready before it came back; serve acknowledged requests during outages and refused, before the kill, only with its WAL/live-bytes limit errors; for every outage kind, store requests of serve were failed (or held) by the fault switch (the outage took effect)"
	f.FaultedByKind = peer.Switch.FaultedBy()
	everyKindFaulted := len(f.KillsByKind) > 0
	for k := range f.KillsByKind {
		everyKindFaulted = everyKindFaulted && f.FaultedByKind[k] > 0
	}
	s.Verdicts = serveVerdicts(&s.summary)
	s.Verdicts["ready while storage down (every start with storage down)"] = passMiss(f.StartsDown > 0 && f.ReadyWhileDown == f.StartsDown)
	s.Verdicts["accepting during outages (acked > 0; only limit refusals)"] = passMiss(f.AckedDuringOutage > 0 && f.OtherErrorsDuringOutage == 0)
	s.Verdicts["outages took effect (serve's store requests failed, every kind)"] = passMiss(everyKindFaulted)
	s.WorkDir = keepWork(o, work, s.Verdicts)
	return report(root, o, started, s, func() { printSummary(&s.summary); printOutage(s) })
}

// runOutageTrial starts serve (storage up, or still down as st says),
// loads it, takes storage down (the trial's outage kind, unless the kill
// comes in the outage carried over), kills serve inside the outage and
// decides whether storage stays down over the restart (st is updated).
func runOutageTrial(o *options, oo *outageOptions, args []string, logFile *os.File, rec *recorder, runID uint64, trial int,
	rng *rand.Rand, peer *s3Peer, st *outageRun) (*trialRecord, *outageTrial, error) {
	sw := peer.Switch
	kind := o.Modes[trial%len(o.Modes)]
	// Every draw up front, so that -seed repeats them.
	outageDelay := o.MinDelay + time.Duration(rng.Int64N(int64(o.MaxDelay-o.MinDelay)+1))
	killDelay := oo.KillMin + time.Duration(rng.Int64N(int64(oo.KillMax-oo.KillMin)+1))
	recoverDelay := oo.RecoverMin + time.Duration(rng.Int64N(int64(oo.RecoverMax-oo.RecoverMin)+1))
	killInCarried := rng.IntN(3) == 0
	stayDown := rng.IntN(2) == 0

	carried := st.down
	killInCarried = killInCarried && carried && st.kills < oo.MaxKills
	ot := &outageTrial{Trial: trial, StartedDown: carried}
	if carried {
		ot.CarriedKind = st.kind
	}
	logFrom := int64(0)
	if fi, err := logFile.Stat(); err == nil {
		logFrom = fi.Size()
	}
	reqs0, faulted0 := sw.requests.Load(), sw.faulted.Load()

	// A carried outage ends recoverDelay after the start, unless serve
	// is ready before and this trial's kill is to come in it.
	t0 := time.Now()
	var recAt time.Time
	var recoverTimer *time.Timer
	recovered := make(chan time.Time, 1)
	var recoveredAt atomic.Int64 // set before the switch goes up
	if carried {
		recoverTimer = time.AfterFunc(recoverDelay, func() {
			at := time.Now()
			recoveredAt.Store(at.UnixNano())
			sw.Set(stateUp)
			recovered <- at
		})
	}
	bringBack := func() time.Time {
		if recoverTimer.Stop() {
			at := time.Now()
			recoveredAt.Store(at.UnixNano())
			sw.Set(stateUp)
			return at
		}
		return <-recovered
	}
	tag := fmt.Sprintf("trial %d", trial)
	c, err := startServe(o.Tracectl, args, logFile, tag)
	if err != nil {
		if !carried {
			return nil, nil, err
		}
		// serve did not become ready during the outage: noted (a verdict
		// misses), then storage comes back and serve is started again.
		ot.StartFailed = err.Error()
		lines := logSince(logFile, logFrom)
		ot.StartFailedLog = lines[max(0, len(lines)-6):]
		recAt = bringBack()
		logf("trial %d: serve exited before it was ready with storage down (%s): %v; storage back, starting it again", trial, st.kind, err)
		if c, err = startServe(o.Tracectl, args, logFile, tag+", storage up"); err != nil {
			return nil, nil, fmt.Errorf("serve did not start after storage came back: %w", err)
		}
	}
	ready := time.Now()
	if carried {
		// Judged at the moment startServe returned, a little after serve
		// logged ready: a recovery in between counts against serve.
		rw := recoveredAt.Load() == 0 && ot.StartFailed == ""
		ot.ReadyWhileDown = &rw
	}
	killInOutage := false // the kill comes in the carried outage
	if killInCarried && recAt.IsZero() {
		if recoverTimer.Stop() {
			killInOutage = true
		} else {
			recAt = <-recovered
		}
	}

	tr := &trialRecord{Trial: trial, ReadyMs: ready.Sub(t0).Milliseconds(), RequestsSent: map[string]int{}, RequestsAcked: map[string]int{}}
	l := &trialLoad{run: runID, trial: trial, ready: ready, rate: o.Rate, timeout: o.Timeout, rec: rec,
		seed: o.Seed, sent: tr.RequestsSent, acked: tr.RequestsAcked}
	cnt := &outageCounters{sw: sw, byKind: map[string]int64{}, classes: map[string]int{}}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var senders []sender
	for pi, proto := range protocols {
		addr := c.addrs[proto]
		if addr == "" {
			c.cmd.Process.Kill()
			<-c.exited
			return nil, nil, fmt.Errorf("serve did not log a %s receiver", proto)
		}
		for w := 0; w < o.Workers; w++ {
			s, err := newSender(proto, addr)
			if err != nil {
				c.cmd.Process.Kill()
				<-c.exited
				return nil, nil, err
			}
			senders = append(senders, s)
			wg.Add(1)
			go func() {
				defer wg.Done()
				l.worker(proto, &outageSender{sender: s, c: cnt}, pi*o.Workers+w, stop)
			}()
		}
	}

	var downAt time.Time
	switch {
	case killInOutage:
		kind, downAt = st.kind, st.since
	case carried:
		if recAt.IsZero() {
			recAt = <-recovered
		}
		ot.RecoveredAfterStartMs = recAt.Sub(t0).Milliseconds()
		time.Sleep(time.Until(recAt.Add(outageDelay)))
		sw.Set(kind)
		downAt = time.Now()
		st.kills = 0
	default:
		time.Sleep(time.Until(ready.Add(outageDelay)))
		sw.Set(kind)
		downAt = time.Now()
		st.kills = 0
	}
	killAt := downAt.Add(killDelay)
	if killInOutage {
		killAt = ready.Add(killDelay)
	}
	time.Sleep(time.Until(killAt))
	cnt.killed.Store(true)
	killedAt := time.Now()
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		return nil, nil, err
	}
	select {
	case <-c.exited:
	case <-time.After(30 * time.Second):
		return nil, nil, errors.New("serve did not exit 30s after SIGKILL")
	}
	tr.Mode = kind
	tr.KillAfterMs = killedAt.Sub(ready).Milliseconds()
	c.mu.Lock()
	for _, at := range c.stored {
		tr.StoredMs = append(tr.StoredMs, at.Sub(ready).Milliseconds())
	}
	c.mu.Unlock()
	close(stop)
	wg.Wait()
	for _, s := range senders {
		s.close()
	}

	st.kills++
	ot.Outage = kind
	ot.OutageAtMs = downAt.Sub(ready).Milliseconds()
	ot.KillIntoOutageMs = killedAt.Sub(downAt).Milliseconds()
	ot.KillOfOutage = st.kills
	ot.AckedDuringOut = cnt.ackedDown.Load()
	ot.RefusedWALFull, ot.RefusedLive = cnt.refusedWAL.Load(), cnt.refusedLive.Load()
	ot.OtherErrOutage, ot.OtherErrUp = cnt.otherDown.Load(), cnt.otherUp.Load()
	for _, line := range logSince(logFile, logFrom) {
		if strings.Contains(line, "flushing blocks to storage failed") {
			if ot.FlushFailures == 0 {
				ot.FlushFailure = line[:min(len(line), 400)]
			}
			ot.FlushFailures++
		}
	}
	ot.StoreRequests, ot.FaultedRequests = sw.requests.Load()-reqs0, sw.faulted.Load()-faulted0
	cnt.mu.Lock()
	ot.AckedByKind, ot.OtherErrClasses = cnt.byKind, cnt.classes
	cnt.mu.Unlock()

	// Storage back before the restart, or only after the next start.
	ot.StaysDown = stayDown
	if stayDown {
		st.down, st.kind, st.since = true, kind, downAt
	} else {
		sw.Set(stateUp)
		st.down, st.kills = false, 0
	}
	return tr, ot, nil
}

// logSince returns the lines written to logFile from offset from on.
func logSince(logFile *os.File, from int64) []string {
	f, err := os.Open(logFile.Name())
	if err != nil {
		return nil
	}
	defer f.Close()
	if _, err := f.Seek(from, io.SeekStart); err != nil {
		return nil
	}
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

// countBucketBlocks is countBlockDirs through the storage API: the
// default tenant's block directories (key prefixes) with meta.json, and
// those with neither meta.json nor meta.compacted.json.
func countBucketBlocks(ctx context.Context, b *storage.Bucket) (complete, incomplete int, err error) {
	const prefix = block.DefaultTenant + "/"
	objs, err := b.ListAll(ctx, prefix, "")
	if err != nil {
		return 0, 0, err
	}
	type dirState struct{ meta, compacted bool }
	dirs := map[string]*dirState{}
	for _, ob := range objs {
		dir, file, ok := strings.Cut(strings.TrimPrefix(ob.Key, prefix), "/")
		if !ok {
			continue // an object of the tenant, not of a block
		}
		d := dirs[dir]
		if d == nil {
			d = &dirState{}
			dirs[dir] = d
		}
		switch file {
		case block.MetaName:
			d.meta = true
		case block.CompactedMetaName:
			d.compacted = true
		}
	}
	for _, d := range dirs {
		if d.meta {
			complete++
		} else if !d.compacted {
			incomplete++
		}
	}
	return complete, incomplete, nil
}

// controlDeleteMeta is controlDelete through the storage API: it deletes
// the first (by key) meta.json of the default tenant and returns its key
// ("" when there is none).
func controlDeleteMeta(ctx context.Context, b *storage.Bucket) (string, error) {
	const prefix = block.DefaultTenant + "/"
	objs, err := b.ListAll(ctx, prefix, "")
	if err != nil {
		return "", err
	}
	for _, ob := range objs {
		if strings.HasSuffix(ob.Key, "/"+block.MetaName) && strings.Count(ob.Key, "/") == 2 {
			return ob.Key, b.Delete(ctx, ob.Key)
		}
	}
	return "", nil
}

func printOutage(s *outageSummary) {
	f := &s.Outage
	kinds := func(m map[string]int) string {
		var parts []string
		for _, k := range f.Kinds {
			if m[k] > 0 {
				parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
			}
		}
		return strings.Join(parts, ", ")
	}
	fmt.Printf("  target serve-outage (S3 via gofakes3 behind a fault switch, --wal-max-bytes %d):\n", f.WALMaxBytes)
	fmt.Printf("    kills by outage kind: %s; %d of them in an outage that had seen a kill already\n", kinds(f.KillsByKind), f.KillsRepeated)
	fmt.Printf("    starts with storage down %d (%s): ready while down %d, ready only after it came back %d, exited before ready %d (%s)\n",
		f.StartsDown, kinds(f.StartsDownByKind), f.ReadyWhileDown, f.ReadyAfterRecovery, f.StartFailures, kinds(f.StartFailuresByKind))
	var acked []string
	for _, k := range f.Kinds {
		acked = append(acked, fmt.Sprintf("%s %d", k, f.AckedDuringOutageByKind[k]))
	}
	fmt.Printf("    requests acknowledged during outages %d (%s); refused: WAL full %d, live bytes %d; other errors before the kill: during outages %d, storage up %d\n",
		f.AckedDuringOutage, strings.Join(acked, ", "), f.RefusedWALFull, f.RefusedLiveBytes, f.OtherErrorsDuringOutage, f.OtherErrorsUp)
	if len(f.OtherErrorClasses) > 0 {
		var cls []string
		for k, n := range f.OtherErrorClasses {
			cls = append(cls, fmt.Sprintf("%s ×%d", k, n))
		}
		sort.Strings(cls)
		fmt.Printf("      other errors: %s\n", strings.Join(cls, "; "))
	}
	fmt.Printf("    flush failures logged by serve %d; trials with one, by kind: %s\n", f.FlushFailuresLogged, kinds(f.TrialsWithFlushFailures))
	var faulted []string
	for _, k := range f.Kinds {
		faulted = append(faulted, fmt.Sprintf("%s %d", k, f.FaultedByKind[k]))
	}
	fmt.Printf("    store requests %d, failed (or held) by the fault switch %d (%s)\n", f.StoreRequests, f.FaultedRequests, strings.Join(faulted, ", "))
	for _, ot := range s.OutageLog {
		if ot.StartFailed != "" {
			fmt.Printf("    START FAILED trial %d (storage down: %s): %s\n", ot.Trial, ot.CarriedKind, ot.StartFailed)
			for _, l := range ot.StartFailedLog {
				fmt.Printf("      %.300s\n", l)
			}
			break
		}
	}
}
