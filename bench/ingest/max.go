package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

type serverState struct {
	FlushQueue float64 `json:"flush_queue_blocks"`
	WALBytes   float64 `json:"wal_bytes"`
	HeadBytes  float64 `json:"head_bytes"`
	Blocks     float64 `json:"blocks_written"`
}

type maxRun struct {
	Run               int      `json:"run"`
	ServerArgs        []string `json:"server_command"`
	ServerCPUsAllowed string   `json:"server_cpus_allowed"`
	ServerGOMAXPROCS  float64  `json:"server_gomaxprocs"`

	WindowS                float64 `json:"window_s"`
	WindowServerCPUS       float64 `json:"window_server_cpu_s"`
	WindowAcceptedSpans    float64 `json:"window_accepted_spans"`
	WindowClientAckedSpans int64   `json:"window_client_acked_spans"`
	SpansPerCPUSWindow     float64 `json:"spans_per_server_cpu_s_window"`
	ServerCPUShareWindow   float64 `json:"server_cpu_share_window"`
	ThroughputSpansPerS    float64 `json:"throughput_spans_per_s_window"`
	ThroughputMBPerS       float64 `json:"throughput_request_mb_per_s_window"`

	LifetimeCPUS          float64 `json:"lifetime_server_cpu_s"`
	TotalAcceptedSpans    float64 `json:"total_accepted_spans"`
	TotalClientAckedSpans int64   `json:"total_client_acked_spans"`
	StoredSpans           int64   `json:"stored_spans"`
	Blocks                int     `json:"blocks_stored"`
	SpansPerCPUSLifetime  float64 `json:"spans_per_server_cpu_s_end_to_end"`

	ClientFailedRequests int64          `json:"client_failed_requests"`
	ClientFailedSpans    int64          `json:"client_failed_spans"`
	PartialRejectedSpans int64          `json:"partial_rejected_spans"`
	ServerRefusedSpans   float64        `json:"server_refused_spans"`
	Dropped              int64          `json:"dropped_spans"`
	ClientErrors         map[string]int `json:"client_errors,omitempty"`
	CountsConsistent     bool           `json:"counts_consistent"`

	Latency       latencySummary `json:"ack_latency_window"`
	ServerLatency serverLatency  `json:"server_histograms"`

	Calibration   calibration        `json:"calibration_before"`
	LoadAvgStart  [3]float64         `json:"loadavg_start"`
	LoadAvgEnd    [3]float64         `json:"loadavg_end"`
	LoadAvg1Max   float64            `json:"loadavg1_max"`
	CPUBusyWindow map[string]float64 `json:"cpu_busy_window"`
	GeneratorCPUS float64            `json:"generator_cpu_s_window"`
	EndOfWindow   serverState        `json:"server_state_end_of_window"`
	PeakRSSBytes  int64              `json:"peak_rss_bytes"`
	PerfReport    string             `json:"perf_report,omitempty"`
	Warnings      []string           `json:"server_warnings,omitempty"`
}

type maxMedian struct {
	SpansPerCPUSEndToEnd float64 `json:"spans_per_server_cpu_s_end_to_end"`
	SpansPerCPUSWindow   float64 `json:"spans_per_server_cpu_s_window"`
	ThroughputSpansPerS  float64 `json:"throughput_spans_per_s"`
	P50ms                float64 `json:"ack_p50_ms"`
	P99ms                float64 `json:"ack_p99_ms"`
	DroppedTotal         int64   `json:"dropped_spans_all_runs"`
	PeakRSSBytes         int64   `json:"peak_rss_bytes_max"`
	LoadAvg1Max          float64 `json:"loadavg1_max"`
}

func selfCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func serverArgs(o *options) []string {
	return append([]string{"--max-block-duration", o.MaxBlockDuration.String()}, o.ServerArgs...)
}

