package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/tracectl/tracectl/internal/iostreams"
	"github.com/tracectl/tracectl/internal/otlptest"
	"github.com/tracectl/tracectl/internal/render"
	"github.com/tracectl/tracectl/internal/tempoclient/tempotest"
)

func TestGetFromBucket(t *testing.T) {
	url, _ := fixtureBucket(t, "vparquet4")
	corpus := otlptest.LoadCorpus(t)
	isolateEnv(t)

	for _, tc := range []struct {
		arg, label string
	}{
		{"594dbe7e6cff645eb51079037485e52a", "P00"},
		{"594DBE7E6CFF645EB51079037485E52A", "P00"},
		{"00-594dbe7e6cff645eb51079037485e52a-3cdeabd114afbf66-01", "P00"},
		{"5b8efff798038103", "P05"},
		{"f1e2d3c4b5a6978877665544332", "P04"},
		{"305002328d372d90c18827d9a0b405fd", "P03"}, // in two blocks
	} {
		res := runCLI(t, false, "get", tc.arg, "--storage", url, "-o", "json")
		if res.code != 0 {
			t.Errorf("get %s: exit %d: %s", tc.arg, res.code, res.stderr)
			continue
		}
		var body struct {
			Trace json.RawMessage `json:"trace"`
		}
		if err := json.Unmarshal([]byte(res.stdout), &body); err != nil {
			t.Fatalf("get %s -o json: %v", tc.arg, err)
		}
		td, err := render.UnmarshalTempoTrace(body.Trace)
		if err != nil {
			t.Fatal(err)
		}
		otlptest.AssertEqual(t, corpus.ByID[otlptest.IDOf(tc.label)], td)
	}

	otlp := runCLI(t, false, "get", "5b8efff798038103", "--storage", url, "-o", "otlp-json")
	if otlp.code != 0 || !strings.Contains(otlp.stdout, `"traceId":"00000000000000005b8efff798038103"`) {
		t.Errorf("-o otlp-json: exit %d, hex trace IDs expected:\n%.300s", otlp.code, otlp.stdout)
	}

	nf := runCLI(t, false, "get", "deadbeefdeadbeefdeadbeefdeadbeef", "--storage", url)
	if nf.code != exitNotFound || !strings.Contains(nf.stderr, "single-tenant") || !strings.Contains(nf.stderr, url[len("file://"):]) {
		t.Errorf("not found: exit %d, stderr %q (want exit 3 naming tenant and bucket)", nf.code, nf.stderr)
	}
	if nf.stdout != "" {
		t.Errorf("not found printed to stdout: %q", nf.stdout)
	}
	// Outside the time window: not searched, so not found.
	old := runCLI(t, false, "get", "594dbe7e6cff645eb51079037485e52a", "--storage", url, "--end", "2026-11-19T00:00:00Z")
	if old.code != exitNotFound {
		t.Errorf("--end before the data: exit %d, want 3", old.code)
	}
	for _, bad := range []string{"xyz", strings.Repeat("a", 33), "", "00-zz-11-01", "00000000000000000000000000000000"} {
		res := runCLI(t, false, "get", bad, "--storage", url)
		if res.code != exitUsage || !strings.Contains(res.stderr, "traceparent") {
			t.Errorf("get %q: exit %d, stderr %q (want 2 with an example)", bad, res.code, res.stderr)
		}
	}
	if res := runCLI(t, false, "get", "--storage", url); res.code != exitUsage {
		t.Errorf("get without ID: exit %d", res.code)
	}
}

// getFormats are the -o formats whose output is compared with golden files
// under testdata/get, and whether they may differ between a terminal and a
// pipe.
var getFormats = []struct {
	name, ext string
	styled    bool
}{
	{"tree", "txt", true},
	{"table", "txt", true},
	{"json", "tempo.json", false},
	{"otlp-json", "otlp.json", false},
	{"jaeger-json", "jaeger.json", false},
	{"raw", "pb", false},
}

