// Package storagetest holds the conformance suite that every storage
// backend tracectl opens must pass, and the in-process or local peers the
// suite runs against (gofakes3 for S3, fake-gcs-server for GCS, Azurite for
// Azure). It is written once, after restic's backend test suite: a backend
// is a function that opens a fresh, empty bucket, and RunConformance checks
// the whole storage.Bucket contract on it over the real protocol.
//
// Only tests import this package. It never reaches beyond 127.0.0.1.
package storagetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tracectl/tracectl/internal/storage"
)

// Backend is one storage backend under test.
type Backend struct {
	// Name names the backend in test output.
	Name string
	// Open returns a new, empty bucket that no other test uses. The bucket
	// is closed when the test ends.
	Open func(t testing.TB) *storage.Bucket
	// ConditionalCreate says whether CreateIfNotExists is atomic on this
	// backend. When false, the suite expects storage.ErrUnsupported.
	ConditionalCreate bool
	// ListRequests, when set, counts the listing requests the provider
	// has answered; the suite uses it to check that listing more than a
	// page of keys really went through the provider's paging.
	ListRequests func() int64
	// LargeSize is the size of the large-object test; 0 means
	// DefaultLargeSize.
	LargeSize int64
}

// DefaultLargeSize is more than 64 MiB and not a multiple of any part or
// block size (S3 and Azure upload in 8 MiB parts, GCS in 16 MiB chunks).
const DefaultLargeSize = 64<<20 + 12345

// PageKeys is how many keys the listing test writes: more than the 1,000
// that S3, GCS and Azure return per page.
const PageKeys = 1100

// RunConformance runs the suite against b, one subtest per part of the
// contract.
func RunConformance(t *testing.T, b Backend) {
	tests := []struct {
		name string
		fn   func(t *testing.T, b Backend)
	}{
		{"RoundTrip", testRoundTrip},
		{"Ranges", testRanges},
		{"ReaderAt", testReaderAt},
		{"NotFound", testNotFound},
		{"InvalidKeys", testInvalidKeys},
		{"Abort", testAbort},
		{"NotVisibleBeforeClose", testNotVisibleBeforeClose},
		{"Listing", testListing},
		{"ListingPages", testListingPages},
		{"ConcurrentWriters", testConcurrentWriters},
		{"ConditionalCreate", testConditionalCreate},
		{"Canceled", testCanceled},
		{"LargeObject", testLargeObject},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			tc.fn(t, b)
			t.Logf("%s/%s: %v", b.Name, tc.name, time.Since(start).Round(time.Millisecond))
		})
	}
}

