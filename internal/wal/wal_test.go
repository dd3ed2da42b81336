package wal

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

type rec struct {
	tenant  string
	payload []byte
	pos     Position
}

func openT(t testing.TB, dir string, opts Options) *WAL {
	t.Helper()
	w, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

func replayAll(t testing.TB, w *WAL) ([]rec, ReplayStats) {
	t.Helper()
	var got []rec
	st, err := w.Replay(func(tenant string, payload []byte, pos Position) error {
		got = append(got, rec{tenant, payload, pos})
		return nil
	})
	if err != nil {
		t.Fatalf("Replay: %v", err)
	}
	if st.Records != len(got) {
		t.Fatalf("ReplayStats.Records = %d, fn saw %d", st.Records, len(got))
	}
	return got, st
}

// payloadFor returns n bytes that depend on seed, so a record can be checked
// byte for byte.
func payloadFor(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	p := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		binary.LittleEndian.PutUint64(p[i:], r.Uint64())
	}
	for i := n &^ 7; i < n; i++ {
		p[i] = byte(r.Uint32())
	}
	return p
}

func appendT(t testing.TB, w *WAL, tenant string, payload []byte) Position {
	t.Helper()
	pos, err := w.Append(context.Background(), tenant, payload)
	if err != nil {
		t.Fatalf("Append(%q, %d bytes): %v", tenant, len(payload), err)
	}
	return pos
}

func sameRecords(t testing.TB, got, want []rec) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("replayed %d records, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.tenant != w.tenant || !bytes.Equal(g.payload, w.payload) || g.pos != w.pos {
			t.Fatalf("record %d: got tenant %q, %d bytes at %v; want tenant %q, %d bytes at %v (payload equal: %v)",
				i, g.tenant, len(g.payload), g.pos, w.tenant, len(w.payload), w.pos, bytes.Equal(g.payload, w.payload))
		}
	}
}

func segmentFiles(t testing.TB, dir string) []uint64 {
	t.Helper()
	seqs, err := listSegments(dir)
	if err != nil {
		t.Fatal(err)
	}
	return seqs
}

func segPath(dir string, seq uint64) string { return filepath.Join(dir, segmentName(seq)) }

var policies = []SyncPolicy{SyncAlways, SyncGroup, SyncNone}

