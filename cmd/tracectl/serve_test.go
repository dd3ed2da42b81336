package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/tracectl/tracectl/internal/blocks"
	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/storage"
	"github.com/tracectl/tracectl/internal/testfix"
)

// child is tracectl running as a separate process.
type child struct {
	cmd    *exec.Cmd
	addrs  map[string]string // protocol → address, from its JSON log
	http   string
	logs   *bytes.Buffer
	mu     sync.Mutex
	exited chan error
}

// startTracectl runs `tracectl args...` as a child process (the test binary
// re-executed, see TestMain) and waits until it logs that it is ready.
func startTracectl(t *testing.T, args ...string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "TRACECTL_TEST_MAIN=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, addrs: map[string]string{}, logs: &bytes.Buffer{}, exited: make(chan error, 1)}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(nil, 1<<20)
		once := sync.Once{}
		for sc.Scan() {
			line := sc.Bytes()
			c.mu.Lock()
			c.logs.Write(line)
			c.logs.WriteByte('\n')
			var rec map[string]any
			if json.Unmarshal(line, &rec) == nil {
				if rec["msg"] == "receiver listening" {
					c.addrs[fmt.Sprint(rec["protocol"])] = fmt.Sprint(rec["addr"])
				}
				if rec["msg"] == "tracectl serve ready" {
					c.http = fmt.Sprint(rec["http"])
					once.Do(func() { close(ready) })
				}
			}
			c.mu.Unlock()
		}
		c.exited <- cmd.Wait()
	}()
	select {
	case <-ready:
	case err := <-c.exited:
		t.Fatalf("tracectl exited before it was ready: %v\n%s", err, c.log())
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("tracectl not ready after 60s:\n%s", c.log())
	}
	return c
}

func (c *child) log() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.logs.String()
}

func (c *child) wait(t *testing.T, d time.Duration) error {
	t.Helper()
	select {
	case err := <-c.exited:
		return err
	case <-time.After(d):
		c.cmd.Process.Kill()
		t.Fatalf("tracectl did not exit within %s:\n%s", d, c.log())
		return nil
	}
}

func serveArgs(bucket, walDir string, extra ...string) []string {
	return append([]string{"serve", "--storage", bucket, "--wal-dir", walDir, "--log-format", "json",
		"--http-listen-address", "127.0.0.1:0", "--otlp-http-endpoint", "127.0.0.1:0", "--otlp-grpc-endpoint", "127.0.0.1:0",
		"--jaeger-grpc-endpoint", "off", "--jaeger-thrift-http-endpoint", "off", "--jaeger-thrift-compact-endpoint", "off",
		"--jaeger-thrift-binary-endpoint", "off", "--zipkin-endpoint", "off", "--ingestion-rate-bytes", "-1"}, extra...)
}

// makeTrace builds a request with one trace of n spans whose IDs derive from seq.
func makeTrace(seq uint64, n int) (ptrace.Traces, block.TraceID) {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "crash-test")
	ss := rs.ScopeSpans().AppendEmpty()
	var id block.TraceID
	binary.BigEndian.PutUint64(id[0:], 0xc0ffee)
	binary.BigEndian.PutUint64(id[8:], seq)
	start := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC).Add(time.Duration(seq) * time.Millisecond)
	for i := range n {
		sp := ss.Spans().AppendEmpty()
		sp.SetTraceID(pcommon.TraceID(id))
		var sid [8]byte
		binary.BigEndian.PutUint64(sid[:], seq<<8|uint64(i+1))
		sp.SetSpanID(sid)
		sp.SetName(fmt.Sprintf("span-%d", i))
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(start.Add(time.Millisecond)))
		sp.Attributes().PutInt("seq", int64(seq))
	}
	return td, id
}

