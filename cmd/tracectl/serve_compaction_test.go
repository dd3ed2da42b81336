package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/cobra"

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
	if !o.Compaction || o.Interval != 2*time.Second || o.Retention != 720*time.Hour || o.Window != time.Hour || o.MaxInputs != 4 {
		t.Errorf("options %+v", o)
	}
	log := slog.New(slog.DiscardHandler)
	for _, bad := range []serveCompactionOptions{
		{Compaction: true, Interval: time.Second, Window: time.Second, MaxInputs: 4},
		{Compaction: true, Interval: time.Millisecond, Window: time.Hour, MaxInputs: 4},
		{Interval: time.Second, Window: time.Hour, MaxInputs: 4, Retention: time.Minute},
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
	var logs strings.Builder
	stop, err := startServeCompaction(context.Background(), b,
		&serveCompactionOptions{Compaction: true, Interval: time.Second, Window: time.Hour, MaxInputs: 4, CompactedRetention: time.Hour},
		slog.New(slog.NewJSONHandler(&syncWriter{w: &logs}, nil)))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		l, err := blocks.List(context.Background(), b, block.DefaultTenant, blocks.ListOptions{})
		if err == nil && len(l.Blocks) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not compacted in 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	if !strings.Contains(logs.String(), `"msg":"compacted blocks"`) {
		t.Errorf("no log line for the job:\n%s", logs.String())
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
