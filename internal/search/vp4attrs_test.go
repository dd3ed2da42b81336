package search

import (
	"context"
	"encoding/json"
	"net/url"
	"testing"

	"github.com/tracectl/tracectl/internal/blocks"
	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/storage"
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
