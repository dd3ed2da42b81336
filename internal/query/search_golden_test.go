package query

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/tracectl/tracectl/internal/blocks/block"
)

// searchRecordings are the recorded /api/search exchanges compared with
// tracectl's answers over the same three blocks. search-no-range is left
// out on purpose: without start/end Tempo reads only recent in-memory
// data, tracectl searches every block (documented in search.go).
var searchRecordings = []string{
	"search-tags-service", "search-tags-minmax-duration", "search-traceql-service-duration", "search-traceql-http-5xx",
	"search-traceql-status-error", "search-traceql-minmax-duration", "search-traceql-all", "search-traceql-spss",
	"search-traceql-select", "search-traceql-no-match", "search-traceql-bad-query", "search-traceql-rootless",
	"search-traceql-unicode", "search-traceql-kind-unspecified", "search-traceql-dedicated-column",
}

// p03 is the corpus trace split across two of the fixture blocks: its
// span sets and (for a rootless match) its root come from whichever part
// answered first, so those vary between runs of Tempo itself.
const p03 = "305002328d372d90c18827d9a0b405fd"

// TestSearchMatchesRecordings serves the Tempo-written vParquet4 blocks
// and replays each recorded search: same status and content type; error
// bodies byte for byte; for 200 the strict Grafana schema, the same traces
// (or, where the limit cut Tempo's list, a consistent subset) with the
// same root names, times, durations, service stats and span sets.
func TestSearchMatchesRecordings(t *testing.T) {
	b, _ := fixtureBucket(t, "tempo", "vparquet4")
	_, base := startAPI(t, Config{Bucket: b})
	for _, name := range searchRecordings {
		t.Run(name, func(t *testing.T) {
			rec := loadRecording(t, name)
			got := get(t, base, rec.path)
			if got.status != rec.status || got.header.Get("Content-Type") != rec.contentType {
				t.Fatalf("%s; Tempo %d %s %s", got, rec.status, rec.contentType, shorten(string(rec.body)))
			}
			if rec.status != http.StatusOK {
				if string(got.body) != string(rec.body) {
					t.Errorf("body %q\nTempo %q", got.body, rec.body)
				}
				return
			}
			var ours, tempo strictSearch
			decodeStrict(t, "ours", got, &ours)
			decodeStrict(t, "Tempo's", httpResult{status: 200, header: rec.respHeader, body: rec.body}, &tempo)
			compareSearch(t, base, rec.path, &ours, &tempo)
		})
	}
}

func compareSearch(t *testing.T, base, path string, ours, tempo *strictSearch) {
	t.Helper()
	u, _ := url.Parse(path)
	limit := 20
	if l := u.Query().Get("limit"); l != "" {
		limit, _ = strconv.Atoi(l)
	}
	for i := 1; i < len(ours.Traces); i++ {
		a, _ := strconv.ParseUint(ours.Traces[i-1].StartTimeUnixNano, 10, 64)
		b, _ := strconv.ParseUint(ours.Traces[i].StartTimeUnixNano, 10, 64)
		if a < b {
			t.Errorf("results not newest first: %s before %s", ours.Traces[i-1].TraceID, ours.Traces[i].TraceID)
		}
	}
	byID := func(s *strictSearch) map[string]*strictTrace {
		m := map[string]*strictTrace{}
		for i := range s.Traces {
			m[s.Traces[i].TraceID] = &s.Traces[i]
		}
		return m
	}
	o, w := byID(ours), byID(tempo)
	if len(o) != len(ours.Traces) {
		t.Errorf("a trace is listed twice")
	}
	if len(tempo.Traces) < limit {
		if !equalSets(keys(setOf(o)), keys(setOf(w))) {
			t.Errorf("traces %v\nTempo  %v", keys(setOf(o)), keys(setOf(w)))
		}
	} else {
		// The limit cut Tempo's list: which traces come back varies. Every
		// trace either answer lists must be a match, as a search without
		// the cut shows.
		q := u.Query()
		q.Set("limit", "1000")
		var full strictSearch
		decodeStrict(t, "uncut search", get(t, base, u.Path+"?"+q.Encode()), &full)
		all := setOf(byID(&full))
		if len(ours.Traces) != limit {
			t.Errorf("%d traces, want the limit %d", len(ours.Traces), limit)
		}
		for id := range o {
			if !all[id] {
				t.Errorf("trace %s listed but not a match", id)
			}
		}
		for id := range w {
			if !all[id] {
				t.Errorf("Tempo's match %s missing from the uncut search", id)
			}
		}
	}
	for id, wt := range w {
		ot := o[id]
		if ot == nil {
			continue
		}
		compareTrace(t, id, ot, wt)
	}
	if tempo.Metrics != nil && tempo.Metrics.TotalBlocks != 0 && (ours.Metrics == nil || ours.Metrics.TotalBlocks != tempo.Metrics.TotalBlocks) {
		t.Errorf("metrics %+v, Tempo %+v", ours.Metrics, tempo.Metrics)
	}
}

