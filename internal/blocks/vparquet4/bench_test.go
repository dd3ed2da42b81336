package vparquet4

import (
	"context"
	"encoding/binary"
	"fmt"
	"iter"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/otlptest"
	"github.com/tracectl/tracectl/internal/storage"
	"github.com/tracectl/tracectl/internal/storage/storagetest"
)

// synthService is one instance of the synthetic corpus: a fixed resource.
type synthService struct {
	name  string
	attrs map[string]any
}

// synthCorpus builds n traces deterministically (seeded), shaped like the
// public corpus: a pool of services with fixed resources, two scopes each,
// trees of 1–60 spans across services, HTTP/DB/RPC/messaging attributes,
// custom attributes of every scalar type, occasional events, errors, links.
func synthCorpus(n int, seed uint64) []TraceGroup {
	out := make([]TraceGroup, 0, n)
	for g := range synthTraces(n, seed, false) {
		out = append(out, g)
	}
	// Sort by ID as the streaming writer wants.
	sortGroups(out)
	return out
}

// synthTraces yields n synthetic traces one at a time; with ascending the
// IDs increase (a counter in the first 4 bytes), for streaming without
// holding the corpus.
func synthTraces(n int, seed uint64, ascending bool) iter.Seq[TraceGroup] {
	return func(yield func(TraceGroup) bool) {
		rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
		names := []string{"frontend", "checkout", "cart", "inventory", "payment", "shipping", "auth",
			"recommendation", "email-worker", "redis-cache", "postgres-proxy", "kafka-bridge"}
		var services []synthService
		for i := range 20 {
			name := names[i%len(names)]
			a := map[string]any{
				"service.name": name, "service.namespace": "shop", "service.version": fmt.Sprintf("1.%d.%d", i%4, i%7),
				"host.name": fmt.Sprintf("node-%02d", i), "process.pid": int64(1000 + 37*i),
				"telemetry.sdk.name": "opentelemetry", "telemetry.sdk.language": []string{"go", "java", "python"}[i%3],
				"telemetry.sdk.version": "1.30.0",
			}
			if i%2 == 0 {
				a["k8s.cluster.name"] = "prod-eu"
				a["k8s.namespace.name"] = "shop"
				a["k8s.pod.name"] = fmt.Sprintf("%s-%x", name, 0xabc00+i)
				a["k8s.container.name"] = name
			} else {
				a["cluster"], a["namespace"], a["pod"], a["container"] = "prod-us", "shop", fmt.Sprintf("%s-%d", name, i), name
			}
			services = append(services, synthService{name, a})
		}
		routes := []string{"/api/cart", "/api/cart/{id}", "/api/checkout", "/api/products", "/api/products/{id}",
			"/api/users/{id}", "/api/orders", "/api/orders/{id}", "/healthz", "/api/search"}
		methods := []string{"GET", "GET", "GET", "POST", "PUT", "DELETE"}
		statements := []string{"SELECT * FROM orders WHERE id = $1", "UPDATE cart SET qty = $1 WHERE id = $2",
			"INSERT INTO events (kind, payload) VALUES ($1, $2)", "SELECT id, name FROM products WHERE category = $1 LIMIT 50"}
		base := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC).UnixNano()

		for t := range n {
			var tid pcommon.TraceID
			for i := range tid {
				tid[i] = byte(rng.Uint32())
			}
			if ascending {
				binary.BigEndian.PutUint32(tid[:4], uint32(t))
			}
			td := ptrace.NewTraces()
			nSpans := 1 + rng.IntN(40)
			nSvc := 1 + rng.IntN(min(5, nSpans))
			svc := make([]int, nSvc)
			scopes := make([]ptrace.ScopeSpans, nSvc*2)
			for i := range svc {
				svc[i] = rng.IntN(len(services))
				rs := td.ResourceSpans().AppendEmpty()
				rs.Resource().Attributes().FromRaw(services[svc[i]].attrs)
				for j := range 2 {
					ss := rs.ScopeSpans().AppendEmpty()
					ss.Scope().SetName([]string{"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp", "app"}[j])
					ss.Scope().SetVersion("0.60.0")
					scopes[2*i+j] = ss
				}
			}
			start := base + int64(t)*int64(50*time.Millisecond) + rng.Int64N(int64(time.Second))
			type info struct {
				id    pcommon.SpanID
				start int64
				end   int64
			}
			var spans []info
			for s := range nSpans {
				var sid pcommon.SpanID
				for i := range sid {
					sid[i] = byte(rng.Uint32())
				}
				si := 0
				if s > 0 {
					si = rng.IntN(nSvc)
				}
				sp := scopes[2*si+rng.IntN(2)].Spans().AppendEmpty()
				sp.SetTraceID(tid)
				sp.SetSpanID(sid)
				st, en := start, start+int64(50+rng.IntN(500))*int64(time.Millisecond)
				if s > 0 {
					p := spans[rng.IntN(len(spans))]
					sp.SetParentSpanID(p.id)
					st = p.start + rng.Int64N(max(1, (p.end-p.start)/2))
					en = st + rng.Int64N(max(1, p.end-st))
				}
				spans = append(spans, info{sid, st, en})
				sp.SetStartTimestamp(pcommon.Timestamp(st))
				sp.SetEndTimestamp(pcommon.Timestamp(en))
				attrs := sp.Attributes()
				switch rng.IntN(4) {
				case 0, 1:
					route := routes[rng.IntN(len(routes))]
					sp.SetKind(ptrace.SpanKind(2 + rng.IntN(2))) // server or client
					m := methods[rng.IntN(len(methods))]
					sp.SetName(m + " " + route)
					attrs.PutStr("http.request.method", m)
					attrs.PutStr("http.route", route)
					attrs.PutStr("url.path", route)
					attrs.PutInt("http.response.status_code", []int64{200, 200, 200, 201, 404, 500}[rng.IntN(6)])
					attrs.PutStr("server.address", services[svc[si]].name)
					attrs.PutInt("server.port", 8080)
				case 2:
					sp.SetKind(ptrace.SpanKindClient)
					sp.SetName("db.query")
					attrs.PutStr("db.system", "postgresql")
					attrs.PutStr("db.statement", statements[rng.IntN(len(statements))])
					attrs.PutInt("db.rows_affected", int64(rng.IntN(100)))
				default:
					sp.SetKind(ptrace.SpanKindInternal)
					sp.SetName([]string{"compute", "render", "validate", "serialize"}[rng.IntN(4)])
				}
				attrs.PutInt("user.id", int64(rng.IntN(10000)))
				attrs.PutBool("cache.hit", rng.IntN(2) == 0)
				attrs.PutDouble("sample.rate", []float64{0.1, 0.5, 1}[rng.IntN(3)])
				if rng.IntN(20) == 0 {
					sp.Status().SetCode(ptrace.StatusCodeError)
					sp.Status().SetMessage("upstream failed")
					ev := sp.Events().AppendEmpty()
					ev.SetName("exception")
					ev.SetTimestamp(pcommon.Timestamp(en))
					ev.Attributes().PutStr("exception.type", "TimeoutError")
					ev.Attributes().PutStr("exception.message", "deadline exceeded after 5s")
				} else if rng.IntN(10) == 0 {
					sp.Status().SetCode(ptrace.StatusCodeOk)
				}
			}
			if !yield(TraceGroup{ID: block.TraceID(tid), Traces: td}) {
				return
			}
		}
	}
}

