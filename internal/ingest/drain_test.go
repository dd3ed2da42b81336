package ingest

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"

	"github.com/tracectl/tracectl/internal/ingest/ingesttest"
)

// gate is a Consumer that holds every call until released (or until its
// context ends), the way a slow WAL would.
type gate struct {
	entered chan struct{}
	release chan struct{}
	once    sync.Once
	mu      sync.Mutex
	done    int
	ctxErrs int
}

func newGate() *gate { return &gate{entered: make(chan struct{}), release: make(chan struct{})} }

func (g *gate) Consume(ctx context.Context, _ string, _ ptrace.Traces) error {
	g.once.Do(func() { close(g.entered) })
	select {
	case <-g.release:
		g.mu.Lock()
		g.done++
		g.mu.Unlock()
		return nil
	case <-ctx.Done():
		g.mu.Lock()
		g.ctxErrs++
		g.mu.Unlock()
		return ctx.Err()
	}
}

func (g *gate) counts() (done, ctxErrs int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.done, g.ctxErrs
}

// drainCase drives one kind of listener.
type drainCase struct {
	name string
	// start builds and starts a receiver over c, without the automatic
	// cleanup of start (the test shuts it down itself).
	start func(t *testing.T, c Consumer) Receiver
	// send makes one request and reports its error (nil: acknowledged).
	// For UDP there is no answer: it returns nil once the packet is sent.
	send func(t *testing.T, r Receiver) error
	udp  bool
}

func drainCases() []drainCase {
	body, _ := ptraceotlp.NewExportRequestFromTraces(otlpTraces("inflight")).MarshalProto()
	return []drainCase{
		{
			name: "http",
			start: func(t *testing.T, c Consumer) Receiver {
				r, err := NewOTLPHTTP(tcpConfig(false), c, testLogger(t), nil)
				return startUnmanaged(t, r, err)
			},
			send: func(t *testing.T, r Receiver) error {
				resp, err := http.Post("http://"+r.Addr().String()+"/v1/traces", otlpProto, bytesReader(body))
				if err != nil {
					return err
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					return errors.New(resp.Status)
				}
				return nil
			},
		},
		{
			name: "grpc",
			start: func(t *testing.T, c Consumer) Receiver {
				r, err := NewOTLPGRPC(tcpConfig(false), c, testLogger(t), nil)
				return startUnmanaged(t, r, err)
			},
			send: func(t *testing.T, r Receiver) error {
				_, err := otlpGRPCClient(t, r.Addr().String()).Export(context.Background(), ptraceotlp.NewExportRequestFromTraces(otlpTraces("inflight")))
				return err
			},
		},
		{
			name: "udp", udp: true,
			start: func(t *testing.T, c Consumer) Receiver {
				r, err := NewJaegerThriftCompact(UDPConfig{Endpoint: loopback}, c, testLogger(t), nil)
				return startUnmanaged(t, r, err)
			},
			send: func(t *testing.T, r Receiver) error {
				batch, _, _ := jaegerThriftBatch()
				sendUDP(t, r.Addr(), emitBatchPacket(t, batch, true))
				return nil
			},
		},
	}
}

func startUnmanaged[R Receiver](t *testing.T, r R, err error) R {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestShutdownDrainsInFlight(t *testing.T) {
	for _, dc := range drainCases() {
		t.Run(dc.name, func(t *testing.T) {
			g := newGate()
			r := dc.start(t, g)
			addr := r.Addr().String()
			sent := make(chan error, 1)
			go func() { sent <- dc.send(t, r) }()
			<-g.entered

			shut := make(chan error, 1)
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				shut <- r.Shutdown(ctx)
			}()
			select {
			case err := <-shut:
				t.Fatalf("Shutdown returned (%v) while a request was in flight", err)
			case <-time.After(200 * time.Millisecond):
			}
			if !dc.udp {
				if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
					c.Close()
					t.Error("a new connection was accepted during Shutdown")
				}
			}
			close(g.release)
			if err := <-shut; err != nil {
				t.Errorf("Shutdown: %v", err)
			}
			if err := <-sent; err != nil {
				t.Errorf("the in-flight request failed: %v", err)
			}
			if done, _ := g.counts(); done != 1 {
				t.Errorf("consumer completed %d calls, want 1", done)
			}
		})
	}
}