func runMax(ctx context.Context, o *options, c *corpusLoad, res *result) error {
	taskset := res.Env.Taskset
	for i := 1; i <= o.Runs; i++ {
		r, err := maxOnce(ctx, o, c, taskset, i, filepath.Dir(o.Out))
		if err != nil {
			return fmt.Errorf("run %d: %w", i, err)
		}
		res.Runs = append(res.Runs, r)
		logf("run %d: %.0f spans/server-CPU-s end to end (%.0f in the window), %.0f spans/s, server CPU share %.2f, p50 %.1f ms p99 %.1f ms, dropped %d, load %.2f",
			i, r.SpansPerCPUSLifetime, r.SpansPerCPUSWindow, r.ThroughputSpansPerS, r.ServerCPUShareWindow, r.Latency.P50ms, r.Latency.P99ms, r.Dropped, r.LoadAvg1Max)
	}
	var e2e, win, thr, p50, p99 []float64
	m := &maxMedian{}
	for _, r := range res.Runs {
		e2e = append(e2e, r.SpansPerCPUSLifetime)
		win = append(win, r.SpansPerCPUSWindow)
		thr = append(thr, r.ThroughputSpansPerS)
		p50 = append(p50, r.Latency.P50ms)
		p99 = append(p99, r.Latency.P99ms)
		m.DroppedTotal += r.Dropped
		m.PeakRSSBytes = max(m.PeakRSSBytes, r.PeakRSSBytes)
		m.LoadAvg1Max = max(m.LoadAvg1Max, r.LoadAvg1Max)
	}
	m.SpansPerCPUSEndToEnd, m.SpansPerCPUSWindow = round(median(e2e), 0), round(median(win), 0)
	m.ThroughputSpansPerS, m.P50ms, m.P99ms = round(median(thr), 0), round(median(p50), 3), round(median(p99), 3)
	res.Median = m
	consistent := true
	for _, r := range res.Runs {
		consistent = consistent && r.CountsConsistent
	}
	res.Targets = append(res.Targets,
		target{Name: "throughput per server CPU-second", Goal: fmt.Sprintf(">= %.0f spans/CPU-s (median of %d runs, end to end)", o.Target, len(res.Runs)),
			Value:  fmt.Sprintf("%.0f spans/CPU-s end to end; %.0f in the measured window", m.SpansPerCPUSEndToEnd, m.SpansPerCPUSWindow),
			Status: passMiss(m.SpansPerCPUSEndToEnd >= o.Target),
			Note:   "end to end = all accepted spans / the server's whole CPU time (rusage) including the shutdown flush that stores them; window = accepted spans / utime+stime during the window"},
		target{Name: "no dropped spans", Goal: "0 refused, failed or partially rejected spans, every accepted span stored",
			Value:  fmt.Sprintf("%d dropped; counts consistent (client acks = accepted metric = stored in blocks): %v", m.DroppedTotal, consistent),
			Status: passMiss(m.DroppedTotal == 0 && consistent)},
	)
	return nil
}

