package query

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/otlptest"
	"github.com/tracectl/tracectl/internal/search"
	"github.com/tracectl/tracectl/internal/storage"
	"github.com/tracectl/tracectl/internal/storage/faulty"
	"github.com/tracectl/tracectl/internal/storage/storagetest"
)

// The storage faults suite of the query API: slow and hung reads, and
// blocks that cannot be read.

// faultBlocks stores the corpus as three blocks of tenant, a third of its
// traces each, and returns the metas with the trace IDs of each block.
func faultBlocks(t *testing.T, b *storage.Bucket, tenant string) ([]*block.Meta, [][]block.TraceID) {
	t.Helper()
	c := otlptest.LoadCorpus(t)
	ids := slices.Sorted(func(yield func(string) bool) {
		for id := range c.ByID {
			if !yield(id) {
				return
			}
		}
	})
	var metas []*block.Meta
	var groups [][]block.TraceID
	for g := range 3 {
		var traces []ptrace.Traces
		var gids []block.TraceID
		for i := g; i < len(ids); i += 3 {
			cp := ptrace.NewTraces()
			c.ByID[ids[i]].CopyTo(cp)
			traces = append(traces, cp)
			id, _ := block.ParseTraceID(ids[i])
			gids = append(gids, id)
		}
		metas = append(metas, writeBlock(t, b, tenant, traces...))
		groups = append(groups, gids)
	}
	return metas, groups
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

// searchIDs runs a search for every trace and returns the IDs answered.
func searchIDs(t *testing.T, base string, headers ...string) (map[string]bool, httpResult) {
	t.Helper()
	got := get(t, base, "/api/search?q=%7B%7D&limit=1000", headers...)
	out := map[string]bool{}
	if got.status != http.StatusOK {
		return out, got
	}
	var resp search.Response
	if err := json.Unmarshal(got.body, &resp); err != nil {
		t.Fatalf("search answer: %v", err)
	}
	for _, tr := range resp.Traces {
		out[tr.TraceID] = true
	}
	return out, got
}

// TestUnreadableBlocksAreSkipped: with one block's data.parquet or
// meta.json corrupt, or its reads failing, trace by ID, search and tag
// queries still answer from the other blocks, and the skipped block is
// logged and counted.
func TestUnreadableBlocksAreSkipped(t *testing.T) {
	for _, tc := range []struct {
		name string
		// breakBlock damages block m of bucket b.
		breakBlock func(t *testing.T, b *storage.Bucket, in *faulty.Injector, m *block.Meta)
		// listed: the block still appears in the block list (only its
		// data is bad).
		listed  bool
		warning string
	}{
		{"data.parquet corrupt", func(t *testing.T, b *storage.Bucket, _ *faulty.Injector, m *block.Meta) {
			key := block.DataKey(m.TenantID, m.BlockID)
			data, err := b.Read(context.Background(), key)
			if err != nil {
				t.Fatal(err)
			}
			// Same size, garbage from the middle on: the footer and
			// pages no longer decode.
			for i := len(data) / 3; i < len(data); i++ {
				data[i] ^= 0x5a
			}
			if err := b.Write(context.Background(), key, data); err != nil {
				t.Fatal(err)
			}
		}, true, "block skipped in search"},
		{"data.parquet unreadable", func(t *testing.T, b *storage.Bucket, in *faulty.Injector, m *block.Meta) {
			in.Add(&faulty.Rule{Ops: []string{faulty.Read, faulty.Stat}, Keys: block.DataKey(m.TenantID, m.BlockID), Kind: storage.KindPermission})
		}, true, "block skipped in search"},
		{"data.parquet missing", func(t *testing.T, b *storage.Bucket, _ *faulty.Injector, m *block.Meta) {
			if err := b.Delete(context.Background(), block.DataKey(m.TenantID, m.BlockID)); err != nil {
				t.Fatal(err)
			}
		}, true, "block skipped in search"},
		{"meta.json corrupt", func(t *testing.T, b *storage.Bucket, _ *faulty.Injector, m *block.Meta) {
			if err := b.Write(context.Background(), block.MetaKey(m.TenantID, m.BlockID), []byte(`{"format":"vParquet4","blockID":`)); err != nil {
				t.Fatal(err)
			}
		}, false, "block left out of queries"},
		{"meta.json unreadable", func(t *testing.T, b *storage.Bucket, in *faulty.Injector, m *block.Meta) {
			in.Add(&faulty.Rule{Ops: []string{faulty.Read}, Keys: block.MetaKey(m.TenantID, m.BlockID)})
		}, false, "block left out of queries"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := storagetest.OpenMem(t)
			metas, groups := faultBlocks(t, b, "single-tenant")
			in := faulty.Install(b)
			bad := metas[1]
			tc.breakBlock(t, b, in, bad)
			logs := &logBuffer{}
			reg := prometheus.NewRegistry()
			_, base := startAPI(t, Config{Bucket: b, Logger: slog.New(slog.NewTextHandler(logs, nil)), Registry: reg})

			for g, ids := range groups {
				for _, id := range ids {
					got := get(t, base, "/api/v2/traces/"+id.Hex())
					switch {
					case g != 1 && got.status != http.StatusOK:
						t.Errorf("trace %s of a healthy block: %s", id.Hex(), got)
					case g == 1 && got.status != http.StatusOK && got.status != http.StatusNotFound:
						t.Errorf("trace %s of the broken block: %s, want 200 or 404, not a failure", id.Hex(), got)
					}
				}
			}
			found, got := searchIDs(t, base)
			if got.status != http.StatusOK {
				t.Fatalf("search with one broken block: %s", got)
			}
			for g, ids := range groups {
				for _, id := range ids {
					if g != 1 && !found[id.Text()] {
						t.Errorf("search did not answer trace %s of a healthy block", id.Hex())
					}
					if g == 1 && found[id.Text()] {
						t.Errorf("search answered trace %s of the broken block", id.Hex())
					}
				}
			}
			// Tag names and values (the fast column paths, and values
			// narrowed by a query) answer from the other blocks too.
			for _, path := range []string{
				"/api/v2/search/tags", "/api/search/tags",
				"/api/v2/search/tag/resource.service.name/values",
				"/api/v2/search/tag/name/values?q=" + queryEscape("{kind=server}"),
				"/api/metrics/query_range?q=" + queryEscape("{} | rate()") + "&start=" + replayStart + "&end=" + replayEnd + "&step=60s",
			} {
				if got := get(t, base, path); got.status != http.StatusOK || !bytes.Contains(got.body, []byte(`"`)) {
					t.Errorf("%s with one broken block: %s", path, got)
				}
			}
			if !strings.Contains(logs.String(), tc.warning) || !strings.Contains(logs.String(), bad.BlockID.String()) {
				t.Errorf("no warning %q naming block %s; logs:\n%s", tc.warning, bad.BlockID, logs)
			}
			if tc.listed {
				// Counted for /metrics: by search always, by trace by
				// ID when the bloom filter led it to the broken block.
				for _, q := range []string{"search", "tags", "tag_values", "metrics"} {
					if n := testutil.ToFloat64(skippedCounter(t, reg, q)); n < 1 {
						t.Errorf("tracectl_query_blocks_skipped_total{query=%s} = %v after a skipped block", q, n)
					}
				}
			}
		})
	}

	// Every block broken: search fails (503 for storage trouble) rather
	// than answering "nothing found".
	t.Run("all blocks unreadable", func(t *testing.T) {
		b := storagetest.OpenMem(t)
		faultBlocks(t, b, "single-tenant")
		_, base := startAPI(t, Config{Bucket: b})
		if _, got := searchIDs(t, base); got.status != http.StatusOK {
			t.Fatalf("search before the outage: %s", got)
		}
		faulty.Install(b).Add(&faulty.Rule{Ops: []string{faulty.Read, faulty.Stat}, Keys: "*/" + block.DataName})
		if _, got := searchIDs(t, base); got.status != http.StatusServiceUnavailable || !strings.Contains(string(got.body), "storage unavailable") {
			t.Errorf("search with every block unreadable: %s, want 503 storage unavailable", got)
		}
	})
}

