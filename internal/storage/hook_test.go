package storage_test

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/tracectl/tracectl/internal/storage"
)

func TestHookAndRequestCount(t *testing.T) {
	ctx := context.Background()
	b, err := storage.Open(ctx, "mem://")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Write(ctx, "t/x", []byte("hello world")); err != nil {
		t.Fatal(err)
	}
	start := b.Requests()
	var ops []string
	var calls atomic.Int64
	b.SetHook(func(ctx context.Context, op, key string) error {
		calls.Add(1)
		ops = append(ops, op+" "+key)
		if key == "t/broken" {
			return errors.New("injected")
		}
		return nil
	})
	if _, err := b.Read(ctx, "t/x"); err != nil {
		t.Fatal(err)
	}
	r, err := b.OpenReaderAt(ctx, "t/x", 11)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := r.ReadAt(buf, 6); err != nil || string(buf) != "world" {
		t.Fatalf("ReadAt: %q %v", buf, err)
	}
	for range b.List(ctx, "t/", "") {
	}
	if got := b.Requests() - start; got != 3 || calls.Load() != 3 {
		t.Errorf("requests %d, hook calls %d; want 3 (read, ranged read, list; opening a ReaderAt sends nothing)", got, calls.Load())
	}
	if strings.Join(ops, ",") != "read t/x,read t/x,list t/" {
		t.Errorf("hook saw %v", ops)
	}
	_, err = b.Read(ctx, "t/broken")
	if !errors.Is(err, storage.ErrUnavailable) || !strings.Contains(err.Error(), "injected") {
		t.Errorf("hook error = %v, want an unavailable error carrying the injected one", err)
	}
	b.SetHook(nil)
	if _, err := b.Read(ctx, "t/x"); err != nil {
		t.Errorf("after removing the hook: %v", err)
	}
}

// TestBrokenConnectionIsUnavailable: a peer that goes away mid-request
// (broken pipe, connection reset) is "unavailable", i.e. retryable.
func TestBrokenConnectionIsUnavailable(t *testing.T) {
	ctx := context.Background()
	b, err := storage.Open(ctx, "mem://")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, injected := range []error{
		&net.OpError{Op: "write", Net: "tcp", Err: os.NewSyscallError("write", syscall.EPIPE)},
		&net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)},
		errors.New("write tcp 127.0.0.1:1->127.0.0.1:2: write: broken pipe"),
		&net.OpError{Op: "write", Net: "tcp", Err: net.ErrClosed},
	} {
		b.SetHook(func(context.Context, string, string) error { return injected })
		if err := b.Write(ctx, "k", []byte("v")); !errors.Is(err, storage.ErrUnavailable) {
			t.Errorf("%v: got %v, want unavailable", injected, err)
		}
	}
}