func open(t *testing.T, b Backend) (*storage.Bucket, context.Context) {
	t.Helper()
	bk := b.Open(t)
	t.Cleanup(func() { _ = bk.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return bk, ctx
}

// Keys shaped like a Tempo bucket: <tenant>/<block uuid>/<object>.
const (
	blockA = "3f2a9c1e-5b7d-4e8f-9a0b-1c2d3e4f5a6b"
	blockB = "0b6e1f2a-7c3d-4e5f-8a9b-0c1d2e3f4a5b"
)

func mustWrite(t *testing.T, ctx context.Context, bk *storage.Bucket, key string, data []byte) {
	t.Helper()
	if err := bk.Write(ctx, key, data); err != nil {
		t.Fatalf("Write(%q): %v", key, err)
	}
}

func mustRead(t *testing.T, ctx context.Context, bk *storage.Bucket, key string) []byte {
	t.Helper()
	got, err := bk.Read(ctx, key)
	if err != nil {
		t.Fatalf("Read(%q): %v", key, err)
	}
	return got
}

func checkEqual(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Errorf("%s: got %d bytes %s, want %d bytes %s", what, len(got), preview(got), len(want), preview(want))
	}
}

func preview(p []byte) string {
	if len(p) > 16 {
		return fmt.Sprintf("%x… (sha256 %x)", p[:16], sha256.Sum256(p))
	}
	return fmt.Sprintf("%x", p)
}

func testRoundTrip(t *testing.T, b Backend) {
	bk, ctx := open(t, b)
	binary := make([]byte, 0, 4*256+64)
	for i := range 4 * 256 {
		binary = append(binary, byte(i))
	}
	binary = append(binary, make([]byte, 32)...)
	binary = append(binary, bytes.Repeat([]byte{0xff}, 32)...)
	objects := map[string][]byte{
		"single-tenant/" + blockA + "/meta.json":           []byte(`{"format":"vParquet4","blockID":"` + blockA + `","tenantID":"single-tenant"}`),
		"single-tenant/" + blockA + "/data.parquet":        append([]byte("PAR1"), append(Data(1, 0, 200_000), []byte("PAR1")...)...),
		"single-tenant/" + blockA + "/bloom-0":             binary,
		"single-tenant/" + blockA + "/meta.compacted.json": []byte(`{}`),
		"single-tenant/index.json.gz":                      {0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff},
		"tenant-ü/space and+plus=eq/meta.json":             []byte("unicode, space, plus and equals in a key"),
	}
	for k, v := range objects {
		mustWrite(t, ctx, bk, k, v)
	}
	for k, v := range objects {
		checkEqual(t, "Read "+k, mustRead(t, ctx, bk, k), v)
		a, err := bk.Attributes(ctx, k)
		if err != nil {
			t.Fatalf("Attributes(%q): %v", k, err)
		}
		if a.Size != int64(len(v)) {
			t.Errorf("Attributes(%q).Size = %d, want %d", k, a.Size, len(v))
		}
		if a.ModTime.IsZero() {
			t.Errorf("Attributes(%q).ModTime is zero", k)
		}
		if ok, err := bk.Exists(ctx, k); err != nil || !ok {
			t.Errorf("Exists(%q) = %v, %v; want true, nil", k, ok, err)
		}
		r, err := bk.NewReader(ctx, k)
		if err != nil {
			t.Fatalf("NewReader(%q): %v", k, err)
		}
		got, err := io.ReadAll(r)
		_ = r.Close()
		if err != nil {
			t.Fatalf("reading NewReader(%q): %v", k, err)
		}
		checkEqual(t, "NewReader "+k, got, v)
	}

	// Overwrite, shorter then longer: no stale tail, size follows.
	k := "single-tenant/" + blockA + "/meta.json"
	for _, v := range [][]byte{[]byte("short"), Data(2, 0, 70_000)} {
		mustWrite(t, ctx, bk, k, v)
		checkEqual(t, "Read after overwrite", mustRead(t, ctx, bk, k), v)
		if a, err := bk.Attributes(ctx, k); err != nil || a.Size != int64(len(v)) {
			t.Errorf("Attributes after overwrite = %+v, %v; want size %d", a, err, len(v))
		}
	}

	// Empty objects, by Write and by a Writer closed without a Write.
	mustWrite(t, ctx, bk, "empty/by-write", nil)
	w, err := bk.NewWriter(ctx, "empty/by-writer")
	if err != nil {
		t.Fatalf("NewWriter: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close of an empty Writer: %v", err)
	}
	for _, k := range []string{"empty/by-write", "empty/by-writer"} {
		got := mustRead(t, ctx, bk, k)
		if len(got) != 0 {
			t.Errorf("Read(%q) = %d bytes, want 0", k, len(got))
		}
		if a, err := bk.Attributes(ctx, k); err != nil || a.Size != 0 {
			t.Errorf("Attributes(%q) = %+v, %v; want size 0", k, a, err)
		}
		if ok, err := bk.Exists(ctx, k); err != nil || !ok {
			t.Errorf("Exists(%q) = %v, %v; want true (an empty object exists)", k, ok, err)
		}
	}

	// A streamed write of odd-sized pieces.
	w, err = bk.NewWriter(ctx, "streamed/obj")
	if err != nil {
		t.Fatalf("NewWriter: %v", err)
	}
	want := Data(3, 0, 300_001)
	for rest := want; len(rest) > 0; {
		n := min(len(rest), 7777)
		if _, err := w.Write(rest[:n]); err != nil {
			t.Fatalf("Writer.Write: %v", err)
		}
		rest = rest[n:]
	}
	if w.Written() != int64(len(want)) {
		t.Errorf("Written() = %d, want %d", w.Written(), len(want))
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Writer.Close: %v", err)
	}
	checkEqual(t, "Read of streamed object", mustRead(t, ctx, bk, "streamed/obj"), want)
	if err := w.Close(); err == nil {
		t.Error("a second Close returned nil, want an error")
	}
	if _, err := w.Write([]byte("x")); err == nil {
		t.Error("Write after Close returned nil, want an error")
	}

	// Copy, then Delete the source: the copy stays.
	src := "single-tenant/" + blockA + "/data.parquet"
	dst := "single-tenant/" + blockB + "/data.parquet"
	if err := bk.Copy(ctx, dst, src); err != nil {
		t.Fatalf("Copy: %v", err)
	}
	if err := bk.Delete(ctx, src); err != nil {
		t.Fatalf("Delete(%q): %v", src, err)
	}
	checkEqual(t, "Read of the copy", mustRead(t, ctx, bk, dst), objects[src])
	if ok, err := bk.Exists(ctx, src); err != nil || ok {
		t.Errorf("Exists after Delete = %v, %v; want false, nil", ok, err)
	}
	if _, err := bk.Read(ctx, src); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Read after Delete: %v; want ErrNotFound", err)
	}
}

