package storage

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"gocloud.dev/blob"
)

// A file:// write goes to a temporary file beside its target
// ("<key>.<hex nanos>.tmp", see isTempKey) that fileblob renames onto the
// key when the write is closed. A process killed mid-write leaves that file
// behind; listings hide it, so nothing that works from listings ever
// removes it. TempFiles and RemoveStaleTemp let the sweeps of abandoned
// blocks see and remove such files, and RemoveEmptyDirs the directories
// they leave. On every other scheme they do nothing: objects there do not
// exist until committed.

// TempFiles lists the temporary files of file:// writes under prefix, in
// progress or left by a killed writer, sorted by key; each Object's Key is
// the temporary file's key, its ModTime when it was last written to. It
// returns nothing for other schemes.
func (b *Bucket) TempFiles(ctx context.Context, prefix string) ([]Object, error) {
	if b.scheme != "file" || b.fileSingleKey {
		return nil, nil
	}
	if err := b.before(ctx, "list", prefix); err != nil {
		return nil, err
	}
	var out []Object
	it := b.b.List(&blob.ListOptions{Prefix: prefix})
	for {
		o, err := it.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, b.wrap("list", prefix, err)
		}
		if !o.IsDir && isTempKey(o.Key) {
			out = append(out, Object{Key: o.Key, Size: o.Size, ModTime: o.ModTime})
		}
	}
	slices.SortFunc(out, func(x, y Object) int { return strings.Compare(x.Key, y.Key) })
	return out, nil
}

// RemoveStaleTemp removes the temporary files under prefix (see
// TempFiles) last written to before cutoff, and returns their keys. Each
// file's time is read again just before it is removed, so one a live
// writer has written to since it was listed stays. Pick cutoff so that no
// live writer goes that long without writing. Nothing for other schemes.
func (b *Bucket) RemoveStaleTemp(ctx context.Context, prefix string, cutoff time.Time) ([]string, error) {
	temps, err := b.TempFiles(ctx, prefix)
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, o := range temps {
		if !o.ModTime.Before(cutoff) {
			continue
		}
		if err := b.start(ctx, "delete", o.Key); err != nil {
			return removed, err
		}
		a, err := b.b.Attributes(ctx, o.Key)
		if err != nil {
			if errors.Is(b.wrap("stat", o.Key, err), ErrNotFound) {
				continue // its writer finished or gave up meanwhile
			}
			return removed, b.wrap("stat", o.Key, err)
		}
		if !a.ModTime.Before(cutoff) {
			continue
		}
		if err := b.b.Delete(ctx, o.Key); err != nil {
			if errors.Is(b.wrap("delete", o.Key, err), ErrNotFound) {
				continue
			}
			return removed, b.wrap("delete", o.Key, err)
		}
		removed = append(removed, o.Key)
	}
	return removed, nil
}

// RemoveEmptyDirs removes, on a file:// bucket, the directory of prefix
// (a key prefix ending in "/", such as a block's) and every directory under
// it, deepest first, that holds nothing: fileblob removes files but never
// their directories. A directory that is not empty stays. It does nothing
// for other schemes, for the bucket's root, and for prefixes fileblob
// would not store as a plain path.
func (b *Bucket) RemoveEmptyDirs(ctx context.Context, prefix string) error {
	if b.scheme != "file" || b.fileSingleKey {
		return nil
	}
	rel := strings.TrimSuffix(prefix, "/")
	if rel == "" || !strings.HasSuffix(prefix, "/") || !plainFileKey(b.filePrefix+rel) {
		return nil
	}
	if err := b.start(ctx, "delete", prefix); err != nil {
		return err
	}
	root := filepath.Join(b.dir, filepath.FromSlash(b.filePrefix+rel))
	if root == filepath.Clean(b.dir) {
		return nil
	}
	var dirs []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	if err != nil {
		return b.wrap("delete", prefix, err)
	}
	// Children before parents; ENOTEMPTY is ErrExist (a directory with
	// something in it stays).
	for _, d := range slices.Backward(dirs) {
		if err := os.Remove(d); err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, fs.ErrExist) {
			return b.wrap("delete", prefix, err)
		}
	}
	return nil
}
