// Package storage opens an object-storage bucket from a URL and moves bytes by
// key. It knows nothing of traces or blocks: naming objects and giving their
// bytes meaning is the job of package blocks.
//
// Every error returned by a Bucket method is a *Error whose Kind is one of the
// few kinds callers act on (not found, permission, unavailable, invalid,
// exists). Test for them with errors.Is(err, storage.ErrNotFound) and friends.
//
// A Bucket is safe for concurrent use by many goroutines.
//
// Every backend passes the same conformance suite (package storagetest),
// run over the real protocol against gofakes3 (S3), fake-gcs-server (GCS)
// and Azurite (Azure). What differs per backend:
//
//   - CreateIfNotExists, which compaction leases rely on, is atomic on all
//     of them: mem:// under the bucket's lock; file:// by a hard link (a
//     file system without hard links gives ErrUnsupported); s3:// by
//     If-None-Match: * on PutObject (AWS S3 honours it since August 2024;
//     an S3-compatible store that ignores the header overwrites silently,
//     so run the suite against it before trusting it with leases); gs:// by
//     ifGenerationMatch=0; azblob:// by If-None-Match: *.
//   - Attributes and Exists on S3 cannot tell a deleted bucket from a
//     missing key (S3 answers HEAD with a bare 404 for both); Read can.
//   - file:// hides the "<key>.<hex>.tmp" files of writes in progress from
//     listings; keys of that shape are not listed. TempFiles lists them
//     (a writer killed mid-object leaves one), RemoveStaleTemp removes them.
package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"iter"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	gcs "cloud.google.com/go/storage"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/aws/smithy-go"
	"gocloud.dev/blob"
	_ "gocloud.dev/blob/fileblob" // file://
	_ "gocloud.dev/blob/gcsblob"  // gs://
	_ "gocloud.dev/blob/memblob"  // mem://
	_ "gocloud.dev/blob/s3blob"   // s3://
	"google.golang.org/api/googleapi"
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
	// name is the bucket (or container) name of a remote bucket, for hints.
	name string
	// dir is the directory of a file:// bucket, filePrefix its ?prefix=
	// (gocloud puts it before every key), fileSingleKey whether ?key= made
	// it a one-key bucket.
	dir           string
	filePrefix    string
	fileSingleKey bool

	// requests counts operations sent to the provider; hook, when set,
	// runs before each of them (see SetHook).
	requests atomic.Int64
	hook     atomic.Pointer[Hook]
}

// Hook runs before every operation that goes to the provider (each Read,
// ReadRange, ReaderAt.ReadAt, NewReader, Write, NewWriter, CreateIfNotExists,
// Delete, Copy, Attributes, Exists and List), with the operation's name and
// key. A non-nil error fails the operation with that error (as a *Error of
// the error's Kind, KindUnavailable if it has none). Benchmarks use it to
// add latency, fault tests to inject errors. It must be safe for concurrent
// use.
type Hook func(ctx context.Context, op, key string) error

// TornWrite, returned by a Hook for a write (Write or NewWriter), makes
// the write store only the first Keep bytes of the object under its key,
// as a store without atomic uploads, or a crash at the wrong moment, would
// leave it, and then fail with Err (a *Error of Err's Kind, KindUnavailable
// if it has none). A Keep at or past the object's length stores all of it
// and still fails: a write that landed though the caller was told it did
// not. For other operations it is an ordinary error. Fault tests use it.
type TornWrite struct {
	Keep int64
	Err  error
}

func (t *TornWrite) Error() string {
	msg := "injected fault"
	if t.Err != nil {
		msg = t.Err.Error()
	}
	return fmt.Sprintf("torn write (at most %d bytes stored): %s", t.Keep, msg)
}

func (t *TornWrite) Unwrap() error { return t.Err }

// SetHook installs h (nil removes it).
func (b *Bucket) SetHook(h Hook) {
	if h == nil {
		b.hook.Store(nil)
		return
	}
	b.hook.Store(&h)
}

// Requests is the number of operations sent to the provider so far.
func (b *Bucket) Requests() int64 { return b.requests.Load() }