func sortGroups(g []TraceGroup) {
	slices.SortFunc(g, func(a, b TraceGroup) int { return a.ID.Compare(b.ID) })
}

func spanCount(groups []TraceGroup) int {
	n := 0
	for _, g := range groups {
		n += g.Traces.SpanCount()
	}
	return n
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkWrite streams a synthetic block of 5,000 traces (~100,000 spans)
// into a local file bucket and reports spans per CPU-second and bytes per span.
func BenchmarkWrite(b *testing.B) {
	groups := synthCorpus(5000, 1)
	spans := spanCount(groups)
	bk := storagetest.OpenDir(b, b.TempDir())
	ctx := context.Background()
	var size uint64
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for b.Loop() {
		w, err := NewBlockWriter(ctx, bk, WriterConfig{ExpectedTraces: len(groups)})
		if err != nil {
			b.Fatal(err)
		}
		for _, g := range groups {
			if err := w.Add(g.ID, g.Traces); err != nil {
				b.Fatal(err)
			}
		}
		m, err := w.Close()
		if err != nil {
			b.Fatal(err)
		}
		size = m.Size
	}
	cpu := cpuTime() - cpu0
	b.ReportMetric(float64(spans)*float64(b.N)/cpu.Seconds(), "spans/CPU-s")
	b.ReportMetric(float64(spans)*float64(b.N)/b.Elapsed().Seconds(), "spans/s")
	b.ReportMetric(float64(size)/float64(spans), "B/span")
}

// BenchmarkBytesPerSpanLarge writes 20,000 synthetic traces (~400,000
// spans) once per iteration and reports bytes per span of data.parquet.
func BenchmarkBytesPerSpanLarge(b *testing.B) {
	groups := synthCorpus(20000, 2)
	spans := spanCount(groups)
	bk := storagetest.OpenDir(b, b.TempDir())
	for b.Loop() {
		w, err := NewBlockWriter(context.Background(), bk, WriterConfig{ExpectedTraces: len(groups)})
		if err != nil {
			b.Fatal(err)
		}
		for _, g := range groups {
			if err := w.Add(g.ID, g.Traces); err != nil {
				b.Fatal(err)
			}
		}
		m, err := w.Close()
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(m.Size)/float64(spans), "B/span")
		b.ReportMetric(float64(m.TotalRecords), "rowgroups")
	}
}

