package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// The query workers of the sustained mode: while the load runs they ask the
// server's Tempo-compatible HTTP API what Grafana's Tempo data source asks
// (GRAFANA.md §2, §8), at a fixed total rate, and check that every trace the
// server acknowledged can be found by ID.

// Query kinds, as reported. Trace-by-ID queries are classed by where the
// trace is when the query starts: "head" when the acked-span total at its
// ack is above the spans in stored blocks (blocks are stored in ack order,
// so it is still in the head / WAL or being flushed), else "block".
const (
	kTraceHead = iota
	kTraceBlock
	kSearch
	kTags
	kTagValues
	nQueryKinds
)

var queryKindNames = [nQueryKinds]string{"trace_by_id_head", "trace_by_id_block", "search", "search_tags", "search_tag_values"}

var queryKindDesc = [nQueryKinds]string{
	"GET /api/v2/traces/<id> (Accept: application/protobuf) of an acked trace not yet in a stored block (head/WAL)",
	"GET /api/v2/traces/<id> (Accept: application/protobuf) of an acked trace in a stored block",
	`GET /api/search?q={ resource.service.name = "<svc>" }&start=now-15m&end=now&limit=20 (in turn, the corpus services with spans in its last 10 minutes, so each should match)`,
	"GET /api/v2/search/tags?limit=5000",
	"GET /api/v2/search/tag/<tag>/values?limit=5000&q={}&tag=<tag> (resource.service.name, name, status in turn)",
}

// What the dispatcher asks for, in this repeating order: trace by ID of a
// recently acked trace (mostly still in the head) or of an old one (in a
// block), search, tag names, tag values.
type queryPick int

const (
	pickRecent queryPick = iota
	pickOld
	pickSearch
	pickTags
	pickTagValues
)

var queryMix = []queryPick{pickRecent, pickSearch, pickOld, pickTagValues, pickRecent, pickSearch, pickOld, pickTags}

const queryMixDesc = "per 8 queries: 2 trace by ID of a trace acked at most -query-recent ago, 2 of a trace acked at least -query-old ago (a recent one until there is any), 2 searches, 1 tag names, 1 tag values"

var tagValueNames = []string{"resource.service.name", "name", "status"}

// ackedTrace is one trace (or the part of it one Export carried) the server
// acknowledged.
type ackedTrace struct {
	id    [16]byte
	at    int64 // ack time, ns since the load's start
	cum   int64 // acked-span total including its Export
	spans int32 // spans of it in that Export
	full  int32 // spans of the whole trace
}

type queryRec struct {
	at      int64 // start, ns since the load's start
	lat     int64
	kind    uint8
	failed  bool // non-200, transport error, undecodable answer
	missing bool // trace by ID: acked trace not found
	partial bool // trace by ID: fewer spans than acked
	results int32
}

type queryFailure struct {
	Kind     string  `json:"kind"`
	AtS      float64 `json:"at_s"`
	Status   int     `json:"status,omitempty"`
	Error    string  `json:"error"`
	TraceID  string  `json:"trace_id,omitempty"`
	AckAgeS  float64 `json:"since_ack_s,omitempty"`
	GotSpans int     `json:"got_spans,omitempty"`
	WantMin  int     `json:"want_spans_at_least,omitempty"`
}

type queryRunner struct {
	base      string
	client    *http.Client
	rate      float64
	workers   int
	recentAge time.Duration
	oldAge    time.Duration
	every     uint64
	services  []string
	corpus    *corpusLoad
	stored    func() int64 // spans in stored blocks
	start     time.Time

	tmu      sync.Mutex
	traces   []ackedTrace
	traceCtr atomic.Uint64

	stopping  atomic.Bool
	wg        sync.WaitGroup
	maxBehind atomic.Int64

	mu       sync.Mutex
	recs     []queryRec
	failures []queryFailure
	errors   map[string]int
	picks    map[string]int
}

