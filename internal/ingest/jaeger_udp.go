package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
	"github.com/jaegertracing/jaeger-idl/thrift-gen/agent"
	"github.com/jaegertracing/jaeger-idl/thrift-gen/jaeger"
	"github.com/jaegertracing/jaeger-idl/thrift-gen/zipkincore"
	"github.com/prometheus/client_golang/prometheus"
)

// JaegerUDPReceiver serves the Jaeger agent protocol: one thrift
// Agent.emitBatch call per UDP datagram, in the compact (usually port 6831)
// or binary (6832) encoding. UDP carries no headers, so every batch belongs
// to DefaultTenant, whatever the multi-tenancy setting; and no answer goes
// back, so refusals are only logged and counted. Agent.emitZipkinBatch is
// refused (counted as "unsupported"): use the Zipkin receiver.
type JaegerUDPReceiver struct {
	base
	cfg     UDPConfig
	compact bool

	mu     sync.Mutex
	conn   *net.UDPConn
	queue  chan []byte
	pool   sync.Pool
	ctx    context.Context // Consume's context; cancelled when Shutdown gives up
	cancel context.CancelFunc
	done   chan struct{}
}

var _ Receiver = (*JaegerUDPReceiver)(nil)

// NewJaegerThriftCompact builds a receiver for emitBatch in thrift compact
// encoding (DefaultJaegerThriftCompactEndpoint is the usual address).
func NewJaegerThriftCompact(cfg UDPConfig, c Consumer, log *slog.Logger, reg prometheus.Registerer) (*JaegerUDPReceiver, error) {
	return newJaegerUDP(ProtocolJaegerThriftCompact, true, cfg, c, log, reg)
}

// NewJaegerThriftBinary builds a receiver for emitBatch in thrift binary
// encoding (DefaultJaegerThriftBinaryEndpoint is the usual address).
func NewJaegerThriftBinary(cfg UDPConfig, c Consumer, log *slog.Logger, reg prometheus.Registerer) (*JaegerUDPReceiver, error) {
	return newJaegerUDP(ProtocolJaegerThriftBinary, false, cfg, c, log, reg)
}

func newJaegerUDP(protocol string, compact bool, cfg UDPConfig, c Consumer, log *slog.Logger, reg prometheus.Registerer) (*JaegerUDPReceiver, error) {
	b, err := newBase(protocol, c, log, reg)
	if err != nil {
		return nil, err
	}
	if cfg.Endpoint == "" {
		return nil, fmt.Errorf("%s receiver: no endpoint to listen on", protocol)
	}
	return &JaegerUDPReceiver{base: b, cfg: cfg.withDefaults(), compact: compact}, nil
}

// Start binds the socket and starts the reader and the workers.
func (r *JaegerUDPReceiver) Start(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.conn != nil {
		return fmt.Errorf("%s receiver: already started", r.protocol)
	}
	var lc net.ListenConfig
	pc, err := lc.ListenPacket(ctx, "udp", r.cfg.Endpoint)
	if err != nil {
		return fmt.Errorf("%s receiver: listening on %s: %w", r.protocol, r.cfg.Endpoint, err)
	}
	r.conn = pc.(*net.UDPConn)
	r.queue = make(chan []byte, r.cfg.QueueSize)
	r.pool.New = func() any { b := make([]byte, 65536); return &b }
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.done = make(chan struct{})

	var workers sync.WaitGroup
	for range r.cfg.Workers {
		workers.Go(r.work)
	}
	go func() {
		defer close(r.done)
		r.read()
		close(r.queue)
		workers.Wait()
	}()
	r.log.Info("receiver listening", "addr", r.conn.LocalAddr().String(), "tenant", DefaultTenant)
	return nil
}

// Shutdown closes the socket, then lets the workers finish the packets
// already queued; when ctx ends first it cancels their Consume calls and
// returns ctx's error.
func (r *JaegerUDPReceiver) Shutdown(ctx context.Context) error {
	r.mu.Lock()
	conn, done := r.conn, r.done
	r.mu.Unlock()
	if conn == nil {
		return nil
	}
	_ = conn.Close()
	select {
	case <-done:
		r.cancel()
		return nil
	case <-ctx.Done():
		r.cancel()
		<-done
		return ctx.Err()
	}
}

