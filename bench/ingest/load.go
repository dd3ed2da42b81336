package main

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/gzip"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
)

var digitRuns = regexp.MustCompile(`[0-9]+`)

const exportMethod = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"

// rawCodec sends a pre-encoded ExportTraceServiceRequest as is and hands the
// response back encoded; on the wire it is the ordinary "proto" codec.
type rawCodec struct{}

var _ encoding.CodecV2 = rawCodec{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	b, ok := v.(*[]byte)
	if !ok {
		return nil, fmt.Errorf("rawCodec: unexpected %T", v)
	}
	return mem.BufferSlice{mem.SliceBuffer(*b)}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	b, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("rawCodec: unexpected %T", v)
	}
	*b = data.Materialize()
	return nil
}

func (rawCodec) Name() string { return "proto" }

type ackRec struct {
	at    int64 // ack time, ns since the load's start
	lat   int64 // Export call duration, ns
	sched int64 // open loop: ack time minus the time the request was due, ns
	spans int32
}

type loadGen struct {
	corpus *corpusLoad
	conns  []*grpc.ClientConn
	opts   []grpc.CallOption
	start  time.Time

	next     atomic.Uint64
	stopping atomic.Bool
	wg       sync.WaitGroup

	ackedSpans, ackedReqs atomic.Int64
	sentReqs, sentBytes   atomic.Int64
	failedReqs            atomic.Int64
	failedSpans           atomic.Int64
	rejectedSpans         atomic.Int64 // partial success
	maxBehind             atomic.Int64 // open loop: worst dispatch delay, ns

	mu     sync.Mutex
	acks   []ackRec
	errors map[string]int

	// onAck, when set, is called after every fully accepted Export with
	// the request number, the body as sent, the ack time (ns since the
	// start) and the acked-span total including this request.
	onAck func(n uint64, body []byte, at, cum int64)
}

func newLoadGen(c *corpusLoad, addr string, conns int, useGzip bool) (*loadGen, error) {
	g := &loadGen{corpus: c, errors: map[string]int{}}
	g.opts = []grpc.CallOption{grpc.ForceCodecV2(rawCodec{})}
	if useGzip {
		g.opts = append(g.opts, grpc.UseCompressor(gzip.Name))
	}
	for range conns {
		cc, err := grpc.NewClient("passthrough:///"+addr,
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16<<20)))
		if err != nil {
			g.close()
			return nil, err
		}
		g.conns = append(g.conns, cc)
	}
	return g, nil
}

func (g *loadGen) close() {
	for _, c := range g.conns {
		_ = c.Close()
	}
}

// send renders request n and exports it; due is zero in closed loop.
func (g *loadGen) send(cc *grpc.ClientConn, buf *[]byte, n uint64, due time.Time) {
	shift := time.Now().UnixNano() - g.corpus.maxEndNanos
	body, spans := g.corpus.render(*buf, n, shift)
	*buf = body
	var resp []byte
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	g.sentReqs.Add(1)
	g.sentBytes.Add(int64(len(body)))
	t0 := time.Now()
	err := cc.Invoke(ctx, exportMethod, &body, &resp, g.opts...)
	t1 := time.Now()
	cancel()
	if err != nil {
		g.failedReqs.Add(1)
		g.failedSpans.Add(int64(spans))
		st, _ := status.FromError(err)
		g.mu.Lock()
		// Digits out, so "holds 402471655 bytes" and "holds 402474240
		// bytes" are one kind of error, not thousands.
		key := digitRuns.ReplaceAllString(st.Code().String()+": "+st.Message(), "N")
		if len(key) > 200 {
			key = key[:200]
		}
		g.errors[key]++
		g.mu.Unlock()
		return
	}
	accepted := spans
	if len(resp) > 0 {
		r := ptraceotlp.NewExportResponse()
		if err := r.UnmarshalProto(resp); err == nil {
			if rej := r.PartialSuccess().RejectedSpans(); rej > 0 {
				g.rejectedSpans.Add(rej)
				accepted -= int(rej)
				g.mu.Lock()
				g.errors["partial success: "+r.PartialSuccess().ErrorMessage()]++
				g.mu.Unlock()
			}
		}
	}
	rec := ackRec{lat: int64(t1.Sub(t0)), spans: int32(accepted)}
	if !due.IsZero() {
		rec.sched = int64(t1.Sub(due))
	}
	g.mu.Lock()
	rec.at = int64(time.Since(g.start))
	g.acks = append(g.acks, rec)
	g.mu.Unlock()
	cum := g.ackedSpans.Add(int64(accepted))
	g.ackedReqs.Add(1)
	if g.onAck != nil && accepted == spans {
		g.onAck(n, body, rec.at, cum)
	}
}

