package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"google.golang.org/grpc/codes"
)

// base is what every receiver shares: where data goes, and how it is
// counted and logged.
type base struct {
	protocol string
	consumer Consumer
	log      *slog.Logger
	m        *metrics
	// consuming counts requests between decoding and their answer from
	// the Consumer: those a forced stop would cut short with their spans
	// possibly taken but not acknowledged.
	consuming *atomic.Int64
}

func newBase(protocol string, c Consumer, log *slog.Logger, reg prometheus.Registerer) (base, error) {
	if c == nil {
		return base{}, fmt.Errorf("%s receiver: no consumer", protocol)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(reg)
	if err != nil {
		return base{}, fmt.Errorf("%s receiver: registering metrics: %w", protocol, err)
	}
	return base{protocol: protocol, consumer: c, log: log.With("protocol", protocol), m: m, consuming: new(atomic.Int64)}, nil
}

// requestError is a refusal decided by the receiver itself, before the
// Consumer: it carries both protocols' codes and the metric reason.
type requestError struct {
	httpStatus int
	grpcCode   codes.Code
	reason     string
	msg        string
}

func (e *requestError) Error() string { return e.msg }

func malformed(protocol string, format string, args ...any) *requestError {
	// Decoder errors quote the payload: keep the message valid UTF-8, as
	// protobuf strings (google.rpc.Status) must be.
	return &requestError{http.StatusBadRequest, codes.InvalidArgument, reasonMalformed,
		strings.ToValidUTF8(protocol+": "+fmt.Sprintf(format, args...), "\uFFFD")}
}

func tooLarge(protocol string, limit int64) *requestError {
	return &requestError{http.StatusRequestEntityTooLarge, codes.ResourceExhausted, reasonTooLarge,
		fmt.Sprintf("%s: request is larger than %d bytes (after decompression), the receiver's limit (--max-request-bytes, max_request_bytes); send smaller batches", protocol, limit)}
}

// outcome is what happened to a decoded request.
type outcome struct {
	accepted int
	// rejected spans were dropped while the rest was accepted; rejectMsg
	// says why (an OTLP partial success).
	rejected  int
	rejectMsg string
	// err is nil, an ErrLimited-kind error, or a server failure.
	err error
}

// consume validates td, hands it to the Consumer and counts the result.
func (b *base) consume(ctx context.Context, tenantID string, td ptrace.Traces) outcome {
	return b.consumeRaw(ctx, tenantID, td, nil)
}

// consumeRaw is consume for a request whose OTLP protobuf encoding is raw
// (nil if not protobuf): a RawConsumer gets it unless spans were dropped.
func (b *base) consumeRaw(ctx context.Context, tenantID string, td ptrace.Traces, raw []byte) outcome {
	var out outcome
	if n := dropInvalidSpans(td); n > 0 {
		raw = nil // no longer the encoding of td
		out.rejected = n
		out.rejectMsg = fmt.Sprintf("%d spans without a valid trace ID or span ID were dropped", n)
		b.m.refuse(b.protocol, reasonInvalidSpan, n)
	}
	n := td.SpanCount()
	if n == 0 {
		return out
	}
	b.consuming.Add(1)
	defer b.consuming.Add(-1)
	var err error
	if rc, ok := b.consumer.(RawConsumer); ok && raw != nil {
		err = rc.ConsumeOTLP(ctx, tenantID, td, raw)
	} else {
		err = b.consumer.Consume(ctx, tenantID, td)
	}
	var partial *PartialError
	var limit *LimitError
	switch {
	case err == nil:
		out.accepted = n
	case errors.As(err, &partial):
		rejected := min(max(partial.Rejected, 0), n)
		out.accepted = n - rejected
		out.rejected += rejected
		if out.rejectMsg != "" {
			out.rejectMsg += "; "
		}
		out.rejectMsg += err.Error()
		reason := partial.Reason
		if reason == "" {
			reason = reasonPartial
		}
		b.m.refuse(b.protocol, reason, rejected)
	case errors.Is(err, ErrLimited):
		reason := reasonLimited
		if errors.As(err, &limit) && limit.Reason != "" {
			reason = limit.Reason
		}
		b.m.refuse(b.protocol, reason, n)
		b.log.Debug("consumer refused spans: limit", "tenant", tenantID, "spans", n, "err", err)
		out.err = err
	case ctx.Err() != nil:
		// The client went away or Shutdown gave up: not a storage fault.
		b.m.refuse(b.protocol, reasonCancelled, n)
		b.log.Warn("request abandoned before its spans were durable", "tenant", tenantID, "spans", n, "err", err)
		out.err = err
	default:
		b.m.refuse(b.protocol, reasonConsumerError, n)
		b.log.Error("consumer failed; spans not accepted", "tenant", tenantID, "spans", n, "err", err)
		out.err = err
	}
	if out.accepted > 0 {
		b.m.accepted.WithLabelValues(b.protocol, tenantID).Add(float64(out.accepted))
	}
	return out
}

// safeDecode runs a decoder over outside input, turning a panic of the
// translators (which index into what they decoded) into an error.
func safeDecode(what string, decode func() (ptrace.Traces, error)) (td ptrace.Traces, err error) {
	defer func() {
		if p := recover(); p != nil {
			td, err = ptrace.Traces{}, fmt.Errorf("decoding %s: invalid payload (%v)", what, p)
		}
	}()
	return decode()
}

// forcedStop is what Shutdown returns after its context ended and every
// connection was closed: ctx's error if a request was being consumed
// before or after the close (busy), cut short without its
// acknowledgement; nil when the connections closed only held requests
// that never reached the Consumer (stalled or half-sent: slow-loris
// clients, Export calls never finished), which carry no data the server
// took.
func (b *base) forcedStop(ctx context.Context, busy bool) error {
	if busy || b.consuming.Load() > 0 {
		return ctx.Err()
	}
	b.log.Info("shutdown deadline passed: closed connections whose requests had not reached the server (stalled or unfinished); no data was taken from them")
	return nil
}

// retryAfter is the delay to suggest for an ErrLimited-kind error.
func retryAfter(err error) time.Duration {
	var limit *LimitError
	if errors.As(err, &limit) && limit.RetryAfter > 0 {
		return limit.RetryAfter
	}
	return DefaultRetryAfter
}

// retryLater ends a refusal's message with "; retry later" unless it
// already says so: the server's own limit messages (a full WAL, the
// ingestion rate, the bytes held in memory) end with it.
func retryLater(msg string) string {
	if strings.Contains(strings.ToLower(msg), "retry later") {
		return msg
	}
	return msg + "; retry later"
}

// retryAfterSeconds renders d as a Retry-After header value (whole seconds,
// at least 1).
func retryAfterSeconds(d time.Duration) string {
	return fmt.Sprint(max(int64(math.Ceil(d.Seconds())), 1))
}

// dropInvalidSpans removes the spans no store could index (all-zero trace
// or span ID) and the resources and scopes left empty; it returns how many
// spans it removed.
func dropInvalidSpans(td ptrace.Traces) int {
	dropped := 0
	td.ResourceSpans().RemoveIf(func(rs ptrace.ResourceSpans) bool {
		rs.ScopeSpans().RemoveIf(func(ss ptrace.ScopeSpans) bool {
			ss.Spans().RemoveIf(func(s ptrace.Span) bool {
				if s.TraceID().IsEmpty() || s.SpanID().IsEmpty() {
					dropped++
					return true
				}
				return false
			})
			return ss.Spans().Len() == 0
		})
		return rs.ScopeSpans().Len() == 0
	})
	return dropped
}
