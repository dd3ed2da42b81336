package blocks

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/storage"
	"github.com/tracectl/tracectl/internal/storage/storagetest"
)

// fakeFormat serves traces from memory, counting lookups, so FindTrace's
// pruning and combining can be tested apart from any parquet format.
type fakeFormat struct {
	traces map[uuid.UUID]map[block.TraceID]ptrace.Traces
	mu     sync.Mutex // FindTrace looks in blocks concurrently
	calls  map[uuid.UUID]int
	fail   map[uuid.UUID]error
}

func (f *fakeFormat) open(ctx context.Context, b *storage.Bucket, m *block.Meta) (TraceFinder, error) {
	return finderFunc(func(ctx context.Context, id block.TraceID) (ptrace.Traces, bool, error) {
		f.mu.Lock()
		f.calls[m.BlockID]++
		f.mu.Unlock()
		if err := f.fail[m.BlockID]; err != nil {
			return ptrace.Traces{}, false, err
		}
		td, ok := f.traces[m.BlockID][id]
		return td, ok, nil
	}), nil
}

type finderFunc func(ctx context.Context, id block.TraceID) (ptrace.Traces, bool, error)

func (f finderFunc) FindTraceByID(ctx context.Context, id block.TraceID) (ptrace.Traces, bool, error) {
	return f(ctx, id)
}

func span(td ptrace.Traces, id block.TraceID, spanID byte, kind ptrace.SpanKind, name string) {
	var rs ptrace.ResourceSpans
	if td.ResourceSpans().Len() == 0 {
		rs = td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", "svc")
		rs.ScopeSpans().AppendEmpty()
	}
	rs = td.ResourceSpans().At(0)
	sp := rs.ScopeSpans().At(0).Spans().AppendEmpty()
	sp.SetTraceID(pcommon.TraceID(id))
	sp.SetSpanID(pcommon.SpanID{spanID})
	sp.SetKind(kind)
	sp.SetName(name)
}

