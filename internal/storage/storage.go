// Package storage opens an object-storage bucket from a URL and moves bytes by
// key. It knows nothing of traces or blocks: naming objects and giving their
// bytes meaning is the job of package blocks.
//
// Every error returned by a Bucket method is a *Error whose Kind is one of the
// few kinds callers act on (not found, permission, unavailable, invalid,
// exists). Test for them with errors.Is(err, storage.ErrNotFound) and friends.
//
// A Bucket is safe for concurrent use by many goroutines.
package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/url"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"gocloud.dev/blob"
	_ "gocloud.dev/blob/azureblob" // azblob://
	_ "gocloud.dev/blob/fileblob"  // file://
	_ "gocloud.dev/blob/gcsblob"   // gs://
	_ "gocloud.dev/blob/memblob"   // mem://
	_ "gocloud.dev/blob/s3blob"    // s3://
)

// DefaultURL is the embedded default: a directory next to where tracectl runs.
const DefaultURL = "file://./tracectl-data?create_dir=true"

// Schemes lists the bucket URL schemes tracectl opens, in the order shown to users.
var Schemes = []string{"file", "mem", "s3", "gs", "azblob"}

// Attributes describes one stored object.
type Attributes struct {
	Size    int64
	ModTime time.Time
	ETag    string
}

// Object is one entry of a listing. With a delimiter, IsDir marks a common
// prefix (its Key ends with the delimiter) rather than an object.
type Object struct {
	Key     string
	Size    int64
	ModTime time.Time
	IsDir   bool
}

// Bucket is an opened bucket. Keys are '/'-separated and never start with '/'.
type Bucket struct {
	b      *blob.Bucket
	scheme string
	// display is the URL with credentials removed, for messages.
	display string
}

// Open opens the bucket named by rawURL. A URL without a scheme is taken as a
// local directory path. Unknown schemes get an error listing the supported ones.
func Open(ctx context.Context, rawURL string) (*Bucket, error) {
	if strings.TrimSpace(rawURL) == "" {
		rawURL = DefaultURL
	}
	u, err := normalizeURL(rawURL)
	if err != nil {
		return nil, err
	}
	display := Redact(u.String())
	switch u.Scheme {
	case "file", "mem", "s3", "gs", "azblob":
	default:
		return nil, &Error{Op: "open", Key: display, Kind: KindInvalid,
			Err: fmt.Errorf("unsupported scheme %q; use one of %s (e.g. file:///var/lib/tracectl, s3://bucket?region=us-east-1)",
				u.Scheme, strings.Join(schemeList(), ", "))}
	}
	if u.Scheme == "azblob" && u.Query().Get("protocol") == "http" && u.User != nil {
		return nil, &Error{Op: "open", Key: display, Kind: KindInvalid,
			Err: errors.New("do not put the Azure account in the URL; set AZURE_STORAGE_ACCOUNT and AZURE_STORAGE_KEY instead")}
	}
	b, err := blob.OpenBucket(ctx, u.String())
	if err != nil {
		return nil, wrap("open", display, err)
	}
	return &Bucket{b: b, scheme: u.Scheme, display: display}, nil
}

func schemeList() []string {
	out := make([]string, len(Schemes))
	for i, s := range Schemes {
		out[i] = s + "://"
	}
	return out
}

// normalizeURL turns plain paths into file URLs and sets the fileblob options
// tracectl needs: no ".attrs" sidecar files (a Tempo bucket has none), temp
// files beside their target (rename across devices fails), and the directory
// created on first use.
func normalizeURL(raw string) (*url.URL, error) {
	if !strings.Contains(raw, "://") {
		abs, err := filepath.Abs(raw)
		if err != nil {
			return nil, &Error{Op: "open", Key: raw, Kind: KindInvalid, Err: err}
		}
		raw = "file://" + filepath.ToSlash(abs) + "?create_dir=true"
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, &Error{Op: "open", Key: Redact(raw), Kind: KindInvalid,
			Err: fmt.Errorf("not a bucket URL: %v", err)}
	}
	if u.Scheme == "file" {
		if u.Host == "." {
			// file://./rel/dir: make it absolute so messages and listings are unambiguous.
			abs, err := filepath.Abs("." + u.Path)
			if err != nil {
				return nil, &Error{Op: "open", Key: raw, Kind: KindInvalid, Err: err}
			}
			u.Host = ""
			u.Path = filepath.ToSlash(abs)
		}
		q := u.Query()
		q.Set("metadata", "skip")
		q.Set("no_tmp_dir", "true")
		if q.Get("create_dir") == "" {
			q.Set("create_dir", "true")
		}
		u.RawQuery = q.Encode()
	}
	return u, nil
}

