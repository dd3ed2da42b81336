package main

// Issue 9 on the serve command: stalled calls at shutdown, and the HTTP
// API's listener (timeouts, slow-loris, slow queries).

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/tracectl/tracectl/internal/ingest/ingesttest"
	"github.com/tracectl/tracectl/internal/query"
	"github.com/tracectl/tracectl/internal/storage"
)

// TestServeSIGTERMWithStalledCalls: clients that opened OTLP gRPC Export
// calls and HTTP requests and never finish them do not make a SIGTERM
// fail. serve waits --shutdown-timeout for them, closes them, stores
// every acknowledged span and exits 0.
func TestServeSIGTERMWithStalledCalls(t *testing.T) {
	if testing.Short() {
		t.Skip("starts tracectl processes")
	}
	dir := t.TempDir()
	bucket := "file://" + filepath.Join(dir, "bucket")
	const shutdownTimeout = 3 * time.Second
	c := startTracectl(t, serveArgs(bucket, filepath.Join(dir, "wal"), "--shutdown-timeout", shutdownTimeout.String())...)

	td, id := makeTrace(7, 3)
	js, _ := ptraceotlp.NewExportRequestFromTraces(td).MarshalJSON()
	resp, err := http.Post("http://"+c.addrs["otlp_http"]+"/v1/traces", "application/json", bytes.NewReader(js))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("OTLP/HTTP post: %v %v", err, resp)
	}
	resp.Body.Close()

	// Ten Export calls that sent their headers and an empty first
	// message, and never end their request.
	conn, err := grpc.NewClient("passthrough:///"+c.addrs["otlp_grpc"], grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(bytesCodec{})))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var streams []grpc.ClientStream
	for range 10 {
		s, err := conn.NewStream(context.Background(), &grpc.StreamDesc{ClientStreams: true}, "/opentelemetry.proto.collector.trace.v1.TraceService/Export")
		if err != nil {
			t.Fatal(err)
		}
		empty := []byte{}
		if err := s.SendMsg(&empty); err != nil {
			t.Fatal(err)
		}
		streams = append(streams, s)
	}
	// And ten HTTP requests stalled in their body.
	stalls := ingesttest.StartSlowLoris(c.addrs["otlp_http"], "/v1/traces", 10, ingesttest.StallBody, time.Second)
	defer stalls.Stop()
	time.Sleep(300 * time.Millisecond)

	began := time.Now()
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err = c.wait(t, shutdownTimeout+30*time.Second)
	took := time.Since(began)
	t.Logf("SIGTERM with 10 stalled gRPC calls and 10 stalled HTTP bodies, --shutdown-timeout %v: exit %v after %v", shutdownTimeout, err, took.Round(10*time.Millisecond))
	if err != nil {
		t.Errorf("SIGTERM: exit %v, want 0\n%s", err, c.log())
	} else if !strings.Contains(c.log(), "stopped cleanly") {
		t.Errorf("no \"stopped cleanly\" in the log:\n%s", c.log())
	}
	if took > shutdownTimeout+10*time.Second {
		t.Errorf("shutdown took %v with --shutdown-timeout %v", took, shutdownTimeout)
	}
	for _, s := range streams {
		var m []byte
		if err := s.RecvMsg(&m); err == nil {
			t.Error("a stalled call succeeded")
		}
	}
	closed, opened := stalls.Closed()
	if len(closed) != opened {
		t.Errorf("%d of %d stalled HTTP requests closed", len(closed), opened)
	}
	if res := runCLI(t, false, "get", id.Hex(), "--storage", bucket); res.code != 0 {
		t.Errorf("trace acknowledged before SIGTERM not stored: exit %d %s", res.code, res.stderr)
	}
}

// startTestAPI starts the HTTP API as serve does, on a free loopback port,
// over a query API built from cfg; both end with the test.
func startTestAPI(t *testing.T, cfg query.Config, o apiOptions) *apiServer {
	t.Helper()
	reg := prometheus.NewRegistry()
	cfg.Registry = reg
	qa, err := query.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	qa.Start()
	t.Cleanup(qa.Close)
	o.addr = "127.0.0.1:0"
	api, err := startAPI(o, reg, qa.Handler(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = api.Close() })
	return api
}

