package compact

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/parquet-go/parquet-go"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tracectl/tracectl/internal/blocks"
	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/blocks/vparquet4"
	"github.com/tracectl/tracectl/internal/otlptest"
	"github.com/tracectl/tracectl/internal/storage"
	"github.com/tracectl/tracectl/internal/storage/storagetest"
	"github.com/tracectl/tracectl/internal/testfix"
)

// later is a clock far past the fixtures' windows (and past any lease or
// retention the tests take), so old windows merge across levels.
func later() time.Time { return time.Now().Add(time.Minute) }

// rowsOf reads a block's rows as structs.
func rowsOf(t *testing.T, b *storage.Bucket, m *block.Meta) []*vparquet4.Trace {
	t.Helper()
	var out []*vparquet4.Trace
	for tr, err := range vparquet4.OpenBlock(context.Background(), b, m).Iterate(context.Background()) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, tr)
	}
	return out
}

// nestedSet is a row's per-span numbering, order-independent.
func nestedSet(tr *vparquet4.Trace) []string {
	var out []string
	for _, rs := range tr.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			for _, sp := range ss.Spans {
				out = append(out, fmt.Sprintf("%x:%d/%d/%d", sp.SpanID, sp.NestedSetLeft, sp.NestedSetRight, sp.ParentID))
			}
		}
	}
	slices.Sort(out)
	return out
}

// leaves describes every leaf column of a parquet file as Tempo locates
// them: path, physical type, repetition levels, encodings and codec.
func leaves(t *testing.T, data []byte) []string {
	t.Helper()
	f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for i, path := range f.Schema().Columns() {
		leaf, _ := f.Schema().Lookup(path...)
		cm := f.Metadata().RowGroups[0].Columns[i].MetaData
		encs := fmt.Sprint(cm.Encoding)
		out = append(out, fmt.Sprintf("%s %s opt=%v d=%d r=%d %s %s", strings.Join(path, "."), cm.Type, leaf.Node.Optional(),
			leaf.MaxDefinitionLevel, leaf.MaxRepetitionLevel, encs, cm.Codec))
	}
	return out
}

