package ingest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"compress/zlib"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tracectl/tracectl/internal/ingest/ingesttest"
	"github.com/tracectl/tracectl/internal/testfix"
)

const loopback = "127.0.0.1:0"

// testLogger writes receiver logs to the test log, so a failure shows them.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

// env is what a receiver test needs: a recorder behind the receiver and the
// registry of its metrics.
type env struct {
	rec *ingesttest.Recorder
	reg *prometheus.Registry
}

func newEnv() env {
	return env{rec: &ingesttest.Recorder{}, reg: prometheus.NewRegistry()}
}

// start starts r and shuts it down (checking the drain succeeds) at the end
// of the test: start(NewX(...))(t).
func start[R Receiver](r R, err error) func(t *testing.T) R {
	return func(t *testing.T) R {
		t.Helper()
		return startNow(t, r, err)
	}
}

func startNow[R Receiver](t *testing.T, r R, err error) R {
	t.Helper()
	if err != nil {
		t.Fatalf("constructing receiver: %v", err)
	}
	if r.Addr() != nil {
		t.Fatalf("Addr() before Start = %v, want nil", r.Addr())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	addr := r.Addr()
	if addr == nil {
		t.Fatal("Addr() after Start is nil")
	}
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil || host != "127.0.0.1" || port == "0" {
		t.Fatalf("Addr() = %v, want 127.0.0.1 and the bound port", addr)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := r.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return r
}

func tcpConfig(multi bool) Config {
	return Config{Endpoint: loopback, MultiTenancy: multi}
}

type postOpts struct {
	contentType string
	encoding    string
	header      map[string]string
	client      *http.Client
}

// post sends body and returns the status, the headers and the response body.
func post(t *testing.T, url string, body []byte, o postOpts) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if o.contentType != "" {
		req.Header.Set("Content-Type", o.contentType)
	}
	if o.encoding != "" {
		req.Header.Set("Content-Encoding", o.encoding)
	}
	for k, v := range o.header {
		req.Header.Set(k, v)
	}
	c := o.client
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading response of %s: %v", url, err)
	}
	return resp.StatusCode, resp.Header, b
}

func gzipped(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// selfSigned writes a certificate for 127.0.0.1 and its key, returning the
// file names and a pool that trusts it.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	return testfix.SelfSigned(t)
}

func tlsClient(pool *x509.CertPool) *http.Client {
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

// counter reads a counter or gauge child.
func counter(c prometheus.Collector) float64 { return testutil.ToFloat64(c) }

// attrsOf flattens a map for comparison: values as pdata renders them.
func attrsOf(m pcommon.Map) map[string]any {
	return m.AsRaw()
}

// wantAttrs checks that got holds every key of want with an equal value
// (of the same type, as AsRaw renders it).
func wantAttrs(t *testing.T, what string, got pcommon.Map, want map[string]any) {
	t.Helper()
	raw := got.AsRaw()
	for k, w := range want {
		g, ok := raw[k]
		if !ok {
			t.Errorf("%s: attribute %q missing; have %v", what, k, raw)
			continue
		}
		if !equalRaw(g, w) {
			t.Errorf("%s: attribute %q = %#v (%T), want %#v (%T)", what, k, g, g, w, w)
		}
	}
}

func equalRaw(a, b any) bool {
	as, aok := a.([]any)
	bs, bok := b.([]any)
	if aok || bok {
		if !aok || !bok || len(as) != len(bs) {
			return false
		}
		for i := range as {
			if !equalRaw(as[i], bs[i]) {
				return false
			}
		}
		return true
	}
	return a == b
}

// otlpTraces builds a request with one span named name, with valid IDs.
func otlpTraces(name string) ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "raw")
	s := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	s.SetName(name)
	s.SetTraceID(pcommon.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})
	s.SetSpanID(pcommon.SpanID{1, 2, 3, 4, 5, 6, 7, 8})
	s.SetStartTimestamp(pcommon.NewTimestampFromTime(time.Unix(1700000000, 0)))
	s.SetEndTimestamp(pcommon.NewTimestampFromTime(time.Unix(1700000001, 0)))
	return td
}

func zlibbed(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zlib.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func zstded(t testing.TB, b []byte) []byte {
	t.Helper()
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	return enc.EncodeAll(b, nil)
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

// settle returns get's value once it is want, or its last value after 5 s:
// for counts made after the client already has its answer (a message gRPC
// refused is answered before the handler sees it).
func settle(get func() float64, want float64) float64 {
	deadline := time.Now().Add(5 * time.Second)
	for {
		v := get()
		if v == want || time.Now().After(deadline) {
			return v
		}
		time.Sleep(10 * time.Millisecond)
	}
}
