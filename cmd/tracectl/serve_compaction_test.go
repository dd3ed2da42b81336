package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/tracectl/tracectl/internal/blocks"
	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/storage"
)

func TestServeCompactionFlags(t *testing.T) {
	cmd := &cobra.Command{Use: "serve"}
	o := addServeCompactionFlags(cmd)
	if err := cmd.ParseFlags([]string{"--compaction", "--compaction-interval", "2s", "--block-retention", "720h"}); err != nil {
		t.Fatal(err)
	}
	if !o.Compaction || o.Interval != 2*time.Second || o.Retention != 720*time.Hour || o.Window != time.Hour || o.MaxInputs != 4 || o.LeaseTTL != 5*time.Minute {
		t.Errorf("options %+v", o)
	}
	if err := cmd.ParseFlags([]string{"--compaction-lease-ttl", "30s"}); err != nil || o.LeaseTTL != 30*time.Second {
		t.Errorf("--compaction-lease-ttl 30s: %v, %s", err, o.LeaseTTL)
	}
	log := slog.New(slog.DiscardHandler)
	for _, bad := range []serveCompactionOptions{
		{Compaction: true, Interval: time.Second, Window: time.Second, MaxInputs: 4, LeaseTTL: time.Minute},
		{Compaction: true, Interval: time.Millisecond, Window: time.Hour, MaxInputs: 4, LeaseTTL: time.Minute},
		{Interval: time.Second, Window: time.Hour, MaxInputs: 4, Retention: time.Minute, LeaseTTL: time.Minute},
		{Compaction: true, Interval: time.Second, Window: time.Hour, MaxInputs: 4, LeaseTTL: 9 * time.Second},
		{Retention: time.Hour, Interval: time.Second, Window: time.Hour, MaxInputs: 4},
	} {
		if _, err := startServeCompaction(context.Background(), nil, &bad, log); err == nil || exitCodeOf(err) != exitUsage {
			t.Errorf("%+v: %v, want a usage error", bad, err)
		}
	}
	stop, err := startServeCompaction(context.Background(), nil, &serveCompactionOptions{}, log)
	if err != nil {
		t.Fatal(err)
	}
	stop() // off: nothing started
}

