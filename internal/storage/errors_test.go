package storage_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tracectl/tracectl/internal/storage"
	"github.com/tracectl/tracectl/internal/storage/storagetest"
)

func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// wantKind checks errors.Is against the sentinel and that the message holds
// every one of parts.
func wantKind(t *testing.T, what string, err error, sentinel error, parts ...string) {
	t.Helper()
	if !errors.Is(err, sentinel) {
		t.Errorf("%s: %v; want %v", what, err, sentinel)
		return
	}
	t.Logf("%s: %v", what, err)
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("%s: message %q does not contain %q", what, err, p)
		}
	}
}

// allOps runs every Bucket operation on key and checks that each fails
// with sentinel and a message holding parts. It is how the permission tests
// make sure no path (streamed or one-shot writes included) escapes the
// classification or panics.
func allOps(t *testing.T, ctx context.Context, b *storage.Bucket, key string, sentinel error, parts ...string) {
	t.Helper()
	_, err := b.Read(ctx, key)
	wantKind(t, "Read", err, sentinel, parts...)
	_, err = b.ReadRange(ctx, key, 0, 10)
	wantKind(t, "ReadRange", err, sentinel, parts...)
	_, err = b.NewReader(ctx, key)
	wantKind(t, "NewReader", err, sentinel, parts...)
	_, err = b.Attributes(ctx, key)
	wantKind(t, "Attributes", err, sentinel, parts...)
	_, err = b.Exists(ctx, key)
	wantKind(t, "Exists", err, sentinel, parts...)
	err = b.Write(ctx, key, []byte("data"))
	wantKind(t, "Write", err, sentinel, parts...)
	err = b.CreateIfNotExists(ctx, key, []byte("lease"))
	wantKind(t, "CreateIfNotExists", err, sentinel, parts...)
	w, err := b.NewWriter(ctx, key)
	if err == nil {
		_, err = io.Copy(w, storagetest.Reader(1, 100_000))
		if cerr := w.Close(); err == nil {
			err = cerr
		}
	}
	wantKind(t, "streamed write", err, sentinel, parts...)
	err = b.Delete(ctx, key)
	wantKind(t, "Delete", err, sentinel, parts...)
	_, err = b.ListAll(ctx, key, "/")
	wantKind(t, "ListAll", err, sentinel, parts...)
}

// A real S3 answers 403 AccessDenied (XML body; none for HEAD) to
// credentials without access. gocloud reports it as code Unknown.
func TestS3PermissionDenied(t *testing.T) {
	s3 := storagetest.StartS3(t)
	url := s3.Bucket(t, "locked")
	ctx := testCtx(t, time.Minute)

	s3.Deny(func(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, "/locked") })
	_, err := storage.Open(ctx, url)
	wantKind(t, "Open", err, storage.ErrPermission, "AWS_ACCESS_KEY_ID", `"locked"`)

	s3.Deny(nil)
	b := mustOpen(t, url)
	defer b.Close()
	s3.Deny(func(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, "/locked") })
	allOps(t, ctx, b, "tenant/block/meta.json", storage.ErrPermission, "AWS_ACCESS_KEY_ID", "tenant/block/meta.json")
}

// gocloud's gcsblob reports a 403 as NotFound ("or it may not exist"),
// which would read as a deleted block.
func TestGCSPermissionDenied(t *testing.T) {
	gcs := storagetest.StartGCS(t)
	url := gcs.Bucket(t, "locked")
	ctx := testCtx(t, time.Minute)
	b := mustOpen(t, url)
	defer b.Close()
	gcs.Deny(func(r *http.Request) bool { return strings.Contains(r.URL.Path, "locked") })
	allOps(t, ctx, b, "tenant/block/meta.json", storage.ErrPermission, "GOOGLE_APPLICATION_CREDENTIALS")
	_, err := storage.Open(ctx, url)
	wantKind(t, "Open", err, storage.ErrPermission, "GOOGLE_APPLICATION_CREDENTIALS", `"locked"`)
}

