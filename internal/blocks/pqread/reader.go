package pqread

import (
	"context"
	"fmt"
	"iter"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/storage"
)

// Trace is one row of a block: its trace-level columns and the trace
// converted to OTLP (the row's buffers do not outlive the iteration step,
// so conversion cannot wait). The field names are those of the columns.
type Trace struct {
	TraceID           []byte // as stored; see ID
	TraceIDText       string
	StartTimeUnixNano uint64
	EndTimeUnixNano   uint64
	DurationNano      uint64
	RootServiceName   string
	RootSpanName      string

	otlp    ptrace.Traces // every stored span
	repeats bool          // otlp holds repeats of a span ID + kind
}

// ID returns the row's trace ID (left-padded to 16 bytes).
func (tr *Trace) ID() block.TraceID {
	id, _ := block.TraceIDFromBytes(tr.TraceID)
	return id
}

// SpanCount is the number of spans stored in the row, repeats included.
func (tr *Trace) SpanCount() int { return tr.otlp.SpanCount() }

// RowConverter appends the spans of one row, whose trace ID is tid, to td.
// It is what differs between the formats read through this package.
type RowConverter func(row *Group, tid pcommon.TraceID, td ptrace.Traces) error

// Reader is the part of a block reader that the formats read through this
// package share: trace by ID, iteration, and OTLP without repeats. A
// format embeds it and supplies its RowConverter. Safe for concurrent use;
// parsed footers are reused across calls (see DataFile).
type Reader struct {
	bucket     *storage.Bucket
	meta       *block.Meta
	format     string
	data       *DataFile
	convertRow RowConverter
}

// NewReader prepares reading the block meta describes, expected to be of
// format. It does no I/O; errors (missing objects, a meta of another
// format) surface from the reading methods.
func NewReader(bucket *storage.Bucket, meta *block.Meta, format string, convert RowConverter) *Reader {
	return &Reader{bucket: bucket, meta: meta, format: format, data: NewDataFile(bucket, *meta), convertRow: convert}
}

// Meta is the block's meta.
func (r *Reader) Meta() *block.Meta { return r.meta }

func (r *Reader) checkFormat() error {
	if r.meta.Format != r.format {
		return fmt.Errorf("block %s is %q, not %s", r.meta.String(), r.meta.Format, r.format)
	}
	return nil
}

// FindTraceByID returns the trace with id and true, or false when the
// block does not hold it. It reads the footer and the one row group whose
// TraceID statistics admit id (two object reads when the row group is at
// most MaxPrefetchBytes). The caller is expected to have consulted the
// bloom filter (MayContain, block.MayContain). Repeats of a span ID + kind
// within the row are dropped. Errors name the block and the object.
func (r *Reader) FindTraceByID(ctx context.Context, id block.TraceID) (ptrace.Traces, bool, error) {
	if err := r.checkFormat(); err != nil {
		return ptrace.Traces{}, false, err
	}
	var tr *Trace
	found, err := r.data.FindRow(ctx, id, func(g *Group) error {
		var err error
		tr, err = r.convert(g)
		if err == nil && tr.ID() != id {
			err = r.data.Errorf(r.data.Key(), "looked up trace %s, row holds %s", id, tr.ID())
		}
		return err
	})
	if err != nil || !found {
		return ptrace.Traces{}, false, err
	}
	td, _ := r.OTLP(tr)
	return td, true, nil
}

// MayContain tests the block's bloom filter shard for id (see
// block.MayContain): false means the block certainly does not hold it.
func (r *Reader) MayContain(ctx context.Context, id block.TraceID) (bool, error) {
	return block.MayContain(ctx, r.bucket, r.meta, id)
}

// Iterate yields every row of the block in trace ID order, fetching one
// row group at a time (one request per row group up to MaxPrefetchBytes).
// The rows are the caller's to keep; OTLP gives their traces. The sequence
// stops after the first error.
func (r *Reader) Iterate(ctx context.Context) iter.Seq2[*Trace, error] {
	return func(yield func(*Trace, error) bool) {
		if err := r.checkFormat(); err != nil {
			yield(nil, err)
			return
		}
		for g, err := range r.data.Rows(ctx) {
			if err != nil {
				yield(nil, err)
				return
			}
			tr, err := r.convert(g)
			if err != nil {
				yield(nil, err)
				return
			}
			if !yield(tr, nil) {
				return
			}
		}
	}
}

// OTLP returns the trace of a row that Iterate yielded, without repeats of
// a span ID + kind (a span sent twice before Tempo cut the block is stored
// twice: P18). Rows are converted while they are read, so it never fails
// (the error matches vparquet4's signature); the result may share memory
// with the row.
func (r *Reader) OTLP(tr *Trace) (ptrace.Traces, error) {
	if !tr.repeats {
		return tr.otlp, nil
	}
	td, _ := DropRepeatedSpans(tr.otlp)
	return td, nil
}

// OTLPAll is OTLP keeping every stored span, repeats included: what a
// compactor carries over, as Tempo does. It returns the row's own traces.
func (r *Reader) OTLPAll(tr *Trace) (ptrace.Traces, error) { return tr.otlp, nil }

// convert reads the trace-level columns of a row and its spans.
func (r *Reader) convert(row *Group) (*Trace, error) {
	tr := &Trace{
		TraceID:           row.Bytes("TraceID"),
		TraceIDText:       row.Str("TraceIDText"),
		StartTimeUnixNano: row.Uint64("StartTimeUnixNano"),
		EndTimeUnixNano:   row.Uint64("EndTimeUnixNano"),
		DurationNano:      row.Uint64("DurationNano"),
		RootServiceName:   row.Str("RootServiceName"),
		RootSpanName:      row.Str("RootSpanName"),
		otlp:              ptrace.NewTraces(),
	}
	if len(tr.TraceID) > 16 {
		return nil, r.data.Errorf(r.data.Key(), "trace id of %d bytes: at most 16 allowed", len(tr.TraceID))
	}
	if err := r.convertRow(row, pcommon.TraceID(tr.ID()), tr.otlp); err != nil {
		return nil, r.data.Errorf(r.data.Key(), "trace %s: %w", tr.ID(), err)
	}
	tr.repeats = HasRepeatedSpans(tr.otlp)
	return tr, nil
}
