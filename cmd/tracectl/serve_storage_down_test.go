package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/tracectl/tracectl/internal/blocks"
	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/iostreams"
	"github.com/tracectl/tracectl/internal/storage"
	"github.com/tracectl/tracectl/internal/storage/storagetest"
)

// outageProxy stands between serve and an S3 peer: up, it passes every
// request on; down, it answers 503 SlowDown (mode "503") or holds the
// request until storage is back or the client gives up (mode "hang"), or
// answers 2 s late (mode "slow").
type outageProxy struct {
	addr string
	mode atomic.Value // "", "503", "hang"
	back chan struct{}
}

func startOutageProxy(t *testing.T, target string) *outageProxy {
	t.Helper()
	u, _ := url.Parse("http://" + target)
	rp := httputil.NewSingleHostReverseProxy(u)
	p := &outageProxy{back: make(chan struct{})}
	p.mode.Store("")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch p.mode.Load() {
		case "503":
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>`))
			return
		case "slow":
			time.Sleep(2 * time.Second)
		case "hang":
			select {
			case <-p.back:
			case <-r.Context().Done():
				return
			}
		}
		rp.ServeHTTP(w, r)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return p
}

func (p *outageProxy) up() {
	p.mode.Store("")
	close(p.back)
}

// TestServeStartsWhileStorageIsDown: a serve (re)started during a storage
// outage, answered with 503s or not at all, starts, acknowledges spans
// into its write-ahead log and stores them once storage is back. A
// missing bucket still stops it at once, naming the bucket.
func TestServeStartsWhileStorageIsDown(t *testing.T) {
	if testing.Short() {
		t.Skip("starts tracectl processes")
	}
	s3 := storagetest.StartS3(t)
	s3.Bucket(t, "traces")
	for _, mode := range []string{"503", "hang"} {
		t.Run(mode, func(t *testing.T) {
			p := startOutageProxy(t, s3.Addr)
			p.mode.Store(mode)
			bucket := storagetest.S3URL(p.addr, "traces")
			dir := t.TempDir()
			start := time.Now()
			c := startTracectl(t, serveArgs(bucket, filepath.Join(dir, "wal"), "--max-block-duration", "200ms")...)
			defer c.cmd.Process.Kill()
			// Either the check gave up within the wait (the S3 client's
			// retries of 503s can end in under a second) or serve stopped
			// waiting for it; both say so.
			if l := c.log(); !strings.Contains(l, "storage has not answered yet") && !strings.Contains(l, "storage does not answer") {
				t.Errorf("no warning that storage does not answer:\n%s", l)
			}
			t.Logf("ready %s after start with storage down (%s)", time.Since(start).Round(time.Millisecond), mode)
			td, id := makeTrace(uint64(len(mode)), 3)
			pb, _ := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
			resp, err := http.Post("http://"+c.addrs["otlp_http"]+"/v1/traces", "application/x-protobuf", bytes.NewReader(pb))
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("OTLP/HTTP post while storage is down: %v %v", err, resp)
			}
			resp.Body.Close()
			time.Sleep(time.Second) // a cut or two fail meanwhile
			p.up()
			b, err := storage.Open(context.Background(), bucket)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			deadline := time.Now().Add(60 * time.Second)
			for {
				ids, _ := blocks.BlockIDs(context.Background(), b, block.DefaultTenant)
				if len(ids) > 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("nothing stored 60s after storage came back:\n%s", c.log())
				}
				time.Sleep(100 * time.Millisecond)
			}
			if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if err := c.wait(t, 30*time.Second); err != nil {
				t.Fatalf("SIGTERM: exit %v\n%s", err, c.log())
			}
			if res := runCLI(t, false, "get", id.Hex(), "--storage", bucket, "-o", "json"); res.code != 0 || strings.Count(res.stdout, `"spanId"`) != 3 {
				t.Errorf("trace acknowledged during the outage: exit %d, %d spans; %s", res.code, strings.Count(res.stdout, `"spanId"`), res.stderr)
			}
			// Leave the bucket empty for the next mode.
			objs, _ := b.ListAll(context.Background(), "", "")
			for _, o := range objs {
				_ = b.Delete(context.Background(), o.Key)
			}
		})
	}
	t.Run("missing bucket", func(t *testing.T) {
		res := runCLI(t, false, serveArgs(s3.URL("no-such-bucket"), filepath.Join(t.TempDir(), "wal"))...)
		if res.code == 0 || !strings.Contains(res.stderr, "no-such-bucket") {
			t.Errorf("serve on a missing bucket: exit %d, %s; want a failure naming the bucket", res.code, res.stderr)
		}
	})
	t.Run("stopped during the wait", func(t *testing.T) {
		// Ctrl-C or SIGTERM while serve still waits for the check is a
		// clean stop (exit 0), not the context's error.
		p := startOutageProxy(t, s3.Addr)
		p.mode.Store("hang")
		defer func(d time.Duration) { serveStorageCheckWait = d }(serveStorageCheckWait)
		serveStorageCheckWait = time.Minute
		isolateEnv(t)
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		io, _, _, errOut := iostreams.Test(false)
		start := time.Now()
		code := run(ctx, serveArgs(storagetest.S3URL(p.addr, "traces"), filepath.Join(t.TempDir(), "wal")), io)
		if code != 0 || !strings.Contains(errOut.String(), "stopped before start-up finished") || time.Since(start) > 30*time.Second {
			t.Errorf("serve stopped while waiting for storage: exit %d after %s; want 0 and a clean stop:\n%s", code, time.Since(start).Round(time.Millisecond), errOut)
		}
	})
	t.Run("missing bucket answered late", func(t *testing.T) {
		// serve starts while the check is slow, then stops with the error.
		p := startOutageProxy(t, s3.Addr)
		p.mode.Store("slow")
		c := startTracectl(t, serveArgs(storagetest.S3URL(p.addr, "no-such-bucket"), filepath.Join(t.TempDir(), "wal"))...)
		defer c.cmd.Process.Kill()
		select {
		case err := <-c.exited:
			if err == nil || !strings.Contains(c.log(), "stopping: the storage check failed") || !strings.Contains(c.log(), "no-such-bucket") {
				t.Errorf("serve on a missing bucket found late: exit %v; want a failure naming the bucket:\n%s", err, c.log())
			}
		case <-time.After(40 * time.Second):
			t.Fatalf("serve still runs 40s after starting on a missing bucket:\n%s", c.log())
		}
	})
}
