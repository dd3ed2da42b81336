package main

import (
	"context"
	"fmt"
	"os"
	"sort"
	"time"
)

type sample struct {
	T          float64 `json:"t_s"` // since the load started
	Phase      string  `json:"phase"`
	VmRSS      int64   `json:"vmrss_bytes"`
	ProcRSS    float64 `json:"process_resident_memory_bytes"`
	HeapInuse  float64 `json:"go_heap_inuse_bytes"`
	WALBytes   float64 `json:"wal_bytes"`
	HeadBytes  float64 `json:"head_bytes"`
	FlushQueue float64 `json:"flush_queue_blocks"`
	Blocks     float64 `json:"blocks_written"`
	Accepted   float64 `json:"accepted_spans"`
	Refused    float64 `json:"refused_spans"`
	ServerCPU  float64 `json:"server_cpu_s"`
	Acked      int64   `json:"client_acked_spans"`
	Load1      float64 `json:"loadavg1"`
	Goroutines float64 `json:"go_goroutines"`
	Threads    float64 `json:"go_threads"`
	OpenFDs    float64 `json:"process_open_fds"` // from /metrics, else /proc/<pid>/fd
	// The query side's bounded caches (bloom shards, block readers with
	// parsed footers) and the head's tag index, to tell caches filling to
	// their budgets from growth without bound.
	CacheBytes     float64 `json:"query_cache_bytes"`
	TagIndexValues float64 `json:"head_tag_index_values"`
}

type blockLag struct {
	At          float64 `json:"at_s"`
	Spans       int64   `json:"spans"`
	OldestLagS  float64 `json:"oldest_span_lag_s"` // ack of its oldest span -> stored
	NewestLagS  float64 `json:"newest_span_lag_s"` // ack of its newest span -> stored
	SinceLastS  float64 `json:"since_previous_block_s"`
	StoreTimeS  string  `json:"store_duration"`
	ParquetSize int64   `json:"bytes"`
}

type sustainedResult struct {
	Calibration       calibration `json:"calibration_before"`
	TargetRate        float64     `json:"target_rate_spans_per_s"`
	AchievedRate      float64     `json:"achieved_rate_spans_per_s"`
	LoadS             float64     `json:"load_s"`
	MaxBlockDuration  string      `json:"max_block_duration"`
	ServerCommand     []string    `json:"server_command"`
	ServerCPUsAllowed string      `json:"server_cpus_allowed"`
	ServerGOMAXPROCS  float64     `json:"server_gomaxprocs"`

	PeakRSSBytes        int64   `json:"peak_rss_bytes"`
	PeakSampledRSSBytes int64   `json:"peak_sampled_rss_bytes"`
	RSSSlopeMBPerMin    float64 `json:"rss_slope_second_half_mb_per_min"`
	RSSMeanSecondHalf   float64 `json:"rss_mean_second_half_bytes"`
	RSSMaxFirstHalf     int64   `json:"rss_max_first_half_bytes"`
	RSSMaxSecondHalf    int64   `json:"rss_max_second_half_bytes"`
	RSSGrowthSecondHalf float64 `json:"rss_projected_growth_second_half_bytes"`
	HeapSlopeMBPerMin   float64 `json:"heap_inuse_slope_second_half_mb_per_min"`
	FlatMemory          bool    `json:"flat_memory"`
	FlatCriterion       string  `json:"flat_memory_criterion"`

	// No growth of goroutines and open file descriptors; threads and
	// memory in the same form for comparison (no verdict for threads).
	Growth []growthCheck `json:"growth_checks"`
	// Queries sent alongside the load (nil with -query-rate 0).
	Queries *queryResult `json:"queries,omitempty"`

	MaxFlushLagS      float64    `json:"max_flush_lag_s"`
	FlushLagLimitS    float64    `json:"flush_lag_limit_s"`
	PendingAtEndS     float64    `json:"unflushed_age_at_end_s"`
	Blocks            int        `json:"blocks_stored"`
	MeanBlockInterval float64    `json:"mean_block_interval_s"`
	MeanSpansPerBlock float64    `json:"mean_spans_per_block"`
	MaxWALBytes       float64    `json:"max_wal_bytes"`
	MaxHeadBytes      float64    `json:"max_head_bytes"`
	MaxFlushQueue     float64    `json:"max_flush_queue_blocks"`
	BlockLags         []blockLag `json:"block_lags"`

	Latency       latencySummary `json:"ack_latency"`
	ServerLatency serverLatency  `json:"server_histograms"`
	SchedLatency  latencySummary `json:"schedule_latency"`
	MaxBehindS    float64        `json:"max_dispatch_behind_s"`

	ClientAckedSpans     int64          `json:"client_acked_spans"`
	AcceptedSpans        float64        `json:"accepted_spans"`
	StoredSpans          int64          `json:"stored_spans"`
	ClientFailedRequests int64          `json:"client_failed_requests"`
	ClientFailedSpans    int64          `json:"client_failed_spans"`
	PartialRejectedSpans int64          `json:"partial_rejected_spans"`
	ServerRefusedSpans   float64        `json:"server_refused_spans"`
	Dropped              int64          `json:"dropped_spans"`
	ClientErrors         map[string]int `json:"client_errors,omitempty"`

	LoadServerCPUS float64            `json:"server_cpu_s_during_load"`
	ServerCPUShare float64            `json:"server_cpu_share_during_load"`
	SpansPerCPUS   float64            `json:"spans_per_server_cpu_s_during_load"`
	LifetimeCPUS   float64            `json:"lifetime_server_cpu_s"`
	GeneratorCPUS  float64            `json:"generator_cpu_s"`
	CPUBusy        map[string]float64 `json:"cpu_busy_during_load"`
	LoadAvgStart   [3]float64         `json:"loadavg_start"`
	LoadAvg1Max    float64            `json:"loadavg1_max"`
	LoadAvg1Mean   float64            `json:"loadavg1_mean"`
	Warnings       []string           `json:"server_warnings,omitempty"`
	PerMinute      []minuteStat       `json:"per_minute"`
	Samples        []sample           `json:"samples"`
}

