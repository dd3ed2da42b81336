package server_test

// Load and limits (issue 9): a million-span trace and 10,000 tenants sent
// through the real OTLP/HTTP receiver into a real Server, with the query
// API alongside. Each test logs its figures (t.Logf) for RELIABILITY.md.

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/ingest"
	"github.com/tracectl/tracectl/internal/query"
	"github.com/tracectl/tracectl/internal/server"
	"github.com/tracectl/tracectl/internal/storage"
	"github.com/tracectl/tracectl/internal/wal"
)

// stack is a Server with the OTLP/HTTP receiver and the query API in
// front of it, all on 127.0.0.1.
type stack struct {
	srv      *server.Server
	reg      *prometheus.Registry
	otlpURL  string
	queryURL string
	client   *http.Client
}

func startStack(t *testing.T, cfg server.Config) *stack {
	t.Helper()
	st := &stack{reg: prometheus.NewRegistry()}
	cfg.Registry = st.reg
	cfg.Logger = quietLogger(t)
	var qa atomic.Pointer[query.API]
	cfg.OnBlockFlushed = func(tenant string, meta *block.Meta) {
		if a := qa.Load(); a != nil {
			a.BlockFlushed(tenant, meta)
		}
	}
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	st.srv = srv
	api, err := query.New(query.Config{Bucket: cfg.Bucket, Head: srv, MultiTenancy: true, Registry: st.reg, Logger: cfg.Logger})
	if err != nil {
		t.Fatal(err)
	}
	qa.Store(api)
	api.Start()
	hs := httptest.NewServer(api.Handler())
	st.queryURL = hs.URL
	srv.Start()
	addrs := startSet(t, ingest.ReceiversConfig{OTLPHTTP: &ingest.Config{Endpoint: "127.0.0.1:0"}, MultiTenancy: true}, srv, cfg.Logger)
	st.otlpURL = "http://" + addrs[ingest.ProtocolOTLPHTTP] + "/v1/traces"
	st.client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}, Timeout: time.Minute}
	t.Cleanup(func() {
		// Registered after startSet's cleanup, so it runs first: stop
		// queries, then (startSet) the receivers; the server last.
		hs.Close()
		api.Close()
	})
	t.Cleanup(func() {
		if err := srv.Shutdown(context.Background()); err != nil {
			t.Errorf("server shutdown: %v", err)
		}
	})
	return st
}

// quietLogger keeps the test log readable: warnings and errors only.
func quietLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testLogWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// export posts td as OTLP protobuf for tenant and returns the HTTP status
// and the spans the server rejected (partial success).
func (st *stack) export(tenant string, body []byte) (int, int64, string, error) {
	req, err := http.NewRequest(http.MethodPost, st.otlpURL, bytes.NewReader(body))
	if err != nil {
		return 0, 0, "", err
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set(ingest.TenantHeader, tenant)
	resp, err := st.client.Do(req)
	if err != nil {
		return 0, 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, 0, "", err
	}
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, 0, string(b), nil
	}
	er := ptraceotlp.NewExportResponse()
	if err := er.UnmarshalProto(b); err != nil {
		return resp.StatusCode, 0, "", err
	}
	return resp.StatusCode, er.PartialSuccess().RejectedSpans(), er.PartialSuccess().ErrorMessage(), nil
}

// spansByID asks the query API for a trace and counts its spans (0 when
// not found).
func (st *stack) spansByID(tenant string, id pcommon.TraceID) (int, error) {
	req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/api/v2/traces/%x", st.queryURL, id[:]), nil)
	req.Header.Set(ingest.TenantHeader, tenant)
	resp, err := st.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	switch resp.StatusCode {
	case http.StatusNotFound:
		return 0, nil
	case http.StatusOK:
		return strings.Count(string(b), `"spanId"`), nil
	}
	return 0, fmt.Errorf("trace by ID: status %d: %s", resp.StatusCode, b)
}