// TestGetOutputGolden prints corpus traces read from the vParquet4 fixture
// bucket in every format, on an 80-column terminal and piped, and compares
// them with testdata/get (go test ./cmd/tracectl -run TestGetOutputGolden -update).
func TestGetOutputGolden(t *testing.T) {
	url, _ := fixtureBucket(t, "vparquet4")
	corpus := otlptest.LoadCorpus(t)
	goldenDir, err := filepath.Abs(filepath.Join("testdata", "get"))
	if err != nil {
		t.Fatal(err)
	}
	isolateEnv(t)
	// P00: every span kind and status; P06: events, links, trace state;
	// P11: no root (an orphan under a placeholder); P09: 60 spans, 14 deep.
	for _, label := range []string{"P00", "P06", "P11", "P09"} {
		id := otlptest.IDOf(label)
		for _, f := range getFormats {
			var outs [2]cliResult
			for i, tty := range []bool{true, false} {
				if f.name == "raw" && tty {
					continue
				}
				outs[i] = runCLI(t, tty, "get", id, "--storage", url, "-o", f.name)
				if outs[i].code != 0 {
					t.Fatalf("%s -o %s (tty %v): exit %d: %s", label, f.name, tty, outs[i].code, outs[i].stderr)
				}
			}
			tty, piped := outs[0].stdout, outs[1].stdout
			if f.name != "raw" && strings.Contains(piped, "\x1b") {
				t.Errorf("%s -o %s piped carries escape sequences", label, f.name)
			}
			switch {
			case f.styled:
				if !strings.Contains(tty, "\x1b[") {
					t.Errorf("%s -o %s on a terminal has no colour", label, f.name)
				}
				goldenCompare(t, filepath.Join(goldenDir, label+"."+f.name+".tty."+f.ext), []byte(tty))
				goldenCompare(t, filepath.Join(goldenDir, label+"."+f.name+".piped."+f.ext), []byte(piped))
			case f.name == "raw":
				td, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces([]byte(piped))
				if err != nil {
					t.Fatalf("%s -o raw: %v", label, err)
				}
				otlptest.AssertEqual(t, corpus.ByID[id], td)
				goldenCompare(t, filepath.Join(goldenDir, label+".raw.pb"), []byte(piped))
			default:
				if tty != piped {
					t.Errorf("%s -o %s differs between a terminal and a pipe", label, f.name)
				}
				goldenCompare(t, filepath.Join(goldenDir, label+"."+f.ext), []byte(piped))
			}
		}
	}
	// The details view, piped.
	res := runCLI(t, false, "get", otlptest.IDOf("P06"), "--storage", url, "-o", "tree", "--attrs")
	if res.code != 0 {
		t.Fatalf("--attrs: exit %d: %s", res.code, res.stderr)
	}
	goldenCompare(t, filepath.Join(goldenDir, "P06.tree-attrs.piped.txt"), []byte(res.stdout))
}

func TestGetTreeOptions(t *testing.T) {
	url, _ := fixtureBucket(t, "vparquet4")
	isolateEnv(t)
	p00 := otlptest.IDOf("P00")

	// Default output: the tree on a terminal, Tempo's JSON when piped.
	if res := runCLI(t, true, "get", p00, "--storage", url); res.code != 0 || !strings.Contains(res.stdout, "Trace") || !strings.Contains(res.stdout, "POST /api/checkout") {
		t.Errorf("default on a terminal: exit %d:\n%s", res.code, res.stdout)
	}
	if res := runCLI(t, false, "get", p00, "--storage", url); res.code != 0 || !strings.HasPrefix(res.stdout, `{"trace":`) {
		t.Errorf("default piped: exit %d:\n%.200s", res.code, res.stdout)
	}

	// Colour: --color always forces it into a pipe, NO_COLOR and --color
	// never keep it off a terminal.
	if res := runCLI(t, false, "get", p00, "--storage", url, "-o", "tree", "--color", "always"); !strings.Contains(res.stdout, "\x1b[") {
		t.Error("--color always piped: no colour")
	}
	if res := runCLI(t, true, "get", p00, "--storage", url, "--color", "never"); strings.Contains(res.stdout, "\x1b") {
		t.Error("--color never on a terminal: colour")
	}
	io, _, out, _ := iostreams.Test(true)
	io.SetNoColorEnv(true)
	if code := run(context.Background(), []string{"get", p00, "--storage", url}, io); code != 0 || strings.Contains(out.String(), "\x1b") || !strings.Contains(out.String(), "Trace") {
		t.Errorf("NO_COLOR on a terminal: exit %d, colour or no tree:\n%s", code, out.String())
	}
	// Piped trees are laid out for 120 columns, terminals for their width.
	for _, tc := range []struct {
		tty   bool
		width int
	}{{false, 120}, {true, 80}} {
		res := runCLI(t, tc.tty, "get", p00, "--storage", url, "-o", "tree", "--color", "never")
		widest := 0
		for _, l := range strings.Split(res.stdout, "\n") {
			widest = max(widest, utf8.RuneCountInString(l))
		}
		if widest != tc.width {
			t.Errorf("tty %v: widest line %d columns, want %d", tc.tty, widest, tc.width)
		}
	}

	// Filters.
	res := runCLI(t, false, "get", p00, "--storage", url, "-o", "tree", "--errors")
	if res.code != 0 || !strings.Contains(res.stdout, "payment declined") || strings.Contains(res.stdout, "validate cart") {
		t.Errorf("--errors: exit %d:\n%s", res.code, res.stdout)
	}
	res = runCLI(t, false, "get", p00, "--storage", url, "-o", "tree", "--service", "email-worker", "--depth", "2")
	if res.code != 0 || !strings.Contains(res.stdout, "▸ 3 more") || strings.Contains(res.stdout, "orders.created process") {
		t.Errorf("--service --depth: exit %d:\n%s", res.code, res.stdout)
	}

	// Usage errors: exit 2 with a message that says what to do.
	for _, tc := range []struct {
		args []string
		tty  bool
		want string
	}{
		{[]string{"-o", "yaml"}, false, "tree, json, otlp-json, jaeger-json, table, raw"},
		{[]string{"-o", "raw"}, true, "> trace.pb"},
		{[]string{"-o", "json", "--errors"}, false, "-o tree"},
		{[]string{"-o", "tree", "--depth", "-1"}, false, "--depth"},
		{[]string{"--server", "http://127.0.0.1:1"}, false, "--server and --storage"},
		{[]string{"--server-encoding", "xml"}, false, "protobuf or json"},
	} {
		res := runCLI(t, tc.tty, append([]string{"get", p00, "--storage", url}, tc.args...)...)
		if res.code != exitUsage || !strings.Contains(res.stderr, tc.want) {
			t.Errorf("get %v: exit %d, stderr %q (want 2 mentioning %q)", tc.args, res.code, res.stderr, tc.want)
		}
		if res.stdout != "" {
			t.Errorf("get %v printed to stdout", tc.args)
		}
	}
}