func runSustained(ctx context.Context, o *options, c *corpusLoad, res *result) error {
	dir, err := os.MkdirTemp("", "bench-ingest-run-")
	if err != nil {
		return err
	}
	cal, err := calibrate(o.ServerCPU, res.Env.Taskset)
	if err != nil {
		logf("%v", err)
	}
	s := &sustainedResult{Calibration: cal, TargetRate: o.Rate, MaxBlockDuration: o.MaxBlockDuration.String(), LoadAvgStart: loadAvg(),
		FlushLagLimitS: 2 * o.MaxBlockDuration.Seconds()}
	res.Sustained = s
	srv, err := startServer(o.Tracectl, dir, o.ServerCPU, res.Env.Taskset, serverArgs(o))
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			srv.kill()
			logf("run directory kept: %s", dir)
		} else if !o.Keep {
			os.RemoveAll(dir)
		} else {
			logf("run directory: %s", dir)
		}
	}()
	s.ServerCommand = srv.args
	if st, err := procStatus(srv.pid); err == nil {
		s.ServerCPUsAllowed = st["Cpus_allowed_list"]
	}
	logf("sustained: server pid %d (CPUs %s), %.0f spans/s for %s, --max-block-duration %s, up to %d concurrent Exports",
		srv.pid, s.ServerCPUsAllowed, o.Rate, o.Duration, o.MaxBlockDuration, o.Concurrency)

	lg, err := newLoadGen(c, srv.grpcAddr, o.Conns, o.Gzip)
	if err != nil {
		return err
	}
	defer lg.close()
	cpuStart, err := procCPU(srv.pid)
	if err != nil {
		return err
	}
	var qr *queryRunner
	if o.QueryRate > 0 {
		qr = newQueryRunner(srv.httpAddr, o, c, func() int64 {
			var stored int64
			for _, b := range srv.blockEvents() {
				stored += b.Spans
			}
			return stored
		})
		lg.onAck = qr.onAck
		logf("queries: %.1f/s alongside the load, up to %d in flight (%s)", o.QueryRate, o.QueryConcurrency, queryMixDesc)
	}
	ct0, gen0 := cpuTimes(), selfCPU()
	lg.runOpen(o.Concurrency, o.Rate)
	if qr != nil {
		qr.run(lg.start)
	}
	stopQueries := func() {
		if qr != nil && !qr.stopping.Load() {
			qr.stop()
		}
	}
	defer stopQueries()

	var loadSum float64
	var loadN int
	takeSample := func(phase string) error {
		m, err := scrape(ctx, srv.httpAddr)
		if err != nil {
			return err
		}
		sm := sample{T: round(time.Since(lg.start).Seconds(), 3), Phase: phase, ProcRSS: m["process_resident_memory_bytes"],
			HeapInuse: m["go_memstats_heap_inuse_bytes"], WALBytes: m["tracectl_wal_bytes"], HeadBytes: m["tracectl_head_bytes"],
			FlushQueue: m["tracectl_flush_queue_blocks"], Blocks: m["tracectl_blocks_written_total"],
			Accepted: m["tracectl_receiver_accepted_spans_total"],
			Refused:  serverRefused(m),
			Acked:    lg.ackedSpans.Load(), Load1: loadAvg()[0],
			Goroutines: m["go_goroutines"], Threads: m["go_threads"], OpenFDs: m["process_open_fds"],
			CacheBytes:     m["tracectl_query_bloom_cache_bytes"] + m["tracectl_search_block_cache_bytes"],
			TagIndexValues: m["tracectl_head_tag_index_values"]}
		if _, ok := m["process_open_fds"]; !ok {
			if ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", srv.pid)); err == nil {
				sm.OpenFDs = float64(len(ents))
			}
		}
		if s.ServerGOMAXPROCS == 0 {
			s.ServerGOMAXPROCS = m["go_sched_gomaxprocs_threads"]
		}
		if st, err := procStatus(srv.pid); err == nil {
			sm.VmRSS = kbField(st, "VmRSS")
		}
		sm.ServerCPU, _ = procCPU(srv.pid)
		sm.ServerCPU = round(sm.ServerCPU-cpuStart, 2)
		s.Samples = append(s.Samples, sm)
		loadSum += sm.Load1
		loadN++
		s.LoadAvg1Max = max(s.LoadAvg1Max, sm.Load1)
		return nil
	}

	next := lg.start
	lastLog := time.Now()
	for time.Since(lg.start) < o.Duration {
		next = next.Add(o.Sample)
		if err := sleepCtx(ctx, time.Until(next)); err != nil {
			lg.stop()
			return err
		}
		if err := takeSample("load"); err != nil {
			lg.stop()
			return err
		}
		if time.Since(lastLog) >= 30*time.Second {
			lastLog = time.Now()
			sm := s.Samples[len(s.Samples)-1]
			qs := ""
			if qr != nil {
				qr.mu.Lock()
				nq, nf := len(qr.recs), 0
				for _, r := range qr.recs {
					if r.failed {
						nf++
					}
				}
				qr.mu.Unlock()
				qs = fmt.Sprintf(", queries %d (%d failed)", nq, nf)
			}
			logf("t=%4.0fs acked %d spans (%.0f/s), RSS %.0f MB, WAL %.0f MB, head %.0f MB, queue %.0f, blocks %.0f, refused %.0f, goroutines %.0f, fds %.0f%s, load %.2f",
				sm.T, sm.Acked, float64(sm.Acked)/sm.T, float64(sm.VmRSS)/(1<<20), sm.WALBytes/(1<<20), sm.HeadBytes/(1<<20),
				sm.FlushQueue, sm.Blocks, sm.Refused, sm.Goroutines, sm.OpenFDs, qs, sm.Load1)
		}
	}
	stopQueries()
	lg.stop()
	loadEnd := time.Since(lg.start)
	cpuLoadEnd, _ := procCPU(srv.pid)
	ct1, gen1 := cpuTimes(), selfCPU()
	s.LoadS = round(loadEnd.Seconds(), 3)
	s.LoadServerCPUS = round(cpuLoadEnd-cpuStart, 2)
	s.ServerCPUShare = round(s.LoadServerCPUS/loadEnd.Seconds(), 3)
	s.CPUBusy = cpuBusy(ct0, ct1)
	s.GeneratorCPUS = round(gen1-gen0, 2)
	s.ClientAckedSpans = lg.ackedSpans.Load()
	s.AchievedRate = round(float64(s.ClientAckedSpans)/loadEnd.Seconds(), 0)
	if s.LoadServerCPUS > 0 {
		s.SpansPerCPUS = round(float64(s.ClientAckedSpans)/s.LoadServerCPUS, 0)
	}

	// Drain: the last head is cut after --max-block-duration; wait for it
	// so the flush lag of the last spans is measured too.
	if o.Drain {
		limit := time.Now().Add(2*o.MaxBlockDuration + time.Minute)
		logf("load stopped after %s; waiting (at most %s) until every acknowledged span is stored", loadEnd.Round(time.Second), time.Until(limit).Round(time.Second))
		for time.Now().Before(limit) {
			var stored int64
			for _, b := range srv.blockEvents() {
				stored += b.Spans
			}
			if stored >= s.ClientAckedSpans {
				break
			}
			if err := sleepCtx(ctx, o.Sample); err != nil {
				return err
			}
			if err := takeSample("drain"); err != nil {
				return err
			}
		}
	}
	obsEnd := time.Since(lg.start)
	if loadN > 0 {
		s.LoadAvg1Mean = round(loadSum/float64(loadN), 2)
	}

	mEnd, err := scrape(ctx, srv.httpAddr)
	if err != nil {
		return err
	}
	s.AcceptedSpans = mEnd["tracectl_receiver_accepted_spans_total"]
	s.ServerLatency = serverLatencies(mEnd)
	s.ServerRefusedSpans = serverRefused(mEnd)
	if st, err := procStatus(srv.pid); err == nil {
		s.PeakRSSBytes = kbField(st, "VmHWM")
	}
	blocks := srv.blockEvents()
	life, err := srv.stop(2 * time.Minute)
	if err != nil {
		return err
	}
	s.LifetimeCPUS = round(life, 2)
	s.Warnings = srv.warningLines()
	for _, b := range srv.blockEvents() {
		s.StoredSpans += b.Spans
	}
	s.ClientFailedRequests, s.ClientFailedSpans = lg.failedReqs.Load(), lg.failedSpans.Load()
	s.PartialRejectedSpans = lg.rejectedSpans.Load()
	s.ClientErrors = lg.errorCounts()
	s.Dropped = dropped(s.ClientFailedSpans, s.PartialRejectedSpans, s.ServerRefusedSpans)
	s.MaxBehindS = round(time.Duration(lg.maxBehind.Load()).Seconds(), 3)

	acks := lg.snapshotAcks()
	s.Latency = ackLatency(acks, 0, loadEnd+time.Minute, false)
	s.SchedLatency = ackLatency(acks, 0, loadEnd+time.Minute, true)

	// Memory.
	half := o.Duration.Seconds() / 2
	var xs, ys, hs []float64
	for _, sm := range s.Samples {
		s.PeakSampledRSSBytes = max(s.PeakSampledRSSBytes, sm.VmRSS)
		s.MaxWALBytes = max(s.MaxWALBytes, sm.WALBytes)
		s.MaxHeadBytes = max(s.MaxHeadBytes, sm.HeadBytes)
		s.MaxFlushQueue = max(s.MaxFlushQueue, sm.FlushQueue)
		if sm.Phase != "load" {
			continue
		}
		if sm.T < half {
			s.RSSMaxFirstHalf = max(s.RSSMaxFirstHalf, sm.VmRSS)
			continue
		}
		s.RSSMaxSecondHalf = max(s.RSSMaxSecondHalf, sm.VmRSS)
		xs = append(xs, sm.T/60)
		ys = append(ys, float64(sm.VmRSS))
		hs = append(hs, sm.HeapInuse)
	}
	s.PeakRSSBytes = max(s.PeakRSSBytes, s.PeakSampledRSSBytes)
	slope, mean := linreg(xs, ys)
	hslope, _ := linreg(xs, hs)
	s.RSSSlopeMBPerMin = round(slope/(1<<20), 3)
	s.HeapSlopeMBPerMin = round(hslope/(1<<20), 3)
	s.RSSMeanSecondHalf = round(mean, 0)
	s.RSSGrowthSecondHalf = round(slope*half/60, 0)
	s.FlatCriterion = "RSS growth projected over the second half of the load (least-squares slope x duration/2) at most 5% of the second half's mean RSS (a falling RSS passes)"
	s.FlatMemory = len(xs) >= 3 && s.RSSGrowthSecondHalf <= 0.05*mean
	s.PerMinute = perMinute(s.Samples)
	s.Growth = []growthCheck{
		growthOf("goroutines", "go_goroutines", s.Samples, o.Duration, 10, 0.05, func(sm sample) float64 { return sm.Goroutines }, true),
		growthOf("open fds", "process_open_fds", s.Samples, o.Duration, 5, 0.05, func(sm sample) float64 { return sm.OpenFDs }, true),
		growthOf("threads", "go_threads", s.Samples, o.Duration, 2, 0.05, func(sm sample) float64 { return sm.Threads }, false),
		growthOf("RSS MB", "VmRSS", s.Samples, o.Duration, 0, 0.05, func(sm sample) float64 { return float64(sm.VmRSS) / (1 << 20) }, false),
		growthOf("heap MB", "go_memstats_heap_inuse_bytes", s.Samples, o.Duration, 0, 0.05, func(sm sample) float64 { return sm.HeapInuse / (1 << 20) }, false),
		growthOf("caches MB", "tracectl_query_bloom_cache_bytes + tracectl_search_block_cache_bytes", s.Samples, o.Duration, 0, 0.05, func(sm sample) float64 { return sm.CacheBytes / (1 << 20) }, false),
		growthOf("heap-caches", "go_memstats_heap_inuse_bytes - query caches", s.Samples, o.Duration, 0, 0.05, func(sm sample) float64 { return (sm.HeapInuse - sm.CacheBytes) / (1 << 20) }, false),
		growthOf("tag index", "tracectl_head_tag_index_values", s.Samples, o.Duration, 0, 0.05, func(sm sample) float64 { return sm.TagIndexValues }, false),
	}
	if qr != nil {
		s.Queries = qr.result(loadEnd)
		s.Queries.ServerBlocksSkip = mEnd["tracectl_query_blocks_skipped_total"]
		s.Queries.ServerBlocksKnown = mEnd["tracectl_query_blocklist_blocks"]
	}

	// Flush lag from the server's "block stored" log lines and the client's
	// acks: blocks are stored in cut order and hold the spans acked since
	// the previous cut, so block j holds acked spans S(j-1)+1 .. S(j).
	s.BlockLags, s.PendingAtEndS = flushLags(acks, blocks, lg.start, obsEnd)
	s.Blocks = len(blocks)
	var loadBlocks int
	var sumSpans int64
	for _, b := range s.BlockLags {
		s.MaxFlushLagS = max(s.MaxFlushLagS, b.OldestLagS)
		if b.At <= loadEnd.Seconds() {
			loadBlocks++
			sumSpans += b.Spans
		}
	}
	s.MaxFlushLagS = max(s.MaxFlushLagS, s.PendingAtEndS)
	if loadBlocks > 0 {
		s.MeanBlockInterval = round(loadEnd.Seconds()/float64(loadBlocks), 2)
		s.MeanSpansPerBlock = round(float64(sumSpans)/float64(loadBlocks), 0)
	}

	res.Targets = append(res.Targets,
		target{Name: "rate sustained", Goal: fmt.Sprintf("%.0f spans/s for %s", o.Rate, o.Duration),
			Value:  fmt.Sprintf("%.0f spans/s acked (%.1f%%), dispatch fell behind by at most %.2f s", s.AchievedRate, 100*s.AchievedRate/o.Rate, s.MaxBehindS),
			Status: passMiss(s.AchievedRate >= 0.99*o.Rate)},
		target{Name: "no dropped spans", Goal: "0 refused, failed or partially rejected spans",
			Value: fmt.Sprintf("%d dropped (client failed %d, partial %d, server refused %.0f); stored %d of %d acked", s.Dropped,
				s.ClientFailedSpans, s.PartialRejectedSpans, s.ServerRefusedSpans, s.StoredSpans, s.ClientAckedSpans),
			Status: passMiss(s.Dropped == 0 && s.StoredSpans == s.ClientAckedSpans)},
		target{Name: "peak RSS", Goal: fmt.Sprintf("<= %.0f MB", float64(o.MaxRSS)/(1<<20)),
			Value: fmt.Sprintf("%.1f MB (VmHWM)", mb(float64(s.PeakRSSBytes))), Status: passMiss(s.PeakRSSBytes <= o.MaxRSS)},
		target{Name: "flat memory", Goal: s.FlatCriterion,
			Value: fmt.Sprintf("slope %.2f MB/min over the second half (projected %+.1f MB on a mean of %.1f MB); max RSS first half %.1f MB, second half %.1f MB",
				s.RSSSlopeMBPerMin, mb(s.RSSGrowthSecondHalf), mb(s.RSSMeanSecondHalf), mb(float64(s.RSSMaxFirstHalf)), mb(float64(s.RSSMaxSecondHalf))),
			Status: passMiss(s.FlatMemory)},
		target{Name: "flush lag", Goal: fmt.Sprintf("<= 2 x --max-block-duration = %.0f s", s.FlushLagLimitS),
			Value:  fmt.Sprintf("max %.1f s over %d blocks (unflushed age at the end %.1f s)", s.MaxFlushLagS, s.Blocks, s.PendingAtEndS),
			Status: passMiss(s.MaxFlushLagS <= s.FlushLagLimitS),
			Note:   "lag = time from the ack of a block's oldest span to the server's \"block stored\" log line"},
	)
	for _, g := range s.Growth {
		if !g.Judged {
			continue
		}
		res.Targets = append(res.Targets, target{Name: "no " + g.Name + " growth", Goal: g.Criterion,
			Value: fmt.Sprintf("first minute mean %.1f, last minute mean %.1f (min %.0f, max %.0f); second-half slope %+.3f/min, projected %+.1f over %.0f s (limit %.1f)",
				g.FirstMinuteMean, g.LastMinuteMean, g.Min, g.Max, g.SlopePerMin, g.ProjectedGrowth, g.HalfS, g.Limit),
			Status: passMiss(g.Pass)})
	}
	if q := s.Queries; q != nil {
		var nf, inc int
		for _, k := range q.Kinds {
			nf += k.NotFound
			inc += k.Incomplete
		}
		res.Targets = append(res.Targets,
			target{Name: "acked traces found by ID", Goal: "every trace-by-ID query of an acknowledged trace answers it, whole (0 not found, 0 incomplete)",
				Value:  fmt.Sprintf("%d not found, %d incomplete of %d trace-by-ID queries", nf, inc, q.Kinds[kTraceHead].Queries+q.Kinds[kTraceBlock].Queries),
				Status: passMiss(nf == 0 && inc == 0)},
			target{Name: "query errors", Goal: "0 failed queries (non-200, transport error, undecodable answer, acked trace missing or incomplete)",
				Value:  fmt.Sprintf("%d of %d failed; all kinds p50 %.1f ms, p99 %.1f ms, max %.1f ms at %.2f queries/s", q.All.Errors, q.All.Queries, q.All.P50ms, q.All.P99ms, q.All.Maxms, q.AchievedRate),
				Status: passMiss(q.All.Errors == 0)},
		)
	}
	ok = true
	return nil
}