// writeBlockWithBloom stores a meta and bloom for ids, as a writer would.
func writeBlockWithBloom(t *testing.T, b *storage.Bucket, start, end time.Time, ids ...block.TraceID) *block.Meta {
	t.Helper()
	m := &block.Meta{Format: "fake", BlockID: uuid.New(), TenantID: block.DefaultTenant, StartTime: start, EndTime: end}
	bl := block.NewBloom(len(ids))
	for _, id := range ids {
		bl.Add(id)
	}
	m.BloomShards = uint32(bl.Shards())
	for i := 0; i < bl.Shards(); i++ {
		data, err := bl.Marshal(i)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Write(context.Background(), block.BloomKey(m.TenantID, m.BlockID, i), data); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

func TestFindTracePrunesAndCombines(t *testing.T) {
	ctx := context.Background()
	b := storagetest.OpenMem(t)
	fake := &fakeFormat{traces: map[uuid.UUID]map[block.TraceID]ptrace.Traces{}, calls: map[uuid.UUID]int{}, fail: map[uuid.UUID]error{}}
	formats["fake"] = fake.open
	defer delete(formats, "fake")

	id := block.TraceID{15: 1}
	other := block.TraceID{15: 2}
	t0 := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)

	// Block A: spans 1 (server) and 2. Block B: span 2 again and span 3,
	// plus span 1 as a CLIENT (same ID, other kind: kept). Block C: only
	// another trace. Block D: outside the time window.
	a := writeBlockWithBloom(t, b, t0, t0.Add(time.Minute), id)
	bb := writeBlockWithBloom(t, b, t0, t0.Add(time.Minute), id, other)
	c := writeBlockWithBloom(t, b, t0, t0.Add(time.Minute), other)
	d := writeBlockWithBloom(t, b, t0.Add(-48*time.Hour), t0.Add(-47*time.Hour), id)
	pa, pb := ptrace.NewTraces(), ptrace.NewTraces()
	span(pa, id, 1, ptrace.SpanKindServer, "s1")
	span(pa, id, 2, ptrace.SpanKindInternal, "s2")
	span(pb, id, 2, ptrace.SpanKindInternal, "s2")
	span(pb, id, 3, ptrace.SpanKindInternal, "s3")
	span(pb, id, 1, ptrace.SpanKindClient, "s1-client")
	fake.traces[a.BlockID] = map[block.TraceID]ptrace.Traces{id: pa}
	fake.traces[bb.BlockID] = map[block.TraceID]ptrace.Traces{id: pb}
	fake.traces[d.BlockID] = map[block.TraceID]ptrace.Traces{id: pa}

	res, err := FindTrace(ctx, b, []*block.Meta{a, bb, c, d}, id, FindOptions{Start: t0.Add(-time.Hour), End: t0.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Found || res.Trace.SpanCount() != 4 {
		t.Fatalf("found=%v spans=%d, want 4 distinct spans (1 server, 1 client, 2, 3)", res.Found, res.Trace.SpanCount())
	}
	if res.Stats.Blocks != 3 || res.Stats.BloomNegatives != 1 || res.Stats.BlocksRead != 2 || res.Stats.BlocksFound != 2 {
		t.Errorf("stats %+v, want 3 blocks in window, 1 bloom negative, 2 read, 2 found", res.Stats)
	}
	if fake.calls[c.BlockID] != 0 || fake.calls[d.BlockID] != 0 {
		t.Errorf("data read for a bloom-negative or out-of-window block: %v", fake.calls)
	}

	// Without a window the old block is consulted too.
	res, _ = FindTrace(ctx, b, []*block.Meta{a, bb, c, d}, id, FindOptions{})
	if res.Stats.Blocks != 4 || res.Stats.BlocksFound != 3 {
		t.Errorf("no window: %+v", res.Stats)
	}

	// Not found anywhere.
	res, err = FindTrace(ctx, b, []*block.Meta{a, bb, c}, block.TraceID{15: 9}, FindOptions{})
	if err != nil || res.Found || res.Trace.ResourceSpans().Len() != 0 {
		t.Errorf("missing trace: found=%v err=%v", res.Found, err)
	}

	// One damaged block: the others still answer, the problem is reported.
	fake.fail[a.BlockID] = errors.New("boom")
	res, err = FindTrace(ctx, b, []*block.Meta{a, bb}, id, FindOptions{})
	if err != nil || !res.Found || len(res.Problems) != 1 || res.Problems[0].BlockID != a.BlockID.String() {
		t.Fatalf("one failing block: err=%v found=%v problems=%v", err, res.Found, res.Problems)
	}
	// Every candidate damaged: an error.
	if _, err := FindTrace(ctx, b, []*block.Meta{a}, id, FindOptions{}); err == nil {
		t.Error("all blocks failing gave no error")
	}
	// Missing bloom shard: a problem naming the object.
	if err := b.Delete(ctx, block.BloomKey(bb.TenantID, bb.BlockID, 0)); err != nil {
		t.Fatal(err)
	}
	res, err = FindTrace(ctx, b, []*block.Meta{bb, c}, other, FindOptions{})
	if err != nil || len(res.Problems) != 1 || res.Problems[0].Object != "bloom-0" {
		t.Errorf("missing bloom: err=%v problems=%v", err, res.Problems)
	}
}

func TestCombineDoesNotModifyParts(t *testing.T) {
	id := block.TraceID{1}
	p := ptrace.NewTraces()
	span(p, id, 1, ptrace.SpanKindServer, "a")
	span(p, id, 1, ptrace.SpanKindServer, "a-dup")
	out := Combine(p, p)
	if out.SpanCount() != 1 || p.SpanCount() != 2 {
		t.Errorf("combined %d spans (want 1), part now has %d (want 2)", out.SpanCount(), p.SpanCount())
	}
}
