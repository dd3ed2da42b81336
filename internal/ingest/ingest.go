// Package ingest owns the edge of `tracectl serve`: network receivers for
// OTLP (gRPC, HTTP), Jaeger (gRPC, thrift over HTTP, agent thrift over UDP)
// and Zipkin (v1, v2). Each receiver authenticates the tenant, bounds the
// request size, decodes the payload with the OpenTelemetry translators into
// ptrace.Traces and hands it to a Consumer; it answers the client only after
// the Consumer has returned, so a success response means the data is durable.
//
// It must not store, index or batch anything itself, and it knows nothing of
// the WAL or blocks: that is the Consumer's job. Receivers never write to
// os.Stdout; they log through the *slog.Logger they are given and export
// metrics on the prometheus.Registerer they are given.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tracectl/tracectl/internal/tenant"
)

// Consumer receives every decoded request of every receiver.
//
// Receivers call Consume concurrently, once per request (per UDP packet for
// the Jaeger agent protocols), with the tenant already validated by
// tenant.Validate. Consume returns only after td is durable (in the WAL):
// a nil error is an ack. td belongs to the Consumer after the call; the
// receiver does not touch it again.
//
// Errors:
//   - an error that matches ErrLimited (errors.Is), typically a *LimitError,
//     means a rate, size or trace limit refused the data: HTTP 429 with
//     Retry-After, gRPC ResourceExhausted with RetryInfo.
//   - a *PartialError means the data was made durable except for some spans:
//     OTLP answers with a partial-success response; the other protocols,
//     which have no such notion, answer success and count the rejected spans.
//   - any other error is a server failure: HTTP 503, gRPC Unavailable
//     (both retryable for OTLP exporters).
//
// ctx is the request's context: it is cancelled when the client goes away or
// the receiver is forced to stop.
type Consumer interface {
	Consume(ctx context.Context, tenant string, td ptrace.Traces) error
}

// ConsumerFunc adapts a function to Consumer.
type ConsumerFunc func(ctx context.Context, tenant string, td ptrace.Traces) error

// Consume calls f.
func (f ConsumerFunc) Consume(ctx context.Context, tenant string, td ptrace.Traces) error {
	return f(ctx, tenant, td)
}

// RawConsumer is a Consumer that can also take the request's OTLP protobuf
// encoding (an ExportTraceServiceRequest) when the receiver has it, so it
// need not encode td again (e.g. for a write-ahead log). The OTLP
// receivers call ConsumeOTLP instead of Consume when the consumer
// implements it and the payload was protobuf they did not change; raw is
// then exactly the encoding of td and is valid only during the call.
type RawConsumer interface {
	Consumer
	ConsumeOTLP(ctx context.Context, tenant string, td ptrace.Traces, raw []byte) error
}

// ErrLimited is the kind of every error that means "a limit refused this
// data; retry later": match it with errors.Is.
var ErrLimited = errors.New("ingest limit reached")

// DefaultRetryAfter is the delay suggested to clients when a limit error does
// not carry its own.
const DefaultRetryAfter = 5 * time.Second

// LimitError is an ErrLimited-kind error with the details receivers report.
type LimitError struct {
	// Reason is a fixed, low-cardinality identifier such as "rate_limited",
	// "trace_too_large" or "live_traces_exceeded"; it becomes the reason label
	// of tracectl_receiver_refused_spans_total. Empty means "limited".
	Reason string
	// RetryAfter is the delay suggested to the client; zero means
	// DefaultRetryAfter.
	RetryAfter time.Duration
	// Message is shown to the client.
	Message string
}

func (e *LimitError) Error() string {
	if e.Message == "" {
		return ErrLimited.Error()
	}
	return e.Message
}

// Is makes errors.Is(e, ErrLimited) true.
func (e *LimitError) Is(target error) bool { return target == ErrLimited }

// Limited returns a *LimitError with a formatted message.
func Limited(reason string, retryAfter time.Duration, format string, args ...any) error {
	return &LimitError{Reason: reason, RetryAfter: retryAfter, Message: fmt.Sprintf(format, args...)}
}

// PartialError is returned by a Consumer that made td durable except for
// Rejected spans (for example the spans of traces over a size limit).
type PartialError struct {
	Rejected int
	// Reason is a fixed identifier used as the metric label; empty means
	// "partial".
	Reason string
	// Err says why, and is shown to OTLP clients in the partial-success
	// response.
	Err error
}

func (e *PartialError) Error() string {
	return fmt.Sprintf("%d spans rejected: %v", e.Rejected, e.Err)
}

func (e *PartialError) Unwrap() error { return e.Err }

// DefaultTenant is the tenant of every request when multi-tenancy is off, and
// of every Jaeger agent (UDP) packet, which has no way to carry one.
const DefaultTenant = tenant.Default

// TenantHeader is the HTTP header (and, lower-cased, the gRPC metadata key)
// that names the tenant when multi-tenancy is on.
const TenantHeader = "X-Scope-OrgID"

// Receiver is a network listener that feeds a Consumer.
type Receiver interface {
	// Start listens and serves in the background. It returns once the
	// listener is bound (or binding failed). ctx bounds only the start-up.
	Start(ctx context.Context) error
	// Shutdown stops accepting new requests and waits for in-flight ones to
	// finish; when ctx ends first it drops them and returns ctx's error,
	// unless none had reached the Consumer: requests a client never
	// finished sending carry nothing the server took, and dropping them
	// is a clean stop (nil).
	Shutdown(ctx context.Context) error
	// Addr is the bound address after Start, nil before.
	Addr() net.Addr
}

// Protocol names, used as the protocol label of metrics and in messages.
const (
	ProtocolOTLPGRPC            = "otlp_grpc"
	ProtocolOTLPHTTP            = "otlp_http"
	ProtocolJaegerGRPC          = "jaeger_grpc"
	ProtocolJaegerThriftHTTP    = "jaeger_thrift_http"
	ProtocolJaegerThriftCompact = "jaeger_thrift_compact"
	ProtocolJaegerThriftBinary  = "jaeger_thrift_binary"
	ProtocolZipkin              = "zipkin"
)
