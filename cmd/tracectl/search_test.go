package main

import (
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/tracectl/tracectl/internal/tempoclient/tempotest"
)

// startSearchReplay serves Tempo's recorded /api/search answers, matching
// requests by their parameters in any order.
func startSearchReplay(t *testing.T) (*tempotest.Server, map[string]*tempotest.Exchange) {
	t.Helper()
	srv := tempotest.Start(t)
	byName := map[string]*tempotest.Exchange{}
	byQuery := map[string]*tempotest.Exchange{}
	for _, ex := range tempotest.Load(t) {
		byName[ex.Name] = ex
		if u, err := url.Parse(ex.Target); err == nil && u.Path == "/api/search" {
			byQuery[u.Query().Encode()] = ex
		}
	}
	srv.Handler = func(w http.ResponseWriter, r *http.Request) bool {
		ex := byQuery[r.URL.Query().Encode()]
		if r.URL.Path != "/api/search" || ex == nil {
			http.Error(w, "no recording for "+r.URL.String(), http.StatusTeapot)
			return true
		}
		w.Header().Set("Content-Type", ex.Header.Get("Content-Type"))
		w.WriteHeader(ex.Status)
		_, _ = w.Write(ex.Body)
		return true
	}
	return srv, byName
}

const (
	fixStart = "1795165200" // the recordings' window, 2026-11-20 09:00–11:00 UTC
	fixEnd   = "1795172400"
)

func TestSearchThroughServer(t *testing.T) {
	srv, rec := startSearchReplay(t)
	isolateEnv(t)

	// Piped: Tempo's JSON, byte for byte.
	res := runCLI(t, false, "search", "--tags", "service.name=frontend", "--limit", "5", "--start", fixStart, "--end", fixEnd, "--server", srv.URL)
	if res.code != 0 || res.stdout != string(rec["search-tags-service"].Body)+"\n" {
		t.Fatalf("exit %d, stdout %.200q, stderr %q", res.code, res.stdout, res.stderr)
	}
	if got := srv.Requests()[0].Header.Get("X-Scope-OrgID"); got != "single-tenant" {
		t.Errorf("tenant header %q", got)
	}

	// On a terminal: a table of the same traces.
	res = runCLI(t, true, "search", "{ resource.service.name = \"frontend\" }", "--limit", "3", "--spss", "2",
		"--start", fixStart, "--end", fixEnd, "--server", srv.URL)
	if res.code != 0 {
		t.Fatalf("table: exit %d %s", res.code, res.stderr)
	}
	lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
	if len(lines) != 4 || !strings.Contains(lines[0], "TRACE ID") || !strings.Contains(lines[1], "cbcb62be2746c23cc69e88c20292c529") ||
		!strings.Contains(lines[1], "frontend") || !strings.Contains(lines[1], "2026-11-20T10:24:04.178Z") || !strings.Contains(lines[1], "1.505s") ||
		!strings.Contains(lines[1], "recommendation(1 err)") {
		t.Errorf("table:\n%s", res.stdout)
	}
	// -o json on a terminal still gives JSON.
	res = runCLI(t, true, "search", "{ resource.service.name = \"frontend\" }", "--limit", "3", "--spss", "2",
		"--start", fixStart, "--end", fixEnd, "--server", srv.URL, "-o", "json")
	if !json.Valid([]byte(res.stdout)) {
		t.Errorf("-o json on a terminal: %.100q", res.stdout)
	}

	// A query the server refuses is a usage error with its message.
	res = runCLI(t, false, "search", "{ span.foo = }", "--start", fixStart, "--end", fixEnd, "--server", srv.URL)
	if res.code != exitUsage || !strings.Contains(res.stderr, "invalid TraceQL query: parse error at line 1, col 14") || res.stdout != "" {
		t.Errorf("bad query: exit %d, stderr %q", res.code, res.stderr)
	}
}

func TestSearchUsageErrors(t *testing.T) {
	isolateEnv(t)
	for _, args := range [][]string{
		{"search", "{}", "--tags", "service.name=x"},
		{"search", "{}", "{}"},
		{"search", "--limit", "-1"},
		{"search", "--min-duration", "2s", "--max-duration", "1s"},
		{"search", "--start", "yesterday-ish"},
		{"search", "--start", "2026-11-21", "--end", "2026-11-20"},
		{"search", "-o", "yaml"},
		{"search", "--server", "ftp://x"},
	} {
		if res := runCLI(t, false, args...); res.code != exitUsage || res.stderr == "" {
			t.Errorf("%v: exit %d, stderr %q", args, res.code, res.stderr)
		}
	}
	// Nothing listening: an error (1) that says so.
	res := runCLI(t, false, "search", "--server", "http://127.0.0.1:1")
	if res.code != exitError || !strings.Contains(res.stderr, "connection refused") {
		t.Errorf("unreachable server: exit %d, stderr %q", res.code, res.stderr)
	}
}

