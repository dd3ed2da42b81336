package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tracectl/tracectl/internal/testfix"
)

func TestMigrateOTLPFileThenGetAndList(t *testing.T) {
	corpus := testfix.Path(t, "corpus", "public.otlp.jsonl")
	isolateEnv(t)
	bucket := "file://" + t.TempDir()

	res := runCLI(t, false, "migrate", "from", "otlp-file", corpus, "--to", bucket, "-o", "json")
	if res.code != 0 {
		t.Fatalf("migrate: exit %d: %s", res.code, res.stderr)
	}
	var s struct {
		SpansRead, SpansWritten int64
		Blocks                  []string
		Skipped                 int
	}
	if err := json.Unmarshal([]byte(res.stdout), &s); err != nil {
		t.Fatalf("-o json: %v\n%s", err, res.stdout)
	}
	if s.SpansRead != 715 || s.SpansWritten != 715 || len(s.Blocks) != 1 || s.Skipped != 0 {
		t.Errorf("summary %+v", s)
	}
	list := runCLI(t, false, "blocks", "list", "--storage", bucket, "-o", "json")
	var rows []blockJSON
	json.Unmarshal([]byte(list.stdout), &rows)
	if len(rows) != 1 || rows[0].Traces != 40 || rows[0].StartTime.Format("2006-01-02T15:04") != "2026-11-20T10:00" {
		t.Errorf("block list after migration: %+v", rows)
	}
	get := runCLI(t, false, "get", "305002328d372d90c18827d9a0b405fd", "--storage", bucket)
	if get.code != 0 || !strings.Contains(get.stdout, `"resourceSpans"`) {
		t.Errorf("get after migration: exit %d %s", get.code, get.stderr)
	}

	// Bad lines: exit 4, each reported with file and line.
	dir := t.TempDir()
	data, _ := os.ReadFile(corpus)
	lines := strings.SplitN(string(data), "\n", 3)
	bad := filepath.Join(dir, "bad.jsonl")
	os.WriteFile(bad, []byte(lines[0]+"\nnot json\n"+lines[1]+"\n"), 0o644)
	res = runCLI(t, false, "migrate", "from", "otlp-file", bad, "--to", bucket)
	if res.code != exitPartial || !strings.Contains(res.stderr, "bad.jsonl:2:") {
		t.Errorf("bad line: exit %d, stderr %q", res.code, res.stderr)
	}
	res = runCLI(t, false, "migrate", "from", "otlp-file", bad, "--to", bucket, "--max-errors", "0")
	if res.code != exitError || !strings.Contains(res.stderr, "max-errors") {
		t.Errorf("--max-errors 0: exit %d, stderr %q", res.code, res.stderr)
	}
	res = runCLI(t, false, "migrate", "from", "otlp-file", filepath.Join(dir, "missing.jsonl"), "--to", bucket)
	if res.code != exitError || !strings.Contains(res.stderr, "missing.jsonl") {
		t.Errorf("missing file: exit %d, stderr %q", res.code, res.stderr)
	}
	if res := runCLI(t, false, "migrate", "from", "otlp-file", "--to", bucket); res.code != exitUsage {
		t.Errorf("no files: exit %d", res.code)
	}
}