// before counts an operation and runs the hook.
func (b *Bucket) before(ctx context.Context, op, key string) error {
	b.requests.Add(1)
	h := b.hook.Load()
	if h == nil {
		return nil
	}
	if err := (*h)(ctx, op, key); err != nil {
		var se *Error
		var tw *TornWrite
		if !errors.As(err, &tw) && errors.As(err, &se) {
			return err
		}
		kind := KindOf(err)
		if kind == KindOther {
			kind = KindUnavailable
		}
		return &Error{Op: op, Key: key, Kind: kind, Err: err, scheme: b.scheme}
	}
	return nil
}

// Open opens the bucket named by rawURL. A URL without a scheme is taken as a
// local directory path. Unknown schemes get an error listing the supported ones.
//
// For s3://, gs:// and azblob:// Open makes one request (a listing of at
// most one key) so that a missing bucket, wrong credentials or an
// unreachable endpoint are reported here, by name, rather than at the first
// read. The error is a *Error of kind KindNotFound (with the bucket named
// and how to create it), KindPermission or KindUnavailable.
func Open(ctx context.Context, rawURL string) (*Bucket, error) {
	b, err := OpenUnchecked(ctx, rawURL)
	if err != nil {
		return nil, err
	}
	if err := b.Check(ctx); err != nil {
		_ = b.Close()
		return nil, err
	}
	return b, nil
}

// OpenUnchecked opens rawURL as Open does but sends no request: a
// remote bucket is not checked until Check or the first operation. For
// commands that must start while storage is unreachable (serve keeps
// spans in its write-ahead log meanwhile).
func OpenUnchecked(ctx context.Context, rawURL string) (*Bucket, error) {
	if strings.TrimSpace(rawURL) == "" {
		rawURL = DefaultURL
	}
	u, err := normalizeURL(rawURL)
	if err != nil {
		return nil, err
	}
	display := Redact(displayURL(u))
	invalid := func(format string, args ...any) error {
		return &Error{Op: "open", Key: display, Kind: KindInvalid, Err: fmt.Errorf(format, args...)}
	}
	switch u.Scheme {
	case "file", "mem", "s3", "gs", "azblob":
	case "":
		return nil, invalid("no scheme; use one of %s (e.g. file:///var/lib/tracectl, s3://bucket?region=us-east-1)",
			strings.Join(schemeList(), ", "))
	default:
		return nil, invalid("unsupported scheme %q; use one of %s (e.g. file:///var/lib/tracectl, s3://bucket?region=us-east-1)",
			u.Scheme, strings.Join(schemeList(), ", "))
	}
	remote := u.Scheme == "s3" || u.Scheme == "gs" || u.Scheme == "azblob"
	if remote {
		if u.Host == "" {
			return nil, invalid("the URL names no bucket: use %s://BUCKET", u.Scheme)
		}
		if u.User != nil {
			// gocloud ignores user info; a user who put credentials there
			// would otherwise get whatever the environment holds.
			return nil, invalid("credentials in the URL are not used; %s", credentialsHelp(u.Scheme))
		}
		if u.Path != "" && u.Path != "/" {
			return nil, invalid("a bucket URL has no path (%q); keys are given per operation", u.Path)
		}
	}
	if u.Scheme == "gs" {
		if h := os.Getenv("STORAGE_EMULATOR_HOST"); strings.Contains(h, "://") {
			return nil, invalid("STORAGE_EMULATOR_HOST=%q: give host:port without a scheme (gocloud adds http://)", h)
		}
	}
	b, err := urlMux.OpenBucketURL(ctx, u)
	if err != nil {
		return nil, wrapFor("open", display, u.Scheme, u.Host, err)
	}
	bk := &Bucket{b: b, scheme: u.Scheme, display: display, name: u.Host}
	if u.Scheme == "file" {
		bk.dir = filepath.FromSlash(u.Path)
		q := u.Query()
		bk.filePrefix = q.Get("prefix")
		bk.fileSingleKey = q.Has("key")
	}
	if u.Scheme == "gs" {
		// The GCS client retries a refused connection until the context
		// ends; without a deadline that is forever. Bound it.
		var c *gcs.Client
		if b.As(&c) {
			c.SetRetry(gcs.WithMaxAttempts(gcsMaxAttempts))
		}
	}
	return bk, nil
}