// TestSearchBucket runs the engine over the Tempo-written fixture blocks:
// the same traces as Tempo's recorded answer to the same query.
func TestSearchBucket(t *testing.T) {
	bucket, _ := fixtureBucket(t, "vparquet4")
	_, rec := startSearchReplay(t)
	isolateEnv(t)
	ids := func(body string) []string {
		var v struct {
			Traces []struct {
				TraceID string `json:"traceID"`
			} `json:"traces"`
		}
		if err := json.Unmarshal([]byte(body), &v); err != nil {
			t.Fatalf("%v: %.200q", err, body)
		}
		var out []string
		for _, tr := range v.Traces {
			out = append(out, tr.TraceID)
		}
		sort.Strings(out)
		return out
	}
	res := runCLI(t, false, "search", `{ resource.service.name = "frontend" && duration > 10ms }`, "--start", fixStart, "--end", fixEnd, "--storage", bucket)
	if res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	if got, want := ids(res.stdout), ids(string(rec["search-traceql-service-duration"].Body)); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("traces %v\nTempo  %v", got, want)
	}
	res = runCLI(t, false, "search", "--tags", "service.name=checkout", "--min-duration", "100ms", "--max-duration", "2s", "--limit", "50",
		"--start", fixStart, "--end", fixEnd, "--storage", bucket)
	if res.code != 0 || len(ids(res.stdout)) < len(ids(string(rec["search-tags-minmax-duration"].Body))) {
		t.Errorf("tags search: exit %d %s %s", res.code, res.stdout, res.stderr)
	}
	res = runCLI(t, true, "search", `{ resource.service.name = "does-not-exist" }`, "--storage", bucket)
	if res.code != 0 || !strings.Contains(res.stderr, "no traces found") {
		t.Errorf("no match: exit %d, stderr %q", res.code, res.stderr)
	}
	res = runCLI(t, false, "search", "{ span.foo = }", "--storage", bucket)
	if res.code != exitUsage || !strings.Contains(res.stderr, "parse error") {
		t.Errorf("bad query: exit %d, stderr %q", res.code, res.stderr)
	}
}

// TestSearchBucketSkipsUnreadableBlock: with one block's data.parquet
// damaged, search answers from the other blocks and warns naming the
// block (as get does); with every block damaged it fails.
func TestSearchBucketSkipsUnreadableBlock(t *testing.T) {
	bucket, dir := fixtureBucket(t, "vparquet4")
	isolateEnv(t)
	all := runCLI(t, false, "search", "{}", "--limit", "1000", "--start", fixStart, "--end", fixEnd, "--storage", bucket, "-o", "json")
	if all.code != 0 {
		t.Fatalf("exit %d: %s", all.code, all.stderr)
	}
	files, err := filepath.Glob(filepath.Join(dir, "single-tenant", "*", "data.parquet"))
	if err != nil || len(files) < 2 {
		t.Fatalf("data files: %v %v", files, err)
	}
	damage := func(f string) {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i := len(data) / 3; i < len(data); i++ {
			data[i] ^= 0x5a
		}
		if err := os.WriteFile(f, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	damage(files[0])
	bad := filepath.Base(filepath.Dir(files[0]))
	res := runCLI(t, false, "search", "{}", "--limit", "1000", "--start", fixStart, "--end", fixEnd, "--storage", bucket, "-o", "json")
	if res.code != 0 || !strings.Contains(res.stderr, "warning: block single-tenant/"+bad+" skipped") {
		t.Fatalf("one block damaged: exit %d, stderr %q; want answers and a warning naming block %s", res.code, res.stderr, bad)
	}
	if n, whole := strings.Count(res.stdout, `"traceID"`), strings.Count(all.stdout, `"traceID"`); n == 0 || n >= whole {
		t.Errorf("one block damaged: %d traces, %d with every block; want the other blocks' traces", n, whole)
	}
	for _, f := range files[1:] {
		damage(f)
	}
	if res := runCLI(t, false, "search", "{}", "--start", fixStart, "--end", fixEnd, "--storage", bucket); res.code == 0 || !strings.Contains(res.stderr, "every block") {
		t.Errorf("every block damaged: exit %d, stderr %q; want a failure", res.code, res.stderr)
	}
}
