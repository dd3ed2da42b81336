package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// serverProc is one `tracectl serve` child with a fresh bucket and WAL.
type serverProc struct {
	cmd      *exec.Cmd
	pid      int
	dir      string
	grpcAddr string
	httpAddr string
	args     []string
	pinned   bool

	mu       sync.Mutex
	blocks   []blockEvent
	warnings []string
	logFile  *os.File
	exited   chan error
	state    *os.ProcessState
}

type blockEvent struct {
	At       time.Time `json:"at"`
	Spans    int64     `json:"spans"`
	Bytes    int64     `json:"bytes"`
	Duration string    `json:"duration"`
}

// startServer runs the server pinned to cpu (via taskset) unless cpu < 0.
func startServer(bin, dir string, cpu int, taskset string, extra []string) (*serverProc, error) {
	bucket := filepath.Join(dir, "bucket")
	walDir := filepath.Join(dir, "wal")
	for _, d := range []string{bucket, walDir, filepath.Join(dir, "xdg")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	args := []string{"serve", "--storage", "file://" + bucket, "--wal-dir", walDir, "--log-format", "json",
		"--http-listen-address", "127.0.0.1:0", "--otlp-grpc-endpoint", "127.0.0.1:0", "--otlp-http-endpoint", "off",
		"--jaeger-grpc-endpoint", "off", "--jaeger-thrift-http-endpoint", "off", "--jaeger-thrift-compact-endpoint", "off",
		"--jaeger-thrift-binary-endpoint", "off", "--zipkin-endpoint", "off", "--ingestion-rate-bytes", "-1"}
	args = append(args, extra...)
	var cmd *exec.Cmd
	s := &serverProc{dir: dir, exited: make(chan error, 1)}
	if cpu >= 0 && taskset != "" {
		// taskset execs tracectl in place, so the child's PID is tracectl's.
		cmd = exec.Command(taskset, append([]string{"-c", strconv.Itoa(cpu), bin}, args...)...)
		s.pinned = true
	} else {
		cmd = exec.Command(bin, args...)
	}
	s.args = cmd.Args
	// A clean environment for tracectl: no TRACECTL_* settings and no
	// user config file (XDG_CONFIG_HOME points into the run directory).
	env := []string{"XDG_CONFIG_HOME=" + filepath.Join(dir, "xdg"), "NO_COLOR=1"}
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "TRACECTL_") || strings.HasPrefix(kv, "XDG_CONFIG_HOME=") || strings.HasPrefix(kv, "GOMAXPROCS=") || strings.HasPrefix(kv, "GOGC=") || strings.HasPrefix(kv, "GOMEMLIMIT=") {
			continue
		}
		env = append(env, kv)
	}
	cmd.Env = env
	cmd.Dir = dir
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout = io.Discard
	lf, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		return nil, err
	}
	s.logFile = lf
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("starting %s: %w", strings.Join(cmd.Args, " "), err)
	}
	s.cmd, s.pid = cmd, cmd.Process.Pid
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(nil, 4<<20)
		var once sync.Once
		for sc.Scan() {
			line := sc.Bytes()
			lf.Write(line)
			lf.Write([]byte{'\n'})
			var rec map[string]any
			if json.Unmarshal(line, &rec) != nil {
				continue
			}
			msg, _ := rec["msg"].(string)
			s.mu.Lock()
			switch msg {
			case "receiver listening":
				if rec["protocol"] == "otlp_grpc" {
					s.grpcAddr = fmt.Sprint(rec["addr"])
				}
			case "tracectl serve ready":
				s.httpAddr = fmt.Sprint(rec["http"])
				once.Do(func() { close(ready) })
			case "block stored":
				ev := blockEvent{Spans: int64(num(rec["spans"])), Bytes: int64(num(rec["bytes"])), Duration: fmt.Sprint(rec["duration"])}
				if ts, ok := rec["time"].(string); ok {
					ev.At, _ = time.Parse(time.RFC3339Nano, ts)
				}
				if ev.At.IsZero() {
					ev.At = time.Now()
				}
				s.blocks = append(s.blocks, ev)
			}
			if lvl, _ := rec["level"].(string); lvl == "WARN" || lvl == "ERROR" {
				if len(s.warnings) < 50 {
					s.warnings = append(s.warnings, string(line))
				}
			}
			s.mu.Unlock()
		}
		err := cmd.Wait()
		s.mu.Lock()
		s.state = cmd.ProcessState
		s.mu.Unlock()
		lf.Close()
		s.exited <- err
	}()
	select {
	case <-ready:
	case err := <-s.exited:
		return nil, fmt.Errorf("tracectl exited before it was ready (%v); log: %s", err, filepath.Join(dir, "server.log"))
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		return nil, fmt.Errorf("tracectl not ready after 60s; log: %s", filepath.Join(dir, "server.log"))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.grpcAddr == "" {
		_ = cmd.Process.Kill()
		return nil, fmt.Errorf("tracectl did not log its OTLP gRPC address")
	}
	return s, nil
}

