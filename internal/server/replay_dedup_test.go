package server

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/tracectl/tracectl/internal/blocks"
	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/blocks/compact"
	"github.com/tracectl/tracectl/internal/blocks/vparquet4"
	"github.com/tracectl/tracectl/internal/storage"
	"github.com/tracectl/tracectl/internal/wal"
)

// The crash windows of a cut, made deterministic: a "crash" closes the
// WAL (every acknowledged append is on disk, as after kill -9) and drops
// the Server; a new Server on the same WAL directory and bucket is the
// restart. Each test then counts every span over all blocks' raw rows
// (not merged as readers merge them) and wants each acknowledged span
// exactly once and nothing else.

type crashRig struct {
	t      *testing.T
	b      *storage.Bucket
	dir    string
	mu     sync.Mutex
	now    time.Time
	acked  map[string]int // tenant/trace/span -> acknowledged
	log    bytes.Buffer
	logMu  sync.Mutex
	walMax int64
}

func newCrashRig(t *testing.T) *crashRig {
	return &crashRig{t: t, b: open(t, "mem://"), dir: t.TempDir(),
		now: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC), acked: map[string]int{}}
}

func (r *crashRig) clock() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.now
}

func (r *crashRig) advance(d time.Duration) {
	r.mu.Lock()
	r.now = r.now.Add(d)
	r.mu.Unlock()
}

// start is a process start: New on the rig's WAL and bucket (replay).
func (r *crashRig) start() *Server {
	r.t.Helper()
	s, err := New(Config{Bucket: r.b, WALDir: r.dir, WAL: wal.Options{MaxBytes: r.walMax},
		Registry: prometheus.NewRegistry(), Now: r.clock, IngestionRateBytes: -1,
		TraceIdlePeriod: 10 * time.Second, MaxBlockDuration: 5 * time.Minute,
		Logger: slog.New(slog.NewTextHandler(lockedWriter{w: &r.log, mu: &r.logMu}, nil))})
	if err != nil {
		r.t.Fatal(err)
	}
	return s
}

// crash stops s as kill -9 would: nothing more is flushed or removed.
func crash(s *Server) { s.wal.Close() }

func (r *crashRig) logged(substr string) int {
	r.logMu.Lock()
	defer r.logMu.Unlock()
	return strings.Count(r.log.String(), substr)
}

// send makes one request of n spans of trace tr (span IDs from first on)
// under a resource named res, and notes its spans as acknowledged.
func (r *crashRig) send(s *Server, tenantID string, tr, first uint32, n int, res string) {
	r.t.Helper()
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", res)
	ss := rs.ScopeSpans().AppendEmpty()
	ss.Scope().SetName("crash-test")
	var keys []string
	for i := range n {
		sp := ss.Spans().AppendEmpty()
		sp.SetTraceID(testTraceID(tr))
		var sid [8]byte
		binary.BigEndian.PutUint32(sid[:4], tr)
		binary.BigEndian.PutUint32(sid[4:], first+uint32(i))
		sp.SetSpanID(pcommon.SpanID(sid))
		sp.SetName(fmt.Sprintf("op-%d", i))
		at := r.clock()
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(at))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(at.Add(time.Millisecond)))
		keys = append(keys, fmt.Sprintf("%s/%s/%s", tenantID, sp.TraceID(), sp.SpanID()))
	}
	if err := s.Consume(context.Background(), tenantID, td); err != nil {
		r.t.Fatalf("consume trace %d: %v", tr, err)
	}
	for _, k := range keys {
		r.acked[k]++
	}
}

func testTraceID(n uint32) pcommon.TraceID {
	var id [16]byte
	id[0] = 0xc0
	binary.BigEndian.PutUint32(id[12:], n)
	return pcommon.TraceID(id)
}