func TestAzurePermissionDenied(t *testing.T) {
	az := storagetest.StartAzure(t)
	url := az.Bucket(t, newName())
	ctx := testCtx(t, time.Minute)

	t.Run("wrong key", func(t *testing.T) {
		// A well-formed key that is not the account's: Azurite checks the
		// shared-key signature and answers 403 AuthenticationFailed.
		t.Setenv("AZURE_STORAGE_KEY", "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktd3Jvbmcta2V5LXdyb25nLWtleQ==")
		_, err := storage.Open(ctx, url)
		wantKind(t, "Open with a wrong key", err, storage.ErrPermission, "AZURE_STORAGE_KEY")
	})
	t.Run("key not base64", func(t *testing.T) {
		t.Setenv("AZURE_STORAGE_KEY", "not base64!")
		_, err := storage.Open(ctx, url)
		wantKind(t, "Open with a malformed key", err, storage.ErrInvalid, "AZURE_STORAGE_KEY")
	})
	t.Run("refused requests", func(t *testing.T) {
		// Every operation, streamed writes included: gocloud's Azure writer
		// used to panic on any failed upload.
		b := mustOpen(t, url)
		defer b.Close()
		az.Deny(func(r *http.Request) bool { return true })
		defer az.Deny(nil)
		allOps(t, ctx, b, "tenant/block/meta.json", storage.ErrPermission, "AZURE_STORAGE_KEY")
	})
}

// The account given in the URL rather than the environment used to send
// Azure AD tokens over http, which fails, and gocloud's writer then
// panicked.
func TestAzureAccountInURL(t *testing.T) {
	az := storagetest.StartAzure(t)
	name := newName()
	url := az.Bucket(t, name) + "&storage_account=" + storagetest.AzuriteAccount
	ctx := testCtx(t, time.Minute)
	t.Setenv("AZURE_STORAGE_ACCOUNT", "")

	t.Run("with key", func(t *testing.T) {
		b := mustOpen(t, url)
		defer b.Close()
		if err := b.Write(ctx, "k", []byte("v")); err != nil {
			t.Fatalf("Write: %v", err)
		}
		w, err := b.NewWriter(ctx, "streamed")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(w, storagetest.Reader(2, 50_000)); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatalf("streamed write: %v", err)
		}
		// A failing streamed upload (the path that panicked).
		err = b.CreateIfNotExists(ctx, "k", []byte("again"))
		wantKind(t, "CreateIfNotExists of an existing key", err, storage.ErrExists, "k")
	})
	t.Run("without key", func(t *testing.T) {
		t.Setenv("AZURE_STORAGE_KEY", "")
		_, err := storage.Open(ctx, url)
		wantKind(t, "Open over http without a key", err, storage.ErrInvalid, "AZURE_STORAGE_KEY", "https")
	})
	t.Run("no account at all", func(t *testing.T) {
		_, err := storage.Open(ctx, az.URL(name))
		wantKind(t, "Open without an account", err, storage.ErrInvalid, "AZURE_STORAGE_ACCOUNT", "storage_account")
	})
	t.Run("account as user info", func(t *testing.T) {
		_, err := storage.Open(ctx, strings.Replace(az.URL(name), "azblob://", "azblob://"+storagetest.AzuriteAccount+"@", 1))
		wantKind(t, "Open with user info", err, storage.ErrInvalid, "AZURE_STORAGE_ACCOUNT")
	})
}

// Nothing listens: Open says the storage is unavailable, quickly.
func TestUnavailable(t *testing.T) {
	storagetest.SetAWSEnv(t)
	t.Setenv("AZURE_STORAGE_ACCOUNT", storagetest.AzuriteAccount)
	t.Setenv("AZURE_STORAGE_KEY", storagetest.AzuriteKey)
	addr := storagetest.ClosedAddr(t)
	for _, c := range []struct{ name, url string }{
		{"s3", storagetest.S3URL(addr, "traces")},
		{"gcs", "gs://traces"},
		{"azure", "azblob://traces?protocol=http&domain=" + addr},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("STORAGE_EMULATOR_HOST", addr)
			start := time.Now()
			ctx := testCtx(t, 3*time.Second)
			_, err := storage.Open(ctx, c.url)
			wantKind(t, "Open", err, storage.ErrUnavailable, "reachable")
			if d := time.Since(start); d > 15*time.Second {
				t.Errorf("Open took %v to give up", d)
			}
		})
	}
}