// TestServeKill9LosesNoAcknowledgedSpan runs serve in a child process under
// sustained OTLP/HTTP load, kills it with SIGKILL at a random moment, starts
// it again on the same WAL and bucket, stops it cleanly, and checks that
// every acknowledged trace is in the bucket with all its spans.
func TestServeKill9LosesNoAcknowledgedSpan(t *testing.T) {
	if testing.Short() {
		t.Skip("starts tracectl processes")
	}
	dir := t.TempDir()
	bucket := "file://" + filepath.Join(dir, "bucket")
	walDir := filepath.Join(dir, "wal")
	const spansPerTrace = 3
	acked := map[block.TraceID]bool{}
	var ackedMu sync.Mutex
	var seq uint64
	var seqMu sync.Mutex
	nextSeq := func() uint64 { seqMu.Lock(); defer seqMu.Unlock(); seq++; return seq }

	for trial := range 3 {
		c := startTracectl(t, serveArgs(bucket, walDir, "--max-block-duration", "300ms")...)
		url := "http://" + c.addrs["otlp_http"] + "/v1/traces"
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				client := &http.Client{Timeout: 5 * time.Second}
				for {
					select {
					case <-stop:
						return
					default:
					}
					td, id := makeTrace(nextSeq(), spansPerTrace)
					body, _ := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
					resp, err := client.Post(url, "application/x-protobuf", bytes.NewReader(body))
					if err != nil {
						continue // the server is gone: not acknowledged
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode == http.StatusOK {
						ackedMu.Lock()
						acked[id] = true
						ackedMu.Unlock()
					}
				}
			}()
		}
		time.Sleep(time.Duration(1200+rand.IntN(2000)) * time.Millisecond)
		if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		c.wait(t, 10*time.Second)
		close(stop)
		wg.Wait()
		t.Logf("trial %d: %d traces acknowledged so far", trial, len(acked))
	}
	if len(acked) < 50 {
		t.Fatalf("only %d traces acknowledged: the load did not run", len(acked))
	}
	// Blocks were stored while the load ran, so kills hit flushes too.
	if ids, _ := os.ReadDir(filepath.Join(dir, "bucket", block.DefaultTenant)); len(ids) < 2 {
		t.Errorf("only %d block directories written during the trials: kills did not meet flushes", len(ids))
	}

	// Restart on the same WAL, then stop cleanly: everything is stored.
	c := startTracectl(t, serveArgs(bucket, walDir)...)
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := c.wait(t, 60*time.Second); err != nil {
		t.Fatalf("clean stop after restart: %v\n%s", err, c.log())
	}

	ctx := context.Background()
	b, err := storage.Open(ctx, bucket)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	l, err := blocks.List(ctx, b, block.DefaultTenant, blocks.ListOptions{})
	if err != nil || len(l.Problems) > 0 {
		t.Fatalf("list: %v %v", err, l.Problems)
	}
	var metas []*block.Meta
	for _, bi := range l.Blocks {
		metas = append(metas, bi.Meta)
	}
	lost := 0
	for id := range acked {
		res, err := blocks.FindTrace(ctx, b, metas, id, blocks.FindOptions{})
		if err != nil || !res.Found || res.Trace.SpanCount() != spansPerTrace {
			lost++
			if lost <= 5 {
				n := 0
				if res != nil {
					n = res.Trace.SpanCount()
				}
				t.Errorf("acknowledged trace %s: found %d of %d spans (err %v)", id.Hex(), n, spansPerTrace, err)
			}
		}
	}
	t.Logf("%d acknowledged traces in %d blocks after 3 kills; %d lost", len(acked), len(metas), lost)
	if lost > 0 {
		t.Fatalf("%d acknowledged traces lost", lost)
	}
}