func TestRoundTripAcrossRotation(t *testing.T) {
	for _, policy := range policies {
		t.Run(policy.String(), func(t *testing.T) {
			dir := t.TempDir()
			opts := Options{Sync: policy, SegmentBytes: 64 << 10, GroupDelay: time.Millisecond}
			w := openT(t, dir, opts)
			var want []rec
			add := func(tenant string, payload []byte) {
				pos := appendT(t, w, tenant, payload)
				want = append(want, rec{tenant, payload, pos})
			}
			tenants := []string{"single-tenant", "team-a", "team-b", ""}
			for i := range 300 {
				add(tenants[i%len(tenants)], payloadFor(uint64(i), i*7%3000))
			}
			add("team-a", nil)
			add("team-b", []byte{})
			add("big", payloadFor(1000, 3<<20+17)) // larger than a segment: a segment of its own
			add("team-a", payloadFor(1001, 10))
			add("bigger", payloadFor(1002, 5<<20))
			add("team-a", nil)

			for i := 1; i < len(want); i++ {
				a, b := want[i-1].pos, want[i].pos
				if b.Segment < a.Segment || (b.Segment == a.Segment && b.Offset <= a.Offset) {
					t.Fatalf("positions not increasing: %v then %v", a, b)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if n := len(segmentFiles(t, dir)); n < 5 {
				t.Fatalf("%d segments after %d appends of 64 KiB segments; rotation did not happen", n, len(want))
			}

			w2 := openT(t, dir, opts)
			got, st := replayAll(t, w2)
			for i := range want {
				if want[i].payload == nil {
					want[i].payload = []byte{}
				}
			}
			sameRecords(t, got, want)
			if len(st.Damage) != 0 || st.SkippedBytes != 0 || st.TruncatedBytes != 0 {
				t.Fatalf("clean WAL reported damage: %+v", st)
			}
			// Appends after reopening go after everything replayed.
			pos := appendT(t, w2, "after", []byte("x"))
			last := want[len(want)-1].pos
			if pos.Segment <= last.Segment {
				t.Fatalf("append after reopen went to segment %d, not after the replayed segment %d", pos.Segment, last.Segment)
			}
		})
	}
}

func TestConcurrentAppendsReplayExactlyOnce(t *testing.T) {
	for _, policy := range policies {
		t.Run(policy.String(), func(t *testing.T) {
			dir := t.TempDir()
			opts := Options{Sync: policy, SegmentBytes: 32 << 10}
			w := openT(t, dir, opts)
			const writers, each = 16, 60
			var wg sync.WaitGroup
			errs := make(chan error, writers)
			for g := range writers {
				wg.Go(func() {
					var last Position
					for i := range each {
						id := uint64(g*each + i)
						p := payloadFor(id, 100+int(id%900))
						binary.LittleEndian.PutUint64(p, id)
						pos, err := w.Append(context.Background(), fmt.Sprint("t", g), p)
						if err != nil {
							errs <- err
							return
						}
						if i > 0 && !(pos.Segment > last.Segment || pos.Segment == last.Segment && pos.Offset > last.Offset) {
							errs <- fmt.Errorf("writer %d: position %v after %v", g, pos, last)
							return
						}
						last = pos
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			st := w.Stats()
			if st.Appends != writers*each || st.AppendLatency.Count != writers*each {
				t.Fatalf("stats count %d appends, %d latencies; want %d", st.Appends, st.AppendLatency.Count, writers*each)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			got, _ := replayAll(t, openT(t, dir, opts))
			seen := map[uint64]bool{}
			for _, r := range got {
				id := binary.LittleEndian.Uint64(r.payload)
				want := payloadFor(id, 100+int(id%900))
				binary.LittleEndian.PutUint64(want, id)
				if seen[id] || !bytes.Equal(r.payload, want) || r.tenant != fmt.Sprint("t", int(id)/each) {
					t.Fatalf("record %d replayed twice or damaged (tenant %q)", id, r.tenant)
				}
				seen[id] = true
			}
			if len(seen) != writers*each {
				t.Fatalf("replayed %d distinct records, want %d", len(seen), writers*each)
			}
		})
	}
}

// writeLog appends n records of sizes from size(i) with SyncAlways, closes,
// and returns what was written.
func writeLog(t *testing.T, dir string, opts Options, n int, size func(i int) int) []rec {
	t.Helper()
	w := openT(t, dir, opts)
	var want []rec
	for i := range n {
		p := payloadFor(uint64(i), size(i))
		tenant := fmt.Sprint("tenant-", i%3)
		want = append(want, rec{tenant, p, appendT(t, w, tenant, p)})
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return want
}

func copyDir(t testing.TB, from, to string) {
	t.Helper()
	entries, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), segmentSuffix) {
			continue
		}
		data, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func newLogger() (*slog.Logger, *logBuffer) {
	lb := &logBuffer{}
	return slog.New(slog.NewTextHandler(lb, nil)), lb
}

func TestTornFinalRecord(t *testing.T) {
	cases := []struct {
		name     string
		lastSize int
		sample   int // 0: every offset
	}{
		{"small last record every offset", 40, 0},
		{"large last record sampled offsets", 200 << 10, 48},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := t.TempDir()
			const n = 25
			opts := Options{Sync: SyncAlways, SegmentBytes: 16 << 10}
			want := writeLog(t, src, opts, n, func(i int) int {
				if i == n-1 {
					return tc.lastSize
				}
				return 500 + i*37
			})
			last := want[n-1].pos
			path := segPath(src, last.Segment)
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			end := fi.Size()
			if last.Offset+frameSize(want[n-1].tenant, want[n-1].payload) != end {
				t.Fatalf("last record %v of %d bytes does not end the segment (%d bytes)", last, len(want[n-1].payload), end)
			}

			var cuts []int64
			for c := last.Offset; c < end; c++ {
				cuts = append(cuts, c)
			}
			if tc.sample > 0 {
				r := rand.New(rand.NewPCG(1, 2))
				sampled := append([]int64{}, cuts[:tc.sample/3]...)        // inside the frame header and body prefix
				sampled = append(sampled, cuts[len(cuts)-tc.sample/3:]...) // the last bytes
				for range tc.sample / 3 {
					sampled = append(sampled, cuts[r.IntN(len(cuts))])
				}
				cuts = sampled
			}
			for _, cut := range cuts {
				dir := t.TempDir()
				copyDir(t, src, dir)
				if err := os.Truncate(segPath(dir, last.Segment), cut); err != nil {
					t.Fatal(err)
				}
				logger, logs := newLogger()
				opts := opts
				opts.Logger = logger
				w, err := Open(dir, opts)
				if err != nil {
					t.Fatalf("cut at %d: Open: %v", cut, err)
				}
				got, st := replayAll(t, w)
				sameRecords(t, got, want[:n-1])
				if torn := cut - last.Offset; st.TruncatedBytes != torn {
					t.Fatalf("cut at %d: TruncatedBytes = %d, want %d", cut, st.TruncatedBytes, torn)
				}
				if cut > last.Offset && !strings.Contains(logs.String(), "torn tail") {
					t.Fatalf("cut at %d: no warning logged; log: %s", cut, logs.String())
				}
				if fi, _ := os.Stat(segPath(dir, last.Segment)); fi.Size() != last.Offset {
					t.Fatalf("cut at %d: segment is %d bytes after Open, want it truncated to %d", cut, fi.Size(), last.Offset)
				}
				extra := rec{"after-crash", []byte(fmt.Sprint("new record after cut ", cut)), Position{}}
				extra.pos = appendT(t, w, extra.tenant, extra.payload)
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
				w2, err := Open(dir, opts)
				if err != nil {
					t.Fatal(err)
				}
				got, st = replayAll(t, w2)
				w2.Close()
				sameRecords(t, got, append(slices.Clone(want[:n-1]), extra))
				if st.TruncatedBytes != 0 || len(st.Damage) != 0 {
					t.Fatalf("cut at %d: second open still reports damage %+v", cut, st.Damage)
				}
			}
		})
	}
}

func TestZeroFilledTailAndTornCreation(t *testing.T) {
	src := t.TempDir()
	opts := Options{Sync: SyncAlways}
	want := writeLog(t, src, opts, 10, func(i int) int { return 100 * i })
	lastSeq := want[len(want)-1].pos.Segment

	t.Run("zeros after the last record", func(t *testing.T) {
		dir := t.TempDir()
		copyDir(t, src, dir)
		f, err := os.OpenFile(segPath(dir, lastSeq), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.Write(make([]byte, 4096))
		f.Close()
		got, st := replayAll(t, openT(t, dir, opts))
		sameRecords(t, got, want)
		if st.TruncatedBytes != 4096 {
			t.Fatalf("TruncatedBytes = %d, want 4096", st.TruncatedBytes)
		}
	})
	for name, content := range map[string][]byte{
		"empty":          {},
		"partial header": segmentHeader()[:5],
		"zeros":          make([]byte, 512),
	} {
		t.Run("newest segment "+name, func(t *testing.T) {
			dir := t.TempDir()
			copyDir(t, src, dir)
			os.WriteFile(segPath(dir, lastSeq+5), content, 0o644)
			w := openT(t, dir, opts)
			got, st := replayAll(t, w)
			sameRecords(t, got, want)
			if len(st.Damage) != 0 {
				t.Fatalf("damage reported for a torn creation: %+v", st.Damage)
			}
			if _, err := os.Stat(segPath(dir, lastSeq+5)); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("the torn new segment was not removed: %v", err)
			}
			if pos := appendT(t, w, "x", nil); pos.Segment <= lastSeq+5 {
				t.Fatalf("append went to segment %d; sequence numbers must never be reused (> %d)", pos.Segment, lastSeq+5)
			}
		})
	}
}

func TestCorruptionInOlderSegment(t *testing.T) {
	src := t.TempDir()
	opts := Options{Sync: SyncAlways, SegmentBytes: 8 << 10}
	want := writeLog(t, src, opts, 60, func(i int) int { return 300 + i%7*100 })
	bySeg := map[uint64][]int{}
	for i, r := range want {
		bySeg[r.pos.Segment] = append(bySeg[r.pos.Segment], i)
	}
	seqs := segmentFiles(t, src)
	if len(seqs) < 4 {
		t.Fatalf("want at least 4 segments, got %d", len(seqs))
	}
	target := seqs[1]
	idx := bySeg[target]
	victim := idx[len(idx)/2] // a record in the middle of an older segment

	for _, where := range []struct {
		name string
		off  int64 // from the record's start
	}{
		{"payload byte", frameHeaderSize + 20},
		{"length field", 1},
		{"checksum", 5},
	} {
		t.Run(where.name, func(t *testing.T) {
			dir := t.TempDir()
			copyDir(t, src, dir)
			path := segPath(dir, target)
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			at := want[victim].pos.Offset + where.off
			data[at] ^= 0x40
			os.WriteFile(path, data, 0o644)

			logger, logs := newLogger()
			o := opts
			o.Logger = logger
			got, st := replayAll(t, openT(t, dir, o))
			var expect []rec
			for i, r := range want {
				if r.pos.Segment != target || i < victim {
					expect = append(expect, r)
				}
			}
			sameRecords(t, got, expect)
			skipped := int64(len(data)) - want[victim].pos.Offset
			if st.SkippedBytes != skipped || len(st.Damage) != 1 || st.Damage[0].Segment != target ||
				st.Damage[0].Offset != want[victim].pos.Offset || st.Damage[0].Torn {
				t.Fatalf("stats %+v; want %d bytes skipped in segment %d at %d", st, skipped, target, want[victim].pos.Offset)
			}
			if !strings.Contains(logs.String(), "skipping the damaged rest") {
				t.Fatalf("no warning logged: %s", logs.String())
			}
			// The damaged segment is left as it was (not truncated): it is
			// removed like any other once its data is in a block.
			if fi, _ := os.Stat(path); fi.Size() != int64(len(data)) {
				t.Fatalf("damaged older segment changed size to %d", fi.Size())
			}
		})
	}

	t.Run("bad header", func(t *testing.T) {
		dir := t.TempDir()
		copyDir(t, src, dir)
		path := segPath(dir, target)
		data, _ := os.ReadFile(path)
		data[0] = 'X'
		os.WriteFile(path, data, 0o644)
		got, st := replayAll(t, openT(t, dir, opts))
		if len(got) != len(want)-len(idx) || st.SkippedBytes != int64(len(data)) {
			t.Fatalf("replayed %d records, skipped %d bytes; want %d records, %d bytes skipped", len(got), st.SkippedBytes, len(want)-len(idx), len(data))
		}
	})

	t.Run("newer format version refuses to open", func(t *testing.T) {
		dir := t.TempDir()
		copyDir(t, src, dir)
		path := segPath(dir, seqs[0])
		data, _ := os.ReadFile(path)
		data[6] = formatVersion + 1
		os.WriteFile(path, data, 0o644)
		if _, err := Open(dir, opts); err == nil || !strings.Contains(err.Error(), "format version") {
			t.Fatalf("Open of a segment in format version %d: err = %v, want a version error", formatVersion+1, err)
		}
	})
}

func TestReplayStopsOnCallbackError(t *testing.T) {
	dir := t.TempDir()
	writeLog(t, dir, Options{Sync: SyncNone}, 10, func(int) int { return 10 })
	w := openT(t, dir, Options{})
	stop := errors.New("stop here")
	calls := 0
	_, err := w.Replay(func(string, []byte, Position) error {
		calls++
		if calls == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || calls != 3 {
		t.Fatalf("Replay: err %v after %d calls; want the callback's error after 3", err, calls)
	}
}

func TestGroupCommitSharesFsyncs(t *testing.T) {
	w := openT(t, t.TempDir(), Options{Sync: SyncGroup})
	const writers, each = 16, 25
	var wg sync.WaitGroup
	done := make(chan struct{})
	for g := range writers {
		wg.Go(func() {
			for i := range each {
				appendT(t, w, "t", payloadFor(uint64(g*each+i), 1024))
			}
		})
	}
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("concurrent group-commit appends did not complete in 60s")
	}
	st := w.Stats()
	if st.Appends != writers*each {
		t.Fatalf("Appends = %d, want %d", st.Appends, writers*each)
	}
	if st.Syncs == 0 || st.Syncs >= st.Appends {
		t.Fatalf("%d fsyncs for %d appends: group commit does not share fsyncs", st.Syncs, st.Appends)
	}
	if st.SyncedRecords != st.Appends || st.SyncDuration.Count != st.Syncs {
		t.Fatalf("stats inconsistent: %+v", st)
	}
	t.Logf("%d appends, %d fsyncs (%.1f records each); append latency p50 %.2fms p99 %.2fms; fsync p50 %.2fms",
		st.Appends, st.Syncs, float64(st.SyncedRecords)/float64(st.Syncs),
		st.AppendLatency.Quantile(0.5)*1e3, st.AppendLatency.Quantile(0.99)*1e3, st.SyncDuration.Quantile(0.5)*1e3)
}

func TestGroupCommitFlushesOnBytesAndDelay(t *testing.T) {
	t.Run("bytes", func(t *testing.T) {
		// With an hour's delay, only the byte limit can release appenders.
		w := openT(t, t.TempDir(), Options{Sync: SyncGroup, GroupDelay: time.Hour, GroupBytes: 4096})
		// The first append after a quiet spell is synced at once...
		appendT(t, w, "t", []byte("first"))
		// ...the next ones wait for the group to fill, or an hour.
		first := make(chan error, 1)
		go func() {
			_, err := w.Append(context.Background(), "t", make([]byte, 1000))
			first <- err
		}()
		select {
		case err := <-first:
			t.Fatalf("a 1000-byte append returned (%v) before the group reached 4096 bytes or an hour passed", err)
		case <-time.After(100 * time.Millisecond):
		}
		appendT(t, w, "t", make([]byte, 4096))
		select {
		case err := <-first:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the first append was not released by the fsync the full group triggered")
		}
		if st := w.Stats(); st.Syncs != 2 || st.SyncedRecords != 3 {
			t.Fatalf("%d fsyncs for %d records; want the first alone, then two records in one fsync", st.Syncs, st.SyncedRecords)
		}
	})
	t.Run("delay", func(t *testing.T) {
		w := openT(t, t.TempDir(), Options{Sync: SyncGroup, GroupDelay: 20 * time.Millisecond, GroupBytes: 1 << 30})
		for range 5 {
			appendT(t, w, "t", []byte("lonely")) // completes only because of the delay bound
		}
		st := w.Stats()
		if st.Syncs != 5 {
			t.Fatalf("%d fsyncs for 5 sequential appends, want 5", st.Syncs)
		}
		t.Logf("sequential append latency p50 %.1fms (delay bound 20ms)", st.AppendLatency.Quantile(0.5)*1e3)
	})
}

// With a tiny group, appenders outrun the flusher and must wait for earlier
// batches (the pending-memory bound) without deadlocking or losing records.
func TestPendingBoundMakesProgress(t *testing.T) {
	dir := t.TempDir()
	opts := Options{Sync: SyncGroup, GroupBytes: 4096, GroupDelay: time.Hour}
	w := openT(t, dir, opts)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 20 {
				appendT(t, w, "t", payloadFor(uint64(g*100+i), 4100+i*500)) // each alone fills a group: never waits for the hour
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("appenders stuck behind the pending-batch bound")
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got, _ := replayAll(t, openT(t, dir, opts)); len(got) != 160 {
		t.Fatalf("replayed %d records, want 160", len(got))
	}
}

func TestAppendContextCancelled(t *testing.T) {
	w := openT(t, t.TempDir(), Options{Sync: SyncGroup, GroupDelay: time.Hour})
	appendT(t, w, "t", []byte("synced at once; the next waits an hour"))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := w.Append(ctx, "t", []byte("x")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Append with an expiring context: %v, want DeadlineExceeded", err)
	}
	cancelled, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if _, err := w.Append(cancelled, "t", []byte("y")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Append with a cancelled context: %v", err)
	}
	if st := w.Stats(); st.Appends != 2 {
		t.Fatalf("Appends = %d, want 2; an already cancelled Append must write nothing", st.Appends)
	}
}

func TestFullAndRemove(t *testing.T) {
	dir := t.TempDir()
	opts := Options{Sync: SyncGroup, GroupDelay: time.Millisecond, SegmentBytes: 16 << 10, MaxBytes: 64 << 10}
	w := openT(t, dir, opts)
	var accepted []rec
	var fullErr error
	for i := range 1000 {
		p := payloadFor(uint64(i), 1000)
		pos, err := w.Append(context.Background(), "t", p)
		if err != nil {
			fullErr = err
			break
		}
		accepted = append(accepted, rec{"t", p, pos})
	}
	if !errors.Is(fullErr, ErrFull) {
		t.Fatalf("appending past MaxBytes: %v, want ErrFull", fullErr)
	}
	if !strings.Contains(fullErr.Error(), dir) || !strings.Contains(fullErr.Error(), "retry") {
		t.Fatalf("ErrFull message does not say where and what to do: %v", fullErr)
	}
	st := w.Stats()
	if st.Bytes > opts.MaxBytes || st.FullRejections != 1 || st.Bytes < opts.MaxBytes-2048 {
		t.Fatalf("when full: %d bytes of %d, %d rejections", st.Bytes, opts.MaxBytes, st.FullRejections)
	}
	// Full stays full, promptly, and nothing is dropped.
	start := time.Now()
	for range 10 {
		if _, err := w.Append(context.Background(), "t", make([]byte, 1000)); !errors.Is(err, ErrFull) {
			t.Fatalf("append while full: %v", err)
		}
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("appends to a full WAL blocked")
	}

	if err := w.Remove(st.OpenSegment); err == nil {
		t.Fatal("Remove of the open segment succeeded")
	}
	sealed, err := w.Cut()
	if err != nil {
		t.Fatal(err)
	}
	if sealed != accepted[len(accepted)-1].pos.Segment {
		t.Fatalf("Cut sealed %d; the last record is in %d", sealed, accepted[len(accepted)-1].pos.Segment)
	}
	// Still full (Cut adds a segment header), until Remove.
	if err := w.Remove(sealed); err != nil {
		t.Fatal(err)
	}
	if seqs := segmentFiles(t, dir); len(seqs) != 1 || seqs[0] != sealed+1 {
		t.Fatalf("segments after Remove(%d): %v, want only %d", sealed, seqs, sealed+1)
	}
	st = w.Stats()
	if st.Bytes != headerSize || st.Segments != 1 {
		t.Fatalf("after Remove: %d bytes in %d segments, want one empty segment", st.Bytes, st.Segments)
	}
	var later []rec
	for i := range 20 {
		p := payloadFor(uint64(5000+i), 1000)
		later = append(later, rec{"t", p, appendT(t, w, "t", p)})
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got, _ := replayAll(t, openT(t, dir, opts))
	sameRecords(t, got, later)
}

func TestTooLarge(t *testing.T) {
	w := openT(t, t.TempDir(), Options{MaxRecordBytes: 1000, MaxBytes: 1 << 20})
	for _, tc := range []struct {
		tenant  string
		payload int
	}{
		{"t", 1001},
		{strings.Repeat("x", MaxTenantBytes+1), 1},
	} {
		if _, err := w.Append(context.Background(), tc.tenant, make([]byte, tc.payload)); !errors.Is(err, ErrTooLarge) || errors.Is(err, ErrFull) {
			t.Fatalf("Append(%d-byte tenant, %d bytes): %v, want ErrTooLarge", len(tc.tenant), tc.payload, err)
		}
	}
	w2 := openT(t, t.TempDir(), Options{MaxBytes: 4096})
	if _, err := w2.Append(context.Background(), "t", make([]byte, 5000)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("record larger than MaxBytes: %v, want ErrTooLarge (it can never fit)", err)
	}
	if st := w.Stats(); st.Appends != 0 {
		t.Fatal("a refused record was counted")
	}
}

func TestCutAndRemove(t *testing.T) {
	dir := t.TempDir()
	for _, policy := range policies {
		t.Run(policy.String(), func(t *testing.T) {
			dir := filepath.Join(dir, policy.String())
			opts := Options{Sync: policy, GroupDelay: time.Millisecond}
			w := openT(t, dir, opts)
			if s, err := w.Cut(); err != nil || s != 0 {
				t.Fatalf("Cut of a new WAL = %d, %v; want 0", s, err)
			}
			p1 := appendT(t, w, "a", []byte("one"))
			s1, err := w.Cut()
			if err != nil || s1 != p1.Segment {
				t.Fatalf("Cut = %d, %v; want %d", s1, err, p1.Segment)
			}
			if s, _ := w.Cut(); s != s1 {
				t.Fatalf("Cut with nothing appended = %d; want %d again", s, s1)
			}
			p2 := appendT(t, w, "a", []byte("two"))
			if p2.Segment <= s1 {
				t.Fatalf("append after Cut went to segment %d, not after %d", p2.Segment, s1)
			}
			if err := w.Remove(s1); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(segPath(dir, s1)); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("segment %d still there after Remove: %v", s1, err)
			}
			if err := w.Remove(s1); err != nil {
				t.Fatalf("Remove again: %v", err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			got, _ := replayAll(t, openT(t, dir, opts))
			sameRecords(t, got, []rec{{"a", []byte("two"), p2}})
		})
	}
}

// Remove right after a size rotation, before the flusher has written it,
// must wait for the rotation rather than delete a segment still being
// written.
func TestRemoveDuringPendingRotation(t *testing.T) {
	dir := t.TempDir()
	opts := Options{Sync: SyncGroup, GroupDelay: time.Hour, GroupBytes: 1 << 30, SegmentBytes: 1024}
	w := openT(t, dir, opts)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { w.Append(ctx, "t", make([]byte, 900)) })
	wg.Go(func() {
		time.Sleep(20 * time.Millisecond)
		w.Append(ctx, "t", make([]byte, 900)) // rotates: segment 1 sealed in memory only
	})
	time.Sleep(100 * time.Millisecond)
	if err := w.Remove(1); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	cancel()
	if _, err := os.Stat(segPath(dir, 1)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("segment 1 after Remove: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got, _ := replayAll(t, openT(t, dir, opts))
	if len(got) != 1 || got[0].pos.Segment != 2 {
		t.Fatalf("replayed %+v; want the one record of segment 2", got)
	}
}

func TestCloseReleasesPendingAppends(t *testing.T) {
	dir := t.TempDir()
	w, err := Open(dir, Options{Sync: SyncGroup, GroupDelay: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Go(func() {
			_, err := w.Append(context.Background(), "t", []byte{byte(i)})
			errs <- err
		})
	}
	time.Sleep(50 * time.Millisecond)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil && !errors.Is(err, ErrClosed) {
			t.Fatal(err)
		}
	}
	if _, err := w.Append(context.Background(), "t", nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close: %v", err)
	}
	if _, err := w.Cut(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Cut after Close: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	w2 := openT(t, dir, Options{})
	got, _ := replayAll(t, w2)
	if acked := int(w.Stats().AppendLatency.Count); len(got) < acked {
		t.Fatalf("replayed %d records; %d appends were acknowledged", len(got), acked)
	}
}

func TestDirectoryLock(t *testing.T) {
	dir := t.TempDir()
	w := openT(t, dir, Options{})
	if w2, err := Open(dir, Options{}); !errors.Is(err, errLocked) {
		if w2 != nil {
			w2.Close()
		}
		t.Skipf("no advisory lock on this platform or file system: %v", err)
	}
	w.Close()
	w3, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	w3.Close()
}

func TestOptionsAndPolicyParsing(t *testing.T) {
	for in, want := range map[string]SyncPolicy{"group": SyncGroup, "": SyncGroup, "Always": SyncAlways, "none": SyncNone} {
		if got, err := ParseSyncPolicy(in); err != nil || got != want {
			t.Fatalf("ParseSyncPolicy(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParseSyncPolicy("sometimes"); err == nil {
		t.Fatal("ParseSyncPolicy accepted nonsense")
	}
	for _, o := range []Options{{SegmentBytes: 10}, {GroupDelay: -1}, {MaxRecordBytes: 2 << 30}, {Sync: 7}} {
		if _, err := Open(t.TempDir(), o); err == nil {
			t.Fatalf("Open accepted %+v", o)
		}
	}
}

func TestHistogramQuantile(t *testing.T) {
	var h histogram
	for range 90 {
		h.observe(200 * time.Microsecond) // bucket (0.0001, 0.00025]
	}
	for range 10 {
		h.observe(2 * time.Second)
	}
	s := h.snapshot()
	if s.Count != 100 || s.Cumulative[len(s.Cumulative)-1] != 100 {
		t.Fatalf("snapshot %+v", s)
	}
	if q := s.Quantile(0.5); q <= 0.0001 || q > 0.00025 {
		t.Fatalf("median %v, want within (0.0001, 0.00025]", q)
	}
	if q := s.Quantile(0.99); q <= 1 || q > 2.5 {
		t.Fatalf("p99 %v, want within (1, 2.5]", q)
	}
}

func FuzzScanSegment(f *testing.F) {
	valid := segmentHeader()
	for i, tenant := range []string{"a", "", "tenant-x"} {
		p := payloadFor(uint64(i), i*10)
		valid = append(append(valid, recordPrefix(tenant, p)...), p...)
	}
	f.Add(valid)
	f.Add(valid[:len(valid)-3])
	f.Add(segmentHeader())
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		var out []byte
		res, err := scanSegment(bytes.NewReader(data), int64(len(data)), func(tenant string, payload []byte, off int64) error {
			if off != int64(len(out))+headerSize {
				t.Fatalf("record at %d, want %d", off, len(out)+headerSize)
			}
			out = append(append(out, recordPrefix(tenant, payload)...), payload...)
			return nil
		})
		if err != nil && !errors.Is(err, errVersion) {
			t.Fatalf("scan returned an error for in-memory data: %v", err)
		}
		if res.end > int64(len(data)) || (res.bad == nil && err == nil && res.end != int64(len(data))) {
			t.Fatalf("end %d of %d bytes with bad=%v", res.end, len(data), res.bad)
		}
		// Every record returned re-encodes to exactly the bytes it came from.
		if res.end >= headerSize && !bytes.Equal(out, data[headerSize:res.end]) {
			t.Fatal("records do not re-encode to the scanned bytes")
		}
	})
}

var _ io.Writer = (*logBuffer)(nil)