// workload sends, per tenant, five traces that are complete at the cut
// and two still active (one of them in two requests under different
// resources), then cuts: the complete ones go to the snapshot, the active
// ones are copied to the WAL after the sealed segment. It returns that
// segment.
func (r *crashRig) workload(s *Server, base uint32, tenants ...string) uint64 {
	r.t.Helper()
	r.load(s, base, tenants...)
	if err := s.cut(false); err != nil {
		r.t.Fatal(err)
	}
	if _, traces, _ := s.head.stats(); traces != 2*len(tenants) {
		r.t.Fatalf("%d traces kept in the head at the cut, want %d (the test needs requeued traces)", traces, 2*len(tenants))
	}
	s.flushMu.Lock()
	seg := s.flushing[len(s.flushing)-1].walSeg
	s.flushMu.Unlock()
	return seg
}

// load is workload without the cut.
func (r *crashRig) load(s *Server, base uint32, tenants ...string) {
	r.t.Helper()
	for _, t := range tenants {
		for i := range uint32(5) {
			r.send(s, t, base+i, 0, 3, "svc-done")
		}
		r.send(s, t, base+100, 0, 2, "svc-a")
	}
	r.advance(20 * time.Second)
	for _, t := range tenants {
		r.send(s, t, base+100, 10, 2, "svc-b")
		r.send(s, t, base+101, 0, 3, "svc-a")
	}
	r.advance(time.Second)
}

// rawSpans counts each span of tenantID over the rows of every listed
// block, repeats within a row included.
func (r *crashRig) rawSpans(tenantID string, into map[string]int) (nblocks int) {
	r.t.Helper()
	ctx := context.Background()
	l, err := blocks.List(ctx, r.b, tenantID, blocks.ListOptions{})
	if err != nil || len(l.Problems) > 0 {
		r.t.Fatalf("list: %v %v", err, l.Problems)
	}
	for _, bi := range l.Blocks {
		blk := vparquet4.OpenBlock(ctx, r.b, bi.Meta)
		for tr, err := range blk.Iterate(ctx) {
			if err != nil {
				r.t.Fatalf("reading block %s: %v", bi.Meta.BlockID, err)
			}
			td, err := blk.OTLPAll(tr)
			if err != nil {
				r.t.Fatalf("reading block %s: %v", bi.Meta.BlockID, err)
			}
			for _, rs := range td.ResourceSpans().All() {
				for _, ss := range rs.ScopeSpans().All() {
					for _, sp := range ss.Spans().All() {
						into[fmt.Sprintf("%s/%s/%s", tenantID, sp.TraceID(), sp.SpanID())]++
					}
				}
			}
		}
	}
	return len(l.Blocks)
}

// finish restarts once more, stores everything with a clean shutdown and
// checks that every acknowledged span is stored exactly once.
func (r *crashRig) finish(tenants ...string) {
	r.t.Helper()
	s := r.start()
	if err := s.Shutdown(context.Background()); err != nil {
		r.t.Fatal(err)
	}
	r.check(tenants...)
}

func (r *crashRig) check(tenants ...string) {
	r.t.Helper()
	stored := map[string]int{}
	nblocks := 0
	for _, t := range tenants {
		nblocks += r.rawSpans(t, stored)
	}
	bad := 0
	for k, n := range r.acked {
		if stored[k] != n {
			bad++
			if bad <= 5 {
				r.t.Errorf("span %s stored %d times, acknowledged %d times", k, stored[k], n)
			}
		}
	}
	for k := range stored {
		if r.acked[k] == 0 {
			bad++
			if bad <= 5 {
				r.t.Errorf("span %s stored but never sent", k)
			}
		}
	}
	if bad > 0 {
		r.t.Errorf("%d of %d acknowledged spans not stored exactly once (%d blocks)", bad, len(r.acked), nblocks)
	}
}

func crashAtPoint(point, tenantID string) func(string, string) bool {
	return func(p, t string) bool { return p == point && (tenantID == "" || t == tenantID) }
}