// The endpoint goes away after Open: operations say unavailable.
func TestUnavailableAfterOpen(t *testing.T) {
	t.Run("s3", func(t *testing.T) {
		s3 := storagetest.StartS3(t)
		b := mustOpen(t, s3.Bucket(t, "traces"))
		defer b.Close()
		s3.Stop()
		_, err := b.Read(testCtx(t, 3*time.Second), "k")
		wantKind(t, "Read", err, storage.ErrUnavailable, "reachable")
	})
	t.Run("gcs", func(t *testing.T) {
		gcs := storagetest.StartGCS(t)
		b := mustOpen(t, gcs.Bucket(t, "traces"))
		defer b.Close()
		gcs.Stop()
		err := b.Write(testCtx(t, 3*time.Second), "k", []byte("v"))
		wantKind(t, "Write", err, storage.ErrUnavailable, "reachable")
	})
	t.Run("azure", func(t *testing.T) {
		az := storagetest.StartAzure(t)
		b := mustOpen(t, az.Bucket(t, newName()))
		defer b.Close()
		az.Stop()
		_, err := b.ListAll(testCtx(t, 3*time.Second), "", "/")
		wantKind(t, "ListAll", err, storage.ErrUnavailable, "reachable")
	})
}

func TestOpenErrors(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	t.Run("unknown scheme", func(t *testing.T) {
		_, err := storage.Open(ctx, "ftp://example/traces")
		wantKind(t, "Open", err, storage.ErrInvalid, `"ftp"`, "file://, mem://, s3://, gs://, azblob://")
	})
	t.Run("garbage", func(t *testing.T) {
		for _, u := range []string{"s3://bucket%zz", "://nothing", "s3://[::1", "azblob://c?protocol=gopher&domain=127.0.0.1:1"} {
			_, err := storage.Open(ctx, u)
			wantKind(t, "Open("+u+")", err, storage.ErrInvalid)
		}
	})
	t.Run("no bucket name", func(t *testing.T) {
		storagetest.SetAWSEnv(t)
		for _, u := range []string{"s3://?region=us-east-1", "gs://", "azblob://"} {
			_, err := storage.Open(ctx, u)
			wantKind(t, "Open("+u+")", err, storage.ErrInvalid, "BUCKET")
		}
	})
	t.Run("path in bucket URL", func(t *testing.T) {
		storagetest.SetAWSEnv(t)
		_, err := storage.Open(ctx, "s3://bucket/some/prefix")
		wantKind(t, "Open", err, storage.ErrInvalid, "/some/prefix")
	})
	t.Run("credentials in URL", func(t *testing.T) {
		storagetest.SetAWSEnv(t)
		_, err := storage.Open(ctx, "s3://AKIAEXAMPLE:supersecret@bucket")
		wantKind(t, "Open", err, storage.ErrInvalid, "AWS_ACCESS_KEY_ID")
		if err != nil && strings.Contains(err.Error(), "supersecret") {
			t.Errorf("the error shows the secret: %v", err)
		}
	})
	t.Run("emulator host with scheme", func(t *testing.T) {
		t.Setenv("STORAGE_EMULATOR_HOST", "http://127.0.0.1:1")
		_, err := storage.Open(ctx, "gs://traces")
		wantKind(t, "Open", err, storage.ErrInvalid, "STORAGE_EMULATOR_HOST", "without")
	})
	t.Run("missing bucket", func(t *testing.T) {
		t.Run("s3", func(t *testing.T) {
			s3 := storagetest.StartS3(t)
			_, err := storage.Open(ctx, s3.URL("no-such-bucket"))
			wantKind(t, "Open", err, storage.ErrNotFound, `bucket "no-such-bucket" does not exist`, "create it", "aws s3 mb")
		})
		t.Run("gcs", func(t *testing.T) {
			gcs := storagetest.StartGCS(t)
			_, err := storage.Open(ctx, gcs.URL("no-such-bucket"))
			wantKind(t, "Open", err, storage.ErrNotFound, `bucket "no-such-bucket" does not exist`, "create it")
		})
		t.Run("azure", func(t *testing.T) {
			az := storagetest.StartAzure(t)
			_, err := storage.Open(ctx, az.URL("no-such-container"))
			wantKind(t, "Open", err, storage.ErrNotFound, `"no-such-container" does not exist`, "create it")
		})
	})
	t.Run("bucket deleted after open", func(t *testing.T) {
		s3 := storagetest.StartS3(t)
		b := mustOpen(t, s3.Bucket(t, "short-lived"))
		defer b.Close()
		if err := s3.Backend.DeleteBucket("short-lived"); err != nil {
			t.Fatal(err)
		}
		_, err := b.Read(ctx, "k")
		wantKind(t, "Read", err, storage.ErrNotFound, `bucket "short-lived" does not exist`)
		// Attributes and Exists cannot tell: S3 answers HEAD with a bare
		// 404 for a missing bucket and a missing key alike.
		_, err = b.Attributes(ctx, "k")
		wantKind(t, "Attributes", err, storage.ErrNotFound, "k")
	})
}

