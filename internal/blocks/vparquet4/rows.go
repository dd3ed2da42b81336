package vparquet4

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/parquet-go/parquet-go"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tracectl/tracectl/internal/blocks/block"
)

// Row-level access for compaction: rows are read and written as parquet
// rows (values in column order) without being reconstructed into Trace
// structs or converted to OTLP, which is what makes merging blocks cheap.
// Only rows of the same trace from several inputs are combined through
// OTLP (RowCombiner), with the writer's own rules.

// Leaf columns of the trace-level fields every row starts with (§3.2).
const (
	colTraceID   = 0
	colStartTime = 2
	colEndTime   = 3
	colSpanID    = 47 // …Spans[].SpanID: one value per span
)

// RowID is the trace ID of a row read by RowReader (left-padded to 16
// bytes).
func RowID(row parquet.Row) block.TraceID {
	if len(row) == 0 {
		return block.TraceID{}
	}
	id, _ := block.TraceIDFromBytes(row[colTraceID].ByteArray())
	return id
}

// RowSpans is the number of spans stored in a row: the defined values of
// the SpanID column. The row's values must be in column order, as
// RowReader returns them (and parquet-go makes them): the column is found
// by binary search, not by a scan of the whole row.
func RowSpans(row parquet.Row) int {
	i, _ := slices.BinarySearchFunc(row, colSpanID, func(v parquet.Value, col int) int {
		return cmp.Compare(v.Column(), col)
	})
	n := 0
	for ; i < len(row) && row[i].Column() == colSpanID; i++ {
		if row[i].DefinitionLevel() == 3 {
			n++
		}
	}
	return n
}

// RowReader reads the rows of a block in stored (trace-ID) order as
// parquet rows, one row group in memory at a time. Not safe for concurrent
// use; Close releases it.
type RowReader struct {
	ctx  context.Context
	b    *Block
	of   *openedFile
	rg   int
	rows parquet.Rows
	buf  []parquet.Row
	i, n int
	err  error
}

// rowReaderBatch is how many rows a RowReader decodes at once.
const rowReaderBatch = 64

// NewRowReader opens the block for reading rows (one footer read).
func (b *Block) NewRowReader(ctx context.Context) (*RowReader, error) {
	of, err := b.acquire(ctx)
	if err != nil {
		return nil, err
	}
	return &RowReader{ctx: ctx, b: b, of: of, rg: -1, buf: make([]parquet.Row, rowReaderBatch)}, nil
}

// Next returns the next row, or io.EOF after the last. The returned slice
// is reused by later calls; the values it holds, byte arrays included,
// stay valid (parquet-go detaches them from its page buffers), so a
// shallow copy of the values may be kept.
func (r *RowReader) Next() (row parquet.Row, err error) {
	if r.err != nil {
		return nil, r.err
	}
	defer func() {
		if p := recover(); p != nil {
			row, err = nil, r.b.errorf("corrupt file: %v", p)
			r.err = err
		}
	}()
	for r.i == r.n {
		if err := r.fill(); err != nil {
			r.err = err
			return nil, err
		}
	}
	row = r.buf[r.i]
	r.i++
	return row, nil
}

// fill decodes the next batch of rows, moving to the next row group when
// the current one is done.
func (r *RowReader) fill() error {
	if r.rows == nil {
		if err := r.ctx.Err(); err != nil {
			return err
		}
		r.rg++
		groups := r.of.f.RowGroups()
		if r.rg >= len(groups) {
			return io.EOF
		}
		r.of.c.DropData()
		if err := r.b.prefetch(r.of.f, r.of.c, r.rg); err != nil {
			return err
		}
		r.rows = groups[r.rg].Rows()
	}
	n, err := r.rows.ReadRows(r.buf)
	r.i, r.n = 0, n
	if errors.Is(err, io.EOF) {
		r.rows.Close()
		r.rows = nil
		return nil
	}
	if err != nil {
		return r.b.errorf("row group %d: %w", r.rg, err)
	}
	return nil
}

// Close releases the reader.
func (r *RowReader) Close() {
	if r.rows != nil {
		r.rows.Close()
		r.rows = nil
	}
	if r.err == nil || errors.Is(r.err, io.EOF) {
		if r.of != nil {
			r.b.release(r.of)
		}
	}
	r.of = nil
	if r.err == nil {
		r.err = errors.New("vparquet4: row reader closed")
	}
}

// WriteRows adds whole rows, as read by RowReader from vParquet4 blocks
// with the same dedicated-column list as this writer's. Each row is one
// complete trace; IDs must ascend, also across Add calls. Rows are handed
// to the parquet writer before WriteRows returns, so the caller may reuse
// them afterwards.
func (w *BlockWriter) WriteRows(rows []parquet.Row) error {
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return errors.New("vparquet4: WriteRows after Close")
	}
	if w.pending {
		if err := w.flushTrace(); err != nil {
			return err
		}
	}
	if err := w.writeBatch(); err != nil {
		return err
	}
	from := 0
	for i, row := range rows {
		if len(row) < 4 {
			return w.fail(fmt.Errorf("row of %d values is not a vParquet4 row", len(row)))
		}
		id := RowID(row)
		if w.traces > 0 && id.Compare(w.lastID) <= 0 {
			return w.fail(fmt.Errorf("trace %s written after %s: rows must come in ascending ID order, one per trace", id, w.lastID))
		}
		w.traces++
		w.lastID = id
		if w.bloom != nil {
			w.bloom.Add(id)
		} else {
			w.ids = append(w.ids, id)
		}
		start, end := uint64(row[colStartTime].Int64()), uint64(row[colEndTime].Int64())
		if start != 0 || end != 0 {
			w.start = min(w.start, start)
			w.end = max(w.end, end)
		}
		w.rgRows++
		w.rgBytes += estimateRowSize(row)
		if w.rgBytes >= w.cfg.RowGroupBytes {
			if _, err := w.pw.WriteRows(rows[from : i+1]); err != nil {
				return w.fail(err)
			}
			w.rowsBuffered = true
			from = i + 1
			if err := w.cutRowGroup(); err != nil {
				return err
			}
		}
	}
	if from < len(rows) {
		if _, err := w.pw.WriteRows(rows[from:]); err != nil {
			return w.fail(err)
		}
		w.rowsBuffered = true
	}
	return nil
}

