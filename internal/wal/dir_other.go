//go:build !unix

package wal

// syncDir is a no-op where directories cannot be opened for fsync
// (Windows); NTFS journals the directory entries itself.
func syncDir(dir string) error { return nil }
