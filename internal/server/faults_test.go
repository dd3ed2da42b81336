package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/tracectl/tracectl/internal/blocks"
	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/blocks/vparquet4"
	"github.com/tracectl/tracectl/internal/ingest"
	"github.com/tracectl/tracectl/internal/otlptest"
	"github.com/tracectl/tracectl/internal/storage"
	"github.com/tracectl/tracectl/internal/storage/faulty"
	"github.com/tracectl/tracectl/internal/wal"
)

// The storage faults suite of the server: writes that fail, tear or land
// unacknowledged, with the real WAL, head, flusher and block writer.

// TestWALLimitDuringAWriteOutage: while every write to the store fails,
// serve accepts OTLP spans over HTTP until its WAL holds WAL.MaxBytes,
// then refuses with 429 naming the full write-ahead log; once the store is
// back everything accepted is stored, span by span, and ingest resumes.
func TestWALLimitDuringAWriteOutage(t *testing.T) {
	c := otlptest.LoadCorpus(t)
	b := open(t, "mem://")
	in := faulty.Install(b)
	outage := in.Down(faulty.Write, faulty.Create)
	const walMax = 256 << 10
	var logs bytes.Buffer
	var logMu sync.Mutex
	logger := slog.New(slog.NewTextHandler(lockedWriter{&logs, &logMu}, nil))
	s := newServer(t, Config{Bucket: b, WALDir: t.TempDir(), Registry: prometheus.NewRegistry(), Logger: logger,
		WAL: wal.Options{MaxBytes: walMax, SegmentBytes: 32 << 10}, MaxLiveBytes: -1, IngestionRateBytes: -1,
		MaxBlockBytes: 40_000, FlushCheckInterval: 5 * time.Millisecond,
		FlushRetryMin: 5 * time.Millisecond, FlushRetryMax: 20 * time.Millisecond})
	s.Start()
	defer s.Shutdown(context.Background())
	addr := startOTLPHTTP(t, s, logger)

	post := func(td ptrace.Traces) (int, string, http.Header) {
		t.Helper()
		body, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.Post("http://"+addr+"/v1/traces", "application/x-protobuf", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		msg, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(msg), resp.Header
	}

	accepted := map[string]ptrace.Traces{}
	spans, requests := 0, 0
	var status int
	var msg string
	var header http.Header
	for pass := 0; status != http.StatusTooManyRequests && pass < 100; pass++ {
		for _, td := range c.Lines {
			cp := renumber(td, byte(pass))
			status, msg, header = post(cp)
			if status != http.StatusOK {
				break
			}
			requests++
			spans += cp.SpanCount()
			for id, tr := range otlptest.SplitByTrace(cp) {
				if prev, ok := accepted[id]; ok {
					tr = otlptest.Merge(prev, tr)
				}
				accepted[id] = tr
			}
		}
	}
	if status != http.StatusTooManyRequests || !strings.Contains(msg, "write-ahead log is full") || header.Get("Retry-After") == "" {
		t.Fatalf("ingest during the outage ended with %d %q (Retry-After %q), want 429 saying the write-ahead log is full",
			status, msg, header.Get("Retry-After"))
	}
	t.Logf("accepted %d spans in %d requests (%d traces) before the WAL limit of %d bytes refused: %s",
		spans, requests, len(accepted), walMax, msg)
	if got := testutil.ToFloat64(s.m.refused.WithLabelValues("wal_full")); got == 0 {
		t.Error("spans refused for a full WAL not counted")
	}
	if st := s.wal.Stats(); st.Bytes > walMax {
		t.Errorf("WAL holds %d bytes, over its limit of %d", st.Bytes, walMax)
	}
	if n := testutil.ToFloat64(s.m.flushFailures); n == 0 {
		t.Error("no flush failure counted during the outage")
	}
	if n := testutil.ToFloat64(s.m.blocksWritten); n != 0 {
		t.Errorf("%v blocks stored while every write failed", n)
	}
	// The Consumer itself says why, as a LimitError.
	var le *ingest.LimitError
	if err := s.Consume(context.Background(), "single-tenant", renumber(c.Lines[0], 250)); !errors.As(err, &le) || le.Reason != "wal_full" {
		t.Errorf("Consume while the WAL is full: %v, want a wal_full LimitError", err)
	}
	// Accepted spans are queryable meanwhile.
	for id := range accepted {
		tid, _ := block.ParseTraceID(id)
		if len(s.FindInHead(block.DefaultTenant, tid)) == 0 {
			t.Fatalf("accepted trace %s not in the head during the outage", id)
		}
		break
	}

	// Storage comes back: the flusher stores the queue, the WAL empties
	// and ingest resumes.
	back := time.Now()
	in.Remove(outage)
	deadline := back.Add(20 * time.Second)
	again := renumber(c.Lines[0], 251)
	for {
		status, msg, _ = post(again)
		if status == http.StatusOK {
			for id, tr := range otlptest.SplitByTrace(again) {
				accepted[id] = tr
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ingest still refused %s after storage came back: %d %s", time.Since(back), status, msg)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("ingest accepted again %s after storage came back", time.Since(back).Round(time.Millisecond))
	for s.queued.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("queue stored %s after storage came back (%v blocks)", time.Since(back).Round(time.Millisecond), testutil.ToFloat64(s.m.blocksWritten))
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	checkAccepted(t, b, block.DefaultTenant, accepted)
	logMu.Lock()
	defer logMu.Unlock()
	if !strings.Contains(logs.String(), "flushing blocks to storage failed") {
		t.Error("the flush failures were not logged")
	}
}

// startOTLPHTTP serves the OTLP/HTTP receiver in front of s on 127.0.0.1.
func startOTLPHTTP(t *testing.T, s *Server, logger *slog.Logger) string {
	t.Helper()
	set, err := ingest.NewSet(ingest.ReceiversConfig{OTLPHTTP: &ingest.Config{Endpoint: "127.0.0.1:0"}}, s, logger, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := set.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		set.Shutdown(ctx)
	})
	return set.Addrs()[ingest.ProtocolOTLPHTTP].String()
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// checkAccepted finds every accepted trace in the tenant's blocks, equal
// span by span, and checks that no span is stored twice.
func checkAccepted(t *testing.T, b *storage.Bucket, tenantID string, accepted map[string]ptrace.Traces) {
	t.Helper()
	if checkBucket(t, b, tenantID, accepted); t.Failed() {
		return
	}
	metas := ListMetas(t, b, tenantID)
	// Each span as many times as it was accepted (the corpus sends one
	// span twice, on purpose), no more: a retried flush adds no copy.
	stored := storedSpans(t, b, metas)
	want := map[string]int{}
	for _, td := range accepted {
		countSpans(td, want)
	}
	bad := 0
	for k, n := range stored {
		if n != want[k] && bad < 5 {
			t.Errorf("span %s stored %d times, accepted %d times", k, n, want[k])
			bad++
		}
	}
	if len(stored) != len(want) {
		t.Errorf("%d distinct spans stored, %d accepted", len(stored), len(want))
	}
}

// countSpans counts each span of td by trace ID, span ID and kind.
func countSpans(td ptrace.Traces, into map[string]int) {
	for _, rs := range td.ResourceSpans().All() {
		for _, ss := range rs.ScopeSpans().All() {
			for _, sp := range ss.Spans().All() {
				into[fmt.Sprintf("%s/%s/%d", sp.TraceID(), sp.SpanID(), sp.Kind())]++
			}
		}
	}
}

// storedSpans reads every row of every block with the block reader and
// counts each span (trace ID, span ID, kind).
func storedSpans(t *testing.T, b *storage.Bucket, metas []*block.Meta) map[string]int {
	t.Helper()
	ctx := context.Background()
	out := map[string]int{}
	for _, m := range metas {
		blk := vparquet4.OpenBlock(ctx, b, m)
		for tr, err := range blk.Iterate(ctx) {
			if err != nil {
				t.Fatalf("reading block %s: %v", m.BlockID, err)
			}
			td, err := blk.OTLPAll(tr)
			if err != nil {
				t.Fatalf("reading block %s: %v", m.BlockID, err)
			}
			countSpans(td, out)
		}
	}
	return out
}

// TestTornBlockWritesAreRetried tears each object of a block in turn as
// the flusher writes it: the flush fails and is retried, a reader polling
// the bucket meanwhile never lists a block it cannot read whole, and in
// the end every accepted span is stored exactly once.
func TestTornBlockWritesAreRetried(t *testing.T) {
	c := otlptest.LoadCorpus(t)
	for _, tc := range []struct {
		name string
		keys string
		keep int64
	}{
		{"data.parquet prefix", "*/" + block.DataName, 1000},
		{"data.parquet empty", "*/" + block.DataName, 0},
		{"bloom", "*/bloom-0", 10},
		{"index", "*/index", 5},
		{"meta.json prefix", "*/" + block.MetaName, 40},
		// The write lands, the writer is told it failed.
		{"meta.json landed", "*/" + block.MetaName, 1 << 30},
		{"data.parquet landed", "*/" + block.DataName, 1 << 30},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := open(t, "mem://")
			in := faulty.Install(b)
			tear := in.Add(&faulty.Rule{Ops: []string{faulty.Write}, Keys: tc.keys, Torn: true, Keep: tc.keep, Times: 2})
			dataWrites := in.Add(&faulty.Rule{Ops: []string{faulty.Write}, Keys: "*/" + block.DataName, Pass: true})
			s := newServer(t, Config{Bucket: b, WALDir: t.TempDir(), Registry: prometheus.NewRegistry(),
				MaxBlockBytes: 60_000, FlushCheckInterval: 5 * time.Millisecond,
				FlushRetryMin: 5 * time.Millisecond, FlushRetryMax: 10 * time.Millisecond})

			// A reader polls the bucket as the query side does and reads
			// every block it lists, whole.
			stop := make(chan struct{})
			var readerErr error
			var seen int
			readerDone := make(chan struct{})
			go func() {
				defer close(readerDone)
				checked := map[string]bool{}
				for {
					select {
					case <-stop:
						return
					default:
					}
					l, err := blocks.List(context.Background(), b, block.DefaultTenant, blocks.ListOptions{})
					if err != nil {
						readerErr = err
						return
					}
					for _, bi := range l.Blocks {
						if checked[bi.Meta.BlockID.String()] {
							continue
						}
						if err := readWhole(b, bi.Meta); err != nil {
							readerErr = fmt.Errorf("block %s listed but not readable: %w", bi.Meta.BlockID, err)
							return
						}
						checked[bi.Meta.BlockID.String()] = true
						seen++
					}
					time.Sleep(2 * time.Millisecond)
				}
			}()

			s.Start()
			accepted := map[string]ptrace.Traces{}
			for _, td := range c.Lines {
				cp := ptrace.NewTraces()
				td.CopyTo(cp)
				for id, tr := range otlptest.SplitByTrace(cp) {
					if prev, ok := accepted[id]; ok {
						tr = otlptest.Merge(prev, tr)
					}
					accepted[id] = tr
				}
				if err := s.Consume(context.Background(), block.DefaultTenant, cp); err != nil {
					t.Fatal(err)
				}
			}
			deadline := time.Now().Add(10 * time.Second)
			for tear.Fired() < 2 && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			if tear.Fired() < 2 {
				t.Fatalf("the torn-write rule fired %d times, want 2", tear.Fired())
			}
			if err := s.Shutdown(context.Background()); err != nil {
				t.Fatalf("shutdown after the torn writes: %v", err)
			}
			close(stop)
			<-readerDone
			if readerErr != nil {
				t.Fatal(readerErr)
			}
			if n := testutil.ToFloat64(s.m.flushFailures); n < 2 {
				t.Errorf("%v flush failures counted, want the 2 torn writes", n)
			}
			checkAccepted(t, b, block.DefaultTenant, accepted)
			l, _ := blocks.List(context.Background(), b, block.DefaultTenant, blocks.ListOptions{})
			if tc.name == "meta.json landed" && dataWrites.Fired() != len(l.Blocks) {
				t.Errorf("%d writes of data.parquet for %d blocks: a block whose meta.json landed was written again", dataWrites.Fired(), len(l.Blocks))
			}
			if l.Incomplete != 0 {
				t.Errorf("%d incomplete blocks left behind: a retry must rewrite the failed block, not start another", l.Incomplete)
			}
			t.Logf("%d blocks stored, %d incomplete left behind, reader checked %d blocks while flushing", len(l.Blocks), l.Incomplete, seen)
		})
	}
}

// readWhole reads every trace of a block.
func readWhole(b *storage.Bucket, m *block.Meta) error {
	ctx := context.Background()
	blk := vparquet4.OpenBlock(ctx, b, m)
	n := 0
	for tr, err := range blk.Iterate(ctx) {
		if err != nil {
			return err
		}
		if _, err := blk.OTLPAll(tr); err != nil {
			return err
		}
		n++
	}
	if n != int(m.TotalObjects) {
		return fmt.Errorf("%d traces read, meta.json says %d", n, m.TotalObjects)
	}
	for i := range max(m.BloomShards, 1) {
		data, err := b.Read(ctx, block.BloomKey(m.TenantID, m.BlockID, int(i)))
		if err != nil {
			return err
		}
		if _, err := block.ParseBloomShard(block.BloomKey(m.TenantID, m.BlockID, int(i)), data); err != nil {
			return err
		}
	}
	return nil
}