func testRanges(t *testing.T, b Backend) {
	bk, ctx := open(t, b)
	const size = 100_003
	data := Data(4, 0, size)
	key := "t/" + blockA + "/data.parquet"
	mustWrite(t, ctx, bk, key, data)
	cases := []struct {
		name        string
		off, length int64
		want        []byte
	}{
		{"start", 0, 10, data[:10]},
		{"middle", 50_000, 1000, data[50_000:51_000]},
		{"end", size - 10, 10, data[size-10:]},
		{"one byte", 777, 1, data[777:778]},
		{"zero length", 500, 0, []byte{}},
		{"past end", size - 10, 100, data[size-10:]},
		{"at end", size, 10, []byte{}},
		{"beyond end", size + 1000, 10, []byte{}},
		{"to end", 0, -1, data},
		{"tail to end", 99_000, -1, data[99_000:]},
		{"last byte to end", size - 1, -1, data[size-1:]},
		{"parquet footer", size - 8, 8, data[size-8:]},
	}
	for _, c := range cases {
		got, err := bk.ReadRange(ctx, key, c.off, c.length)
		if err != nil {
			t.Errorf("ReadRange(%s: %d, %d): %v", c.name, c.off, c.length, err)
			continue
		}
		checkEqual(t, fmt.Sprintf("ReadRange(%s: %d, %d)", c.name, c.off, c.length), got, c.want)
	}
	if _, err := bk.ReadRange(ctx, key, -1, 10); !errors.Is(err, storage.ErrInvalid) {
		t.Errorf("ReadRange with a negative offset: %v; want ErrInvalid", err)
	}
	// An empty object has nothing at offset 0.
	mustWrite(t, ctx, bk, "t/empty", nil)
	if got, err := bk.ReadRange(ctx, "t/empty", 0, 10); err != nil || len(got) != 0 {
		t.Errorf("ReadRange of an empty object = %d bytes, %v; want 0, nil", len(got), err)
	}
}

