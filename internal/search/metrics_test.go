package search

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/url"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/otlptest"
)

// The corpus's spans start 2026-11-20 10:00–10:26 UTC.
const (
	corpusFrom = 1795168800 // 10:00:00
	corpusTo   = 1795170600 // 10:30:00
)

// expectSeries computes, straight from the corpus lines, what a metrics
// query must answer: per service (or one series), per interval of step
// seconds from corpusFrom, the count (and duration sum/min/max) of the
// distinct spans for which keep is true.
type expected struct {
	count, sum, min, max map[string]map[int64]float64
}

func expectSeries(c *otlptest.Corpus, step int64, byService bool, keep func(res pcommon.Map, sp ptrace.Span) bool) expected {
	ex := expected{map[string]map[int64]float64{}, map[string]map[int64]float64{}, map[string]map[int64]float64{}, map[string]map[int64]float64{}}
	seen := map[[24]byte]bool{}
	for _, td := range c.Lines {
		forEachSpan(td, func(res pcommon.Map, sp ptrace.Span) {
			var k [24]byte
			tid, sid := sp.TraceID(), sp.SpanID()
			copy(k[:16], tid[:])
			copy(k[16:], sid[:])
			if seen[k] || !keep(res, sp) {
				return
			}
			seen[k] = true
			key := ""
			if byService {
				v, _ := res.Get("service.name")
				key = v.Str()
			}
			ts := int64(sp.StartTimestamp()) / 1e9
			if ts < corpusFrom || ts >= corpusTo {
				return
			}
			bucket := corpusFrom + (ts-corpusFrom)/step*step
			d := float64(sp.EndTimestamp()-sp.StartTimestamp()) / 1e9
			for _, m := range []map[string]map[int64]float64{ex.count, ex.sum, ex.min, ex.max} {
				if m[key] == nil {
					m[key] = map[int64]float64{}
				}
			}
			if ex.count[key][bucket] == 0 || d < ex.min[key][bucket] {
				ex.min[key][bucket] = d
			}
			if ex.count[key][bucket] == 0 || d > ex.max[key][bucket] {
				ex.max[key][bucket] = d
			}
			ex.count[key][bucket]++
			ex.sum[key][bucket] += d
		})
	}
	return ex
}

func metricsRange(t *testing.T, e *Engine, metas []*block.Meta, head HeadSource, q, step string) *QueryRangeResponse {
	t.Helper()
	v := url.Values{"q": {q}, "start": {itoa(corpusFrom)}, "end": {itoa(corpusTo)}}
	if step != "" {
		v.Set("step", step)
	}
	req, err := ParseMetricsRequest(v, false)
	if err != nil {
		t.Fatalf("ParseMetricsRequest(%v): %v", v, err)
	}
	resp, err := e.MetricsQueryRange(context.Background(), "single-tenant", metas, head, req)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return resp
}