// TestCompactLikeTempo compacts the three level-0 fixture blocks and
// compares the output with the block Tempo's own compactor made of the
// same blocks: same traces, same trace-level columns, spans and nested-set
// numbering per trace, same schema; the output passes Verify, and every
// trace reads back as sent.
func TestCompactLikeTempo(t *testing.T) {
	ctx := context.Background()
	c := otlptest.LoadCorpus(t)
	b := fixtureBucket(t, "vparquet4")
	inputs := liveMetas(t, b, block.DefaultTenant)
	var jobs []JobResult
	res, err := Compact(ctx, b, block.DefaultTenant, Options{Now: later, OnJob: func(j JobResult) { jobs = append(jobs, j) }})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Jobs) != 1 || len(jobs) != 1 || len(res.Jobs[0].Job.Inputs) != 3 {
		t.Fatalf("jobs %+v, want one of the three blocks", res.Jobs)
	}
	out := res.Jobs[0].Output
	st := res.Jobs[0].Stats
	if out.CompactionLevel != 1 || out.Format != block.FormatVParquet4 {
		t.Errorf("output level %d format %s", out.CompactionLevel, out.Format)
	}
	if st.InputTraces != 41 || st.OutputTraces != 40 || st.CombinedTraces != 1 {
		t.Errorf("stats %+v: want 41 rows in, 40 out, P03 combined", st)
	}
	if st.OutputBytes > st.InputBytes {
		t.Errorf("output %d bytes > inputs' %d", st.OutputBytes, st.InputBytes)
	}
	t.Logf("bytes in %d, out %d; spans in %d, out %d", st.InputBytes, st.OutputBytes, st.InputSpans, st.OutputSpans)

	live := liveMetas(t, b, block.DefaultTenant)
	if len(live) != 1 || live[0].BlockID != out.BlockID {
		t.Fatalf("live blocks after compaction: %v", live)
	}
	for _, m := range inputs {
		if ok, _ := b.Exists(ctx, block.CompactedMetaKey(m.TenantID, m.BlockID)); !ok {
			t.Errorf("input %s not marked compacted", m.BlockID)
		}
	}
	if ok, _ := b.Exists(ctx, journalKey(block.DefaultTenant)); ok {
		t.Error("journal left behind")
	}

	// Tempo's level-2 block of the same three inputs.
	tempo := fixtureBucket(t, "vparquet4-compacted")
	var want *block.Meta
	for _, m := range liveMetas(t, tempo, block.DefaultTenant) {
		want = m
	}
	if !out.StartTime.Equal(want.StartTime) || !out.EndTime.Equal(want.EndTime) || out.TotalObjects != want.TotalObjects ||
		!block.DedicatedColumnsEqual(out.DedicatedColumns, want.DedicatedColumns) || out.ReplicationFactor != want.ReplicationFactor {
		t.Errorf("meta %s, Tempo's %s", mustJSON(out), mustJSON(want))
	}
	gotRows, wantRows := rowsOf(t, b, out), rowsOf(t, tempo, want)
	if len(gotRows) != len(wantRows) {
		t.Fatalf("%d rows, Tempo %d", len(gotRows), len(wantRows))
	}
	for i := range wantRows {
		g, w := gotRows[i], wantRows[i]
		label := otlptest.Label(w.ID().Hex())
		gs := fmt.Sprint(g.TraceIDText, g.StartTimeUnixNano, g.EndTimeUnixNano, g.DurationNano, g.RootServiceName, g.RootSpanName, g.ServiceStats, g.SpanCount())
		ws := fmt.Sprint(w.TraceIDText, w.StartTimeUnixNano, w.EndTimeUnixNano, w.DurationNano, w.RootServiceName, w.RootSpanName, w.ServiceStats, w.SpanCount())
		if gs != ws {
			t.Errorf("%s trace columns:\n got %s\nwant %s", label, gs, ws)
		}
		if gn, wn := nestedSet(g), nestedSet(w); !slices.Equal(gn, wn) {
			t.Errorf("%s nested set:\n got %v\nwant %v", label, gn, wn)
		}
	}
	gotData, _ := b.Read(ctx, block.DataKey(out.TenantID, out.BlockID))
	wantData, _ := tempo.Read(ctx, block.DataKey(want.TenantID, want.BlockID))
	if gl, wl := leaves(t, gotData), leaves(t, wantData); !slices.Equal(gl, wl) {
		t.Errorf("schema differs from Tempo's compacted block:\n got %v\nwant %v", gl, wl)
	}
	v, err := Verify(ctx, b, block.DefaultTenant, VerifyOptions{})
	if err != nil || v.Problems() != 0 || len(v.Blocks) != 1 {
		t.Errorf("verify after compaction: %v %+v", err, v)
	}
	assertQueryable(t, b, block.DefaultTenant, c)

	// Nothing left to do: a second run plans nothing.
	res2, err := Compact(ctx, b, block.DefaultTenant, Options{Now: later})
	if err != nil || len(res2.Jobs) != 0 {
		t.Errorf("second run: %v, %d jobs", err, len(res2.Jobs))
	}
}

func mustJSON(m *block.Meta) string { js, _ := m.MarshalJSON(); return string(js) }