// Addr is the bound address, nil before Start.
func (r *JaegerUDPReceiver) Addr() net.Addr {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.conn == nil {
		return nil
	}
	return r.conn.LocalAddr()
}

func (r *JaegerUDPReceiver) read() {
	for {
		bp := r.pool.Get().(*[]byte)
		n, _, err := r.conn.ReadFromUDP(*bp)
		if err != nil {
			r.pool.Put(bp)
			if errors.Is(err, net.ErrClosed) {
				return
			}
			r.log.Warn("reading UDP packet", "err", err)
			time.Sleep(10 * time.Millisecond) // do not spin on a persistent error
			continue
		}
		if n > r.cfg.MaxPacketSize {
			r.pool.Put(bp)
			r.m.refuse(r.protocol, reasonTooLarge, 0)
			continue
		}
		pkt := (*bp)[:n]
		select {
		case r.queue <- pkt:
		default:
			r.pool.Put(bp)
			r.m.refuse(r.protocol, reasonQueueFull, 0)
		}
	}
}

func (r *JaegerUDPReceiver) work() {
	for pkt := range r.queue {
		r.process(pkt)
		b := pkt[:cap(pkt)]
		r.pool.Put(&b)
	}
}

// process decodes one datagram and consumes its batch.
func (r *JaegerUDPReceiver) process(pkt []byte) {
	defer func() {
		if p := recover(); p != nil {
			r.m.refuse(r.protocol, reasonMalformed, 0)
			r.log.Debug("packet refused: decoder panicked", "panic", fmt.Sprint(p))
		}
	}()
	h := &agentHandler{r: r}
	if err := decodeAgentPacket(r.ctx, pkt, r.compact, h); err != nil {
		r.m.refuse(r.protocol, reasonMalformed, 0)
		r.log.Debug("packet refused", "err", err)
	}
}

// decodeAgentPacket runs one Agent call found in pkt against h.
func decodeAgentPacket(ctx context.Context, pkt []byte, compact bool, h agent.Agent) error {
	if len(pkt) == 0 {
		return errors.New("empty packet")
	}
	buf := &thrift.TMemoryBuffer{Buffer: bytes.NewBuffer(pkt)}
	cfg := &thrift.TConfiguration{MaxMessageSize: int32(len(pkt))}
	var p thrift.TProtocol
	if compact {
		p = thrift.NewTCompactProtocolConf(buf, cfg)
	} else {
		p = thrift.NewTBinaryProtocolConf(buf, cfg)
	}
	// Replies (for unknown methods) go nowhere: emitBatch is oneway.
	out := thrift.NewTBinaryProtocolConf(thrift.NewTMemoryBuffer(), cfg)
	ok, err := agent.NewAgentProcessor(h).Process(ctx, p, out)
	if err != nil {
		return fmt.Errorf("decoding thrift Agent call: %w", err)
	}
	if !ok {
		return errors.New("decoding thrift Agent call: not an emitBatch call")
	}
	return nil
}

// agentHandler receives the decoded Agent calls of one packet.
type agentHandler struct{ r *JaegerUDPReceiver }

func (h *agentHandler) EmitBatch(ctx context.Context, batch *jaeger.Batch) error {
	r := h.r
	td, err := translateJaegerThrift(batch)
	if err != nil {
		r.m.refuse(r.protocol, reasonMalformed, len(batch.GetSpans()))
		r.log.Debug("packet refused", "err", err)
		return nil
	}
	// consume counts and logs refusals; there is nobody to tell.
	r.consume(ctx, DefaultTenant, td)
	return nil
}

func (h *agentHandler) EmitZipkinBatch(_ context.Context, spans []*zipkincore.Span) error {
	h.r.m.refuse(h.r.protocol, reasonUnsupported, len(spans))
	h.r.log.Debug("packet refused: emitZipkinBatch is not supported; send Zipkin spans to the Zipkin receiver", "spans", len(spans))
	return nil
}
