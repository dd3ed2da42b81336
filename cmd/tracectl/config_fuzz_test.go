package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzConfigFile reads any bytes as the config file: `config show` either
// prints the configuration as JSON, never showing a secret the file holds,
// or fails with a message that names the file. Never a panic.
func FuzzConfigFile(f *testing.F) {
	for _, seed := range []string{
		"tenant: team-a\n",
		"storage:\n  trace:\n    backend: s3\n    s3:\n      bucket: t\n      access_key: AKIAFUZZ\n      secret_key: fuzz-secret-value\n",
		"storage: {trace: {backend: gcs, gcs: {bucket_name: traces, prefix: tempo}}}\n",
		"distributor:\n  receivers:\n    otlp:\n      protocols:\n        grpc:\n          endpoint: 0.0.0.0:4317\n",
		"storage: [1, 2\n",
		"\x00\xff",
	} {
		f.Add(seed)
	}
	dir := f.TempDir()
	file := filepath.Join(dir, "config.yaml")
	f.Fuzz(func(t *testing.T, content string) {
		if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		res := runCLI(t, false, "config", "show", "-o", "json", "--config", file)
		if res.code != 0 {
			if !strings.Contains(res.stderr, file) && !strings.Contains(res.stderr, "config") {
				t.Fatalf("exit %d without naming the config file: %s", res.code, res.stderr)
			}
			return
		}
		var entries []configEntry
		if err := json.Unmarshal([]byte(res.stdout), &entries); err != nil {
			t.Fatalf("config show -o json printed no JSON: %v\n%s", err, res.stdout)
		}
		if strings.Contains(content, "fuzz-secret-value") && strings.Contains(res.stdout, "fuzz-secret-value") {
			t.Fatalf("a secret of the config file is shown:\n%s", res.stdout)
		}
	})
}
