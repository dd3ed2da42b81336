package main

import (
	"fmt"
	"strings"
)

// summary renders the human summary.
func (r *result) summary() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	o := r.Options
	p("tracectl ingest benchmark, mode %s (%s .. %s UTC)", r.Mode, r.StartedAt.Format("2006-01-02 15:04:05"), r.FinishedAt.Format("15:04:05"))
	p("tracectl: %s build of %s%s; %s, %d CPUs (%s), kernel %s", r.Env.Src, short(r.Env.GitHead), dirty(r.Env.GitDirty), r.Env.GoVersion, r.Env.NumCPU, r.Env.CPUModel, r.Env.Kernel)
	if r.Env.Pinned {
		p("pinning: server taskset -c %d, generator taskset -c %d (generator CPUs %s, GOMAXPROCS %d)", o.ServerCPU, o.ClientCPU, r.Env.GeneratorAffinity, r.Env.GeneratorGOMAXPROC)
	} else {
		p("pinning: NONE - %s", r.Env.PinNote)
	}
	p("load: public corpus (%d lines, %d spans/pass) replayed with fresh IDs, timestamps shifted to now; %d request templates, %d..%d spans (mean %.0f, %.0f B/span protobuf) per Export; %d concurrent Exports over %d gRPC connections, gzip %v",
		r.Corpus.Lines, r.Corpus.SpansPerPass, r.Corpus.Templates, r.Corpus.BatchSpansMin, r.Corpus.BatchSpansMax, r.Corpus.BatchSpansMean, r.Corpus.BytesPerSpan, o.Concurrency, o.Conns, o.Gzip)
	p("server flags: --ingestion-rate-bytes -1 --max-block-duration %s %s (other settings default)", o.MaxBlockDuration, strings.Join(o.ServerArgs, " "))
	p("load average at start %.2f %.2f %.2f, at end %.2f %.2f %.2f", r.Env.LoadAvgStart[0], r.Env.LoadAvgStart[1], r.Env.LoadAvgStart[2], r.LoadAvgEnd[0], r.LoadAvgEnd[1], r.LoadAvgEnd[2])
	p("")
	if len(r.Runs) > 0 {
		p("%-4s %12s %12s %10s %8s %9s %9s %8s %8s %7s %8s %7s %s", "run", "e2e sp/CPUs", "win sp/CPUs", "spans/s", "srv CPU", "p50 ms", "p99 ms", "dropped", "peakRSS", "load1", "blocks", "calib s", "cpu busy (window)")
		for _, x := range r.Runs {
			p("%-4d %12.0f %12.0f %10.0f %8.2f %9.2f %9.2f %8d %7.0fM %7.2f %8d %7.3f %v", x.Run, x.SpansPerCPUSLifetime, x.SpansPerCPUSWindow, x.ThroughputSpansPerS,
				x.ServerCPUShareWindow, x.Latency.P50ms, x.Latency.P99ms, x.Dropped, mb(float64(x.PeakRSSBytes)), x.LoadAvg1Max, x.Blocks, x.Calibration.CPUS, x.CPUBusyWindow)
		}
		p("  (calib s = CPU time of a fixed sort+hash workload on the server's CPU just before the run: a machine-speed check)")
		m := r.Median
		p("median: %.0f spans per server CPU-second end to end (%.0f in the %s window), %.0f spans/s, ack p50 %.2f ms, p99 %.2f ms (at saturation, %d in flight); dropped %d; max load1 %.2f",
			m.SpansPerCPUSEndToEnd, m.SpansPerCPUSWindow, o.Duration, m.ThroughputSpansPerS, m.P50ms, m.P99ms, o.Concurrency, m.DroppedTotal, m.LoadAvg1Max)
		p("  (e2e = accepted spans / whole-process CPU incl. the shutdown flush that stores them; srv CPU = server CPU-s per wall-s in the window)")
		for _, x := range r.Runs {
			p("run %d server histograms: %s", x.Run, x.ServerLatency)
			if len(x.ClientErrors) > 0 {
				p("run %d client errors: %v", x.Run, x.ClientErrors)
			}
			if x.PerfReport != "" {
				p("run %d perf report: %s", x.Run, x.PerfReport)
			}
		}
	}
	if s := r.Sustained; s != nil {
		p("sustained %.0f spans/s for %.0f s: acked %.0f spans/s; server CPU %.2f of a core (%.0f spans/CPU-s); CPU busy %v", s.TargetRate, s.LoadS, s.AchievedRate, s.ServerCPUShare, s.SpansPerCPUS, s.CPUBusy)
		p("calibration before the run (fixed workload on the server's CPU): %.3f CPU-s", s.Calibration.CPUS)
		p("memory: peak RSS %.1f MB (VmHWM); RSS slope over the second half %.2f MB/min (Go heap in use %.2f MB/min); max RSS first half %.1f MB, second half %.1f MB",
			mb(float64(s.PeakRSSBytes)), s.RSSSlopeMBPerMin, s.HeapSlopeMBPerMin, mb(float64(s.RSSMaxFirstHalf)), mb(float64(s.RSSMaxSecondHalf)))
		p("flush: %d blocks, one every %.1f s (%.0f spans each); max flush lag %.1f s (limit %.0f s); max WAL %.1f MB, max head %.1f MB, max flush queue %.0f",
			s.Blocks, s.MeanBlockInterval, s.MeanSpansPerBlock, s.MaxFlushLagS, s.FlushLagLimitS, mb(s.MaxWALBytes), mb(s.MaxHeadBytes), s.MaxFlushQueue)
		p("ack latency: p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, p99.9 %.2f ms, max %.2f ms over %d Exports (schedule latency p99 %.2f ms, dispatch behind at most %.3f s)",
			s.Latency.P50ms, s.Latency.P90ms, s.Latency.P99ms, s.Latency.P999ms, s.Latency.Maxms, s.Latency.Requests, s.SchedLatency.P99ms, s.MaxBehindS)
		p("server histograms: %s", s.ServerLatency)
		var qm map[int]queryMinute
		if s.Queries != nil {
			qm = map[int]queryMinute{}
			for _, m := range s.Queries.PerMinute {
				qm[m.Minute] = m
			}
		}
		p("per minute: %-4s %8s %8s %9s %8s %8s %8s %9s %8s %6s %6s %5s %5s %7s %7s %8s", "min", "maxRSS", "meanRSS", "maxHeap", "maxHead", "maxWAL", "caches", "spans/s", "srvCPU", "load1",
			"gorout", "fds", "thr", "queries", "q.errs", "q.p99ms")
		for _, m := range s.PerMinute {
			q := qm[m.Minute]
			p("            %-4d %7.0fM %7.0fM %8.0fM %7.0fM %7.0fM %7.0fM %9.0f %8.2f %6.2f %6.0f %5.0f %5.0f %7d %7d %8.1f", m.Minute, m.MaxRSSMB, m.MeanRSSMB, m.MaxHeapMB, m.MaxHeadMB, m.MaxWALMB, m.MaxCacheMB,
				m.AckedPerS, m.ServerCPU, m.MeanLoadAvg1, m.MaxGorout, m.MaxFDs, m.MaxThreads, q.Queries, q.Errors, q.P99ms)
		}
		p("  (caches = tracectl_query_bloom_cache_bytes + tracectl_search_block_cache_bytes, both bounded; gorout, fds, thr = max over the minute of go_goroutines, process_open_fds, go_threads)")
		if len(s.Growth) > 0 {
			p("growth over the load (second-half least-squares slope, projected over the second half):")
			p("  %-10s %10s %10s %10s %10s %10s %10s %12s %10s %s", "series", "first", "last", "1st min", "last min", "min", "max", "slope/min", "projected", "verdict")
			for _, g := range s.Growth {
				v := "(no verdict)"
				if g.Judged {
					v = fmt.Sprintf("%s (limit %+.1f)", passMiss(g.Pass), g.Limit)
				}
				p("  %-10s %10.1f %10.1f %10.1f %10.1f %10.1f %10.1f %12.3f %+10.1f %s", g.Name, g.First, g.Last, g.FirstMinuteMean, g.LastMinuteMean, g.Min, g.Max, g.SlopePerMin, g.ProjectedGrowth, v)
			}
		}
		if q := s.Queries; q != nil {
			p("queries alongside the load: %.2f/s (target %.2f/s, up to %d in flight, dispatch behind at most %.2f s); %s",
				q.AchievedRate, q.TargetRate, q.Concurrency, q.MaxBehindS, q.Mix)
			p("  %-18s %8s %7s %9s %10s %7s %9s %9s %9s %9s %9s", "kind", "queries", "errors", "notfound", "incomplete", "empty", "results", "p50 ms", "p90 ms", "p99 ms", "max ms")
			for _, k := range append(append([]queryKindStats(nil), q.Kinds...), q.All) {
				p("  %-18s %8d %7d %9d %10d %7d %9.1f %9.1f %9.1f %9.1f %9.1f", k.Kind, k.Queries, k.Errors, k.NotFound, k.Incomplete, k.Empty, k.MeanResults, k.P50ms, k.P90ms, k.P99ms, k.Maxms)
			}
			p("  (trace_by_id_head/block: the trace was/was not above the stored blocks' span total when the query started; results = spans, traces, tag names or tag values per answer)")
			p("  picks: %v; %d acked traces recorded (1 in %d); server: %.0f blocks known at the end, %.0f blocks skipped by queries", q.Picks, q.TracesRecorded, q.TraceSampleEvery, q.ServerBlocksKnown, q.ServerBlocksSkip)
			if len(q.ErrorCounts) > 0 {
				p("  query errors: %v", q.ErrorCounts)
				for i, f := range q.Failures {
					if i == 5 {
						p("  ... %d more failures in the JSON", len(q.Failures)-5)
						break
					}
					p("  failure: %+v", f)
				}
			}
		}
		p("dropped %d; load average 1-min mean %.2f, max %.2f", s.Dropped, s.LoadAvg1Mean, s.LoadAvg1Max)
		if len(s.ClientErrors) > 0 {
			p("client errors: %v", s.ClientErrors)
		}
	}
	p("")
	p("targets:")
	for _, t := range r.Targets {
		p("  %-4s %s: %s [goal %s]", t.Status, t.Name, t.Value, t.Goal)
	}
	return b.String()
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

func dirty(files []string) string {
	if len(files) == 0 {
		return ""
	}
	return fmt.Sprintf(" + %d uncommitted changes", len(files))
}

func (l serverLatency) String() string {
	return fmt.Sprintf("WAL append p50 %.2f ms p99 %.2f ms; fsync p50 %.2f ms p99 %.2f ms (%.0f fsyncs for %.0f appends); receiver request p50 %.2f ms p99 %.2f ms; block flush p50 %.2f s p99 %.2f s; %.0f GC cycles",
		l.WALAppendP50ms, l.WALAppendP99ms, l.WALFsyncP50ms, l.WALFsyncP99ms, l.Fsyncs, l.Appends, l.RequestP50ms, l.RequestP99ms, l.FlushP50s, l.FlushMaxBucketS, l.GCCycles)
}
