package storagetest

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/tracectl/tracectl/internal/storage"
)

// OpenMem opens a fresh, empty in-memory bucket (mem://), closed when the
// test ends.
func OpenMem(t testing.TB) *storage.Bucket {
	t.Helper()
	return openURL(t, "mem://")
}

// OpenDir opens the directory dir as a file:// bucket (created when
// missing), closed when the test ends.
func OpenDir(t testing.TB, dir string) *storage.Bucket {
	t.Helper()
	return openURL(t, "file://"+filepath.ToSlash(dir))
}

func openURL(t testing.TB, u string) *storage.Bucket {
	t.Helper()
	b, err := storage.Open(context.Background(), u)
	if err != nil {
		t.Fatalf("open bucket %s: %v", u, err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}