// spanBatch is one request of n small spans of trace id, span IDs from
// first on.
func spanBatch(id pcommon.TraceID, first uint64, n int, t0 time.Time) []byte {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "load")
	spans := rs.ScopeSpans().AppendEmpty().Spans()
	spans.EnsureCapacity(n)
	for i := range n {
		sp := spans.AppendEmpty()
		sp.SetTraceID(id)
		var sid pcommon.SpanID
		binary.BigEndian.PutUint64(sid[:], first+uint64(i)+1)
		sp.SetSpanID(sid)
		sp.SetName("op")
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(t0.Add(time.Duration(i) * time.Microsecond)))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(t0.Add(time.Duration(i)*time.Microsecond + time.Millisecond)))
	}
	b, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	if err != nil {
		panic(err)
	}
	return b
}

func traceID(prefix byte, n uint64) pcommon.TraceID {
	var id pcommon.TraceID
	id[0] = prefix
	binary.BigEndian.PutUint64(id[8:], n)
	return id
}

// heapPeak samples the heap in use until stop is called, and returns the
// peak.
func heapPeak() (stop func() uint64) {
	var peak atomic.Uint64
	done := make(chan struct{})
	finished := make(chan struct{})
	sample := func() {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		if ms.HeapInuse > peak.Load() {
			peak.Store(ms.HeapInuse)
		}
	}
	go func() {
		defer close(finished)
		tk := time.NewTicker(25 * time.Millisecond)
		defer tk.Stop()
		for {
			sample()
			select {
			case <-done:
				return
			case <-tk.C:
			}
		}
	}()
	return func() uint64 {
		close(done)
		<-finished
		sample()
		return peak.Load()
	}
}

// gather returns the value of a counter or gauge with the given labels
// (summed over series matching them).
func gather(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for k, v := range labels {
				if !hasLabel(m, k, v) {
					continue series
				}
			}
			switch {
			case m.Counter != nil:
				sum += m.Counter.GetValue()
			case m.Gauge != nil:
				sum += m.Gauge.GetValue()
			}
		}
	}
	return sum
}

func hasLabel(m *dto.Metric, k, v string) bool {
	for _, lp := range m.GetLabel() {
		if lp.GetName() == k {
			return lp.GetValue() == v
		}
	}
	return false
}

func openBucket(t *testing.T, url string) *storage.Bucket {
	t.Helper()
	b, err := storage.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func openFDs() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(ents)
}

