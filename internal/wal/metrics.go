package wal

import (
	"sync/atomic"
	"time"
)

// Stats is a snapshot of the WAL's counters and gauges, for the server's
// metrics endpoint. The WAL does not import a metrics library: a collector
// in the server turns a snapshot into Prometheus metrics (counters, gauges,
// and prometheus.MustNewConstHistogram from a Histogram), so the WAL stays
// usable from tests and tools without a registry.
type Stats struct {
	Appends        uint64 // records accepted (counter)
	AppendedBytes  uint64 // bytes of those records on disk, framing included (counter)
	FullRejections uint64 // appends refused with ErrFull (counter)
	Syncs          uint64 // fsyncs of segment data (counter)
	SyncedRecords  uint64 // records made durable by those fsyncs (counter); SyncedRecords/Syncs is the mean group size
	Bytes          int64  // bytes in all segments now, headers and not-yet-written appends included (gauge)
	MaxBytes       int64  // the size limit; 0 when there is none (gauge)
	Segments       int    // segment files now, the open one included (gauge)
	OpenSegment    uint64 // sequence number of the segment being appended to (gauge)

	SyncDuration  Histogram // time of each data fsync
	AppendLatency Histogram // Append call to return, for appends that succeeded
}

// Histogram is a snapshot of a latency histogram in Prometheus' shape.
type Histogram struct {
	Bounds     []float64 // upper bounds in seconds, ascending; +Inf is implied
	Cumulative []uint64  // Cumulative[i] is the number of observations <= Bounds[i]
	Count      uint64
	Sum        time.Duration
}

// LatencyBounds are the bucket bounds of every Histogram, in seconds.
var LatencyBounds = []float64{
	0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.0075,
	0.01, 0.0125, 0.015, 0.02, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
}

type histogram struct {
	counts [20]atomic.Uint64 // len(LatencyBounds)+1, the last for +Inf
	sum    atomic.Int64
}

func (h *histogram) observe(d time.Duration) {
	s := d.Seconds()
	i := 0
	for i < len(LatencyBounds) && s > LatencyBounds[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sum.Add(int64(d))
}

func (h *histogram) snapshot() Histogram {
	out := Histogram{
		Bounds:     append([]float64(nil), LatencyBounds...),
		Cumulative: make([]uint64, len(LatencyBounds)),
		Sum:        time.Duration(h.sum.Load()),
	}
	var total uint64
	for i := range h.counts {
		total += h.counts[i].Load()
		if i < len(LatencyBounds) {
			out.Cumulative[i] = total
		}
	}
	out.Count = total
	return out
}

// Quantile estimates the q-quantile (0..1) in seconds by linear
// interpolation within the bucket, as Prometheus' histogram_quantile does.
// It returns 0 for an empty histogram.
func (h Histogram) Quantile(q float64) float64 {
	if h.Count == 0 {
		return 0
	}
	rank := q * float64(h.Count)
	lower, prev := 0.0, uint64(0)
	for i, c := range h.Cumulative {
		if float64(c) >= rank {
			inBucket := float64(c - prev)
			if inBucket == 0 {
				return h.Bounds[i]
			}
			return lower + (h.Bounds[i]-lower)*(rank-float64(prev))/inBucket
		}
		lower, prev = h.Bounds[i], c
	}
	return h.Bounds[len(h.Bounds)-1]
}

type counters struct {
	appends        atomic.Uint64
	appendedBytes  atomic.Uint64
	fullRejections atomic.Uint64
	syncs          atomic.Uint64
	syncedRecords  atomic.Uint64
	syncDuration   histogram
	appendLatency  histogram
}
