// Command migrate benchmarks `migrate from jaeger-es` end to end against
// the local test server (internal/migrate/jaegeres/estest) holding a
// synthetic Jaeger dataset, in three processes: the server, then either a
// migration into a local directory or only reading + decoding the same
// documents (the baseline). It reports spans/s (median of -runs), the
// ratio of the two, and the migration's peak RSS.
//
//	go run ./bench/migrate -spans 1000000 -runs 3
//
// It is a benchmark harness: it writes only under a temporary directory
// and talks only to 127.0.0.1.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tracectl/tracectl/internal/migrate/jaegeres"
	"github.com/tracectl/tracectl/internal/migrate/jaegeres/estest"
	"github.com/tracectl/tracectl/internal/storage"
)

func main() {
	mode := flag.String("mode", "bench", "bench, or (internal) server, migrate, read")
	spans := flag.Int("spans", 1_000_000, "synthetic spans")
	days := flag.Int("days", 4, "daily indices the spans are spread over")
	runs := flag.Int("runs", 3, "runs of each kind (median reported)")
	url := flag.String("url", "", "server URL (internal)")
	parallel := flag.Int("parallel", 2, "--parallel")
	batch := flag.Int("batch", 1000, "--batch-size")
	skipRead = flag.Bool("skip-read", false, "run only the migration (for the RSS figure of a large run)")
	maxBlock = flag.Int64("max-block-bytes", 0, "--max-block-bytes (0: the default)")
	cpuprofile = flag.String("cpuprofile", "", "write the clients' CPU profiles to this prefix (.read, .migrate)")
	memprofile = flag.String("memprofile", "", "write the clients' allocation profiles to this prefix (.read, .migrate)")
	gcPolicy = flag.String("gc", "migrate", "which clients run with `tracectl migrate`'s batch GC policy (GC target 400 under a 900 MiB soft memory limit, unless GOGC is set): migrate (as the CLI does; the baseline keeps Go's default), both (the same policy for the baseline too), none")
	flag.Parse()
	var err error
	switch *mode {
	case "server":
		err = serve(*spans, *days)
	case "migrate", "read":
		err = client(*mode, *url, *parallel, *batch)
	default:
		err = bench(*spans, *days, *runs, *parallel, *batch)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/migrate:", err)
		os.Exit(1)
	}
}

var (
	cpuprofile *string
	memprofile *string
	maxBlock   *int64
	skipRead   *bool
	gcPolicy   *string
)

// Mirrors cmd/tracectl/memlimit.go (defaultMemoryLimit, batchGCPercent),
// which the migrate command applies at start.
const (
	cliMemoryLimit = 900 << 20
	cliGCPercent   = 400
)

// applyGC gives this client the CLI's batch GC policy when -gc says so.
func applyGC(mode string) {
	if *gcPolicy == "both" || *gcPolicy == mode {
		if os.Getenv("GOMEMLIMIT") == "" {
			debug.SetMemoryLimit(cliMemoryLimit)
		}
		if os.Getenv("GOGC") == "" {
			debug.SetGCPercent(cliGCPercent)
		}
	}
}

const spansPerTrace = 10

// doc i of the synthetic dataset: trace i/10, v1 writer (string tag values).
func synthDoc(i int, base time.Time) *estest.Doc {
	t := uint64(i / spansPerTrace)
	hi, lo := t*0x9E3779B97F4A7C15+1, t*0xC2B2AE3D27D4EB4F+7
	start := base.Add(time.Duration(i/spansPerTrace) * 37 * time.Millisecond).Add(time.Duration(i%spansPerTrace) * time.Millisecond)
	return &estest.Doc{
		ID:        strconv.FormatUint(uint64(i)*2654435761, 36),
		TraceID:   fmt.Sprintf("%016x%016x", hi, lo),
		SpanID:    fmt.Sprintf("%016x", lo^uint64(i%spansPerTrace+1)*0xff51afd7ed558ccd),
		Service:   []string{"frontend", "orders", "payments", "users", "redis"}[i%5],
		StartTime: start.UnixMicro(),
	}
}

