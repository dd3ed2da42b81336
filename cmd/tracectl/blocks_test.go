package main

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tracectl/tracectl/internal/testfix"
)

// fixtureBucket copies a fixture bucket into a temp dir and returns its URL.
func fixtureBucket(t *testing.T, name string) (url, dir string) {
	t.Helper()
	src := testfix.Path(t, "tempo", name)
	dir = t.TempDir()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dir, rel), 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, rel), data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return "file://" + dir, dir
}

func TestBlocksList(t *testing.T) {
	url, dir := fixtureBucket(t, "vparquet4")
	isolateEnv(t)

	plain := runCLI(t, false, "blocks", "list", "--storage", url)
	if plain.code != 0 {
		t.Fatalf("exit %d: %s", plain.code, plain.stderr)
	}
	lines := strings.Split(strings.TrimSpace(plain.stdout), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "BLOCK ID ") || !strings.HasSuffix(lines[0], "ROW GROUPS") {
		t.Fatalf("plain table:\n%s", plain.stdout)
	}
	want := "b1db29cc-be7a-4217-88f9-2f72c202f0fa vParquet4 0 2026-11-20T10:00:04Z 2026-11-20T10:19:23Z 19 71.0 KiB 1"
	if got := strings.Join(strings.Fields(lines[1]), " "); got != want {
		t.Errorf("first row:\n%s\nwant\n%s", got, want)
	}
	// Columns line up: every row has the VERSION column where the header has it.
	col := strings.Index(lines[0], "VERSION")
	for _, l := range lines[1:] {
		if l[col:col+9] != "vParquet4" {
			t.Errorf("misaligned row: %q", l)
		}
	}
	if strings.Contains(plain.stdout, "\x1b[") {
		t.Error("piped output has ANSI codes")
	}

	tty := runCLI(t, true, "--color", "always", "blocks", "list", "--storage", url)
	if !strings.Contains(tty.stdout, "\x1b[") {
		t.Error("terminal output with --color always has no styling")
	}
	noColor := runCLI(t, true, "--color", "never", "blocks", "list", "--storage", url)
	if strings.Contains(noColor.stdout, "\x1b[") {
		t.Error("--color never printed ANSI codes")
	}

	js := runCLI(t, true, "blocks", "list", "--storage", url, "-o", "json")
	var rows []blockJSON
	if err := json.Unmarshal([]byte(js.stdout), &rows); err != nil {
		t.Fatalf("-o json: %v\n%s", err, js.stdout)
	}
	if len(rows) != 3 || rows[0].Traces != 19 || rows[0].Size != 72690 || rows[0].Format != "vParquet4" {
		t.Errorf("-o json rows: %+v", rows)
	}
	if strings.Contains(js.stdout, "\x1b[") {
		t.Error("JSON carries colour")
	}
	jl := runCLI(t, false, "blocks", "list", "--storage", url, "-o", "jsonl")
	if n := strings.Count(strings.TrimSpace(jl.stdout), "\n") + 1; n != 3 {
		t.Errorf("-o jsonl has %d lines, want 3", n)
	}

	// A damaged block: reported on stderr, the rest still listed, exit 4.
	os.WriteFile(filepath.Join(dir, "single-tenant", "13a60468-ebb1-45a8-b97a-c8af8c7c3888", "meta.json"), []byte("{"), 0o644)
	dmg := runCLI(t, false, "blocks", "list", "--storage", url, "--index-max-age", "0")
	if dmg.code != exitPartial {
		t.Errorf("damaged bucket: exit %d, want %d", dmg.code, exitPartial)
	}
	if !strings.Contains(dmg.stderr, "13a60468-ebb1-45a8-b97a-c8af8c7c3888, meta.json") {
		t.Errorf("stderr does not name the damaged block and object: %q", dmg.stderr)
	}
	if strings.Count(strings.TrimSpace(dmg.stdout), "\n") != 2 {
		t.Errorf("healthy blocks not all listed:\n%s", dmg.stdout)
	}

	bad := runCLI(t, false, "blocks", "list", "--storage", url, "--since", "yesterday-ish")
	if bad.code != exitUsage || !strings.Contains(bad.stderr, "RFC 3339") {
		t.Errorf("bad --since: exit %d, %q", bad.code, bad.stderr)
	}
	unk := runCLI(t, false, "blocks", "list", "--storage", "ftp://x")
	if unk.code != exitUsage || !strings.Contains(unk.stderr, "s3://") {
		t.Errorf("unknown scheme: exit %d, %q", unk.code, unk.stderr)
	}
}

func TestBlocksInspect(t *testing.T) {
	url, dir := fixtureBucket(t, "vparquet4-compacted")
	isolateEnv(t)
	id := "8638efc1-2742-4667-8de0-8bae4bda7236"
	res := runCLI(t, false, "blocks", "inspect", id, "--storage", url)
	if res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	for _, want := range []string{"Block " + id, "compaction level   2", "Row groups", "Columns", "Bloom filter", "bloom-0", "rs.list.element.Resource.ServiceName"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("inspect output lacks %q", want)
		}
	}
	js := runCLI(t, false, "blocks", "inspect", id, "--storage", url, "-o", "json")
	var in inspectJSON
	if err := json.Unmarshal([]byte(js.stdout), &in); err != nil {
		t.Fatalf("-o json: %v", err)
	}
	if len(in.RowGroups) != 10 || len(in.Columns) != 103 || len(in.Blooms) != 1 || in.Block.Traces != 40 {
		t.Errorf("json: %d row groups, %d columns, %d blooms, %d traces", len(in.RowGroups), len(in.Columns), len(in.Blooms), in.Block.Traces)
	}
	if nf := runCLI(t, false, "blocks", "inspect", "11111111-2222-4333-8444-555555555555", "--storage", url); nf.code != exitNotFound {
		t.Errorf("missing block: exit %d, %s", nf.code, nf.stderr)
	}
	if bad := runCLI(t, false, "blocks", "inspect", "not-a-uuid", "--storage", url); bad.code != exitUsage {
		t.Errorf("bad ID: exit %d", bad.code)
	}
	os.WriteFile(filepath.Join(dir, "single-tenant", id, "bloom-0"), []byte("x"), 0o644)
	dmg := runCLI(t, false, "blocks", "inspect", id, "--storage", url)
	if dmg.code != exitPartial || !strings.Contains(dmg.stderr, "bloom-0") {
		t.Errorf("damaged bloom: exit %d, %q", dmg.code, dmg.stderr)
	}
	// Block ID completion lists the bucket's blocks.
	comp := runCLI(t, false, "__complete", "blocks", "inspect", "--storage", url, "8638")
	if !strings.Contains(comp.stdout, id) {
		t.Errorf("completion: %q", comp.stdout)
	}
}
