package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	model "github.com/jaegertracing/jaeger-idl/model/v1"
	"github.com/jaegertracing/jaeger-idl/proto-gen/api_v2"
	zmodel "github.com/openzipkin/zipkin-go/model"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// Protocols the load speaks, each to serve's receiver of that name.
const (
	protoOTLPGRPC   = "otlp_grpc"
	protoOTLPHTTP   = "otlp_http"
	protoJaegerGRPC = "jaeger_grpc"
	protoZipkin     = "zipkin"
)

var protocols = []string{protoOTLPGRPC, protoOTLPHTTP, protoJaegerGRPC, protoZipkin}

// span is one span to send, protocol-neutral.
type span struct {
	key   spanKey
	name  string
	start time.Time
	dur   time.Duration
}

// sender delivers one request of spans; a nil error is an acknowledgement
// (2xx / OK with no partial rejection).
type sender interface {
	send(ctx context.Context, spans []span) error
	close()
}

func newSender(proto, addr string) (sender, error) {
	switch proto {
	case protoOTLPGRPC, protoJaegerGRPC:
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return nil, err
		}
		if proto == protoOTLPGRPC {
			return &otlpGRPCSender{conn: conn, c: ptraceotlp.NewGRPCClient(conn)}, nil
		}
		return &jaegerGRPCSender{conn: conn, c: api_v2.NewCollectorServiceClient(conn)}, nil
	case protoOTLPHTTP:
		return &httpSender{url: "http://" + addr + "/v1/traces", ctype: "application/x-protobuf", want: http.StatusOK, otlp: true,
			c: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}}, nil
	case protoZipkin:
		return &httpSender{url: "http://" + addr + "/api/v2/spans", ctype: "application/json", want: http.StatusAccepted,
			c: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}}, nil
	}
	return nil, fmt.Errorf("unknown protocol %q", proto)
}

func otlpTraces(service string, spans []span) ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", service)
	ss := rs.ScopeSpans().AppendEmpty()
	ss.Scope().SetName("bench/crash")
	for _, s := range spans {
		sp := ss.Spans().AppendEmpty()
		sp.SetTraceID(pcommon.TraceID(s.key.Trace))
		sp.SetSpanID(pcommon.SpanID(s.key.Span))
		sp.SetName(s.name)
		sp.SetKind(ptrace.SpanKindServer)
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(s.start))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(s.start.Add(s.dur)))
		sp.Attributes().PutStr("crash.protocol", service)
	}
	return td
}

type otlpGRPCSender struct {
	conn *grpc.ClientConn
	c    ptraceotlp.GRPCClient
}

func (s *otlpGRPCSender) send(ctx context.Context, spans []span) error {
	resp, err := s.c.Export(ctx, ptraceotlp.NewExportRequestFromTraces(otlpTraces("crash-otlp-grpc", spans)))
	if err != nil {
		return err
	}
	if n := resp.PartialSuccess().RejectedSpans(); n > 0 {
		return fmt.Errorf("partial success: %d spans rejected: %s", n, resp.PartialSuccess().ErrorMessage())
	}
	return nil
}

func (s *otlpGRPCSender) close() { s.conn.Close() }

type jaegerGRPCSender struct {
	conn *grpc.ClientConn
	c    api_v2.CollectorServiceClient
}

func (s *jaegerGRPCSender) send(ctx context.Context, spans []span) error {
	batch := model.Batch{Process: &model.Process{ServiceName: "crash-jaeger-grpc"}}
	for _, sp := range spans {
		batch.Spans = append(batch.Spans, &model.Span{
			TraceID:       model.NewTraceID(binary.BigEndian.Uint64(sp.key.Trace[0:]), binary.BigEndian.Uint64(sp.key.Trace[8:])),
			SpanID:        model.NewSpanID(binary.BigEndian.Uint64(sp.key.Span[:])),
			OperationName: sp.name,
			StartTime:     sp.start,
			Duration:      sp.dur,
			Tags:          []model.KeyValue{model.String("span.kind", "server")},
		})
	}
	_, err := s.c.PostSpans(ctx, &api_v2.PostSpansRequest{Batch: batch})
	return err
}

func (s *jaegerGRPCSender) close() { s.conn.Close() }

// httpSender posts OTLP protobuf or Zipkin v2 JSON.
type httpSender struct {
	url, ctype string
	want       int
	otlp       bool
	c          *http.Client
}

