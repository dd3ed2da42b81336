package search

import (
	"context"
	"encoding/json"
	"net/url"
	"testing"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tracectl/tracectl/internal/blocks"
	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/storage"
	"github.com/tracectl/tracectl/internal/traceql"
)

// attrQueries exercise every place phase 1 looks for an attribute:
// generic groups of each value type, fixed columns (also with values of
// another type, which vParquet4 keeps in the generic group), dedicated
// columns, unscoped names and combinations.
var attrQueries = []string{
	`{ span.app.tier = "gold" }`,
	`{ span.app.tier =~ "g.*" }`,
	`{ span.app.tier != "gold" }`,
	`{ span.app.items > 2 }`,
	`{ span.app.items = 3.0 }`,
	`{ span.app.ratio < 0.5 }`,
	`{ span.app.ratio > 1 }`,
	`{ span.cache.hit = true }`,
	`{ span.app.cache_hit = false }`,
	`{ span.http.status_code = 500 }`,
	`{ span.http.status_code >= 500 }`,
	`{ span.http.status_code = 503.5 }`,
	`{ span.http.method = "GET" }`,
	`{ span.http.method = 7 }`,
	`{ span.http.request.method = "POST" }`,
	`{ span.url.path = "/api/products/77" }`,
	`{ span.http.route =~ "/api/.*" }`,
	`{ span.http.response.status_code = "200" }`,
	`{ span.http.response.status_code = 200 }`,
	`{ resource.service.version = "1.4.2" }`,
	`{ resource.service.version =~ "1\\..*" }`,
	`{ resource.cluster = true }`,
	`{ resource.cluster =~ ".+" }`,
	`{ resource.namespace = 3 }`,
	`{ resource.k8s.pod.name = 42 }`,
	`{ resource.k8s.pod.name =~ ".*-.*" }`,
	`{ resource.auth.replicas >= 2 }`,
	`{ resource.auth.cpu_quota > 0.1 }`,
	`{ resource.auth.fips_mode = true }`,
	`{ resource.res.string.empty = "" }`,
	`{ .service.name = "frontend" }`,
	`{ .http.status_code = 500 }`,
	`{ .app.tier = "gold" || .process.pid > 1 }`,
	`{ span.app.tier = "does-not-exist" }`,
	`{ .does.not.exist = 1 }`,
	`{ span.app.tier = "gold" } && { resource.service.name = "cart" }`,
	`{ span.app.items > 2 && status = error }`,
	`{ span.db.system = "redis" } || { span.app.tier != nil }`,
}

func searchJSON(t *testing.T, e *Engine, metas []*block.Meta, q string) ([]byte, *Response) {
	t.Helper()
	req, err := ParseRequest(url.Values{"q": {q}, "limit": {"1000"}, "spss": {"1000"}})
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	resp, err := e.Search(context.Background(), "single-tenant", metas, nil, req)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	data, _ := json.Marshal(resp.Traces)
	return data, resp
}

// TestAttributeColumnsMatchGeneric: phase 1 over attribute columns keeps
// every matching trace (the column path answers as the OTLP path), on
// Tempo's blocks (one and several row groups) and on tracectl's own.
func TestAttributeColumnsMatchGeneric(t *testing.T) {
	type bucket struct {
		name  string
		b     *storage.Bucket
		metas []*block.Meta
	}
	var buckets []bucket
	for _, f := range []string{"vparquet4", "vparquet4-compacted"} {
		b, metas := openFixture(t, f)
		buckets = append(buckets, bucket{f, b, metas})
	}
	srv, b, metas, _ := liveServer(t)
	if err := srv.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	metas = listMetas(t, b)
	buckets = append(buckets, bucket{"tracectl", b, metas})
	for _, bk := range buckets {
		cols, gen := NewEngine(bk.b, Options{}), NewEngine(bk.b, Options{Generic: true})
		matched := 0
		for _, q := range attrQueries {
			got, _ := searchJSON(t, cols, bk.metas, q)
			want, wr := searchJSON(t, gen, bk.metas, q)
			g, w := decodeTraces(t, got), decodeTraces(t, want)
			if len(g) != len(w) {
				t.Errorf("%s %s: columns found %d traces, generic %d", bk.name, q, len(g), len(w))
				continue
			}
			gj, _ := json.Marshal(g)
			wj, _ := json.Marshal(w)
			if string(gj) != string(wj) {
				t.Errorf("%s %s:\ncolumns %s\ngeneric %s", bk.name, q, gj, wj)
			}
			if len(wr.Traces) > 0 {
				matched++
			}
		}
		if matched < len(attrQueries)/2 {
			t.Errorf("%s: only %d of %d queries match anything; the test would not catch a missed match", bk.name, matched, len(attrQueries))
		}
	}
}

