package main

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tracectl/tracectl/internal/iostreams"
)

// TestMain lets tests run the real tracectl as a child process: with
// TRACECTL_TEST_MAIN=1 the test binary is tracectl (see startTracectl).
func TestMain(m *testing.M) {
	if os.Getenv("TRACECTL_TEST_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

var update = flag.Bool("update", false, "rewrite golden files and committed completions")

// cliResult is what one in-process run of tracectl produced.
type cliResult struct {
	code   int
	stdout string
	stderr string
}

// runCLI runs tracectl in-process with buffers for streams. tty says whether
// stdout/stderr look like a terminal.
func runCLI(t *testing.T, tty bool, args ...string) cliResult {
	t.Helper()
	io, _, out, errOut := iostreams.Test(tty)
	code := run(context.Background(), args, io)
	return cliResult{code: code, stdout: out.String(), stderr: errOut.String()}
}

// isolateEnv clears every TRACECTL_* variable and points the default config
// file at an empty directory, so the developer's own settings never leak in.
func isolateEnv(t *testing.T) string {
	t.Helper()
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "TRACECTL_") {
			k, _, _ := strings.Cut(kv, "=")
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
	xdg := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", xdg)
	t.Chdir(t.TempDir())
	return xdg
}

func writeFile(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// goldenCompare compares got with testdata/<name>, or rewrites it with -update.
func goldenCompare(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./cmd/tracectl -update to create it)", err)
	}
	if !bytes.Equal(want, got) {
		t.Errorf("%s is out of date with the command tree; run: go test ./cmd/tracectl -run %s -update", path, t.Name())
	}
}
