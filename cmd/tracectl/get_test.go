package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/tracectl/tracectl/internal/otlptest"
	"github.com/tracectl/tracectl/internal/render"
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
