// Command compact measures block compaction: it writes (once, cached) a
// bucket of -spans synthetic spans in -blocks level-0 vParquet4 blocks of
// one time window, a -split share of the traces in two blocks (with a
// repeated span now and then, as retried exports make), then merges all
// blocks into one, -runs times, each in a fresh child process so that its
// peak RSS is the merge's own. It reports spans merged per CPU-second,
// peak RSS and bytes per span in and out (medians over the runs).
//
//	go run ./bench/compact                          # 10M spans in 4 blocks, 3 runs
//	go run ./bench/compact -spans 1000000 -runs 5
package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/tracectl/tracectl/bench/internal/benchkit"
	"github.com/tracectl/tracectl/internal/blocks"
	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/blocks/compact"
	"github.com/tracectl/tracectl/internal/blocks/vparquet4"
	"github.com/tracectl/tracectl/internal/storage"
)

type result struct {
	InputSpans, OutputSpans   int64
	InputTraces, OutputTraces int64
	CombinedTraces            int64
	InputBytes, OutputBytes   uint64
	CPUSeconds, WallSeconds   float64
	PeakRSSBytes              int64
	SpansPerCPUSecond         float64
}

func main() {
	var (
		spans         = flag.Int("spans", 10_000_000, "spans in the bucket")
		nblocks       = flag.Int("blocks", 4, "input blocks (all merged in one job)")
		spansPerTrace = flag.Int("spans-per-trace", 10, "spans per trace")
		split         = flag.Float64("split", 0.1, "share of traces with parts in two blocks")
		runs          = flag.Int("runs", 3, "merges to run (median reported)")
		dir           = flag.String("dir", filepath.Join(os.TempDir(), "tracectl-bench-compact"), "bucket directory (reused when it holds the same shape)")
		out           = flag.String("json", "", "write results as JSON to this file")
		mergeOnly     = flag.Bool("merge", false, "internal: merge the bucket's blocks once and print the result as JSON")
		cpuProfile    = flag.String("cpuprofile", "", "write a CPU profile of the (last) merge to this file")
	)
	flag.Parse()
	ctx := context.Background()
	shape := fmt.Sprintf("v2-%d-%d-%d-%g", *spans, *nblocks, *spansPerTrace, *split)
	bucketDir := filepath.Join(*dir, shape)
	if *mergeOnly {
		r, err := merge(ctx, bucketDir, *cpuProfile)
		check(err)
		check(json.NewEncoder(os.Stdout).Encode(r))
		return
	}
	if _, err := os.Stat(filepath.Join(bucketDir, "done")); err != nil {
		fmt.Printf("writing %d spans in %d blocks to %s ...\n", *spans, *nblocks, bucketDir)
		check(os.RemoveAll(bucketDir))
		check(write(ctx, bucketDir, *spans, *nblocks, *spansPerTrace, *split))
		check(os.WriteFile(filepath.Join(bucketDir, "done"), nil, 0o644))
	}
	var results []result
	for i := range *runs {
		cmd := exec.Command(os.Args[0], append(os.Args[1:], "-merge")...)
		cmd.Stderr = os.Stderr
		data, err := cmd.Output()
		check(err)
		var r result
		check(json.Unmarshal(data, &r))
		results = append(results, r)
		load, _ := os.ReadFile("/proc/loadavg")
		fmt.Printf("run %d: %d spans in (%d traces, %d combined) -> %d spans out; %.1f CPU-s, %.1f s wall: %.0f spans per CPU-second; peak RSS %d MiB; %.1f -> %.1f bytes per span; load %s\n",
			i+1, r.InputSpans, r.InputTraces, r.CombinedTraces, r.OutputSpans, r.CPUSeconds, r.WallSeconds, r.SpansPerCPUSecond,
			r.PeakRSSBytes>>20, float64(r.InputBytes)/float64(r.InputSpans), float64(r.OutputBytes)/float64(r.OutputSpans), strings.Fields(string(load))[0])
	}
	med := func(f func(result) float64) float64 {
		v := make([]float64, len(results))
		for i, r := range results {
			v[i] = f(r)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	summary := map[string]any{
		"spans": *spans, "blocks": *nblocks, "spansPerTrace": *spansPerTrace, "split": *split, "runs": results,
		"medianSpansPerCPUSecond": med(func(r result) float64 { return r.SpansPerCPUSecond }),
		"medianPeakRSSMiB":        med(func(r result) float64 { return float64(r.PeakRSSBytes) / (1 << 20) }),
		"bytesPerSpanIn":          float64(results[0].InputBytes) / float64(results[0].InputSpans),
		"bytesPerSpanOut":         float64(results[0].OutputBytes) / float64(results[0].OutputSpans),
		"goVersion":               runtime.Version(), "cpus": runtime.NumCPU(),
	}
	fmt.Printf("median: %.0f spans per CPU-second, peak RSS %.0f MiB, bytes per span %.1f in, %.1f out\n",
		summary["medianSpansPerCPUSecond"], summary["medianPeakRSSMiB"], summary["bytesPerSpanIn"], summary["bytesPerSpanOut"])
	if *out != "" {
		data, _ := json.MarshalIndent(summary, "", "  ")
		check(os.WriteFile(*out, data, 0o644))
	}
}

// merge merges every live block of the bucket into one, in a copy-free
// way: the output is written next to the inputs and removed afterwards.
func merge(ctx context.Context, dir, cpuProfile string) (result, error) {
	b, err := storage.Open(ctx, "file://"+dir)
	if err != nil {
		return result{}, err
	}
	defer b.Close()
	l, err := blocks.List(ctx, b, block.DefaultTenant, blocks.ListOptions{})
	if err != nil {
		return result{}, err
	}
	var metas []*block.Meta
	for _, bi := range l.Blocks {
		if bi.Meta.CompactionLevel == 0 {
			metas = append(metas, bi.Meta)
		}
	}
	runtime.GC()
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			return result{}, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return result{}, err
		}
	}
	cpu0, t0 := benchkit.CPUTime(), time.Now()
	m, st, err := compact.Merge(ctx, b, metas, compact.MergeOptions{})
	if cpuProfile != "" {
		pprof.StopCPUProfile()
	}
	if err != nil {
		return result{}, err
	}
	cpu, wall := benchkit.CPUTime()-cpu0, time.Since(t0)
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	// Remove the output so the next run merges the same inputs.
	objs, _ := b.ListAll(ctx, block.BlockPrefix(m.TenantID, m.BlockID), "")
	for _, o := range objs {
		if o.Key != block.MetaKey(m.TenantID, m.BlockID) {
			_ = b.Delete(ctx, o.Key)
		}
	}
	_ = b.Delete(ctx, block.MetaKey(m.TenantID, m.BlockID))
	return result{
		InputSpans: st.InputSpans, OutputSpans: st.OutputSpans, InputTraces: st.InputTraces, OutputTraces: st.OutputTraces,
		CombinedTraces: st.CombinedTraces, InputBytes: st.InputBytes, OutputBytes: st.OutputBytes,
		CPUSeconds: cpu.Seconds(), WallSeconds: wall.Seconds(), PeakRSSBytes: ru.Maxrss * 1024,
		SpansPerCPUSecond: float64(st.InputSpans) / cpu.Seconds(),
	}, nil
}