func num(v any) float64 {
	switch x := v.(type) {
	case float64:
		return x
	case string:
		f, _ := strconv.ParseFloat(x, 64)
		return f
	}
	return 0
}

func (s *serverProc) blockEvents() []blockEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]blockEvent(nil), s.blocks...)
}

func (s *serverProc) warningLines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.warnings...)
}

// stop sends SIGTERM (the server stores everything it holds and exits) and
// returns the whole process's CPU time from its rusage.
func (s *serverProc) stop(timeout time.Duration) (cpuSeconds float64, err error) {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err = <-s.exited:
	case <-time.After(timeout):
		_ = s.cmd.Process.Kill()
		<-s.exited
		return 0, fmt.Errorf("tracectl did not exit within %s of SIGTERM", timeout)
	}
	s.mu.Lock()
	st := s.state
	s.mu.Unlock()
	if err != nil {
		return 0, fmt.Errorf("tracectl exited with %v; log: %s", err, filepath.Join(s.dir, "server.log"))
	}
	return (st.UserTime() + st.SystemTime()).Seconds(), nil
}

func (s *serverProc) kill() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
		select {
		case <-s.exited:
		case <-time.After(10 * time.Second):
		}
	}
}

// --- /metrics ---

// metricsSnap maps a metric name to its sum over label sets; histogram
// buckets are kept as "name_bucket le=<bound>" (summed over other labels).
type metricsSnap map[string]float64

var httpClient = &http.Client{Timeout: 10 * time.Second}

func scrape(ctx context.Context, addr string) (metricsSnap, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	out := metricsSnap{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 {
			continue
		}
		name := line[:sp]
		labels := ""
		if i := strings.IndexByte(name, '{'); i >= 0 {
			name, labels = name[:i], name[i:]
		}
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			continue
		}
		out[name] += v
		if strings.HasSuffix(name, "_bucket") {
			if i := strings.Index(labels, `le="`); i >= 0 {
				le := labels[i+4:]
				if j := strings.IndexByte(le, '"'); j >= 0 {
					out[name+" le="+le[:j]] += v
				}
			}
		}
	}
	return out, sc.Err()
}

// serverRefused is the spans the server refused: a refusal by the server
// (tracectl_ingest_refused_spans_total: rate limit, WAL full, live bytes,
// trace too large) is also counted by the receiver that passes it on
// (tracectl_receiver_refused_spans_total), so the larger of the two, not
// their sum.
func serverRefused(m metricsSnap) float64 {
	return max(m["tracectl_ingest_refused_spans_total"], m["tracectl_receiver_refused_spans_total"])
}

// dropped is the spans not kept: a span the server refused is also a
// failed or partially rejected span at the client, so the larger of the
// two sides, not their sum.
func dropped(clientFailed, partial int64, serverRefused float64) int64 {
	return max(clientFailed+partial, int64(serverRefused))
}

// --- /proc ---

var clkTck = func() float64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err == nil {
		if v, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64); err == nil && v > 0 {
			return v
		}
	}
	return 100
}()

// procCPU returns utime+stime of pid in seconds from /proc/<pid>/stat.
func procCPU(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); utime is field 14, stime field 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	ut, err1 := strconv.ParseFloat(f[11], 64)
	st, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: bad utime/stime", pid)
	}
	return (ut + st) / clkTck, nil
}

// procStatus returns fields of /proc/<pid>/status (kB values in bytes).
func procStatus(pid int) (map[string]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok {
			out[k] = strings.TrimSpace(v)
		}
	}
	return out, nil
}

func kbField(st map[string]string, k string) int64 {
	v := strings.TrimSuffix(st[k], " kB")
	n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	return n * 1024
}

func loadAvg() [3]float64 {
	var out [3]float64
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return out
	}
	f := strings.Fields(string(b))
	for i := 0; i < 3 && i < len(f); i++ {
		out[i], _ = strconv.ParseFloat(f[i], 64)
	}
	return out
}