// BenchmarkCorpusBytesPerSpan writes the public corpus waves and reports
// our data.parquet bytes per span against Tempo's fixtures.
func BenchmarkCorpusBytesPerSpan(b *testing.B) {
	c := otlptest.LoadCorpus(b)
	fx := fixtureBucket(b, "vparquet4")
	ctx := context.Background()
	for b.Loop() {
		var ours, tempo uint64
		for _, wv := range waves {
			bk := storagetest.OpenMem(b)
			m, err := WriteBlock(ctx, bk, WriterConfig{}, c.Lines[wv.from:wv.to]...)
			if err != nil {
				b.Fatal(err)
			}
			ours += m.Size
			data, err := fx.Read(ctx, block.DataKey(block.DefaultTenant, uuidOf(wv.blockID)))
			if err != nil {
				b.Fatal(err)
			}
			tempo += uint64(len(data))
		}
		b.ReportMetric(float64(ours)/float64(tempo), "ratio-vs-tempo")
	}
}

// BenchmarkFindTraceByID looks up random traces of a 5,000-trace block in
// a local file bucket (footer read + row-group read per lookup).
func BenchmarkFindTraceByID(b *testing.B) {
	groups := synthCorpus(5000, 3)
	bk := storagetest.OpenDir(b, b.TempDir())
	ctx := context.Background()
	w, err := NewBlockWriter(ctx, bk, WriterConfig{ExpectedTraces: len(groups), RowGroupBytes: 4 << 20})
	if err != nil {
		b.Fatal(err)
	}
	for _, g := range groups {
		if err := w.Add(g.ID, g.Traces); err != nil {
			b.Fatal(err)
		}
	}
	m, err := w.Close()
	if err != nil {
		b.Fatal(err)
	}
	blk := OpenBlock(ctx, bk, m)
	rng := rand.New(rand.NewPCG(7, 7))
	for b.Loop() {
		g := groups[rng.IntN(len(groups))]
		_, found, err := blk.FindTraceByID(ctx, g.ID)
		if err != nil || !found {
			b.Fatal(found, err)
		}
	}
	b.ReportMetric(float64(m.TotalRecords), "rowgroups")
	b.ReportMetric(float64(m.Size)/float64(m.TotalRecords)/1e6, "MB/rowgroup")
}