func newQueryRunner(httpAddr string, o *options, c *corpusLoad, stored func() int64) *queryRunner {
	tr := &http.Transport{MaxIdleConnsPerHost: o.QueryConcurrency, MaxIdleConns: o.QueryConcurrency, IdleConnTimeout: time.Minute}
	return &queryRunner{
		base:   "http://" + httpAddr,
		client: &http.Client{Transport: tr, Timeout: 90 * time.Second},
		rate:   o.QueryRate, workers: o.QueryConcurrency, recentAge: o.QueryRecent, oldAge: o.QueryOld,
		every: uint64(max(1, o.QueryTraceSample)), services: c.services, corpus: c, stored: stored,
		errors: map[string]int{}, picks: map[string]int{},
	}
}

// onAck records every every-th trace of an acked Export (the loadGen hook).
func (q *queryRunner) onAck(n uint64, body []byte, at, cum int64) {
	t := &q.corpus.templates[n%uint64(len(q.corpus.templates))]
	for _, r := range t.traces {
		if q.traceCtr.Add(1)%q.every != 0 {
			continue
		}
		a := ackedTrace{at: at, cum: cum, spans: r.spans, full: r.full}
		copy(a.id[:], body[r.off:])
		q.tmu.Lock()
		q.traces = append(q.traces, a)
		q.tmu.Unlock()
	}
}

func (q *queryRunner) recordedTraces() int {
	q.tmu.Lock()
	defer q.tmu.Unlock()
	return len(q.traces)
}

// pickTrace returns a random recorded trace acked at most recentAge ago
// (recent) or at least oldAge ago.
func (q *queryRunner) pickTrace(rng *rand.Rand, recent bool) (ackedTrace, bool) {
	now := int64(time.Since(q.start))
	q.tmu.Lock()
	defer q.tmu.Unlock()
	if recent {
		from := now - int64(q.recentAge)
		i := sort.Search(len(q.traces), func(i int) bool { return q.traces[i].at >= from })
		if i == len(q.traces) {
			return ackedTrace{}, false
		}
		return q.traces[i+rng.IntN(len(q.traces)-i)], true
	}
	to := now - int64(q.oldAge)
	i := sort.Search(len(q.traces), func(i int) bool { return q.traces[i].at > to })
	if i == 0 {
		return ackedTrace{}, false
	}
	return q.traces[rng.IntN(i)], true
}

// run starts the dispatcher and the workers (open loop at rate queries/s;
// when every worker is busy the schedule slips, shown as maxBehind).
func (q *queryRunner) run(start time.Time) {
	q.start = start
	type job struct {
		pick queryPick
		seq  int
		due  time.Time
	}
	jobs := make(chan job)
	for w := range q.workers {
		q.wg.Add(1)
		go func() {
			defer q.wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w)+1, 0x9e3779b97f4a7c15))
			for j := range jobs {
				q.do(rng, j.pick, j.seq)
			}
		}()
	}
	q.wg.Add(1)
	go func() {
		defer q.wg.Done()
		defer close(jobs)
		for n := 0; !q.stopping.Load(); n++ {
			due := start.Add(time.Duration(float64(n) / q.rate * float64(time.Second)))
			for d := time.Until(due); d > 0 && !q.stopping.Load(); d = time.Until(due) {
				time.Sleep(min(d, 200*time.Millisecond))
			}
			if q.stopping.Load() {
				return
			}
			jobs <- job{pick: queryMix[n%len(queryMix)], seq: n / len(queryMix), due: due}
			if behind := int64(time.Since(due)); behind > q.maxBehind.Load() {
				q.maxBehind.Store(behind)
			}
		}
	}()
}

// stop lets the queries in flight finish and waits for the workers.
func (q *queryRunner) stop() {
	q.stopping.Store(true)
	q.wg.Wait()
}