// TestSlowAndHungReads: reads made slow still answer within the query
// timeout; reads that hang end in the API's 504 at the timeout, release
// their query slot, and never hold up queries of another tenant; once the
// store answers again so does the API.
func TestSlowAndHungReads(t *testing.T) {
	b := storagetest.OpenMem(t)
	_, slowGroups := faultBlocks(t, b, "slow")
	_, fastGroups := faultBlocks(t, b, "fast")
	in := faulty.Install(b)
	// Long enough that a search through 20 ms reads answers on a loaded
	// machine or under -race (300 ms was not), short enough to wait out.
	const timeout = time.Second
	_, base := startAPI(t, Config{Bucket: b, MultiTenancy: true, QueryTimeout: timeout, MaxConcurrent: 5, QueueTimeout: 50 * time.Millisecond})
	slowID, fastID := slowGroups[0][0].Hex(), fastGroups[0][0].Hex()

	// Latency under the timeout: answers, later.
	lat := in.Add(&faulty.Rule{Ops: []string{faulty.Read}, Keys: "slow/*", Latency: 20 * time.Millisecond, Pass: true})
	start := time.Now()
	if got := get(t, base, "/api/v2/traces/"+slowID, TenantHeader, "slow"); got.status != http.StatusOK {
		t.Fatalf("trace by ID with slow reads: %s", got)
	}
	if d := time.Since(start); d < 20*time.Millisecond {
		t.Errorf("answered in %v, the latency was not injected", d)
	}
	if _, got := searchIDs(t, base, TenantHeader, "slow"); got.status != http.StatusOK {
		t.Fatalf("search with slow reads: %s", got)
	}
	in.Remove(lat)

	// The slow tenant's data stops answering. Twice: the queries that
	// timed out the first time must have given back their slots.
	hang := in.Add(&faulty.Rule{Ops: []string{faulty.Read}, Keys: "slow/*/" + block.DataName, Hang: true})
	for round := range 2 {
		hungQueries(t, base, timeout, slowGroups, fastID, round)
	}
	if hang.Fired() == 0 {
		t.Fatal("the hang was never hit")
	}
	// The other tenant answers at once.
	if got := get(t, base, "/api/v2/traces/"+fastID, TenantHeader, "fast"); got.status != http.StatusOK {
		t.Errorf("other tenant after the timeouts: %s", got)
	}
	if _, got := searchIDs(t, base, TenantHeader, "fast"); got.status != http.StatusOK {
		t.Errorf("other tenant's search after the timeouts: %s", got)
	}
	if got := get(t, base, "/ready"); got.status != http.StatusOK {
		t.Errorf("/ready after the timeouts: %s", got)
	}

	// The store answers again.
	in.Remove(hang)
	if got := get(t, base, "/api/v2/traces/"+slowID, TenantHeader, "slow"); got.status != http.StatusOK {
		t.Errorf("trace by ID once reads answer again: %s", got)
	}
	if _, got := searchIDs(t, base, TenantHeader, "slow"); got.status != http.StatusOK {
		t.Errorf("search once reads answer again: %s", got)
	}
}