func testReaderAt(t *testing.T, b Backend) {
	bk, ctx := open(t, b)
	const size = 262_147
	data := Data(5, 0, size)
	key := "t/" + blockA + "/data.parquet"
	mustWrite(t, ctx, bk, key, data)

	r, err := bk.OpenReaderAt(ctx, key, -1)
	if err != nil {
		t.Fatalf("OpenReaderAt(size -1): %v", err)
	}
	if r.Size() != size {
		t.Fatalf("Size() = %d, want %d", r.Size(), size)
	}
	if r.Reads != 0 {
		t.Errorf("Reads = %d after open, want 0 (the size lookup is no ranged read)", r.Reads)
	}
	rng := rand.New(rand.NewPCG(5, 5))
	calls := int64(0)
	for i := range 60 {
		off := rng.Int64N(size)
		n := rng.IntN(20_000) + 1
		switch i {
		case 0:
			off, n = 0, 4 // parquet magic
		case 1:
			off, n = size-8, 8 // parquet footer
		case 2:
			off, n = size-100, 1000 // crosses the end
		}
		p := make([]byte, n)
		got, err := r.ReadAt(p, off)
		calls++
		end := min(off+int64(n), size)
		wantN := int(end - off)
		if got != wantN {
			t.Errorf("ReadAt(%d bytes at %d) = %d bytes, want %d", n, off, got, wantN)
		}
		if wantN < n && err != io.EOF {
			t.Errorf("ReadAt(%d bytes at %d) short of the end: err %v, want io.EOF", n, off, err)
		}
		if wantN == n && err != nil {
			t.Errorf("ReadAt(%d bytes at %d): %v", n, off, err)
		}
		checkEqual(t, fmt.Sprintf("ReadAt(%d bytes at %d)", n, off), p[:got], data[off:end])
	}
	if r.Reads != calls {
		t.Errorf("Reads = %d after %d ReadAt calls, want one request each", r.Reads, calls)
	}
	// At or past the end: io.EOF and no request.
	if n, err := r.ReadAt(make([]byte, 10), size); n != 0 || err != io.EOF {
		t.Errorf("ReadAt at the end = %d, %v; want 0, io.EOF", n, err)
	}
	if r.Reads != calls {
		t.Errorf("Reads = %d: a ReadAt at the end made a request", r.Reads)
	}

	// io.SectionReader over it, as parquet-go does, reads the whole object.
	got, err := io.ReadAll(io.NewSectionReader(r, 0, r.Size()))
	if err != nil {
		t.Fatalf("reading through io.SectionReader: %v", err)
	}
	checkEqual(t, "io.SectionReader", got, data)

	// Concurrent ReadAt calls (io.ReaderAt allows them; run with -race).
	r2, err := bk.OpenReaderAt(ctx, key, size)
	if err != nil {
		t.Fatalf("OpenReaderAt(known size): %v", err)
	}
	var wg sync.WaitGroup
	var bad atomic.Int64
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 5 {
				off := int64((g*5+j)*5000) % size
				p := make([]byte, 4096)
				n, err := r2.ReadAt(p, off)
				if (err != nil && err != io.EOF) || !bytes.Equal(p[:n], data[off:off+int64(n)]) {
					bad.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if bad.Load() != 0 {
		t.Errorf("%d concurrent ReadAt calls returned wrong data or errors", bad.Load())
	}
	if r2.Reads != 40 {
		t.Errorf("Reads = %d after 40 concurrent ReadAt calls, want 40", r2.Reads)
	}
}

func checkNotFound(t *testing.T, op, key string, err error) {
	t.Helper()
	if !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("%s of a missing key: %v; want ErrNotFound", op, err)
		return
	}
	if !strings.Contains(err.Error(), key) {
		t.Errorf("%s of a missing key: message %q does not name the key %q", op, err, key)
	}
	if strings.Contains(err.Error(), "bucket not found") {
		t.Errorf("%s of a missing key: message %q blames the bucket; the object is missing", op, err)
	}
}

func testNotFound(t *testing.T, b Backend) {
	bk, ctx := open(t, b)
	mustWrite(t, ctx, bk, "t/"+blockA+"/meta.json", []byte("{}"))
	key := "t/" + blockA + "/data.parquet"
	_, err := bk.Read(ctx, key)
	checkNotFound(t, "Read", key, err)
	_, err = bk.ReadRange(ctx, key, 0, 10)
	checkNotFound(t, "ReadRange", key, err)
	_, err = bk.ReadRange(ctx, key, 100, -1)
	checkNotFound(t, "ReadRange to end", key, err)
	_, err = bk.NewReader(ctx, key)
	checkNotFound(t, "NewReader", key, err)
	_, err = bk.Attributes(ctx, key)
	checkNotFound(t, "Attributes", key, err)
	err = bk.Delete(ctx, key)
	checkNotFound(t, "Delete", key, err)
	_, err = bk.OpenReaderAt(ctx, key, -1)
	checkNotFound(t, "OpenReaderAt", key, err)
	r, err := bk.OpenReaderAt(ctx, key, 100)
	if err != nil {
		t.Fatalf("OpenReaderAt with a known size: %v", err)
	}
	_, err = r.ReadAt(make([]byte, 10), 0)
	checkNotFound(t, "ReadAt", key, err)
	err = bk.Copy(ctx, "t/copy", key)
	checkNotFound(t, "Copy", key, err)
	if ok, err := bk.Exists(ctx, key); ok || err != nil {
		t.Errorf("Exists of a missing key = %v, %v; want false, nil", ok, err)
	}
	// Listing a prefix with nothing under it is no error.
	objs, err := bk.ListAll(ctx, "nothing-here/", "/")
	if err != nil || len(objs) != 0 {
		t.Errorf("ListAll of an empty prefix = %v, %v; want nothing, nil", objs, err)
	}
}

func testInvalidKeys(t *testing.T, b Backend) {
	bk, ctx := open(t, b)
	for _, key := range []string{"", "/abs/key"} {
		if err := bk.Write(ctx, key, []byte("x")); !errors.Is(err, storage.ErrInvalid) {
			t.Errorf("Write(%q): %v; want ErrInvalid", key, err)
		}
		if _, err := bk.Read(ctx, key); !errors.Is(err, storage.ErrInvalid) {
			t.Errorf("Read(%q): %v; want ErrInvalid", key, err)
		}
	}
}

func testAbort(t *testing.T, b Backend) {
	bk, ctx := open(t, b)

	abort := func(key string, n int64) {
		t.Helper()
		w, err := bk.NewWriter(ctx, key)
		if err != nil {
			t.Fatalf("NewWriter(%q): %v", key, err)
		}
		if n > 0 {
			if _, err := io.CopyBuffer(w, Reader(6, n), make([]byte, 256<<10)); err != nil {
				t.Fatalf("Write to %q: %v", key, err)
			}
		}
		w.Abort()
		if _, err := w.Write([]byte("more")); err == nil {
			t.Errorf("Write after Abort returned nil, want an error")
		}
		w.Abort() // a second Abort is harmless
	}

	// Nothing, a little, and more than one S3/Azure part (a multipart
	// upload under way).
	for _, c := range []struct {
		key string
		n   int64
	}{{"abort/nothing", 0}, {"abort/small", 100_000}, {"abort/multipart", 9 << 20}} {
		abort(c.key, c.n)
		if ok, err := bk.Exists(ctx, c.key); err != nil || ok {
			t.Errorf("Exists(%q) after Abort = %v, %v; want false, nil", c.key, ok, err)
		}
	}
	// Aborting a replacement leaves the old object.
	old := []byte("the object before the aborted write")
	mustWrite(t, ctx, bk, "abort/existing", old)
	abort("abort/existing", 50_000)
	checkEqual(t, "Read after an aborted replacement", mustRead(t, ctx, bk, "abort/existing"), old)

	// No leftovers in listings (temporary files, pending parts).
	objs, err := bk.ListAll(ctx, "abort/", "")
	if err != nil {
		t.Fatalf("ListAll: %v", err)
	}
	if len(objs) != 1 || objs[0].Key != "abort/existing" {
		t.Errorf("listing after aborted writes = %v; want only abort/existing", keys(objs))
	}
}

func testNotVisibleBeforeClose(t *testing.T, b Backend) {
	bk, ctx := open(t, b)
	key := "t/" + blockA + "/data.parquet"
	w, err := bk.NewWriter(ctx, key)
	if err != nil {
		t.Fatalf("NewWriter: %v", err)
	}
	defer w.Abort()
	if _, err := w.Write(Data(7, 0, 200_000)); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if ok, err := bk.Exists(ctx, key); err != nil || ok {
		t.Errorf("Exists before Close = %v, %v; want false, nil", ok, err)
	}
	objs, err := bk.ListAll(ctx, "t/", "")
	if err != nil {
		t.Fatalf("ListAll: %v", err)
	}
	if len(objs) != 0 {
		t.Errorf("listing while a write is open = %v; want nothing (no temporary objects)", keys(objs))
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	objs, err = bk.ListAll(ctx, "t/", "")
	if err != nil {
		t.Fatalf("ListAll: %v", err)
	}
	if len(objs) != 1 || objs[0].Key != key || objs[0].Size != 200_000 {
		t.Errorf("listing after Close = %+v; want %s of 200000 bytes", objs, key)
	}
}

func keys(objs []storage.Object) []string {
	out := make([]string, len(objs))
	for i, o := range objs {
		out[i] = o.Key
		if o.IsDir {
			out[i] += " (dir)"
		}
	}
	return out
}

func testListing(t *testing.T, b Backend) {
	bk, ctx := open(t, b)
	layout := map[string]int{
		"single-tenant/" + blockA + "/meta.json":    10,
		"single-tenant/" + blockA + "/data.parquet": 2000,
		"single-tenant/" + blockA + "/bloom-0":      30,
		"single-tenant/" + blockB + "/meta.json":    11,
		"single-tenant/index.json.gz":               40,
		"single-tenant-2/" + blockA + "/meta.json":  12,
		"other/" + blockB + "/meta.json":            13,
		"top-level.json":                            5,
	}
	for k, n := range layout {
		mustWrite(t, ctx, bk, k, Data(8, 0, int64(n)))
	}
	type entry struct {
		key   string
		size  int64
		isDir bool
	}
	check := func(prefix, delim string, want []entry) {
		t.Helper()
		got, err := bk.ListAll(ctx, prefix, delim)
		if err != nil {
			t.Fatalf("ListAll(%q, %q): %v", prefix, delim, err)
		}
		var g []entry
		for _, o := range got {
			e := entry{key: o.Key, isDir: o.IsDir}
			if !o.IsDir {
				e.size = o.Size
				if o.ModTime.IsZero() {
					t.Errorf("ListAll(%q, %q): %s has no ModTime", prefix, delim, o.Key)
				}
			}
			g = append(g, e)
		}
		if !slices.Equal(g, want) {
			t.Errorf("ListAll(%q, %q) =\n  %v\nwant\n  %v", prefix, delim, g, want)
		}
	}
	// Tenants: the top level with "/".
	check("", "/", []entry{
		{"other/", 0, true}, {"single-tenant-2/", 0, true}, {"single-tenant/", 0, true}, {"top-level.json", 5, false},
	})
	// Blocks of a tenant. The trailing "/" keeps single-tenant-2 out.
	check("single-tenant/", "/", []entry{
		{"single-tenant/" + blockB + "/", 0, true},
		{"single-tenant/" + blockA + "/", 0, true},
		{"single-tenant/index.json.gz", 40, false},
	})
	// Objects of a block.
	check("single-tenant/"+blockA+"/", "/", []entry{
		{"single-tenant/" + blockA + "/bloom-0", 30, false},
		{"single-tenant/" + blockA + "/data.parquet", 2000, false},
		{"single-tenant/" + blockA + "/meta.json", 10, false},
	})
	// A prefix is a string prefix, not a directory.
	check("single-tenant", "", []entry{
		{"single-tenant-2/" + blockA + "/meta.json", 12, false},
		{"single-tenant/" + blockB + "/meta.json", 11, false},
		{"single-tenant/" + blockA + "/bloom-0", 30, false},
		{"single-tenant/" + blockA + "/data.parquet", 2000, false},
		{"single-tenant/" + blockA + "/meta.json", 10, false},
		{"single-tenant/index.json.gz", 40, false},
	})
	check("single-tenant/"+blockA+"/meta", "", []entry{
		{"single-tenant/" + blockA + "/meta.json", 10, false},
	})
	check("nope/", "/", nil)

	// Stopping early is allowed.
	n := 0
	for _, err := range bk.List(ctx, "", "") {
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		if n++; n == 2 {
			break
		}
	}

	// When the last object under a prefix goes, so does the prefix (a
	// deleted block must not be rediscovered).
	for _, k := range []string{"other/" + blockB + "/meta.json"} {
		if err := bk.Delete(ctx, k); err != nil {
			t.Fatalf("Delete(%q): %v", k, err)
		}
	}
	check("", "/", []entry{
		{"single-tenant-2/", 0, true}, {"single-tenant/", 0, true}, {"top-level.json", 5, false},
	})
	check("other/", "/", nil)
}

// writeMany writes keys concurrently, each holding its own name.
func writeMany(t *testing.T, ctx context.Context, bk *storage.Bucket, keys []string) {
	t.Helper()
	ch := make(chan string)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range ch {
				if err := bk.Write(ctx, k, []byte(k)); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for _, k := range keys {
		ch <- k
	}
	close(ch)
	wg.Wait()
	if firstErr != nil {
		t.Fatalf("writing %d keys: %v", len(keys), firstErr)
	}
}

func testListingPages(t *testing.T, b Backend) {
	bk, ctx := open(t, b)
	var want, wantDirs []string
	for i := range PageKeys {
		dir := fmt.Sprintf("tenant/%08x-0000-4000-8000-%012x/", i, i)
		want = append(want, dir+"meta.json")
		wantDirs = append(wantDirs, dir)
	}
	start := time.Now()
	writeMany(t, ctx, bk, want)
	mustWrite(t, ctx, bk, "tenantx", []byte("outside the prefix"))
	t.Logf("writing %d keys: %v", PageKeys, time.Since(start).Round(time.Millisecond))
	start = time.Now()
	defer func() { t.Logf("listing them: %v", time.Since(start).Round(time.Millisecond)) }()

	var before int64
	if b.ListRequests != nil {
		before = b.ListRequests()
	}
	seen := map[string]int{}
	var got []string
	for o, err := range bk.List(ctx, "tenant/", "") {
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		seen[o.Key]++
		got = append(got, o.Key)
		if o.IsDir || o.Size != int64(len(o.Key)) {
			t.Errorf("List: %+v; want an object of %d bytes", o, len(o.Key))
		}
	}
	if b.ListRequests != nil {
		if n := b.ListRequests() - before; n < 2 {
			t.Errorf("listing %d keys took %d listing request(s); want at least 2 (provider paging)", PageKeys, n)
		}
	}
	for k, n := range seen {
		if n != 1 {
			t.Errorf("List returned %s %d times, want once", k, n)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("List returned %d keys, want %d (first difference near %s)", len(got), len(want), firstDiff(got, want))
	}

	dirs, err := bk.ListAll(ctx, "tenant/", "/")
	if err != nil {
		t.Fatalf("ListAll with delimiter: %v", err)
	}
	var gotDirs []string
	for _, o := range dirs {
		if !o.IsDir {
			t.Errorf("ListAll(tenant/, /): %s is not a directory", o.Key)
		}
		gotDirs = append(gotDirs, o.Key)
	}
	if !slices.Equal(gotDirs, wantDirs) {
		t.Errorf("ListAll(tenant/, /) returned %d prefixes, want %d (first difference near %s)", len(gotDirs), len(wantDirs), firstDiff(gotDirs, wantDirs))
	}
}

func firstDiff(a, b []string) string {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return fmt.Sprintf("index %d: %q vs %q", i, a[i], b[i])
		}
	}
	return fmt.Sprintf("index %d", min(len(a), len(b)))
}

func testConcurrentWriters(t *testing.T, b Backend) {
	bk, ctx := open(t, b)
	const writers = 12
	const size = 256 << 10
	payload := func(i int) []byte { return Data(uint64(100+i), 0, size) }
	write := func(i int, key string) error {
		if i%2 == 0 {
			return bk.Write(ctx, key, payload(i))
		}
		w, err := bk.NewWriter(ctx, key)
		if err != nil {
			return err
		}
		p := payload(i)
		for len(p) > 0 {
			n := min(len(p), 10_000)
			if _, err := w.Write(p[:n]); err != nil {
				w.Abort()
				return err
			}
			p = p[n:]
		}
		return w.Close()
	}

	// Different keys.
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = write(i, fmt.Sprintf("own/%02d", i))
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("writer %d: %v", i, err)
		}
		checkEqual(t, fmt.Sprintf("own/%02d", i), mustRead(t, ctx, bk, fmt.Sprintf("own/%02d", i)), payload(i))
	}

	// One key, while readers watch it: every read is missing or exactly
	// one writer's complete value, never a mix or a prefix.
	key := "shared/" + blockA + "/meta.json"
	valid := map[[32]byte]int{}
	for i := range writers {
		valid[sha256.Sum256(payload(i))] = i
	}
	stop := make(chan struct{})
	var torn, reads atomic.Int64
	var rwg sync.WaitGroup
	for range 3 {
		rwg.Add(1)
		go func() {
			defer rwg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				got, err := bk.Read(ctx, key)
				if errors.Is(err, storage.ErrNotFound) {
					continue
				}
				reads.Add(1)
				if err != nil {
					torn.Add(1)
					continue
				}
				if _, ok := valid[sha256.Sum256(got)]; !ok {
					torn.Add(1)
				}
			}
		}()
	}
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = write(i, key)
		}()
	}
	wg.Wait()
	close(stop)
	rwg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("writer %d of the shared key: %v", i, err)
		}
	}
	if torn.Load() != 0 {
		t.Errorf("%d of %d reads during concurrent writes returned an error or a value no writer wrote", torn.Load(), reads.Load())
	}
	got := mustRead(t, ctx, bk, key)
	if _, ok := valid[sha256.Sum256(got)]; !ok {
		t.Errorf("after %d concurrent writes the key holds %d bytes that no writer wrote", writers, len(got))
	}
}