func render(d *estest.Doc, dst []byte) []byte {
	parent := ""
	refs := "[]"
	if !strings.HasSuffix(d.ID, "x") && d.SpanID[15] != '0' {
		refs = `[{"refType":"CHILD_OF","traceID":"` + d.TraceID + `","spanID":"` + d.SpanID[:15] + `0"}]`
	}
	_ = parent
	dst = fmt.Appendf(dst, `{"traceID":%q,"spanID":%q,"flags":1,"operationName":"HTTP GET /api/%s","references":%s,"startTime":%d,"startTimeMillis":%d,"duration":%d,`+
		`"tags":[{"key":"span.kind","type":"string","value":"server"},{"key":"http.method","type":"string","value":"GET"},{"key":"http.status_code","type":"int64","value":"200"},{"key":"http.url","type":"string","value":"http://%s:8080/api/items?id=%d"},{"key":"component","type":"string","value":"net/http"},{"key":"sampler.param","type":"float64","value":"1"}],`+
		`"logs":[{"timestamp":%d,"fields":[{"key":"event","type":"string","value":"cache miss"},{"key":"key","type":"string","value":"sku:%d"}]}],`+
		`"process":{"serviceName":%q,"tags":[{"key":"hostname","type":"string","value":"%s-1.prod.internal"},{"key":"ip","type":"string","value":"10.2.1.18"},{"key":"jaeger.version","type":"string","value":"Go-2.30.0"},{"key":"client-uuid","type":"string","value":"3f48898be206cdea"}]}}`,
		d.TraceID, d.SpanID, d.Service, refs, d.StartTime, d.StartTime/1000, 1000+d.StartTime%5000, d.Service, d.StartTime%1000, d.StartTime+10, d.StartTime%9973, d.Service, d.Service)
	return dst
}

func serve(n, days int) error {
	s, err := estest.Start(estest.Config{Version: "8.15.0", Render: render})
	if err != nil {
		return err
	}
	base := time.Date(2026, 11, 18, 0, 0, 0, 0, time.UTC)
	perDay := (n + days - 1) / days
	for d := range days {
		docs := make([]*estest.Doc, 0, perDay)
		for i := d * perDay; i < min(n, (d+1)*perDay); i++ {
			docs = append(docs, synthDoc(i, base.Add(time.Duration(d)*24*time.Hour)))
		}
		s.Add(base.Add(time.Duration(d)*24*time.Hour).Format("jaeger-span-2006-01-02"), docs...)
	}
	fmt.Println(s.URL)
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGTERM, os.Interrupt)
	<-ch
	return s.Close()
}

func client(mode, url string, parallel, batch int) error {
	ctx := context.Background()
	applyGC(mode)
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile + "." + mode)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if *memprofile != "" {
		defer func() {
			if f, err := os.Create(*memprofile + "." + mode); err == nil {
				pprof.Lookup("allocs").WriteTo(f, 0)
				f.Close()
			}
		}()
	}
	c, err := jaegeres.NewClient(ctx, jaegeres.ClientOptions{URLs: []string{url}})
	if err != nil {
		return err
	}
	start := time.Now()
	var docs int64
	if mode == "read" {
		docs, _, err = jaegeres.ReadAll(ctx, c, jaegeres.Selection{}, parallel, batch)
	} else {
		dir, _ := os.MkdirTemp("", "bench-migrate-")
		defer os.RemoveAll(dir)
		b, err2 := storage.Open(ctx, "file://"+filepath.Join(dir, "bucket"))
		if err2 != nil {
			return err2
		}
		var s *jaegeres.Summary
		s, err = jaegeres.Migrate(ctx, jaegeres.Options{ESClient: c, Bucket: b, Tenant: "single-tenant",
			Parallel: parallel, BatchSize: batch, MaxErrors: -1, MaxBlockBytes: *maxBlock})
		if s != nil {
			docs = s.SpansWritten
		}
	}
	if err != nil {
		return err
	}
	fmt.Printf("%d %f\n", docs, time.Since(start).Seconds())
	return nil
}

type result struct {
	spans   int64
	seconds float64
	cpu     float64 // user+sys seconds of the client process
	server  float64 // user+sys seconds the server spent meanwhile
	rssMB   float64
}

// procCPU is the user+sys CPU seconds of a running process (Linux /proc).
func procCPU(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseFloat(f[11], 64)
	s, _ := strconv.ParseFloat(f[12], 64)
	return (u + s) / 100 // USER_HZ
}

