package query

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/ingest"
	"github.com/tracectl/tracectl/internal/otlptest"
	"github.com/tracectl/tracectl/internal/server"
	"github.com/tracectl/tracectl/internal/storage/storagetest"
)

// Strict mirrors of what Grafana's Tempo data source decodes (GRAFANA.md
// §3): decoding with DisallowUnknownFields fails on any field Grafana's
// strict jsonpb decoder would refuse, and the Go types refuse numbers where
// protobuf-JSON has strings.
type (
	strictSearch struct {
		Traces  []strictTrace  `json:"traces"`
		Metrics *strictMetrics `json:"metrics"`
	}
	strictTrace struct {
		TraceID           string                 `json:"traceID"`
		RootServiceName   string                 `json:"rootServiceName"`
		RootTraceName     string                 `json:"rootTraceName"`
		StartTimeUnixNano string                 `json:"startTimeUnixNano"`
		DurationMs        *uint32                `json:"durationMs"`
		SpanSet           *strictSpanSet         `json:"spanSet"`
		SpanSets          []strictSpanSet        `json:"spanSets"`
		ServiceStats      map[string]strictStats `json:"serviceStats"`
	}
	strictStats struct {
		SpanCount  uint32 `json:"spanCount"`
		ErrorCount uint32 `json:"errorCount"`
	}
	strictSpanSet struct {
		Spans      []strictSpan `json:"spans"`
		Matched    uint32       `json:"matched"`
		Attributes []strictKV   `json:"attributes"`
	}
	strictSpan struct {
		SpanID            string     `json:"spanID"`
		Name              string     `json:"name"`
		StartTimeUnixNano string     `json:"startTimeUnixNano"`
		DurationNanos     string     `json:"durationNanos"`
		Attributes        []strictKV `json:"attributes"`
	}
	strictKV struct {
		Key   string `json:"key"`
		Value struct {
			StringValue *string  `json:"stringValue"`
			IntValue    *string  `json:"intValue"`
			DoubleValue *float64 `json:"doubleValue"`
			BoolValue   *bool    `json:"boolValue"`
		} `json:"value"`
	}
	strictMetrics struct {
		InspectedTraces uint32 `json:"inspectedTraces"`
		InspectedBytes  string `json:"inspectedBytes"`
		TotalBlocks     uint32 `json:"totalBlocks"`
		CompletedJobs   uint32 `json:"completedJobs"`
		TotalJobs       uint32 `json:"totalJobs"`
		TotalBlockBytes string `json:"totalBlockBytes"`
		InspectedSpans  string `json:"inspectedSpans"`
	}
	strictTagsV2 struct {
		Scopes []struct {
			Name string   `json:"name"`
			Tags []string `json:"tags"`
		} `json:"scopes"`
		Metrics *strictMetrics `json:"metrics"`
	}
	strictTagsV1 struct {
		TagNames []string       `json:"tagNames"`
		Metrics  *strictMetrics `json:"metrics"`
	}
	strictValuesV2 struct {
		TagValues []struct {
			Type  string `json:"type"`
			Value string `json:"value"`
		} `json:"tagValues"`
		Metrics *strictMetrics `json:"metrics"`
	}
	strictValuesV1 struct {
		TagValues []string       `json:"tagValues"`
		Metrics   *strictMetrics `json:"metrics"`
	}
)