func maxOnce(ctx context.Context, o *options, c *corpusLoad, taskset string, run int, outDir string) (*maxRun, error) {
	dir, err := os.MkdirTemp("", "bench-ingest-run-")
	if err != nil {
		return nil, err
	}
	r := &maxRun{Run: run, LoadAvgStart: loadAvg()}
	if c, err := calibrate(o.ServerCPU, taskset); err == nil {
		r.Calibration = c
	} else {
		logf("%v", err)
	}
	srv, err := startServer(o.Tracectl, dir, o.ServerCPU, taskset, serverArgs(o))
	if err != nil {
		return nil, err // dir kept: it holds server.log
	}
	ok := false
	defer func() {
		if !ok {
			srv.kill()
			logf("run directory kept: %s", dir)
		} else if !o.Keep {
			os.RemoveAll(dir)
		}
	}()
	r.ServerArgs = srv.args
	if st, err := procStatus(srv.pid); err == nil {
		r.ServerCPUsAllowed = st["Cpus_allowed_list"]
		if name := st["Name"]; name != "tracectl" {
			return nil, fmt.Errorf("pid %d is %q, not tracectl", srv.pid, name)
		}
	}
	logf("run %d: server pid %d (CPUs %s), OTLP gRPC %s, HTTP %s; %d concurrent Exports over %d connections, warmup %s, window %s",
		run, srv.pid, r.ServerCPUsAllowed, srv.grpcAddr, srv.httpAddr, o.Concurrency, o.Conns, o.Warmup, o.Duration)

	lg, err := newLoadGen(c, srv.grpcAddr, o.Conns, o.Gzip)
	if err != nil {
		return nil, err
	}
	defer lg.close()
	lg.runClosed(o.Concurrency)
	loadMax := func() { r.LoadAvg1Max = max(r.LoadAvg1Max, loadAvg()[0]) }
	for t := time.Duration(0); t < o.Warmup; t += time.Second {
		if err := sleepCtx(ctx, min(time.Second, o.Warmup-t)); err != nil {
			lg.stop()
			return nil, err
		}
		loadMax()
	}

	m0, err := scrape(ctx, srv.httpAddr)
	if err != nil {
		lg.stop()
		return nil, err
	}
	r.ServerGOMAXPROCS = m0["go_sched_gomaxprocs_threads"]
	cpu0, err := procCPU(srv.pid)
	if err != nil {
		lg.stop()
		return nil, err
	}
	t0, ct0, gen0 := time.Now(), cpuTimes(), selfCPU()
	acked0, bytes0 := lg.ackedSpans.Load(), lg.sentBytes.Load()
	from := time.Since(lg.start)

	var perf *exec.Cmd
	var perfData string
	if o.Perf {
		perfData = strings.TrimSuffix(o.Out, ".json") + fmt.Sprintf("-run%d.perf.data", run)
		perf = exec.Command("perf", "record", "-F", "999", "-g", "-p", fmt.Sprint(srv.pid), "-o", perfData, "--", "sleep", fmt.Sprint(o.Duration.Seconds()))
		perf.Stdout, perf.Stderr = nil, nil
		if err := perf.Start(); err != nil {
			logf("perf record: %v (continuing without a profile)", err)
			perf = nil
		}
	}

	deadline := t0.Add(o.Duration)
	for time.Now().Before(deadline) {
		if err := sleepCtx(ctx, min(time.Second, time.Until(deadline))); err != nil {
			lg.stop()
			return nil, err
		}
		loadMax()
	}
	m1, err := scrape(ctx, srv.httpAddr)
	if err != nil {
		lg.stop()
		return nil, err
	}
	cpu1, err := procCPU(srv.pid)
	if err != nil {
		lg.stop()
		return nil, err
	}
	t1, ct1, gen1 := time.Now(), cpuTimes(), selfCPU()
	acked1, bytes1 := lg.ackedSpans.Load(), lg.sentBytes.Load()
	to := time.Since(lg.start)
	lg.stop()
	if perf != nil {
		_ = perf.Wait()
		r.PerfReport = perfReport(perfData)
	}

	wall := t1.Sub(t0).Seconds()
	r.WindowS = round(wall, 3)
	r.WindowServerCPUS = round(cpu1-cpu0, 3)
	r.WindowAcceptedSpans = m1["tracectl_receiver_accepted_spans_total"] - m0["tracectl_receiver_accepted_spans_total"]
	r.WindowClientAckedSpans = acked1 - acked0
	if r.WindowServerCPUS > 0 {
		r.SpansPerCPUSWindow = round(r.WindowAcceptedSpans/r.WindowServerCPUS, 0)
	}
	r.ServerCPUShareWindow = round(r.WindowServerCPUS/wall, 3)
	r.ThroughputSpansPerS = round(r.WindowAcceptedSpans/wall, 0)
	r.ThroughputMBPerS = round(float64(bytes1-bytes0)/wall/1e6, 2)
	r.CPUBusyWindow = cpuBusy(ct0, ct1)
	r.GeneratorCPUS = round(gen1-gen0, 3)
	r.EndOfWindow = serverState{FlushQueue: m1["tracectl_flush_queue_blocks"], WALBytes: m1["tracectl_wal_bytes"],
		HeadBytes: m1["tracectl_head_bytes"], Blocks: m1["tracectl_blocks_written_total"]}
	r.Latency = ackLatency(lg.snapshotAcks(), from, to, false)

	mEnd, err := scrape(ctx, srv.httpAddr)
	if err != nil {
		return nil, err
	}
	r.TotalAcceptedSpans = mEnd["tracectl_receiver_accepted_spans_total"]
	r.ServerLatency = serverLatencies(mEnd)
	r.TotalClientAckedSpans = lg.ackedSpans.Load()
	r.ServerRefusedSpans = serverRefused(mEnd)
	if st, err := procStatus(srv.pid); err == nil {
		r.PeakRSSBytes = kbField(st, "VmHWM")
	}
	life, err := srv.stop(2 * time.Minute)
	if err != nil {
		return nil, err
	}
	r.LifetimeCPUS = round(life, 3)
	for _, b := range srv.blockEvents() {
		r.StoredSpans += b.Spans
		r.Blocks++
	}
	r.Warnings = srv.warningLines()
	if life > 0 {
		r.SpansPerCPUSLifetime = round(r.TotalAcceptedSpans/life, 0)
	}
	r.ClientFailedRequests, r.ClientFailedSpans = lg.failedReqs.Load(), lg.failedSpans.Load()
	r.PartialRejectedSpans = lg.rejectedSpans.Load()
	r.ClientErrors = lg.errorCounts()
	r.Dropped = dropped(r.ClientFailedSpans, r.PartialRejectedSpans, r.ServerRefusedSpans)
	r.CountsConsistent = int64(r.TotalAcceptedSpans) == r.TotalClientAckedSpans && r.StoredSpans == r.TotalClientAckedSpans
	r.LoadAvgEnd = loadAvg()
	ok = true
	return r, nil
}