func TestOpenLocal(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	dir := t.TempDir()
	// A plain path is a file:// bucket.
	b, err := storage.Open(ctx, filepath.Join(dir, "plain"))
	if err != nil {
		t.Fatal(err)
	}
	if b.Scheme() != "file" {
		t.Errorf("Scheme() = %q, want file", b.Scheme())
	}
	if err := b.Write(ctx, "a/b", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "plain", "a", "b")); err != nil {
		t.Errorf("the object is not at dir/a/b: %v", err)
	}
	// No sidecar attribute files.
	if _, err := os.Stat(filepath.Join(dir, "plain", "a", "b.attrs")); err == nil {
		t.Errorf("fileblob wrote a .attrs sidecar")
	}
	b.Close()
	if got := storage.LocalPath(filepath.Join(dir, "plain")); got != filepath.Join(dir, "plain") {
		t.Errorf("LocalPath = %q", got)
	}
	if got := storage.LocalPath("s3://bucket"); got != "" {
		t.Errorf("LocalPath(s3://bucket) = %q, want empty", got)
	}

	// gocloud's ?prefix= still works through tracectl's URL mux.
	b, err = storage.Open(ctx, "file://"+dir+"?prefix=tenant/")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Write(ctx, "k", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "tenant", "k")); err != nil {
		t.Errorf("?prefix=tenant/ did not apply: %v", err)
	}
	// So does the hard-link CreateIfNotExists of file://.
	if err := b.CreateIfNotExists(ctx, "lease", []byte("a")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "tenant", "lease")); err != nil {
		t.Errorf("CreateIfNotExists ignored ?prefix=: %v", err)
	}
	err = b.CreateIfNotExists(ctx, "lease", []byte("b"))
	wantKind(t, "CreateIfNotExists again", err, storage.ErrExists, "lease")
	// Keys fileblob escapes take gocloud's path and still work.
	if err := b.CreateIfNotExists(ctx, "odd//key__0x41__", []byte("c")); err != nil {
		t.Fatal(err)
	}
	err = b.CreateIfNotExists(ctx, "odd//key__0x41__", []byte("d"))
	wantKind(t, "CreateIfNotExists of an escaped key again", err, storage.ErrExists)
	if got, err := b.Read(ctx, "odd//key__0x41__"); err != nil || string(got) != "c" {
		t.Errorf("Read of the escaped key = %q, %v", got, err)
	}
}

func TestRedact(t *testing.T) {
	for _, c := range []struct {
		in      string
		hidden  []string
		visible []string
	}{
		{"s3://b?endpoint=http://127.0.0.1:9000&secret_access_key=abc123&region=us-east-1",
			[]string{"abc123"}, []string{"endpoint=", "region=us-east-1", "s3://b"}},
		{"s3://AKIAEXAMPLE:supersecret@bucket", []string{"supersecret"}, []string{"AKIAEXAMPLE", "bucket"}},
		{"azblob://c?sv=2022-11-02&sig=c2lnbmF0dXJl&se=2030", []string{"c2lnbmF0dXJl"}, []string{"sv=2022-11-02", "se=2030"}},
		{"gs://b?access_token=ya29.tok", []string{"ya29.tok"}, []string{"gs://b"}},
		{"azblob://c?AccountKey=Zm9vYmFy", []string{"Zm9vYmFy"}, []string{"azblob://c"}},
		{"s3://b?X-Amz-Credential=AKIA%2F20300101&X-Amz-Signature=deadbeef", []string{"deadbeef", "AKIA"}, nil},
		{"file:///var/lib/tracectl?create_dir=true", nil, []string{"file:///var/lib/tracectl?create_dir=true"}},
	} {
		got := storage.Redact(c.in)
		for _, h := range c.hidden {
			if strings.Contains(got, h) {
				t.Errorf("Redact(%q) = %q shows %q", c.in, got, h)
			}
		}
		for _, v := range c.visible {
			if !strings.Contains(got, v) {
				t.Errorf("Redact(%q) = %q lost %q", c.in, got, v)
			}
		}
	}
	if got := storage.Redact("s3://[::1"); strings.Contains(got, "::1") && got != "<unparseable URL>" {
		t.Errorf("Redact of an unparseable URL = %q", got)
	}
	// Open's messages go through Redact.
	_, err := storage.Open(context.Background(), "ftp://user:supersecret@host/x?token=tok123")
	if err == nil || strings.Contains(err.Error(), "supersecret") || strings.Contains(err.Error(), "tok123") {
		t.Errorf("Open error shows a secret: %v", err)
	}
}