// decodeStrict decodes a 200 JSON answer into v, failing on unknown fields.
func decodeStrict(t testing.TB, what string, got httpResult, v any) {
	t.Helper()
	if got.status != http.StatusOK || got.header.Get("Content-Type") != "application/json" {
		t.Fatalf("%s: %s", what, got)
	}
	dec := json.NewDecoder(bytes.NewReader(got.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: Grafana's strict decoder would fail: %v\n%s", what, err, shorten(string(got.body)))
	}
}

// corpusFacts are what the public corpus says the answers must hold.
type corpusFacts struct {
	services      map[string]bool          // every resource service.name
	frontendIDs   map[string]bool          // traces with a frontend resource (hex without leading zeros)
	frontendNames map[string]bool          // span names under frontend resources
	traces        map[string]ptrace.Traces // by ID without leading zeros
	statuses      map[string]bool          // status keywords used
}

func factsOf(c *otlptest.Corpus) corpusFacts {
	f := corpusFacts{services: map[string]bool{}, frontendIDs: map[string]bool{}, frontendNames: map[string]bool{},
		traces: map[string]ptrace.Traces{}, statuses: map[string]bool{}}
	for idHex, td := range c.ByID {
		id := strings.TrimLeft(idHex, "0")
		f.traces[id] = td
		for i := 0; i < td.ResourceSpans().Len(); i++ {
			rs := td.ResourceSpans().At(i)
			svc := ""
			if v, ok := rs.Resource().Attributes().Get("service.name"); ok {
				svc = v.AsString()
				f.services[svc] = true
			}
			for j := 0; j < rs.ScopeSpans().Len(); j++ {
				spans := rs.ScopeSpans().At(j).Spans()
				for k := 0; k < spans.Len(); k++ {
					sp := spans.At(k)
					f.statuses[map[ptrace.StatusCode]string{ptrace.StatusCodeUnset: "unset", ptrace.StatusCodeOk: "ok", ptrace.StatusCodeError: "error"}[sp.Status().Code()]] = true
					if svc == "frontend" {
						f.frontendIDs[id] = true
						f.frontendNames[sp.Name()] = true
					}
				}
			}
		}
	}
	return f
}

// liveServer is tracectl serve in-process: OTLP/HTTP in, WAL + head,
// blocks in a file bucket, and the query API over HTTP on 127.0.0.1.
type liveServer struct {
	srv     *server.Server
	api     *API
	base    string
	otlpURL string
}

func startLiveServer(t *testing.T, multiTenant bool) *liveServer {
	t.Helper()
	dir := t.TempDir()
	b := storagetest.OpenDir(t, filepath.Join(dir, "bucket"))
	log := slog.New(slog.DiscardHandler)
	ls := &liveServer{}
	var err error
	ls.srv, err = server.New(server.Config{
		Bucket: b, WALDir: filepath.Join(dir, "wal"), MaxBlockDuration: time.Hour, IngestionRateBytes: -1, Logger: log,
		OnBlockFlushed: func(tenant string, meta *block.Meta) { ls.api.BlockFlushed(tenant, meta) },
	})
	if err != nil {
		t.Fatal(err)
	}
	ls.api, err = New(Config{Bucket: b, Head: ls.srv, MultiTenancy: multiTenant, PollInterval: time.Hour, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ls.api.Start()
	ls.srv.Start()
	set, err := ingest.NewSet(ingest.ReceiversConfig{OTLPHTTP: &ingest.Config{Endpoint: "127.0.0.1:0"}, MultiTenancy: multiTenant}, ls.srv, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := set.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	// As serve runs it: HTTP/1.1 and cleartext HTTP/2 for gRPC streaming.
	hs := httptest.NewUnstartedServer(ls.api.Handler())
	EnableH2C(hs.Config)
	hs.Start()
	ls.base = hs.URL
	ls.otlpURL = "http://" + set.Addrs()[ingest.ProtocolOTLPHTTP].String() + "/v1/traces"
	t.Cleanup(func() {
		hs.Close()
		_ = set.Shutdown(context.Background())
		_ = ls.srv.Shutdown(context.Background())
		ls.api.Close()
	})
	return ls
}

// send posts every corpus request over OTLP/HTTP protobuf.
func (ls *liveServer) send(t *testing.T, c *otlptest.Corpus, tenant string) {
	t.Helper()
	for i, td := range c.Lines {
		body, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest(http.MethodPost, ls.otlpURL, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/x-protobuf")
		if tenant != "" {
			req.Header.Set(TenantHeader, tenant)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("corpus line %d: OTLP/HTTP %d", i+1, resp.StatusCode)
		}
	}
}

// The corpus' spans lie in 2026-11-20 10:00–10:27 UTC; Grafana sends the
// panel range.
const replayStart, replayEnd = "1795165200", "1795172400"

// TestGrafanaReplay runs GRAFANA.md §8 steps 1–8 against tracectl serve
// (in-process, multi-tenant) fed with the public corpus over OTLP: first
// with every span still in the head, then after the head was flushed to
// blocks, then with one tenant's traces split between both.
func TestGrafanaReplay(t *testing.T) {
	corpus := otlptest.LoadCorpus(t)
	facts := factsOf(corpus)
	ls := startLiveServer(t, true)
	ls.send(t, corpus, "t1")
	t.Run("head", func(t *testing.T) { replay(t, ls.base, facts, "t1") })
	if err := ls.srv.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Run("blocks", func(t *testing.T) { replay(t, ls.base, facts, "t1") })
	// Tenant t2 gets the first half of the corpus into a block and the
	// rest in the head.
	half := len(corpus.Lines) / 2
	ls.send(t, &otlptest.Corpus{Lines: corpus.Lines[:half]}, "t2")
	if err := ls.srv.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	ls.send(t, &otlptest.Corpus{Lines: corpus.Lines[half:]}, "t2")
	t.Run("head+blocks", func(t *testing.T) { replay(t, ls.base, facts, "t2") })
	t.Run("other tenant", func(t *testing.T) {
		got := get(t, ls.base, "/api/search?q=%7B%7D&start="+replayStart+"&end="+replayEnd, TenantHeader, "t3")
		var res strictSearch
		decodeStrict(t, "search of an empty tenant", got, &res)
		if len(res.Traces) != 0 {
			t.Errorf("tenant t3 sees %d traces of other tenants", len(res.Traces))
		}
		if got := get(t, ls.base, "/api/search?q=%7B%7D"); got.status != http.StatusUnauthorized {
			t.Errorf("search without a tenant: %s", got)
		}
	})
}

func replay(t *testing.T, base string, facts corpusFacts, tenant string) {
	h := []string{TenantHeader, tenant}
	get := func(path string, extra ...string) httpResult {
		t.Helper()
		return get(t, base, path, append(append([]string{}, h...), extra...)...)
	}

	// 1. Save & test.
	if got := get("/api/echo"); got.status != 200 {
		t.Errorf("step 1, echo: %s", got)
	}

	// 2. Explore opens: scoped tag names.
	var tags strictTagsV2
	decodeStrict(t, "step 2, tags", get("/api/v2/search/tags?limit=5000"), &tags)
	scopes := map[string][]string{}
	for _, s := range tags.Scopes {
		scopes[s.Name] = s.Tags
	}
	if !contains(scopes["resource"], "service.name") || !contains(scopes["intrinsic"], "name") || !contains(scopes["intrinsic"], "status") {
		t.Errorf("step 2: scopes lack resource service.name or intrinsics: %v", scopes)
	}
	if len(scopes["span"]) == 0 {
		t.Errorf("step 2: no span attributes: %v", scopes)
	}

	// 3. Search tab: three drop-downs.
	services := tagValues(t, get("/api/v2/search/tag/resource.service.name/values?limit=5000&q=%7B%7D&tag=resource.service.name"), "step 3, services")
	if want := keys(facts.services); !equalSets(services["string"], want) || len(services) != 1 {
		t.Errorf("step 3: service values %v, want strings %v", services, want)
	}
	names := tagValues(t, get("/api/v2/search/tag/name/values?limit=5000&q=%7B%7D&tag=name"), "step 3, names")
	if len(names["string"]) == 0 || len(names) != 1 {
		t.Errorf("step 3: span names %v", names)
	}
	statuses := tagValues(t, get("/api/v2/search/tag/status/values?limit=5000&q=%7B%7D&tag=status"), "step 3, statuses")
	if !equalSets(statuses["keyword"], keys(facts.statuses)) || len(statuses) != 1 {
		t.Errorf("step 3: status values %v, want keywords %v", statuses, keys(facts.statuses))
	}

	// 4. Pick a service, run the search; then span names again, filtered.
	var res strictSearch
	decodeStrict(t, "step 4, search", get("/api/search?q=%7Bresource.service.name%3D%22frontend%22%7D&start="+replayStart+"&end="+replayEnd,
		"Accept", "application/json"), &res)
	if want := min(20, len(facts.frontendIDs)); len(res.Traces) != want {
		t.Errorf("step 4: %d traces, want %d", len(res.Traces), want)
	}
	for _, tr := range res.Traces {
		if !facts.frontendIDs[tr.TraceID] {
			t.Errorf("step 4: trace %s has no frontend span", tr.TraceID)
		}
		if tr.SpanSet == nil || len(tr.SpanSets) == 0 || tr.SpanSet.Matched == 0 || len(tr.SpanSet.Spans) == 0 || len(tr.SpanSet.Spans) > 3 {
			t.Errorf("step 4: trace %s span sets %+v / %+v", tr.TraceID, tr.SpanSet, tr.SpanSets)
		}
		if tr.StartTimeUnixNano == "" || tr.RootServiceName == "" {
			t.Errorf("step 4: trace %s lacks start or root service: %+v", tr.TraceID, tr)
		}
	}
	filtered := tagValues(t, get("/api/v2/search/tag/name/values?limit=5000&q=%7Bresource.service.name%3D%22frontend%22%7D&tag=name"), "step 4, names")
	if !equalSets(filtered["string"], keys(facts.frontendNames)) {
		t.Errorf("step 4: frontend span names %v, want %v", filtered["string"], keys(facts.frontendNames))
	}

	// 5. Open each result: protobuf v2, the corpus trace span for span.
	for _, tr := range res.Traces {
		got := get("/api/v2/traces/"+tr.TraceID, "Accept", "application/protobuf")
		if got.status != 200 || got.header.Get("Content-Type") != contentTypeProtobuf {
			t.Errorf("step 5, trace %s: %s", tr.TraceID, got)
			continue
		}
		otlptest.AssertEqual(t, facts.traces[tr.TraceID], decodeTrace(t, got, true))
	}
	if got := get("/api/v2/traces/0123456789abcdef", "Accept", "application/protobuf"); got.status != 200 || !bytes.Equal(got.body, []byte{0x0a, 0, 0x12, 0}) {
		t.Errorf("step 5, unknown trace: %d %x", got.status, got.body)
	}
	if got := get("/api/traces/0123456789abcdef", "Accept", "application/protobuf"); got.status != 404 {
		t.Errorf("step 5, unknown trace v1: %s", got)
	}

	// 6. Autocomplete with unfinished text: 200, never 400.
	methods := tagValues(t, get("/api/v2/search/tag/span.http.method/values?limit=5000&q=%7B%20resource.service.name%20%3D%20%7D&tag=span.http.method"), "step 6")
	if len(methods["string"]) == 0 {
		t.Errorf("step 6: no span.http.method values: %v", methods)
	}

	// 7. TraceQL metrics: rate() over every span, per 60 s step; the
	// rates times the step add up to the corpus's spans in the range.
	got := get("/api/metrics/query_range?q=%7B%7D%20%7C%20rate()&start=" + replayStart + "&end=" + replayEnd + "&step=60s")
	var qr struct {
		Series []struct {
			Samples []struct {
				TimestampMs string  `json:"timestampMs"`
				Value       float64 `json:"value"`
			} `json:"samples"`
		} `json:"series"`
	}
	if got.status != 200 || json.Unmarshal(got.body, &qr) != nil || len(qr.Series) != 1 {
		t.Errorf("step 7: %s", got)
	} else {
		from, _ := strconv.ParseInt(replayStart, 10, 64)
		to, _ := strconv.ParseInt(replayEnd, 10, 64)
		// Distinct spans: the engine counts a span stored twice once (the
		// corpus repeats one).
		want := 0
		for _, td := range facts.traces {
			seen := map[[9]byte]bool{}
			for _, rs := range td.ResourceSpans().All() {
				for _, ss := range rs.ScopeSpans().All() {
					for _, sp := range ss.Spans().All() {
						id := sp.SpanID()
						k := [9]byte{id[0], id[1], id[2], id[3], id[4], id[5], id[6], id[7], byte(sp.Kind())}
						if st := sp.StartTimestamp().AsTime().Unix(); st >= from && st < to && !seen[k] {
							seen[k] = true
							want++
						}
					}
				}
			}
		}
		sum := 0.0
		for _, smp := range qr.Series[0].Samples {
			sum += smp.Value * 60
		}
		if want == 0 || math.Abs(sum-float64(want)) > 0.5 {
			t.Errorf("step 7: rate() × step sums to %.1f spans, want %d", sum, want)
		}
	}

	// 8. Older Grafana.
	var bi map[string]string
	if got := get("/api/status/buildinfo"); got.status != 200 || json.Unmarshal(got.body, &bi) != nil || bi["goVersion"] == "" {
		t.Errorf("step 8, buildinfo: %s", got)
	}
	var all strictSearch
	decodeStrict(t, "step 8, search", get("/api/search?q=%7B%7D&limit=20&spss=3&start="+replayStart+"&end="+replayEnd), &all)
	if len(all.Traces) != 20 {
		t.Errorf("step 8: {} with limit 20 gave %d traces", len(all.Traces))
	}
	seen := map[string]bool{}
	for _, tr := range all.Traces {
		if seen[tr.TraceID] || facts.traces[tr.TraceID].SpanCount() == 0 {
			t.Errorf("step 8: trace %s repeated or not in the corpus", tr.TraceID)
		}
		seen[tr.TraceID] = true
	}
	if got := get("/api/metrics/query_range?query=%7B%7D%20%7C%20rate()&start=" + replayStart + "&end=" + replayEnd); got.status != 200 || !strings.Contains(string(got.body), `"series"`) {
		t.Errorf("step 8, proxy-era metrics (query=): %s", got)
	}
	if got := get("/api/metrics/query_range?q=%7B%7D%20%7C%20nosuchfunction()&start=" + replayStart + "&end=" + replayEnd); got.status != 400 {
		t.Errorf("step 8, bad metrics query: %s", got)
	}
	for _, p := range []string{"//api/echo", "//api/v2/search/tags?limit=5000", "//api/search?q=%7B%7D&limit=5&start=" + replayStart + "&end=" + replayEnd,
		"//api/v2/search/tag/resource.service.name/values"} {
		if got := get(p); got.status != 200 {
			t.Errorf("step 8, %s: %s", p, got)
		}
	}
}

// tagValues decodes a v2 tag-values answer into type → values.
func tagValues(t *testing.T, got httpResult, what string) map[string][]string {
	t.Helper()
	var v strictValuesV2
	decodeStrict(t, what, got, &v)
	out := map[string][]string{}
	for _, tv := range v.TagValues {
		out[tv.Type] = append(out[tv.Type], tv.Value)
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func equalSets(a, b []string) bool {
	a, b = append([]string(nil), a...), append([]string(nil), b...)
	sort.Strings(a)
	sort.Strings(b)
	return fmt.Sprint(a) == fmt.Sprint(b)
}
