package search

import (
	"context"
	"fmt"
	"math"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/traceql"
)

// TraceQL metrics (`{…} | rate() by (…)`, count_over_time, and
// min/max/avg_over_time of a duration or numeric attribute) over the head
// and the blocks. Choices, where Tempo's behaviour is not recorded in the
// fixtures:
//
//   - Step: the `step` parameter (a Go/Prometheus duration such as `30s`,
//     or seconds); when absent or 0, about 240 points per range as Tempo:
//     (end−start)/240 rounded down to a multiple of 5 s (of 1 s below 5 s),
//     at least 1 s.
//   - Intervals: start is aligned down to a multiple of the step; interval
//     i is [start+i·step, start+(i+1)·step) and its sample carries the
//     interval's start as timestampMs. The last interval is the one holding
//     end, so every interval is whole. A span counts in the interval its
//     start time falls in.
//   - A span stored twice in one place (a trace's row, the head) counts
//     once; a trace's parts in different places each count.
//   - Series: one per distinct by() tuple (without by(): one series named
//     by `__name__` = the function). A span without a by() attribute goes
//     to the series whose label value is the string "nil", as select()
//     shows absent values. rate and count_over_time give a sample for every
//     interval (0 when empty); min/max/avg only for intervals with values.
//     _over_time of a duration is in seconds, as Tempo's.
//   - Instant queries are one interval [start, end) (no alignment); rate
//     divides by its length.

// Bounds of one metrics query.
const (
	// MaxMetricsSeries is the most series one query may produce.
	MaxMetricsSeries = 1000
	// MaxMetricsPoints is the most intervals of a range query.
	MaxMetricsPoints = 11000
)

// MetricsRequest is a TraceQL metrics query over a time range.
type MetricsRequest struct {
	Query *traceql.Query
	// Start and End bound the query; Step is the interval length (0: the
	// default for the range). Instant requests use one interval.
	Start, End time.Time
	Step       time.Duration
	Instant    bool
}

// ParseMetricsRequest reads the parameters of /api/metrics/query_range
// (instant false) or /api/metrics/query: `q` (older Grafana: `query`),
// `start`, `end` (Unix seconds; without them the last hour), `step`.
func ParseMetricsRequest(v url.Values, instant bool) (MetricsRequest, error) {
	req := MetricsRequest{Instant: instant}
	text := v.Get("q")
	if text == "" {
		text = v.Get("query")
	}
	if strings.TrimSpace(text) == "" {
		return req, reqErr("missing q: a TraceQL metrics query such as {} | rate()")
	}
	q, err := traceql.Parse(text)
	if err != nil {
		return req, reqErr("invalid TraceQL query: %v", err)
	}
	if q.Metrics == nil {
		return req, reqErr("invalid TraceQL query: %q has no metrics function; append one such as | rate(), or send searches to /api/search", text)
	}
	req.Query = q
	if req.Start, req.End, err = timeRange(v); err != nil {
		return req, err
	}
	if req.End.IsZero() {
		req.End = time.Now().UTC().Truncate(time.Second)
	}
	if req.Start.IsZero() {
		req.Start = req.End.Add(-time.Hour)
	}
	if !req.End.After(req.Start) {
		return req, reqErr("invalid start/end: the range [%d, %d) is empty", req.Start.Unix(), req.End.Unix())
	}
	if s := v.Get("step"); s != "" && !instant {
		step, err := parseStep(s)
		if err != nil {
			return req, err
		}
		req.Step = step
	}
	return req, nil
}

// parseStep reads `30s`, `1m30s`, `1.5` (seconds) or `0` (default).
func parseStep(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		f, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return 0, reqErr("invalid step %q: want a duration such as 30s or a number of seconds", s)
		}
		d = time.Duration(f * float64(time.Second))
	}
	if d < 0 {
		return 0, reqErr("invalid step %q: must not be negative", s)
	}
	if d > 0 && d < time.Millisecond {
		return 0, reqErr("invalid step %q: at least 1ms", s)
	}
	return d, nil
}