// Killed after the blocks of a cut were stored, before its WAL segments
// were removed: the restart must find the blocks and not store the
// segment's spans again, nor the kept traces twice.
func TestReplayCrashAfterStoredBeforeRemove(t *testing.T) {
	r := newCrashRig(t)
	s1 := r.start()
	seg := r.workload(s1, 0, "t")
	s1.crashAt = crashAtPoint("before-remove", "")
	if err := s1.flushPending(context.Background()); err != errCrashed {
		t.Fatalf("flush: %v, want the crash point", err)
	}
	walID := s1.walID
	crash(s1)
	if _, err := block.ReadMeta(context.Background(), r.b, "t", blockIDFor(walID, seg, "t")); err != nil {
		t.Fatalf("the cut's block is not stored under its deterministic ID: %v", err)
	}

	s2 := r.start()
	r.send(s2, "t", 100, 20, 2, "svc-c") // the kept trace goes on
	r.send(s2, "t", 200, 0, 2, "svc-c")
	if err := s2.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := r.logged("already stored"); n != 1 {
		t.Errorf("%d 'already stored' log lines, want 1", n)
	}
	r.check("t")
}

// Killed between a cut and the store of its snapshot: the sealed segment
// and the copies of the kept traces are both in the WAL.
func TestReplayCrashAfterCutBeforeStore(t *testing.T) {
	r := newCrashRig(t)
	s1 := r.start()
	r.workload(s1, 0, "t")
	crash(s1)
	r.finish("t")
	if n := r.logged("already stored"); n != 0 {
		t.Errorf("%d 'already stored' log lines, want 0 (nothing was stored before the crash)", n)
	}
}

// Killed in the middle of a snapshot of two tenants: one block stored,
// the other not.
func TestReplayCrashMidSnapshotTwoTenants(t *testing.T) {
	r := newCrashRig(t)
	s1 := r.start()
	r.workload(s1, 0, "a", "b")
	s1.crashAt = crashAtPoint("stored", "a") // tenants are stored in order: a, then b
	if err := s1.flushPending(context.Background()); err != errCrashed {
		t.Fatalf("flush: %v, want the crash point", err)
	}
	crash(s1)
	if l, _ := blocks.List(context.Background(), r.b, "b", blocks.ListOptions{}); len(l.Blocks) != 0 {
		t.Fatalf("tenant b has %d blocks before the restart, want 0", len(l.Blocks))
	}
	r.finish("a", "b")
	if n := r.logged("already stored"); n != 1 {
		t.Errorf("%d 'already stored' log lines, want 1 (tenant a)", n)
	}
}

// Crash after crash, in every window, with new data in between.
func TestReplayRepeatedCrashes(t *testing.T) {
	r := newCrashRig(t)
	ctx := context.Background()

	s1 := r.start() // stored, not removed
	r.workload(s1, 0, "a", "b")
	s1.crashAt = crashAtPoint("before-remove", "")
	if err := s1.flushPending(ctx); err != errCrashed {
		t.Fatalf("flush: %v", err)
	}
	crash(s1)

	s2 := r.start() // replayed and cut again, nothing stored
	r.workload(s2, 1000, "a", "b")
	crash(s2)

	s3 := r.start() // crash with nothing done at all
	crash(s3)

	s4 := r.start() // the first redone cut stored and removed, the next one half stored
	calls := 0
	s4.crashAt = func(p, t string) bool {
		if p == "stored" {
			calls++
			return calls == 3 // 2 blocks of s1's cut (already stored), then a of s2's cut
		}
		return false
	}
	if err := s4.flushPending(ctx); err != errCrashed {
		t.Fatalf("flush: %v", err)
	}
	r.send(s4, "a", 100, 30, 1, "svc-d")
	crash(s4)

	s5 := r.start() // stored, not removed, again
	r.workload(s5, 2000, "a", "b")
	s5.crashAt = crashAtPoint("before-remove", "")
	if err := s5.flushPending(ctx); err != errCrashed {
		t.Fatalf("flush: %v", err)
	}
	crash(s5)

	r.finish("a", "b")
}

