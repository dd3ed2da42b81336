// Package testfix finds the shared test fixtures (../shared/fixtures beside
// the checkout) and test peers for tests. Under CI=true a missing fixture or
// peer fails the test; elsewhere it skips with a message saying what to do.
// Only tests import this package.
package testfix

import (
	"os"
	"path/filepath"
	"testing"
)

// Missing fails the test under CI=true and skips it otherwise, with msg.
func Missing(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s (CI=true: a missing fixture or peer is a failure)", msg)
	}
	t.Skip(msg)
}

// ModuleRoot returns the directory holding go.mod, walking up from the test's
// working directory.
func ModuleRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test's directory")
		}
		dir = parent
	}
}

// Dir returns the shared fixtures directory: $TRACECTL_FIXTURES if set, else
// ../shared/fixtures beside the module root.
func Dir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("TRACECTL_FIXTURES")
	if dir == "" {
		dir = filepath.Join(filepath.Dir(ModuleRoot(t)), "shared", "fixtures")
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		Missing(t, "shared fixtures not found at "+dir+"; check out ../shared beside the repository or set TRACECTL_FIXTURES")
	}
	return dir
}

// Path returns a file or directory under the fixtures directory, failing or
// skipping (see Missing) when it is not there.
func Path(t testing.TB, elem ...string) string {
	t.Helper()
	p := filepath.Join(append([]string{Dir(t)}, elem...)...)
	if _, err := os.Stat(p); err != nil {
		Missing(t, "fixture "+p+" not found")
	}
	return p
}