func TestServeOpsEndpointsAndCleanStop(t *testing.T) {
	if testing.Short() {
		t.Skip("starts tracectl processes")
	}
	dir := t.TempDir()
	bucket := "file://" + filepath.Join(dir, "bucket")
	c := startTracectl(t, serveArgs(bucket, filepath.Join(dir, "wal"))...)
	get := func(path string) (int, string, string) {
		resp, err := http.Get("http://" + c.http + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
	}
	if code, _, body := get("/ready"); code != 200 || body != "ready" {
		t.Errorf("/ready = %d %q", code, body)
	}
	if code, _, body := get("/api/echo"); code != 200 || body != "echo" {
		t.Errorf("/api/echo = %d %q", code, body)
	}
	code, ctype, body := get("/api/status/buildinfo")
	var bi map[string]string
	if code != 200 || ctype != "application/json" || json.Unmarshal([]byte(body), &bi) != nil || bi["goVersion"] == "" {
		t.Errorf("/api/status/buildinfo = %d %s %q", code, ctype, body)
	}

	// Send one trace over OTLP/HTTP JSON, then check the metrics.
	td, id := makeTrace(42, 2)
	js, _ := ptraceotlp.NewExportRequestFromTraces(td).MarshalJSON()
	resp, err := http.Post("http://"+c.addrs["otlp_http"]+"/v1/traces", "application/json", bytes.NewReader(js))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("OTLP/HTTP JSON post: %v %v", err, resp)
	}
	resp.Body.Close()
	// A tag query fills the index of the head's tags.
	if code, _, body := get("/api/v2/search/tags"); code != 200 || !strings.Contains(body, "service.name") {
		t.Errorf("/api/v2/search/tags = %d %s", code, body)
	}
	_, _, metrics := get("/metrics")
	if !regexp.MustCompile(`(?m)^tracectl_head_tag_index_values [1-9]`).MatchString(metrics) {
		t.Errorf("/metrics: tracectl_head_tag_index_values is not positive after a tag query")
	}
	for _, want := range []string{`tracectl_receiver_accepted_spans_total{protocol="otlp_http",tenant="single-tenant"} 2`, "tracectl_wal_bytes", "tracectl_head_traces 1", "go_goroutines",
		"tracectl_query_bloom_cache_bytes", "tracectl_search_block_cache_bytes", "tracectl_search_distinct_cache_entries"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := c.wait(t, 30*time.Second); err != nil {
		t.Fatalf("SIGTERM: exit %v\n%s", err, c.log())
	}
	// The trace was stored at shutdown.
	res := runCLI(t, false, "get", id.Hex(), "--storage", bucket)
	if res.code != 0 {
		t.Errorf("trace sent before SIGTERM not stored: exit %d %s", res.code, res.stderr)
	}
}

// TestServeQueryAPI sends a trace over OTLP and reads it back through the
// Tempo query API on the HTTP port: from the head at once, and from the
// stored block after a flush (announced to the query side, so it never
// vanishes in between).
func TestServeQueryAPI(t *testing.T) {
	if testing.Short() {
		t.Skip("starts tracectl processes")
	}
	dir := t.TempDir()
	c := startTracectl(t, serveArgs("file://"+filepath.Join(dir, "bucket"), filepath.Join(dir, "wal"),
		"--max-block-duration", "200ms", "--trace-idle-period", "-1ns", "--query-poll-interval", "1h")...)
	defer func() {
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		c.wait(t, 30*time.Second)
	}()
	get := func(path string, hdr ...string) (int, []byte) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+c.http+path, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	if code, body := get("//api/echo"); code != 200 || string(body) != "echo" {
		t.Errorf("//api/echo = %d %q", code, body)
	}
	td, id := makeTrace(7, 4)
	pb, _ := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	resp, err := http.Post("http://"+c.addrs["otlp_http"]+"/v1/traces", "application/x-protobuf", bytes.NewReader(pb))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("OTLP/HTTP post: %v %v", err, resp)
	}
	resp.Body.Close()
	spans := func() int {
		code, body := get("/api/v2/traces/"+id.Text(), "Accept", "application/protobuf")
		if code != 200 {
			t.Fatalf("trace by ID: %d %q", code, body)
		}
		return bytes.Count(body, []byte("span-"))
	}
	if n := spans(); n != 4 {
		t.Fatalf("trace from the head: %d spans, want 4", n)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(c.log(), `"msg":"block stored"`) {
		if time.Now().After(deadline) {
			t.Fatalf("no block stored:\n%s", c.log())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// No poll runs (1h): the block is known through the flush callback.
	for range 20 {
		if n := spans(); n != 4 {
			t.Fatalf("trace after its block was stored: %d spans, want 4", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Grafana's streaming search: gRPC over cleartext HTTP/2 on the same
	// port, tempopb.StreamingQuerier/Search {Query "{}", Limit 5}.
	if msg := streamSearch(t, c.http, append([]byte{0x20, 5, 0x42, 2}, "{}"...)); !bytes.Contains(msg, []byte(id.Text())) {
		t.Errorf("streamed search answer lacks trace %s: %q", id.Text(), msg)
	}
	if code, _ := get("/api/traces/deadbeef"); code != 404 {
		t.Errorf("v1 unknown trace: %d", code)
	}
	_, metrics := get("/metrics")
	if !strings.Contains(string(metrics), `tracectl_query_requests_total{route="trace_by_id_v2",status="200"}`) {
		t.Errorf("/metrics lacks the query counters")
	}
}

// TestServeHTTPAPITLSAndAuth: with --http-tls-cert-file/--http-tls-key-file
// and a bearer token from the environment, the HTTP port answers only over
// TLS and only with the token (but /ready, for probes), Grafana's gRPC
// streaming search works over h2 with the token as metadata, and the token
// never reaches the log.
func TestServeHTTPAPITLSAndAuth(t *testing.T) {
	if testing.Short() {
		t.Skip("starts tracectl processes")
	}
	const token = "tok-3b9f0e7a1c"
	t.Setenv("TRACECTL_HTTP_AUTH_TOKEN", token)
	certFile, keyFile, pool := testfix.SelfSigned(t)
	dir := t.TempDir()
	c := startTracectl(t, serveArgs("file://"+filepath.Join(dir, "bucket"), filepath.Join(dir, "wal"),
		"--http-tls-cert-file", certFile, "--http-tls-key-file", keyFile, "--log-level", "debug")...)
	defer func() {
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		c.wait(t, 30*time.Second)
	}()
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	get := func(url, authz string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if authz != "" {
			req.Header.Set("Authorization", authz)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	base := "https://" + c.http
	if code, _ := get(base+"/ready", ""); code != 200 {
		t.Errorf("/ready without credentials: %d, want 200 (probes send none)", code)
	}
	if code, body := get(base+"/api/echo", ""); code != 401 || !strings.Contains(body, "--http-auth-token") {
		t.Errorf("/api/echo without the token: %d %q, want 401 naming the flag", code, body)
	}
	if code, _ := get(base+"/api/echo", "Bearer wrong"); code != 401 {
		t.Errorf("/api/echo with a wrong token: %d, want 401", code)
	}
	if code, body := get(base+"/api/echo", "Bearer "+token); code != 200 || body != "echo" {
		t.Errorf("/api/echo with the token: %d %q", code, body)
	}
	if code, _ := get(base+"/metrics", "Bearer "+token); code != 200 {
		t.Errorf("/metrics with the token: %d", code)
	}
	if resp, err := http.Get("http://" + c.http + "/api/echo"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Error("plain HTTP answered 200 on the TLS port")
		}
	}
	// Streaming search over h2 with TLS: refused without the token,
	// answered with it.
	creds := credentials.NewTLS(&tls.Config{RootCAs: pool})
	req := append([]byte{0x20, 5, 0x42, 2}, "{}"...)
	if _, err := streamSearchWith(t, c.http, req, creds, ""); status.Code(err) != codes.Unauthenticated {
		t.Errorf("streaming search without the token: %v, want Unauthenticated", err)
	}
	if _, err := streamSearchWith(t, c.http, req, creds, "Bearer "+token); err != nil {
		t.Errorf("streaming search with the token: %v", err)
	}
	if strings.Contains(c.log(), token) {
		t.Errorf("the token is in the log:\n%s", c.log())
	}
}

// bytesCodec passes gRPC message bytes through.
type bytesCodec struct{}

func (bytesCodec) Name() string                  { return "proto" }
func (bytesCodec) Marshal(v any) ([]byte, error) { return *v.(*[]byte), nil }
func (bytesCodec) Unmarshal(data []byte, v any) error {
	*v.(*[]byte) = append([]byte(nil), data...)
	return nil
}

// streamSearch calls tempopb.StreamingQuerier/Search at addr over h2c and
// returns the streamed messages joined.
func streamSearch(t *testing.T, addr string, req []byte) []byte {
	t.Helper()
	all, err := streamSearchWith(t, addr, req, insecure.NewCredentials(), "")
	if err != nil {
		t.Fatalf("streaming search: %v", err)
	}
	return all
}

// streamSearchWith is streamSearch with transport credentials and an
// authorization metadata value (none when empty).
func streamSearchWith(t *testing.T, addr string, req []byte, creds credentials.TransportCredentials, authz string) ([]byte, error) {
	t.Helper()
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(bytesCodec{})))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if authz != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", authz)
	}
	st, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, "/tempopb.StreamingQuerier/Search")
	if err != nil {
		return nil, err
	}
	if err := st.SendMsg(&req); err != nil {
		return nil, err
	}
	_ = st.CloseSend()
	var all []byte
	for {
		var m []byte
		if err := st.RecvMsg(&m); err == io.EOF {
			return all, nil
		} else if err != nil {
			return all, err
		}
		all = append(all, m...)
	}
}

func TestServeQueryFlagsValidated(t *testing.T) {
	isolateEnv(t)
	for _, flag := range []string{"--query-poll-interval=0s", "--query-timeout=-1s", "--query-max-concurrent=0", "--query-max-trace-bytes=0", "--query-bloom-cache-bytes=0"} {
		res := runCLI(t, false, "serve", flag, "--storage", "mem://")
		if res.code != exitUsage || !strings.Contains(res.stderr, "must be positive") {
			t.Errorf("%s: exit %d, stderr %q", flag, res.code, res.stderr)
		}
	}
}

// TestServeBloomCacheFlag: --query-bloom-cache-bytes bounds the bloom
// shards trace by ID keeps. Room for one shard (a block's shard is 100 KiB)
// keeps one after queries of three blocks; the default would keep three.
func TestServeBloomCacheFlag(t *testing.T) {
	if testing.Short() {
		t.Skip("starts tracectl processes")
	}
	isolateEnv(t)
	dir := t.TempDir()
	const limit = 150 << 10
	c := startTracectl(t, serveArgs("file://"+filepath.Join(dir, "bucket"), filepath.Join(dir, "wal"),
		"--max-block-duration", "100ms", "--trace-idle-period", "-1ns", "--query-poll-interval", "1h",
		"--query-bloom-cache-bytes", strconv.Itoa(limit))...)
	defer func() {
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		c.wait(t, 30*time.Second)
	}()
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + c.http + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	var ids []block.TraceID
	for seq := uint64(1); seq <= 3; seq++ {
		td, id := makeTrace(100+seq, 2)
		pb, _ := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
		resp, err := http.Post("http://"+c.addrs["otlp_http"]+"/v1/traces", "application/x-protobuf", bytes.NewReader(pb))
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("OTLP/HTTP post: %v %v", err, resp)
		}
		resp.Body.Close()
		ids = append(ids, id)
		// One block per trace: wait for this trace's block.
		deadline := time.Now().Add(30 * time.Second)
		for strings.Count(c.log(), `"msg":"block stored"`) < int(seq) {
			if time.Now().After(deadline) {
				t.Fatalf("block %d not stored:\n%s", seq, c.log())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	for _, id := range ids {
		if code, body := get("/api/traces/" + id.Hex()); code != 200 || strings.Count(body, `"spanId"`) != 2 {
			t.Fatalf("trace %s: %d %.200s", id.Hex(), code, body)
		}
	}
	_, metrics := get("/metrics")
	m := regexp.MustCompile(`(?m)^tracectl_query_bloom_cache_bytes (\S+)$`).FindStringSubmatch(metrics)
	if m == nil {
		t.Fatal("/metrics lacks tracectl_query_bloom_cache_bytes")
	}
	held, _ := strconv.ParseFloat(m[1], 64)
	if held <= 0 || held > limit {
		t.Errorf("bloom cache holds %v bytes after 3 blocks were asked; want some, at most the %d of the flag", held, limit)
	}
}