func memBucket(t *testing.T) *storage.Bucket {
	t.Helper()
	b, err := storage.Open(context.Background(), "mem://")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// TestServeAPISlowLoris: the HTTP API's listener, as serve configures it,
// has all four timeouts set, and the write timeout outlasts a query at any
// --query-timeout. 200 connections trickling header bytes are closed at
// the read-header timeout while /ready and /api/search are served with
// normal latency.
func TestServeAPISlowLoris(t *testing.T) {
	t.Parallel()
	o := apiOptionsOf(&serveOptions{QueryTimeout: query.DefaultQueryTimeout})
	api := startTestAPI(t, query.Config{Bucket: memBucket(t), QueryTimeout: query.DefaultQueryTimeout}, o)
	s := api.Server
	if s.ReadHeaderTimeout <= 0 || s.ReadTimeout <= 0 || s.WriteTimeout <= 0 || s.IdleTimeout <= 0 {
		t.Errorf("timeouts read-header %v, read %v, write %v, idle %v: each must be set", s.ReadHeaderTimeout, s.ReadTimeout, s.WriteTimeout, s.IdleTimeout)
	}
	for _, qt := range []time.Duration{time.Second, query.DefaultQueryTimeout, 5 * time.Minute, time.Hour} {
		w := apiOptionsOf(&serveOptions{QueryTimeout: qt}).timeouts.write
		if w < query.DefaultQueueTimeout+qt+30*time.Second {
			t.Errorf("--query-timeout %v: write timeout %v does not outlast the queue wait (%v), the query and sending its answer", qt, w, query.DefaultQueueTimeout)
		}
	}

	fds := ingesttest.OpenFDs()
	began := time.Now()
	l := ingesttest.StartSlowLoris(api.addr, "/api/search", 200, ingesttest.TrickleHeaders, time.Second)
	time.Sleep(500 * time.Millisecond)
	fdsUnder := ingesttest.OpenFDs()
	client := &http.Client{Timeout: 5 * time.Second}
	var worst time.Duration
	var served int
	for deadline := began.Add(20 * time.Second); time.Now().Before(deadline); {
		for _, path := range []string{"/ready", "/api/search?limit=5"} {
			t0 := time.Now()
			resp, err := client.Get("http://" + api.addr + path)
			if err != nil {
				t.Errorf("%s during the slow-loris: %v", path, err)
				continue
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			worst = max(worst, time.Since(t0))
			if resp.StatusCode != http.StatusOK {
				t.Errorf("%s during the slow-loris: %d", path, resp.StatusCode)
			} else {
				served++
			}
		}
		if closed, _ := l.Closed(); len(closed) == 200 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	closed, opened := l.Closed()
	if err := l.Stop(); err != nil {
		t.Error(err)
	}
	if opened != 200 || len(closed) != 200 {
		t.Fatalf("%d of %d header tricklers closed by the server in %v", len(closed), opened, time.Since(began).Round(time.Second))
	}
	t.Logf("HTTP API: 200 header tricklers closed after %v to %v (read-header timeout %v); /ready and /api/search meanwhile: %d served, worst latency %v; fds %d before, %d during",
		closed[0].Round(10*time.Millisecond), closed[len(closed)-1].Round(10*time.Millisecond), s.ReadHeaderTimeout, served, worst.Round(time.Millisecond), fds, fdsUnder)
	if closed[0] < s.ReadHeaderTimeout-time.Second || closed[len(closed)-1] > s.ReadHeaderTimeout+5*time.Second {
		t.Errorf("tricklers closed after %v to %v, want about the read-header timeout %v", closed[0], closed[len(closed)-1], s.ReadHeaderTimeout)
	}
	if worst > time.Second {
		t.Errorf("worst latency of a normal request %v during the slow-loris", worst)
	}
}

// TestServeAPISlowQueries: a query that takes nearly its query timeout
// gets its answer, and one that runs past it gets its 504 (the streaming
// search: DeadlineExceeded), over HTTP/1.1 and over h2c, when the write
// timeout outlasts the queue wait and the query timeout as
// newAPITimeouts makes it, and though the read timeout is shorter than
// the query. With a write timeout shorter than the query (as the fixed 2
// minutes was for --query-timeout 3m) the same answers are lost: dropped
// connection, reset stream. Durations are scaled down: a 2 s query
// timeout, 1 s queue wait, 0.5 s read timeout.
func TestServeAPISlowQueries(t *testing.T) {
	t.Parallel()
	const queryTimeout, queueTimeout = 2 * time.Second, time.Second
	b := memBucket(t)
	// The first listing of a tenant's blocks, which its first query
	// waits for, takes the delay stored for the tenant.
	var delays sync.Map
	b.SetHook(func(ctx context.Context, op, key string) error {
		tenant, _, _ := strings.Cut(key, "/")
		if d, ok := delays.LoadAndDelete(tenant); ok && op == "list" {
			select {
			case <-time.After(d.(time.Duration)):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	})
	cfg := query.Config{Bucket: b, MultiTenancy: true, QueryTimeout: queryTimeout, QueueTimeout: queueTimeout}
	good := apiTimeouts{readHeader: 10 * time.Second, read: 500 * time.Millisecond, write: queueTimeout + queryTimeout + time.Second, idle: time.Minute}
	short := good
	short.write = time.Second
	apis := map[string]*apiServer{"good": startTestAPI(t, cfg, apiOptions{timeouts: good}), "short": startTestAPI(t, cfg, apiOptions{timeouts: short})}

	n := 0
	// ask runs one search for a new tenant whose listing takes delay and
	// says what the client got.
	ask := func(api *apiServer, delay time.Duration, stream bool) (string, time.Duration) {
		n++
		tenant := fmt.Sprintf("t%d", n)
		delays.Store(tenant, delay)
		t0 := time.Now()
		if !stream {
			req, _ := http.NewRequest(http.MethodGet, "http://"+api.addr+"/api/search?limit=5", nil)
			req.Header.Set("X-Scope-OrgID", tenant)
			client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
			resp, err := client.Do(req)
			if err != nil {
				return "error: " + err.Error(), time.Since(t0)
			}
			defer resp.Body.Close()
			if _, err := io.ReadAll(resp.Body); err != nil {
				return "error reading the body: " + err.Error(), time.Since(t0)
			}
			return fmt.Sprint(resp.StatusCode), time.Since(t0)
		}
		conn, err := grpc.NewClient("passthrough:///"+api.addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.ForceCodec(bytesCodec{})))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(context.Background(), "x-scope-orgid", tenant), 30*time.Second)
		defer cancel()
		st, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, "/tempopb.StreamingQuerier/Search")
		if err == nil {
			req := append([]byte{0x20, 5, 0x42, 2}, "{}"...) // limit 5, q {}
			err = st.SendMsg(&req)
		}
		if err == nil {
			_ = st.CloseSend()
			for err == nil {
				var m []byte
				err = st.RecvMsg(&m)
			}
			if err == io.EOF {
				err = nil
			}
		}
		return status.Code(err).String() + " " + status.Convert(err).Message(), time.Since(t0)
	}
	for _, c := range []struct {
		api    string
		delay  time.Duration
		stream bool
		want   string // prefix of what the client gets
	}{
		{"good", queryTimeout - 300*time.Millisecond, false, "200"},
		{"good", time.Minute, false, "504"},
		{"good", queryTimeout - 300*time.Millisecond, true, "OK"},
		{"good", time.Minute, true, "DeadlineExceeded query timed out"},
		{"short", queryTimeout - 300*time.Millisecond, false, "error"},
		{"short", queryTimeout - 300*time.Millisecond, true, "Internal"},
	} {
		got, took := ask(apis[c.api], c.delay, c.stream)
		proto := "HTTP/1.1"
		if c.stream {
			proto = "h2c stream"
		}
		t.Logf("%s write timeout %v, %s, listing takes %v: %q after %v", c.api, apis[c.api].WriteTimeout, proto, c.delay, got, took.Round(10*time.Millisecond))
		if !strings.HasPrefix(got, c.want) {
			t.Errorf("%s write timeout, %s, listing %v: got %q, want %s...", c.api, proto, c.delay, got, c.want)
		}
	}
}