// flushLags matches stored blocks (in order) to the client's acks (in ack
// order). It returns per-block lags and the age of the oldest acked span
// not in a stored block at obsEnd (0 when everything is stored).
func flushLags(acks []ackRec, blocks []blockEvent, start time.Time, obsEnd time.Duration) ([]blockLag, float64) {
	sort.Slice(acks, func(i, j int) bool { return acks[i].at < acks[j].at })
	cum := make([]int64, len(acks))
	var total int64
	for i, a := range acks {
		total += int64(a.spans)
		cum[i] = total
	}
	ackOf := func(k int64) (int64, bool) { // ack time of the k-th span (1-based)
		i := sort.Search(len(cum), func(i int) bool { return cum[i] >= k })
		if i == len(cum) {
			return 0, false
		}
		return acks[i].at, true
	}
	sort.SliceStable(blocks, func(i, j int) bool { return blocks[i].At.Before(blocks[j].At) })
	var out []blockLag
	var stored int64
	var prevAt float64
	for _, b := range blocks {
		at := b.At.Sub(start)
		bl := blockLag{At: round(at.Seconds(), 3), Spans: b.Spans, StoreTimeS: b.Duration, ParquetSize: b.Bytes,
			SinceLastS: round(at.Seconds()-prevAt, 3)}
		prevAt = at.Seconds()
		if first, ok := ackOf(stored + 1); ok {
			bl.OldestLagS = round((at - time.Duration(first)).Seconds(), 3)
		}
		if last, ok := ackOf(stored + b.Spans); ok {
			bl.NewestLagS = round((at - time.Duration(last)).Seconds(), 3)
		}
		stored += b.Spans
		out = append(out, bl)
	}
	var pending float64
	if stored < total {
		if first, ok := ackOf(stored + 1); ok {
			pending = round((obsEnd - time.Duration(first)).Seconds(), 3)
		}
	}
	return out, pending
}