// Check lists at most one key to see that a remote bucket exists and
// answers with the credentials given; local buckets need no check. Open
// runs it.
func (b *Bucket) Check(ctx context.Context) error {
	switch b.scheme {
	case "s3", "gs", "azblob":
		return b.probe(ctx)
	}
	return nil
}

// urlMux is gocloud's default mux with tracectl's own Azure opener (see
// openAzure). Going through a mux keeps gocloud's ?prefix= parameter.
var urlMux = func() *blob.URLMux {
	m := new(blob.URLMux)
	for _, s := range []string{"file", "mem", "s3", "gs"} {
		m.RegisterBucket(s, defaultOpener{})
	}
	m.RegisterBucket("azblob", azureOpener{})
	return m
}()

type defaultOpener struct{}

func (defaultOpener) OpenBucketURL(ctx context.Context, u *url.URL) (*blob.Bucket, error) {
	return blob.DefaultURLMux().OpenBucketURL(ctx, u)
}

type azureOpener struct{}

func (azureOpener) OpenBucketURL(ctx context.Context, u *url.URL) (*blob.Bucket, error) {
	return openAzure(ctx, u, Redact(u.String()))
}

// gcsMaxAttempts bounds the GCS client's retries of one request.
const gcsMaxAttempts = 4

// probe lists at most one key, to learn whether the bucket is there.
func (b *Bucket) probe(ctx context.Context) error {
	_, _, err := b.b.ListPage(ctx, blob.FirstPageToken, 1, nil)
	if err == nil {
		return nil
	}
	var e *Error
	if !errors.As(wrapFor("open", b.display, b.scheme, b.name, err), &e) {
		return err
	}
	if e.Kind == KindNotFound {
		// Listing finds no object by definition: not found is the bucket.
		e.noBucket = true
	}
	return e
}

