package faulty_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tracectl/tracectl/internal/storage"
	"github.com/tracectl/tracectl/internal/storage/faulty"
	"github.com/tracectl/tracectl/internal/storage/storagetest"
)

func backends(t *testing.T) map[string]*storage.Bucket {
	return map[string]*storage.Bucket{
		"mem":  storagetest.OpenMem(t),
		"file": storagetest.OpenDir(t, t.TempDir()),
	}
}

// TestRulesPerOperationAndKey: a rule fails only its operations on
// matching keys, with the kind asked for, and storage comes back when it
// is removed.
func TestRulesPerOperationAndKey(t *testing.T) {
	ctx := context.Background()
	for name, b := range backends(t) {
		t.Run(name, func(t *testing.T) {
			if err := b.Write(ctx, "a/1/data.parquet", []byte("data")); err != nil {
				t.Fatal(err)
			}
			in := faulty.Install(b)
			r := in.Add(&faulty.Rule{Ops: []string{faulty.Read}, Keys: "*/data.parquet", Kind: storage.KindPermission})
			if _, err := b.Read(ctx, "a/1/data.parquet"); !errors.Is(err, storage.ErrPermission) || !strings.Contains(err.Error(), "injected") {
				t.Fatalf("read of a matching key: %v, want an injected permission error", err)
			}
			if err := b.Write(ctx, "a/1/meta.json", []byte("{}")); err != nil {
				t.Fatalf("write (not a faulted operation): %v", err)
			}
			if _, err := b.Read(ctx, "a/1/meta.json"); err != nil {
				t.Fatalf("read of another key: %v", err)
			}
			ra, err := b.OpenReaderAt(ctx, "a/1/data.parquet", 4)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ra.ReadAt(make([]byte, 2), 0); !errors.Is(err, storage.ErrPermission) {
				t.Fatalf("ReadAt: %v, want the injected error", err)
			}
			if r.Fired() != 2 || in.Injected(faulty.Read) != 2 || in.Injected(faulty.Write) != 0 {
				t.Errorf("fired %d, injected reads %d writes %d; want 2, 2, 0", r.Fired(), in.Injected(faulty.Read), in.Injected(faulty.Write))
			}

			// Storage goes down entirely, then comes back.
			down := in.Down()
			if _, err := b.ListAll(ctx, "a/", ""); !errors.Is(err, storage.ErrUnavailable) {
				t.Errorf("list during the outage: %v", err)
			}
			if err := b.Delete(ctx, "a/1/meta.json"); !errors.Is(err, storage.ErrUnavailable) {
				t.Errorf("delete during the outage: %v", err)
			}
			if err := b.CreateIfNotExists(ctx, "a/lease", []byte("x")); !errors.Is(err, storage.ErrUnavailable) {
				t.Errorf("create during the outage: %v", err)
			}
			if _, err := b.Attributes(ctx, "a/1/meta.json"); !errors.Is(err, storage.ErrUnavailable) {
				t.Errorf("stat during the outage: %v", err)
			}
			in.Remove(down)
			in.Remove(r)
			if got, err := b.Read(ctx, "a/1/data.parquet"); err != nil || string(got) != "data" {
				t.Fatalf("after the outage: %q %v", got, err)
			}
			if ok, err := b.Exists(ctx, "a/lease"); ok || err != nil {
				t.Errorf("a create refused during the outage stored the object: %v %v", ok, err)
			}
		})
	}
}

// TestSkipAndTimes: the first Skip matches pass, then Times faults, then
// the rule is spent.
func TestSkipAndTimes(t *testing.T) {
	ctx := context.Background()
	b := storagetest.OpenMem(t)
	in := faulty.Install(b)
	in.Add(&faulty.Rule{Ops: []string{faulty.Write}, Skip: 1, Times: 2})
	var got []bool
	for range 5 {
		got = append(got, b.Write(ctx, "k", []byte("v")) == nil)
	}
	if want := []bool{true, false, false, true, true}; !equal(got, want) {
		t.Errorf("writes succeeded %v, want %v", got, want)
	}
}

