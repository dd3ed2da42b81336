//go:build !unix || solaris || aix

package wal

import (
	"fmt"
	"os"
	"path/filepath"
)

// lockDir opens dir/LOCK. There is no advisory lock here: two processes on
// one WAL directory are not detected on this platform (no flock).
func lockDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, "LOCK")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening the WAL lock file %s: %w", path, err)
	}
	return f, nil
}