// TestServeCompactionLoop: the background loop serve starts compacts the
// bucket's tenants and stops when asked.
func TestServeCompactionLoop(t *testing.T) {
	url, _ := fixtureBucket(t, "vparquet4")
	b, err := storage.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	logs := &syncWriter{w: &strings.Builder{}}
	stop, err := startServeCompaction(context.Background(), b,
		&serveCompactionOptions{Compaction: true, Interval: time.Second, Window: time.Hour, MaxInputs: 4, CompactedRetention: time.Hour, LeaseTTL: time.Minute},
		slog.New(slog.NewJSONHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		// The job is done when its output is the only block and it has
		// said so (the log comes after the last step, which stop would
		// otherwise cut short).
		l, err := blocks.List(context.Background(), b, block.DefaultTenant, blocks.ListOptions{})
		if err == nil && len(l.Blocks) == 1 && strings.Contains(logLines(logs), `"msg":"compacted blocks"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not compacted in 30s:\n%s", logLines(logs))
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
}

// TestServeCompactionLeaseTTL: --compaction-lease-ttl, from the flag, the
// environment or the config file, is refused below 10s with an error
// naming it, and is the lifetime of the leases the background loop takes.
func TestServeCompactionLeaseTTL(t *testing.T) {
	url, _ := fixtureBucket(t, "vparquet4") // before isolateEnv leaves the module
	xdg := isolateEnv(t)
	dir := t.TempDir()
	bucket := "file://" + filepath.Join(dir, "bucket")
	refused := func(how string, extra ...string) {
		t.Helper()
		res := runCLI(t, false, serveArgs(bucket, filepath.Join(dir, "wal"), append([]string{"--compaction"}, extra...)...)...)
		if res.code != exitUsage || !strings.Contains(res.stderr, "--compaction-lease-ttl 3s is too short") {
			t.Errorf("%s: exit %d, %s; want a usage error naming --compaction-lease-ttl", how, res.code, res.stderr)
		}
	}
	refused("flag", "--compaction-lease-ttl", "3s")
	t.Setenv("TRACECTL_COMPACTION_LEASE_TTL", "3s")
	refused("env")
	os.Unsetenv("TRACECTL_COMPACTION_LEASE_TTL")
	writeFile(t, filepath.Join(xdg, "tracectl", "config.yaml"), "compaction-lease-ttl: 3s\n")
	refused("config file")

	// The loop's lease lasts the TTL given: seen while its first run holds it.
	b, err := storage.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	held, resume := make(chan struct{}), make(chan struct{})
	var once sync.Once
	b.SetHook(func(_ context.Context, op, key string) error {
		if op == "read" && strings.HasSuffix(key, "/compactor.journal.json") {
			once.Do(func() { close(held); <-resume })
		}
		return nil
	})
	stop, err := startServeCompaction(context.Background(), b,
		&serveCompactionOptions{Compaction: true, Interval: time.Second, Window: time.Hour, MaxInputs: 4, CompactedRetention: time.Hour, LeaseTTL: 42 * time.Second},
		slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	select {
	case <-held:
	case <-time.After(30 * time.Second):
		t.Fatal("the loop took no lease in 30s")
	}
	defer close(resume)
	objs, err := b.ListAll(context.Background(), block.DefaultTenant+"/compactor.lease.", "")
	if err != nil || len(objs) == 0 {
		t.Fatalf("no lease object: %v", err)
	}
	data, err := b.Read(context.Background(), objs[len(objs)-1].Key)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct{ Acquired, Expires time.Time }
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	if ttl := doc.Expires.Sub(doc.Acquired); ttl != 42*time.Second {
		t.Errorf("lease %s lasts %s, want 42s (--compaction-lease-ttl)", data, ttl)
	}
}

func exitCodeOf(err error) int {
	var ee *exitErr
	if errors.As(err, &ee) {
		return ee.code
	}
	return exitError
}

// syncWriter serialises writes of concurrent loggers.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// TestServeCompactsInTheBackground: with --compaction, the small blocks
// serve cuts are merged by the loop while it runs, and every trace stays
// readable from the bucket.
func TestServeCompactsInTheBackground(t *testing.T) {
	if testing.Short() {
		t.Skip("starts tracectl processes")
	}
	dir := t.TempDir()
	bucket := "file://" + filepath.Join(dir, "bucket")
	c := startTracectl(t, serveArgs(bucket, filepath.Join(dir, "wal"),
		"--max-block-bytes", "1", "--compaction", "--compaction-interval", "1s")...)
	defer c.cmd.Process.Kill()
	var ids []block.TraceID
	b, err := storage.Open(context.Background(), bucket)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for seq := uint64(1); seq <= 4; seq++ {
		td, id := makeTrace(seq, 3)
		ids = append(ids, id)
		pb, _ := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
		resp, err := http.Post("http://"+c.addrs["otlp_http"]+"/v1/traces", "application/x-protobuf", bytes.NewReader(pb))
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("OTLP/HTTP post: %v %v", err, resp)
		}
		resp.Body.Close()
		// One block per trace: wait until it is stored.
		deadline := time.Now().Add(20 * time.Second)
		for {
			ids, _ := blocks.BlockIDs(context.Background(), b, block.DefaultTenant)
			if len(ids) >= int(seq) || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	var compacted *block.Meta
	for compacted == nil && time.Now().Before(deadline) {
		l, err := blocks.List(context.Background(), b, block.DefaultTenant, blocks.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, bi := range l.Blocks {
			if bi.Meta.CompactionLevel >= 2 {
				compacted = bi.Meta
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	if compacted == nil {
		t.Fatalf("no compacted block after 60s:\n%s", c.log())
	}
	if compacted.TotalObjects < 2 {
		t.Errorf("compacted block holds %d traces, want the merged inputs' traces", compacted.TotalObjects)
	}
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := c.wait(t, 30*time.Second); err != nil {
		t.Fatalf("SIGTERM: exit %v\n%s", err, c.log())
	}
	for _, id := range ids {
		if res := runCLI(t, false, "get", id.Hex(), "--storage", bucket, "-o", "json"); res.code != 0 || strings.Count(res.stdout, `"spanId"`) != 3 {
			t.Errorf("trace %s after compaction: exit %d, %d spans; %s", id.Hex(), res.code, strings.Count(res.stdout, `"spanId"`), res.stderr)
		}
	}
}

// logLines reads what was logged so far.
func logLines(s *syncWriter) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.(*strings.Builder).String()
}
