package compact

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/google/uuid"
	"github.com/parquet-go/parquet-go"

	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/blocks/vparquet4"
	"github.com/tracectl/tracectl/internal/storage"
)

// MergeOptions describe the output of a merge.
type MergeOptions struct {
	// BlockID of the output; a random v4 UUID when zero.
	BlockID uuid.UUID
	// RowGroupBytes is the writer's row-group budget (its default when 0).
	RowGroupBytes int
}

// MergeStats tell what a merge did.
type MergeStats struct {
	InputTraces, OutputTraces int64
	// CombinedTraces are output rows made of rows from several inputs.
	CombinedTraces int64
	InputSpans     int64
	OutputSpans    int64 // input spans minus repeats dropped
	InputBytes     uint64
	OutputBytes    uint64
}

// CheckMergeable reports why inputs cannot merge into one block, or nil.
func CheckMergeable(inputs []*block.Meta) error {
	if len(inputs) == 0 {
		return errors.New("no blocks to merge")
	}
	first := inputs[0]
	for _, m := range inputs {
		switch {
		case m.Format != block.FormatVParquet4:
			return fmt.Errorf("block %s is %s; tracectl merges only %s blocks", m, m.Format, block.FormatVParquet4)
		case m.TenantID != first.TenantID:
			return fmt.Errorf("blocks %s and %s belong to different tenants", first, m)
		case !block.DedicatedColumnsEqual(m.DedicatedColumns, first.DedicatedColumns):
			return fmt.Errorf("blocks %s and %s have different dedicated columns; only blocks with equal lists merge", first, m)
		case m.ReplicationFactor != first.ReplicationFactor:
			return fmt.Errorf("blocks %s and %s have different replication factors (%d, %d)", first, m, first.ReplicationFactor, m.ReplicationFactor)
		}
	}
	return nil
}

// input is one block being merged: its reader and current row.
type input struct {
	meta *block.Meta
	r    *vparquet4.RowReader
	row  parquet.Row
	id   block.TraceID
	done bool
}

func (in *input) next() error {
	row, err := in.r.Next()
	if errors.Is(err, io.EOF) {
		in.done, in.row = true, nil
		return nil
	}
	if err != nil {
		return err
	}
	in.row, in.id = row, vparquet4.RowID(row)
	return nil
}