// DefaultStep is the step of a range without one: about 240 points.
func DefaultStep(start, end time.Time) time.Duration {
	base := end.Sub(start) / 240
	step := base / (5 * time.Second) * (5 * time.Second)
	if step < 5*time.Second {
		step = base / time.Second * time.Second
	}
	return max(step, time.Second)
}

// QueryRangeResponse is Tempo's answer to /api/metrics/query_range.
type QueryRangeResponse struct {
	Series  []*TimeSeries `json:"series"`
	Metrics *Metrics      `json:"metrics"`
}

// TimeSeries is one series of a range answer.
type TimeSeries struct {
	Labels     []KeyValue `json:"labels"`
	Samples    []Sample   `json:"samples"`
	PromLabels string     `json:"promLabels,omitempty"`
}

// Sample is one point: the interval's start (Unix ms) and its value.
type Sample struct {
	TimestampMs Uint64String `json:"timestampMs"`
	Value       float64      `json:"value"`
}

// QueryInstantResponse is Tempo's answer to /api/metrics/query.
type QueryInstantResponse struct {
	Series  []*InstantSeries `json:"series"`
	Metrics *Metrics         `json:"metrics"`
}

// InstantSeries is one series of an instant answer.
type InstantSeries struct {
	Labels     []KeyValue `json:"labels"`
	Value      float64    `json:"value"`
	PromLabels string     `json:"promLabels,omitempty"`
}

// metricsPlan is a metrics request prepared for evaluation.
type metricsPlan struct {
	q       *traceql.Query
	fn      string
	start   uint64 // ns, aligned
	step    uint64 // ns
	n       int    // intervals
	mu      sync.Mutex
	series  map[string]*accum
	tooMany bool
}

// accum is one series' per-interval aggregate.
type accum struct {
	labels []KeyValue
	count  []float64
	sum    []float64
	min    []float64
	max    []float64
}

func newMetricsPlan(req MetricsRequest) (*metricsPlan, error) {
	start, end := req.Start, req.End
	step := req.Step
	if req.Instant {
		step = end.Sub(start)
	} else {
		if step == 0 {
			step = DefaultStep(start, end)
		}
		start = time.Unix(0, start.UnixNano()-start.UnixNano()%int64(step))
	}
	n := int((end.Sub(start) + step - 1) / step)
	if n > MaxMetricsPoints {
		return nil, reqErr("invalid step %s: the range would have %d points, more than %d; use a larger step or a shorter range", step, n, MaxMetricsPoints)
	}
	m := req.Query.Metrics
	p := &metricsPlan{q: req.Query, fn: m.Func, start: uint64(start.UnixNano()), step: uint64(step), n: n,
		series: map[string]*accum{}}
	return p, nil
}

func (p *metricsPlan) end() uint64 { return p.start + uint64(p.n)*p.step }

// valueOf is the number a span adds; ok is false when it adds nothing
// (an _over_time attribute that is absent or not a number).
func (p *metricsPlan) valueOf(s traceql.Span) (float64, bool) {
	a := p.q.Metrics.Attr
	if a == nil {
		return 1, true
	}
	v, ok := traceql.Lookup(s, a)
	if !ok {
		return 0, false
	}
	switch v.Type {
	case traceql.TypeInt:
		return float64(v.I), true
	case traceql.TypeFloat:
		return v.F, !math.IsNaN(v.F)
	case traceql.TypeDuration:
		return v.D.Seconds(), true
	}
	return 0, false
}

// groupOf is the series a span belongs to: its key and labels.
func (p *metricsPlan) groupOf(s traceql.Span) (string, []KeyValue) {
	by := p.q.Metrics.By
	if len(by) == 0 {
		return "", []KeyValue{{Key: "__name__", Value: AnyValue{Type: traceql.TypeString, S: p.fn}}}
	}
	labels := make([]KeyValue, len(by))
	var key strings.Builder
	for i := range by {
		v, ok := traceql.Lookup(s, &by[i])
		av := AnyValue{Type: traceql.TypeString, S: "nil"}
		if ok && v.Type != typeOther {
			av = anyValueOf(v)
		}
		labels[i] = KeyValue{Key: by[i].String(), Value: av}
		fmt.Fprintf(&key, "%d:%s\x00", av.Type, labelText(av))
	}
	return key.String(), labels
}