// AddParts adds one trace made of parts: rows of that trace read by
// RowReader from several vParquet4 blocks with this writer's
// dedicated-column list, combined as RowCombiner.Combine combines them
// (which needs DropDuplicateSpans). The combined row is built as Add
// builds one and written with the rows that follow, without being turned
// into a parquet row first. IDs must ascend as for WriteRows. It returns
// the number of spans of the row written.
func (w *BlockWriter) AddParts(parts []parquet.Row) (spans int, err error) {
	if w.err != nil {
		return 0, w.err
	}
	if len(parts) == 0 {
		return 0, errors.New("vparquet4: no rows to add")
	}
	if !w.cfg.DropDuplicateSpans {
		return 0, errors.New("vparquet4: AddParts needs a writer with DropDuplicateSpans")
	}
	id := RowID(parts[0])
	if !w.pending && w.traces > 0 && id.Compare(w.lastID) <= 0 {
		return 0, w.fail(fmt.Errorf("trace %s added after %s: traces must come in ascending ID order", id, w.lastID))
	}
	if err := w.startTrace(id); err != nil {
		return 0, err
	}
	for i, p := range parts {
		if got := RowID(p); got != id {
			return 0, w.fail(fmt.Errorf("combining trace %s: part %d is trace %s", id, i, got))
		}
		w.part = Trace{}
		if err := rowSchema().Reconstruct(&w.part, p); err != nil {
			return 0, w.fail(fmt.Errorf("combining trace %s: part %d: %w", id, i, err))
		}
		td := ptrace.NewTraces()
		if err := appendOTLP(td, &w.part, w.asm.ded, true); err != nil {
			return 0, w.fail(fmt.Errorf("combining trace %s: part %d: %w", id, i, err))
		}
		if n := w.asm.add(td); n > 0 {
			return 0, w.fail(fmt.Errorf("combining trace %s: part %d has %d spans of other traces", id, i, n))
		}
	}
	w.part = Trace{}
	if w.asm.nSpans == 0 {
		// No spans at all (rows of empty traces): keep the first part, as
		// Combine does.
		w.pending = false
		return 0, w.WriteRows(parts[:1])
	}
	return w.asm.nSpans, nil
}

// estimateRowSize approximates a parquet row's size on the scale of
// estimateSize (the struct writer's estimate), so that row groups cut from
// rows come out about as large as those cut from traces.
func estimateRowSize(row parquet.Row) int {
	n := 0
	for i := range row {
		v := &row[i]
		if v.IsNull() {
			continue
		}
		n += 6
		if k := v.Kind(); k == parquet.ByteArray || k == parquet.FixedLenByteArray {
			n += len(v.ByteArray())
		}
	}
	return n
}

// RowCombiner merges rows of one trace taken from several blocks into one
// row, as Tempo's compactor does (§5): parts in the order given, spans
// whose ID + kind came in an earlier part skipped (repeats inside one part
// kept), resources and scopes regrouped, trace-level columns and the
// nested-set numbering recomputed, root names from the first part that
// has a root. The rows must come from blocks with the dedicated-column
// list the combiner was made with. Not safe for concurrent use.
type RowCombiner struct {
	ded  *dedicatedMap
	asm  *assembler
	part Trace
	out  Trace
	row  parquet.Row
}

// NewRowCombiner returns a combiner for blocks with the dedicated-column
// list cols.
func NewRowCombiner(cols []block.DedicatedColumn) *RowCombiner {
	ded := newDedicatedMap(cols)
	return &RowCombiner{ded: ded, asm: newAssembler(ded, true)}
}

// Combine returns the row holding every part. The result, the byte
// arrays its values point to included, is valid until the next call
// (Clone it to keep it longer). Parts must all have the same trace ID.
func (c *RowCombiner) Combine(parts []parquet.Row) (parquet.Row, error) {
	if len(parts) == 0 {
		return nil, errors.New("vparquet4: no rows to combine")
	}
	id := RowID(parts[0])
	c.asm.reset(id)
	c.asm.arena.reset()
	for i, p := range parts {
		if got := RowID(p); got != id {
			return nil, fmt.Errorf("combining trace %s: part %d is trace %s", id, i, got)
		}
		c.part = Trace{}
		if err := rowSchema().Reconstruct(&c.part, p); err != nil {
			return nil, fmt.Errorf("combining trace %s: part %d: %w", id, i, err)
		}
		td := ptrace.NewTraces()
		if err := appendOTLP(td, &c.part, c.ded, true); err != nil {
			return nil, fmt.Errorf("combining trace %s: part %d: %w", id, i, err)
		}
		if n := c.asm.add(td); n > 0 {
			return nil, fmt.Errorf("combining trace %s: part %d has %d spans of other traces", id, i, n)
		}
	}
	if !c.asm.build(&c.out) {
		// No spans at all (rows of empty traces): keep the first part.
		return parts[0], nil
	}
	c.row = rowSchema().Deconstruct(c.row[:0], &c.out)
	return c.row, nil
}