func (s *httpSender) send(ctx context.Context, spans []span) error {
	var body []byte
	var err error
	if s.otlp {
		body, err = ptraceotlp.NewExportRequestFromTraces(otlpTraces("crash-otlp-http", spans)).MarshalProto()
	} else {
		zs := make([]zmodel.SpanModel, len(spans))
		for i, sp := range spans {
			zs[i] = zmodel.SpanModel{
				SpanContext: zmodel.SpanContext{
					TraceID: zmodel.TraceID{High: binary.BigEndian.Uint64(sp.key.Trace[0:]), Low: binary.BigEndian.Uint64(sp.key.Trace[8:])},
					ID:      zmodel.ID(binary.BigEndian.Uint64(sp.key.Span[:])),
				},
				Name:          sp.name,
				Kind:          zmodel.Server,
				Timestamp:     sp.start,
				Duration:      sp.dur,
				LocalEndpoint: &zmodel.Endpoint{ServiceName: "crash-zipkin"},
			}
		}
		body, err = json.Marshal(zs)
	}
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", s.ctype)
	resp, err := s.c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != s.want {
		return fmt.Errorf("HTTP %d: %.200s", resp.StatusCode, rb)
	}
	if s.otlp {
		er := ptraceotlp.NewExportResponse()
		if err := er.UnmarshalProto(rb); err != nil {
			return fmt.Errorf("OTLP response: %w", err)
		}
		if n := er.PartialSuccess().RejectedSpans(); n > 0 {
			return fmt.Errorf("partial success: %d spans rejected: %s", n, er.PartialSuccess().ErrorMessage())
		}
	}
	return nil
}

func (s *httpSender) close() { s.c.CloseIdleConnections() }

// recorder keeps every span sent in a run and whether it was acknowledged.
type recorder struct {
	mu      sync.Mutex
	origins map[spanKey]spanOrigin
	errs    map[string]int // first words of send errors, per protocol, for the summary
}

func newRecorder() *recorder {
	return &recorder{origins: map[spanKey]spanOrigin{}, errs: map[string]int{}}
}

// trialLoad runs the load of one trial against the receivers in addrs
// until stop is closed.
type trialLoad struct {
	run     uint64
	trial   int
	ready   time.Time
	rate    float64 // requests per second per protocol
	timeout time.Duration
	rec     *recorder
	seed    uint64

	spanSeq  uint32 // shared by all workers; under mu
	traceSeq uint32
	mu       sync.Mutex

	sent, acked map[string]int // requests, per protocol; under rec.mu
}

func (l *trialLoad) nextIDs(nSpans int, newTrace bool, trace [16]byte) ([16]byte, []uint32) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if newTrace {
		l.traceSeq++
		trace = traceIDFor(l.run, uint32(l.trial), l.traceSeq)
	}
	seqs := make([]uint32, nSpans)
	for i := range seqs {
		l.spanSeq++
		seqs[i] = l.spanSeq
	}
	return trace, seqs
}

// worker sends requests of one protocol at l.rate until stop is closed.
// A trace gets 1–3 requests (parts), so traces span flushes and blocks.
func (l *trialLoad) worker(proto string, s sender, idx int, stop <-chan struct{}) {
	rng := rand.New(rand.NewPCG(l.seed, uint64(l.trial)<<8|uint64(idx)))
	interval := time.Duration(float64(time.Second) / l.rate)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var trace [16]byte
	partsLeft := 0
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		newTrace := partsLeft == 0
		if newTrace {
			partsLeft = 1 + rng.IntN(3)
		}
		partsLeft--
		var seqs []uint32
		trace, seqs = l.nextIDs(1+rng.IntN(4), newTrace, trace)
		now := time.Now()
		spans := make([]span, len(seqs))
		for i, q := range seqs {
			spans[i] = span{key: spanKey{Trace: trace, Span: spanIDFor(uint32(l.trial), q)},
				name: fmt.Sprintf("%s-%d", proto, q), start: now.Add(-time.Duration(rng.IntN(50)) * time.Millisecond), dur: time.Millisecond}
		}
		sentMs := now.Sub(l.ready).Milliseconds()
		l.rec.mu.Lock()
		for _, sp := range spans {
			l.rec.origins[sp.key] = spanOrigin{Trial: l.trial, Protocol: proto, SentMs: sentMs, AckMs: -1}
		}
		l.sent[proto]++
		l.rec.mu.Unlock()

		ctx, cancel := context.WithTimeout(context.Background(), l.timeout)
		err := s.send(ctx, spans)
		cancel()
		ackMs := time.Since(l.ready).Milliseconds()
		l.rec.mu.Lock()
		if err == nil {
			l.acked[proto]++
			for _, sp := range spans {
				o := l.rec.origins[sp.key]
				o.AckMs = ackMs
				l.rec.origins[sp.key] = o
			}
		} else {
			l.rec.errs[proto+": "+errClass(err)]++
		}
		l.rec.mu.Unlock()
	}
}

// errClass shortens an error to a stable class for counting.
func errClass(err error) string {
	s := err.Error()
	for _, c := range []string{"connection refused", "connection reset", "EOF", "Unavailable", "DeadlineExceeded", "deadline exceeded", "partial success", "HTTP 4", "HTTP 5", "broken pipe"} {
		if bytes.Contains([]byte(s), []byte(c)) {
			return c
		}
	}
	if len(s) > 60 {
		s = s[:60]
	}
	return s
}
