package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tracectl/tracectl/internal/blocks"
	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/blocks/vparquet4"
	"github.com/tracectl/tracectl/internal/otlptest"
	"github.com/tracectl/tracectl/internal/storage"
)

func TestBlocksCompact(t *testing.T) {
	url, _ := fixtureBucket(t, "vparquet4")
	isolateEnv(t)

	dry := runCLI(t, false, "blocks", "compact", "--storage", url, "--dry-run", "-o", "json")
	if dry.code != 0 {
		t.Fatalf("dry run: exit %d: %s", dry.code, dry.stderr)
	}
	var plan compactJSON
	if err := json.Unmarshal([]byte(dry.stdout), &plan); err != nil {
		t.Fatalf("%v\n%s", err, dry.stdout)
	}
	if !plan.DryRun || len(plan.Jobs) != 1 || len(plan.Jobs[0].Inputs) != 3 || plan.Jobs[0].Level != 1 || plan.Jobs[0].Output != "" {
		t.Errorf("plan: %+v", plan)
	}
	if l := runCLI(t, false, "blocks", "list", "--storage", url, "-o", "json"); strings.Count(l.stdout, `"blockID"`) != 3 {
		t.Errorf("dry run changed the bucket:\n%s", l.stdout)
	}

	res := runCLI(t, false, "blocks", "compact", "--storage", url)
	if res.code != 0 {
		t.Fatalf("compact: exit %d: %s", res.code, res.stderr)
	}
	lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "OUTPUT") || !strings.Contains(lines[1], " 40 ") {
		t.Errorf("table:\n%s", res.stdout)
	}
	if strings.Contains(res.stdout, "\x1b[") || res.stderr != "" {
		t.Errorf("piped run printed ANSI or progress: %q / %q", res.stdout, res.stderr)
	}
	l := runCLI(t, false, "blocks", "list", "--storage", url, "--index-max-age", "0", "-o", "json")
	var rows []blockJSON
	if err := json.Unmarshal([]byte(l.stdout), &rows); err != nil || len(rows) != 1 || rows[0].CompactionLevel != 1 || rows[0].Traces != 40 {
		t.Errorf("after compaction: %v %+v", err, rows)
	}
	get := runCLI(t, false, "get", otlptest.IDOf("P03"), "--storage", url, "-o", "json")
	if get.code != 0 {
		t.Errorf("get after compaction: exit %d %s", get.code, get.stderr)
	}

	again := runCLI(t, false, "blocks", "compact", "--storage", url)
	if again.code != 0 || !strings.Contains(again.stderr, "nothing to compact") {
		t.Errorf("second run: exit %d, %q", again.code, again.stderr)
	}

	for _, args := range [][]string{
		{"--max-inputs", "1"}, {"--window", "1s"}, {"-o", "yaml"}, {"--lease-ttl", "1s"}, {"--max-bytes", "0"},
	} {
		r := runCLI(t, false, append([]string{"blocks", "compact", "--storage", url}, args...)...)
		if r.code != exitUsage || !strings.HasPrefix(r.stderr, "tracectl: ") {
			t.Errorf("%v: exit %d, %q; want usage error", args, r.code, r.stderr)
		}
	}
}

