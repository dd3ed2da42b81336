package jaegeres

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/tracectl/tracectl/internal/blocks"
	"github.com/tracectl/tracectl/internal/blocks/vparquet4"
	"github.com/tracectl/tracectl/internal/migrate/jaegeres/estest"
	"github.com/tracectl/tracectl/internal/storage"
	"github.com/tracectl/tracectl/internal/testfix"
)

// expected is the part of the dataset's expected.json the tests compare.
type expected struct {
	Totals struct {
		Spans        int              `json:"spans"`
		Traces       int              `json:"traces"`
		DocsPerIndex map[string]int64 `json:"docs_per_index"`
	} `json:"totals"`
	Traces map[string]struct {
		IndexSet string            `json:"index_set"`
		Spans    int               `json:"spans"`
		SpanIDs  []string          `json:"span_ids"`
		Parents  map[string]string `json:"parents"`
		Services []string          `json:"services"`
		StartUS  int64             `json:"start_us"`
		EndUS    int64             `json:"end_us"`
		Docs     int               `json:"docs"`
	} `json:"traces"`
}

func loadExpected(t *testing.T) *expected {
	var e expected
	if err := json.Unmarshal(readFixture(t, "expected.json"), &e); err != nil {
		t.Fatal(err)
	}
	return &e
}