// cpuTimes returns busy and total jiffies per CPU from /proc/stat.
type cpuTime struct{ busy, total float64 }

func cpuTimes() map[string]cpuTime {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return nil
	}
	out := map[string]cpuTime{}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 || !strings.HasPrefix(f[0], "cpu") || f[0] == "cpu" {
			continue
		}
		var t cpuTime
		for i := 1; i < len(f); i++ {
			v, _ := strconv.ParseFloat(f[i], 64)
			if i == 9 || i == 10 { // guest, guest_nice are included in user/nice
				continue
			}
			t.total += v
			if i != 4 && i != 5 { // idle, iowait
				t.busy += v
			}
		}
		out[f[0]] = t
	}
	return out
}

// cpuBusy returns the busy fraction per CPU between two cpuTimes snapshots.
func cpuBusy(a, b map[string]cpuTime) map[string]float64 {
	out := map[string]float64{}
	for k, tb := range b {
		ta, ok := a[k]
		if !ok || tb.total <= ta.total {
			continue
		}
		out[k] = round((tb.busy-ta.busy)/(tb.total-ta.total), 3)
	}
	return out
}

// histQuantile estimates the q-quantile (seconds) of histogram name in m
// (cumulative buckets), interpolating linearly within a bucket as
// Prometheus' histogram_quantile does. It returns -1 without data.
func histQuantile(m metricsSnap, name string, q float64) float64 {
	type bucket struct{ le, n float64 }
	var bs []bucket
	prefix := name + "_bucket le="
	for k, v := range m {
		if !strings.HasPrefix(k, prefix) {
			continue
		}
		le, err := strconv.ParseFloat(strings.TrimPrefix(k, prefix), 64)
		if err != nil {
			continue
		}
		bs = append(bs, bucket{le, v})
	}
	sort.Slice(bs, func(i, j int) bool { return bs[i].le < bs[j].le })
	if len(bs) == 0 || bs[len(bs)-1].n == 0 {
		return -1
	}
	total := bs[len(bs)-1].n
	rank := q * total
	lower, prev := 0.0, 0.0
	for _, b := range bs {
		if b.n >= rank {
			if math.IsInf(b.le, 1) {
				return lower
			}
			if b.n == prev {
				return b.le
			}
			return lower + (b.le-lower)*(rank-prev)/(b.n-prev)
		}
		lower, prev = b.le, b.n
	}
	return lower
}

// serverLatency is what the server's own histograms say (cumulative over
// the process' life).
type serverLatency struct {
	WALAppendP50ms  float64 `json:"wal_append_p50_ms"`
	WALAppendP99ms  float64 `json:"wal_append_p99_ms"`
	WALFsyncP50ms   float64 `json:"wal_fsync_p50_ms"`
	WALFsyncP99ms   float64 `json:"wal_fsync_p99_ms"`
	RequestP50ms    float64 `json:"receiver_request_p50_ms"`
	RequestP99ms    float64 `json:"receiver_request_p99_ms"`
	FlushP50s       float64 `json:"block_flush_p50_s"`
	FlushMaxBucketS float64 `json:"block_flush_p99_s"`
	Fsyncs          float64 `json:"wal_fsyncs"`
	Appends         float64 `json:"wal_appends"`
	GCCycles        float64 `json:"gc_cycles"`
}

func serverLatencies(m metricsSnap) serverLatency {
	ms := func(name string, q float64) float64 {
		v := histQuantile(m, name, q)
		if v < 0 {
			return -1
		}
		return round(v*1000, 3)
	}
	return serverLatency{
		WALAppendP50ms: ms("tracectl_wal_append_duration_seconds", 0.5), WALAppendP99ms: ms("tracectl_wal_append_duration_seconds", 0.99),
		WALFsyncP50ms: ms("tracectl_wal_fsync_duration_seconds", 0.5), WALFsyncP99ms: ms("tracectl_wal_fsync_duration_seconds", 0.99),
		RequestP50ms: ms("tracectl_receiver_request_duration_seconds", 0.5), RequestP99ms: ms("tracectl_receiver_request_duration_seconds", 0.99),
		FlushP50s: round(histQuantile(m, "tracectl_flush_duration_seconds", 0.5), 3), FlushMaxBucketS: round(histQuantile(m, "tracectl_flush_duration_seconds", 0.99), 3),
		Fsyncs: m["tracectl_wal_fsyncs_total"], Appends: m["tracectl_wal_appends_total"], GCCycles: m["go_gc_duration_seconds_count"],
	}
}