// BenchmarkIterate reads every row of a 5,000-trace block and converts it
// to OTLP.
func BenchmarkIterate(b *testing.B) {
	groups := synthCorpus(5000, 4)
	spans := spanCount(groups)
	bk := storagetest.OpenDir(b, b.TempDir())
	ctx := context.Background()
	m, err := writeGroups(ctx, bk, groups)
	if err != nil {
		b.Fatal(err)
	}
	blk := OpenBlock(ctx, bk, m)
	for b.Loop() {
		for tr, err := range blk.Iterate(ctx) {
			if err != nil {
				b.Fatal(err)
			}
			if _, err := blk.OTLP(tr); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(spans)*float64(b.N)/b.Elapsed().Seconds(), "spans/s")
}

func writeGroups(ctx context.Context, bk *storage.Bucket, groups []TraceGroup) (*block.Meta, error) {
	w, err := NewBlockWriter(ctx, bk, WriterConfig{ExpectedTraces: len(groups)})
	if err != nil {
		return nil, err
	}
	for _, g := range groups {
		if err := w.Add(g.ID, g.Traces); err != nil {
			return nil, err
		}
	}
	return w.Close()
}

func uuidOf(s string) uuid.UUID { return uuid.MustParse(s) }

// scaledCorpus replicates the public corpus n times with fresh random trace
// and span IDs (parents and same-trace links remapped consistently) and
// times shifted by 30 s per copy: a large corpus with the public one's
// shape and attribute mix.
func scaledCorpus(tb testing.TB, n int) []TraceGroup {
	c := otlptest.LoadCorpus(tb)
	rng := rand.New(rand.NewPCG(11, 13))
	var out []TraceGroup
	for k := range n {
		for _, hex := range c.IDs {
			td := ptrace.NewTraces()
			c.ByID[hex].CopyTo(td)
			var tid pcommon.TraceID
			for i := range tid {
				tid[i] = byte(rng.Uint32())
			}
			spanMap := map[pcommon.SpanID]pcommon.SpanID{}
			remap := func(id pcommon.SpanID) pcommon.SpanID {
				if id.IsEmpty() {
					return id
				}
				if m, ok := spanMap[id]; ok {
					return m
				}
				var m pcommon.SpanID
				for i := range m {
					m[i] = byte(rng.Uint32())
				}
				spanMap[id] = m
				return m
			}
			shift := pcommon.Timestamp(int64(k) * int64(30*time.Second))
			for _, rs := range td.ResourceSpans().All() {
				for _, ss := range rs.ScopeSpans().All() {
					for _, sp := range ss.Spans().All() {
						old := sp.TraceID()
						sp.SetTraceID(tid)
						sp.SetSpanID(remap(sp.SpanID()))
						sp.SetParentSpanID(remap(sp.ParentSpanID()))
						sp.SetStartTimestamp(sp.StartTimestamp() + shift)
						sp.SetEndTimestamp(sp.EndTimestamp() + shift)
						for _, e := range sp.Events().All() {
							e.SetTimestamp(e.Timestamp() + shift)
						}
						for _, l := range sp.Links().All() {
							if l.TraceID() == old {
								l.SetTraceID(tid)
								l.SetSpanID(remap(l.SpanID()))
							}
						}
					}
				}
			}
			out = append(out, TraceGroup{ID: block.TraceID(tid), Traces: td})
		}
	}
	sortGroups(out)
	return out
}

// BenchmarkBytesPerSpanScaledCorpus writes the public corpus replicated 250
// times (~180,000 spans, fresh IDs) and reports bytes per span.
func BenchmarkBytesPerSpanScaledCorpus(b *testing.B) {
	groups := scaledCorpus(b, 250)
	spans := spanCount(groups)
	bk := storagetest.OpenDir(b, b.TempDir())
	for b.Loop() {
		m, err := writeGroups(context.Background(), bk, groups)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(m.Size)/float64(spans), "B/span")
	}
}

// TestWriterMemoryBounded streams 15,000 traces (~300,000 spans)
// generated on the fly through a writer with a 2 MiB row-group budget: the
// live heap stays bounded by the budget plus the parquet footer metadata
// of the row groups written so far (which every parquet writer keeps until
// the footer is written), never by the data.
func TestWriterMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("streams 300,000 spans")
	}
	bk := storagetest.OpenDir(t, t.TempDir())
	w, err := NewBlockWriter(context.Background(), bk, WriterConfig{RowGroupBytes: 2 << 20, ExpectedTraces: 15000})
	if err != nil {
		t.Fatal(err)
	}
	type sample struct {
		heap uint64
		rgs  int
	}
	var samples []sample
	var ms runtime.MemStats
	rgs := 0
	for g := range synthTraces(15000, 5, true) {
		if err := w.Add(g.ID, g.Traces); err != nil {
			t.Fatal(err)
		}
		// Sample right after every fifth row-group cut, when the buffers
		// hold (almost) no rows: what remains is what accumulates.
		if n := len(w.rgLastIDs); n != rgs {
			rgs = n
			if n >= 5 && n%5 == 0 {
				runtime.GC()
				runtime.ReadMemStats(&ms)
				samples = append(samples, sample{ms.HeapAlloc, n})
			}
		}
	}
	if f := os.Getenv("HEAPPROF"); f != "" {
		fh, _ := os.Create(f)
		runtime.GC()
		pprof.WriteHeapProfile(fh)
		fh.Close()
	}
	m, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	// Least-squares slope of heap over row groups.
	var sx, sy, sxx, sxy float64
	for _, p := range samples {
		x, y := float64(p.rgs), float64(p.heap)
		sx, sy, sxx, sxy = sx+x, sy+y, sxx+x*x, sxy+x*y
	}
	n := float64(len(samples))
	perRG := (n*sxy - sx*sy) / (n*sxx - sx*sx)
	first, last := samples[0], samples[len(samples)-1]
	t.Logf("block %d bytes in %d row groups; heap %d → %d bytes (%.0f bytes per row group)",
		m.Size, m.TotalRecords, first.heap, last.heap, perRG)
	if last.heap > 64<<20 {
		t.Errorf("live heap %d bytes with a 2 MiB row-group budget", last.heap)
	}
	// parquet-go keeps ~150 KB of Go structs per row group for the footer
	// (column chunks, column and offset indexes with level histograms of
	// 103 columns; measured 130–200 KB). Retaining the data itself would
	// add ≥ 490 KB (compressed) to 2 MiB per row group here.
	if perRG > 320<<10 {
		t.Errorf("heap grows %.0f bytes per row group: more than footer metadata", perRG)
	}
}
