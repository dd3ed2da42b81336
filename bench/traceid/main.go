// Command traceid measures trace-by-ID on a large local bucket: it writes
// (once, cached) a bucket of -spans synthetic spans in -blocks vParquet4
// blocks with tracectl's writer, then looks up random stored and absent
// trace IDs through the same path `tracectl get` uses (time pruning, bloom
// shard, parquet), warm, and reports latency percentiles, object reads per
// lookup, and the same with -latency added before every object read.
//
//	go run ./bench/traceid                      # 10M spans, 20 blocks, in $TMPDIR/tracectl-bench-traceid
//	go run ./bench/traceid -spans 1000000 -blocks 20 -lookups 500
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"time"

	"github.com/tracectl/tracectl/bench/internal/benchkit"
	"github.com/tracectl/tracectl/internal/blocks"
	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/blocks/vparquet4"
	"github.com/tracectl/tracectl/internal/storage"
)

func main() {
	var (
		spans         = flag.Int("spans", 10_000_000, "spans in the bucket")
		nblocks       = flag.Int("blocks", 20, "blocks in the bucket")
		spansPerTrace = flag.Int("spans-per-trace", 10, "spans per trace")
		dir           = flag.String("dir", filepath.Join(os.TempDir(), "tracectl-bench-traceid"), "bucket directory (reused when it holds the same shape)")
		lookups       = flag.Int("lookups", 2000, "lookups per measurement")
		latency       = flag.Duration("latency", 50*time.Millisecond, "latency added before every object read in the second measurement")
		latLookups    = flag.Int("latency-lookups", 200, "lookups in the latency measurement")
		out           = flag.String("json", "", "write results as JSON to this file")
		rowGroupBytes = flag.Int("row-group-bytes", 0, "writer row-group budget (0: the writer's default)")
	)
	flag.Parse()
	ctx := context.Background()
	shape := fmt.Sprintf("%d-%d-%d-rg%d", *spans, *nblocks, *spansPerTrace, *rowGroupBytes)
	bucketDir := filepath.Join(*dir, shape)
	b, err := storage.Open(ctx, "file://"+bucketDir)
	check(err)
	defer b.Close()

	res := map[string]any{"rowGroupBytes": *rowGroupBytes, "spans": *spans, "blocks": *nblocks, "spansPerTrace": *spansPerTrace, "goVersion": runtime.Version(), "cpus": runtime.NumCPU()}
	idsFile := filepath.Join(bucketDir, "ids.bin")
	ids := readIDs(idsFile)
	if ids == nil {
		fmt.Printf("writing %d spans in %d blocks to %s ...\n", *spans, *nblocks, bucketDir)
		var st writeStats
		ids, st = write(ctx, b, *spans, *nblocks, *spansPerTrace, *rowGroupBytes)
		writeIDs(idsFile, ids)
		fmt.Printf("wrote %d spans in %s wall, %.1f CPU-s: %.0f spans per CPU-second, %.1f bytes per span\n",
			st.spans, st.wall.Round(time.Millisecond), st.cpu.Seconds(), float64(st.spans)/st.cpu.Seconds(), float64(st.bytes)/float64(st.spans))
		res["writeSpansPerCPUSecond"] = float64(st.spans) / st.cpu.Seconds()
		res["bytesPerSpan"] = float64(st.bytes) / float64(st.spans)
	} else {
		fmt.Printf("reusing %s (%d sampled trace IDs)\n", bucketDir, len(ids))
	}

	l, err := blocks.List(ctx, b, block.DefaultTenant, blocks.ListOptions{})
	check(err)
	metas := make([]*block.Meta, len(l.Blocks))
	var total uint64
	for i, bi := range l.Blocks {
		metas[i] = bi.Meta
		total += bi.Meta.Size
	}
	fmt.Printf("bucket: %d blocks, %.1f MiB\n", len(metas), float64(total)/(1<<20))
	res["bucketBytes"] = total

	rng := rand.New(rand.NewPCG(1, 2))
	pick := func() (block.TraceID, bool) {
		if rng.IntN(10) == 0 { // one lookup in ten is for an absent trace
			return benchkit.TraceID(rng), false
		}
		return ids[rng.IntN(len(ids))], true
	}
	cache := blocks.NewBloomCache(256 << 20)
	measure := func(name string, n int) map[string]any {
		var lat []time.Duration
		var reads []int64
		for range n {
			id, present := pick()
			before := b.Requests()
			t0 := time.Now()
			r, err := blocks.FindTrace(ctx, b, metas, id, blocks.FindOptions{Blooms: cache})
			lat = append(lat, time.Since(t0))
			check(err)
			if r.Found != present {
				fmt.Fprintf(os.Stderr, "trace %s: found=%v, expected %v\n", id.Hex(), r.Found, present)
				os.Exit(1)
			}
			if present && r.Trace.SpanCount() != *spansPerTrace {
				fmt.Fprintf(os.Stderr, "trace %s: %d spans, want %d\n", id.Hex(), r.Trace.SpanCount(), *spansPerTrace)
				os.Exit(1)
			}
			reads = append(reads, b.Requests()-before)
		}
		slices.Sort(lat)
		slices.Sort(reads)
		var sum int64
		for _, r := range reads {
			sum += r
		}
		m := map[string]any{
			"lookups": n, "p50ms": benchkit.Ms(lat[n/2]), "p99ms": benchkit.Ms(lat[n*99/100]), "maxms": benchkit.Ms(lat[n-1]),
			"readsMean": float64(sum) / float64(n), "readsP50": reads[n/2], "readsMax": reads[n-1],
		}
		fmt.Printf("%-22s p50 %7.2f ms  p99 %7.2f ms  max %7.2f ms  object reads/lookup: mean %.1f, p50 %d, max %d\n",
			name, m["p50ms"], m["p99ms"], m["maxms"], m["readsMean"], m["readsP50"], m["readsMax"])
		return m
	}
	measure("warm-up", min(*lookups, 200))
	res["warm"] = measure("warm", *lookups)
	b.SetHook(func(ctx context.Context, op, key string) error {
		time.Sleep(*latency)
		return nil
	})
	res["latency"] = latency.String()
	res["withLatency"] = measure(fmt.Sprintf("warm +%s/read", *latency), *latLookups)
	if *out != "" {
		data, _ := json.MarshalIndent(res, "", "  ")
		check(os.WriteFile(*out, data, 0o644))
	}
}

