package query

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/otlptest"
	"github.com/tracectl/tracectl/internal/storage"
	"github.com/tracectl/tracectl/internal/storage/faulty"
	"github.com/tracectl/tracectl/internal/storage/storagetest"
)

// TestBlockWrittenElsewhereAppearsAfterOnePoll: a block another writer
// stores is invisible until the next poll and found after it; a block
// compacted away disappears at the poll after that.
func TestBlockWrittenElsewhereAppearsAfterOnePoll(t *testing.T) {
	corpus := otlptest.LoadCorpus(t)
	b := storagetest.OpenMem(t)
	first := writeBlock(t, b, "single-tenant", corpus.ByID[otlptest.IDOf("P00")])
	a, base := startAPI(t, Config{Bucket: b, PollInterval: time.Hour})

	p00, p01 := otlptest.IDOf("P00"), otlptest.IDOf("P01")
	if got := get(t, base, "/api/traces/"+p00); got.status != http.StatusOK {
		t.Fatalf("P00 in the first block: %s", got)
	}
	second := writeBlock(t, b, "single-tenant", corpus.ByID[p01])
	if got := get(t, base, "/api/traces/"+p01); got.status != http.StatusNotFound {
		t.Fatalf("P01 visible before any poll: %s", got)
	}
	a.blocks.pollAll()
	if got := get(t, base, "/api/traces/"+p01); got.status != http.StatusOK {
		t.Fatalf("P01 not found after one poll: %s", got)
	}

	// Compaction: the first block is marked compacted (its data stays).
	if err := block.MarkCompacted(context.Background(), b, "single-tenant", first.BlockID); err != nil {
		t.Fatal(err)
	}
	a.blocks.pollAll()
	if got := get(t, base, "/api/traces/"+p00); got.status != http.StatusNotFound {
		t.Errorf("P00 still served from a compacted block: %s", got)
	}
	metas, err := a.blocks.get(context.Background(), "single-tenant")
	if err != nil || len(metas) != 1 || metas[0].BlockID != second.BlockID {
		t.Errorf("block list after compaction: %v %v", metas, err)
	}
}

// TestBlockDeletedBeforePollIsListedAgain: a compactor elsewhere merged a
// block into a new one and deleted it before this API's next poll (its
// retention shorter than the poll). Trace by ID meets the missing block,
// reads the list again at once and answers whole from the new block; many
// queries meeting the gone block at once share one listing.
func TestBlockDeletedBeforePollIsListedAgain(t *testing.T) {
	corpus := otlptest.LoadCorpus(t)
	b := storagetest.OpenMem(t)
	lists := faulty.Install(b).Add(&faulty.Rule{Ops: []string{faulty.List}, Pass: true})
	const tenant = "single-tenant"
	ids := []string{otlptest.IDOf("P00"), otlptest.IDOf("P01"), otlptest.IDOf("P02")}
	traces := corpusTraces(corpus, ids)
	old := writeBlock(t, b, tenant, traces...)
	a, base := startAPI(t, Config{Bucket: b, PollInterval: time.Hour})
	spans := func(id string) int {
		t.Helper()
		got := get(t, base, "/api/traces/"+id)
		if got.status != http.StatusOK {
			t.Fatalf("%s: %s", otlptest.Label(id), got)
		}
		return strings.Count(string(got.body), `"spanId"`)
	}
	want := spans(ids[0]) // lists the tenant and caches the block's bloom shard

	// compactAway stores the traces in a new block and deletes the old one.
	compactAway := func(m *block.Meta) *block.Meta {
		next := writeBlock(t, b, tenant, traces...)
		deleteBlock(t, b, m)
		return next
	}
	next := compactAway(old)
	before := lists.Fired()
	if got := spans(ids[0]); got != want {
		t.Fatalf("after its block was compacted away: %d spans, want %d", got, want)
	}
	if n := testutil.ToFloat64(a.m.refreshes); n != 1 {
		t.Errorf("%v refreshes, want 1", n)
	}
	perListing := lists.Fired() - before

	// Again, with 16 queries meeting the gone block at once.
	time.Sleep(minRefreshInterval)
	compactAway(next)
	before = lists.Fired()
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := ids[i%len(ids)]
			if got := get(t, base, "/api/traces/"+id); got.status != http.StatusOK || strings.Count(string(got.body), `"spanId"`) == 0 {
				t.Errorf("%s beside 15 others after the compaction: %s", otlptest.Label(id), got)
			}
		}()
	}
	wg.Wait()
	if n := testutil.ToFloat64(a.m.refreshes); n != 2 {
		t.Errorf("%v refreshes after the second compaction, want 2 (one shared by 16 queries)", n)
	}
	if n := lists.Fired() - before; n != perListing {
		t.Errorf("16 queries listed the bucket with %d list calls; one listing takes %d", n, perListing)
	}
	// A trace that is nowhere asks for no listing.
	time.Sleep(minRefreshInterval)
	if got := get(t, base, "/api/traces/"+otlptest.IDOf("P09")); got.status != http.StatusNotFound {
		t.Errorf("P09, never stored: %s", got)
	}
	if n := testutil.ToFloat64(a.m.refreshes); n != 2 {
		t.Errorf("a trace not found made the list be read again (%v refreshes)", n)
	}
}

