package wal

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

const segmentSuffix = ".wal"

// segmentName is the file name of segment seq: 20 digits, so names sort as
// numbers do.
func segmentName(seq uint64) string {
	return fmt.Sprintf("%020d%s", seq, segmentSuffix)
}

func parseSegmentName(name string) (uint64, bool) {
	digits, ok := strings.CutSuffix(name, segmentSuffix)
	if !ok || len(digits) != 20 {
		return 0, false
	}
	seq, err := strconv.ParseUint(digits, 10, 64)
	if err != nil || seq == 0 {
		return 0, false
	}
	return seq, true
}

// listSegments returns the sequence numbers of the segment files in dir,
// in ascending order. Other files are ignored.
func listSegments(dir string) ([]uint64, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var seqs []uint64
	for _, e := range entries {
		if seq, ok := parseSegmentName(e.Name()); ok && e.Type().IsRegular() {
			seqs = append(seqs, seq)
		}
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	return seqs, nil
}

// segment is a sealed segment: complete on disk and never written again.
type segment struct {
	seq  uint64
	size int64
}

// segFile is the segment being appended to. It is owned by whoever does the
// WAL's I/O: the flusher goroutine (sync policies always and group) or the
// holder of WAL.mu (policy none).
type segFile struct {
	dir   string
	f     *os.File
	seq   uint64
	size  int64
	dirty bool // written since the last fsync
}

func (s *segFile) path() string { return filepath.Join(s.dir, segmentName(s.seq)) }

// create makes segment seq with its header, durable (file and directory
// synced) before any record is written to it.
func (s *segFile) create(seq uint64) error {
	path := filepath.Join(s.dir, segmentName(seq))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("creating WAL segment %s: %w; check the directory's permissions and free space", path, err)
	}
	if _, err := f.Write(segmentHeader()); err != nil {
		f.Close()
		return fmt.Errorf("writing the header of WAL segment %s: %w; check free space", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("syncing WAL segment %s: %w", path, err)
	}
	if err := syncDir(s.dir); err != nil {
		f.Close()
		return err
	}
	s.f, s.seq, s.size, s.dirty = f, seq, headerSize, false
	return nil
}

// reopen continues an existing segment of size bytes (header included).
func (s *segFile) reopen(seq uint64, size int64) error {
	path := filepath.Join(s.dir, segmentName(seq))
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("opening WAL segment %s for appending: %w", path, err)
	}
	if _, err := f.Seek(size, io.SeekStart); err != nil {
		f.Close()
		return fmt.Errorf("opening WAL segment %s for appending: %w", path, err)
	}
	s.f, s.seq, s.size, s.dirty = f, seq, size, false
	return nil
}

func (s *segFile) write(p []byte) error {
	if len(p) == 0 {
		return nil
	}
	n, err := s.f.Write(p)
	s.size += int64(n)
	s.dirty = true
	if err != nil {
		return fmt.Errorf("writing WAL segment %s: %w; check free space (the server must restart to recover from the log)", s.path(), err)
	}
	return nil
}

// sync fsyncs the segment if anything was written since the last fsync and
// reports whether it did.
func (s *segFile) sync() (bool, error) {
	if s.f == nil || !s.dirty {
		return false, nil
	}
	if err := s.f.Sync(); err != nil {
		return true, fmt.Errorf("syncing WAL segment %s: %w; the data written since the last sync may be lost (the server must restart to recover from the log)", s.path(), err)
	}
	s.dirty = false
	return true, nil
}

func (s *segFile) close() error {
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	if err != nil {
		return fmt.Errorf("closing WAL segment %s: %w", s.path(), err)
	}
	return nil
}

// isTornCreation reports whether data, a whole segment file, is what a crash
// while creating a segment leaves: nothing, a prefix of the header, or
// zeros. No record is ever written before the header is synced, so such a
// file holds no data.
func isTornCreation(data []byte) bool {
	hdr := segmentHeader()
	if len(data) < headerSize && bytes.Equal(data, hdr[:len(data)]) {
		return true
	}
	return len(bytes.TrimLeft(data, "\x00")) == 0
}

// readSmallFile reads at most limit bytes of path; ok is false when the file
// is larger.
func readSmallFile(path string, limit int64) (data []byte, ok bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	data, err = io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, false, err
	}
	if int64(len(data)) > limit {
		return nil, false, nil
	}
	return data, true, nil
}

var errLocked = errors.New("locked by another process")