// Redact removes passwords and secret-looking query parameters from a URL so
// that it can be printed.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<unparseable URL>"
	}
	changed := false
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
			changed = true
		}
	}
	q := u.Query()
	for k := range q {
		if isSecretKey(k) {
			q.Set(k, "xxxxx")
			changed = true
		}
	}
	if !changed {
		return raw
	}
	u.RawQuery = q.Encode()
	return u.String()
}

func isSecretKey(k string) bool {
	k = strings.ToLower(k)
	for _, s := range []string{"secret", "password", "key", "token", "sig", "credential"} {
		if strings.Contains(k, s) {
			return true
		}
	}
	return false
}

// String returns the bucket URL without secrets.
func (b *Bucket) String() string { return b.display }

// Scheme returns the URL scheme the bucket was opened with.
func (b *Bucket) Scheme() string { return b.scheme }

// Close releases the bucket's resources.
func (b *Bucket) Close() error { return b.b.Close() }

// Read returns the whole object.
func (b *Bucket) Read(ctx context.Context, key string) ([]byte, error) {
	data, err := b.b.ReadAll(ctx, key)
	if err != nil {
		return nil, wrap("read", key, err)
	}
	return data, nil
}

// ReadRange returns length bytes from offset. A range past the end returns
// what there is (possibly fewer bytes); length < 0 reads to the end.
func (b *Bucket) ReadRange(ctx context.Context, key string, offset, length int64) ([]byte, error) {
	r, err := b.b.NewRangeReader(ctx, key, offset, length, nil)
	if err != nil {
		return nil, wrap("read", key, err)
	}
	defer r.Close()
	var buf []byte
	if length > 0 {
		buf = make([]byte, 0, length)
	}
	w := bytesWriter{buf: buf}
	if _, err := io.Copy(&w, r); err != nil {
		return nil, wrap("read", key, err)
	}
	return w.buf, nil
}

type bytesWriter struct{ buf []byte }

func (w *bytesWriter) Write(p []byte) (int, error) { w.buf = append(w.buf, p...); return len(p), nil }

// NewReader streams an object. The caller closes it.
func (b *Bucket) NewReader(ctx context.Context, key string) (io.ReadCloser, error) {
	r, err := b.b.NewReader(ctx, key, nil)
	if err != nil {
		return nil, wrap("read", key, err)
	}
	return &errReader{r: r, key: key}, nil
}

type errReader struct {
	r   io.ReadCloser
	key string
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF {
		err = wrap("read", e.key, err)
	}
	return n, err
}
func (e *errReader) Close() error { return e.r.Close() }

// ReaderAt gives random access to an object of known size, one ranged read
// per ReadAt call. It is what parquet readers need.
type ReaderAt struct {
	ctx  context.Context
	b    *Bucket
	key  string
	size int64
	// Reads counts the ranged reads issued, for tests and benchmarks.
	Reads int64
}

// OpenReaderAt returns a ReaderAt over key. If size < 0 the object's size is
// looked up first (one extra request).
func (b *Bucket) OpenReaderAt(ctx context.Context, key string, size int64) (*ReaderAt, error) {
	if size < 0 {
		a, err := b.Attributes(ctx, key)
		if err != nil {
			return nil, err
		}
		size = a.Size
	}
	return &ReaderAt{ctx: ctx, b: b, key: key, size: size}, nil
}

// Size is the object's length in bytes.
func (r *ReaderAt) Size() int64 { return r.size }

// ReadAt implements io.ReaderAt.
func (r *ReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off >= r.size {
		return 0, io.EOF
	}
	n := int64(len(p))
	if off+n > r.size {
		n = r.size - off
	}
	r.Reads++
	rr, err := r.b.b.NewRangeReader(r.ctx, r.key, off, n, nil)
	if err != nil {
		return 0, wrap("read", r.key, err)
	}
	defer rr.Close()
	got, err := io.ReadFull(rr, p[:n])
	if err != nil {
		return got, wrap("read", r.key, err)
	}
	if got < len(p) {
		return got, io.EOF
	}
	return got, nil
}

// Write stores data under key, replacing any object there.
func (b *Bucket) Write(ctx context.Context, key string, data []byte) error {
	if err := b.b.WriteAll(ctx, key, data, writerOpts(false)); err != nil {
		return wrap("write", key, err)
	}
	return nil
}

