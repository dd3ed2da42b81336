package ingest

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/translator/zipkin/zipkinv1"
	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/translator/zipkin/zipkinv2"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// ZipkinReceiver serves the Zipkin collector API: POST /api/v2/spans (JSON
// or protobuf) and POST /api/v1/spans (JSON or thrift), answering 202
// Accepted. Decoding is the Collector's Zipkin translator's.
type ZipkinReceiver struct {
	*httpServer
	v2JSON, v2Proto, v1JSON, v1Thrift ptrace.Unmarshaler
}

var _ Receiver = (*ZipkinReceiver)(nil)

// NewZipkin builds a Zipkin receiver; Start listens on cfg.Endpoint
// (DefaultZipkinEndpoint is the usual one).
func NewZipkin(cfg ZipkinConfig, c Consumer, log *slog.Logger, reg prometheus.Registerer) (*ZipkinReceiver, error) {
	h, err := newHTTPServer(ProtocolZipkin, cfg.Config, c, log, reg)
	if err != nil {
		return nil, err
	}
	return &ZipkinReceiver{
		httpServer: h,
		v2JSON:     zipkinv2.NewJSONTracesUnmarshaler(cfg.ParseStringTags),
		v2Proto:    zipkinv2.NewProtobufTracesUnmarshaler(false, cfg.ParseStringTags),
		v1JSON:     zipkinv1.NewJSONTracesUnmarshaler(cfg.ParseStringTags),
		v1Thrift:   zipkinv1.NewThriftTracesUnmarshaler(),
	}, nil
}

// Start listens and serves in the background.
func (r *ZipkinReceiver) Start(ctx context.Context) error {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v2/spans", r.handleV2)
	mux.HandleFunc("POST /api/v1/spans", r.handleV1)
	return r.start(ctx, mux)
}

func (r *ZipkinReceiver) handleV2(w http.ResponseWriter, req *http.Request) {
	switch ct := mediaType(req, "application/json"); ct {
	case "application/json":
		r.handle(w, req, r.v2JSON, "v2 JSON")
	case "application/x-protobuf", "application/protobuf":
		r.handle(w, req, r.v2Proto, "v2 protobuf ListOfSpans")
	default:
		r.writePlainError(w, unsupportedMediaType(r.protocol, ct, "application/json or application/x-protobuf"), 0)
	}
}

func (r *ZipkinReceiver) handleV1(w http.ResponseWriter, req *http.Request) {
	switch ct := mediaType(req, "application/json"); ct {
	case "application/json":
		r.handle(w, req, r.v1JSON, "v1 JSON")
	case "application/x-thrift", "application/vnd.apache.thrift.binary":
		r.handle(w, req, r.v1Thrift, "v1 thrift")
	default:
		r.writePlainError(w, unsupportedMediaType(r.protocol, ct, "application/json or application/x-thrift"), 0)
	}
}

func (r *ZipkinReceiver) handle(w http.ResponseWriter, req *http.Request, u ptrace.Unmarshaler, format string) {
	tenantID, re := tenantFromHTTP(r.cfg.MultiTenancy, req, r.protocol)
	if re != nil {
		r.writePlainError(w, re, 0)
		return
	}
	body, re := r.readBody(w, req)
	if re != nil {
		r.writePlainError(w, re, 0)
		return
	}
	td, err := decodeZipkin(u, body, format)
	if err != nil {
		r.writePlainError(w, malformed(r.protocol, "%v", err), 0)
		return
	}
	if out := r.consume(req.Context(), tenantID, td); out.err != nil {
		writePlainConsumerError(w, r.protocol, out.err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

func decodeZipkin(u ptrace.Unmarshaler, body []byte, format string) (ptrace.Traces, error) {
	return safeDecode("Zipkin "+format, func() (ptrace.Traces, error) {
		td, err := u.UnmarshalTraces(body)
		if err != nil {
			return ptrace.Traces{}, fmt.Errorf("decoding Zipkin %s: %w", format, err)
		}
		return td, nil
	})
}