// checkRange compares a range answer with the expectation: value(count,
// sum, min, max) gives an interval's expected value, present says
// whether an interval without spans has a sample (0).
func checkRange(t *testing.T, name string, resp *QueryRangeResponse, ex expected, step int64, labelKey string,
	value func(count, sum, min, max float64) float64, zeros bool) {
	t.Helper()
	if _, err := json.Marshal(resp); err != nil {
		t.Fatal(err)
	}
	if len(resp.Series) != len(ex.count) {
		var got []string
		for _, s := range resp.Series {
			got = append(got, s.PromLabels)
		}
		t.Fatalf("%s: %d series %v, want %d", name, len(resp.Series), got, len(ex.count))
	}
	n := (corpusTo - corpusFrom) / step
	for _, s := range resp.Series {
		key := ""
		if labelKey != "" {
			if len(s.Labels) != 1 || s.Labels[0].Key != labelKey {
				t.Fatalf("%s: labels %+v, want one %q", name, s.Labels, labelKey)
			}
			key = s.Labels[0].Value.S
		} else if len(s.Labels) != 1 || s.Labels[0].Key != "__name__" {
			t.Fatalf("%s: labels %+v, want __name__", name, s.Labels)
		}
		want := ex.count[key]
		if want == nil {
			t.Errorf("%s: unexpected series %s", name, s.PromLabels)
			continue
		}
		got := map[int64]float64{}
		for _, smp := range s.Samples {
			ms := int64(smp.TimestampMs)
			if ms%(step*1000) != 0 || ms < corpusFrom*1000 || ms >= corpusTo*1000 {
				t.Errorf("%s %s: sample at %d ms, not an interval start", name, s.PromLabels, ms)
			}
			got[ms/1000] = smp.Value
		}
		if zeros && int64(len(s.Samples)) != n {
			t.Errorf("%s %s: %d samples, want one per interval (%d)", name, s.PromLabels, len(s.Samples), n)
		}
		for b := int64(corpusFrom); b < corpusTo; b += step {
			c := want[b]
			g, ok := got[b]
			if c == 0 {
				if ok && g != 0 {
					t.Errorf("%s %s at %d: %v, want 0", name, s.PromLabels, b, g)
				}
				continue
			}
			w := value(c, ex.sum[key][b], ex.min[key][b], ex.max[key][b])
			if !ok || math.Abs(g-w) > 1e-9*math.Max(1, math.Abs(w)) {
				t.Errorf("%s %s at %s: %v (present %v), want %v", name, s.PromLabels, time.Unix(b, 0).UTC().Format("15:04"), g, ok, w)
			}
		}
	}
}

// TestMetricsQueryRange checks metrics over the fixture blocks of every
// format against counts made from the corpus itself.
func TestMetricsQueryRange(t *testing.T) {
	c := otlptest.LoadCorpus(t)
	all := func(pcommon.Map, ptrace.Span) bool { return true }
	errs := func(_ pcommon.Map, sp ptrace.Span) bool { return sp.Status().Code() == ptrace.StatusCodeError }
	count := func(c, _, _, _ float64) float64 { return c }
	for _, fixture := range []string{"vparquet4", "vparquet3", "vparquet5"} {
		t.Run(fixture, func(t *testing.T) {
			b, metas := openFixture(t, fixture)
			for _, generic := range []bool{false, true} {
				e := NewEngine(b, Options{Generic: generic})
				resp := metricsRange(t, e, metas, nil, `{} | count_over_time() by (resource.service.name)`, "60s")
				checkRange(t, "count by service", resp, expectSeries(c, 60, true, all), 60, "resource.service.name", count, true)

				resp = metricsRange(t, e, metas, nil, `{ status = error } | rate()`, "5m")
				checkRange(t, "error rate", resp, expectSeries(c, 300, false, errs), 300, "",
					func(c, _, _, _ float64) float64 { return c / 300 }, true)

				ex := expectSeries(c, 120, true, all)
				resp = metricsRange(t, e, metas, nil, `{} | avg_over_time(duration) by (resource.service.name)`, "2m")
				checkRange(t, "avg duration", resp, ex, 120, "resource.service.name", func(c, s, _, _ float64) float64 { return s / c }, false)
				resp = metricsRange(t, e, metas, nil, `{} | max_over_time(duration) by (resource.service.name)`, "120")
				checkRange(t, "max duration", resp, ex, 120, "resource.service.name", func(_, _, _, m float64) float64 { return m }, false)
				resp = metricsRange(t, e, metas, nil, `{} | min_over_time(duration) by (resource.service.name)`, "2m")
				checkRange(t, "min duration", resp, ex, 120, "resource.service.name", func(_, _, m, _ float64) float64 { return m }, false)
			}
		})
	}
}