// TestAttributeColumnsPrune: a condition no row satisfies reads only the
// filter's columns, never whole row groups.
func TestAttributeColumnsPrune(t *testing.T) {
	b, metas := openFixture(t, "vparquet4")
	e := NewEngine(b, Options{})
	var total uint64
	for _, m := range metas {
		total += m.Size
	}
	for _, q := range []string{`{ span.app.tier = "does-not-exist" }`, `{ resource.service.version = "0.0.0" }`,
		`{ span.http.status_code = 599 }`, `{ span.url.path = "/nowhere" }`, `{ .service.name = "nobody" }`} {
		_, resp := searchJSON(t, e, metas, q)
		if len(resp.Traces) != 0 {
			t.Fatalf("%s matched", q)
		}
		if read := uint64(resp.Metrics.InspectedBytes); read*2 > total {
			t.Errorf("%s: read %d of %d bytes; phase 1 should rule out every row", q, read, total)
		}
	}
}

func listMetas(t *testing.T, b *storage.Bucket) []*block.Meta {
	t.Helper()
	l, err := blocksList(b)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func blocksList(b *storage.Bucket) ([]*block.Meta, error) {
	l, err := blocks.List(context.Background(), b, "single-tenant", blocks.ListOptions{})
	if err != nil {
		return nil, err
	}
	var out []*block.Meta
	for _, bi := range l.Blocks {
		if !bi.Compacted {
			out = append(out, bi.Meta)
		}
	}
	return out, nil
}

// TestTagValuesFastMatchesGeneric: values from dictionaries, decoded
// integer pages and the per-block cache equal the OTLP path's, cold and
// warm, on blocks of several row groups.
func TestTagValuesFastMatchesGeneric(t *testing.T) {
	b, metas := openFixture(t, "vparquet4-compacted")
	fast, gen := NewEngine(b, Options{}), NewEngine(b, Options{Generic: true})
	for _, tag := range []string{"status", "kind", "name", "resource.service.name", "rootServiceName"} {
		req, err := ParseTagValuesRequest(tag, true, url.Values{})
		if err != nil {
			t.Fatal(err)
		}
		want, err := gen.TagValues(context.Background(), "single-tenant", metas, nil, req)
		if err != nil {
			t.Fatal(err)
		}
		if len(want.Values) < 2 {
			t.Fatalf("%s: %d values over the fixture", tag, len(want.Values))
		}
		for _, run := range []string{"cold", "warm"} {
			got, err := fast.TagValues(context.Background(), "single-tenant", metas, nil, req)
			if err != nil {
				t.Fatal(err)
			}
			gj, _ := json.Marshal(got.Values)
			wj, _ := json.Marshal(want.Values)
			if string(gj) != string(wj) {
				t.Errorf("%s %s: %s, OTLP path %s", tag, run, gj, wj)
			}
		}
	}
}

// testBucket is blocks (and maybe a head) a column path is checked on.
type testBucket struct {
	name  string
	b     *storage.Bucket
	metas []*block.Meta
	head  HeadSource
}

// columnTestBuckets are Tempo's vParquet4 blocks (one row group, and
// several), and tracectl's own block of corpus waves 1–2 with wave 3 in a
// live server's head, last.
func columnTestBuckets(t *testing.T) []testBucket {
	var buckets []testBucket
	for _, f := range []string{"vparquet4", "vparquet4-compacted"} {
		b, metas := openFixture(t, f)
		buckets = append(buckets, testBucket{f, b, metas, nil})
	}
	srv, b, metas, _ := liveServer(t)
	return append(buckets, testBucket{"tracectl block + head", b, metas, srv})
}

// TestTagValuesQueryMatchesGeneric: tag values narrowed by a query, read
// from columns span by span, equal the OTLP path's — on Tempo's blocks
// (one and several row groups) and on tracectl's own with part of the
// corpus still in the head — and read less than the whole blocks.
func TestTagValuesQueryMatchesGeneric(t *testing.T) {
	buckets := columnTestBuckets(t)
	queries := []string{
		`{ resource.service.name = "frontend" }`,
		`{resource.service.name="checkout"}`,
		`{ resource.service.name != "frontend" && kind = server }`,
		`{ status = error }`,
		`{ status = error || kind = client }`,
		`{ duration > 100ms }`,
		`{ name =~ "GET.*" && resource.service.name =~ "f.*" }`,
		`{ rootServiceName = "frontend" && kind != internal }`,
		`{ rootName != "nothing" && status != ok }`,
		`{ resource.service.name = "does-not-exist" }`,
		`{ true && kind = consumer }`,
	}
	tags := []string{"name", "resource.service.name", "status", "kind", "rootName", "rootServiceName"}
	nonEmpty := 0
	for _, bk := range buckets {
		cols, gen := NewEngine(bk.b, Options{}), NewEngine(bk.b, Options{Generic: true})
		var total uint64
		for _, m := range bk.metas {
			total += m.Size
		}
		for _, q := range queries {
			for _, tag := range tags {
				req, err := ParseTagValuesRequest(tag, true, url.Values{"q": {q}})
				if err != nil {
					t.Fatal(err)
				}
				want, err := gen.TagValues(context.Background(), "single-tenant", bk.metas, bk.head, req)
				if err != nil {
					t.Fatal(err)
				}
				if len(want.Values) > 0 {
					nonEmpty++
				}
				for _, run := range []string{"cold", "warm"} {
					got, err := cols.TagValues(context.Background(), "single-tenant", bk.metas, bk.head, req)
					if err != nil {
						t.Fatal(err)
					}
					gj, _ := json.Marshal(got.Values)
					wj, _ := json.Marshal(want.Values)
					if string(gj) != string(wj) {
						t.Errorf("%s, %s values for %s (%s): %s, OTLP path %s", bk.name, tag, q, run, gj, wj)
					}
					if read := uint64(got.Metrics.InspectedBytes); run == "cold" && read*2 > total {
						t.Errorf("%s, %s values for %s: read %d of %d bytes; the column path reads a few columns", bk.name, tag, q, read, total)
					}
				}
			}
		}
	}
	if nonEmpty < len(buckets)*len(queries)*len(tags)/2 {
		t.Errorf("only %d answers hold values; the test would not catch a missed value", nonEmpty)
	}
}

// TestNewQTagPlan: the column path takes only what columns hold.
func TestNewQTagPlan(t *testing.T) {
	for q, want := range map[string]bool{
		`{ resource.service.name = "a" }`:                     true,
		`{ name = "a" && (status = error || kind = server) }`: true,
		`{ span.http.method = "GET" }`:                        false, // generic attribute
		`{ .service.name = "a" }`:                             false, // unscoped
		`{ resource.service.name = "a" } && { name = "b" }`:   false, // spanset operator
		`{ }`:                     false, // tagValuesFast's case
		`{ statusMessage = "x" }`: false,
	} {
		query, err := traceql.Parse(q)
		if err != nil {
			t.Fatal(q, err)
		}
		_, ok := newQTagPlan(query, &traceql.Attribute{Scope: traceql.ScopeIntrinsic, Intrinsic: traceql.IntrinsicName})
		if ok != want {
			t.Errorf("%s: applies %v, want %v", q, ok, want)
		}
	}
	query, _ := traceql.Parse(`{ resource.service.name = "a" }`)
	if _, ok := newQTagPlan(query, &traceql.Attribute{Scope: traceql.ScopeSpan, Name: "http.method"}); ok {
		t.Error("a span attribute tag has no column of its own")
	}
}

// TestTagValuesRootNamesFromHead: rootName and rootServiceName values
// include the roots of traces still in the head (both paths used to skip
// them, the fast one offering "" instead).
func TestTagValuesRootNamesFromHead(t *testing.T) {
	srv, b, metas, _ := liveServer(t)
	headRoots := map[string]map[string]bool{"rootName": {}, "rootServiceName": {}}
	srv.ForEachHeadTrace("single-tenant", func(_ block.TraceID, parts []ptrace.Traces) bool {
		td := parts[0]
		if len(parts) > 1 {
			td = blocks.Combine(parts...)
		}
		if svc, name, ok := rootOf(td); ok {
			headRoots["rootName"][name] = true
			headRoots["rootServiceName"][svc] = true
		}
		return true
	})
	for _, e := range []*Engine{NewEngine(b, Options{}), NewEngine(b, Options{Generic: true})} {
		for tag, want := range headRoots {
			if len(want) == 0 {
				t.Fatalf("no %s in the head; the test needs some", tag)
			}
			for _, q := range []string{"", `{ kind != unspecified }`} {
				v := url.Values{}
				if q != "" {
					v.Set("q", q)
				}
				req, err := ParseTagValuesRequest(tag, true, v)
				if err != nil {
					t.Fatal(err)
				}
				resp, err := e.TagValues(context.Background(), "single-tenant", metas, srv, req)
				if err != nil {
					t.Fatal(err)
				}
				got := map[string]bool{}
				for _, tv := range resp.Values {
					if tv.Value == "" {
						t.Errorf("generic=%v %s q=%q: an empty value is offered", e.opts.Generic, tag, q)
					}
					got[tv.Value] = true
				}
				for name := range want {
					if !got[name] {
						t.Errorf("generic=%v %s q=%q: head root %q missing", e.opts.Generic, tag, q, name)
					}
				}
			}
		}
	}
}

// TestTagNamesFromColumnsMatchGeneric: tag names of vParquet4 blocks from
// Key-column dictionaries and fixed/dedicated column statistics equal the
// OTLP path's, for every scope, on Tempo's blocks and on tracectl's own
// (whose dedicated columns hold http.route and others) with a head.
func TestTagNamesFromColumnsMatchGeneric(t *testing.T) {
	buckets := columnTestBuckets(t)
	tracectl := buckets[len(buckets)-1]
	buckets = append(buckets, testBucket{"tracectl block", tracectl.b, tracectl.metas, nil})
	for _, bk := range buckets {
		fast, gen := NewEngine(bk.b, Options{}), NewEngine(bk.b, Options{Generic: true})
		for _, scope := range []string{"", "resource", "span", "event", "link", "instrumentation", "intrinsic"} {
			v := url.Values{}
			if scope != "" {
				v.Set("scope", scope)
			}
			req, err := ParseTagsRequest(v)
			if err != nil {
				t.Fatal(err)
			}
			want, err := gen.TagNames(context.Background(), "single-tenant", bk.metas, bk.head, req)
			if err != nil {
				t.Fatal(err)
			}
			for _, run := range []string{"cold", "warm"} {
				got, err := fast.TagNames(context.Background(), "single-tenant", bk.metas, bk.head, req)
				if err != nil {
					t.Fatal(err)
				}
				gj, _ := json.Marshal(got.V2())
				wj, _ := json.Marshal(want.V2())
				if string(gj) != string(wj) {
					t.Errorf("%s scope %q (%s):\ncolumns %s\nOTLP    %s", bk.name, scope, run, gj, wj)
				}
			}
		}
	}
}