// The stored block was compacted (meta.json gone, meta.compacted.json
// left) before the restart: the marker says it is stored.
func TestReplayCrashWithCompactedBlock(t *testing.T) {
	r := newCrashRig(t)
	ctx := context.Background()
	s1 := r.start()
	r.send(s1, "t", 50, 0, 4, "svc-early")
	if err := s1.Flush(ctx); err != nil { // an earlier block, to compact with
		t.Fatal(err)
	}
	r.advance(time.Minute)
	seg := r.workload(s1, 0, "t")
	s1.crashAt = crashAtPoint("before-remove", "")
	if err := s1.flushPending(ctx); err != errCrashed {
		t.Fatalf("flush: %v", err)
	}
	walID := s1.walID
	crash(s1)

	l, err := blocks.List(ctx, r.b, "t", blocks.ListOptions{})
	if err != nil || len(l.Blocks) != 2 {
		t.Fatalf("%v blocks before compaction, want 2: %v", len(l.Blocks), err)
	}
	var inputs []*block.Meta
	for _, bi := range l.Blocks {
		inputs = append(inputs, bi.Meta)
	}
	if _, _, err := compact.Merge(ctx, r.b, inputs, compact.MergeOptions{BlockID: uuid.New()}); err != nil {
		t.Fatal(err)
	}
	for _, m := range inputs {
		if err := block.MarkCompacted(ctx, r.b, "t", m.BlockID); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := block.ReadCompactedMeta(ctx, r.b, "t", blockIDFor(walID, seg, "t")); err != nil {
		t.Fatalf("the cut's block is not compacted: %v", err)
	}
	r.finish("t")
	if n := r.logged("already stored"); n != 1 {
		t.Errorf("%d 'already stored' log lines, want 1", n)
	}
}

// A WAL written by a version without the WAL ID and the cut records is
// replayed whole, and gets an ID.
func TestReplayOldWAL(t *testing.T) {
	r := newCrashRig(t)
	w, err := wal.Open(r.dir, wal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Requests as the old server wrote them, over a few segments.
	for i := range uint32(12) {
		td := ptrace.NewTraces()
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", "old")
		sp := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
		sp.SetTraceID(testTraceID(i % 5))
		sp.SetSpanID(pcommon.SpanID{byte(i), 1})
		sp.SetName("old-op")
		payload, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Append(context.Background(), "t", payload); err != nil {
			t.Fatal(err)
		}
		r.acked[fmt.Sprintf("t/%s/%s", sp.TraceID(), sp.SpanID())]++
		if i%4 == 3 {
			if _, err := w.Cut(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	idPath := filepath.Join(r.dir, "wal-id")
	if err := os.Remove(idPath); err != nil {
		t.Fatal(err)
	}
	r.finish("t")
	if _, err := os.Stat(idPath); err != nil {
		t.Errorf("no WAL ID after opening an old WAL: %v", err)
	}
}

// The requeue of a cut fails half-way (the WAL is full): the snapshot
// takes every trace, and the copies already written must not be
// replayed next to the originals.
func TestReplayCrashAfterFailedRequeue(t *testing.T) {
	ctx := context.Background()
	// A dry run measures the WAL: the requests, then both tenants' copies
	// (the same size) and the marker.
	dry := newCrashRig(t)
	ds := dry.start()
	dry.load(ds, 0, "a", "b")
	reqBytes := ds.wal.Stats().AppendedBytes
	if err := ds.cut(false); err != nil {
		t.Fatal(err)
	}
	cutBytes := ds.wal.Stats().AppendedBytes - reqBytes
	crash(ds)
	perTenant := (cutBytes - 40) / 2 // about; the marker is 30-odd bytes

	// Room for the requests, two segment headers and one tenant's
	// copies, not for two.
	r := newCrashRig(t)
	r.walMax = int64(reqBytes + 2*8 + perTenant + perTenant/2)
	s1 := r.start()
	r.load(s1, 0, "a", "b")
	if err := s1.cut(false); err != nil {
		t.Fatal(err)
	}
	if n := r.logged("could not keep active traces"); n != 1 {
		t.Fatalf("%d failed requeues logged, want 1 (WAL limit %d, copies %d bytes)", n, r.walMax, cutBytes)
	}
	if got := s1.wal.Stats().AppendedBytes - reqBytes; got < perTenant {
		t.Fatalf("%d bytes appended by the cut: the first tenant's copies were not written", got)
	}
	s1.crashAt = crashAtPoint("before-remove", "")
	if err := s1.flushPending(ctx); err != errCrashed {
		t.Fatalf("flush: %v", err)
	}
	crash(s1)
	r.walMax = 0
	r.finish("a", "b")
	if n := r.logged("already stored"); n != 2 {
		t.Errorf("%d 'already stored' log lines, want 2", n)
	}
}

// A request can carry a field that looks like a tag: without the WAL's
// ID it is plain data, replayed and stored.
func TestReplayIgnoresForgedTags(t *testing.T) {
	r := newCrashRig(t)
	s1 := r.start()
	td := ptrace.NewTraces()
	sp := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	sp.SetTraceID(testTraceID(7))
	sp.SetSpanID(pcommon.SpanID{7, 7})
	raw, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range []byte{ctlRequeue, ctlCut} {
		forged := appendControl(nil, uuid.New(), walControl{kind: kind, cut: 1})
		if err := s1.ConsumeOTLP(context.Background(), "t", td, append(forged, raw...)); err != nil {
			t.Fatal(err)
		}
	}
	r.acked[fmt.Sprintf("t/%s/%s", sp.TraceID(), sp.SpanID())] += 2
	crash(s1)
	r.finish("t")
}

// A requeued copy concatenates a trace's pieces into one record; indexed
// again at replay, the trace's piece must encode to the same bytes (and
// size) as the original pieces, so the head holds what it held.
func TestRequeuedPiecesMatchOriginals(t *testing.T) {
	r := newCrashRig(t)
	s := r.start()
	defer crash(s)
	r.send(s, "t", 1, 0, 2, "svc-a")
	r.send(s, "t", 2, 0, 1, "svc-a")
	r.send(s, "t", 1, 10, 3, "svc-b")
	r.send(s, "t", 1, 20, 1, "svc-a")
	th := s.head.tenants["t"]
	var orig []byte
	var origBytes int64
	for _, p := range th.traces[block.TraceID(testTraceID(1))].pieces {
		orig = appendPiece(orig, p)
		origBytes += int64(pieceSize(p))
	}
	kept := map[string][]*headTrace{"t": {th.traces[block.TraceID(testTraceID(1))], th.traces[block.TraceID(testTraceID(2))]}}
	var rec []byte
	tag := appendControl(nil, s.walID, walControl{kind: ctlRequeue, cut: 3})
	rec = append(rec, tag...)
	for _, ht := range kept["t"] {
		for _, p := range ht.pieces {
			rec = appendPiece(rec, p)
		}
	}
	c, ok := parseControl(rec, s.walID)
	if !ok || c.kind != ctlRequeue || c.cut != 3 {
		t.Fatalf("tag read back as %+v %v", c, ok)
	}
	groups, err := indexRequest(rec)
	if err != nil {
		t.Fatal(err)
	}
	if len(groups) != 2 {
		t.Fatalf("%d traces in the copy, want 2", len(groups))
	}
	got := appendPiece(nil, groups[0].piece)
	if !bytes.Equal(got, orig) {
		t.Errorf("trace 1's piece from the copy encodes to %d bytes unlike the originals' %d", len(got), len(orig))
	}
	if groups[0].bytes != origBytes {
		t.Errorf("trace 1's copy counts %d bytes, the originals %d", groups[0].bytes, origBytes)
	}
	if n := len(groups[0].piece.spans); n != 6 {
		t.Errorf("trace 1's copy has %d spans, want 6", n)
	}
}
