package ingest

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Reasons, the reason label of the refused counters.
const (
	reasonMalformed     = "malformed"
	reasonTooLarge      = "too_large"
	reasonNoTenant      = "missing_tenant"
	reasonBadTenant     = "invalid_tenant"
	reasonMediaType     = "unsupported_media_type"
	reasonInvalidSpan   = "invalid_span"
	reasonLimited       = "limited"
	reasonPartial       = "partial"
	reasonConsumerError = "consumer_error"
	reasonCancelled     = "cancelled"
	reasonQueueFull     = "queue_full"
	reasonUnsupported   = "unsupported"
)

// metrics are shared by every receiver registered on the same Registerer.
type metrics struct {
	accepted        *prometheus.CounterVec
	refused         *prometheus.CounterVec
	refusedRequests *prometheus.CounterVec
	duration        *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		accepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tracectl_receiver_accepted_spans_total",
			Help: "Spans made durable, by receiving protocol and tenant.",
		}, []string{"protocol", "tenant"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tracectl_receiver_refused_spans_total",
			Help: "Spans refused, by protocol and reason. Requests refused before decoding count in tracectl_receiver_refused_requests_total only.",
		}, []string{"protocol", "reason"}),
		refusedRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tracectl_receiver_refused_requests_total",
			Help: "Requests (UDP packets) refused in whole or in part, by protocol and reason.",
		}, []string{"protocol", "reason"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tracectl_receiver_request_duration_seconds",
			Help:    "Time from request to response, including the wait for durability, by protocol and response code.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12),
		}, []string{"protocol", "code"}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	m.accepted = register(reg, m.accepted, &err)
	m.refused = register(reg, m.refused, &err)
	m.refusedRequests = register(reg, m.refusedRequests, &err)
	m.duration = register(reg, m.duration, &err)
	return m, err
}

// register registers c, or reuses the collector a sibling receiver already
// registered under the same name.
func register[C prometheus.Collector](reg prometheus.Registerer, c C, errp *error) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		if *errp == nil {
			*errp = err
		}
	}
	return c
}

func (m *metrics) refuse(protocol, reason string, spans int) {
	m.refusedRequests.WithLabelValues(protocol, reason).Inc()
	if spans > 0 {
		m.refused.WithLabelValues(protocol, reason).Add(float64(spans))
	}
}