// TestMetricsHeadAndBlock runs a metrics query over a live server whose
// data is partly in the head, partly in a block: every span counts once.
func TestMetricsHeadAndBlock(t *testing.T) {
	srv, b, metas, c := liveServer(t)
	e := NewEngine(b, Options{})
	resp := metricsRange(t, e, metas, srv, `{} | count_over_time() by (resource.service.name)`, "1m")
	checkRange(t, "count by service", resp, expectSeries(c, 60, true, func(pcommon.Map, ptrace.Span) bool { return true }),
		60, "resource.service.name", func(c, _, _, _ float64) float64 { return c }, true)
}

// TestMetricsInstant checks /api/metrics/query: one value per series over
// the whole range.
func TestMetricsInstant(t *testing.T) {
	c := otlptest.LoadCorpus(t)
	b, metas := openFixture(t, "vparquet4")
	e := NewEngine(b, Options{})
	v := url.Values{"q": {`{ kind = server } | rate() by (resource.service.name)`}, "start": {itoa(corpusFrom)}, "end": {itoa(corpusTo)}}
	req, err := ParseMetricsRequest(v, true)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := e.MetricsQueryInstant(context.Background(), "single-tenant", metas, nil, req)
	if err != nil {
		t.Fatal(err)
	}
	ex := expectSeries(c, corpusTo-corpusFrom, true, func(_ pcommon.Map, sp ptrace.Span) bool { return sp.Kind() == ptrace.SpanKindServer })
	if len(resp.Series) != len(ex.count) || len(resp.Series) == 0 {
		t.Fatalf("%d series, want %d", len(resp.Series), len(ex.count))
	}
	for _, s := range resp.Series {
		want := ex.count[s.Labels[0].Value.S][corpusFrom] / float64(corpusTo-corpusFrom)
		if math.Abs(s.Value-want) > 1e-12 {
			t.Errorf("%s: %v, want %v", s.PromLabels, s.Value, want)
		}
		if !strings.HasPrefix(s.PromLabels, `{resource.service.name="`) {
			t.Errorf("promLabels %q", s.PromLabels)
		}
	}
	data, _ := json.Marshal(resp)
	var strict struct {
		Series []struct {
			Labels     []json.RawMessage `json:"labels"`
			Value      float64           `json:"value"`
			PromLabels string            `json:"promLabels"`
		} `json:"series"`
		Metrics map[string]any `json:"metrics"`
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&strict); err != nil {
		t.Fatalf("instant answer %s: %v", data, err)
	}
}

func TestParseMetricsRequest(t *testing.T) {
	for _, c := range []struct {
		q    url.Values
		want string
	}{
		{url.Values{"q": {"{}"}}, "has no metrics function"},
		{url.Values{}, "missing q"},
		{url.Values{"q": {"{} | rate()"}, "step": {"fast"}}, `invalid step "fast"`},
		{url.Values{"q": {"{} | rate()"}, "step": {"-1s"}}, "must not be negative"},
		{url.Values{"q": {"{} | rate()"}, "start": {"100"}, "end": {"100000"}, "step": {"1s"}}, "more than 11000"},
		{url.Values{"q": {"{} | rate("}}, "invalid TraceQL query"},
	} {
		req, err := ParseMetricsRequest(c.q, false)
		if err == nil {
			_, err = newMetricsPlan(req)
		}
		if err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, ErrBadRequest) {
			t.Errorf("%v: error %v, want a bad request saying %q", c.q, err, c.want)
		}
	}
	req, err := ParseMetricsRequest(url.Values{"query": {"{} | rate()"}, "start": {"1000"}, "end": {"4600"}}, false)
	if err != nil {
		t.Fatal(err)
	}
	if got := DefaultStep(req.Start, req.End); got != 15*time.Second {
		t.Errorf("default step of an hour: %v, want 15s (240 points)", got)
	}
	if got := DefaultStep(req.Start, req.Start.Add(10*time.Minute)); got != 2*time.Second {
		t.Errorf("default step of 10m: %v, want 2s", got)
	}
}