// labelText is a label value as Prometheus text.
func labelText(v AnyValue) string {
	switch v.Type {
	case traceql.TypeInt:
		return strconv.FormatInt(v.I, 10)
	case traceql.TypeFloat:
		return strconv.FormatFloat(v.F, 'g', -1, 64)
	case traceql.TypeBool:
		return strconv.FormatBool(v.B)
	}
	return v.S
}

// addTrace evaluates the filter over one part of a trace and adds its
// selected spans (each span ID once) to their series.
func (p *metricsPlan) addTrace(td ptrace.Traces, info *part) {
	var spans []traceql.Span
	var pd []*pdSpan
	tr := &traceInfo{}
	if info != nil {
		tr = &traceInfo{rootService: info.rootService, rootName: info.rootName, start: info.start, end: info.end}
	} else {
		tr.rootService, tr.rootName, _ = rootOf(td)
		tr.start, tr.end = timesOf(td)
	}
	seen := map[pcommon.SpanID]bool{}
	lo, hi := p.start, p.end()
	forEachSpan(td, func(res pcommon.Map, sp ptrace.Span) {
		if seen[sp.SpanID()] {
			return
		}
		seen[sp.SpanID()] = true
		s := &pdSpan{sp: sp, res: res, tr: tr}
		spans = append(spans, s)
		pd = append(pd, s)
	})
	matched := traceql.Eval(p.q.Filter, spans)
	if len(matched) == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, i := range matched {
		s := pd[i]
		ts := uint64(s.sp.StartTimestamp())
		if ts < lo || ts >= hi {
			continue
		}
		v, ok := p.valueOf(s)
		if !ok {
			continue
		}
		key, labels := p.groupOf(s)
		a := p.series[key]
		if a == nil {
			if len(p.series) >= MaxMetricsSeries {
				p.tooMany = true
				continue
			}
			a = &accum{labels: labels, count: make([]float64, p.n), sum: make([]float64, p.n),
				min: make([]float64, p.n), max: make([]float64, p.n)}
			p.series[key] = a
		}
		k := int((ts - lo) / p.step)
		if a.count[k] == 0 || v < a.min[k] {
			a.min[k] = v
		}
		if a.count[k] == 0 || v > a.max[k] {
			a.max[k] = v
		}
		a.count[k]++
		a.sum[k] += v
	}
}

// timesOf is the first span start and last span end of td (ns).
func timesOf(td ptrace.Traces) (start, end uint64) {
	first := true
	forEachSpan(td, func(_ pcommon.Map, sp ptrace.Span) {
		s, e := uint64(sp.StartTimestamp()), uint64(sp.EndTimestamp())
		if first || s < start {
			start = s
		}
		if first || e > end {
			end = e
		}
		first = false
	})
	return start, end
}

// value is interval k's value of a series; ok is false when there is none.
func (p *metricsPlan) value(a *accum, k int) (float64, bool) {
	switch p.fn {
	case "rate":
		return a.count[k] / (float64(p.step) / float64(time.Second)), true
	case "count_over_time":
		return a.count[k], true
	}
	if a.count[k] == 0 {
		return 0, false
	}
	switch p.fn {
	case "min_over_time":
		return a.min[k], true
	case "max_over_time":
		return a.max[k], true
	}
	return a.sum[k] / a.count[k], true
}