// TestMillionSpanTrace sends one trace of a million spans (1,000 OTLP/HTTP
// requests of 1,000 spans) while another tenant ingests and queries small
// traces. The trace is cut at --max-trace-bytes: the excess is answered as
// a partial success and counted; memory and the WAL stay bounded by the
// limit, not by the trace; the other tenant is served throughout. The
// ingestion rate limit is off, so the trace limit is what is tested (with
// it on, the trace's tenant would also get 429s).
func TestMillionSpanTrace(t *testing.T) {
	const (
		requests      = 1000
		spansPerReq   = 1000
		maxTraceBytes = 5_000_000 // the default of --max-trace-bytes
		// The WAL limit is far below the trace's 55 MB: a WAL that
		// kept the dropped spans would fill up and refuse everyone.
		walMaxBytes = 32 << 20
	)
	st := startStack(t, server.Config{Bucket: openBucket(t, "mem://"), WALDir: t.TempDir(),
		IngestionRateBytes: -1, MaxTraceBytes: maxTraceBytes, WAL: wal.Options{MaxBytes: walMaxBytes}})
	t0 := time.Now()
	big := traceID(0xb1, 1)

	runtime.GC()
	stopHeap := heapPeak()
	start := time.Now()
	var accepted, rejected, sentBytes atomic.Int64
	var walPeak atomic.Int64
	errc := make(chan error, 8)
	next := make(chan int)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				body := spanBatch(big, uint64(i)*spansPerReq, spansPerReq, t0)
				sentBytes.Add(int64(len(body)))
				code, rej, msg, err := st.export("big", body)
				if err == nil && code != http.StatusOK {
					err = fmt.Errorf("request %d of the big trace: status %d: %s", i, code, msg)
				}
				if err != nil {
					select {
					case errc <- err:
					default:
					}
					continue
				}
				if rej > 0 && !strings.Contains(msg, "limit of 5000000 bytes per trace") {
					errc <- fmt.Errorf("partial success message %q does not name the limit", msg)
				}
				rejected.Add(rej)
				accepted.Add(spansPerReq - rej)
				if w := int64(gather(t, st.reg, "tracectl_wal_bytes", nil)); w > walPeak.Load() {
					walPeak.Store(w)
				}
			}
		}()
	}

	// Meanwhile another tenant sends small traces and reads them back.
	stopSmall := make(chan struct{})
	var small sync.WaitGroup
	var smallOK atomic.Int64
	var smallWorst atomic.Int64
	small.Add(1)
	go func() {
		defer small.Done()
		for n := uint64(1); ; n++ {
			select {
			case <-stopSmall:
				return
			case <-time.After(50 * time.Millisecond):
			}
			id := traceID(0x5a, n)
			began := time.Now()
			code, rej, msg, err := st.export("small", spanBatch(id, 0, 5, t0))
			if err == nil && (code != http.StatusOK || rej != 0) {
				err = fmt.Errorf("small trace %d: status %d, %d rejected: %s", n, code, rej, msg)
			}
			if err == nil {
				var got int
				got, err = st.spansByID("small", id)
				if err == nil && got != 5 {
					err = fmt.Errorf("small trace %d: query found %d spans, want 5", n, got)
				}
			}
			if err != nil {
				select {
				case errc <- err:
				default:
				}
				return
			}
			if d := int64(time.Since(began)); d > smallWorst.Load() {
				smallWorst.Store(d)
			}
			smallOK.Add(1)
		}
	}()

	for i := range requests {
		next <- i
	}
	close(next)
	wg.Wait()
	elapsed := time.Since(start)
	close(stopSmall)
	small.Wait()
	peak := stopHeap()
	close(errc)
	for err := range errc {
		t.Error(err)
	}

	total := accepted.Load() + rejected.Load()
	t.Logf("million-span trace: %d spans in %d requests (%.1f MB) in %v: %d accepted, %d dropped (partial success); peak heap %d MiB; peak WAL %.1f MB; other tenant: %d write+query rounds, worst %v",
		total, requests, float64(sentBytes.Load())/1e6, elapsed.Round(time.Millisecond), accepted.Load(), rejected.Load(),
		peak>>20, float64(walPeak.Load())/1e6, smallOK.Load(), time.Duration(smallWorst.Load()).Round(time.Millisecond))
	if total != requests*spansPerReq {
		t.Fatalf("%d spans answered, want %d", total, requests*spansPerReq)
	}
	// Spans are ~55 bytes: the limit keeps about 90,000 of them.
	if a := accepted.Load(); a == 0 || a*40 > maxTraceBytes {
		t.Errorf("%d spans accepted: the limit of %d bytes per trace was not applied", a, maxTraceBytes)
	}
	if got := gather(t, st.reg, "tracectl_ingest_refused_spans_total", map[string]string{"reason": "trace_too_large"}); got != float64(rejected.Load()) {
		t.Errorf("tracectl_ingest_refused_spans_total{reason=trace_too_large} = %v, want %d", got, rejected.Load())
	}
	if got := gather(t, st.reg, "tracectl_head_bytes", nil); got > maxTraceBytes+1<<20 {
		t.Errorf("head holds %v bytes, more than the trace limit", got)
	}
	// Dropped spans must not be kept on disk either.
	if w := walPeak.Load(); w > 2*maxTraceBytes+4<<20 {
		t.Errorf("the WAL grew to %d bytes for a trace limited to %d", w, maxTraceBytes)
	}
	if peak > 512<<20 {
		t.Errorf("peak heap %d MiB", peak>>20)
	}
	if smallOK.Load() == 0 {
		t.Error("the other tenant was not served during the big trace")
	}
	got, err := st.spansByID("big", big)
	if err != nil || int64(got) != accepted.Load() {
		t.Errorf("big trace by ID: %d spans (%v), want the %d accepted", got, err, accepted.Load())
	}
}