func credentialsHelp(scheme string) string {
	switch scheme {
	case "s3":
		return "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)"
	case "gs":
		return "set GOOGLE_APPLICATION_CREDENTIALS"
	case "azblob":
		return "set AZURE_STORAGE_ACCOUNT and AZURE_STORAGE_KEY (or use ?storage_account=NAME with AZURE_STORAGE_KEY)"
	}
	return "use the provider's environment variables"
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

// displayURL is u for messages: a file:// URL without the options Open
// adds for gocloud's fileblob (metadata, no_tmp_dir, create_dir), which
// the user did not write and cannot act on.
func displayURL(u *url.URL) string {
	if u.Scheme != "file" {
		return u.String()
	}
	d := *u
	q := d.Query()
	for _, k := range []string{"metadata", "no_tmp_dir", "create_dir"} {
		q.Del(k)
	}
	d.RawQuery = q.Encode()
	return d.String()
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

func (b *Bucket) wrap(op, key string, err error) error {
	return wrapFor(op, key, b.scheme, b.name, err)
}

// start checks what every operation needs: a live context and a key that
// every provider stores the same way. Local backends would otherwise not
// notice a canceled context at all.
func (b *Bucket) start(ctx context.Context, op, key string) error {
	if err := ctx.Err(); err != nil {
		return &Error{Op: op, Key: key, Kind: classify(err), Err: err, scheme: b.scheme}
	}
	if err := validKey(op, key); err != nil {
		return err
	}
	return b.before(ctx, op, key)
}

func validKey(op, key string) error {
	var why string
	switch {
	case key == "":
		why = "the key is empty"
	case strings.HasPrefix(key, "/"):
		why = "keys never start with '/'"
	case !utf8.ValidString(key):
		why = "the key is not valid UTF-8"
	default:
		return nil
	}
	return &Error{Op: op, Key: key, Kind: KindInvalid, Err: errors.New(why)}
}

// Read returns the whole object.
func (b *Bucket) Read(ctx context.Context, key string) ([]byte, error) {
	if err := b.start(ctx, "read", key); err != nil {
		return nil, err
	}
	data, err := b.b.ReadAll(ctx, key)
	if err != nil {
		return nil, b.wrap("read", key, err)
	}
	return data, nil
}

// ReadRange returns length bytes from offset. A range past the end returns
// what there is (possibly fewer bytes, none when offset is at or past the
// end); length < 0 reads to the end.
func (b *Bucket) ReadRange(ctx context.Context, key string, offset, length int64) ([]byte, error) {
	if err := b.start(ctx, "read", key); err != nil {
		return nil, err
	}
	if offset < 0 {
		return nil, &Error{Op: "read", Key: key, Kind: KindInvalid, Err: fmt.Errorf("negative offset %d", offset)}
	}
	r, err := b.b.NewRangeReader(ctx, key, offset, length, nil)
	if err != nil {
		if rangeNotSatisfiable(err) {
			// The object is there, the range starts at or after its end.
			return []byte{}, nil
		}
		return nil, b.wrap("read", key, err)
	}
	defer r.Close()
	var buf []byte
	if length > 0 {
		n := length
		if s := r.Size(); s >= 0 && s-offset < n {
			n = max(s-offset, 0)
		}
		buf = make([]byte, 0, n)
	}
	w := bytesWriter{buf: buf}
	if _, err := io.Copy(&w, r); err != nil {
		return nil, b.wrap("read", key, err)
	}
	if w.buf == nil {
		w.buf = []byte{}
	}
	return w.buf, nil
}

// rangeNotSatisfiable reports an HTTP 416 from any provider.
func rangeNotSatisfiable(err error) bool {
	var sc statusCoder
	if errors.As(err, &sc) && sc.HTTPStatusCode() == http.StatusRequestedRangeNotSatisfiable {
		return true
	}
	var ae smithy.APIError
	if errors.As(err, &ae) && ae.ErrorCode() == "InvalidRange" {
		return true
	}
	var ge *googleapi.Error
	if errors.As(err, &ge) && ge.Code == http.StatusRequestedRangeNotSatisfiable {
		return true
	}
	var re *azcore.ResponseError
	if errors.As(err, &re) && (re.StatusCode == http.StatusRequestedRangeNotSatisfiable || re.ErrorCode == "InvalidRange") {
		return true
	}
	return false
}

type bytesWriter struct{ buf []byte }

func (w *bytesWriter) Write(p []byte) (int, error) { w.buf = append(w.buf, p...); return len(p), nil }

// NewReader streams an object. The caller closes it.
func (b *Bucket) NewReader(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := b.start(ctx, "read", key); err != nil {
		return nil, err
	}
	r, err := b.b.NewReader(ctx, key, nil)
	if err != nil {
		return nil, b.wrap("read", key, err)
	}
	return &errReader{r: r, key: key, b: b}, nil
}

type errReader struct {
	r   io.ReadCloser
	key string
	b   *Bucket
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF {
		err = e.b.wrap("read", e.key, err)
	}
	return n, err
}
func (e *errReader) Close() error { return e.r.Close() }

// ReaderAt gives random access to an object of known size, one ranged read
// per ReadAt call. It is what parquet readers need. ReadAt may be called
// from many goroutines at once.
type ReaderAt struct {
	ctx  context.Context
	b    *Bucket
	key  string
	size int64
	// Reads counts the ranged reads issued, for tests and benchmarks. It is
	// updated atomically: while ReadAt calls may be running, use ReadCount.
	Reads int64
}

var _ io.ReaderAt = (*ReaderAt)(nil)

// OpenReaderAt returns a ReaderAt over key. If size < 0 the object's size is
// looked up first (one extra request).
func (b *Bucket) OpenReaderAt(ctx context.Context, key string, size int64) (*ReaderAt, error) {
	// No request yet: only the checks, not the count and hook.
	if err := ctx.Err(); err != nil {
		return nil, &Error{Op: "read", Key: key, Kind: classify(err), Err: err, scheme: b.scheme}
	}
	if err := validKey("read", key); err != nil {
		return nil, err
	}
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

// ReadCount returns Reads, safe to call while ReadAt runs.
func (r *ReaderAt) ReadCount() int64 { return atomic.LoadInt64(&r.Reads) }

// ReadAt implements io.ReaderAt.
func (r *ReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, &Error{Op: "read", Key: r.key, Kind: KindInvalid, Err: fmt.Errorf("negative offset %d", off)}
	}
	if off >= r.size {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	n := int64(len(p))
	if off+n > r.size {
		n = r.size - off
	}
	atomic.AddInt64(&r.Reads, 1)
	if err := r.b.before(r.ctx, "read", r.key); err != nil {
		return 0, err
	}
	rr, err := r.b.b.NewRangeReader(r.ctx, r.key, off, n, nil)
	if err != nil {
		return 0, r.b.wrap("read", r.key, err)
	}
	defer rr.Close()
	got, err := io.ReadFull(rr, p[:n])
	if err != nil {
		return got, r.b.wrap("read", r.key, err)
	}
	if got < len(p) {
		return got, io.EOF
	}
	return got, nil
}

// Write stores data under key, replacing any object there.
func (b *Bucket) Write(ctx context.Context, key string, data []byte) error {
	if err := b.start(ctx, "write", key); err != nil {
		if tw := tornWrite(err); tw != nil {
			keep := min(max(tw.Keep, 0), int64(len(data)))
			if uerr := b.b.Upload(ctx, key, bytes.NewReader(data[:keep]), b.sizedOpts(int(keep), false)); uerr != nil {
				return b.wrap("write", key, uerr)
			}
		}
		return err
	}
	// Upload, not WriteAll: gocloud's Azure writer panics when a streamed
	// write fails (it clears its pipe while Close still uses it); the
	// one-shot upload path does not touch the pipe.
	if err := b.b.Upload(ctx, key, bytes.NewReader(data), b.sizedOpts(len(data), false)); err != nil {
		return b.wrap("write", key, err)
	}
	return nil
}

// sizedOpts are the writer options for an upload of n bytes known up
// front. GCS and Azure allocate a whole chunk (16 MiB, 8 MiB) per upload
// whatever its size; for small objects (meta.json, blooms, leases) a chunk
// the size of the data does the same in one request without the 16 MiB.
func (b *Bucket) sizedOpts(n int, ifNotExist bool) *blob.WriterOptions {
	opts := writerOpts(ifNotExist)
	switch b.scheme {
	case "gs":
		const quantum = 256 << 10 // GCS chunks are multiples of 256 KiB
		if n < 16<<20 {
			opts.BufferSize = (n/quantum + 1) * quantum
		}
	case "azblob":
		if n < 8<<20 {
			opts.BufferSize = max(n+1, 64<<10)
		}
	}
	return opts
}

func writerOpts(ifNotExist bool) *blob.WriterOptions {
	return &blob.WriterOptions{
		ContentType:                 "application/octet-stream",
		DisableContentTypeDetection: true,
		IfNotExist:                  ifNotExist,
	}
}

// Writer streams one object. Nothing is visible under the key until Close
// returns nil; Abort discards what was written. A Writer is used by one
// goroutine at a time.
type Writer struct {
	b      *Bucket
	key    string
	pw     *io.PipeWriter
	cancel context.CancelFunc
	done   chan struct{}
	err    error // the upload's result, set before done closes
	n      int64
	closed bool
	// torn is the error of a write a hook tore (see TornWrite): the
	// upload stores a prefix, every later Write and Close fail with it.
	torn error
}

// tornWrite returns the TornWrite a hook put in err, if any.
func tornWrite(err error) *TornWrite {
	var tw *TornWrite
	if errors.As(err, &tw) {
		return tw
	}
	return nil
}

var errAborted = errors.New("write aborted")

// NewWriter starts writing key. Large objects are uploaded in parts
// (multipart on S3, resumable chunks on GCS, staged blocks on Azure).
func (b *Bucket) NewWriter(ctx context.Context, key string) (*Writer, error) {
	var torn error
	if err := b.start(ctx, "write", key); err != nil {
		if tornWrite(err) == nil {
			return nil, err
		}
		torn = err
	}
	ctx, cancel := context.WithCancel(ctx)
	pr, pw := io.Pipe()
	w := &Writer{b: b, key: key, pw: pw, cancel: cancel, done: make(chan struct{}), torn: torn}
	var src io.Reader = pr
	if tw := tornWrite(torn); tw != nil {
		// The upload ends, and stores what it has, after Keep bytes.
		src = io.LimitReader(pr, max(tw.Keep, 0))
	}
	// The upload reads from the pipe in its own goroutine (gocloud's
	// one-shot upload path, see Write). When it ends early, closing the
	// read side with its error makes pending and later Writes fail with it.
	go func() {
		defer close(w.done)
		err := b.b.Upload(ctx, key, src, writerOpts(false))
		w.err = err
		if err == nil {
			_ = pr.CloseWithError(errors.New("write already finished"))
		} else {
			_ = pr.CloseWithError(err)
		}
	}()
	return w, nil
}

func (w *Writer) Write(p []byte) (int, error) {
	if w.closed {
		return 0, &Error{Op: "write", Key: w.key, Kind: KindInvalid, Err: errors.New("write after Close or Abort")}
	}
	n, err := w.pw.Write(p)
	w.n += int64(n)
	if err != nil {
		if w.torn != nil {
			return n, w.torn
		}
		return n, w.b.wrap("write", w.key, err)
	}
	return n, nil
}

// Written is the number of bytes accepted so far.
func (w *Writer) Written() int64 { return w.n }

// Close commits the object and reports whether it was stored.
func (w *Writer) Close() error {
	if w.closed {
		return &Error{Op: "write", Key: w.key, Kind: KindInvalid, Err: errors.New("Close after Close or Abort")}
	}
	w.closed = true
	_ = w.pw.Close()
	<-w.done
	w.cancel()
	if w.err != nil {
		return w.b.wrap("write", w.key, w.err)
	}
	if w.torn != nil {
		return w.torn
	}
	return nil
}

// Abort discards the object being written; an object already under the key
// is left as it was. It waits until the upload has stopped.
func (w *Writer) Abort() {
	if w.closed {
		return
	}
	w.closed = true
	// Cancel first: drivers that buffer (mem, file) check the context when
	// the upload ends and then store nothing.
	w.cancel()
	_ = w.pw.CloseWithError(errAborted)
	<-w.done
}

// CreateIfNotExists stores data under key only if no object is there. It
// returns an error of kind KindExists when one is, and of kind KindUnsupported
// when the provider cannot make the write conditional. Of several concurrent
// calls for one key exactly one succeeds, on every backend tracectl opens
// (file:// uses a hard link, so the directory's file system must support
// them). Meant for small objects such as leases and markers.
func (b *Bucket) CreateIfNotExists(ctx context.Context, key string, data []byte) error {
	if err := b.start(ctx, "create", key); err != nil {
		return err
	}
	if b.scheme == "file" && !b.fileSingleKey && plainFileKey(b.filePrefix+key) {
		return b.createFile(key, data)
	}
	opts := b.sizedOpts(len(data), true)
	if b.scheme == "s3" && len(data) >= s3PartSize {
		// One PutObject rather than a multipart upload: stores that honour
		// If-None-Match on PutObject do not all honour it on
		// CompleteMultipartUpload (gofakes3 ignores it there).
		opts.BufferSize = len(data) + 1
	}
	if err := b.b.Upload(ctx, key, bytes.NewReader(data), opts); err != nil {
		return b.wrap("create", key, err)
	}
	return nil
}

// s3PartSize is the S3 transfer manager's default part size.
const s3PartSize = 8 << 20

// plainFileKey reports whether fileblob stores key at dir/key unchanged (it
// escapes some characters, and those keys take gocloud's path).
func plainFileKey(key string) bool {
	if strings.HasSuffix(key, "/") || strings.Contains(key, "//") || strings.Contains(key, "__0x") || strings.ContainsRune(key, '\\') {
		return false
	}
	for _, c := range key {
		if c < 32 {
			return false
		}
	}
	for seg := range strings.SplitSeq(key, "/") {
		if seg == "." || seg == ".." {
			return false
		}
	}
	return true
}

// createFile is CreateIfNotExists for file:// buckets. gocloud's fileblob
// checks for the target and then renames over it, which lets two racing
// writers both succeed; a hard link fails if the target exists, atomically.
func (b *Bucket) createFile(key string, data []byte) error {
	path := filepath.Join(b.dir, filepath.FromSlash(b.filePrefix+key))
	if err := os.MkdirAll(filepath.Dir(path), 0o777); err != nil {
		return b.wrap("create", key, err)
	}
	f, err := createTemp(path)
	if err != nil {
		return b.wrap("create", key, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return b.wrap("create", key, err)
	}
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return &Error{Op: "create", Key: key, Kind: KindExists, scheme: b.scheme,
				Err: fmt.Errorf("%s already exists", path)}
		}
		if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.ENOTSUP) || errors.Is(err, syscall.EXDEV) {
			return &Error{Op: "create", Key: key, Kind: KindUnsupported, scheme: b.scheme,
				Err: fmt.Errorf("the file system of %s has no hard links: %w", b.dir, err)}
		}
		return b.wrap("create", key, err)
	}
	return nil
}

// createTemp makes a temporary file beside path, named as fileblob names
// its own so that listings hide it (see isTempKey).
func createTemp(path string) (*os.File, error) {
	for try := 0; ; try++ {
		name := path + "." + strconv.FormatInt(time.Now().UnixNano(), 16) + ".tmp"
		f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o666)
		if errors.Is(err, fs.ErrExist) && try < 1000 {
			continue
		}
		return f, err
	}
}