// write fills the bucket: traces spread over the blocks, a share of them
// split in two parts in two blocks (one span of such parts now and then
// sent in both, as a retried export does).
func write(ctx context.Context, dir string, spans, nblocks, perTrace int, split float64) error {
	b, err := storage.Open(ctx, "file://"+dir+"?create_dir=true")
	if err != nil {
		return err
	}
	defer b.Close()
	rng := rand.New(rand.NewPCG(3, 5))
	ntraces := spans / perTrace
	type piece struct {
		id          block.TraceID
		first, last int // span range of the trace
		dup         bool
	}
	perBlock := make([][]piece, nblocks)
	for range ntraces {
		id := benchkit.TraceID(rng)
		a := rng.IntN(nblocks)
		if rng.Float64() < split && nblocks > 1 {
			c := (a + 1 + rng.IntN(nblocks-1)) % nblocks
			cut := 1 + rng.IntN(perTrace-1)
			dup := rng.IntN(10) == 0
			perBlock[a] = append(perBlock[a], piece{id, 0, cut, false})
			perBlock[c] = append(perBlock[c], piece{id, cut, perTrace, dup})
		} else {
			perBlock[a] = append(perBlock[a], piece{id, 0, perTrace, false})
		}
	}
	base := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	for bi, ps := range perBlock {
		slices.SortFunc(ps, func(x, y piece) int { return x.id.Compare(y.id) })
		w, err := vparquet4.NewBlockWriter(ctx, b, vparquet4.WriterConfig{ExpectedTraces: len(ps)})
		if err != nil {
			return err
		}
		for _, p := range ps {
			// The same seed per trace: both parts come from one trace.
			tr := rand.New(rand.NewPCG(binary.BigEndian.Uint64(p.id[:8]), 1))
			// Both parts share the trace's start time, as real split traces do.
			start := base.Add(time.Duration(binary.BigEndian.Uint32(p.id[8:12])%3_600_000) * time.Millisecond)
			td := benchkit.TracePart(tr, p.id, perTrace, start, p.first, p.last, p.dup)
			if err := w.Add(p.id, td); err != nil {
				return err
			}
		}
		m, err := w.Close()
		if err != nil {
			return err
		}
		fmt.Printf("  block %d/%d: %s, %d traces, %.1f MiB\n", bi+1, nblocks, m.BlockID, m.TotalObjects, float64(m.Size)/(1<<20))
	}
	return nil
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "compact bench:", err)
		os.Exit(1)
	}
}
