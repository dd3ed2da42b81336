package main

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tracectl/tracectl/internal/ingest"
	"github.com/tracectl/tracectl/internal/server"
	"github.com/tracectl/tracectl/internal/storage"
)

// BenchmarkServerIngest runs the server's OTLP gRPC path in process (receiver
// -> Server.Consume -> WAL -> head -> blocks in a file bucket) under the
// same load as the harness, for `go test -cpuprofile/-memprofile` and
// `go tool pprof`. The generator's own cost (a few percent) is in the
// profile too; use the harness (a separate, pinned process) for figures.
// One op is one Export of ~715 spans; the final flush is timed.
//
//	go test ./bench/ingest -run '^$' -bench ServerIngest -benchtime 40000x -cpu 1 -cpuprofile /tmp/cpu.out
//	BENCH_INGEST_HEAPPROFILE=/tmp/heap.out go test ./bench/ingest -run '^$' -bench ServerIngest -benchtime 40000x -cpu 1
func BenchmarkServerIngest(b *testing.B) {
	c := benchCorpus(b)
	dir := b.TempDir()
	ctx := context.Background()
	bucket, err := storage.Open(ctx, "file://"+dir+"/bucket")
	if err != nil {
		b.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	srv, err := server.New(server.Config{Bucket: bucket, WALDir: dir + "/wal", MaxBlockDuration: 30 * time.Second,
		IngestionRateBytes: -1, Registry: reg})
	if err != nil {
		b.Fatal(err)
	}
	srv.Start()
	rcv, err := ingest.NewOTLPGRPC(ingest.Config{Endpoint: "127.0.0.1:0"}, srv, nil, reg)
	if err != nil {
		b.Fatal(err)
	}
	if err := rcv.Start(ctx); err != nil {
		b.Fatal(err)
	}
	lg, err := newLoadGen(c, rcv.Addr().String(), 2, false)
	if err != nil {
		b.Fatal(err)
	}
	defer lg.close()

	stopHeap := heapProfiler(b, os.Getenv("BENCH_INGEST_HEAPPROFILE"))
	b.ResetTimer()
	start := selfCPU()
	lg.start = time.Now()
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []byte
			for {
				n := lg.next.Add(1) - 1
				if n >= uint64(b.N) {
					return
				}
				lg.send(lg.conns[w%2], &buf, n, time.Time{})
			}
		}()
	}
	wg.Wait()
	if err := rcv.Shutdown(ctx); err != nil {
		b.Fatal(err)
	}
	if err := srv.Shutdown(ctx); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	stopHeap()
	cpu := selfCPU() - start
	if f := lg.failedReqs.Load(); f > 0 {
		b.Fatalf("%d failed Exports: %v", f, lg.errorCounts())
	}
	spans := float64(lg.ackedSpans.Load())
	b.ReportMetric(spans/b.Elapsed().Seconds(), "spans/s")
	b.ReportMetric(spans/cpu, "spans/CPU-s(incl.client)")
}

func benchCorpus(b *testing.B) *corpusLoad {
	root, err := moduleRoot()
	if err != nil {
		b.Fatal(err)
	}
	dir, err := findFixtures("", root)
	if err != nil {
		b.Skip(err)
	}
	c, err := loadCorpus(dir + "/corpus/public.otlp.jsonl")
	if err != nil {
		b.Fatal(err)
	}
	if err := c.buildTemplates(700, 20, 1); err != nil {
		b.Fatal(err)
	}
	return c
}

// heapProfiler writes a heap profile to path each time the heap in use
// reaches a new high (checked every 250 ms), so the file holds the profile
// at the peak.
func heapProfiler(b *testing.B, path string) (stop func()) {
	if path == "" {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var peak uint64
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				fmt.Fprintf(os.Stderr, "heap profile at the peak (%d MB in use): %s\n", peak>>20, path)
				return
			case <-t.C:
			}
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak+peak/20 {
				peak = ms.HeapInuse
				f, err := os.Create(path)
				if err != nil {
					b.Error(err)
					return
				}
				_ = pprof.Lookup("heap").WriteTo(f, 0)
				f.Close()
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}