func (q *queryRunner) do(rng *rand.Rand, pick queryPick, seq int) {
	switch pick {
	case pickRecent, pickOld:
		tr, ok := q.pickTrace(rng, pick == pickRecent)
		if !ok && pick == pickOld {
			q.count("old trace wanted, none acked long enough ago: recent one instead")
			tr, ok = q.pickTrace(rng, true)
		}
		if !ok {
			q.count("trace by ID skipped: no trace acked yet")
			return
		}
		if pick == pickRecent {
			q.count("trace by ID of a recent trace")
		} else {
			q.count("trace by ID of an old trace")
		}
		q.traceByID(tr, pick == pickOld)
	case pickSearch:
		svc := q.services[seq%len(q.services)]
		now := time.Now()
		v := url.Values{}
		v.Set("q", fmt.Sprintf("{ resource.service.name = %q }", svc))
		v.Set("start", strconv.FormatInt(now.Add(-15*time.Minute).Unix(), 10))
		v.Set("end", strconv.FormatInt(now.Unix(), 10))
		v.Set("limit", "20")
		q.jsonQuery(kSearch, "/api/search?"+v.Encode(), func(b []byte) (int, error) {
			var r struct {
				Traces []json.RawMessage `json:"traces"`
			}
			err := json.Unmarshal(b, &r)
			return len(r.Traces), err
		})
	case pickTags:
		q.jsonQuery(kTags, "/api/v2/search/tags?limit=5000", func(b []byte) (int, error) {
			var r struct {
				Scopes []struct {
					Tags []string `json:"tags"`
				} `json:"scopes"`
			}
			err := json.Unmarshal(b, &r)
			n := 0
			for _, s := range r.Scopes {
				n += len(s.Tags)
			}
			return n, err
		})
	case pickTagValues:
		tag := tagValueNames[seq%len(tagValueNames)]
		v := url.Values{}
		v.Set("limit", "5000")
		v.Set("q", "{}")
		v.Set("tag", tag)
		q.jsonQuery(kTagValues, "/api/v2/search/tag/"+url.PathEscape(tag)+"/values?"+v.Encode(), func(b []byte) (int, error) {
			var r struct {
				TagValues []json.RawMessage `json:"tagValues"`
			}
			err := json.Unmarshal(b, &r)
			return len(r.TagValues), err
		})
	}
}

func (q *queryRunner) count(what string) {
	q.mu.Lock()
	q.picks[what]++
	q.mu.Unlock()
}

// get runs one GET and returns status, body, start (ns since the load's
// start) and latency.
func (q *queryRunner) get(path, accept string) (status int, body []byte, at, lat int64, err error) {
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, q.base+path, nil)
	if err != nil {
		return 0, nil, 0, 0, err
	}
	req.Header.Set("Accept", accept)
	req.Header.Set("User-Agent", "Grafana/12.4.0 (tracectl bench/ingest)")
	t0 := time.Now()
	resp, err := q.client.Do(req)
	if err == nil {
		body, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		status = resp.StatusCode
	}
	return status, body, int64(t0.Sub(q.start)), int64(time.Since(t0)), err
}

func (q *queryRunner) record(r queryRec, f *queryFailure, errKey string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.recs = append(q.recs, r)
	if errKey != "" {
		if len(errKey) > 200 {
			errKey = errKey[:200]
		}
		q.errors[queryKindNames[r.kind]+": "+errKey]++
	}
	if f != nil && len(q.failures) < 50 {
		f.Kind = queryKindNames[r.kind]
		f.AtS = round(float64(r.at)/1e9, 3)
		q.failures = append(q.failures, *f)
	}
}

func (q *queryRunner) jsonQuery(kind int, path string, decode func([]byte) (int, error)) {
	status, body, at, lat, err := q.get(path, "application/json")
	r := queryRec{at: at, lat: lat, kind: uint8(kind)}
	switch {
	case err != nil:
		r.failed = true
		q.record(r, &queryFailure{Error: err.Error()}, "transport error")
	case status != http.StatusOK:
		r.failed = true
		q.record(r, &queryFailure{Status: status, Error: snippet(body)}, "HTTP "+strconv.Itoa(status))
	default:
		n, err := decode(body)
		r.results = int32(n)
		if err != nil {
			r.failed = true
			q.record(r, &queryFailure{Status: status, Error: "decoding the answer: " + err.Error()}, "undecodable answer")
			return
		}
		q.record(r, nil, "")
	}
}