// TestGetFromServer runs get against real Tempo's recorded answers.
func TestGetFromServer(t *testing.T) {
	srv := tempotest.Start(t)
	url, _ := fixtureBucket(t, "vparquet4")
	corpus := otlptest.LoadCorpus(t)
	recorded := map[string]*tempotest.Exchange{}
	for _, ex := range tempotest.Load(t) {
		recorded[ex.Name] = ex
	}
	isolateEnv(t)

	// -o json is Tempo's v2 answer byte for byte, whichever encoding was
	// asked for (the protobuf answer carries the same trace and metrics).
	for _, enc := range []string{"json", "protobuf"} {
		for name, id := range map[string]string{
			"trace-v2-1-json": "594dbe7e6cff645eb51079037485e52a",
			"trace-v2-2-json": "b5d58700eb8a46ec1c2a07ca5004da34",
			"trace-v2-3-json": "f1e2d3c4b5a6978877665544332",
		} {
			res := runCLI(t, false, "get", id, "--server", srv.URL, "--server-encoding", enc, "-o", "json")
			if res.code != 0 {
				t.Errorf("%s (%s): exit %d: %s", id, enc, res.code, res.stderr)
				continue
			}
			if want := string(recorded[name].Body) + "\n"; res.stdout != want {
				t.Errorf("%s (%s): -o json is not Tempo's answer:\n got %.300s\nwant %.300s", id, enc, res.stdout, want)
			}
		}
	}
	last := func() *http.Request { r := srv.Requests(); return r[len(r)-1] }
	if got := last().Header.Get("Accept"); got != "application/protobuf" {
		t.Errorf("default encoding: Accept %q", got)
	}

	// Short IDs and traceparents reach the trace; the tree from the server is
	// the tree from the bucket.
	for _, arg := range []string{"5b8efff798038103", "00-00000000000000005b8efff798038103-1111111111111111-01"} {
		fromServer := runCLI(t, true, "get", arg, "--server", srv.URL, "-o", "tree")
		fromBucket := runCLI(t, true, "get", arg, "--storage", url, "-o", "tree")
		if fromServer.code != 0 || fromServer.stdout != fromBucket.stdout {
			t.Errorf("%s: exit %d; tree from the server differs from the bucket's:\n%s\n---\n%s", arg, fromServer.code, fromServer.stdout, fromBucket.stdout)
		}
	}
	if got := last().URL.Path; got != "/api/v2/traces/00000000000000005b8efff798038103" {
		t.Errorf("request path %s", got)
	}
	res := runCLI(t, false, "get", otlptest.IDOf("P06"), "--server", srv.URL, "-o", "otlp-json")
	if res.code != 0 {
		t.Fatalf("P06: exit %d: %s", res.code, res.stderr)
	}
	td, err := (&ptrace.JSONUnmarshaler{}).UnmarshalTraces([]byte(res.stdout))
	if err != nil {
		t.Fatal(err)
	}
	otlptest.AssertEqual(t, corpus.ByID[otlptest.IDOf("P06")], td)

	// Tenant, time range and credentials reach the server; the token comes
	// from the environment, never from a flag in shell history.
	t.Setenv("TRACECTL_BEARER_TOKEN", "tok-123")
	res = runCLI(t, false, "get", "594dbe7e6cff645eb51079037485e52a", "--server", srv.URL, "--tenant", "team-a",
		"--start", "2026-11-20T09:00:00Z", "--end", "2026-11-20T11:00:00Z", "-o", "table")
	if res.code != 0 || !strings.Contains(res.stdout, "POST /api/checkout") {
		t.Errorf("with tenant and range: exit %d: %s", res.code, res.stderr)
	}
	r := last()
	if r.Header.Get("X-Scope-OrgID") != "team-a" || r.Header.Get("Authorization") != "Bearer tok-123" || r.URL.RawQuery != "end=1795172400&start=1795165200" {
		t.Errorf("request: %s %v", r.URL, r.Header)
	}
	if show := runCLI(t, false, "config", "show", "--server", srv.URL); strings.Contains(show.stdout+show.stderr, "tok-123") {
		t.Errorf("config show prints the bearer token")
	}
	os.Unsetenv("TRACECTL_BEARER_TOKEN")

	// Not found: exit 3 naming the tenant and the server, nothing on stdout.
	n := len(srv.Requests())
	nf := runCLI(t, false, "get", "deadbeefdeadbeefdeadbeefdeadbeef", "--server", srv.URL, "--tenant", "team-b")
	if nf.code != exitNotFound || !strings.Contains(nf.stderr, "team-b") || !strings.Contains(nf.stderr, srv.URL) || nf.stdout != "" {
		t.Errorf("not found: exit %d, stderr %q", nf.code, nf.stderr)
	}
	if got := len(srv.Requests()) - n; got != 1 {
		t.Errorf("not found took %d requests, want 1 (v2 answers it)", got)
	}
	// A bad ID never reaches the server.
	n = len(srv.Requests())
	if bad := runCLI(t, false, "get", "not-a-trace-id", "--server", srv.URL); bad.code != exitUsage || !strings.Contains(bad.stderr, "traceparent") {
		t.Errorf("bad ID: exit %d, stderr %q", bad.code, bad.stderr)
	}
	if len(srv.Requests()) != n {
		t.Error("a bad ID was sent to the server")
	}
}