// promLabels is the series' labels as Prometheus text: `{a="x", b="y"}`.
func promLabels(labels []KeyValue) string {
	parts := make([]string, len(labels))
	for i, l := range labels {
		parts[i] = l.Key + "=" + strconv.Quote(labelText(l.Value))
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// run reads the head and the blocks overlapping the intervals.
func (e *Engine) runMetrics(ctx context.Context, tenant string, metas []*block.Meta, head HeadSource, req MetricsRequest) (*metricsPlan, *Metrics, error) {
	if req.Query == nil || req.Query.Metrics == nil {
		return nil, nil, reqErr("metrics query: no metrics function; append one such as | rate()")
	}
	p, err := newMetricsPlan(req)
	if err != nil {
		return nil, nil, err
	}
	metas = inWindow(metas, time.Unix(0, int64(p.start)), time.Unix(0, int64(p.end())))
	var total uint64
	for _, m := range metas {
		total += m.Size
	}
	var spans, traces int64
	var cmu sync.Mutex
	metrics, err := e.forEachPart(ctx, "metrics", tenant, metas, head, func(td ptrace.Traces, info *part) bool {
		if info != nil && (info.end < p.start || info.start >= p.end()) {
			return ctx.Err() == nil
		}
		cmu.Lock()
		spans += int64(td.SpanCount())
		traces++
		cmu.Unlock()
		p.addTrace(td, info)
		return ctx.Err() == nil
	})
	if err != nil {
		return nil, nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	if p.tooMany {
		return nil, nil, reqErr("metrics query %q: more than %d series; narrow the filter or group by fewer attributes", req.Query.Text, MaxMetricsSeries)
	}
	metrics.InspectedSpans = Uint64String(spans)
	metrics.InspectedTraces = uint32(traces)
	metrics.TotalBlocks = uint32(len(metas))
	metrics.TotalJobs = uint32(len(metas)) + 1
	metrics.CompletedJobs = metrics.TotalJobs
	metrics.TotalBlockBytes = Uint64String(total)
	return p, metrics, nil
}

// sortedSeries returns the series ordered by their Prometheus labels.
func (p *metricsPlan) sortedSeries() []*accum {
	out := make([]*accum, 0, len(p.series))
	for _, a := range p.series {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return promLabels(out[i].labels) < promLabels(out[j].labels) })
	return out
}

// MetricsQueryRange answers /api/metrics/query_range over the head (may
// be nil) and the blocks in metas (one tenant's live blocks; pruned by
// time here). A block that cannot be read fails the query.
func (e *Engine) MetricsQueryRange(ctx context.Context, tenant string, metas []*block.Meta, head HeadSource, req MetricsRequest) (*QueryRangeResponse, error) {
	req.Instant = false
	p, metrics, err := e.runMetrics(ctx, tenant, metas, head, req)
	if err != nil {
		return nil, err
	}
	resp := &QueryRangeResponse{Series: []*TimeSeries{}, Metrics: metrics}
	for _, a := range p.sortedSeries() {
		ts := &TimeSeries{Labels: a.labels, Samples: []Sample{}, PromLabels: promLabels(a.labels)}
		for k := 0; k < p.n; k++ {
			if v, ok := p.value(a, k); ok {
				ms := (p.start + uint64(k)*p.step) / uint64(time.Millisecond)
				ts.Samples = append(ts.Samples, Sample{TimestampMs: Uint64String(ms), Value: v})
			}
		}
		resp.Series = append(resp.Series, ts)
	}
	return resp, nil
}

// MetricsQueryInstant answers /api/metrics/query: one value per series
// over [Start, End).
func (e *Engine) MetricsQueryInstant(ctx context.Context, tenant string, metas []*block.Meta, head HeadSource, req MetricsRequest) (*QueryInstantResponse, error) {
	req.Instant = true
	p, metrics, err := e.runMetrics(ctx, tenant, metas, head, req)
	if err != nil {
		return nil, err
	}
	resp := &QueryInstantResponse{Series: []*InstantSeries{}, Metrics: metrics}
	for _, a := range p.sortedSeries() {
		if v, ok := p.value(a, 0); ok {
			resp.Series = append(resp.Series, &InstantSeries{Labels: a.labels, Value: v, PromLabels: promLabels(a.labels)})
		}
	}
	return resp, nil
}