func runClient(mode, url string, parallel, batch, serverPID int) (result, error) {
	s0 := procCPU(serverPID)
	cmd := exec.Command(os.Args[0], "-mode", mode, "-url", url, "-parallel", strconv.Itoa(parallel), "-batch", strconv.Itoa(batch), "-cpuprofile", *cpuprofile, "-memprofile", *memprofile, "-max-block-bytes", strconv.FormatInt(*maxBlock, 10), "-gc", *gcPolicy)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return result{}, fmt.Errorf("%s: %w", mode, err)
	}
	var r result
	fmt.Sscan(string(out), &r.spans, &r.seconds)
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	r.rssMB = float64(ru.Maxrss) / 1024
	r.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	r.server = procCPU(serverPID) - s0
	return r, nil
}

func bench(n, days, runs, parallel, batch int) error {
	srv := exec.Command(os.Args[0], "-mode", "server", "-spans", strconv.Itoa(n), "-days", strconv.Itoa(days))
	srv.Stderr = os.Stderr
	stdout, _ := srv.StdoutPipe()
	if err := srv.Start(); err != nil {
		return err
	}
	defer func() { srv.Process.Signal(syscall.SIGTERM); srv.Wait() }()
	sc := bufio.NewScanner(stdout)
	if !sc.Scan() {
		return fmt.Errorf("the server did not start")
	}
	url := sc.Text()
	fmt.Printf("%d synthetic spans in %d indices at %s; parallel %d, batch %d; %d runs each; batch GC policy: %s\n", n, days, url, parallel, batch, runs, *gcPolicy)
	var reads, migs []result
	for i := range runs {
		r := result{spans: 0, seconds: 1}
		if !*skipRead {
			var err error
			if r, err = runClient("read", url, parallel, batch, srv.Process.Pid); err != nil {
				return err
			}
		}
		reads = append(reads, r)
		m, err := runClient("migrate", url, parallel, batch, srv.Process.Pid)
		if err != nil {
			return err
		}
		migs = append(migs, m)
		if *skipRead {
			fmt.Printf("run %d: migrate %d spans in %.1fs (%.0f/s, client %.1f CPU-s = %.0f spans per CPU-second, server %.1f CPU-s, peak RSS %.0f MB)\n",
				i+1, m.spans, m.seconds, float64(m.spans)/m.seconds, m.cpu, float64(m.spans)/m.cpu, m.server, m.rssMB)
			continue
		}
		fmt.Printf("run %d: read+decode %d spans in %.1fs (%.0f/s, client %.1f CPU-s, server %.1f CPU-s), migrate %d spans in %.1fs (%.0f/s, client %.1f CPU-s = %.0f spans per CPU-second, server %.1f CPU-s, peak RSS %.0f MB)\n",
			i+1, r.spans, r.seconds, float64(r.spans)/r.seconds, r.cpu, r.server, m.spans, m.seconds, float64(m.spans)/m.seconds, m.cpu, float64(m.spans)/m.cpu, m.server, m.rssMB)
	}
	med := func(rs []result, f func(result) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	rate := func(r result) float64 { return float64(r.spans) / r.seconds }
	rr, mr := med(reads, rate), med(migs, rate)
	// The CPU ratio is what the rate ratio tends to when both runs are
	// bound by the same cores: CPU-seconds (client + server) per span of
	// reading over those of migrating. It depends far less on the other
	// load of a shared machine than the wall-clock rates do.
	cpuPerSpan := func(r result) float64 { return (r.cpu + r.server) / float64(max(r.spans, 1)) }
	if *skipRead {
		fmt.Printf("median: migrate %.0f spans/s, %.0f spans per migrator CPU-second, peak RSS %.0f MB\n",
			mr, med(migs, func(r result) float64 { return float64(r.spans) / r.cpu }), med(migs, func(r result) float64 { return r.rssMB }))
		return nil
	}
	fmt.Printf("median: read+decode %.0f spans/s (%.0f spans per reader CPU-second), migrate %.0f spans/s (%.2f× the read rate), %.0f spans per migrator CPU-second, CPU ratio (client+server) %.2f, peak RSS %.0f MB\n",
		rr, med(reads, func(r result) float64 { return float64(r.spans) / r.cpu }), mr, mr/rr,
		med(migs, func(r result) float64 { return float64(r.spans) / r.cpu }),
		med(reads, cpuPerSpan)/med(migs, cpuPerSpan), med(migs, func(r result) float64 { return r.rssMB }))
	return nil
}
