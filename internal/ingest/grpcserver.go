package ingest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/gzip" // clients may send gzip
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// gRPC connection management: clients may ping every 10 s at most; a
// connection lives 10 minutes (so clients rebalance), then has a minute to
// finish its calls.
var (
	grpcEnforcement = keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}
	grpcKeepalive   = keepalive.ServerParameters{
		MaxConnectionIdle:     5 * time.Minute,
		MaxConnectionAge:      10 * time.Minute,
		MaxConnectionAgeGrace: time.Minute,
		Time:                  time.Minute,
		Timeout:               20 * time.Second,
	}
	// grpcMaxStreams bounds the calls in flight on one connection; a
	// client opening more waits for one to finish. Without it a single
	// connection could hold any number of half-sent requests.
	grpcMaxStreams uint32 = 100
)

// grpcServer is the listener and lifecycle shared by the gRPC receivers.
type grpcServer struct {
	listenerBase

	mu   sync.Mutex
	srv  *grpc.Server
	ln   net.Listener
	done chan struct{}
}

func newGRPCServer(protocol string, cfg Config, c Consumer, log *slog.Logger, reg prometheus.Registerer) (*grpcServer, error) {
	lb, err := newListenerBase(protocol, cfg, c, log, reg)
	if err != nil {
		return nil, err
	}
	return &grpcServer{listenerBase: lb}, nil
}

// listenerBase is what every receiver that listens on a port holds: the
// pipeline, its endpoint configuration and the loaded TLS settings.
type listenerBase struct {
	base
	cfg    Config
	tlsCfg *tls.Config
}

func newListenerBase(protocol string, cfg Config, c Consumer, log *slog.Logger, reg prometheus.Registerer) (listenerBase, error) {
	b, err := newBase(protocol, c, log, reg)
	if err != nil {
		return listenerBase{}, err
	}
	tlsCfg, err := cfg.TLS.load()
	if err != nil {
		return listenerBase{}, fmt.Errorf("%s receiver: %w", protocol, err)
	}
	if cfg.Endpoint == "" {
		return listenerBase{}, fmt.Errorf("%s receiver: no endpoint to listen on", protocol)
	}
	return listenerBase{base: b, cfg: cfg, tlsCfg: tlsCfg}, nil
}

func (g *grpcServer) start(ctx context.Context, desc *grpc.ServiceDesc, impl any) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.srv != nil {
		return fmt.Errorf("%s receiver: already started", g.protocol)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", g.cfg.Endpoint)
	if err != nil {
		return fmt.Errorf("%s receiver: listening on %s: %w", g.protocol, g.cfg.Endpoint, err)
	}
	limit := g.cfg.maxBytes()
	opts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(int(limit)),
		grpc.KeepaliveEnforcementPolicy(grpcEnforcement),
		grpc.KeepaliveParams(grpcKeepalive),
		grpc.ConnectionTimeout(10 * time.Second),
		grpc.MaxConcurrentStreams(grpcMaxStreams),
		grpc.ForceServerCodecV2(rawCodec{delegate: encoding.GetCodecV2("proto")}),
		grpc.ChainUnaryInterceptor(g.observe),
	}
	if g.tlsCfg != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(g.tlsCfg)))
	}
	srv := grpc.NewServer(opts...)
	srv.RegisterService(desc, impl)
	g.srv, g.ln, g.done = srv, ln, make(chan struct{})
	go func() {
		defer close(g.done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			g.log.Error("receiver stopped serving", "err", err)
		}
	}()
	g.log.Info("receiver listening", "addr", ln.Addr().String(), "tls", g.tlsCfg != nil, "multitenancy", g.cfg.MultiTenancy)
	return nil
}

// Shutdown stops accepting calls and waits for in-flight ones; when ctx
// ends first it closes every connection, and returns ctx's error only if
// that cut short a call whose spans had reached the Consumer (forcedStop).
func (g *grpcServer) Shutdown(ctx context.Context) error {
	g.mu.Lock()
	srv, done := g.srv, g.done
	g.mu.Unlock()
	if srv == nil {
		return nil
	}
	stopped := make(chan struct{})
	go func() {
		srv.GracefulStop()
		close(stopped)
	}()
	var err error
	select {
	case <-stopped:
	case <-ctx.Done():
		busy := g.consuming.Load() > 0
		srv.Stop()
		<-stopped
		err = g.forcedStop(ctx, busy)
	}
	<-done
	return err
}

// Addr is the bound address, nil before Start.
func (g *grpcServer) Addr() net.Addr {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ln == nil {
		return nil
	}
	return g.ln.Addr()
}