func setOf(m map[string]*strictTrace) map[string]bool {
	out := map[string]bool{}
	for k := range m {
		out[k] = true
	}
	return out
}

func compareTrace(t *testing.T, id string, ot, wt *strictTrace) {
	t.Helper()
	split := id == strings.TrimLeft(p03, "0")
	field := func(what string, got, want any) {
		t.Helper()
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("trace %s %s: %v, Tempo %v", id, what, got, want)
		}
	}
	if !split || wt.RootServiceName != "<root span not yet received>" {
		field("rootServiceName", ot.RootServiceName, wt.RootServiceName)
		field("rootTraceName", ot.RootTraceName, wt.RootTraceName)
	}
	field("startTimeUnixNano", ot.StartTimeUnixNano, wt.StartTimeUnixNano)
	field("durationMs", deref(ot.DurationMs), deref(wt.DurationMs))
	field("serviceStats", stats(ot.ServiceStats), stats(wt.ServiceStats))
	field("has spanSet", ot.SpanSet != nil, wt.SpanSet != nil)
	field("span sets", len(ot.SpanSets), len(wt.SpanSets))
	if split || len(ot.SpanSets) != len(wt.SpanSets) {
		return
	}
	for i := range wt.SpanSets {
		os, ws := ot.SpanSets[i], wt.SpanSets[i]
		field("matched", os.Matched, ws.Matched)
		field("spans in set", len(os.Spans), len(ws.Spans))
		field("set attributes", kvs(os.Attributes), kvs(ws.Attributes))
		if int(ws.Matched) > len(ws.Spans) {
			continue // which spans Tempo shows of a larger set is its choice
		}
		field("spans", spans(os.Spans), spans(ws.Spans))
	}
	if ot.SpanSet != nil && wt.SpanSet != nil && len(ot.SpanSets) > 0 {
		field("spanSet = first of spanSets", spans(ot.SpanSet.Spans), spans(ot.SpanSets[0].Spans))
	}
}

func deref(p *uint32) uint32 {
	if p == nil {
		return 0
	}
	return *p
}