func TestShutdownGivesUpAtDeadline(t *testing.T) {
	for _, dc := range drainCases() {
		t.Run(dc.name, func(t *testing.T) {
			g := newGate()
			r := dc.start(t, g)
			sent := make(chan error, 1)
			go func() { sent <- dc.send(t, r) }()
			<-g.entered
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			began := time.Now()
			err := r.Shutdown(ctx)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Shutdown = %v, want the deadline error", err)
			}
			if took := time.Since(began); took > 5*time.Second {
				t.Errorf("Shutdown took %v past its deadline", took)
			}
			if err := <-sent; err == nil && !dc.udp {
				t.Error("the abandoned request was acknowledged")
			}
			deadline := time.Now().Add(5 * time.Second)
			for {
				if _, ctxErrs := g.counts(); ctxErrs == 1 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the consumer's context was not cancelled")
				}
				time.Sleep(10 * time.Millisecond)
			}
			close(g.release)
		})
	}
}

// TestShutdownWithStalledRequests: requests a client never finishes
// sending (an HTTP body that stops, an Export call that never ends) hold
// Shutdown until its deadline, are then closed, and do not make it fail:
// they carry nothing the server took. A request that did reach the
// Consumer makes it fail (TestShutdownGivesUpAtDeadline).
func TestShutdownWithStalledRequests(t *testing.T) {
	for _, dc := range drainCases() {
		if dc.udp {
			continue
		}
		t.Run(dc.name, func(t *testing.T) {
			g := newGate()
			close(g.release)
			r := dc.start(t, g)
			addr := r.Addr().String()
			var stall func() (closed, opened int)
			if dc.name == "grpc" {
				conn := grpcConn(t, addr)
				var streams []grpc.ClientStream
				for range 5 {
					s, err := conn.NewStream(context.Background(), &grpc.StreamDesc{ClientStreams: true}, "/"+otlpTraceService+"/Export", grpc.ForceCodecV2(partsCodec{}))
					if err == nil {
						err = s.SendMsg(&parts{[]byte{}})
					}
					if err != nil {
						t.Fatal(err)
					}
					streams = append(streams, s)
				}
				stall = func() (int, int) {
					n := 0
					for _, s := range streams {
						if s.RecvMsg(new(parts)) != nil {
							n++
						}
					}
					return n, len(streams)
				}
			} else {
				l := ingesttest.StartSlowLoris(addr, "/v1/traces", 5, ingesttest.StallBody, time.Second)
				defer l.Stop()
				stall = func() (int, int) {
					deadline := time.Now().Add(5 * time.Second)
					for {
						closed, opened := l.Closed()
						if len(closed) == opened || time.Now().After(deadline) {
							return len(closed), opened
						}
						time.Sleep(10 * time.Millisecond)
					}
				}
			}
			if err := dc.send(t, r); err != nil {
				t.Fatalf("a normal request beside the stalled ones: %v", err)
			}
			time.Sleep(100 * time.Millisecond)
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			began := time.Now()
			err := r.Shutdown(ctx)
			took := time.Since(began)
			closed, opened := stall()
			t.Logf("%s: Shutdown with %d stalled requests, 500 ms deadline: %v after %v; %d closed", dc.name, opened, err, took.Round(time.Millisecond), closed)
			if err != nil {
				t.Errorf("Shutdown = %v, want nil", err)
			}
			if took < 400*time.Millisecond || took > 3*time.Second {
				t.Errorf("Shutdown took %v, want about its 500 ms deadline", took)
			}
			if closed != opened {
				t.Errorf("%d of %d stalled requests closed", closed, opened)
			}
		})
	}
}

func TestJaegerUDPQueueAndPacketLimits(t *testing.T) {
	g := newGate()
	e := newEnv()
	r := start(NewJaegerThriftCompact(UDPConfig{Endpoint: loopback, Workers: 1, QueueSize: 1, MaxPacketSize: 2000}, g, testLogger(t), e.reg))(t)
	defer close(g.release) // before the Shutdown of start's cleanup
	batch, _, _ := jaegerThriftBatch()
	pkt := emitBatchPacket(t, batch, true)
	if len(pkt) > 2000 {
		t.Fatalf("test packet is %d bytes", len(pkt))
	}
	sendUDP(t, r.Addr(), pkt)
	<-g.entered                              // the only worker is busy
	sendUDP(t, r.Addr(), pkt, pkt)           // one waits in the queue, one is dropped
	sendUDP(t, r.Addr(), make([]byte, 3000)) // over MaxPacketSize
	wait := func(reason string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for counter(r.m.refusedRequests.WithLabelValues(ProtocolJaegerThriftCompact, reason)) != 1 {
			if time.Now().After(deadline) {
				t.Fatalf("refused requests (%s) = %v, want 1", reason,
					counter(r.m.refusedRequests.WithLabelValues(ProtocolJaegerThriftCompact, reason)))
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	wait(reasonQueueFull)
	wait(reasonTooLarge)
}
