package wal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/uuid"
)

// idFile names the WAL directory's identity: a random UUID made on the
// first Open and kept for the directory's life. Segment numbers restart
// at 1 in a new directory; the ID tells one directory's segment 7 from
// another's, so the server can name the block of a cut after (ID,
// segment, tenant) and find it again after a crash. Older versions did
// not write the file; Open then makes one, which changes nothing for the
// segments already there.
const idFile = "wal-id"

// loadOrCreateID returns the directory's ID, creating it durably (temp
// file, fsync, rename, fsync of the directory) when missing. A malformed
// file is replaced with a warning: a new ID only makes the server store
// again what it cannot prove stored, it never drops a record.
func loadOrCreateID(dir string, w *WAL) (uuid.UUID, error) {
	path := filepath.Join(dir, idFile)
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		id, perr := uuid.Parse(strings.TrimSpace(string(data)))
		if perr == nil && id != uuid.Nil {
			return id, nil
		}
		w.log.Warn("the WAL ID file is malformed; making a new ID (segments already flushed may be stored again after this start)",
			"file", path, "err", fmt.Sprint(perr))
	case !errors.Is(err, os.ErrNotExist):
		return uuid.Nil, fmt.Errorf("reading the WAL ID %s: %w; check the directory's permissions", path, err)
	}
	id, err := uuid.NewRandom()
	if err != nil {
		return uuid.Nil, fmt.Errorf("making a WAL ID: %w", err)
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return uuid.Nil, fmt.Errorf("creating the WAL ID %s: %w; check the directory's permissions and free space", tmp, err)
	}
	_, werr := f.WriteString(id.String() + "\n")
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp, path)
	}
	if werr != nil {
		os.Remove(tmp)
		return uuid.Nil, fmt.Errorf("writing the WAL ID %s: %w; check free space", path, werr)
	}
	if err := syncDir(dir); err != nil {
		return uuid.Nil, err
	}
	return id, nil
}

// ID returns the directory's identity (see idFile): the same across
// restarts, different for every directory.
func (w *WAL) ID() uuid.UUID { return w.id }