// isTempKey matches fileblob's in-progress files ("<key>.<hex nanos>.tmp"),
// which sit beside their target (no_tmp_dir) until renamed.
func isTempKey(key string) bool {
	rest, ok := strings.CutSuffix(key, ".tmp")
	if !ok {
		return false
	}
	i := strings.LastIndexByte(rest, '.')
	if i < 0 || len(rest)-i-1 < 8 {
		return false
	}
	for _, c := range rest[i+1:] {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// Delete removes key. Deleting a missing key is an error of kind KindNotFound.
func (b *Bucket) Delete(ctx context.Context, key string) error {
	if err := b.start(ctx, "delete", key); err != nil {
		return err
	}
	if err := b.b.Delete(ctx, key); err != nil {
		return b.wrap("delete", key, err)
	}
	return nil
}

// Copy copies src to dst within the bucket.
func (b *Bucket) Copy(ctx context.Context, dst, src string) error {
	if err := b.start(ctx, "copy", src); err != nil {
		return err
	}
	if err := b.start(ctx, "copy", dst); err != nil {
		return err
	}
	if err := b.b.Copy(ctx, dst, src, nil); err != nil {
		return b.wrap("copy", src, err)
	}
	return nil
}

// Attributes returns the size and modification time of key.
func (b *Bucket) Attributes(ctx context.Context, key string) (Attributes, error) {
	if err := b.start(ctx, "stat", key); err != nil {
		return Attributes{}, err
	}
	a, err := b.b.Attributes(ctx, key)
	if err != nil {
		return Attributes{}, b.wrap("stat", key, err)
	}
	return Attributes{Size: a.Size, ModTime: a.ModTime, ETag: a.ETag}, nil
}

// Exists reports whether key is stored. A missing bucket or a refused
// permission is an error, not false.
func (b *Bucket) Exists(ctx context.Context, key string) (bool, error) {
	_, err := b.Attributes(ctx, key)
	if err == nil {
		return true, nil
	}
	var e *Error
	if errors.As(err, &e) && e.Kind == KindNotFound && !e.noBucket {
		return false, nil
	}
	return false, err
}

// List yields the objects whose keys start with prefix, in lexical key order
// per page as the provider returns them. With delimiter "/" it yields one
// IsDir entry per common prefix instead of descending. The sequence stops at
// the first error, which it yields with a zero Object.
func (b *Bucket) List(ctx context.Context, prefix, delimiter string) iter.Seq2[Object, error] {
	return func(yield func(Object, error) bool) {
		if err := b.before(ctx, "list", prefix); err != nil {
			yield(Object{}, err)
			return
		}
		it := b.b.List(&blob.ListOptions{Prefix: prefix, Delimiter: delimiter})
		for {
			o, err := it.Next(ctx)
			if err == io.EOF {
				return
			}
			if err != nil {
				yield(Object{}, b.wrap("list", prefix, err))
				return
			}
			if b.scheme == "file" && !o.IsDir && isTempKey(o.Key) {
				continue
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
