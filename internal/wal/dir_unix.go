//go:build unix

package wal

import (
	"fmt"
	"os"
)

// syncDir fsyncs a directory so that files created or removed in it survive
// a power loss.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("syncing WAL directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing WAL directory %s: %w", dir, err)
	}
	return nil
}