func (q *queryRunner) traceByID(tr ackedTrace, old bool) {
	kind := kTraceHead
	if tr.cum <= q.stored() {
		kind = kTraceBlock
	}
	id := hex.EncodeToString(tr.id[:])
	status, body, at, lat, err := q.get("/api/v2/traces/"+id, "application/protobuf")
	r := queryRec{at: at, lat: lat, kind: uint8(kind)}
	f := &queryFailure{TraceID: id, AckAgeS: round(float64(at-tr.at)/1e9, 3)}
	// Every Export carrying a part of a trace is acked within moments of
	// the others, so a trace acked -query-old ago must be whole; a recent
	// one must have at least the spans of the Export that was acked.
	want := int(tr.spans)
	if old {
		want = int(tr.full)
	}
	f.WantMin = want
	switch {
	case err != nil:
		r.failed = true
		f.Error = err.Error()
		q.record(r, f, "transport error")
	case status == http.StatusNotFound:
		r.failed, r.missing = true, true
		f.Status, f.Error = status, "acked trace answered 404"
		q.record(r, f, "acked trace not found (404)")
	case status != http.StatusOK:
		r.failed = true
		f.Status, f.Error = status, snippet(body)
		q.record(r, f, "HTTP "+strconv.Itoa(status))
	default:
		spans, partial, err := countTraceByIDSpans(body)
		r.results = int32(spans)
		f.Status, f.GotSpans = status, spans
		switch {
		case err != nil:
			r.failed = true
			f.Error = "decoding the answer: " + err.Error()
			q.record(r, f, "undecodable answer")
		case spans == 0:
			r.failed, r.missing = true, true
			f.Error = "acked trace answered with an empty trace (not found)"
			q.record(r, f, "acked trace not found (200, empty trace)")
		case spans < want:
			r.failed, r.partial = true, true
			f.Error = fmt.Sprintf("%d spans, acked %d", spans, want)
			if partial {
				f.Error += " (status PARTIAL)"
			}
			q.record(r, f, "acked trace incomplete")
		default:
			q.record(r, nil, "")
		}
	}
}

func snippet(b []byte) string {
	if len(b) > 300 {
		b = b[:300]
	}
	return string(b)
}

// countTraceByIDSpans counts the spans of a tempopb.TraceByIDResponse
// (1 trace {1 resourceSpans {2 scopeSpans {2 spans}}}, 3 status: 1 =
// PARTIAL).
func countTraceByIDSpans(b []byte) (spans int, partial bool, err error) {
	err = walkMessage(b, 0, func(num protowire.Number, typ protowire.Type, _ int, v []byte) error {
		if num == 3 && typ == protowire.VarintType {
			x, _ := protowire.ConsumeVarint(v)
			partial = x == 1
		}
		if num != 1 || typ != protowire.BytesType {
			return nil
		}
		return walkMessage(v, 0, func(num protowire.Number, typ protowire.Type, _ int, v []byte) error {
			if num != 1 || typ != protowire.BytesType {
				return nil
			}
			return walkMessage(v, 0, func(num protowire.Number, typ protowire.Type, _ int, v []byte) error {
				if num != 2 || typ != protowire.BytesType {
					return nil
				}
				return walkMessage(v, 0, func(num protowire.Number, typ protowire.Type, _ int, _ []byte) error {
					if num == 2 && typ == protowire.BytesType {
						spans++
					}
					return nil
				})
			})
		})
	})
	return spans, partial, err
}

// --- results ---

type queryKindStats struct {
	Kind        string  `json:"kind"`
	Request     string  `json:"request"`
	Queries     int     `json:"queries"`
	Errors      int     `json:"errors"` // non-200, transport errors, undecodable answers, acked traces missing or incomplete
	NotFound    int     `json:"acked_trace_not_found,omitempty"`
	Incomplete  int     `json:"acked_trace_incomplete,omitempty"`
	Empty       int     `json:"empty_answers"`
	MeanResults float64 `json:"mean_results"` // traces, tag names, tag values or spans
	P50ms       float64 `json:"p50_ms"`
	P90ms       float64 `json:"p90_ms"`
	P99ms       float64 `json:"p99_ms"`
	Maxms       float64 `json:"max_ms"`
	Meanms      float64 `json:"mean_ms"`
}

type queryMinute struct {
	Minute  int     `json:"minute"`
	Queries int     `json:"queries"`
	Errors  int     `json:"errors"`
	P50ms   float64 `json:"p50_ms"`
	P99ms   float64 `json:"p99_ms"`
	Maxms   float64 `json:"max_ms"`
}

