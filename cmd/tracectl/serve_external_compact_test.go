package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/tracectl/tracectl/internal/blocks"
	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/storage"
	"github.com/tracectl/tracectl/internal/storage/storagetest"
)

// TestBlocksCompactBesideLiveServe runs `tracectl blocks compact` over and
// over against the bucket a live serve is writing, as an operator's cron
// job would, while traces keep arriving and are asked for by ID through
// serve's query API. Every acknowledged trace must be answered whole at
// every moment (serve's block list is read again every second; compacted
// blocks are deleted 3 s after they were compacted), and at the end every
// trace is in the bucket exactly once and `blocks verify` passes.
func TestBlocksCompactBesideLiveServe(t *testing.T) {
	if testing.Short() {
		t.Skip("starts tracectl processes")
	}
	isolateEnv(t)
	compactBesideServe(t, "file://"+filepath.Join(t.TempDir(), "bucket"), "3s", "1s")
}

// TestBlocksCompactBesideLiveServeS3 is the same on an object store, with
// compacted blocks deleted at once and serve's own poll an hour away:
// answers stay whole from the blocks serve has open (their data is read
// already) and, for the others, by serve reading its block list again
// when a query meets a deleted block.
func TestBlocksCompactBesideLiveServeS3(t *testing.T) {
	if testing.Short() {
		t.Skip("starts tracectl processes")
	}
	s3 := storagetest.StartS3(t)
	s3.Bucket(t, "traces")
	isolateEnv(t)
	compactBesideServe(t, s3.URL("traces"), "0s", "1h")
}

// compactBesideServe runs serve on bucket (block list polled every poll)
// and `blocks compact --compacted-retention retention` beside it.
func compactBesideServe(t *testing.T, bucket, retention, poll string) {
	t.Helper()
	c := startTracectl(t, serveArgs(bucket, filepath.Join(t.TempDir(), "wal"),
		"--max-block-duration", "300ms", "--trace-idle-period", "100ms", "--query-poll-interval", poll)...)
	defer c.cmd.Process.Kill()

	const traces, spansPer = 120, 3
	var (
		mu    sync.Mutex
		acked []block.TraceID
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	// Ingest: one trace every 50 ms, each in one OTLP/HTTP request.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for seq := uint64(1); seq <= traces; seq++ {
			td, id := makeTrace(seq, spansPer)
			pb, _ := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
			resp, err := http.Post("http://"+c.addrs["otlp_http"]+"/v1/traces", "application/x-protobuf", bytes.NewReader(pb))
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Errorf("trace %d: %v %v", seq, err, resp)
				return
			}
			resp.Body.Close()
			mu.Lock()
			acked = append(acked, id)
			mu.Unlock()
			time.Sleep(50 * time.Millisecond)
		}
	}()
	// Queries: acknowledged traces by ID, all the time.
	var asked, wrong atomic.Int64
	var firstWrong atomic.Value
	wg.Add(1)
	go func() {
		defer wg.Done()
		rng := rand.New(rand.NewPCG(7, 7))
		for {
			select {
			case <-stop:
				return
			default:
			}
			mu.Lock()
			n := len(acked)
			var id block.TraceID
			if n > 0 {
				id = acked[rng.IntN(n)]
			}
			mu.Unlock()
			if n == 0 {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			resp, err := http.Get("http://" + c.http + "/api/traces/" + id.Hex())
			var body []byte
			if err == nil {
				body, _ = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			asked.Add(1)
			if err != nil || resp.StatusCode != http.StatusOK || strings.Count(string(body), `"spanId"`) != spansPer {
				wrong.Add(1)
				status := 0
				if resp != nil {
					status = resp.StatusCode
				}
				firstWrong.CompareAndSwap(nil, fmt.Sprintf("%s trace %s: %v, status %d, %d spans: %.300s", time.Now().Format("15:04:05.000"), id.Hex(), err, status, strings.Count(string(body), `"spanId"`), body))
			}
		}
	}()
	// The operator's compactor, every 500 ms while ingest runs.
	runs, jobs := 0, 0
	ingestDone := make(chan struct{})
	go func() {
		for {
			mu.Lock()
			n := len(acked)
			mu.Unlock()
			if n == traces {
				close(ingestDone)
				return
			}
			select {
			case <-stop:
				close(ingestDone)
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
compacting:
	for {
		res := runCLI(t, false, "blocks", "compact", "--storage", bucket, "--compacted-retention", retention, "--min-inputs", "2", "--lease-ttl", "10s")
		if res.code != 0 {
			t.Errorf("blocks compact beside serve: exit %d: %s", res.code, res.stderr)
			break
		}
		runs++
		jobs += max(0, strings.Count(strings.TrimSpace(res.stdout), "\n"))
		select {
		case <-ingestDone:
			break compacting
		case <-time.After(500 * time.Millisecond):
		}
	}
	// Keep asking through one more poll and retention period.
	time.Sleep(4 * time.Second)
	close(stop)
	wg.Wait()
	refreshes := "?"
	if resp, err := http.Get("http://" + c.http + "/metrics"); err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if m := regexp.MustCompile(`(?m)^tracectl_query_blocklist_refreshes_total (\S+)$`).FindSubmatch(body); m != nil {
			refreshes = string(m[1])
		}
	}
	t.Logf("%d compact runs, %d jobs; %d trace-by-ID queries, %d wrong; block list read again %s times for a deleted block", runs, jobs, asked.Load(), wrong.Load(), refreshes)
	if jobs == 0 {
		t.Fatalf("blocks compact merged nothing in %d runs: the test checks nothing\n%s", runs, c.log())
	}
	if w := wrong.Load(); w > 0 {
		t.Errorf("%d of %d queries did not answer an acknowledged trace whole; first: %v", w, asked.Load(), firstWrong.Load())
	}
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := c.wait(t, 30*time.Second); err != nil {
		t.Fatalf("SIGTERM: exit %v\n%s", err, c.log())
	}
	if res := runCLI(t, false, "blocks", "compact", "--storage", bucket, "--compacted-retention", "0s", "--min-inputs", "2"); res.code != 0 {
		t.Fatalf("final compact: exit %d: %s", res.code, res.stderr)
	}
	if res := runCLI(t, false, "blocks", "verify", "--storage", bucket); res.code != 0 {
		t.Errorf("blocks verify: exit %d: %s%s", res.code, res.stdout, res.stderr)
	}
	// Exactly once as stored: every trace in one block, its spans once.
	b, err := storage.Open(context.Background(), bucket)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	l, err := blocks.List(context.Background(), b, block.DefaultTenant, blocks.ListOptions{})
	if err != nil || len(l.Problems) > 0 {
		t.Fatalf("list: %v %v", err, l.Problems)
	}
	total := 0
	for _, bi := range l.Blocks {
		total += int(bi.Meta.TotalObjects)
	}
	if total != traces {
		t.Errorf("the bucket's %d blocks hold %d traces, want %d (each exactly once)", len(l.Blocks), total, traces)
	}
	for _, id := range acked {
		if res := runCLI(t, false, "get", id.Hex(), "--storage", bucket, "-o", "json"); res.code != 0 || strings.Count(res.stdout, `"spanId"`) != spansPer {
			t.Errorf("trace %s at the end: exit %d, %d spans; %s", id.Hex(), res.code, strings.Count(res.stdout, `"spanId"`), res.stderr)
		}
	}
}