func writerOpts(ifNotExist bool) *blob.WriterOptions {
	return &blob.WriterOptions{
		ContentType:                 "application/octet-stream",
		DisableContentTypeDetection: true,
		IfNotExist:                  ifNotExist,
	}
}

// Writer streams one object. Nothing is visible under the key until Close
// returns nil; Abort discards what was written.
type Writer struct {
	w      *blob.Writer
	cancel context.CancelFunc
	key    string
	n      int64
}

// NewWriter starts writing key. Large objects are uploaded in parts.
func (b *Bucket) NewWriter(ctx context.Context, key string) (*Writer, error) {
	ctx, cancel := context.WithCancel(ctx)
	w, err := b.b.NewWriter(ctx, key, writerOpts(false))
	if err != nil {
		cancel()
		return nil, wrap("write", key, err)
	}
	return &Writer{w: w, cancel: cancel, key: key}, nil
}

func (w *Writer) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	w.n += int64(n)
	if err != nil {
		return n, wrap("write", w.key, err)
	}
	return n, nil
}

// Written is the number of bytes accepted so far.
func (w *Writer) Written() int64 { return w.n }

// Close commits the object.
func (w *Writer) Close() error {
	defer w.cancel()
	if err := w.w.Close(); err != nil {
		return wrap("write", w.key, err)
	}
	return nil
}

// Abort discards the object being written.
func (w *Writer) Abort() {
	w.cancel()
	_ = w.w.Close()
}

// CreateIfNotExists stores data under key only if no object is there. It
// returns an error of kind KindExists when one is, and of kind KindUnsupported
// when the provider cannot make the write conditional.
func (b *Bucket) CreateIfNotExists(ctx context.Context, key string, data []byte) error {
	err := b.b.WriteAll(ctx, key, data, writerOpts(true))
	if err != nil {
		return wrap("create", key, err)
	}
	return nil
}

// Delete removes key. Deleting a missing key is an error of kind KindNotFound.
func (b *Bucket) Delete(ctx context.Context, key string) error {
	if err := b.b.Delete(ctx, key); err != nil {
		return wrap("delete", key, err)
	}
	return nil
}

// Copy copies src to dst within the bucket.
func (b *Bucket) Copy(ctx context.Context, dst, src string) error {
	if err := b.b.Copy(ctx, dst, src, nil); err != nil {
		return wrap("copy", src, err)
	}
	return nil
}

// Attributes returns the size and modification time of key.
func (b *Bucket) Attributes(ctx context.Context, key string) (Attributes, error) {
	a, err := b.b.Attributes(ctx, key)
	if err != nil {
		return Attributes{}, wrap("stat", key, err)
	}
	return Attributes{Size: a.Size, ModTime: a.ModTime, ETag: a.ETag}, nil
}

// Exists reports whether key is stored.
func (b *Bucket) Exists(ctx context.Context, key string) (bool, error) {
	ok, err := b.b.Exists(ctx, key)
	if err != nil {
		return false, wrap("stat", key, err)
	}
	return ok, nil
}

// List yields the objects whose keys start with prefix, in lexical key order
// per page as the provider returns them. With delimiter "/" it yields one
// IsDir entry per common prefix instead of descending. The sequence stops at
// the first error, which it yields with a zero Object.
func (b *Bucket) List(ctx context.Context, prefix, delimiter string) iter.Seq2[Object, error] {
	return func(yield func(Object, error) bool) {
		it := b.b.List(&blob.ListOptions{Prefix: prefix, Delimiter: delimiter})
		for {
			o, err := it.Next(ctx)
			if err == io.EOF {
				return
			}
			if err != nil {
				yield(Object{}, wrap("list", prefix, err))
				return
			}
			if !yield(Object{Key: o.Key, Size: o.Size, ModTime: o.ModTime, IsDir: o.IsDir}, nil) {
				return
			}
		}
	}
}

// ListAll collects a listing and sorts it by key.
func (b *Bucket) ListAll(ctx context.Context, prefix, delimiter string) ([]Object, error) {
	var out []Object
	for o, err := range b.List(ctx, prefix, delimiter) {
		if err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// LocalPath returns the directory of a file:// bucket, or "" for other schemes.
func LocalPath(rawURL string) string {
	u, err := normalizeURL(rawURL)
	if err != nil || u.Scheme != "file" {
		return ""
	}
	return filepath.FromSlash(u.Path)
}