// Merge writes one vParquet4 block holding every trace of inputs: a
// streaming k-way merge by trace ID over the inputs' rows, one row group
// per input in memory. A trace found in one input is copied row for row;
// the rows of a trace found in several are combined (repeated spans
// dropped, see vparquet4.BlockWriter.AddParts), parts in the inputs' order of start
// time (the order they arrived in, as near as meta tells). The
// output's level is the highest input level + 1 and its time range the
// inputs' union. On error nothing is made live (the output has no
// meta.json).
func Merge(ctx context.Context, b *storage.Bucket, inputs []*block.Meta, opts MergeOptions) (*block.Meta, MergeStats, error) {
	var st MergeStats
	if err := CheckMergeable(inputs); err != nil {
		return nil, st, err
	}
	inputs = sortInputs(inputs)
	first := inputs[0]
	cfg := vparquet4.WriterConfig{
		TenantID: first.TenantID, BlockID: opts.BlockID, DedicatedColumns: first.DedicatedColumns,
		NoDedicatedColumns: len(first.DedicatedColumns) == 0, RowGroupBytes: opts.RowGroupBytes,
		ReplicationFactor: first.ReplicationFactor, DropDuplicateSpans: true,
	}
	for _, m := range inputs {
		cfg.CompactionLevel = max(cfg.CompactionLevel, m.CompactionLevel+1)
		st.InputBytes += m.Size
	}
	ins := make([]*input, len(inputs))
	defer func() {
		for _, in := range ins {
			if in != nil && in.r != nil {
				in.r.Close()
			}
		}
	}()
	for i, m := range inputs {
		r, err := vparquet4.OpenBlock(ctx, b, m).NewRowReader(ctx)
		if err != nil {
			return nil, st, fmt.Errorf("merging: %w", err)
		}
		ins[i] = &input{meta: m, r: r}
		if err := ins[i].next(); err != nil {
			return nil, st, fmt.Errorf("merging: %w", err)
		}
	}
	w, err := vparquet4.NewBlockWriter(ctx, b, cfg)
	if err != nil {
		return nil, st, fmt.Errorf("merging: %w", err)
	}
	for _, m := range inputs {
		w.ExtendTimeRange(m.StartTime, m.EndTime)
	}
	out := newRowBatch(w)
	var parts []parquet.Row
	var partVals []parquet.Value
	for {
		if out.full() {
			if err := out.flush(); err != nil {
				w.Abort()
				return nil, st, fmt.Errorf("merging: %w", err)
			}
		}
		// The smallest current ID (k is small: a linear scan), and how many
		// inputs hold it.
		var lowest *input
		holders := 0
		for _, in := range ins {
			switch {
			case in.done:
			case lowest == nil || in.id.Compare(lowest.id) < 0:
				lowest, holders = in, 1
			case in.id == lowest.id:
				holders++
			}
		}
		if lowest == nil {
			break
		}
		id := lowest.id
		parts, partVals = parts[:0], partVals[:0]
		if holders == 1 {
			// The common case: one input holds the trace. Its row goes to
			// the batch as it is (copied there before the input moves on).
			n := int64(vparquet4.RowSpans(lowest.row))
			st.InputTraces++
			st.InputSpans += n
			out.add(lowest.row)
			if err := lowest.next(); err != nil {
				w.Abort()
				return nil, st, fmt.Errorf("merging: %w", err)
			}
			if lowest.done || lowest.id != id {
				st.OutputTraces++
				st.OutputSpans += n
				if st.OutputTraces%1024 == 0 {
					if err := ctx.Err(); err != nil {
						w.Abort()
						return nil, st, err
					}
				}
				continue
			}
			// More rows of this ID in the one input (not written by Tempo
			// or tracectl): the batched row is the first part.
			partVals = append(partVals, out.pop()...)
			parts = append(parts, partVals[:len(partVals):len(partVals)])
		}
		for _, in := range ins {
			// A block holds one row per trace; more rows of one ID in one
			// input are parts as well.
			for !in.done && in.id == id {
				n := vparquet4.RowSpans(in.row)
				st.InputTraces++
				st.InputSpans += int64(n)
				start := len(partVals)
				partVals = append(partVals, in.row...)
				parts = append(parts, partVals[start:len(partVals):len(partVals)])
				if err := in.next(); err != nil {
					w.Abort()
					return nil, st, fmt.Errorf("merging: %w", err)
				}
			}
		}
		// The parts are combined by the writer (Add's rules), after the
		// rows batched before them.
		st.CombinedTraces++
		if err := out.flush(); err != nil {
			w.Abort()
			return nil, st, fmt.Errorf("merging: %w", err)
		}
		n, err := w.AddParts(parts)
		if err != nil {
			w.Abort()
			return nil, st, fmt.Errorf("merging: %w", err)
		}
		st.OutputTraces++
		st.OutputSpans += int64(n)
		if st.OutputTraces%1024 == 0 {
			if err := ctx.Err(); err != nil {
				w.Abort()
				return nil, st, err
			}
		}
	}
	if err := out.flush(); err != nil {
		w.Abort()
		return nil, st, fmt.Errorf("merging: %w", err)
	}
	if err := ctx.Err(); err != nil {
		w.Abort()
		return nil, st, err
	}
	meta, err := w.Close()
	if err != nil {
		return nil, st, fmt.Errorf("merging: %w", err)
	}
	if meta == nil {
		return nil, st, errors.New("merging: the inputs hold no spans")
	}
	st.OutputBytes = meta.Size
	return meta, st, nil
}

// rowBatch hands rows to the writer in batches: the rows' values are
// copied (shallowly: byte arrays stay shared, which RowReader allows) so
// that the inputs may move on.
type rowBatch struct {
	w    *vparquet4.BlockWriter
	vals []parquet.Value
	ends []int
	rows []parquet.Row
}

const batchRows = 64

func newRowBatch(w *vparquet4.BlockWriter) *rowBatch {
	return &rowBatch{w: w, vals: make([]parquet.Value, 0, 64<<10)}
}

func (b *rowBatch) full() bool { return len(b.ends) >= batchRows }

func (b *rowBatch) add(row parquet.Row) {
	b.vals = append(b.vals, row...)
	b.ends = append(b.ends, len(b.vals))
}

// pop removes the last row added and returns its values, valid until the
// next add.
func (b *rowBatch) pop() parquet.Row {
	end := b.ends[len(b.ends)-1]
	b.ends = b.ends[:len(b.ends)-1]
	start := 0
	if len(b.ends) > 0 {
		start = b.ends[len(b.ends)-1]
	}
	row := b.vals[start:end:end]
	b.vals = b.vals[:start]
	return row
}

func (b *rowBatch) flush() error {
	if len(b.ends) == 0 {
		return nil
	}
	b.rows = b.rows[:0]
	start := 0
	for _, end := range b.ends {
		b.rows = append(b.rows, b.vals[start:end:end])
		start = end
	}
	err := b.w.WriteRows(b.rows)
	clear(b.vals) // drop references to the inputs' byte arrays
	b.vals, b.ends = b.vals[:0], b.ends[:0]
	return err
}

// sortInputs orders inputs for merging: start time, then block ID (the
// order in which their parts of a trace arrived, as near as meta tells).
func sortInputs(inputs []*block.Meta) []*block.Meta {
	in := slices.Clone(inputs)
	slices.SortFunc(in, func(a, b *block.Meta) int {
		return cmp.Or(a.StartTime.Compare(b.StartTime), cmp.Compare(a.BlockID.String(), b.BlockID.String()))
	})
	return in
}