// TestCompactLevels: blocks of one level merge first, the outputs merge at
// the next level, and a run keeps going until the window is one block.
func TestCompactLevels(t *testing.T) {
	ctx := context.Background()
	c := otlptest.LoadCorpus(t)
	b := storagetest.OpenMem(t)
	// One block per corpus line: 35 level-0 blocks, traces split across.
	for _, line := range c.Lines {
		if _, err := vparquet4.WriteBlock(ctx, b, vparquet4.WriterConfig{}, line); err != nil {
			t.Fatal(err)
		}
	}
	res, err := Compact(ctx, b, block.DefaultTenant, Options{Now: later, Plan: PlanOptions{MaxInputs: 4}})
	if err != nil {
		t.Fatal(err)
	}
	live := liveMetas(t, b, block.DefaultTenant)
	if len(live) != 1 {
		t.Fatalf("%d live blocks after %d jobs", len(live), len(res.Jobs))
	}
	for _, j := range res.Jobs {
		if len(j.Job.Inputs) < 2 || len(j.Job.Inputs) > 4 {
			t.Errorf("job with %d inputs", len(j.Job.Inputs))
		}
	}
	if live[0].CompactionLevel < 2 {
		t.Errorf("final level %d", live[0].CompactionLevel)
	}
	t.Logf("%d jobs, final level %d", len(res.Jobs), live[0].CompactionLevel)
	assertQueryable(t, b, block.DefaultTenant, c)
	if v, _ := Verify(ctx, b, block.DefaultTenant, VerifyOptions{}); v.Problems() != 0 {
		t.Errorf("verify: %+v", v)
	}
}

// crash makes a bucket behave as if the process died at the first
// operation matching: that operation and every later one fail.
type crash struct {
	match func(op, key string) bool
	dead  atomic.Bool
	hits  atomic.Int32
}

var errKilled = errors.New("killed")

func (c *crash) hook(_ context.Context, op, key string) error {
	if c.dead.Load() {
		return errKilled
	}
	if c.match(op, key) {
		c.hits.Add(1)
		c.dead.Store(true)
		return errKilled
	}
	return nil
}

// TestCrashAtEachStep kills the compactor at each step of a job (by
// failing that storage operation and every one after it, as if the process
// died), checks that every trace is still found complete and without
// repeated spans, then runs the compactor again (after the dead one's
// lease expired) and checks that it finishes the job.
func TestCrashAtEachStep(t *testing.T) {
	c := otlptest.LoadCorpus(t)
	isInput := map[string]bool{}
	for _, m := range liveMetas(t, fixtureBucket(t, "vparquet4"), block.DefaultTenant) {
		isInput[m.BlockID.String()] = true
	}
	output := func(key string) bool {
		_, id, _, ok := block.ParseBlockKey(key)
		return ok && !isInput[id.String()]
	}
	input := func(n int) func(string) bool {
		return func(key string) bool {
			_, id, _, ok := block.ParseBlockKey(key)
			if !ok || !isInput[id.String()] {
				return false
			}
			var ids []string
			for k := range isInput {
				ids = append(ids, k)
			}
			slices.Sort(ids)
			return id.String() == ids[n]
		}
	}
	steps := []struct {
		name     string
		match    func(op, key string) bool
		recovery string // what the next run must do: "finish", "undo" or ""
	}{
		{"taking the lease", func(op, key string) bool { return op == "create" }, ""},
		{"writing the journal", func(op, key string) bool { return op == "write" && strings.HasSuffix(key, journalName) }, ""},
		{"writing the output's data", func(op, key string) bool {
			return op == "write" && output(key) && strings.HasSuffix(key, block.DataName)
		}, "undo"},
		{"writing the output's bloom", func(op, key string) bool { return op == "write" && output(key) && strings.HasSuffix(key, "bloom-0") }, "undo"},
		{"before the output's meta", func(op, key string) bool {
			return op == "write" && output(key) && strings.HasSuffix(key, block.MetaName)
		}, "undo"},
		{"after the output's meta", func(op, key string) bool { return op == "stat" && strings.Contains(key, "compactor.lease.") }, "finish"},
		{"marking the first input", func(op, key string) bool { return op == "copy" && input(0)(key) }, "finish"},
		{"between copy and delete of an input's meta", func(op, key string) bool {
			return op == "delete" && input(1)(key) && strings.HasSuffix(key, block.MetaName)
		}, "finish"},
		{"marking the last input", func(op, key string) bool { return op == "copy" && input(2)(key) }, "finish"},
		{"clearing the journal", func(op, key string) bool { return op == "delete" && strings.HasSuffix(key, journalName) }, "finish"},
	}
	for _, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			ctx := context.Background()
			b := fixtureBucket(t, "vparquet4")
			cr := &crash{match: step.match}
			if step.name == "after the output's meta" {
				// The lease check after the merge: the first stat of a
				// lease once the output's meta.json is written.
				metaWritten := atomic.Bool{}
				cr.match = func(op, key string) bool {
					if op == "write" && output(key) && strings.HasSuffix(key, block.MetaName) {
						metaWritten.Store(true)
						return false
					}
					return metaWritten.Load() && (op == "list" || op == "read") && strings.Contains(key, "compactor.lease.")
				}
			}
			b.SetHook(cr.hook)
			_, err := Compact(ctx, b, block.DefaultTenant, Options{Now: later, LeaseTTL: time.Minute})
			if err == nil || cr.hits.Load() == 0 {
				t.Fatalf("the crash point was not reached: err %v", err)
			}
			b.SetHook(nil)
			assertQueryable(t, b, block.DefaultTenant, c)

			// The dead compactor's lease expires; the next run takes over.
			res, err := Compact(ctx, b, block.DefaultTenant, Options{Now: func() time.Time { return time.Now().Add(2 * time.Minute) }, LeaseTTL: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			switch rec := res.Recovered; step.recovery {
			case "finish":
				if rec == nil || !rec.Finished {
					t.Errorf("recovery %+v, want the job finished", rec)
				}
			case "undo":
				if rec == nil || !rec.Undone {
					t.Errorf("recovery %+v, want the job undone", rec)
				}
			default:
				if rec != nil {
					t.Errorf("recovery %+v, want none", rec)
				}
			}
			live := liveMetas(t, b, block.DefaultTenant)
			if len(live) != 1 {
				t.Errorf("%d live blocks after the re-run, want 1", len(live))
			}
			assertQueryable(t, b, block.DefaultTenant, c)
			if ok, _ := b.Exists(ctx, journalKey(block.DefaultTenant)); ok {
				t.Error("journal left behind")
			}
			// No half-written block is left: every directory is live or compacted.
			l, _ := blocks.List(ctx, b, block.DefaultTenant, blocks.ListOptions{IncludeCompacted: true})
			if l.Incomplete != 0 {
				t.Errorf("%d block directories without meta left", l.Incomplete)
			}
		})
	}
}

