package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/tracectl/tracectl/internal/testfix"
)

func TestVersion(t *testing.T) {
	isolateEnv(t)
	res := runCLI(t, false, "version")
	if res.code != 0 || !strings.HasPrefix(res.stdout, "tracectl dev ") {
		t.Fatalf("version: exit %d, out %q", res.code, res.stdout)
	}
	res = runCLI(t, false, "version", "-o", "json")
	var v versionInfo
	if err := json.Unmarshal([]byte(res.stdout), &v); err != nil {
		t.Fatalf("version -o json is not JSON: %v: %q", err, res.stdout)
	}
	if v.Version != version || v.GoVersion != runtime.Version() || v.Commit == "" {
		t.Errorf("version -o json = %+v", v)
	}
}

func TestExitCodesAndErrorsPrintedOnce(t *testing.T) {
	isolateEnv(t)
	tests := []struct {
		args    []string
		code    int
		wantErr string
	}{
		{[]string{"no-such-command"}, exitUsage, "unknown command"},
		{[]string{"version", "--no-such-flag"}, exitUsage, "unknown flag"},
		{[]string{"version", "extra-arg"}, exitUsage, "unknown command"},
		{[]string{"--quiet", "--verbose", "version"}, exitUsage, "cannot be used together"},
		{[]string{"--tenant", "a/b", "version"}, exitUsage, "--tenant"},
	}
	for _, tt := range tests {
		res := runCLI(t, false, tt.args...)
		if res.code != tt.code {
			t.Errorf("%v: exit %d, want %d; stderr %q", tt.args, res.code, tt.code, res.stderr)
		}
		if !strings.Contains(res.stderr, tt.wantErr) {
			t.Errorf("%v: stderr %q lacks %q", tt.args, res.stderr, tt.wantErr)
		}
		if n := strings.Count(res.stderr, "tracectl:"); n != 1 {
			t.Errorf("%v: error printed %d times", tt.args, n)
		}
	}
}

func TestHelpListsOnlyRealCommands(t *testing.T) {
	isolateEnv(t)
	res := runCLI(t, true, "--help")
	if res.code != 0 {
		t.Fatalf("--help exit %d", res.code)
	}
	for _, want := range []string{"version", "completion", "config", "Exit codes:", "--storage", "--tenant", "--color", "TRACECTL_STORAGE"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("--help lacks %q", want)
		}
	}
	// --help must not open storage: the default directory must not appear.
	if _, err := os.Stat("tracectl-data"); err == nil {
		t.Error("--help created ./tracectl-data")
	}
}

// TestCompletionsCommitted fails when the committed completion scripts no
// longer match what the command tree generates.
func TestCompletionsCommitted(t *testing.T) {
	dir, err := filepath.Abs(filepath.Join("..", "..", "completions"))
	if err != nil {
		t.Fatal(err)
	}
	isolateEnv(t)
	files := map[string]string{
		"bash": "tracectl.bash", "zsh": "_tracectl", "fish": "tracectl.fish", "powershell": "tracectl.ps1",
	}
	for shell, name := range files {
		res := runCLI(t, false, "completion", shell)
		if res.code != 0 || res.stdout == "" {
			t.Fatalf("completion %s: exit %d, stderr %q", shell, res.code, res.stderr)
		}
		goldenCompare(t, filepath.Join(dir, name), []byte(res.stdout))
	}
}

func TestDynamicTenantCompletion(t *testing.T) {
	isolateEnv(t)
	bucket := t.TempDir()
	for _, d := range []string{"team-a/x", "team-b/y", "bad name/z"} {
		writeFile(t, filepath.Join(bucket, d), "")
	}
	res := runCLI(t, false, "__complete", "--storage", "file://"+bucket, "--tenant", "")
	if res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	if !strings.Contains(res.stdout, "team-a\n") || !strings.Contains(res.stdout, "team-b\n") {
		t.Errorf("tenant completion lacks the bucket's tenants:\n%s", res.stdout)
	}
	if strings.Contains(res.stdout, "bad name") {
		t.Errorf("tenant completion offers an invalid tenant:\n%s", res.stdout)
	}
}

func TestGenMan(t *testing.T) {
	isolateEnv(t)
	dir := t.TempDir()
	res := runCLI(t, false, "gen-man", dir)
	if res.code != 0 {
		t.Fatalf("gen-man: exit %d: %s", res.code, res.stderr)
	}
	for _, page := range []string{"tracectl.1", "tracectl-version.1", "tracectl-config-show.1"} {
		b, err := os.ReadFile(filepath.Join(dir, page))
		if err != nil {
			t.Fatalf("man page %s: %v", page, err)
		}
		if !strings.Contains(string(b), ".TH") {
			t.Errorf("%s is not a man page", page)
		}
	}
}

// TestGoreleaserCheck validates the release configuration with goreleaser
// itself (scripts/test.sh installs it).
func TestGoreleaserCheck(t *testing.T) {
	bin, err := exec.LookPath("goreleaser")
	if err != nil {
		testfix.Missing(t, "goreleaser not found on PATH; run scripts/test.sh, which installs it into .tools/bin")
	}
	cmd := exec.Command(bin, "check")
	cmd.Dir = filepath.Join("..", "..")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("goreleaser check: %v\n%s", err, out)
	}
}
