package server

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tracectl/tracectl/internal/blocks"
	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/ingest"
	"github.com/tracectl/tracectl/internal/otlptest"
	"github.com/tracectl/tracectl/internal/storage"
)

// TestMaxLiveBytesBoundsMemoryDuringAnOutage: while the store refuses
// writes, cuts go on (blocks keep their size) and ingest is refused as
// limited once the head and the waiting blocks hold MaxLiveBytes; every
// span accepted before is stored when the store is back, and ingest
// resumes.
func TestMaxLiveBytesBoundsMemoryDuringAnOutage(t *testing.T) {
	c := otlptest.LoadCorpus(t)
	b := open(t, "mem://")
	var down atomic.Bool
	down.Store(true)
	b.SetHook(func(_ context.Context, op, _ string) error {
		if down.Load() && (op == "write" || op == "create") {
			return &storage.Error{Kind: storage.KindUnavailable, Err: errors.New("injected outage")}
		}
		return nil
	})
	reg := prometheus.NewRegistry()
	const limit = 200_000
	s := newServer(t, Config{Bucket: b, WALDir: t.TempDir(), Registry: reg, MaxLiveBytes: limit, MaxBlockBytes: 40_000,
		FlushCheckInterval: 5 * time.Millisecond, FlushRetryMin: 5 * time.Millisecond, FlushRetryMax: 10 * time.Millisecond})
	s.Start()
	defer s.Shutdown(context.Background())

	accepted := map[string]ptrace.Traces{}
	var refused error
	for pass := 0; refused == nil && pass < 50; pass++ {
		for i, td := range c.Lines {
			cp := renumber(td, byte(pass))
			err := s.Consume(context.Background(), "t", cp)
			if err != nil {
				refused = err
				t.Logf("refused at pass %d line %d", pass, i+1)
				break
			}
			for id, tr := range otlptest.SplitByTrace(cp) {
				if prev, ok := accepted[id]; ok {
					tr = otlptest.Merge(prev, tr)
				}
				accepted[id] = tr
			}
			time.Sleep(time.Millisecond) // let the loop cut
		}
	}
	var le *ingest.LimitError
	if !errors.As(refused, &le) || le.Reason != "live_bytes_exceeded" {
		t.Fatalf("ingest during an outage: err = %v, want a live_bytes_exceeded limit", refused)
	}
	if live := s.head.size() + s.queued.Load(); live > limit {
		t.Errorf("%d bytes held, over the limit of %d", live, limit)
	}
	if got := testutil.ToFloat64(s.m.refused.WithLabelValues("live_bytes_exceeded")); got == 0 {
		t.Error("refused spans not counted")
	}
	s.flushMu.Lock()
	queued := len(s.flushing)
	s.flushMu.Unlock()
	if queued < 2 {
		t.Errorf("%d blocks waiting: cuts stopped while storing failed", queued)
	}

	down.Store(false)
	deadline := time.Now().Add(20 * time.Second)
	for s.queued.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if err := s.Consume(context.Background(), "t", renumber(c.Lines[0], 200)); err != nil {
		t.Fatalf("ingest after the store came back: %v", err)
	}
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	l, err := blocks.List(context.Background(), b, "t", blocks.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var metas []*block.Meta
	for _, bi := range l.Blocks {
		metas = append(metas, bi.Meta)
	}
	for id, want := range accepted {
		tid, _ := block.ParseTraceID(id)
		res, err := blocks.FindTrace(context.Background(), b, metas, tid, blocks.FindOptions{})
		if err != nil || !res.Found {
			t.Fatalf("accepted trace %s not stored: %v", id, err)
		}
		otlptest.AssertEqual(t, want, res.Trace, otlptest.MaxDiffs(3))
	}
}

// renumber copies td with every trace ID changed by pass, so each pass
// over the corpus is new traces.
func renumber(td ptrace.Traces, pass byte) ptrace.Traces {
	cp := ptrace.NewTraces()
	td.CopyTo(cp)
	for _, rs := range cp.ResourceSpans().All() {
		for _, ss := range rs.ScopeSpans().All() {
			for _, sp := range ss.Spans().All() {
				id := sp.TraceID()
				id[15] ^= pass
				id[14] ^= 0x5a
				sp.SetTraceID(id)
			}
		}
	}
	return cp
}
