package ingest

import (
	"context"
	"fmt"
	"log/slog"

	model "github.com/jaegertracing/jaeger-idl/model/v1"
	"github.com/jaegertracing/jaeger-idl/proto-gen/api_v2"
	jaegertranslator "github.com/open-telemetry/opentelemetry-collector-contrib/pkg/translator/jaeger"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

const jaegerCollectorService = "jaeger.api_v2.CollectorService"

// JaegerGRPCReceiver serves jaeger.api_v2.CollectorService/PostSpans, the
// protocol of Jaeger agents and of the Collector's jaeger exporter.
type JaegerGRPCReceiver struct {
	*grpcServer
}

var (
	_ Receiver                      = (*JaegerGRPCReceiver)(nil)
	_ api_v2.CollectorServiceServer = (*JaegerGRPCReceiver)(nil)
)

// NewJaegerGRPC builds a Jaeger gRPC receiver; Start listens on
// cfg.Endpoint (DefaultJaegerGRPCEndpoint is the usual one).
func NewJaegerGRPC(cfg Config, c Consumer, log *slog.Logger, reg prometheus.Registerer) (*JaegerGRPCReceiver, error) {
	g, err := newGRPCServer(ProtocolJaegerGRPC, cfg, c, log, reg)
	if err != nil {
		return nil, err
	}
	return &JaegerGRPCReceiver{g}, nil
}

// Start listens and serves in the background.
func (r *JaegerGRPCReceiver) Start(ctx context.Context) error {
	return r.start(ctx, rawUnaryService(jaegerCollectorService, "PostSpans", r.handle, r.recvFailed), r)
}

func (r *JaegerGRPCReceiver) handle(ctx context.Context, body []byte) ([]byte, error) {
	tenantID, re := tenantFromGRPC(r.cfg.MultiTenancy, ctx, r.protocol)
	if re != nil {
		return nil, r.refuse(re, 0)
	}
	td, err := safeDecode("PostSpansRequest", func() (ptrace.Traces, error) { return decodeJaegerProto(body) })
	if err != nil {
		return nil, r.refuse(malformed(r.protocol, "%v", err), 0)
	}
	if err := r.post(ctx, tenantID, td); err != nil {
		return nil, err
	}
	return (&api_v2.PostSpansResponse{}).Marshal()
}

// PostSpans is the api_v2.CollectorServiceServer method, for serving
// through api_v2.RegisterCollectorServiceServer on another grpc.Server.
func (r *JaegerGRPCReceiver) PostSpans(ctx context.Context, req *api_v2.PostSpansRequest) (*api_v2.PostSpansResponse, error) {
	tenantID, re := tenantFromGRPC(r.cfg.MultiTenancy, ctx, r.protocol)
	if re != nil {
		return nil, r.refuse(re, 0)
	}
	td, err := safeDecode("Jaeger batch", func() (ptrace.Traces, error) { return translateJaegerProto(&req.Batch) })
	if err != nil {
		return nil, r.refuse(malformed(r.protocol, "%v", err), 0)
	}
	if err := r.post(ctx, tenantID, td); err != nil {
		return nil, err
	}
	return &api_v2.PostSpansResponse{}, nil
}

func (r *JaegerGRPCReceiver) post(ctx context.Context, tenantID string, td ptrace.Traces) error {
	if out := r.consume(ctx, tenantID, td); out.err != nil {
		return consumerStatus(r.protocol, out.err)
	}
	return nil
}

func decodeJaegerProto(body []byte) (ptrace.Traces, error) {
	var req api_v2.PostSpansRequest
	if err := req.Unmarshal(body); err != nil {
		return ptrace.Traces{}, fmt.Errorf("decoding PostSpansRequest protobuf: %w", err)
	}
	return translateJaegerProto(&req.Batch)
}

func translateJaegerProto(batch *model.Batch) (ptrace.Traces, error) {
	td, err := jaegertranslator.ProtoToTraces([]*model.Batch{batch})
	if err != nil {
		return ptrace.Traces{}, fmt.Errorf("translating Jaeger batch to OTLP: %w", err)
	}
	return td, nil
}