func testConditionalCreate(t *testing.T, b Backend) {
	bk, ctx := open(t, b)
	key := "single-tenant/" + blockA + "/compaction.lease"
	first := []byte(`{"owner":"a"}`)
	err := bk.CreateIfNotExists(ctx, key, first)
	if !b.ConditionalCreate {
		if !errors.Is(err, storage.ErrUnsupported) {
			t.Fatalf("CreateIfNotExists on a backend without conditional writes: %v; want ErrUnsupported", err)
		}
		return
	}
	if err != nil {
		t.Fatalf("CreateIfNotExists of a new key: %v", err)
	}
	err = bk.CreateIfNotExists(ctx, key, []byte(`{"owner":"b"}`))
	if !errors.Is(err, storage.ErrExists) {
		t.Fatalf("CreateIfNotExists of an existing key: %v; want ErrExists", err)
	}
	if !strings.Contains(err.Error(), key) {
		t.Errorf("ErrExists message %q does not name the key", err)
	}
	checkEqual(t, "the lease after a refused create", mustRead(t, ctx, bk, key), first)
	// Released leases can be taken again.
	if err := bk.Delete(ctx, key); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if err := bk.CreateIfNotExists(ctx, key, []byte(`{"owner":"c"}`)); err != nil {
		t.Fatalf("CreateIfNotExists after Delete: %v", err)
	}
	// An empty marker object works too.
	if err := bk.CreateIfNotExists(ctx, "marker", nil); err != nil {
		t.Fatalf("CreateIfNotExists of an empty object: %v", err)
	}
	if err := bk.CreateIfNotExists(ctx, "marker", nil); !errors.Is(err, storage.ErrExists) {
		t.Fatalf("CreateIfNotExists of an existing empty object: %v; want ErrExists", err)
	}

	// Racing creators: exactly one wins, and its value is stored.
	const racers = 12
	for round := range 5 {
		key := fmt.Sprintf("race/%d.lease", round)
		errs := make([]error, racers)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range racers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				errs[i] = bk.CreateIfNotExists(ctx, key, []byte(fmt.Sprintf("owner %d", i)))
			}()
		}
		close(start)
		wg.Wait()
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil && winner >= 0:
				t.Errorf("round %d: racers %d and %d both created %s", round, winner, i, key)
			case err == nil:
				winner = i
			case !errors.Is(err, storage.ErrExists):
				t.Errorf("round %d: racer %d: %v; want nil or ErrExists", round, i, err)
			}
		}
		if winner < 0 {
			t.Errorf("round %d: no racer created %s", round, key)
			continue
		}
		checkEqual(t, "the raced lease", mustRead(t, ctx, bk, key), []byte(fmt.Sprintf("owner %d", winner)))
	}
}

