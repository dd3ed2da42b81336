// Command search measures search on a large vParquet4 bucket: the bucket
// bench/traceid writes (run it first: `go run ./bench/traceid`, 10M spans
// in 20 blocks), searched warm through the same engine `tracectl serve`
// uses. It reports, per query, median and p99 latency, CPU-seconds, spans
// scanned per CPU-second and the share of the bucket's bytes read.
//
//	go run ./bench/search -bucket /tmp/tracectl-bench-traceid/10000000-20-10-rg0
package main

import (
	"context"
	"flag"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/tracectl/tracectl/bench/internal/benchkit"
	"github.com/tracectl/tracectl/internal/blocks"
	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/search"
	"github.com/tracectl/tracectl/internal/storage"
)

func main() {
	dir := flag.String("bucket", filepath.Join(os.TempDir(), "tracectl-bench-traceid", "10000000-20-10-rg0"), "bucket directory written by bench/traceid")
	runs := flag.Int("runs", 7, "runs per query")
	metrics := flag.Bool("metrics", false, "also time TraceQL metrics queries (they convert every span: slow)")
	only := flag.String("only", "", "run only the searches whose name contains this")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	generic := flag.Bool("generic-tagq", false, "also time tag values with q on the OTLP path (slow: converts every span)")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		check(err)
		check(pprof.StartCPUProfile(f))
		defer pprof.StopCPUProfile()
	}
	ctx := context.Background()
	b, err := storage.Open(ctx, "file://"+*dir)
	check(err)
	l, err := blocks.List(ctx, b, "single-tenant", blocks.ListOptions{})
	check(err)
	var metas []*block.Meta
	var total uint64
	for _, bi := range l.Blocks {
		metas = append(metas, bi.Meta)
		total += bi.Meta.Size
	}
	if len(metas) == 0 {
		fmt.Fprintf(os.Stderr, "search bench: no blocks in %s; run `go run ./bench/traceid` first\n", *dir)
		os.Exit(1)
	}
	e := search.NewEngine(b, search.Options{})
	fmt.Printf("bucket %s: %d blocks, %d bytes\n", *dir, len(metas), total)
	queries := []struct{ name, q, limit string }{
		{"service, limit 20 (Grafana default)", `{ resource.service.name = "cart" }`, ""},
		{"service, no match (full scan)", `{ resource.service.name = "does-not-exist" }`, ""},
		{"service && error, limit 1000", `{ resource.service.name = "cart" && status = error }`, "1000"},
		{"service, limit 1000", `{ resource.service.name = "cart" }`, "1000"},
		{"span int attr, no match (full scan)", `{ span.http.response.status_code = 500 }`, ""},
		{"span int attr, limit 1000", `{ span.http.response.status_code = 200 }`, "1000"},
		{"dedicated span.http.route, limit 1000", `{ span.http.route = "/health" }`, "1000"},
		{"resource generic attr, no match", `{ resource.service.version = "9.9.9" }`, ""},
		{"unscoped .service.name, limit 20", `{ .service.name = "cart" }`, ""},
		{"unscoped .service.name, no match", `{ .service.name = "does-not-exist" }`, ""},
	}
	for _, q := range queries {
		if !strings.Contains(q.name, *only) {
			continue
		}
		v := url.Values{"q": {q.q}}
		if q.limit != "" {
			v.Set("limit", q.limit)
		}
		req, err := search.ParseRequest(v)
		check(err)
		var lat, cpu []time.Duration
		var resp *search.Response
		for i := 0; i <= *runs; i++ {
			c0, t0 := benchkit.CPUTime(), time.Now()
			resp, err = e.Search(ctx, "single-tenant", metas, nil, req)
			check(err)
			if i == 0 {
				continue // warm-up: footers parsed and cached
			}
			lat = append(lat, time.Since(t0))
			cpu = append(cpu, benchkit.CPUTime()-c0)
		}
		slices.Sort(lat)
		slices.Sort(cpu)
		spans := float64(resp.Metrics.InspectedSpans)
		fmt.Printf("%-40s traces %4d  p50 %8.1f ms  p99 %8.1f ms  cpu p50 %8.1f ms  spans %9.0f  spans/cpu-s %6.2f M  bytes read %5.2f%%\n",
			q.name, len(resp.Traces), benchkit.Ms(lat[len(lat)/2]), benchkit.Ms(lat[len(lat)-1]), benchkit.Ms(cpu[len(cpu)/2]), spans,
			spans/cpu[len(cpu)/2].Seconds()/1e6, 100*float64(resp.Metrics.InspectedBytes)/float64(total))
	}
	if *metrics {
		start, end := metas[0].StartTime, metas[0].EndTime
		for _, m := range metas {
			if m.StartTime.Before(start) {
				start = m.StartTime
			}
			if m.EndTime.After(end) {
				end = m.EndTime
			}
		}
		for _, q := range []string{`{ resource.service.name = "cart" } | rate()`, `{} | count_over_time() by (resource.service.name)`} {
			v := url.Values{"q": {q}, "start": {fmt.Sprint(start.Unix())}, "end": {fmt.Sprint(end.Unix() + 1)}}
			req, err := search.ParseMetricsRequest(v, false)
			check(err)
			var lat, cpu []time.Duration
			var resp *search.QueryRangeResponse
			for i := 0; i <= *runs; i++ {
				c0, t0 := benchkit.CPUTime(), time.Now()
				resp, err = e.MetricsQueryRange(ctx, "single-tenant", metas, nil, req)
				check(err)
				if i > 0 {
					lat = append(lat, time.Since(t0))
					cpu = append(cpu, benchkit.CPUTime()-c0)
				}
			}
			slices.Sort(lat)
			slices.Sort(cpu)
			spans := float64(resp.Metrics.InspectedSpans)
			fmt.Printf("metrics %-32s series %4d  p50 %8.1f ms  p99 %8.1f ms  cpu p50 %8.1f ms  spans %9.0f  spans/cpu-s %6.2f M\n",
				q, len(resp.Series), benchkit.Ms(lat[len(lat)/2]), benchkit.Ms(lat[len(lat)-1]), benchkit.Ms(cpu[len(cpu)/2]), spans, spans/cpu[len(cpu)/2].Seconds()/1e6)
		}
	}
	for _, tag := range []string{"resource.service.name", "name", "status", "kind"} {
		req, err := search.ParseTagValuesRequest(tag, true, url.Values{})
		check(err)
		// Cold: a fresh engine (footers cached by the OS only), one run.
		t0 := time.Now()
		_, err = search.NewEngine(b, search.Options{}).TagValues(ctx, "single-tenant", metas, nil, req)
		check(err)
		cold := time.Since(t0)
		var lat []time.Duration
		var n int
		for i := 0; i <= *runs*3; i++ {
			t0 := time.Now()
			resp, err := e.TagValues(ctx, "single-tenant", metas, nil, req)
			check(err)
			if i > 0 {
				lat = append(lat, time.Since(t0))
			}
			n = len(resp.Values)
		}
		slices.Sort(lat)
		fmt.Printf("tag values %-29s values %4d  p50 %8.1f ms  p99 %8.1f ms  (cold, first query of a new engine: %.1f ms)\n", tag, n, benchkit.Ms(lat[len(lat)/2]), benchkit.Ms(lat[len(lat)*99/100]), benchkit.Ms(cold))
	}
	// Tag names, as Grafana asks when Explore opens (v2, every scope).
	{
		req, err := search.ParseTagsRequest(url.Values{"limit": {"5000"}})
		check(err)
		fresh := search.NewEngine(b, search.Options{})
		c0, t0 := benchkit.CPUTime(), time.Now()
		resp, err := fresh.TagNames(ctx, "single-tenant", metas, nil, req)
		check(err)
		cold, coldCPU := time.Since(t0), benchkit.CPUTime()-c0
		var lat []time.Duration
		for i := 0; i < *runs*3; i++ {
			t0 := time.Now()
			_, err := fresh.TagNames(ctx, "single-tenant", metas, nil, req)
			check(err)
			lat = append(lat, time.Since(t0))
		}
		slices.Sort(lat)
		n := 0
		for _, sc := range resp.Scopes {
			n += len(sc.Tags)
		}
		fmt.Printf("tag names (v2, all scopes)  names %4d  cold %8.1f ms (cpu %8.1f ms)  warm p50 %6.2f ms  p99 %6.2f ms\n",
			n, benchkit.Ms(cold), benchkit.Ms(coldCPU), benchkit.Ms(lat[len(lat)/2]), benchkit.Ms(lat[len(lat)*99/100]))
		if *generic {
			c0, t0 := benchkit.CPUTime(), time.Now()
			g, err := search.NewEngine(b, search.Options{Generic: true}).TagNames(ctx, "single-tenant", metas, nil, req)
			check(err)
			m := 0
			for _, sc := range g.Scopes {
				m += len(sc.Tags)
			}
			fmt.Printf("  the same on the OTLP path: names %d, %8.1f ms (cpu %8.1f ms)\n", m, benchkit.Ms(time.Since(t0)), benchkit.Ms(benchkit.CPUTime()-c0))
		}
	}
	// Tag values narrowed by q, as Grafana's Search tab asks once a filter
	// is picked: read span by span from columns (cold), then from the
	// per-block cache (warm).
	for _, c := range []struct{ tag, q string }{
		{"name", `{ resource.service.name = "cart" }`},
		{"resource.service.name", `{ status = error }`},
		{"status", `{ resource.service.name = "cart" && name = "SELECT orders" }`},
		{"kind", `{ duration > 5ms }`},
	} {
		req, err := search.ParseTagValuesRequest(c.tag, true, url.Values{"q": {c.q}})
		check(err)
		fresh := search.NewEngine(b, search.Options{})
		c0, t0 := benchkit.CPUTime(), time.Now()
		resp, err := fresh.TagValues(ctx, "single-tenant", metas, nil, req)
		check(err)
		cold, coldCPU := time.Since(t0), benchkit.CPUTime()-c0
		var lat []time.Duration
		for i := 0; i < *runs*3; i++ {
			t0 := time.Now()
			_, err := fresh.TagValues(ctx, "single-tenant", metas, nil, req)
			check(err)
			lat = append(lat, time.Since(t0))
		}
		slices.Sort(lat)
		fmt.Printf("tag values %-22s q=%-55s values %4d  cold %8.1f ms (cpu %8.1f ms, %5.2f%% of bytes)  warm p50 %6.2f ms  p99 %6.2f ms\n",
			c.tag, c.q, len(resp.Values), benchkit.Ms(cold), benchkit.Ms(coldCPU), 100*float64(resp.Metrics.InspectedBytes)/float64(total),
			benchkit.Ms(lat[len(lat)/2]), benchkit.Ms(lat[len(lat)*99/100]))
		if *generic {
			c0, t0 := benchkit.CPUTime(), time.Now()
			g, err := search.NewEngine(b, search.Options{Generic: true}).TagValues(ctx, "single-tenant", metas, nil, req)
			check(err)
			fmt.Printf("  the same on the OTLP path: values %d, %8.1f ms (cpu %8.1f ms)\n", len(g.Values), benchkit.Ms(time.Since(t0)), benchkit.Ms(benchkit.CPUTime()-c0))
		}
	}
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "search bench:", err)
		os.Exit(1)
	}
}