// TestTenThousandTenants sends a few spans for each of 10,000 tenants
// (1,000 unless TRACECTL_LOAD_FULL is set: the flush writes one block per
// tenant, about 10 ms each, and 10,000 take two minutes on two cores),
// flushes, and reads a sample back through the query API. Per-tenant state
// must not pile up: the flush writes one block per tenant, the head and the
// WAL are emptied, and file descriptors and goroutines return to where they
// were.
func TestTenThousandTenants(t *testing.T) {
	tenants := 1000
	if os.Getenv("TRACECTL_LOAD_FULL") != "" {
		tenants = 10_000
	}
	const spans = 3
	b := openBucket(t, "file://"+t.TempDir())
	st := startStack(t, server.Config{Bucket: b, WALDir: t.TempDir()})
	t0 := time.Now()
	runtime.GC()
	fdsBefore, goBefore := openFDs(), runtime.NumGoroutine()
	stopHeap := heapPeak()

	start := time.Now()
	next := make(chan int)
	errc := make(chan error, 1)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				code, rej, msg, err := st.export(fmt.Sprintf("tenant-%05d", i), spanBatch(traceID(0x7e, uint64(i)), 0, spans, t0))
				if err == nil && (code != http.StatusOK || rej != 0) {
					err = fmt.Errorf("tenant %d: status %d, %d rejected: %s", i, code, rej, msg)
				}
				if err != nil {
					select {
					case errc <- err:
					default:
					}
				}
			}
		}()
	}
	for i := range tenants {
		next <- i
	}
	close(next)
	wg.Wait()
	ingestTime := time.Since(start)
	select {
	case err := <-errc:
		t.Fatal(err)
	default:
	}
	fdsIngest, goIngest := openFDs(), runtime.NumGoroutine()

	flushStart := time.Now()
	if err := st.srv.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	flushTime := time.Since(flushStart)
	peak := stopHeap()
	written := gather(t, st.reg, "tracectl_blocks_written_total", nil)
	if written != float64(tenants) {
		t.Errorf("%v blocks written, want one per tenant (%d)", written, tenants)
	}
	if h := gather(t, st.reg, "tracectl_head_bytes", nil); h != 0 {
		t.Errorf("head holds %v bytes after the flush", h)
	}
	if w := gather(t, st.reg, "tracectl_wal_segments", nil); w > 1 {
		t.Errorf("%v WAL segments after the flush, want the open one only", w)
	}

	// A sample of tenants, from blocks now.
	queryStart := time.Now()
	for i := 0; i < tenants; i += tenants / 50 {
		got, err := st.spansByID(fmt.Sprintf("tenant-%05d", i), traceID(0x7e, uint64(i)))
		if err != nil || got != spans {
			t.Errorf("tenant %d: %d spans (%v), want %d", i, got, err, spans)
		}
		// Tenants are isolated: another tenant's ID finds nothing.
		if got, err := st.spansByID(fmt.Sprintf("tenant-%05d", i+1), traceID(0x7e, uint64(i))); err != nil || got != 0 {
			t.Errorf("tenant %d's trace visible to tenant %d: %d spans (%v)", i, i+1, got, err)
		}
	}
	queryTime := time.Since(queryStart)
	st.client.CloseIdleConnections()
	time.Sleep(100 * time.Millisecond)
	fdsAfter, goAfter := openFDs(), runtime.NumGoroutine()
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	t.Logf("%d tenants x %d spans: ingest %v (%.0f req/s), flush %v (%v blocks), 100 queries %v; peak heap %d MiB, heap after %d MiB; fds %d before, %d after ingest, %d after flush; goroutines %d, %d, %d",
		tenants, spans, ingestTime.Round(time.Millisecond), float64(tenants)/ingestTime.Seconds(), flushTime.Round(time.Millisecond), written,
		queryTime.Round(time.Millisecond), peak>>20, ms.HeapInuse>>20, fdsBefore, fdsIngest, fdsAfter, goBefore, goIngest, goAfter)
	if fdsAfter > fdsBefore+20 {
		t.Errorf("open file descriptors grew from %d to %d", fdsBefore, fdsAfter)
	}
	if goAfter > goBefore+50 {
		t.Errorf("goroutines grew from %d to %d", goBefore, goAfter)
	}
	if peak > 512<<20 {
		t.Errorf("peak heap %d MiB for %d spans", peak>>20, tenants*spans)
	}
}
