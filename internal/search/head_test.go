package search

import (
	"context"
	"encoding/json"
	"net/url"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tracectl/tracectl/internal/blocks"
	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/otlptest"
	"github.com/tracectl/tracectl/internal/server"
	"github.com/tracectl/tracectl/internal/storage"
	"github.com/tracectl/tracectl/internal/storage/storagetest"
)

// liveServer is a real server.Server holding the corpus's waves 1 and 2
// in a stored block and wave 3 (lines 32–35) in its head, so that P03 is
// split: its root part in the block, its rootless part in the head.
func liveServer(t *testing.T) (*server.Server, *storage.Bucket, []*block.Meta, *otlptest.Corpus) {
	t.Helper()
	corpus := otlptest.LoadCorpus(t)
	ctx := context.Background()
	b := storagetest.OpenMem(t)
	srv, err := server.New(server.Config{Bucket: b, WALDir: t.TempDir(), Registry: prometheus.NewRegistry(),
		IngestionRateBytes: -1, MaxBlockDuration: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	for i, td := range corpus.Lines {
		if i == 31 {
			if err := srv.Flush(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if err := srv.Consume(ctx, "single-tenant", td); err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
	}
	l, err := blocks.List(ctx, b, "single-tenant", blocks.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var metas []*block.Meta
	for _, bi := range l.Blocks {
		metas = append(metas, bi.Meta)
	}
	if len(metas) != 1 {
		t.Fatalf("%d blocks stored, want the one block of waves 1 and 2", len(metas))
	}
	return srv, b, metas, corpus
}

// corpusServiceCounts counts the distinct spans of one corpus trace per
// service.
func corpusServiceCounts(td ptrace.Traces) map[string]uint32 {
	out := map[string]uint32{}
	seen := map[pcommon.SpanID]bool{}
	forEachSpan(td, func(res pcommon.Map, sp ptrace.Span) {
		if seen[sp.SpanID()] {
			return
		}
		seen[sp.SpanID()] = true
		svc, _ := res.Get("service.name")
		out[svc.Str()]++
	})
	return out
}

// TestSearchHeadAndBlock searches a live server: a trace whose parts are
// in the head and in a block is one result with the combined counts, and
// the whole answer equals the answer over Tempo's three fixture blocks.
func TestSearchHeadAndBlock(t *testing.T) {
	srv, b, metas, corpus := liveServer(t)
	ctx := context.Background()
	var headIDs []block.TraceID
	srv.ForEachHeadTrace("single-tenant", func(id block.TraceID, _ []ptrace.Traces) bool {
		headIDs = append(headIDs, id)
		return true
	})
	if len(headIDs) != 6 {
		t.Fatalf("head holds %d traces, want wave 3's 6", len(headIDs))
	}
	for _, generic := range []bool{false, true} {
		e := NewEngine(b, Options{Generic: generic})
		q := url.Values{"q": {"{}"}, "limit": {"1000"}, "spss": {"1000"},
			"start": {"1795168800"}, "end": {"1795172400"}}
		req, err := ParseRequest(q)
		if err != nil {
			t.Fatal(err)
		}
		got, err := e.Search(ctx, "single-tenant", metas, srv, req)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Traces) != 40 {
			t.Fatalf("generic=%v: %d traces, want the corpus's 40", generic, len(got.Traces))
		}
		p03 := otlptest.IDOf("P03")
		var found bool
		for _, tr := range got.Traces {
			if tr.TraceID != p03 {
				continue
			}
			if tr.RootServiceName == rootNotReceived {
				t.Errorf("P03 lost its root (it is in the block part)")
			}
			// Tempo's rule for a trace in several places (TEMPO-FORMAT.md
			// §8): per service the largest count among the parts, the
			// span set of the part with the root. Block part = line 3
			// (checkout 6), head part = line 35 (checkout 3, payment 1).
			block := corpusServiceCounts(otlptest.SplitByTrace(corpus.Lines[2])[p03])
			head := corpusServiceCounts(otlptest.SplitByTrace(corpus.Lines[34])[p03])
			if len(head) != 2 || len(block) != 1 {
				t.Fatalf("corpus parts of P03: block %v head %v", block, head)
			}
			for svc := range corpusServiceCounts(corpus.ByID[p03]) {
				if want := max(block[svc], head[svc]); tr.ServiceStats[svc].SpanCount != want {
					t.Errorf("P03 service %s: %d spans, want %d (largest of block %d, head %d)", svc, tr.ServiceStats[svc].SpanCount, want, block[svc], head[svc])
				}
			}
			if tr.SpanSet.Matched != 6 {
				t.Errorf("P03 matched %d spans, want the 6 of the part with the root", tr.SpanSet.Matched)
			}
			found = true
		}
		if !found {
			t.Fatal("P03 missing")
		}

		// The same answers as over Tempo's own blocks of the three waves;
		// the second query matches only P03's rootless head part.
		fb, fmetas := openFixture(t, "vparquet4")
		for _, text := range []string{"{}", `{ resource.service.name = "payment" && span.http.route != nil }`} {
			q.Set("q", text)
			req, err := ParseRequest(q)
			if err != nil {
				t.Fatal(err)
			}
			got, err := e.Search(ctx, "single-tenant", metas, srv, req)
			if err != nil {
				t.Fatal(err)
			}
			want, err := NewEngine(fb, Options{}).Search(ctx, "single-tenant", fmetas, nil, req)
			if err != nil {
				t.Fatal(err)
			}
			if len(want.Traces) == 0 {
				t.Fatalf("%s: no match over the fixture", text)
			}
			gj, _ := json.Marshal(got.Traces)
			wj, _ := json.Marshal(want.Traces)
			if g, w := decodeTraces(t, gj), decodeTraces(t, wj); !reflect.DeepEqual(g, w) {
				for i := range w {
					if i < len(g) && !reflect.DeepEqual(g[i], w[i]) {
						a, _ := json.Marshal(g[i])
						c, _ := json.Marshal(w[i])
						t.Errorf("generic=%v %s: head+block\n got %s\nblocks %s", generic, text, a, c)
					}
				}
			}
		}
	}
}

// decodeTraces decodes results with attribute order normalised and span
// sets compared as sets (head and block list a trace's spans in
// different orders).
func decodeTraces(t *testing.T, data []byte) []*jsonTrace {
	t.Helper()
	var out []*jsonTrace
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatal(err)
	}
	for _, tr := range out {
		normalize(tr)
		for _, set := range append([]*jsonSpanSet{tr.SpanSet}, tr.SpanSets...) {
			if set == nil {
				continue
			}
			sortSpans(set)
		}
	}
	return out
}

// TestTagValuesHeadAndBlock asks tag values of a live server: values only
// in the head (wave 3's services) and only in the block both appear,
// and the set equals the one over Tempo's fixture blocks.
func TestTagValuesHeadAndBlock(t *testing.T) {
	srv, b, metas, _ := liveServer(t)
	ctx := context.Background()
	fb, fmetas := openFixture(t, "vparquet4")
	for _, tag := range []string{"resource.service.name", "name", "status", "span.http.status_code"} {
		req, err := ParseTagValuesRequest(tag, true, url.Values{})
		if err != nil {
			t.Fatal(err)
		}
		got, err := NewEngine(b, Options{}).TagValues(ctx, "single-tenant", metas, srv, req)
		if err != nil {
			t.Fatal(err)
		}
		want, err := NewEngine(fb, Options{}).TagValues(ctx, "single-tenant", fmetas, nil, req)
		if err != nil {
			t.Fatal(err)
		}
		if len(want.Values) == 0 {
			t.Fatalf("%s: no values over the fixture", tag)
		}
		if !reflect.DeepEqual(got.Values, want.Values) {
			t.Errorf("%s: head+block %v\nfixture blocks %v", tag, got.Values, want.Values)
		}
	}
}

func sortSpans(set *jsonSpanSet) {
	sort.Slice(set.Spans, func(i, j int) bool { return set.Spans[i].SpanID < set.Spans[j].SpanID })
}