// runClosed starts workers that send back to back (saturation).
func (g *loadGen) runClosed(workers int) {
	g.start = time.Now()
	for w := range workers {
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			cc := g.conns[w%len(g.conns)]
			var buf []byte
			for !g.stopping.Load() {
				g.send(cc, &buf, g.next.Add(1)-1, time.Time{})
			}
		}()
	}
}

// runOpen sends at rate spans/s: request k is due when the spans of the
// requests before it, at that rate, have been sent. Up to workers requests
// are in flight; when all are busy the schedule slips (reported as
// maxBehind and in the schedule latency).
func (g *loadGen) runOpen(workers int, rate float64) {
	g.start = time.Now()
	type job struct {
		n   uint64
		due time.Time
	}
	jobs := make(chan job, workers)
	for w := range workers {
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			cc := g.conns[w%len(g.conns)]
			var buf []byte
			for j := range jobs {
				g.send(cc, &buf, j.n, j.due)
			}
		}()
	}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		defer close(jobs)
		nt := uint64(len(g.corpus.templates))
		var cum float64
		for n := uint64(0); !g.stopping.Load(); n++ {
			due := g.start.Add(time.Duration(cum / rate * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				time.Sleep(d)
			}
			jobs <- job{n: n, due: due}
			if behind := int64(time.Since(due)); behind > g.maxBehind.Load() {
				g.maxBehind.Store(behind)
			}
			cum += float64(g.corpus.templates[n%nt].spans)
		}
	}()
}

// stop lets in-flight requests finish (they are not cancelled, so nothing
// is refused as "cancelled") and waits for the workers.
func (g *loadGen) stop() {
	g.stopping.Store(true)
	g.wg.Wait()
}

func (g *loadGen) snapshotAcks() []ackRec {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]ackRec(nil), g.acks...)
}

func (g *loadGen) errorCounts() map[string]int {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make(map[string]int, len(g.errors))
	for k, v := range g.errors {
		out[k] = v
	}
	return out
}

// latency summarises the acks whose ack time is in [from, to).
type latencySummary struct {
	Requests int     `json:"requests"`
	P50ms    float64 `json:"p50_ms"`
	P90ms    float64 `json:"p90_ms"`
	P99ms    float64 `json:"p99_ms"`
	P999ms   float64 `json:"p999_ms"`
	Maxms    float64 `json:"max_ms"`
	Meanms   float64 `json:"mean_ms"`
}

func summarize(vals []int64) latencySummary {
	if len(vals) == 0 {
		return latencySummary{}
	}
	sort.Slice(vals, func(i, j int) bool { return vals[i] < vals[j] })
	q := func(p float64) float64 {
		i := int(p*float64(len(vals))+0.5) - 1
		i = min(max(i, 0), len(vals)-1)
		return round(float64(vals[i])/1e6, 3)
	}
	var sum float64
	for _, v := range vals {
		sum += float64(v)
	}
	return latencySummary{Requests: len(vals), P50ms: q(0.50), P90ms: q(0.90), P99ms: q(0.99), P999ms: q(0.999),
		Maxms: round(float64(vals[len(vals)-1])/1e6, 3), Meanms: round(sum/float64(len(vals))/1e6, 3)}
}

func ackLatency(acks []ackRec, from, to time.Duration, sched bool) latencySummary {
	var vals []int64
	for _, a := range acks {
		if a.at >= int64(from) && a.at < int64(to) {
			if sched {
				vals = append(vals, a.sched)
			} else {
				vals = append(vals, a.lat)
			}
		}
	}
	return summarize(vals)
}