// perfReport writes perf's flat (self) and cumulative (children) reports of
// data beside it, plus a breakdown by component, and returns the
// breakdown's path.
func perfReport(data string) string {
	base := strings.TrimSuffix(data, ".data")
	flat, cum, comp := base+".self.txt", base+".children.txt", base+".components.txt"
	for _, rep := range []struct {
		out  string
		args []string
	}{
		{flat, []string{"report", "-i", data, "--stdio", "--no-children", "--sort", "symbol", "--percent-limit", "0.25", "-g", "none"}},
		{cum, []string{"report", "-i", data, "--stdio", "--children", "--sort", "symbol", "--percent-limit", "1", "-g", "none"}},
	} {
		out, err := exec.Command("perf", rep.args...).Output()
		if err != nil {
			logf("perf report: %v", err)
			continue
		}
		out = tidyPerf(out)
		_ = os.WriteFile(rep.out, out, 0o644)
	}
	script, err := exec.Command("perf", "script", "-i", data, "-F", "ip,sym").Output()
	if err != nil {
		logf("perf script: %v", err)
		return flat
	}
	_ = os.WriteFile(comp, []byte(perfBreakdown(script)), 0o644)
	return comp
}

type perfRule struct {
	name  string
	match []string
	subs  []perfRule
}

// perfRules assign a sample to the first component whose pattern is in its
// stack (and within it, to the first matching part).
var perfRules = []perfRule{
	{name: "flush loop: Server.writeSnapshot (block writing)", match: []string{"server.(*Server).writeSnapshot"}, subs: []perfRule{
		{name: "parquet-go GenericWriter.Write (rows -> column buffers)", match: []string{"parquet-go.(*GenericWriter["}},
		{name: "row group flush / block close (pages, stats, compression, write)", match: []string{"BlockWriter).cutRowGroup", "parquet-go.(*Writer).Flush", "parquet-go.(*Writer).Close", "BlockWriter).Close"}},
		{name: "vparquet4 assembler (pdata -> vParquet4 rows)", match: []string{"vparquet4.(*assembler)", "vparquet4.appendAttr", "vparquet4.appendMapKey", "vparquet4.appendValueKey", "vparquet4.estimateSize"}},
		{name: "mergePieces", match: []string{"server.mergePieces"}},
	}},
	{name: "gRPC Export handler (OTLPGRPCReceiver.handle)", match: []string{"OTLPGRPCReceiver).handle"}, subs: []perfRule{
		{name: "decode: ptraceotlp.ExportRequest.UnmarshalProto", match: []string{"ExportRequest.UnmarshalProto"}},
		{name: "head.add -> vparquet4.GroupByTrace: Resource copied per trace", match: []string{"CopyResource"}},
		{name: "head.add -> vparquet4.GroupByTrace: CopySpan", match: []string{"CopySpan"}},
		{name: "head.add -> vparquet4.GroupByTrace: other (maps, appends, sort)", match: []string{"vparquet4.GroupByTrace"}},
		{name: "head.add: other (TracesSize, map inserts)", match: []string{"server.(*head).add"}},
		{name: "Consume: ExportRequest.MarshalProto (WAL payload)", match: []string{"ExportRequest.MarshalProto"}},
		{name: "Consume: wal.Append", match: []string{"wal.(*WAL).Append"}},
		{name: "ingest.dropInvalidSpans", match: []string{"ingest.dropInvalidSpans"}},
	}},
	{name: "GC background mark workers", match: []string{"runtime.gcBgMarkWorker"}},
	{name: "WAL goroutines (write + fsync)", match: []string{"wal.(*WAL)"}},
	{name: "gRPC transport (outside the handler)", match: []string{"grpc/internal/transport", "google.golang.org/grpc.", "golang.org/x/net/http2"}},
	{name: "/metrics", match: []string{"promhttp", "client_golang"}},
	{name: "GC sweep / scavenge", match: []string{"runtime.bgsweep", "runtime.bgscavenge", "runtime.sweepone"}},
	{name: "other runtime (scheduler, stop-the-world, ...)", match: []string{"runtime."}},
}

