package server

import (
	"context"
	"sync"
	"testing"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/otlptest"
	"github.com/tracectl/tracectl/internal/wal"
)

// TestForEachHeadTrace: every unflushed trace is visited once per call with
// all its pieces, from the head and from snapshots waiting to be stored,
// per tenant; the block callback fires before a trace leaves the head, so
// a trace is always in one of the two places.
func TestForEachHeadTrace(t *testing.T) {
	c := otlptest.LoadCorpus(t)
	b := open(t, "mem://")
	var mu sync.Mutex
	var flushed []*block.Meta
	var s *Server
	s = newServer(t, Config{Bucket: b, WALDir: t.TempDir(), OnBlockFlushed: func(tenant string, m *block.Meta) {
		// The traces are still visible in the head at this moment.
		n := 0
		s.ForEachHeadTrace(tenant, func(block.TraceID, []ptrace.Traces) bool { n++; return true })
		mu.Lock()
		defer mu.Unlock()
		if n != len(c.ByID) {
			t.Errorf("in the flush callback the head shows %d traces, want %d", n, len(c.ByID))
		}
		flushed = append(flushed, m)
	}})
	consumeCorpus(t, s, "team-a", c)

	visit := func(tenant string) map[string]ptrace.Traces {
		got := map[string]ptrace.Traces{}
		s.ForEachHeadTrace(tenant, func(id block.TraceID, parts []ptrace.Traces) bool {
			if _, dup := got[id.Hex()]; dup {
				t.Errorf("trace %s visited twice", id.Hex())
			}
			got[id.Hex()] = otlptest.Merge(parts...)
			return true
		})
		return got
	}
	check := func(when string) {
		got := visit("team-a")
		if len(got) != len(c.ByID) {
			t.Fatalf("%s: %d traces visited, want %d", when, len(got), len(c.ByID))
		}
		for id, want := range c.ByID {
			otlptest.AssertEqual(t, want, got[id], otlptest.MaxDiffs(3))
		}
		if n := len(visit("team-b")); n != 0 {
			t.Errorf("%s: another tenant sees %d traces", when, n)
		}
	}
	check("in the head")

	// Stopping early stops.
	n := 0
	s.ForEachHeadTrace("team-a", func(block.TraceID, []ptrace.Traces) bool { n++; return n < 3 })
	if n != 3 {
		t.Errorf("visited %d traces after fn returned false at the 3rd", n)
	}

	// Cut into a snapshot that is not stored yet: still visible.
	if err := s.cut(true); err != nil {
		t.Fatal(err)
	}
	check("in a snapshot waiting for storage")

	// Changing what ForEachHeadTrace gave does not change the head.
	s.ForEachHeadTrace("team-a", func(_ block.TraceID, parts []ptrace.Traces) bool {
		for _, p := range parts {
			p.ResourceSpans().RemoveIf(func(ptrace.ResourceSpans) bool { return true })
		}
		return true
	})
	check("after a caller changed its copies")

	if err := s.flushPending(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(flushed) != 1 || flushed[0].TenantID != "team-a" || int(flushed[0].TotalObjects) != len(c.ByID) {
		t.Fatalf("OnBlockFlushed got %v", flushed)
	}
	if n := len(visit("team-a")); n != 0 {
		t.Errorf("%d traces still in the head after the block was stored", n)
	}
	checkBucket(t, b, "team-a", c.ByID)
}

// TestConsumeOTLPKeepsRawBytes: the receiver's protobuf goes to the WAL
// as is, and replaying it restores the same spans.
func TestConsumeOTLPKeepsRawBytes(t *testing.T) {
	c := otlptest.LoadCorpus(t)
	b := open(t, "mem://")
	dir := t.TempDir()
	s := newServer(t, Config{Bucket: b, WALDir: dir})
	var raws [][]byte
	for _, td := range c.Lines {
		raw, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
		if err != nil {
			t.Fatal(err)
		}
		req := ptraceotlp.NewExportRequest()
		if err := req.UnmarshalProto(raw); err != nil {
			t.Fatal(err)
		}
		if err := s.ConsumeOTLP(context.Background(), "t", req.Traces(), raw); err != nil {
			t.Fatal(err)
		}
		raws = append(raws, raw)
	}
	s.wal.Close() // crash: nothing flushed

	var got [][]byte
	w, err := wal.Open(dir, wal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Replay(func(_ string, payload []byte, _ wal.Position) error {
		got = append(got, append([]byte(nil), payload...))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if len(got) != len(raws) {
		t.Fatalf("%d WAL records, want %d", len(got), len(raws))
	}
	for i := range raws {
		if string(got[i]) != string(raws[i]) {
			t.Fatalf("WAL record %d is not the receiver's bytes", i)
		}
	}
	s2 := newServer(t, Config{Bucket: b, WALDir: dir})
	if err := s2.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	checkBucket(t, b, "t", c.ByID)
}
