package ingest

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// OTLP/HTTP media types.
const (
	otlpProto = "application/x-protobuf"
	otlpJSON  = "application/json"
)

// OTLPHTTPReceiver serves POST /v1/traces with protobuf or JSON bodies,
// optionally gzip/deflate/zstd-compressed, and answers in the request's
// content type: an ExportTraceServiceResponse (with partial success when
// some spans were rejected) or a google.rpc.Status on failure.
type OTLPHTTPReceiver struct {
	*httpServer
}

var _ Receiver = (*OTLPHTTPReceiver)(nil)

// NewOTLPHTTP builds an OTLP/HTTP receiver; Start listens on cfg.Endpoint
// (DefaultOTLPHTTPEndpoint is the usual one).
func NewOTLPHTTP(cfg Config, c Consumer, log *slog.Logger, reg prometheus.Registerer) (*OTLPHTTPReceiver, error) {
	h, err := newHTTPServer(ProtocolOTLPHTTP, cfg, c, log, reg)
	if err != nil {
		return nil, err
	}
	return &OTLPHTTPReceiver{h}, nil
}

// Start listens and serves in the background.
func (r *OTLPHTTPReceiver) Start(ctx context.Context) error {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/traces", r.handle)
	return r.start(ctx, mux)
}

func (r *OTLPHTTPReceiver) handle(w http.ResponseWriter, req *http.Request) {
	ct := mediaType(req, "")
	if ct != otlpProto && ct != otlpJSON {
		r.writePlainError(w, unsupportedMediaType(r.protocol, ct, otlpProto+" or "+otlpJSON), 0)
		return
	}
	tenantID, re := tenantFromHTTP(r.cfg.MultiTenancy, req, r.protocol)
	if re != nil {
		r.refuseOTLP(w, ct, re)
		return
	}
	body, re := r.readBody(w, req)
	if re != nil {
		r.refuseOTLP(w, ct, re)
		return
	}
	exp := ptraceotlp.NewExportRequest()
	var raw []byte
	if ct == otlpProto {
		raw = body
		if err := exp.UnmarshalProto(body); err != nil {
			r.refuseOTLP(w, ct, malformed(r.protocol, "decoding ExportTraceServiceRequest protobuf: %v", err))
			return
		}
	} else if err := exp.UnmarshalJSON(body); err != nil {
		r.refuseOTLP(w, ct, malformed(r.protocol, "decoding ExportTraceServiceRequest JSON: %v", err))
		return
	}

	out := r.consumeRaw(req.Context(), tenantID, exp.Traces(), raw)
	if out.err != nil {
		status, msg := consumerHTTPStatus(w, r.protocol, out.err)
		code := codes.Unavailable
		if errors.Is(out.err, ErrLimited) {
			code = codes.ResourceExhausted
		}
		writeOTLPStatus(w, ct, status, code, msg)
		return
	}
	resp := ptraceotlp.NewExportResponse()
	if out.rejected > 0 {
		resp.PartialSuccess().SetRejectedSpans(int64(out.rejected))
		resp.PartialSuccess().SetErrorMessage(out.rejectMsg)
	}
	var b []byte
	var err error
	if ct == otlpProto {
		b, err = resp.MarshalProto()
	} else {
		b, err = resp.MarshalJSON()
	}
	if err != nil {
		r.log.Error("encoding OTLP response", "err", err)
		http.Error(w, "encoding response: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", ct)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

func (r *OTLPHTTPReceiver) refuseOTLP(w http.ResponseWriter, ct string, re *requestError) {
	r.m.refuse(r.protocol, re.reason, 0)
	r.log.Debug("request refused", "status", re.httpStatus, "err", re.msg)
	writeOTLPStatus(w, ct, re.httpStatus, re.grpcCode, re.msg)
}

// writeOTLPStatus writes a google.rpc.Status in the request's encoding, as
// the OTLP/HTTP specification asks of failure responses.
func writeOTLPStatus(w http.ResponseWriter, ct string, httpStatus int, code codes.Code, msg string) {
	st := &spb.Status{Code: int32(code), Message: strings.ToValidUTF8(msg, "\uFFFD")}
	var b []byte
	if ct == otlpProto {
		b, _ = proto.Marshal(st)
	} else {
		b, _ = protojson.Marshal(st)
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(httpStatus)
	_, _ = w.Write(b)
}