func TestBlocksRetention(t *testing.T) {
	url, _ := fixtureBucket(t, "vparquet4")
	isolateEnv(t)
	if r := runCLI(t, false, "blocks", "retention", "--storage", url, "--older-than", "1m"); r.code != exitUsage {
		t.Errorf("--older-than 1m: exit %d", r.code)
	}
	// The fixtures end on 2026-11-20 10:26; a cutoff before that keeps them.
	keep := time.Since(time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)) + time.Hour
	r := runCLI(t, false, "blocks", "retention", "--storage", url, "--older-than", keep.Round(time.Hour).String())
	if r.code != 0 || !strings.Contains(r.stderr, "no block") {
		t.Errorf("nothing old enough: exit %d %q %q", r.code, r.stdout, r.stderr)
	}
	dry := runCLI(t, false, "blocks", "retention", "--storage", url, "--older-than", "1h", "--dry-run", "-o", "json")
	var out retentionJSON
	if err := json.Unmarshal([]byte(dry.stdout), &out); err != nil || len(out.Retired) != 3 || !out.DryRun {
		t.Fatalf("dry run: %v %s", err, dry.stdout)
	}
	r = runCLI(t, false, "blocks", "retention", "--storage", url, "--older-than", "1h")
	if r.code != 0 || strings.Count(r.stdout, "retired") != 3 {
		t.Errorf("retention: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	l := runCLI(t, false, "blocks", "list", "--storage", url, "--index-max-age", "0", "-o", "json")
	if strings.TrimSpace(l.stdout) != "[]" {
		t.Errorf("live blocks after retention: %s", l.stdout)
	}
	l = runCLI(t, false, "blocks", "list", "--storage", url, "--index-max-age", "0", "--include-compacted", "-o", "json")
	if strings.Count(l.stdout, `"compacted": true`) != 3 {
		t.Errorf("retired blocks are not kept until the compacted retention:\n%s", l.stdout)
	}
}

func TestBlocksVerify(t *testing.T) {
	url, dir := fixtureBucket(t, "vparquet4")
	isolateEnv(t)
	ok := runCLI(t, false, "blocks", "verify", "--storage", url)
	if ok.code != 0 || strings.Count(ok.stdout, " ok ") != 3 || !strings.Contains(ok.stderr, "all sound") {
		t.Fatalf("clean bucket: exit %d\n%s%s", ok.code, ok.stdout, ok.stderr)
	}
	wave1 := "b1db29cc-be7a-4217-88f9-2f72c202f0fa"
	if err := os.Remove(filepath.Join(dir, "single-tenant", wave1, "bloom-0")); err != nil {
		t.Fatal(err)
	}
	bad := runCLI(t, false, "blocks", "verify", "--storage", url, "-o", "json")
	var res struct {
		Blocks []struct {
			BlockID  string   `json:"blockID"`
			Problems []string `json:"problems"`
		} `json:"blocks"`
	}
	if err := json.Unmarshal([]byte(bad.stdout), &res); err != nil {
		t.Fatalf("%v\n%s", err, bad.stdout)
	}
	if bad.code != exitError || len(res.Blocks) != 3 {
		t.Fatalf("damaged bucket: exit %d\n%s", bad.code, bad.stdout)
	}
	for _, b := range res.Blocks {
		if (b.BlockID == wave1) != (len(b.Problems) == 1 && strings.Contains(b.Problems[0], "bloom-0: missing")) {
			t.Errorf("block %s problems %v", b.BlockID, b.Problems)
		}
	}
	text := runCLI(t, false, "blocks", "verify", "--storage", url, wave1)
	if text.code != exitError || !strings.Contains(text.stdout, "PROBLEMS") || !strings.Contains(text.stderr, "try --repair") {
		t.Errorf("text: exit %d\n%s%s", text.code, text.stdout, text.stderr)
	}
	fixed := runCLI(t, false, "blocks", "verify", "--storage", url, "--repair")
	if fixed.code != 0 || !strings.Contains(fixed.stdout, "repaired: rebuilt 1 bloom shards") {
		t.Errorf("repair: exit %d\n%s%s", fixed.code, fixed.stdout, fixed.stderr)
	}
	if again := runCLI(t, false, "blocks", "verify", "--storage", url); again.code != 0 {
		t.Errorf("after repair: exit %d\n%s", again.code, again.stdout)
	}
	if r := runCLI(t, false, "blocks", "verify", "--storage", url, "not-a-uuid"); r.code != exitUsage {
		t.Errorf("bad block ID: exit %d", r.code)
	}
}

// TestBlocksCompactKilled kills `tracectl blocks compact` (SIGKILL) at
// different moments while it merges 35 blocks; after each kill every trace
// must still be found complete and without repeated spans, and a last run
// must finish the work.
func TestBlocksCompactKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("starts tracectl many times")
	}
	ctx := context.Background()
	c := otlptest.LoadCorpus(t)
	isolateEnv(t)
	dir := t.TempDir()
	url := "file://" + dir
	b, err := storage.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, line := range c.Lines {
		if _, err := vparquet4.WriteBlock(ctx, b, vparquet4.WriterConfig{}, line); err != nil {
			t.Fatal(err)
		}
	}
	check := func(when string) int {
		t.Helper()
		l, err := blocks.List(ctx, b, block.DefaultTenant, blocks.ListOptions{})
		if err != nil || len(l.Problems) > 0 {
			t.Fatalf("%s: listing: %v %v", when, err, l.Problems)
		}
		var metas []*block.Meta
		for _, bi := range l.Blocks {
			metas = append(metas, bi.Meta)
		}
		for hex, want := range c.ByID {
			id, _ := block.ParseTraceID(hex)
			res, err := blocks.FindTrace(ctx, b, metas, id, blocks.FindOptions{})
			if err != nil || !res.Found {
				t.Fatalf("%s: %s not found: %v", when, otlptest.Label(hex), err)
			}
			if diffs := otlptest.Diff(want, res.Trace); len(diffs) > 0 {
				t.Fatalf("%s: %s differs: %v", when, otlptest.Label(hex), diffs)
			}
			if dup := res.Trace.SpanCount() - distinctSpanCount(res.Trace); dup != 0 {
				t.Fatalf("%s: %s has %d repeated spans", when, otlptest.Label(hex), dup)
			}
		}
		return len(metas)
	}
	check("before")
	killed := 0
	for i, delay := range []time.Duration{30, 60, 100, 150, 200, 300, 400, 600} {
		cmd := exec.Command(os.Args[0], "blocks", "compact", "--storage", url, "--lease-ttl", "10s")
		cmd.Env = append(os.Environ(), "TRACECTL_TEST_MAIN=1")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(delay * time.Millisecond)
		_ = cmd.Process.Signal(syscall.SIGKILL)
		err := cmd.Wait()
		if err != nil {
			killed++
		}
		n := check(fmt.Sprintf("kill %d after %dms", i, delay))
		// The dead compactor's lease would lapse after --lease-ttl; stand
		// in for the wait by removing it.
		objs, _ := b.ListAll(ctx, block.DefaultTenant+"/compactor.lease.", "")
		for _, o := range objs {
			_ = b.Delete(ctx, o.Key)
		}
		if n == 1 {
			break
		}
	}
	if killed == 0 {
		t.Log("compaction finished before every kill; the machine is fast")
	}
	final := runCLI(t, false, "blocks", "compact", "--storage", url)
	if final.code != 0 {
		t.Fatalf("final run: exit %d %s", final.code, final.stderr)
	}
	if n := check("after the final run"); n != 1 {
		t.Errorf("%d live blocks after the final run, want 1", n)
	}
	t.Logf("%d runs killed", killed)
}

// distinctSpanCount counts spans by ID + kind, as readers de-duplicate.
func distinctSpanCount(td ptrace.Traces) int {
	seen := map[string]bool{}
	for _, rs := range td.ResourceSpans().All() {
		for _, ss := range rs.ScopeSpans().All() {
			for _, sp := range ss.Spans().All() {
				seen[fmt.Sprintf("%x/%d", sp.SpanID(), sp.Kind())] = true
			}
		}
	}
	return len(seen)
}