// growthCheck judges one series of the load phase for growth, in the style
// of the flat-memory check: the least-squares slope over the second half of
// the load, projected over that half.
type growthCheck struct {
	Name            string  `json:"name"`
	Source          string  `json:"source"`
	Judged          bool    `json:"judged"`
	FirstMinuteMean float64 `json:"first_minute_mean"`
	LastMinuteMean  float64 `json:"last_minute_mean"`
	First           float64 `json:"first"`
	Last            float64 `json:"last"`
	Min             float64 `json:"min"`
	Max             float64 `json:"max"`
	MeanSecondHalf  float64 `json:"mean_second_half"`
	SlopePerMin     float64 `json:"slope_second_half_per_min"`
	HalfS           float64 `json:"second_half_s"`
	ProjectedGrowth float64 `json:"projected_growth_second_half"`
	Limit           float64 `json:"limit"`
	Criterion       string  `json:"criterion"`
	Pass            bool    `json:"pass"`
}

func growthOf(name, source string, samples []sample, load time.Duration, abs, rel float64, get func(sample) float64, judged bool) growthCheck {
	g := growthCheck{Name: name, Source: source, Judged: judged, HalfS: load.Seconds() / 2,
		Criterion: fmt.Sprintf("growth projected over the second half of the load (least-squares slope x duration/2) at most max(%g, %g%% of the second half's mean); a falling series passes", abs, rel*100)}
	half := load.Seconds() / 2
	last := load.Seconds() - 60
	var xs, ys []float64
	var f1, n1, f2, n2 float64
	first := true
	for _, sm := range samples {
		if sm.Phase != "load" {
			continue
		}
		v := get(sm)
		if first {
			g.First, g.Min, g.Max, first = v, v, v, false
		}
		g.Last = v
		g.Min, g.Max = min(g.Min, v), max(g.Max, v)
		if sm.T < 60 {
			f1 += v
			n1++
		}
		if sm.T >= last {
			f2 += v
			n2++
		}
		if sm.T >= half {
			xs = append(xs, sm.T/60)
			ys = append(ys, v)
		}
	}
	if n1 > 0 {
		g.FirstMinuteMean = round(f1/n1, 1)
	}
	if n2 > 0 {
		g.LastMinuteMean = round(f2/n2, 1)
	}
	slope, mean := linreg(xs, ys)
	g.SlopePerMin = round(slope, 3)
	g.MeanSecondHalf = round(mean, 1)
	g.ProjectedGrowth = round(slope*half/60, 1)
	g.Limit = round(max(abs, rel*mean), 1)
	g.Pass = len(xs) >= 3 && g.ProjectedGrowth <= g.Limit
	return g
}

