package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// showValue runs `config show -o json` and returns the entry for key.
func showValue(t *testing.T, key string, args ...string) configEntry {
	t.Helper()
	res := runCLI(t, false, append([]string{"config", "show", "-o", "json"}, args...)...)
	if res.code != 0 {
		t.Fatalf("config show exited %d: %s", res.code, res.stderr)
	}
	var entries []configEntry
	if err := json.Unmarshal([]byte(res.stdout), &entries); err != nil {
		t.Fatalf("config show -o json: %v\n%s", err, res.stdout)
	}
	for _, e := range entries {
		if e.Key == key {
			return e
		}
	}
	t.Fatalf("config show has no key %q:\n%s", key, res.stdout)
	return configEntry{}
}

func TestConfigPrecedence(t *testing.T) {
	tests := []struct {
		name       string
		file       string // written to $XDG_CONFIG_HOME/tracectl/config.yaml when set
		env        map[string]string
		args       []string
		key        string
		wantValue  string
		wantSource string
	}{
		{name: "default", key: "tenant", wantValue: "single-tenant", wantSource: "default"},
		{name: "file", file: "tenant: from-file\n", key: "tenant", wantValue: "from-file", wantSource: "file "},
		{name: "env beats file", file: "tenant: from-file\n", env: map[string]string{"TRACECTL_TENANT": "from-env"},
			key: "tenant", wantValue: "from-env", wantSource: "env TRACECTL_TENANT"},
		{name: "flag beats env and file", file: "tenant: from-file\n", env: map[string]string{"TRACECTL_TENANT": "from-env"},
			args: []string{"--tenant", "from-flag"}, key: "tenant", wantValue: "from-flag", wantSource: "flag --tenant"},
		{name: "bool from env", env: map[string]string{"TRACECTL_VERBOSE": "true"}, key: "verbose", wantValue: "true", wantSource: "env TRACECTL_VERBOSE"},
		{name: "bool from file", file: "quiet: true\n", key: "quiet", wantValue: "true", wantSource: "file "},
		{name: "storage default", key: "storage", wantValue: "file://./tracectl-data?create_dir=true", wantSource: "default"},
		{name: "storage url in file", file: "storage: mem://\n", key: "storage", wantValue: "mem://", wantSource: "file "},
		{name: "storage env beats tempo section",
			file: "storage:\n  trace:\n    backend: gcs\n    gcs:\n      bucket_name: b\n",
			env:  map[string]string{"TRACECTL_STORAGE": "mem://"}, key: "storage", wantValue: "mem://", wantSource: "env TRACECTL_STORAGE"},
		{name: "tempo s3 section",
			file: "storage: {trace: {backend: s3, s3: {bucket: tempo-traces, endpoint: s3.amazonaws.com, region: ap-northeast-2}}}\n",
			key:  "storage", wantValue: "s3://tempo-traces?region=ap-northeast-2", wantSource: "(storage.trace)"},
		{name: "tempo s3 custom endpoint",
			file: "storage:\n  trace:\n    backend: s3\n    s3:\n      bucket: t\n      endpoint: minio:9000\n      insecure: true\n      forcepathstyle: true\n      region: us-east-1\n",
			key:  "storage", wantValue: "s3://t?endpoint=http%3A%2F%2Fminio%3A9000&region=us-east-1&use_path_style=true", wantSource: "(storage.trace)"},
		{name: "tempo gcs section", file: "storage:\n  trace:\n    backend: gcs\n    gcs:\n      bucket_name: traces\n      prefix: tempo\n",
			key: "storage", wantValue: "gs://traces?prefix=tempo%2F", wantSource: "(storage.trace)"},
		{name: "tempo azure section", file: "storage:\n  trace:\n    backend: azure\n    azure:\n      container_name: tempo\n      storage_account_name: acct\n      storage_account_key: supersecret\n",
			key: "storage", wantValue: "azblob://tempo", wantSource: "(storage.trace)"},
		{name: "tempo secret masked", file: "storage:\n  trace:\n    backend: azure\n    azure:\n      container_name: tempo\n      storage_account_key: supersecret\n",
			key: "storage.trace.azure.storage_account_key", wantValue: masked, wantSource: "file "},
		{name: "string from file", file: "color: never\n", key: "color", wantValue: "never", wantSource: "file "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			xdg := isolateEnv(t)
			if tt.file != "" {
				writeFile(t, filepath.Join(xdg, "tracectl", "config.yaml"), tt.file)
			}
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			e := showValue(t, tt.key, tt.args...)
			if e.Value != tt.wantValue {
				t.Errorf("%s = %q, want %q", tt.key, e.Value, tt.wantValue)
			}
			if !strings.Contains(e.Source, tt.wantSource) {
				t.Errorf("%s source = %q, want it to contain %q", tt.key, e.Source, tt.wantSource)
			}
		})
	}
}