func TestGetFromServerFailures(t *testing.T) {
	srv := tempotest.Start(t)
	srv2 := tempotest.Start(t)
	isolateEnv(t)
	status := 0
	srv.Handler = func(w http.ResponseWriter, r *http.Request) bool {
		switch status {
		case 0:
			return false
		case 404:
			http.NotFound(w, r)
		default:
			http.Error(w, "no", status)
		}
		return true
	}
	id := "594dbe7e6cff645eb51079037485e52a"
	for _, tc := range []struct {
		status int
		args   []string
		code   int
		want   []string
	}{
		{401, nil, exitError, []string{"401", "--bearer-token", "--user"}},
		{403, []string{"--tenant", "team-a"}, exitError, []string{"403", "team-a"}},
		{503, nil, exitError, []string{"503", "try again later"}},
		{404, nil, exitError, []string{"404", "query frontend"}},
		{0, []string{"--user", "u", "--bearer-token", "t"}, exitUsage, []string{"use one"}},
		{0, []string{"--tls-ca-file", "/does/not/exist"}, exitUsage, []string{"CA file"}},
		{0, []string{"--timeout", "0s"}, exitUsage, []string{"--timeout"}},
	} {
		status = tc.status
		res := runCLI(t, false, append([]string{"get", id, "--server", srv.URL, "--password", "hunter2"}, tc.args...)...)
		if res.code != tc.code {
			t.Errorf("%d %v: exit %d, want %d: %s", tc.status, tc.args, res.code, tc.code, res.stderr)
		}
		for _, w := range tc.want {
			if !strings.Contains(res.stderr, w) {
				t.Errorf("%d %v: stderr %q does not mention %q", tc.status, tc.args, res.stderr, w)
			}
		}
		if strings.Contains(res.stderr, "hunter2") {
			t.Errorf("%d: the password is printed", tc.status)
		}
	}
	// Bad server URLs are usage errors; a closed port says so.
	if res := runCLI(t, false, "get", id, "--server", "tempo:3200"); res.code != exitUsage || !strings.Contains(res.stderr, "http://host:port") {
		t.Errorf("bad URL: exit %d: %s", res.code, res.stderr)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	if res := runCLI(t, false, "get", id, "--server", "http://"+addr); res.code != exitError || !strings.Contains(res.stderr, "connection refused") {
		t.Errorf("refused: exit %d: %s", res.code, res.stderr)
	}
	// A partial trace is printed, with a warning and exit 4.
	srv2.Handler = func(w http.ResponseWriter, r *http.Request) bool {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"trace":{"resourceSpans":[{"resource":{},"scopeSpans":[{"spans":[{"traceId":"WU2+fmz/ZF61EHkDdIXlKg==","spanId":"PN6r0RSvv2Y=","name":"x","startTimeUnixNano":"1","endTimeUnixNano":"2"}]}]}]},"metrics":{},"status":"PARTIAL","message":"trace exceeds max size"}`)
		return true
	}
	res := runCLI(t, false, "get", id, "--server", srv2.URL, "-o", "table")
	if res.code != exitPartial || !strings.Contains(res.stderr, "trace exceeds max size") || !strings.Contains(res.stdout, "3cdeabd114afbf66") {
		t.Errorf("partial: exit %d, stderr %q, stdout %q", res.code, res.stderr, res.stdout)
	}
}

// TestGetFromServe reads traces through tracectl serve's query API: sent
// over OTLP, found by get --server while still in memory and after they
// were stored in a block, drawn exactly as from real Tempo's answer.
func TestGetFromServe(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a tracectl process")
	}
	corpus := otlptest.LoadCorpus(t)
	tempo := tempotest.Start(t)
	dir := t.TempDir()
	bucket := "file://" + filepath.Join(dir, "bucket")
	c := startTracectl(t, serveArgs(bucket, filepath.Join(dir, "wal"),
		"--max-block-duration", "200ms", "--trace-idle-period", "-1ns")...)
	defer func() {
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		_ = c.wait(t, 30*time.Second)
	}()
	isolateEnv(t)
	server := "http://" + c.http
	p00, p06 := otlptest.IDOf("P00"), otlptest.IDOf("P06")
	for _, id := range []string{p00, p06} {
		pb, err := ptraceotlp.NewExportRequestFromTraces(corpus.ByID[id]).MarshalProto()
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.Post("http://"+c.addrs["otlp_http"]+"/v1/traces", "application/x-protobuf", bytes.NewReader(pb))
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("OTLP/HTTP post: %v %v", err, resp)
		}
		resp.Body.Close()
	}
	check := func(when string) {
		for _, enc := range []string{"protobuf", "json"} {
			res := runCLI(t, false, "get", p06, "--server", server, "--server-encoding", enc, "-o", "otlp-json")
			if res.code != 0 {
				t.Fatalf("%s, %s: exit %d: %s", when, enc, res.code, res.stderr)
			}
			td, err := (&ptrace.JSONUnmarshaler{}).UnmarshalTraces([]byte(res.stdout))
			if err != nil {
				t.Fatal(err)
			}
			otlptest.AssertEqual(t, corpus.ByID[p06], td)
		}
		fromServe := runCLI(t, true, "get", p00, "--server", server)
		fromTempo := runCLI(t, true, "get", p00, "--server", tempo.URL)
		if fromServe.code != 0 || fromServe.stdout != fromTempo.stdout {
			t.Errorf("%s: the tree from tracectl serve (exit %d) differs from the one from Tempo:\n%s\n---\n%s", when, fromServe.code, fromServe.stdout, fromTempo.stdout)
		}
		nf := runCLI(t, false, "get", "deadbeefdeadbeefdeadbeefdeadbeef", "--server", server)
		if nf.code != exitNotFound || !strings.Contains(nf.stderr, "single-tenant") || !strings.Contains(nf.stderr, server) {
			t.Errorf("%s: not found: exit %d, stderr %q", when, nf.code, nf.stderr)
		}
	}
	check("in memory")
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(c.log(), `"msg":"block stored"`) {
		if time.Now().After(deadline) {
			t.Fatalf("no block stored:\n%s", c.log())
		}
		time.Sleep(50 * time.Millisecond)
	}
	check("stored in a block")
}