// linreg returns the least-squares slope of ys over xs and the mean of ys.
func linreg(xs, ys []float64) (slope, mean float64) {
	n := float64(len(xs))
	if n < 2 {
		if n == 1 {
			return 0, ys[0]
		}
		return 0, 0
	}
	var sx, sy float64
	for i := range xs {
		sx += xs[i]
		sy += ys[i]
	}
	mx, my := sx/n, sy/n
	var num, den float64
	for i := range xs {
		num += (xs[i] - mx) * (ys[i] - my)
		den += (xs[i] - mx) * (xs[i] - mx)
	}
	if den == 0 {
		return 0, my
	}
	return num / den, my
}

type minuteStat struct {
	Minute       int     `json:"minute"`
	MaxRSSMB     float64 `json:"max_rss_mb"`
	MeanRSSMB    float64 `json:"mean_rss_mb"`
	MaxHeapMB    float64 `json:"max_heap_inuse_mb"`
	MaxHeadMB    float64 `json:"max_head_mb"`
	MaxWALMB     float64 `json:"max_wal_mb"`
	MaxCacheMB   float64 `json:"max_query_cache_mb"`
	MaxGorout    float64 `json:"max_goroutines"`
	MaxFDs       float64 `json:"max_open_fds"`
	MaxThreads   float64 `json:"max_threads"`
	AckedPerS    float64 `json:"acked_spans_per_s"`
	ServerCPU    float64 `json:"server_cpu_share"`
	MeanLoadAvg1 float64 `json:"loadavg1_mean"`
}

