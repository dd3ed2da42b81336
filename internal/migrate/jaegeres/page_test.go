package jaegeres

import (
	"strings"
	"testing"
)

// TestParsePage: the one-pass walk of a search answer finds the PIT id,
// the shard counts, every hit's index, id, _source (with braces, quotes
// and backslashes inside strings) and the last sort values, in any
// white space; an empty or null hits array is the end; broken answers
// are errors.
func TestParsePage(t *testing.T) {
	r := newPageReader(&exporter{o: exportOptions{dec: &Decoder{}}})
	src := func(op string) string {
		return `{"traceID":"00000000000000a1","spanID":"0b","startTime":1700000000000000,"operationName":` + op + `,"process":{"serviceName":"s"}}`
	}
	body := "{ \"took\" : 3, \"pit_id\":\"p\\/1==\", \"_shards\":{\"total\":5,\"successful\":4,\"failed\":1},\n" +
		`"hits":{"total":{"value":2,"relation":"eq"},"max_score":null,"hits":[` +
		` {"_index":"jaeger-span-2026-11-18","_id":"a\"b","_score":null,"_source":` + src(`"get } ] { [ \"x\" \\"`) + `,"sort":["00000000000000a1","0b",1700000000000000,7]},` + "\n" +
		`{"_index":"jaeger-span-2026-11-18","_id":"c","_source":` + src(`"plain"`) + `,"sort":["00000000000000a2","0c",1,8],"extra":[{"x":[1,{"y":"]"}]},true,null,-1.5e3]}` +
		`]}, "timed_out": false}`
	res, err := r.parse([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if res.pitID != "p/1==" || res.failed != 1 || res.total != 5 {
		t.Errorf("pit %q failed %d total %d", res.pitID, res.failed, res.total)
	}
	if len(res.hits) != 2 {
		t.Fatalf("%d hits, want 2", len(res.hits))
	}
	h := res.hits[0]
	if h.err != nil || h.index != "jaeger-span-2026-11-18" || h.id != `a"b` || h.key != "00000000000000a1" || h.span.OperationName != `get } ] { [ "x" \` {
		t.Errorf("hit 0: %+v (span %+v)", h, h.span)
	}
	if h.size != len(src(`"get } ] { [ \"x\" \\"`)) {
		t.Errorf("hit 0: size %d", h.size)
	}
	if h := res.hits[1]; h.err != nil || h.id != "c" || h.key != "00000000000000a2" || h.span.OperationName != "plain" {
		t.Errorf("hit 1: %+v", h)
	}
	if len(res.after) != 4 || res.after[0] != "00000000000000a2" {
		t.Errorf("search_after %v", res.after)
	}

	for _, empty := range []string{`{"hits":{"hits":[]}}`, `{"hits":{"hits":null}}`, `{"hits":{}}`, `{"_shards":{"failed":0}}`} {
		res, err := r.parse([]byte(empty))
		if err != nil || len(res.hits) != 0 {
			t.Errorf("%s: %v, %d hits", empty, err, len(res.hits))
		}
	}
	for _, bad := range []struct{ body, want string }{
		{`{"hits":{"hits":[1]}}`, "hits.hits[0] is not an object"},
		{`{"hits":{"hits":[{"_index":3}]}}`, "hits.hits[0]: _index is not a string"},
		{`{"hits":{"hits":{}}}`, "hits.hits is not an array"},
		{`{"hits":{"hits":[{"_index":"a","_source":{"x":"y}]}}`, "unterminated"},
		{`{"hits":{"hits":[{"_index":"a"} {"_index":"b"}]}}`, "',' or ']' is expected"},
		{`{"hits":{"hits":[{"_index":"a","_id"}]}}`, "':' is expected"},
		{`[]`, "not a JSON object"},
		{``, "not a JSON object"},
	} {
		_, err := r.parse([]byte(bad.body))
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%s: error %v, want %q", bad.body, err, bad.want)
		}
	}
	// A _source that is not an object decodes as a missing one.
	res, err = r.parse([]byte(`{"hits":{"hits":[{"_index":"a","_id":"b","_source":"x","sort":["k"]}]}}`))
	if err != nil || len(res.hits) != 1 || res.hits[0].err == nil || res.hits[0].key != "k" {
		t.Errorf("string _source: %v %+v", err, res)
	}
}