func TestConfigShowNeverPrintsSecrets(t *testing.T) {
	xdg := isolateEnv(t)
	writeFile(t, filepath.Join(xdg, "tracectl", "config.yaml"),
		"storage:\n  trace:\n    backend: s3\n    s3:\n      bucket: b\n      access_key: AKIAEXAMPLE\n      secret_key: s3cr3t-value\n")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "env-s3cr3t")
	for _, out := range []string{"table", "json"} {
		res := runCLI(t, false, "config", "show", "-o", out)
		if res.code != 0 {
			t.Fatalf("exit %d: %s", res.code, res.stderr)
		}
		for _, secret := range []string{"s3cr3t-value", "env-s3cr3t", "AKIAEXAMPLE"} {
			if strings.Contains(res.stdout, secret) {
				t.Errorf("config show -o %s printed the secret %q:\n%s", out, secret, res.stdout)
			}
		}
		if !strings.Contains(res.stdout, masked) {
			t.Errorf("config show -o %s shows no masked value:\n%s", out, res.stdout)
		}
	}
}

func TestStorageURLWithPasswordIsRedacted(t *testing.T) {
	isolateEnv(t)
	res := runCLI(t, false, "config", "show", "--storage", "s3://user:hunter2@bucket?region=x")
	if strings.Contains(res.stdout, "hunter2") {
		t.Fatalf("password shown:\n%s", res.stdout)
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name, file string
		env        map[string]string
		args       []string
		wantCode   int
		wantErr    string
	}{
		{name: "explicit missing config", args: []string{"--config", "/nonexistent/tracectl.yaml"}, wantCode: exitUsage, wantErr: "/nonexistent/tracectl.yaml"},
		{name: "bad yaml", file: "tenant: [unclosed\n", wantCode: exitUsage, wantErr: "reading config file"},
		{name: "bad bool in env", env: map[string]string{"TRACECTL_QUIET": "maybe"}, wantCode: exitUsage, wantErr: "TRACECTL_QUIET"},
		{name: "unknown backend", file: "storage: {trace: {backend: ftp}}\n", wantCode: exitUsage, wantErr: `"ftp" is not supported`},
		{name: "s3 without bucket", file: "storage: {trace: {backend: s3, s3: {region: x}}}\n", wantCode: exitUsage, wantErr: "storage.trace.s3.bucket is empty"},
		{name: "traversal tenant from config", file: "tenant: ../../etc\n", wantCode: exitUsage, wantErr: "config.yaml, key tenant): tenant ID \"../../etc\" has the character '/'"},
		{name: "traversal tenant from env", env: map[string]string{"TRACECTL_TENANT": ".."}, wantCode: exitUsage, wantErr: "(env TRACECTL_TENANT): tenant ID \"..\" is not allowed: it would name a directory"},
		{name: "traversal tenant from flag", args: []string{"--tenant", "a/../../b"}, wantCode: exitUsage, wantErr: "(flag --tenant)"},
		{name: "bad color", args: []string{"--color", "sometimes"}, wantCode: exitUsage, wantErr: "auto, always or never"},
		{name: "bad color from config", file: "color: sometimes\n", wantCode: exitUsage, wantErr: "color (config file "},
		{name: "bad output", args: []string{"-o", "yaml"}, wantCode: exitUsage, wantErr: "table or json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			xdg := isolateEnv(t)
			if tt.file != "" {
				writeFile(t, filepath.Join(xdg, "tracectl", "config.yaml"), tt.file)
			}
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			res := runCLI(t, false, append(tt.args, "config", "show")...)
			if res.code != tt.wantCode {
				t.Errorf("exit %d, want %d (stderr %q)", res.code, tt.wantCode, res.stderr)
			}
			if !strings.Contains(res.stderr, tt.wantErr) {
				t.Errorf("stderr %q does not mention %q", res.stderr, tt.wantErr)
			}
			if strings.Count(res.stderr, "tracectl:") != 1 {
				t.Errorf("error printed %d times, want once: %q", strings.Count(res.stderr, "tracectl:"), res.stderr)
			}
		})
	}
}

func TestExplicitConfigFileFlagAndEnv(t *testing.T) {
	isolateEnv(t)
	dir := t.TempDir()
	a := writeFile(t, filepath.Join(dir, "a.yaml"), "tenant: tenant-a\n")
	b := writeFile(t, filepath.Join(dir, "b.yaml"), "tenant: tenant-b\n")
	t.Setenv("TRACECTL_CONFIG", a)
	if e := showValue(t, "tenant"); e.Value != "tenant-a" {
		t.Errorf("TRACECTL_CONFIG: tenant = %q, want tenant-a", e.Value)
	}
	if e := showValue(t, "tenant", "--config", b); e.Value != "tenant-b" {
		t.Errorf("--config beats TRACECTL_CONFIG: tenant = %q, want tenant-b", e.Value)
	}
}