// perMinute summarises the load phase's samples minute by minute.
func perMinute(samples []sample) []minuteStat {
	var out []minuteStat
	var prev *sample
	var cur *minuteStat
	var n int
	var rssSum, loadSum float64
	var first sample
	finish := func(last sample) {
		if cur == nil || n == 0 {
			return
		}
		cur.MeanRSSMB = mb(rssSum / float64(n))
		cur.MeanLoadAvg1 = round(loadSum/float64(n), 2)
		if dt := last.T - first.T; dt > 0 {
			cur.AckedPerS = round(float64(last.Acked-first.Acked)/dt, 0)
			cur.ServerCPU = round((last.ServerCPU-first.ServerCPU)/dt, 3)
		}
		out = append(out, *cur)
	}
	for i := range samples {
		sm := samples[i]
		if sm.Phase != "load" {
			continue
		}
		m := int(sm.T / 60)
		if cur == nil || m != cur.Minute {
			if prev != nil {
				finish(*prev)
				first = *prev
			} else {
				first = sample{}
			}
			cur = &minuteStat{Minute: m}
			n, rssSum, loadSum = 0, 0, 0
		}
		n++
		rssSum += float64(sm.VmRSS)
		loadSum += sm.Load1
		cur.MaxRSSMB = max(cur.MaxRSSMB, mb(float64(sm.VmRSS)))
		cur.MaxHeapMB = max(cur.MaxHeapMB, mb(sm.HeapInuse))
		cur.MaxHeadMB = max(cur.MaxHeadMB, mb(sm.HeadBytes))
		cur.MaxWALMB = max(cur.MaxWALMB, mb(sm.WALBytes))
		cur.MaxCacheMB = max(cur.MaxCacheMB, mb(sm.CacheBytes))
		cur.MaxGorout = max(cur.MaxGorout, sm.Goroutines)
		cur.MaxFDs = max(cur.MaxFDs, sm.OpenFDs)
		cur.MaxThreads = max(cur.MaxThreads, sm.Threads)
		prev = &samples[i]
	}
	if prev != nil {
		finish(*prev)
	}
	return out
}
