//go:build unix && !solaris && !aix

package wal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockDir takes an exclusive advisory lock on dir/LOCK, so two processes
// never append to one WAL. The kernel drops the lock when the process dies,
// so a crash never leaves the directory locked.
func lockDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, "LOCK")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening the WAL lock file %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("write-ahead log %s is %w; stop the other tracectl serve or give this one another --wal directory", dir, errLocked)
		}
		return nil, fmt.Errorf("locking the WAL directory %s: %w", dir, err)
	}
	return f, nil
}
