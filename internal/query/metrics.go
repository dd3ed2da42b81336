package query

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	polls    *prometheus.CounterVec
	// refreshes counts listings out of turn (blockList.refresh).
	refreshes prometheus.Counter
	blocks    *prometheus.GaugeVec
	skipped   *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tracectl_query_requests_total", Help: "Query API requests by route and HTTP status.",
		}, []string{"route", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "tracectl_query_duration_seconds", Help: "Time to answer a query API request.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 9),
		}, []string{"route"}),
		polls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tracectl_query_blocklist_polls_total", Help: "Block list polls by result (ok, error).",
		}, []string{"result"}),
		refreshes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tracectl_query_blocklist_refreshes_total",
			Help: "Block lists read again before their next poll because a query met a block deleted since the last one.",
		}),
		blocks: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tracectl_query_blocklist_blocks", Help: "Blocks the query API knows per tenant.",
		}, []string{"tenant"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tracectl_query_blocks_skipped_total",
			Help: "Blocks a query could not read and answered without (damaged or unreadable objects), by kind of query (trace_by_id, search, tags, tag_values, metrics).",
		}, []string{"query"}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.duration, m.polls, m.refreshes, m.blocks, m.skipped)
	}
	return m
}
