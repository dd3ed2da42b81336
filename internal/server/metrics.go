package server

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tracectl/tracectl/internal/wal"
)

type metrics struct {
	refused       *prometheus.CounterVec
	flushFailures prometheus.Counter
	flushDuration prometheus.Histogram
	blocksWritten prometheus.Counter
}

func newMetrics(s *Server, reg prometheus.Registerer) *metrics {
	m := &metrics{
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tracectl_ingest_refused_spans_total",
			Help: "Spans refused or dropped after decoding, by reason (rate_limited, wal_full, trace_too_large, too_large, wal_error).",
		}, []string{"reason"}),
		flushFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tracectl_flush_failures_total",
			Help: "Attempts to store a block that failed; the data stays in the WAL and is retried.",
		}),
		flushDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "tracectl_flush_duration_seconds",
			Help:    "Time to write one block to storage.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 14),
		}),
		blocksWritten: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tracectl_blocks_written_total",
			Help: "Blocks stored by the flush loop.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.refused, m.flushFailures, m.flushDuration, m.blocksWritten, &stateCollector{s: s})
	}
	return m
}

// stateCollector reports the WAL's and head's state at scrape time.
type stateCollector struct{ s *Server }

var (
	descWALBytes      = prometheus.NewDesc("tracectl_wal_bytes", "Bytes in write-ahead log segments.", nil, nil)
	descWALMax        = prometheus.NewDesc("tracectl_wal_max_bytes", "Write-ahead log size limit; appends past it are refused.", nil, nil)
	descWALSegments   = prometheus.NewDesc("tracectl_wal_segments", "Write-ahead log segment files.", nil, nil)
	descWALAppends    = prometheus.NewDesc("tracectl_wal_appends_total", "Records appended to the write-ahead log.", nil, nil)
	descWALSyncs      = prometheus.NewDesc("tracectl_wal_fsyncs_total", "fsyncs of write-ahead log data.", nil, nil)
	descWALFull       = prometheus.NewDesc("tracectl_wal_full_rejections_total", "Appends refused because the write-ahead log was full.", nil, nil)
	descWALSync       = prometheus.NewDesc("tracectl_wal_fsync_duration_seconds", "Duration of write-ahead log fsyncs.", nil, nil)
	descWALAppendLat  = prometheus.NewDesc("tracectl_wal_append_duration_seconds", "Time for an append to become durable (acknowledgement latency).", nil, nil)
	descHeadBytes     = prometheus.NewDesc("tracectl_head_bytes", "Protobuf bytes of spans held in memory and not yet in a block.", nil, nil)
	descHeadTraces    = prometheus.NewDesc("tracectl_head_traces", "Traces in the head.", nil, nil)
	descFlushQueue    = prometheus.NewDesc("tracectl_flush_queue_blocks", "Head snapshots waiting to be stored.", nil, nil)
	descHeadTagValues = prometheus.NewDesc("tracectl_head_tag_index_values", "Distinct (scope, name, value) the index of the head's tag names and values keeps, over all tenants (bounded per tenant and name).", nil, nil)
)

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descWALBytes, descWALMax, descWALSegments, descWALAppends, descWALSyncs, descWALFull,
		descWALSync, descWALAppendLat, descHeadBytes, descHeadTraces, descFlushQueue, descHeadTagValues} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.wal.Stats()
	ch <- prometheus.MustNewConstMetric(descWALBytes, prometheus.GaugeValue, float64(st.Bytes))
	ch <- prometheus.MustNewConstMetric(descWALMax, prometheus.GaugeValue, float64(st.MaxBytes))
	ch <- prometheus.MustNewConstMetric(descWALSegments, prometheus.GaugeValue, float64(st.Segments))
	ch <- prometheus.MustNewConstMetric(descWALAppends, prometheus.CounterValue, float64(st.Appends))
	ch <- prometheus.MustNewConstMetric(descWALSyncs, prometheus.CounterValue, float64(st.Syncs))
	ch <- prometheus.MustNewConstMetric(descWALFull, prometheus.CounterValue, float64(st.FullRejections))
	ch <- constHistogram(descWALSync, st.SyncDuration)
	ch <- constHistogram(descWALAppendLat, st.AppendLatency)
	bytes, traces, _ := c.s.head.stats()
	ch <- prometheus.MustNewConstMetric(descHeadBytes, prometheus.GaugeValue, float64(bytes))
	ch <- prometheus.MustNewConstMetric(descHeadTraces, prometheus.GaugeValue, float64(traces))
	c.s.flushMu.Lock()
	q := len(c.s.flushing)
	c.s.flushMu.Unlock()
	ch <- prometheus.MustNewConstMetric(descFlushQueue, prometheus.GaugeValue, float64(q))
	ch <- prometheus.MustNewConstMetric(descHeadTagValues, prometheus.GaugeValue, float64(c.s.tags.Size()))
}

func constHistogram(d *prometheus.Desc, h wal.Histogram) prometheus.Metric {
	buckets := make(map[float64]uint64, len(h.Bounds))
	for i, b := range h.Bounds {
		buckets[b] = h.Cumulative[i]
	}
	return prometheus.MustNewConstHistogram(d, h.Count, h.Sum.Seconds(), buckets)
}
