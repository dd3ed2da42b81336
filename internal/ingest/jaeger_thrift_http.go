package ingest

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math"
	"net/http"

	"github.com/apache/thrift/lib/go/thrift"
	"github.com/jaegertracing/jaeger-idl/thrift-gen/jaeger"
	jaegertranslator "github.com/open-telemetry/opentelemetry-collector-contrib/pkg/translator/jaeger"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// JaegerThriftHTTPReceiver serves POST /api/traces with a jaeger.Batch in
// thrift binary encoding (application/x-thrift or
// application/vnd.apache.thrift.binary), as Jaeger clients send to a
// collector. It answers 202 Accepted.
type JaegerThriftHTTPReceiver struct {
	*httpServer
}

var _ Receiver = (*JaegerThriftHTTPReceiver)(nil)

// NewJaegerThriftHTTP builds a Jaeger thrift-over-HTTP receiver; Start
// listens on cfg.Endpoint (DefaultJaegerThriftHTTPEndpoint is the usual one).
func NewJaegerThriftHTTP(cfg Config, c Consumer, log *slog.Logger, reg prometheus.Registerer) (*JaegerThriftHTTPReceiver, error) {
	h, err := newHTTPServer(ProtocolJaegerThriftHTTP, cfg, c, log, reg)
	if err != nil {
		return nil, err
	}
	return &JaegerThriftHTTPReceiver{h}, nil
}

// Start listens and serves in the background.
func (r *JaegerThriftHTTPReceiver) Start(ctx context.Context) error {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/traces", r.handle)
	return r.start(ctx, mux)
}

func (r *JaegerThriftHTTPReceiver) handle(w http.ResponseWriter, req *http.Request) {
	switch ct := mediaType(req, ""); ct {
	case "application/x-thrift", "application/vnd.apache.thrift.binary":
	default:
		r.writePlainError(w, unsupportedMediaType(r.protocol, ct, "application/x-thrift or application/vnd.apache.thrift.binary"), 0)
		return
	}
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
	td, err := safeDecode("thrift jaeger.Batch", func() (ptrace.Traces, error) { return decodeJaegerThriftBatch(req.Context(), body) })
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

// decodeJaegerThriftBatch decodes a thrift-binary jaeger.Batch and
// translates it with the Collector's Jaeger translator.
func decodeJaegerThriftBatch(ctx context.Context, body []byte) (ptrace.Traces, error) {
	if len(body) == 0 {
		return ptrace.Traces{}, fmt.Errorf("decoding thrift jaeger.Batch: empty body")
	}
	buf := &thrift.TMemoryBuffer{Buffer: bytes.NewBuffer(body)}
	p := thrift.NewTBinaryProtocolConf(buf, &thrift.TConfiguration{MaxMessageSize: int32(min(len(body), math.MaxInt32))})
	batch := &jaeger.Batch{}
	if err := batch.Read(ctx, p); err != nil {
		return ptrace.Traces{}, fmt.Errorf("decoding thrift jaeger.Batch: %w", err)
	}
	return translateJaegerThrift(batch)
}

func translateJaegerThrift(batch *jaeger.Batch) (ptrace.Traces, error) {
	td, err := jaegertranslator.ThriftToTraces(batch)
	if err != nil {
		return ptrace.Traces{}, fmt.Errorf("translating jaeger.Batch to OTLP: %w", err)
	}
	return td, nil
}