func equal(a, b []bool) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestLatencyAndHang: latency delays an operation, a hang holds it until
// its context's deadline and fails it with it; removing the rule releases
// what it holds.
func TestLatencyAndHang(t *testing.T) {
	b := storagetest.OpenMem(t)
	if err := b.Write(context.Background(), "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	in := faulty.Install(b)
	slow := in.Add(&faulty.Rule{Ops: []string{faulty.Read}, Latency: 50 * time.Millisecond, Pass: true})
	start := time.Now()
	if _, err := b.Read(context.Background(), "k"); err != nil {
		t.Fatalf("slow read: %v", err)
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Errorf("read took %v, want at least the 50ms of latency", d)
	}
	in.Remove(slow)

	hang := in.Add(&faulty.Rule{Ops: []string{faulty.Read}, Hang: true})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	_, err := b.Read(ctx, "k")
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, storage.ErrUnavailable) {
		t.Fatalf("hung read: %v, want the context's deadline (unavailable)", err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := b.Read(context.Background(), "k")
		done <- err
	}()
	time.Sleep(10 * time.Millisecond)
	in.Remove(hang)
	select {
	case err := <-done:
		if err == nil {
			t.Error("a read held by a hang succeeded when released; want it failed")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("removing the rule did not release the held read")
	}
}

// TestTornWrites: a torn write stores a prefix of the object under its
// key and fails, for one-shot and streamed writes, on every backend; with
// Keep past the end the object is stored whole and the write still fails.
func TestTornWrites(t *testing.T) {
	ctx := context.Background()
	data := bytes.Repeat([]byte("0123456789"), 10_000) // 100 kB
	for name, b := range backends(t) {
		t.Run(name, func(t *testing.T) {
			in := faulty.Install(b)
			r := in.Add(&faulty.Rule{Ops: []string{faulty.Write}, Keys: "torn/*", Torn: true, Keep: 1234})

			err := b.Write(ctx, "torn/one-shot", data)
			if !errors.Is(err, storage.ErrUnavailable) || !strings.Contains(err.Error(), "torn write") {
				t.Fatalf("torn Write: %v, want an unavailable torn-write error", err)
			}
			checkStored(t, b, "torn/one-shot", data[:1234])

			w, err := b.NewWriter(ctx, "torn/streamed")
			if err != nil {
				t.Fatalf("NewWriter: %v", err)
			}
			var werr error
			for i := 0; i < len(data) && werr == nil; i += 4096 {
				_, werr = w.Write(data[i:min(i+4096, len(data))])
			}
			cerr := w.Close()
			if werr == nil || cerr == nil || !errors.Is(cerr, storage.ErrUnavailable) {
				t.Fatalf("torn stream: write err %v, close err %v; want both failed", werr, cerr)
			}
			checkStored(t, b, "torn/streamed", data[:1234])

			// Past the end: stored whole, reported failed.
			in.Remove(r)
			in.Add(&faulty.Rule{Ops: []string{faulty.Write}, Keys: "torn/*", Torn: true, Keep: 1 << 30})
			w, err = b.NewWriter(ctx, "torn/landed")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.Write(data); err != nil {
				t.Fatalf("write below Keep: %v", err)
			}
			if err := w.Close(); err == nil {
				t.Fatal("Close of a torn write succeeded")
			}
			checkStored(t, b, "torn/landed", data)

			// Other keys are untouched.
			if err := b.Write(ctx, "whole", data); err != nil {
				t.Fatal(err)
			}
			checkStored(t, b, "whole", data)
		})
	}
}

func checkStored(t *testing.T, b *storage.Bucket, key string, want []byte) {
	t.Helper()
	got, err := b.Read(context.Background(), key)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s holds %d bytes, want %d", key, len(got), len(want))
	}
}
