package wal

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkAppend measures Append throughput for each sync policy, payload
// size and number of appending goroutines. The figures depend on the disk's
// fsync latency; to reproduce:
//
//	go test -run '^$' -bench BenchmarkAppend -count 5 ./internal/wal/
//
// and take the median of each line. MB/s counts payload bytes; appends/s is
// the aggregate rate; fsyncs/op and p50-ms show how the group shares fsyncs
// and what it costs in latency. A goroutine removes sealed segments as a
// server would, so long runs do not fill the disk.
func BenchmarkAppend(b *testing.B) {
	for _, policy := range policies {
		for _, size := range []int{1 << 10, 64 << 10} {
			for _, goroutines := range []int{1, 16} {
				name := fmt.Sprintf("%s/%dKiB/g%d", policy, size>>10, goroutines)
				b.Run(name, func(b *testing.B) { benchAppend(b, policy, size, goroutines) })
			}
		}
	}
}

func benchAppend(b *testing.B, policy SyncPolicy, size, goroutines int) {
	w, err := Open(b.TempDir(), Options{Sync: policy, MaxBytes: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	stop := make(chan struct{})
	var removerDone sync.WaitGroup
	removerDone.Go(func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				if open := w.Stats().OpenSegment; open > 1 {
					w.Remove(open - 1)
				}
			}
		}
	})
	defer func() { close(stop); removerDone.Wait() }()

	payload := payloadFor(1, size)
	b.SetBytes(int64(size))
	b.ResetTimer()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for range goroutines {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				if _, err := w.Append(context.Background(), "bench", payload); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	st := w.Stats()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
	b.ReportMetric(float64(st.Syncs)/float64(b.N), "fsyncs/op")
	b.ReportMetric(st.AppendLatency.Quantile(0.5)*1e3, "p50-ms")
}