func stats(m map[string]strictStats) string {
	var out []string
	for k, v := range m {
		out = append(out, fmt.Sprintf("%s:%d/%d", k, v.SpanCount, v.ErrorCount))
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

func kvs(list []strictKV) string {
	var out []string
	for _, kv := range list {
		v, _ := json.Marshal(kv.Value)
		out = append(out, kv.Key+"="+string(v))
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

func spans(list []strictSpan) string {
	var out []string
	for _, s := range list {
		out = append(out, s.SpanID+" "+s.Name+" "+s.StartTimeUnixNano+" "+s.DurationNanos+" {"+kvs(s.Attributes)+"}")
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

// dedicatedNames are attributes the fixture blocks keep in dedicated
// columns: Tempo leaves them out of tag names over blocks, tracectl may
// list them (TEMPO-FORMAT.md §8).
var dedicatedNames = map[string]bool{"http.request.method": true, "url.path": true, "url.route": true, "server.address": true, "http.route": true}

// TestTagsMatchRecordings compares tag names and tag values with Tempo's
// recorded answers over the same blocks.
func TestTagsMatchRecordings(t *testing.T) {
	b, _ := fixtureBucket(t, "tempo", "vparquet4")
	_, base := startAPI(t, Config{Bucket: b})

	t.Run("tags-v1-range", func(t *testing.T) {
		rec := loadRecording(t, "tags-v1-range")
		var ours, tempo strictTagsV1
		decodeStrict(t, "ours", get(t, base, rec.path), &ours)
		decodeStrict(t, "Tempo's", httpResult{status: 200, header: rec.respHeader, body: rec.body}, &tempo)
		compareNames(t, "tagNames", ours.TagNames, tempo.TagNames)
		if !sort.StringsAreSorted(ours.TagNames) {
			t.Error("v1 tag names not sorted")
		}
	})
	for _, name := range []string{"tags-v2-range", "tags-v2-range-scope-resource"} {
		t.Run(name, func(t *testing.T) {
			rec := loadRecording(t, name)
			var ours, tempo strictTagsV2
			decodeStrict(t, "ours", get(t, base, rec.path), &ours)
			decodeStrict(t, "Tempo's", httpResult{status: 200, header: rec.respHeader, body: rec.body}, &tempo)
			scopes := func(v strictTagsV2) map[string][]string {
				m := map[string][]string{}
				for _, s := range v.Scopes {
					m[s.Name] = s.Tags
				}
				return m
			}
			o, w := scopes(ours), scopes(tempo)
			if !equalSets(mapKeys(o), mapKeys(w)) {
				t.Errorf("scopes %v, Tempo %v", mapKeys(o), mapKeys(w))
			}
			for scope, tags := range w {
				compareNames(t, scope, o[scope], tags)
			}
		})
	}
	for _, name := range []string{"tag-values-v2-resource.service.name-range", "tag-values-v2-span.http.status_code-range", "tag-values-v2-filtered-range"} {
		t.Run(name, func(t *testing.T) {
			rec := loadRecording(t, name)
			o := tagValues(t, get(t, base, rec.path), "ours")
			w := tagValues(t, httpResult{status: 200, header: rec.respHeader, body: rec.body}, "Tempo's")
			if fmt.Sprint(sortedValues(o)) != fmt.Sprint(sortedValues(w)) {
				t.Errorf("values %v\nTempo  %v", sortedValues(o), sortedValues(w))
			}
		})
	}
	t.Run("tag-values-v1-service.name-range", func(t *testing.T) {
		rec := loadRecording(t, "tag-values-v1-service.name-range")
		var ours, tempo strictValuesV1
		decodeStrict(t, "ours", get(t, base, rec.path), &ours)
		decodeStrict(t, "Tempo's", httpResult{status: 200, header: rec.respHeader, body: rec.body}, &tempo)
		if !equalSets(ours.TagValues, tempo.TagValues) {
			t.Errorf("values %v\nTempo  %v", ours.TagValues, tempo.TagValues)
		}
	})
	// Without start/end (Grafana's default) tracectl reads its newest
	// blocks, so old data still fills the drop-downs: here all three.
	t.Run("no range reads recent blocks", func(t *testing.T) {
		rec := loadRecording(t, "tag-values-v2-resource.service.name-range")
		o := tagValues(t, get(t, base, "/api/v2/search/tag/resource.service.name/values"), "ours")
		w := tagValues(t, httpResult{status: 200, header: rec.respHeader, body: rec.body}, "Tempo's")
		if fmt.Sprint(sortedValues(o)) != fmt.Sprint(sortedValues(w)) {
			t.Errorf("values without a range %v\nwant %v", sortedValues(o), sortedValues(w))
		}
	})
}

// TestTagBlocksWithoutRange: without start/end only the newest blocks are
// read, so the work stays bounded however old the store.
func TestTagBlocksWithoutRange(t *testing.T) {
	b, _ := fixtureBucket(t, "tempo", "vparquet4")
	a, _ := startAPI(t, Config{Bucket: b, TagsRecentBlocks: 2})
	metas, err := a.blocks.get(t.Context(), "single-tenant")
	if err != nil || len(metas) != 3 {
		t.Fatalf("%d blocks, %v", len(metas), err)
	}
	picked := a.tagBlocks(metas, false)
	if len(picked) != 2 {
		t.Fatalf("picked %d blocks, want 2", len(picked))
	}
	for _, m := range picked {
		for _, other := range metas {
			if other.EndTime.After(m.EndTime) && !containsMeta(picked, other) {
				t.Errorf("block ending %s picked over one ending %s", m.EndTime, other.EndTime)
			}
		}
	}
	if len(a.tagBlocks(metas, true)) != 3 {
		t.Error("a time range must not cut the block list")
	}
}

func containsMeta(list []*block.Meta, m *block.Meta) bool {
	for _, x := range list {
		if x == m {
			return true
		}
	}
	return false
}

func compareNames(t *testing.T, what string, ours, tempo []string) {
	t.Helper()
	o, w := map[string]bool{}, map[string]bool{}
	for _, n := range ours {
		o[n] = true
	}
	for _, n := range tempo {
		w[n] = true
		if !o[n] {
			t.Errorf("%s: %q missing (Tempo lists it)", what, n)
		}
	}
	for n := range o {
		if !w[n] && !dedicatedNames[n] {
			t.Errorf("%s: %q listed, Tempo does not", what, n)
		}
	}
}

func mapKeys(m map[string][]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func sortedValues(m map[string][]string) []string {
	var out []string
	for typ, vs := range m {
		for _, v := range vs {
			out = append(out, typ+":"+v)
		}
	}
	sort.Strings(out)
	return out
}