// hungQueries runs four queries of the slow tenant, whose reads hang, and
// one of the fast tenant meanwhile: the four end in 504 at the timeout,
// the fast one answers at once.
func hungQueries(t *testing.T, base string, timeout time.Duration, slowGroups [][]block.TraceID, fastID string, round int) {
	t.Helper()
	var wg sync.WaitGroup
	results := make([]httpResult, 4)
	durations := make([]time.Duration, 4)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			if i%2 == 0 {
				results[i] = get(t, base, "/api/v2/traces/"+slowGroups[i%3][1].Hex(), TenantHeader, "slow")
			} else {
				_, results[i] = searchIDs(t, base, TenantHeader, "slow")
			}
			durations[i] = time.Since(start)
		}()
	}
	time.Sleep(20 * time.Millisecond)
	start := time.Now()
	got := get(t, base, "/api/v2/traces/"+fastID, TenantHeader, "fast")
	if got.status != http.StatusOK {
		t.Errorf("round %d: other tenant while reads hang: %s", round, got)
	}
	if d := time.Since(start); d > timeout {
		t.Errorf("round %d: other tenant answered in %v, held up by the hung reads", round, d)
	}
	t.Logf("round %d: other tenant answered %d in %v while the slow tenant's reads hung", round, got.status, time.Since(start).Round(time.Millisecond))
	wg.Wait()
	for i, got := range results {
		if got.status != http.StatusGatewayTimeout || !strings.Contains(string(got.body), "query timed out") {
			t.Errorf("query %d with hung reads: %s, want 504 query timed out", i, got)
		}
		if durations[i] > timeout+2*time.Second {
			t.Errorf("query %d took %v, far past the timeout of %v", i, durations[i], timeout)
		}
	}
}

// skippedCounter finds tracectl_query_blocks_skipped_total{query=q} in reg.
func skippedCounter(t *testing.T, reg *prometheus.Registry, q string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "copy"})
	for _, mf := range mfs {
		if mf.GetName() != "tracectl_query_blocks_skipped_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "query" && l.GetValue() == q {
					c.Add(m.GetCounter().GetValue())
				}
			}
		}
	}
	return c
}
