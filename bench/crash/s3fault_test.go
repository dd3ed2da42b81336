package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tracectl/tracectl/internal/storage"
)

// TestFaultSwitch checks that each state of the fault switch does what it
// says, with requests of the project's S3 client (the AWS SDK through
// package storage) and plain HTTP requests, against gofakes3.
func TestFaultSwitch(t *testing.T) {
	for k, v := range awsEnv(t.TempDir()) {
		t.Setenv(k, v)
	}
	p, err := startS3Peer("faults", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	ctx := context.Background()
	b, err := storage.Open(ctx, p.URL())
	if err != nil {
		t.Fatalf("open through the switch: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	direct, err := storage.Open(ctx, p.DirectURL())
	if err != nil {
		t.Fatalf("open past the switch: %v", err)
	}
	t.Cleanup(func() { direct.Close() })
	if err := b.Write(ctx, "up/key", []byte("hello")); err != nil {
		t.Fatalf("up: write: %v", err)
	}
	if got, err := b.Read(ctx, "up/key"); err != nil || string(got) != "hello" {
		t.Fatalf("up: read %q, %v", got, err)
	}
	objURL := "http://" + p.Addr + "/faults/up/key"
	plain := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	// write tries a PUT through the switch, bounded (the SDK retries).
	write := func(key string, data []byte) error {
		wctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		return b.Write(wctx, key, data)
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB

	t.Run(outage503, func(t *testing.T) {
		p.Switch.Set(outage503)
		defer p.Switch.Set(stateUp)
		codes := map[string]bool{}
		for range 2 {
			resp, err := plain.Get(objURL)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "<Error><Code>") {
				t.Fatalf("GET: %d %s, want 503 with an S3 error", resp.StatusCode, body)
			}
			codes[string(body[strings.Index(string(body), "<Code>")+6:strings.Index(string(body), "</Code>")])] = true
		}
		if !codes["SlowDown"] || !codes["ServiceUnavailable"] {
			t.Errorf("error codes %v, want SlowDown and ServiceUnavailable in turn", codes)
		}
		if err := write("down503/key", []byte("x")); err == nil {
			t.Error("PUT through the SDK succeeded during the outage")
		}
		if ok, _ := direct.Exists(ctx, "down503/key"); ok {
			t.Error("PUT stored during a 503 outage")
		}
	})

	t.Run(outageHang, func(t *testing.T) {
		p.Switch.Set(outageHang)
		defer p.Switch.Set(stateUp)
		// A client that gives up gets no answer; its request is let go.
		rctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		t0 := time.Now()
		_, err := b.Read(rctx, "up/key")
		cancel()
		if err == nil || time.Since(t0) < 300*time.Millisecond {
			t.Fatalf("read during the hang: %v after %v, want an error at the client's deadline", err, time.Since(t0))
		}
		waitFor(t, "the abandoned request let go", func() bool { return p.Switch.held.Load() == 0 })
		// A held request goes on to the store when storage comes back.
		done := make(chan error, 1)
		go func() {
			got, err := b.Read(ctx, "up/key")
			if err == nil && string(got) != "hello" {
				err = io.ErrUnexpectedEOF
			}
			done <- err
		}()
		waitFor(t, "a request held", func() bool { return p.Switch.held.Load() == 1 })
		select {
		case err := <-done:
			t.Fatalf("held read returned during the hang: %v", err)
		case <-time.After(200 * time.Millisecond):
		}
		p.Switch.Set(stateUp)
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("held read after storage came back: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("held read not answered 5s after storage came back")
		}
		// Past maxHang (1s here) a held request is answered 503.
		p.Switch.Set(outageHang)
		t0 = time.Now()
		resp, err := plain.Get(objURL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || time.Since(t0) < time.Second {
			t.Fatalf("GET held past maxHang: %d after %v, want 503 after 1s", resp.StatusCode, time.Since(t0))
		}
	})

	t.Run(outageReset, func(t *testing.T) {
		p.Switch.Set(outageReset)
		defer p.Switch.Set(stateUp)
		resp, err := plain.Get(objURL)
		if err == nil {
			resp.Body.Close()
			t.Fatalf("GET answered %d, want the connection reset", resp.StatusCode)
		}
		if s := err.Error(); !strings.Contains(s, "reset") && !strings.Contains(s, "EOF") {
			t.Errorf("GET error %v, want a reset connection", err)
		}
		if err := write("reset/key", big); err == nil {
			t.Error("PUT succeeded during the outage")
		}
		if ok, _ := direct.Exists(ctx, "reset/key"); ok {
			t.Error("PUT stored during a reset outage")
		}
	})

	t.Run(outageTorn, func(t *testing.T) {
		p.Switch.Set(outageTorn)
		defer p.Switch.Set(stateUp)
		if got, err := b.Read(ctx, "up/key"); err != nil || string(got) != "hello" {
			t.Fatalf("read during torn writes: %q, %v (reads pass)", got, err)
		}
		before := p.Switch.faulted.Load()
		if err := write("torn/key", big); err == nil {
			t.Fatal("torn PUT succeeded")
		}
		if p.Switch.faulted.Load() == before {
			t.Error("the switch did not count the torn PUT")
		}
		if ok, _ := direct.Exists(ctx, "torn/key"); ok {
			t.Error("a torn PUT stored an object")
		}
	})

	t.Run(outageLostReply, func(t *testing.T) {
		p.Switch.Set(outageLostReply)
		defer p.Switch.Set(stateUp)
		if got, err := b.Read(ctx, "up/key"); err != nil || string(got) != "hello" {
			t.Fatalf("read during lost replies: %q, %v (reads pass)", got, err)
		}
		if err := write("lost/key", big); err == nil {
			t.Fatal("PUT with its answer lost succeeded")
		}
		if got, err := direct.Read(ctx, "lost/key"); err != nil || !bytes.Equal(got, big) {
			t.Errorf("PUT with its answer lost: stored %d bytes, %v; want all %d", len(got), err, len(big))
		}
	})

	// Up again: everything passes.
	if err := b.Write(ctx, "up/again", big); err != nil {
		t.Fatalf("up again: write: %v", err)
	}
	if got, err := b.Read(ctx, "up/again"); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("up again: read %d bytes, %v", len(got), err)
	}

	// The harness's bucket counts and its -control deletion.
	for _, k := range []string{"single-tenant/a/meta.json", "single-tenant/a/data.parquet", "single-tenant/b/data.parquet",
		"single-tenant/c/meta.compacted.json", "single-tenant/c/data.parquet", "single-tenant/index.json.gz"} {
		if err := direct.Write(ctx, k, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if c, i, err := countBucketBlocks(ctx, direct); err != nil || c != 1 || i != 1 {
		t.Errorf("countBucketBlocks: %d complete, %d incomplete, %v; want 1, 1", c, i, err)
	}
	if key, err := controlDeleteMeta(ctx, direct); err != nil || key != "single-tenant/a/meta.json" {
		t.Errorf("controlDeleteMeta: %q, %v", key, err)
	}
	if c, i, err := countBucketBlocks(ctx, direct); err != nil || c != 0 || i != 2 {
		t.Errorf("countBucketBlocks after controlDeleteMeta: %d complete, %d incomplete, %v; want 0, 2", c, i, err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}