// TestLease: one holder at a time; an expired lease is taken over by
// exactly one of many contenders; the old holder learns it lost it.
func TestLease(t *testing.T) {
	ctx := context.Background()
	b := storagetest.OpenMem(t)
	now := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	a, err := AcquireLease(ctx, b, "t1", "a", time.Minute, clock)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := AcquireLease(ctx, b, "t1", "b", time.Minute, clock); !errors.Is(err, ErrLeaseHeld) || !strings.Contains(err.Error(), "a until") {
		t.Errorf("second acquire: %v", err)
	}
	// Another tenant is independent.
	if _, err := AcquireLease(ctx, b, "t2", "b", time.Minute, clock); err != nil {
		t.Errorf("other tenant: %v", err)
	}
	now = now.Add(40 * time.Second)
	if err := a.Renew(ctx); err != nil {
		t.Fatal(err)
	}
	now = now.Add(40 * time.Second) // 80s after acquiring: renewed, still held
	if _, err := AcquireLease(ctx, b, "t1", "b", time.Minute, clock); !errors.Is(err, ErrLeaseHeld) {
		t.Errorf("acquire of a renewed lease: %v", err)
	}

	// a stalls past its expiry; contenders race for the lease.
	now = now.Add(2 * time.Minute)
	var wg sync.WaitGroup
	var winners atomic.Int32
	var winner *Lease
	var mu sync.Mutex
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, err := AcquireLease(ctx, b, "t1", fmt.Sprint("c", i), time.Minute, clock)
			if err == nil {
				winners.Add(1)
				mu.Lock()
				winner = l
				mu.Unlock()
			} else if !errors.Is(err, ErrLeaseHeld) {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if winners.Load() != 1 {
		t.Fatalf("%d contenders took the expired lease, want 1", winners.Load())
	}
	if err := a.Renew(ctx); !errors.Is(err, ErrLeaseLost) {
		t.Errorf("renewing a taken-over lease: %v", err)
	}
	if err := winner.Check(ctx); err != nil {
		t.Errorf("winner's check: %v", err)
	}
	if err := winner.Release(ctx); err != nil {
		t.Fatal(err)
	}
	d, err := AcquireLease(ctx, b, "t1", "d", time.Minute, clock)
	if err != nil {
		t.Fatalf("acquire after release: %v", err)
	}
	if err := winner.Check(ctx); !errors.Is(err, ErrLeaseLost) {
		t.Errorf("released lease still checks: %v", err)
	}
	gens, _ := leaseGens(ctx, b, "t1")
	if len(gens) != 1 || gens[0] != d.gen {
		t.Errorf("lease generations left %v, want only the newest (%d)", gens, d.gen)
	}
}

// TestCompactLeaseHeld: a run finds the lease held and does nothing.
func TestCompactLeaseHeld(t *testing.T) {
	ctx := context.Background()
	b := fixtureBucket(t, "vparquet4")
	if _, err := AcquireLease(ctx, b, block.DefaultTenant, "serve", time.Hour, nil); err != nil {
		t.Fatal(err)
	}
	_, err := Compact(ctx, b, block.DefaultTenant, Options{Now: later})
	if !errors.Is(err, ErrLeaseHeld) {
		t.Fatalf("compact with the lease held: %v", err)
	}
	if n := len(liveMetas(t, b, block.DefaultTenant)); n != 3 {
		t.Errorf("%d live blocks, want the 3 untouched", n)
	}
}

// TestDryRun plans without writing.
func TestDryRun(t *testing.T) {
	ctx := context.Background()
	b := fixtureBucket(t, "vparquet4")
	before := b.Requests()
	writes := atomic.Int32{}
	b.SetHook(func(_ context.Context, op, key string) error {
		if op == "write" || op == "create" || op == "delete" || op == "copy" {
			writes.Add(1)
		}
		return nil
	})
	res, err := Compact(ctx, b, block.DefaultTenant, Options{Now: later, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Planned) != 1 || len(res.Planned[0].Inputs) != 3 || res.Planned[0].Level != 1 || res.Planned[0].Traces != 41 {
		t.Errorf("plan %+v", res.Planned)
	}
	if writes.Load() != 0 || len(res.Jobs) != 0 {
		t.Errorf("dry run wrote %d objects (%d requests)", writes.Load(), b.Requests()-before)
	}
}

// TestCompactUpdatesTenantIndex: a bucket with a tenant index gets it
// rewritten, listing the output live and the inputs compacted.
func TestCompactUpdatesTenantIndex(t *testing.T) {
	ctx := context.Background()
	b := fixtureBucket(t, "vparquet4")
	res, err := Compact(ctx, b, block.DefaultTenant, Options{Now: later})
	if err != nil {
		t.Fatal(err)
	}
	if !res.IndexUpdated {
		t.Fatal("tenant index not rewritten")
	}
	ti, err := block.ReadTenantIndex(ctx, b, block.DefaultTenant)
	if err != nil {
		t.Fatal(err)
	}
	if len(ti.Meta) != 1 || ti.Meta[0].BlockID != res.Jobs[0].Output.BlockID || len(ti.Compacted) != 3 {
		t.Errorf("index: %d live, %d compacted", len(ti.Meta), len(ti.Compacted))
	}
	// blocks list trusting the index sees the same.
	l, _ := blocks.List(ctx, b, block.DefaultTenant, blocks.ListOptions{IndexMaxAge: time.Hour})
	if !l.FromIndex || len(l.Blocks) != 1 {
		t.Errorf("listing from the index: %d blocks (from index %v)", len(l.Blocks), l.FromIndex)
	}
}

// TestRunLoop: the background loop compacts every tenant it is given and
// stops with its context.
func TestRunLoop(t *testing.T) {
	c := otlptest.LoadCorpus(t)
	b := storagetest.OpenMem(t)
	fixtureInto(t, b, "vparquet4", "alpha")
	fixtureInto(t, b, "vparquet4", "beta")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		RunLoop(ctx, b, func(ctx context.Context) ([]string, error) { return blocks.Tenants(ctx, b) },
			LoopOptions{Compaction: true, Interval: 10 * time.Millisecond, Compact: Options{Now: later}}, slog.New(slog.NewTextHandler(tlogWriter{t}, nil)))
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		la, _ := blocks.List(context.Background(), b, "alpha", blocks.ListOptions{})
		lb, _ := blocks.List(context.Background(), b, "beta", blocks.ListOptions{})
		if len(la.Blocks) == 1 && len(lb.Blocks) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("loop did not compact both tenants: %d and %d blocks", len(la.Blocks), len(lb.Blocks))
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("loop did not stop")
	}
	assertQueryable(t, b, "alpha", c)
	assertQueryable(t, b, "beta", c)
}

var _ = testfix.Path

// tlogWriter sends log lines to t.Log.
type tlogWriter struct{ t *testing.T }

func (w tlogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// TestMergeManySplitTraces merges two blocks that each hold half of the
// spans of 240 traces (every row combined, several writer batches) and
// checks every trace against what was written.
func TestMergeManySplitTraces(t *testing.T) {
	ctx := context.Background()
	c := otlptest.LoadCorpus(t)
	b := storagetest.OpenMem(t)
	want := map[block.TraceID]ptrace.Traces{}
	halves := [2]ptrace.Traces{ptrace.NewTraces(), ptrace.NewTraces()}
	n := 0
	for copyNo := range 6 {
		for hex, td := range c.ByID {
			var id block.TraceID
			copy(id[:], fmt.Sprintf("%02d%s", copyNo, hex[:14]))
			full := ptrace.NewTraces()
			i := 0
			for _, rs := range td.ResourceSpans().All() {
				for _, ss := range rs.ScopeSpans().All() {
					for _, sp := range ss.Spans().All() {
						for _, dst := range []ptrace.Traces{full, halves[i%2]} {
							drs := dst.ResourceSpans().AppendEmpty()
							rs.Resource().CopyTo(drs.Resource())
							dss := drs.ScopeSpans().AppendEmpty()
							ss.Scope().CopyTo(dss.Scope())
							nsp := dss.Spans().AppendEmpty()
							sp.CopyTo(nsp)
							nsp.SetTraceID(pcommon.TraceID(id))
						}
						i++
					}
				}
			}
			want[id] = full
			n++
		}
	}
	for _, h := range halves {
		if _, err := vparquet4.WriteBlock(ctx, b, vparquet4.WriterConfig{}, h); err != nil {
			t.Fatal(err)
		}
	}
	res, err := Compact(ctx, b, block.DefaultTenant, Options{Now: later})
	if err != nil || len(res.Jobs) != 1 {
		t.Fatalf("%v %+v", err, res)
	}
	if st := res.Jobs[0].Stats; st.OutputTraces != int64(n) || st.CombinedTraces < int64(n)*3/4 {
		t.Errorf("stats %+v for %d traces", st, n)
	}
	metas := liveMetas(t, b, block.DefaultTenant)
	for id, w := range want {
		r, err := blocks.FindTrace(ctx, b, metas, id, blocks.FindOptions{})
		if err != nil || !r.Found {
			t.Fatalf("%s: %v", id, err)
		}
		if d := otlptest.Diff(w, r.Trace); len(d) > 0 {
			t.Fatalf("%s: %v", id, d)
		}
	}
}

// TestMergeRepeatedIDInOneInput merges a block that holds some traces as
// two rows of one ID (not written by Tempo or tracectl, but readable),
// alone and with another block holding one of those rows again: every
// trace comes out whole, once, without repeated spans.
func TestMergeRepeatedIDInOneInput(t *testing.T) {
	ctx := context.Background()
	c := otlptest.LoadCorpus(t)
	b := storagetest.OpenMem(t)
	want := map[block.TraceID]ptrace.Traces{}
	parts := [3]ptrace.Traces{ptrace.NewTraces(), ptrace.NewTraces(), ptrace.NewTraces()} // full, half A, half B
	n := 0
	for copyNo := range 3 {
		for hex, td := range c.ByID {
			var id block.TraceID
			copy(id[:], fmt.Sprintf("%02d%s", copyNo, hex[:14]))
			full := ptrace.NewTraces()
			i := 0
			for _, rs := range td.ResourceSpans().All() {
				for _, ss := range rs.ScopeSpans().All() {
					for _, sp := range ss.Spans().All() {
						for _, dst := range []ptrace.Traces{full, parts[0], parts[1+i%2]} {
							drs := dst.ResourceSpans().AppendEmpty()
							rs.Resource().CopyTo(drs.Resource())
							dss := drs.ScopeSpans().AppendEmpty()
							ss.Scope().CopyTo(dss.Scope())
							nsp := dss.Spans().AppendEmpty()
							sp.CopyTo(nsp)
							nsp.SetTraceID(pcommon.TraceID(id))
						}
						i++
					}
				}
			}
			want[id] = full
			n++
		}
	}
	var metas [3]*block.Meta
	rowsByID := map[block.TraceID][][]parquet.Row{}
	for p, td := range parts {
		m, err := vparquet4.WriteBlock(ctx, b, vparquet4.WriterConfig{}, td)
		if err != nil {
			t.Fatal(err)
		}
		metas[p] = m
		r, err := vparquet4.OpenBlock(ctx, b, m).NewRowReader(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for {
			row, err := r.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			id := vparquet4.RowID(row)
			if rowsByID[id] == nil {
				rowsByID[id] = make([][]parquet.Row, 3)
			}
			rowsByID[id][p] = append(rowsByID[id][p], row.Clone())
		}
		r.Close()
	}
	// The odd block: every third trace as its two halves (two rows), the
	// others whole.
	ids := slices.SortedFunc(maps.Keys(rowsByID), block.TraceID.Compare)
	var rows []parquet.Row
	for i, id := range ids {
		if i%3 == 0 {
			rows = append(rows, rowsByID[id][1]...)
			rows = append(rows, rowsByID[id][2]...)
		} else {
			rows = append(rows, rowsByID[id][0]...)
		}
	}
	var buf bytes.Buffer
	pw := parquet.NewGenericWriter[vparquet4.Trace](&buf, vparquet4.Schema())
	if _, err := pw.WriteRows(rows); err != nil {
		t.Fatal(err)
	}
	if err := pw.Close(); err != nil {
		t.Fatal(err)
	}
	odd := *metas[0]
	odd.BlockID = uuid.New()
	odd.Size = uint64(buf.Len())
	odd.FooterSize = binary.LittleEndian.Uint32(buf.Bytes()[buf.Len()-8:])
	odd.TotalObjects = int64(len(rows))
	if err := b.Write(ctx, block.DataKey(odd.TenantID, odd.BlockID), buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	for _, inputs := range [][]*block.Meta{{&odd}, {&odd, metas[2]}} {
		m, st, err := Merge(ctx, b, inputs, MergeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if st.OutputTraces != int64(n) || m.TotalObjects != int64(n) {
			t.Errorf("%d inputs: stats %+v, meta %d traces, want %d", len(inputs), st, m.TotalObjects, n)
		}
		blk := vparquet4.OpenBlock(ctx, b, m)
		for id, w := range want {
			td, found, err := blk.FindTraceByID(ctx, id)
			if err != nil || !found {
				t.Fatalf("%d inputs: %s: found %v, %v", len(inputs), id, found, err)
			}
			if d := otlptest.Diff(w, td); len(d) > 0 {
				t.Fatalf("%d inputs: %s: %v", len(inputs), id, d)
			}
			if got, want := td.SpanCount(), distinctSpans(w); got != want {
				t.Fatalf("%d inputs: %s: %d spans, want %d", len(inputs), id, got, want)
			}
		}
	}
}