// startDataset starts a test server holding the shared dataset.
func startDataset(t testing.TB, cfg estest.Config) *estest.Server {
	t.Helper()
	dir := testfix.Path(t, "jaeger-es", "dataset")
	s, err := estest.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	files, _ := filepath.Glob(filepath.Join(dir, "*.ndjson"))
	if len(files) == 0 {
		testfix.Missing(t, "no dataset files in "+dir)
	}
	for _, f := range files {
		r, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		err = s.LoadBulk(r)
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func memBucket(t testing.TB) *storage.Bucket {
	t.Helper()
	b, err := storage.Open(context.Background(), "mem://")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func baseOptions(es *estest.Server, b *storage.Bucket) Options {
	return Options{
		Client:    ClientOptions{URLs: []string{es.URL}, RetryBase: time.Millisecond},
		Selection: Selection{Prefixes: []string{"", "taf"}},
		Bucket:    b, Tenant: "single-tenant", MaxErrors: -1,
	}
}

// readBack is every span in the tenant's blocks, by trace, with the block
// each trace was found in.
type readSpan struct {
	parent, service string
	start, end      int64 // µs
}

type readTrace struct {
	spans  map[string][]readSpan
	blocks []string
}

func readBack(t *testing.T, b *storage.Bucket, tenant string) map[string]*readTrace {
	t.Helper()
	ctx := context.Background()
	l, err := blocks.List(ctx, b, tenant, blocks.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Problems) > 0 {
		t.Fatalf("block problems: %v", l.Problems)
	}
	out := map[string]*readTrace{}
	for _, bi := range l.Blocks {
		blk := vparquet4.OpenBlock(ctx, b, bi.Meta)
		for row, err := range blk.Iterate(ctx) {
			if err != nil {
				t.Fatal(err)
			}
			td, err := blk.OTLPAll(row)
			if err != nil {
				t.Fatal(err)
			}
			for _, rs := range td.ResourceSpans().All() {
				svc, _ := rs.Resource().Attributes().Get("service.name")
				for _, ss := range rs.ScopeSpans().All() {
					for _, sp := range ss.Spans().All() {
						tid, sid, pid := sp.TraceID(), sp.SpanID(), sp.ParentSpanID()
						k := hex.EncodeToString(tid[:])
						rt := out[k]
						if rt == nil {
							rt = &readTrace{spans: map[string][]readSpan{}}
							out[k] = rt
						}
						if !slices.Contains(rt.blocks, bi.Meta.BlockID.String()) {
							rt.blocks = append(rt.blocks, bi.Meta.BlockID.String())
						}
						parent := ""
						if !pid.IsEmpty() {
							parent = hex.EncodeToString(pid[:])
						}
						rt.spans[hex.EncodeToString(sid[:])] = append(rt.spans[hex.EncodeToString(sid[:])], readSpan{
							parent: parent, service: svc.Str(),
							start: int64(sp.StartTimestamp()) / 1000, end: int64(sp.EndTimestamp()) / 1000,
						})
					}
				}
			}
		}
	}
	return out
}

// assertExpected compares the blocks with expected.json: every trace
// whole in one block, every span exactly once, parents, services, times.
func assertExpected(t *testing.T, b *storage.Bucket, sets ...string) {
	t.Helper()
	assertExpectedWhere(t, b, func(set string, _ []string) bool {
		return len(sets) == 0 || slices.Contains(sets, set)
	})
}

// assertExpectedWhere is assertExpected for the traces keep selects by
// index set and services.
func assertExpectedWhere(t *testing.T, b *storage.Bucket, keep func(set string, services []string) bool) {
	t.Helper()
	exp := loadExpected(t)
	got := readBack(t, b, "single-tenant")
	want := 0
	for id, et := range exp.Traces {
		if !keep(et.IndexSet, et.Services) {
			continue
		}
		want++
		rt := got[id]
		if rt == nil {
			t.Errorf("trace %s (%d spans) is missing", id, et.Spans)
			continue
		}
		if len(rt.blocks) != 1 {
			t.Errorf("trace %s is split across blocks %v", id, rt.blocks)
		}
		var ids, services []string
		var start, end int64
		for sid, copies := range rt.spans {
			ids = append(ids, sid)
			if len(copies) != 1 {
				t.Errorf("trace %s span %s stored %d times", id, sid, len(copies))
			}
			c := copies[0]
			if p := et.Parents[sid]; c.parent != p {
				t.Errorf("trace %s span %s: parent %q, want %q", id, sid, c.parent, p)
			}
			if !slices.Contains(services, c.service) {
				services = append(services, c.service)
			}
			if start == 0 || c.start < start {
				start = c.start
			}
			end = max(end, c.end)
		}
		sort.Strings(ids)
		sort.Strings(services)
		if !slices.Equal(ids, et.SpanIDs) {
			t.Errorf("trace %s: spans %v, want %v", id, ids, et.SpanIDs)
		}
		if !slices.Equal(services, et.Services) {
			t.Errorf("trace %s: services %v, want %v", id, services, et.Services)
		}
		if start != et.StartUS || end != et.EndUS {
			t.Errorf("trace %s: %d..%d µs, want %d..%d", id, start, end, et.StartUS, et.EndUS)
		}
	}
	if len(got) != want {
		var extra []string
		for id := range got {
			if _, ok := exp.Traces[id]; !ok {
				extra = append(extra, id)
			}
		}
		t.Errorf("%d traces in the blocks, want %d; not expected: %v", len(got), want, extra)
	}
}

func checkSummary(t *testing.T, s *Summary) {
	t.Helper()
	exp := loadExpected(t)
	if s.SpansWritten != int64(exp.Totals.Spans) || s.Traces != int64(exp.Totals.Traces) {
		t.Errorf("summary: %d spans in %d traces, want %d in %d", s.SpansWritten, s.Traces, exp.Totals.Spans, exp.Totals.Traces)
	}
	for _, ix := range s.Indices {
		if want, ok := exp.Totals.DocsPerIndex[ix.Name]; ok && (ix.Docs != want || ix.Read != want) {
			t.Errorf("index %s: %d counted, %d read, want %d", ix.Name, ix.Docs, ix.Read, want)
		}
		if ix.Read != ix.Written+ix.Duplicates+ix.Skipped {
			t.Errorf("index %s: %d read ≠ %d written + %d duplicates + %d skipped", ix.Name, ix.Read, ix.Written, ix.Duplicates, ix.Skipped)
		}
	}
}

// TestMigrateDatasetEqualsExpected drives the migration through the test
// server, as each supported server, over the shared dataset.
func TestMigrateDatasetEqualsExpected(t *testing.T) {
	for _, tc := range []struct {
		name            string
		cfg             estest.Config
		parallel, batch int
		maxBlock        int64
		wantSnapshot    string
	}{
		{"es7.17-pit", estest.Config{Version: "7.17.22"}, 2, 50, 0, "pit"},
		{"es8-pit-tiny-pages", estest.Config{Version: "8.15.0"}, 3, 7, 40 << 10, "pit"},
		{"es9-pit", estest.Config{Version: "9.1.0"}, 1, 1000, 0, "pit"},
		{"opensearch2.11-pit", estest.Config{Version: "2.11.0", Distribution: "opensearch"}, 2, 33, 100 << 10, "pit"},
		{"opensearch1.3-scroll", estest.Config{Version: "1.3.18", Distribution: "opensearch"}, 2, 64, 0, "scroll"},
		{"es6-scroll", estest.Config{Version: "6.8.23"}, 3, 25, 200 << 10, "scroll"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			es := startDataset(t, tc.cfg)
			b := memBucket(t)
			o := baseOptions(es, b)
			o.Parallel, o.BatchSize, o.MaxBlockBytes = tc.parallel, tc.batch, tc.maxBlock
			o.Verify, o.VerifySample = true, 50
			s, err := Migrate(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			if s.Snapshot != tc.wantSnapshot {
				t.Errorf("snapshot %s, want %s", s.Snapshot, tc.wantSnapshot)
			}
			checkSummary(t, s)
			if s.Verify == nil || !s.Verify.OK || s.Verify.Matched == 0 {
				t.Errorf("verify: %+v", s.Verify)
			}
			assertExpected(t, b)
			if n := es.OpenContexts(); n != 0 {
				t.Errorf("%d PITs or scrolls left open", n)
			}
		})
	}
}