// observe times each call, and turns a panic (a decoder tripping over a
// crafted payload) into an error instead of a crash: gRPC, unlike net/http,
// does not recover handlers.
func (g *grpcServer) observe(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	start := time.Now()
	defer func() {
		if p := recover(); p != nil {
			g.log.Error("handler panicked", "method", info.FullMethod, "panic", fmt.Sprint(p))
			resp, err = nil, status.Errorf(codes.Internal, "%s: internal error while handling the request", g.protocol)
		}
		g.m.duration.WithLabelValues(g.protocol, status.Code(err).String()).Observe(time.Since(start).Seconds())
	}()
	return handler(ctx, req)
}

// refuse counts a refusal decided by the receiver and turns it into a
// status error.
func (g *grpcServer) refuse(re *requestError, spans int) error {
	g.m.refuse(g.protocol, re.reason, spans)
	g.log.Debug("request refused", "code", re.grpcCode.String(), "err", re.msg)
	return status.Error(re.grpcCode, re.msg)
}

// consumerStatus maps a Consumer error: limits become ResourceExhausted
// with a RetryInfo detail (which OTLP exporters honour), the rest
// Unavailable, which clients retry.
func consumerStatus(protocol string, err error) error {
	msg := strings.ToValidUTF8(err.Error(), "\uFFFD")
	if errors.Is(err, ErrLimited) {
		st := status.New(codes.ResourceExhausted, retryLater(fmt.Sprintf("%s: %s", protocol, msg)))
		if withInfo, derr := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(retryAfter(err))}); derr == nil {
			st = withInfo
		}
		return st.Err()
	}
	return status.Error(codes.Unavailable, fmt.Sprintf("%s: storing spans failed: %s", protocol, msg))
}

// The gRPC services are registered with raw-bytes handlers that decode the
// request themselves: a message gRPC's codec fails to decode becomes
// codes.Internal before any handler or interceptor runs, and a malformed
// payload must be InvalidArgument. The decoders are the same generated ones
// (pdata's ExportRequest.UnmarshalProto, jaeger-idl's gogo Unmarshal).

// rawMessage is a request or response left encoded.
type rawMessage struct{ b []byte }

type rawCodec struct{ delegate encoding.CodecV2 }

func (c rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	if r, ok := v.(*rawMessage); ok {
		return mem.BufferSlice{mem.SliceBuffer(r.b)}, nil
	}
	return c.delegate.Marshal(v)
}

func (c rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if r, ok := v.(*rawMessage); ok {
		r.b = data.Materialize()
		return nil
	}
	return c.delegate.Unmarshal(data, v)
}

func (rawCodec) Name() string { return "proto" }

// recvFailed sees a call whose request gRPC failed to read. A message over
// MaxRecvMsgSize (as sent or once decompressed) is refused by gRPC itself
// with ResourceExhausted and its own message ("grpc: received message
// larger than max (N vs. M)"), already sent to the client when the handler
// learns of it, so the message cannot name --max-request-bytes; it is
// counted here with the receiver's own too_large refusals, and the log
// names the flag.
func (g *grpcServer) recvFailed(err error) {
	if status.Code(err) != codes.ResourceExhausted {
		return
	}
	g.m.refuse(g.protocol, reasonTooLarge, 0)
	g.log.Debug("request refused", "code", codes.ResourceExhausted.String(), "err", err.Error(),
		"limit", fmt.Sprintf("%d bytes (--max-request-bytes, max_request_bytes)", g.cfg.maxBytes()))
}

// rawUnaryService describes a service with one unary method served by
// handle, which gets the encoded request and returns the encoded response;
// recvFailed gets the error of a request gRPC could not read.
func rawUnaryService(service, method string, handle func(ctx context.Context, req []byte) ([]byte, error), recvFailed func(error)) *grpc.ServiceDesc {
	full := "/" + service + "/" + method
	return &grpc.ServiceDesc{
		ServiceName: service,
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{
			MethodName: method,
			Handler: func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
				in := new(rawMessage)
				if err := dec(in); err != nil {
					// gRPC has already answered the client with err.
					if recvFailed != nil {
						recvFailed(err)
					}
					return nil, err
				}
				h := func(ctx context.Context, req any) (any, error) {
					out, err := handle(ctx, req.(*rawMessage).b)
					if err != nil {
						return nil, err
					}
					return &rawMessage{b: out}, nil
				}
				if interceptor == nil {
					return h(ctx, in)
				}
				return interceptor(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: full}, h)
			},
		}},
	}
}
