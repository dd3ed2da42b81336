package ingest

import (
	"context"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
)

const otlpTraceService = "opentelemetry.proto.collector.trace.v1.TraceService"

// OTLPGRPCReceiver serves opentelemetry.proto.collector.trace.v1.TraceService/Export
// (gzip accepted), answering partial success when some spans are rejected.
type OTLPGRPCReceiver struct {
	*grpcServer
	ptraceotlp.UnimplementedGRPCServer
}

var (
	_ Receiver              = (*OTLPGRPCReceiver)(nil)
	_ ptraceotlp.GRPCServer = (*OTLPGRPCReceiver)(nil)
)

// NewOTLPGRPC builds an OTLP/gRPC receiver; Start listens on cfg.Endpoint
// (DefaultOTLPGRPCEndpoint is the usual one).
func NewOTLPGRPC(cfg Config, c Consumer, log *slog.Logger, reg prometheus.Registerer) (*OTLPGRPCReceiver, error) {
	g, err := newGRPCServer(ProtocolOTLPGRPC, cfg, c, log, reg)
	if err != nil {
		return nil, err
	}
	return &OTLPGRPCReceiver{grpcServer: g}, nil
}

// Start listens and serves in the background.
func (r *OTLPGRPCReceiver) Start(ctx context.Context) error {
	return r.start(ctx, rawUnaryService(otlpTraceService, "Export", r.handle, r.recvFailed), r)
}

// handle checks the tenant before spending time on decoding.
func (r *OTLPGRPCReceiver) handle(ctx context.Context, body []byte) ([]byte, error) {
	tenantID, re := tenantFromGRPC(r.cfg.MultiTenancy, ctx, r.protocol)
	if re != nil {
		return nil, r.refuse(re, 0)
	}
	req := ptraceotlp.NewExportRequest()
	if err := req.UnmarshalProto(body); err != nil {
		return nil, r.refuse(malformed(r.protocol, "decoding ExportTraceServiceRequest protobuf: %v", err), 0)
	}
	resp, err := r.export(ctx, tenantID, req, body)
	if err != nil {
		return nil, err
	}
	return resp.MarshalProto()
}

// Export is the ptraceotlp.GRPCServer method, for serving through
// ptraceotlp.RegisterGRPCServer on another grpc.Server.
func (r *OTLPGRPCReceiver) Export(ctx context.Context, req ptraceotlp.ExportRequest) (ptraceotlp.ExportResponse, error) {
	tenantID, re := tenantFromGRPC(r.cfg.MultiTenancy, ctx, r.protocol)
	if re != nil {
		return ptraceotlp.NewExportResponse(), r.refuse(re, 0)
	}
	return r.export(ctx, tenantID, req, nil)
}

// export hands req to the consumer; raw is its protobuf encoding, if known.
func (r *OTLPGRPCReceiver) export(ctx context.Context, tenantID string, req ptraceotlp.ExportRequest, raw []byte) (ptraceotlp.ExportResponse, error) {
	resp := ptraceotlp.NewExportResponse()
	out := r.consumeRaw(ctx, tenantID, req.Traces(), raw)
	if out.err != nil {
		return resp, consumerStatus(r.protocol, out.err)
	}
	if out.rejected > 0 {
		resp.PartialSuccess().SetRejectedSpans(int64(out.rejected))
		resp.PartialSuccess().SetErrorMessage(out.rejectMsg)
	}
	return resp, nil
}