func testCanceled(t *testing.T, b Backend) {
	bk, ctx := open(t, b)
	mustWrite(t, ctx, bk, "k", []byte("v"))
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := bk.Read(cctx, "k"); err == nil {
		t.Errorf("Read with a canceled context returned nil")
	} else if k := storage.KindOf(err); k == storage.KindNotFound || k == storage.KindExists || k == storage.KindPermission {
		t.Errorf("Read with a canceled context: %v; classified as %v", err, k)
	}
	// A write with a canceled context stores nothing.
	if err := bk.Write(cctx, "canceled", []byte("v")); err == nil {
		t.Errorf("Write with a canceled context returned nil")
	}
	if ok, err := bk.Exists(ctx, "canceled"); err != nil || ok {
		t.Errorf("Exists after a canceled Write = %v, %v; want false, nil", ok, err)
	}
}

func testLargeObject(t *testing.T, b Backend) {
	bk, ctx := open(t, b)
	size := b.LargeSize
	if size == 0 {
		size = DefaultLargeSize
	}
	const seed = 9
	key := "single-tenant/" + blockA + "/data.parquet"
	w, err := bk.NewWriter(ctx, key)
	if err != nil {
		t.Fatalf("NewWriter: %v", err)
	}
	// Odd-sized chunks, as a block writer flushing row groups would give.
	hw := sha256.New()
	buf := make([]byte, 1<<20+7)
	for off := int64(0); off < size; {
		n := min(int64(len(buf)), size-off)
		Fill(seed, off, buf[:n])
		hw.Write(buf[:n])
		if _, err := w.Write(buf[:n]); err != nil {
			w.Abort()
			t.Fatalf("Write at %d: %v", off, err)
		}
		off += n
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	defer func() { _ = bk.Delete(ctx, key) }() // in-memory peers keep it otherwise
	if w.Written() != size {
		t.Errorf("Written() = %d, want %d", w.Written(), size)
	}
	a, err := bk.Attributes(ctx, key)
	if err != nil {
		t.Fatalf("Attributes: %v", err)
	}
	if a.Size != size {
		t.Errorf("Attributes.Size = %d, want %d", a.Size, size)
	}
	r, err := bk.NewReader(ctx, key)
	if err != nil {
		t.Fatalf("NewReader: %v", err)
	}
	hr := sha256.New()
	n, err := io.CopyBuffer(hr, r, make([]byte, 1<<20))
	_ = r.Close()
	if err != nil {
		t.Fatalf("reading back: %v", err)
	}
	if n != size {
		t.Errorf("read back %d bytes, want %d", n, size)
	}
	if !bytes.Equal(hr.Sum(nil), hw.Sum(nil)) {
		t.Errorf("read back sha256 %x, wrote %x", hr.Sum(nil), hw.Sum(nil))
	}
	// Ranges across the part and chunk boundaries.
	for _, off := range []int64{8<<20 - 5, 16<<20 - 3, 32<<20 - 1, 64<<20 - 2, size - 100} {
		got, err := bk.ReadRange(ctx, key, off, 200)
		if err != nil {
			t.Fatalf("ReadRange(%d, 200): %v", off, err)
		}
		checkEqual(t, fmt.Sprintf("ReadRange(%d, 200)", off), got, Data(seed, off, min(200, size-off)))
	}
}