func stackHas(st []string, subs ...string) bool {
	for _, f := range st {
		for _, s := range subs {
			if strings.Contains(f, s) {
				return true
			}
		}
	}
	return false
}

func firstRule(st []string, rules []perfRule) int {
	for i, r := range rules {
		if stackHas(st, r.match...) {
			return i
		}
	}
	return len(rules)
}

// perfBreakdown assigns every sample of `perf script -F ip,sym` output to
// one component and adds cross-cutting inclusive figures.
func perfBreakdown(script []byte) string {
	var stacks [][]string
	var cur []string
	for _, line := range strings.Split(string(script), "\n") {
		t := strings.TrimSpace(line)
		if t == "" {
			if cur != nil {
				stacks = append(stacks, cur)
				cur = nil
			}
			continue
		}
		if _, sym, ok := strings.Cut(t, " "); ok {
			cur = append(cur, sym)
		}
	}
	if cur != nil {
		stacks = append(stacks, cur)
	}
	if len(stacks) == 0 {
		return "no samples\n"
	}
	counts := make([]int, len(perfRules)+1)
	subCounts := make([][]int, len(perfRules))
	for i, r := range perfRules {
		subCounts[i] = make([]int, len(r.subs)+1)
	}
	for _, st := range stacks {
		k := firstRule(st, perfRules)
		counts[k]++
		if k < len(perfRules) && len(perfRules[k].subs) > 0 {
			subCounts[k][firstRule(st, perfRules[k].subs)]++
		}
	}
	pct := func(c int) float64 { return 100 * float64(c) / float64(len(stacks)) }
	var b strings.Builder
	fmt.Fprintf(&b, "server CPU by component: %d perf samples, each assigned to the first matching component of its stack\n", len(stacks))
	for i, r := range perfRules {
		fmt.Fprintf(&b, "%6.2f%%  %s\n", pct(counts[i]), r.name)
		for j, s := range r.subs {
			fmt.Fprintf(&b, "          %6.2f%%  %s\n", pct(subCounts[i][j]), s.name)
		}
		if len(r.subs) > 0 {
			fmt.Fprintf(&b, "          %6.2f%%  other\n", pct(subCounts[i][len(r.subs)]))
		}
	}
	fmt.Fprintf(&b, "%6.2f%%  other (kernel only, unknown)\n", pct(counts[len(perfRules)]))
	count := func(subs ...string) float64 {
		c := 0
		for _, st := range stacks {
			if stackHas(st, subs...) {
				c++
			}
		}
		return pct(c)
	}
	fmt.Fprintf(&b, "\ncross-cutting (inclusive, any component):\n")
	fmt.Fprintf(&b, "%6.2f%%  runtime.mallocgc (allocation, incl. GC assists)\n", count("runtime.mallocgc"))
	fmt.Fprintf(&b, "%6.2f%%  GC: background mark + assists + write barriers + sweep\n",
		count("runtime.gcBgMarkWorker", "runtime.gcAssistAlloc", "runtime.wbBufFlush", "gcWriteBarrier", "runtime.sweepone", "runtime.bgsweep"))
	fmt.Fprintf(&b, "%6.2f%%  pdata deep copies (pdata/internal.Copy*)\n", count("pdata/internal.Copy"))
	fmt.Fprintf(&b, "%6.2f%%  page faults (kernel)\n", count("asm_exc_page_fault"))
	fmt.Fprintf(&b, "%6.2f%%  system calls (kernel)\n", count("entry_SYSCALL_64"))
	return b.String()
}

// tidyPerf drops perf's padding and empty IPC columns.
func tidyPerf(b []byte) []byte {
	var out strings.Builder
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "# ....") {
			continue
		}
		line = strings.TrimRight(line, " ")
		line = strings.TrimSuffix(line, "-      -")
		line = strings.TrimRight(line, " ")
		for strings.Contains(line, "    ") {
			line = strings.ReplaceAll(line, "    ", "  ")
		}
		out.WriteString(line)
		out.WriteByte('\n')
	}
	return []byte(out.String())
}