type writeStats struct {
	spans, bytes int64
	wall, cpu    time.Duration
}

// write fills the bucket and returns a sample of the stored trace IDs.
func write(ctx context.Context, b *storage.Bucket, spans, nblocks, perTrace, rowGroupBytes int) ([]block.TraceID, writeStats) {
	rng := rand.New(rand.NewPCG(7, 11))
	tracesPerBlock := spans / perTrace / nblocks
	var st writeStats
	var sample []block.TraceID
	cpu0 := benchkit.CPUTime()
	t0 := time.Now()
	base := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	for bi := range nblocks {
		ids := make([]block.TraceID, tracesPerBlock)
		for i := range ids {
			ids[i] = benchkit.TraceID(rng)
		}
		slices.SortFunc(ids, func(a, b block.TraceID) int { return a.Compare(b) })
		w, err := vparquet4.NewBlockWriter(ctx, b, vparquet4.WriterConfig{ExpectedTraces: len(ids), RowGroupBytes: rowGroupBytes})
		check(err)
		blockStart := base.Add(time.Duration(bi) * time.Hour)
		for i, id := range ids {
			check(w.Add(id, benchkit.Trace(rng, id, perTrace, blockStart.Add(time.Duration(i)*time.Millisecond))))
			if i%(tracesPerBlock/50+1) == 0 {
				sample = append(sample, id)
			}
		}
		meta, err := w.Close()
		check(err)
		st.bytes += int64(meta.Size)
		st.spans += int64(len(ids) * perTrace)
		fmt.Printf("  block %d/%d: %s, %d traces, %.1f MiB\n", bi+1, nblocks, meta.BlockID, meta.TotalObjects, float64(meta.Size)/(1<<20))
	}
	st.wall = time.Since(t0)
	st.cpu = benchkit.CPUTime() - cpu0
	return sample, st
}

func readIDs(path string) []block.TraceID {
	data, err := os.ReadFile(path)
	if err != nil || len(data)%16 != 0 || len(data) == 0 {
		return nil
	}
	ids := make([]block.TraceID, len(data)/16)
	for i := range ids {
		copy(ids[i][:], data[i*16:])
	}
	return ids
}

func writeIDs(path string, ids []block.TraceID) {
	data := make([]byte, 0, 16*len(ids))
	for _, id := range ids {
		data = append(data, id[:]...)
	}
	check(os.WriteFile(path, data, 0o644))
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "traceid:", err)
		os.Exit(1)
	}
}