type queryResult struct {
	TargetRate        float64          `json:"target_rate_per_s"`
	AchievedRate      float64          `json:"achieved_rate_per_s"`
	Concurrency       int              `json:"concurrency"`
	Mix               string           `json:"mix"`
	RecentS           float64          `json:"recent_max_age_s"`
	OldS              float64          `json:"old_min_age_s"`
	TraceSampleEvery  int              `json:"acked_trace_sample_every"`
	TracesRecorded    int              `json:"acked_traces_recorded"`
	MaxBehindS        float64          `json:"max_dispatch_behind_s"`
	Kinds             []queryKindStats `json:"kinds"`
	All               queryKindStats   `json:"all"`
	PerMinute         []queryMinute    `json:"per_minute"`
	Picks             map[string]int   `json:"picks"`
	ErrorCounts       map[string]int   `json:"error_counts,omitempty"`
	Failures          []queryFailure   `json:"failures,omitempty"`
	ServerBlocksSkip  float64          `json:"server_query_blocks_skipped"`
	ServerBlocksKnown float64          `json:"server_query_blocklist_blocks_at_end"`
}

func kindStats(name, desc string, recs []queryRec) queryKindStats {
	s := queryKindStats{Kind: name, Request: desc, Queries: len(recs)}
	lats := make([]int64, 0, len(recs))
	var sum float64
	var ok int
	for _, r := range recs {
		lats = append(lats, r.lat)
		if r.failed {
			s.Errors++
		}
		if r.missing {
			s.NotFound++
		}
		if r.partial {
			s.Incomplete++
		}
		if !r.failed {
			ok++
			sum += float64(r.results)
			if r.results == 0 {
				s.Empty++
			}
		}
	}
	if ok > 0 {
		s.MeanResults = round(sum/float64(ok), 1)
	}
	l := summarize(lats)
	s.P50ms, s.P90ms, s.P99ms, s.Maxms, s.Meanms = l.P50ms, l.P90ms, l.P99ms, l.Maxms, l.Meanms
	return s
}

// result summarises the queries that started in [0, loadEnd).
func (q *queryRunner) result(loadEnd time.Duration) *queryResult {
	q.mu.Lock()
	recs := append([]queryRec(nil), q.recs...)
	res := &queryResult{TargetRate: q.rate, Concurrency: q.workers, Mix: queryMixDesc, RecentS: q.recentAge.Seconds(), OldS: q.oldAge.Seconds(),
		TraceSampleEvery: int(q.every), MaxBehindS: round(time.Duration(q.maxBehind.Load()).Seconds(), 3),
		Picks: map[string]int{}, ErrorCounts: map[string]int{}, Failures: append([]queryFailure(nil), q.failures...)}
	for k, v := range q.picks {
		res.Picks[k] = v
	}
	for k, v := range q.errors {
		res.ErrorCounts[k] = v
	}
	q.mu.Unlock()
	res.TracesRecorded = q.recordedTraces()
	sort.Slice(recs, func(i, j int) bool { return recs[i].at < recs[j].at })
	var byKind [nQueryKinds][]queryRec
	for _, r := range recs {
		byKind[r.kind] = append(byKind[r.kind], r)
	}
	for k := range nQueryKinds {
		res.Kinds = append(res.Kinds, kindStats(queryKindNames[k], queryKindDesc[k], byKind[k]))
	}
	res.All = kindStats("all", "", recs)
	if loadEnd > 0 {
		res.AchievedRate = round(float64(len(recs))/loadEnd.Seconds(), 2)
	}
	for i := 0; i < len(recs); {
		m := int(recs[i].at / int64(time.Minute))
		j := i
		for j < len(recs) && int(recs[j].at/int64(time.Minute)) == m {
			j++
		}
		s := kindStats("", "", recs[i:j])
		res.PerMinute = append(res.PerMinute, queryMinute{Minute: m, Queries: s.Queries, Errors: s.Errors, P50ms: s.P50ms, P99ms: s.P99ms, Maxms: s.Maxms})
		i = j
	}
	return res
}
