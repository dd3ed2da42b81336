package main

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/tracectl/tracectl/internal/blocks/block"
)

// What the targets share: the start of a run of the harness, the kill of
// one `blocks compact` or `migrate` child, and what is kept at the end.

// setUp is how every target starts: the module root, the seed (from the
// clock when -seed is 0), tracectl built into a temporary directory unless
// -tracectl names a binary, and the work directory (-dir, or a new
// temporary one named prefix*). cleanup removes the built binary.
func setUp(o *options, started time.Time, prefix string) (root, work string, cleanup func(), err error) {
	cleanup = func() {}
	if root, err = moduleRoot(); err != nil {
		return "", "", cleanup, err
	}
	if o.Seed == 0 {
		o.Seed = uint64(started.UnixNano())
	}
	if o.Tracectl == "" {
		dir, err := os.MkdirTemp("", "bench-crash-bin-")
		if err != nil {
			return "", "", cleanup, err
		}
		cleanup = func() { os.RemoveAll(dir) }
		if o.Tracectl, err = buildTracectl(root, dir); err != nil {
			return "", "", cleanup, err
		}
	}
	work = o.Dir
	if work == "" {
		if work, err = os.MkdirTemp("", prefix); err != nil {
			return "", "", cleanup, err
		}
	} else if err := os.MkdirAll(work, 0o755); err != nil {
		return "", "", cleanup, err
	}
	return root, work, cleanup, nil
}

// openLog makes dirs (under the work directory) and creates the log the
// children write to, work/name.
func openLog(work, name string, dirs ...string) (*os.File, error) {
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	return os.Create(filepath.Join(work, name))
}

// keepWork removes the work directory unless -keep is set or a verdict
// is not PASS; it returns the directory kept ("" when removed).
func keepWork(o *options, work string, verdicts map[string]string) string {
	allPass := true
	for _, v := range verdicts {
		allPass = allPass && v == "PASS"
	}
	if o.Keep || !allPass {
		return work
	}
	os.RemoveAll(work)
	return ""
}

// report writes the summary s (see writeSummary), prints it with print
// and says where it was written.
func report(root string, o *options, started time.Time, s any, print func()) error {
	name := "" // serve: results/<time>.json, with -control too
	if o.Target != "serve" {
		name = o.Target
		if o.Control {
			name += "-control"
		}
	}
	path, err := writeSummary(root, o.Out, name, started, s)
	if err != nil {
		return err
	}
	print()
	fmt.Printf("summary written to %s\n", path)
	return nil
}

// killTrial is what a compact or migrate trial records of its kill (the
// first fields of the trial's JSON).
type killTrial struct {
	Trial       int    `json:"trial"`
	Mode        string `json:"mode"`
	Killed      bool   `json:"killed"`          // false: the run finished before the kill moment
	ExitErr     string `json:"exit,omitempty"`  // a run that ended by itself with an error
	Event       int    `json:"event,omitempty"` // which event of the mode it waited for (1-based)
	EventMs     int64  `json:"event_ms,omitempty"`
	KillAfterMs int64  `json:"kill_after_ms"`
}

// killCounts are the kill figures of a compact or migrate summary.
type killCounts struct {
	Trials      int            `json:"trials"`
	Kills       int            `json:"kills"`
	KillsByMode map[string]int `json:"kills_by_mode"`
	// FinishedBeforeKill: runs that ended before their kill moment (no
	// event of the mode came); they are not counted as kills.
	FinishedBeforeKill int `json:"finished_before_kill"`
}

// killRun starts bin (see startLogged) for trial tr, waits for its kill
// moment and kills it with SIGKILL, or notes that it exited by itself
// first; it records the outcome in tr and c. The moment is delay after the
// start when match is nil, else delay after the tr.Event-th event of w
// that match accepts (match sees every event until then, in order; w is
// drained before the start). A run that exited with an error is logged.
func killRun(bin string, args []string, logFile *os.File, work string, w *dirWatcher, delay time.Duration, match func(fsEvent) bool,
	tr *killTrial, c *killCounts) error {
	w.drain()
	t0 := time.Now()
	cmd, exited, err := startLogged(bin, args, logFile, fmt.Sprintf("run %d %s", tr.Trial, tr.Mode), work)
	if err != nil {
		return err
	}
	var exitErr error
	finished := false
	at := t0.Add(delay)
	if match != nil {
		at = time.Time{}
		seen := 0
	wait:
		for {
			select {
			case e := <-w.Events:
				if match(e) {
					seen++
					if seen == tr.Event {
						tr.EventMs = e.At.Sub(t0).Milliseconds()
						at = e.At.Add(delay)
						break wait
					}
				}
			case exitErr = <-exited:
				finished = true
				break wait
			}
		}
	}
	if !finished {
		select {
		case exitErr = <-exited:
			finished = true
		case <-time.After(time.Until(at)):
			tr.KillAfterMs = time.Since(t0).Milliseconds()
			_ = cmd.Process.Signal(syscall.SIGKILL)
			<-exited
		}
	}
	if finished {
		c.FinishedBeforeKill++
		if exitErr != nil {
			tr.ExitErr = exitErr.Error()
			logf("run %d (%s): exited by itself with %v (see %s)", tr.Trial, tr.Mode, exitErr, filepath.Base(logFile.Name()))
		}
	} else {
		tr.Killed = true
		c.Kills++
		c.KillsByMode[tr.Mode]++
	}
	return nil
}

// controlDelete deletes the meta.json of the first block directory of
// tenantDir that has one (negative control: the spans only that block
// holds must be reported lost) and returns its path ("" when none had).
func controlDelete(tenantDir string) string {
	ents, _ := os.ReadDir(tenantDir)
	for _, e := range ents {
		meta := filepath.Join(tenantDir, e.Name(), block.MetaName)
		if err := os.Remove(meta); err == nil {
			return meta
		}
	}
	return ""
}