// corpusTraces returns the corpus traces of ids.
func corpusTraces(c *otlptest.Corpus, ids []string) []ptrace.Traces {
	var out []ptrace.Traces
	for _, id := range ids {
		out = append(out, c.ByID[id])
	}
	return out
}

// deleteBlock deletes every object of block m, as a compactor does once
// its retention has passed.
func deleteBlock(t *testing.T, b *storage.Bucket, m *block.Meta) {
	t.Helper()
	ctx := context.Background()
	objs, err := b.ListAll(ctx, m.TenantID+"/"+m.BlockID.String()+"/", "")
	if err != nil || len(objs) == 0 {
		t.Fatalf("objects of block %s: %v %v", m.BlockID, objs, err)
	}
	for _, o := range objs {
		if err := b.Delete(ctx, o.Key); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSearchMeetingDeletedBlockListsAgain: a search that meets a block
// deleted since the last poll answers from the other blocks and has the
// list read again at once, so the next search finds the traces in the
// block that replaced it, without waiting for the poll (an hour here).
func TestSearchMeetingDeletedBlockListsAgain(t *testing.T) {
	corpus := otlptest.LoadCorpus(t)
	b := storagetest.OpenMem(t)
	const tenant = "single-tenant"
	kept := otlptest.IDOf("P03")
	writeBlock(t, b, tenant, corpus.ByID[kept])
	traces := corpusTraces(corpus, []string{otlptest.IDOf("P00"), otlptest.IDOf("P01"), otlptest.IDOf("P02")})
	old := writeBlock(t, b, tenant, traces...)
	a, base := startAPI(t, Config{Bucket: b, PollInterval: time.Hour})
	if ids, got := searchIDs(t, base); got.status != http.StatusOK || len(ids) != 4 {
		t.Fatalf("search before the compaction: %d traces; %s", len(ids), got)
	}

	// A compactor elsewhere moves the block's traces and deletes it.
	writeBlock(t, b, tenant, traces...)
	deleteBlock(t, b, old)
	if ids, got := searchIDs(t, base); got.status != http.StatusOK || !ids[kept] {
		t.Fatalf("search meeting the deleted block: %s; want the other block's trace", got)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		ids, got := searchIDs(t, base)
		if got.status == http.StatusOK && len(ids) == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("10 s after a search met the deleted block, search finds %d of 4 traces (%v refreshes)", len(ids), testutil.ToFloat64(a.m.refreshes))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := testutil.ToFloat64(a.m.refreshes); n != 1 {
		t.Errorf("%v refreshes, want 1", n)
	}
}

// TestPollIntervalIsHonoured runs the real poll loop with a short interval.
func TestPollIntervalIsHonoured(t *testing.T) {
	corpus := otlptest.LoadCorpus(t)
	b := storagetest.OpenMem(t)
	_, base := startAPI(t, Config{Bucket: b, PollInterval: 50 * time.Millisecond})
	id := otlptest.IDOf("P02")
	if got := get(t, base, "/api/traces/"+id); got.status != http.StatusNotFound {
		t.Fatalf("empty bucket: %s", got)
	}
	writeBlock(t, b, "single-tenant", corpus.ByID[id])
	deadline := time.Now().Add(10 * time.Second)
	for get(t, base, "/api/traces/"+id).status != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("block not picked up by the poll loop within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestFlushedBlockVisibleAtOnce: a block announced through BlockFlushed is
// queried before any poll, and stays until a listing confirms it.
func TestFlushedBlockVisibleAtOnce(t *testing.T) {
	corpus := otlptest.LoadCorpus(t)
	b := storagetest.OpenMem(t)
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	a, base := startAPI(t, Config{Bucket: b, PollInterval: time.Hour, IndexMaxAge: time.Hour, Now: clock})
	id := otlptest.IDOf("P06")
	if got := get(t, base, "/api/v2/traces/"+id); got.status != http.StatusOK {
		t.Fatal(got)
	}
	// A stale tenant index (empty) that a poll will trust.
	ti, err := block.BuildTenantIndex(context.Background(), b, "single-tenant", now)
	if err != nil {
		t.Fatal(err)
	}
	if err := block.WriteTenantIndex(context.Background(), b, "single-tenant", ti); err != nil {
		t.Fatal(err)
	}
	m := writeBlock(t, b, "single-tenant", corpus.ByID[id])
	a.BlockFlushed("single-tenant", m)
	check := func(when string) {
		t.Helper()
		td := decodeTrace(t, get(t, base, "/api/v2/traces/"+id), true)
		if td.SpanCount() == 0 {
			t.Fatalf("%s: flushed block not queried", when)
		}
	}
	check("before any poll")
	now = now.Add(time.Minute)
	a.blocks.pollAll() // from the stale index: must not drop the announced block
	check("after a poll from a stale tenant index")
	now = now.Add(2 * time.Hour) // index too old: the bucket is listed
	a.blocks.pollAll()
	check("after a full listing")
	a.blocks.mu.Lock()
	left := len(a.blocks.tenants["single-tenant"].flushed)
	a.blocks.mu.Unlock()
	if left != 0 {
		t.Errorf("%d announced blocks kept after a listing confirmed them", left)
	}
}

// TestMultiTenantIsolation: with multi-tenancy on, each tenant sees only
// its blocks and head; no header is 401; a bad tenant is 400.
func TestMultiTenantIsolation(t *testing.T) {
	corpus := otlptest.LoadCorpus(t)
	b := storagetest.OpenMem(t)
	p00, p01 := otlptest.IDOf("P00"), otlptest.IDOf("P01")
	writeBlock(t, b, "team-a", corpus.ByID[p00])
	head := newFakeHead()
	id01, _ := block.ParseTraceID(p01)
	head.add("team-b", id01, corpus.ByID[p01])
	_, base := startAPI(t, Config{Bucket: b, Head: head, MultiTenancy: true})

	for _, tc := range []struct {
		tenant, id string
		want       int
	}{
		{"team-a", p00, http.StatusOK},
		{"team-b", p00, http.StatusNotFound},
		{"team-b", p01, http.StatusOK},
		{"team-a", p01, http.StatusNotFound},
	} {
		if got := get(t, base, "/api/traces/"+tc.id, "X-Scope-OrgID", tc.tenant); got.status != tc.want {
			t.Errorf("tenant %s, trace %s: %s, want %d", tc.tenant, tc.id, got, tc.want)
		}
	}
	got := get(t, base, "/api/traces/"+p00)
	if got.status != http.StatusUnauthorized || got.header.Get("Content-Type") != "text/plain; charset=utf-8" {
		t.Errorf("no tenant: %s", got)
	}
	for _, bad := range []string{"..", "a/b", "team-a|team-b"} {
		if got := get(t, base, "/api/traces/"+p00, "X-Scope-OrgID", bad); got.status != http.StatusBadRequest {
			t.Errorf("tenant %q: %s", bad, got)
		}
	}
	// Health endpoints need no tenant.
	if got := get(t, base, "/api/echo"); got.status != http.StatusOK {
		t.Errorf("echo without tenant: %s", got)
	}

	// Single-tenant mode ignores the header.
	_, base1 := startAPI(t, Config{Bucket: b, Head: head})
	if got := get(t, base1, "/api/traces/"+p00, "X-Scope-OrgID", "team-a"); got.status != http.StatusNotFound {
		t.Errorf("single-tenant mode read tenant team-a: %s", got)
	}
}

// TestConcurrencyLimit: with every slot taken, a query waits QueueTimeout
// and is refused with 429.
func TestConcurrencyLimit(t *testing.T) {
	a, base := startAPI(t, Config{Bucket: storagetest.OpenMem(t), MaxConcurrent: 1, QueueTimeout: 50 * time.Millisecond})
	a.slots <- struct{}{}
	got := get(t, base, "/api/traces/abc")
	<-a.slots
	if got.status != http.StatusTooManyRequests {
		t.Errorf("query with no free slot: %s", got)
	}
	if got := get(t, base, "/api/traces/abc"); got.status != http.StatusNotFound {
		t.Errorf("query with a free slot: %s", got)
	}
}

func TestGzipWhenAccepted(t *testing.T) {
	b, _ := fixtureBucket(t, "tempo", "vparquet4")
	_, base := startAPI(t, Config{Bucket: b})
	req, _ := http.NewRequest(http.MethodGet, base+"/api/v2/traces/594dbe7e6cff645eb51079037485e52a", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("Content-Encoding") != "gzip" || resp.Header.Get("Vary") != "Accept-Encoding" {
		t.Errorf("headers %v", resp.Header)
	}
	if !acceptsGzip(req) {
		t.Error("gzip not accepted")
	}
	req.Header.Set("Accept-Encoding", "br, gzip;q=0")
	if acceptsGzip(req) {
		t.Error("gzip;q=0 accepted")
	}
	req.Header.Set("Accept-Encoding", "deflate, GZIP;q=0.5")
	if !acceptsGzip(req) {
		t.Error("GZIP;q=0.5 refused")
	}
}

// flushingHead holds traces and, the moment a query first looks into it,
// stores them as a block, announces the block to the API and lets them go,
// as the server's flush does (announce, then drop): the worst moment for
// a query that read the block list before the head.
type flushingHead struct {
	t      *testing.T
	b      *storage.Bucket
	api    func() *API
	mu     sync.Mutex
	traces map[block.TraceID]ptrace.Traces
}

func (h *flushingHead) flush(tenant string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.traces) == 0 {
		return
	}
	var tds []ptrace.Traces
	for _, td := range h.traces {
		tds = append(tds, td)
	}
	h.api().BlockFlushed(tenant, writeBlock(h.t, h.b, tenant, tds...))
	h.traces = nil
}

func (h *flushingHead) FindInHead(tenant string, id block.TraceID) []ptrace.Traces {
	h.flush(tenant)
	return nil
}

func (h *flushingHead) ForEachHeadTrace(tenant string, fn func(block.TraceID, []ptrace.Traces) bool) {
	h.flush(tenant)
}

// TestTraceLeavingHeadDuringQuery: a trace stored and let go by the head
// while a query runs is found, by trace ID and by search: the query reads
// the head before it takes the block list.
func TestTraceLeavingHeadDuringQuery(t *testing.T) {
	corpus := otlptest.LoadCorpus(t)
	const tenant = "single-tenant"
	id := otlptest.IDOf("P00")
	tid, _ := block.ParseTraceID(id)
	for _, q := range []string{"trace by ID", "search"} {
		t.Run(q, func(t *testing.T) {
			b := storagetest.OpenMem(t)
			var a *API
			head := &flushingHead{t: t, b: b, api: func() *API { return a }, traces: map[block.TraceID]ptrace.Traces{tid: corpus.ByID[id]}}
			a, base := startAPI(t, Config{Bucket: b, Head: head, PollInterval: time.Hour})
			// The tenant's list is read once (nothing stored yet), as by
			// earlier queries.
			if _, err := a.blocks.get(context.Background(), tenant); err != nil {
				t.Fatal(err)
			}
			switch q {
			case "trace by ID":
				if got := get(t, base, "/api/traces/"+id); got.status != http.StatusOK {
					t.Errorf("trace stored by the head during the query: %s", got)
				}
			case "search":
				if ids, got := searchIDs(t, base); got.status != http.StatusOK || !ids[id] {
					t.Errorf("search while the head stored the trace: %d traces; %s", len(ids), got)
				}
			}
		})
	}
}

// TestDamagedBlockAsksForOneListing: a block whose data.parquet is missing
// while its meta.json stays is damaged, not deleted. The first query that
// meets it has the list read again; the listing still holds the block, so
// later queries skip it without more listings (a listing reads every
// block's meta.json).
func TestDamagedBlockAsksForOneListing(t *testing.T) {
	corpus := otlptest.LoadCorpus(t)
	ctx := context.Background()
	b := storagetest.OpenMem(t)
	id := otlptest.IDOf("P00")
	m := writeBlock(t, b, "single-tenant", corpus.ByID[id])
	writeBlock(t, b, "single-tenant", corpus.ByID[otlptest.IDOf("P03")])
	a, base := startAPI(t, Config{Bucket: b, PollInterval: time.Hour})
	if got := get(t, base, "/api/traces/"+id); got.status != http.StatusOK {
		t.Fatalf("before the damage: %s", got)
	}
	if err := b.Delete(ctx, block.DataKey(m.TenantID, m.BlockID)); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if i > 0 {
			time.Sleep(minRefreshInterval + 50*time.Millisecond)
		}
		get(t, base, "/api/traces/"+id)
		searchIDs(t, base)
	}
	time.Sleep(100 * time.Millisecond) // a search's listing runs on its own
	if n := testutil.ToFloat64(a.m.refreshes); n != 1 {
		t.Errorf("%v listings for a damaged block over 3 rounds of queries, want 1", n)
	}
}
