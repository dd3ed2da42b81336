package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
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
	"github.com/tracectl/tracectl/internal/storage/storagetest"
)

func open(t *testing.T, url string) *storage.Bucket {
	t.Helper()
	b, err := storage.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func newServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// ListMetas lists the metas of a tenant's blocks, failing the test on a
// listing error or problem. (Exported for the package's external tests.)
func ListMetas(t *testing.T, b *storage.Bucket, tenantID string) []*block.Meta {
	t.Helper()
	l, err := blocks.List(context.Background(), b, tenantID, blocks.ListOptions{})
	if err != nil || len(l.Problems) > 0 {
		t.Fatalf("listing %s: %v %v", tenantID, err, l.Problems)
	}
	var metas []*block.Meta
	for _, bi := range l.Blocks {
		metas = append(metas, bi.Meta)
	}
	return metas
}

// checkBucket finds every trace of want (by ID) in the bucket's blocks.
func checkBucket(t *testing.T, b *storage.Bucket, tenantID string, want map[string]ptrace.Traces) {
	t.Helper()
	metas := ListMetas(t, b, tenantID)
	for hex, td := range want {
		id, _ := block.ParseTraceID(hex)
		res, err := blocks.FindTrace(context.Background(), b, metas, id, blocks.FindOptions{})
		if err != nil || !res.Found {
			t.Errorf("%s %s not found in the bucket: %v", otlptest.Label(hex), hex, err)
			continue
		}
		otlptest.AssertEqual(t, td, res.Trace, otlptest.MaxDiffs(3))
	}
}

func consumeCorpus(t *testing.T, s *Server, tenantID string, c *otlptest.Corpus) {
	t.Helper()
	for i, td := range c.Lines {
		cp := ptrace.NewTraces()
		td.CopyTo(cp)
		if err := s.Consume(context.Background(), tenantID, cp); err != nil {
			t.Fatalf("consume line %d: %v", i+1, err)
		}
	}
}

func TestIngestFlushAndFind(t *testing.T) {
	c := otlptest.LoadCorpus(t)
	b := open(t, "mem://")
	reg := prometheus.NewRegistry()
	s := newServer(t, Config{Bucket: b, WALDir: t.TempDir(), Registry: reg})
	consumeCorpus(t, s, "team-a", c)

	// Before a flush the spans are in the head.
	id, _ := block.ParseTraceID(otlptest.IDOf("P00"))
	if got := s.FindInHead("team-a", id); len(got) == 0 {
		t.Fatal("P00 not in the head after ingest")
	}
	if got := s.FindInHead("team-b", id); len(got) != 0 {
		t.Fatal("P00 visible to another tenant")
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	checkBucket(t, b, "team-a", c.ByID)
	if n := testutil.ToFloat64(s.m.blocksWritten); n != 1 {
		t.Errorf("blocks written = %v, want 1", n)
	}
	if ids, _ := blocks.BlockIDs(context.Background(), b, "team-b"); len(ids) != 0 {
		t.Errorf("tenant team-b got blocks: %v", ids)
	}
	// Everything flushed: a restart replays nothing.
	s2 := newServer(t, Config{Bucket: b, WALDir: s.cfg.WALDir})
	if bytes, _, _ := s2.head.stats(); bytes != 0 {
		t.Errorf("restart after a clean shutdown replayed %d bytes", bytes)
	}
	s2.Shutdown(context.Background())
}

// TestCrashBeforeFlushLosesNothing drops a server without flushing (as a
// crash would) and checks a new one replays the WAL and stores every span.
func TestCrashBeforeFlushLosesNothing(t *testing.T) {
	c := otlptest.LoadCorpus(t)
	b := open(t, "mem://")
	dir := t.TempDir()
	s := newServer(t, Config{Bucket: b, WALDir: dir})
	consumeCorpus(t, s, block.DefaultTenant, c)
	// "Crash": close the WAL (its data is already durable), no flush.
	s.wal.Close()

	s2 := newServer(t, Config{Bucket: b, WALDir: dir})
	if _, traces, _ := s2.head.stats(); traces != len(c.IDs) {
		t.Fatalf("replay restored %d traces, want %d", traces, len(c.IDs))
	}
	if err := s2.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	checkBucket(t, b, block.DefaultTenant, c.ByID)
}

// TestStorageOutageKeepsData makes the bucket refuse writes: flushes fail,
// the data stays in the WAL and the head, and once storage is back the
// blocks are stored. A shutdown during the outage keeps the WAL for the
// next start.
func TestStorageOutageKeepsData(t *testing.T) {
	c := otlptest.LoadCorpus(t)
	s3 := storagetest.StartS3(t)
	b := open(t, s3.Bucket(t, "traces"))
	dir := t.TempDir()
	reg := prometheus.NewRegistry()
	s := newServer(t, Config{Bucket: b, WALDir: dir, Registry: reg, FlushCheckInterval: 20 * time.Millisecond,
		MaxBlockDuration: 50 * time.Millisecond, FlushRetryMin: 20 * time.Millisecond, FlushRetryMax: 50 * time.Millisecond})
	s3.Deny(func(r *http.Request) bool { return r.Method == http.MethodPut || r.Method == http.MethodPost })
	s.Start()
	consumeCorpus(t, s, block.DefaultTenant, c)

	deadline := time.Now().Add(10 * time.Second)
	for testutil.ToFloat64(s.m.flushFailures) < 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if testutil.ToFloat64(s.m.flushFailures) < 2 {
		t.Fatal("flush failures not counted during the outage")
	}
	// Queries still see the data while storage is down.
	id, _ := block.ParseTraceID(otlptest.IDOf("P09"))
	if len(s.FindInHead(block.DefaultTenant, id)) == 0 {
		t.Error("P09 not findable while its flush is failing")
	}
	err := s.Shutdown(context.Background())
	if err == nil || !strings.Contains(err.Error(), "write-ahead log") {
		t.Fatalf("shutdown during an outage: err = %v, want one saying the WAL keeps the data", err)
	}

	// Storage is back; the next start stores everything.
	s3.Deny(nil)
	s2 := newServer(t, Config{Bucket: b, WALDir: dir})
	if err := s2.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	checkBucket(t, b, block.DefaultTenant, c.ByID)
}

func TestFlushLoopCutsByDurationAndSize(t *testing.T) {
	c := otlptest.LoadCorpus(t)
	b := open(t, "mem://")
	s := newServer(t, Config{Bucket: b, WALDir: t.TempDir(), FlushCheckInterval: 10 * time.Millisecond, MaxBlockBytes: 50_000})
	s.Start()
	defer s.Shutdown(context.Background())
	consumeCorpus(t, s, block.DefaultTenant, c)
	deadline := time.Now().Add(10 * time.Second)
	for {
		ids, _ := blocks.BlockIDs(context.Background(), b, block.DefaultTenant)
		if len(ids) >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("size-based cuts produced %d blocks, want several", len(ids))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestLimits(t *testing.T) {
	c := otlptest.LoadCorpus(t)
	b := open(t, "mem://")
	reg := prometheus.NewRegistry()
	s := newServer(t, Config{Bucket: b, WALDir: t.TempDir(), Registry: reg, IngestionRateBytes: 1000, IngestionBurstBytes: 200_000, MaxTraceBytes: 4_000})
	defer s.Shutdown(context.Background())

	// P09 has 60 spans: well over 4 kB, so part of it is dropped.
	var partial *ingest.PartialError
	var limited error
	for _, td := range c.Lines {
		err := s.Consume(context.Background(), "t", td)
		switch {
		case errors.As(err, &partial):
		case errors.Is(err, ingest.ErrLimited):
			limited = err
		case err != nil:
			t.Fatalf("unexpected error: %v", err)
		}
		if limited != nil {
			break
		}
	}
	if partial == nil || partial.Rejected == 0 || partial.Reason != "trace_too_large" {
		t.Errorf("no trace_too_large partial error: %+v", partial)
	}
	var le *ingest.LimitError
	if !errors.As(limited, &le) || le.Reason != "rate_limited" || le.RetryAfter < time.Second || !strings.Contains(le.Message, "tenant t") {
		t.Errorf("rate limit error = %#v", limited)
	}
	if got := testutil.ToFloat64(s.m.refused.WithLabelValues("rate_limited")); got == 0 {
		t.Error("rate-limited spans not counted")
	}
	// Other tenants have their own budget.
	if err := s.Consume(context.Background(), "u", c.Lines[0]); errors.Is(err, ingest.ErrLimited) {
		t.Errorf("tenant u limited by tenant t: %v", err)
	}
	if err := s.Consume(context.Background(), "../x", c.Lines[0]); err == nil {
		t.Error("invalid tenant accepted")
	}
}

// TestCutKeepsActiveTraces checks that a time-based cut stores idle traces
// and keeps a trace still receiving spans in the head, written to the WAL
// again, so that a crash right after the flush replays it whole.
func TestCutKeepsActiveTraces(t *testing.T) {
	c := otlptest.LoadCorpus(t)
	b := open(t, "mem://")
	dir := t.TempDir()
	now := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	cfg := Config{Bucket: b, WALDir: dir, Now: clock, MaxBlockDuration: time.Minute, TraceIdlePeriod: 10 * time.Second}
	s := newServer(t, cfg)

	// P02 arrives in two requests (corpus lines 14 and 16); P10 in line 15.
	idle, active := otlptest.IDOf("P10"), otlptest.IDOf("P02")
	consume := func(line int) {
		cp := ptrace.NewTraces()
		c.Lines[line-1].CopyTo(cp)
		if err := s.Consume(context.Background(), "t", cp); err != nil {
			t.Fatal(err)
		}
	}
	consume(14)
	consume(15)
	now = now.Add(9 * time.Second)
	consume(16) // P02 is still active
	now = now.Add(2 * time.Second)

	if err := s.cut(false); err != nil {
		t.Fatal(err)
	}
	if err := s.flushPending(context.Background()); err != nil {
		t.Fatal(err)
	}
	checkBucket(t, b, "t", map[string]ptrace.Traces{idle: c.ByID[idle]})
	activeID, _ := block.ParseTraceID(active)
	if got := s.FindInHead("t", activeID); len(got) != 2 {
		t.Fatalf("active P02 has %d pieces in the head, want 2", len(got))
	}
	// Crash now: the sealed segment is gone, P02 must come back from the
	// records written again.
	s.wal.Close()
	s2 := newServer(t, Config{Bucket: b, WALDir: dir, Now: clock})
	idleID, _ := block.ParseTraceID(idle)
	if got := s2.FindInHead("t", idleID); len(got) != 0 {
		t.Errorf("stored trace P10 replayed again (%d pieces)", len(got))
	}
	if err := s2.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	checkBucket(t, b, "t", map[string]ptrace.Traces{active: c.ByID[active], idle: c.ByID[idle]})

	// A trace that never goes quiet is still stored once it is older than
	// the block duration.
	s3 := newServer(t, Config{Bucket: b, WALDir: t.TempDir(), Now: clock, MaxBlockDuration: time.Minute, TraceIdlePeriod: 10 * time.Second})
	defer s3.Shutdown(context.Background())
	cp := ptrace.NewTraces()
	c.ByID[otlptest.IDOf("P09")].CopyTo(cp)
	s3.Consume(context.Background(), "u", cp)
	now = now.Add(58 * time.Second)
	more := ptrace.NewTraces()
	c.ByID[otlptest.IDOf("P09")].CopyTo(more)
	s3.Consume(context.Background(), "u", more) // still active 3 s before the cut
	now = now.Add(3 * time.Second)
	if err := s3.cut(false); err != nil {
		t.Fatal(err)
	}
	s3.flushMu.Lock()
	queued := len(s3.flushing)
	s3.flushMu.Unlock()
	if queued != 1 {
		t.Errorf("trace older than the block duration not cut: %d snapshots queued", queued)
	}
}

// TestFailedFlushKeepsMultiPieceTraces: a trace sent in several requests
// (P02) must survive a failed store and be complete after the retry, and
// stay findable meanwhile. (Merging pieces used to move them away.)
func TestFailedFlushKeepsMultiPieceTraces(t *testing.T) {
	c := otlptest.LoadCorpus(t)
	s3 := storagetest.StartS3(t)
	b := open(t, s3.Bucket(t, "traces"))
	s := newServer(t, Config{Bucket: b, WALDir: t.TempDir()})
	consumeCorpus(t, s, block.DefaultTenant, c)
	s3.Deny(func(r *http.Request) bool { return r.Method == http.MethodPut })
	if err := s.Flush(context.Background()); err == nil {
		t.Fatal("flush succeeded while storage refused writes")
	}
	id, _ := block.ParseTraceID(otlptest.IDOf("P02"))
	got := ptrace.NewTraces()
	for _, p := range s.FindInHead(block.DefaultTenant, id) {
		p.ResourceSpans().MoveAndAppendTo(got.ResourceSpans())
	}
	if got.SpanCount() != c.ByID[otlptest.IDOf("P02")].SpanCount() {
		t.Errorf("P02 has %d spans in the head after a failed flush, want %d", got.SpanCount(), c.ByID[otlptest.IDOf("P02")].SpanCount())
	}
	s3.Deny(nil)
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	checkBucket(t, b, block.DefaultTenant, c.ByID)
}

// TestConcurrentFlushes runs Flush from several goroutines while the flush
// loop runs and data arrives (run with -race): every span is stored once.
func TestConcurrentFlushes(t *testing.T) {
	c := otlptest.LoadCorpus(t)
	b := open(t, "mem://")
	s := newServer(t, Config{Bucket: b, WALDir: t.TempDir(), FlushCheckInterval: 5 * time.Millisecond,
		MaxBlockDuration: 10 * time.Millisecond, TraceIdlePeriod: -1})
	s.Start()
	done := make(chan struct{})
	var flushErr error
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				if err := s.Flush(context.Background()); err != nil {
					flushErr = err
				}
				id, _ := block.ParseTraceID(otlptest.IDOf("P09"))
				s.FindInHead(block.DefaultTenant, id)
			}
		}()
	}
	consumeCorpus(t, s, block.DefaultTenant, c)
	close(done)
	wg.Wait()
	if flushErr != nil {
		t.Fatal(flushErr)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	checkBucket(t, b, block.DefaultTenant, c.ByID)
}

// TestEmptyCutKeepsQueuedSegments: a cut that stores nothing (every trace
// still active) must not remove WAL segments of an earlier snapshot whose
// store failed; a crash then must still find that data.
func TestEmptyCutKeepsQueuedSegments(t *testing.T) {
	c := otlptest.LoadCorpus(t)
	s3 := storagetest.StartS3(t)
	b := open(t, s3.Bucket(t, "traces"))
	dir := t.TempDir()
	now := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	s := newServer(t, Config{Bucket: b, WALDir: dir, Now: clock, MaxBlockDuration: time.Minute, TraceIdlePeriod: 10 * time.Second})
	consume := func(line int) {
		cp := ptrace.NewTraces()
		c.Lines[line-1].CopyTo(cp)
		if err := s.Consume(context.Background(), "t", cp); err != nil {
			t.Fatal(err)
		}
	}
	consume(15) // P10
	s3.Deny(func(r *http.Request) bool { return r.Method == http.MethodPut })
	if err := s.cut(true); err != nil {
		t.Fatal(err)
	}
	if err := s.flushPending(context.Background()); err == nil {
		t.Fatal("flush succeeded while storage refused writes")
	}
	consume(14) // P02, active at the next cut
	now = now.Add(time.Second)
	if err := s.cut(false); err != nil {
		t.Fatal(err)
	}
	// Crash with storage still down, then recover.
	s.wal.Close()
	s3.Deny(nil)
	s2 := newServer(t, Config{Bucket: b, WALDir: dir, Now: clock})
	if err := s2.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	p10 := otlptest.IDOf("P10")
	checkBucket(t, b, "t", map[string]ptrace.Traces{p10: c.ByID[p10]})
}

// TestSweepLimiters checks that idle tenants' rate limiters are forgotten
// once their bucket is full again, so 10,000 tenants that each sent once do
// not stay in memory, and that forgetting changes no answer: a limiter still
// draining is kept, and a tenant back after the sweep has its full burst.
func TestSweepLimiters(t *testing.T) {
	s := newServer(t, Config{Bucket: open(t, "mem://"), WALDir: t.TempDir(), Registry: prometheus.NewRegistry(),
		IngestionRateBytes: 1000, IngestionBurstBytes: 2000})
	defer s.Shutdown(context.Background())
	t0 := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)

	for i := range 10_000 {
		if !s.allow(fmt.Sprintf("tenant-%d", i), 100, t0) {
			t.Fatalf("tenant-%d refused its first 100 bytes", i)
		}
	}
	if !s.allow("busy", 1900, t0) {
		t.Fatal("busy refused 1900 of its 2000-byte burst")
	}
	if n := s.sweepLimiters(t0); n != 10_001 {
		t.Errorf("limiters right after the requests = %d, want 10001 (none full yet)", n)
	}
	// 0.1 s refills 100 bytes: every small tenant is full again, busy
	// (1900 used) is not.
	t1 := t0.Add(100 * time.Millisecond)
	if n := s.sweepLimiters(t1); n != 1 {
		t.Errorf("limiters after 0.1s = %d, want 1 (busy)", n)
	}
	// busy's state was kept: it has 100+100 bytes, so 300 is refused.
	if s.allow("busy", 300, t1) {
		t.Error("busy allowed 300 bytes with 200 in its bucket: its limiter was reset by the sweep")
	}
	// A swept tenant is back with its full burst, as a kept one would be.
	if !s.allow("tenant-7", 2000, t1) {
		t.Error("tenant-7 refused its full burst after being swept")
	}
	if s.allow("tenant-7", 1, t1) {
		t.Error("tenant-7 allowed past its burst")
	}
}
