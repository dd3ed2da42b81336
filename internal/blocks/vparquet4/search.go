package vparquet4

import (
	"context"
	"errors"
	"io"

	"github.com/parquet-go/parquet-go"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tracectl/tracectl/internal/blocks/pqread"
)

// Leaf column indices of the vParquet4 schema (TEMPO-FORMAT.md §3.2) that
// search reads on its own.
const (
	ColTraceID           = 0
	ColStartTimeUnixNano = 2
	ColEndTimeUnixNano   = 3
	ColRootServiceName   = 5
	ColRootSpanName      = 6
	ColServiceName       = 18
	ColResourceFixed     = 19 // Cluster … K8sContainerName: 19–26
	ColSpanName          = 52
	ColSpanKind          = 53
	ColSpanDurationNano  = 56
	ColSpanStatusCode    = 57
)

// File is an opened data.parquet lent to WithFile's callback: F to read
// column chunks, C to add byte ranges fetched ahead (C.Add) so that page
// reads are served from memory.
type File struct {
	F *parquet.File
	C *pqread.SegmentReaderAt
	b *Block
}

// WithFile runs fn with the block's data.parquet opened (the footer is
// parsed once per Block and reused). Search reads the columns it needs
// through it, then whole rows with ReadRowsAll.
func (b *Block) WithFile(ctx context.Context, fn func(f *File) error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = b.errorf("corrupt file: %v", r)
		}
	}()
	of, err := b.acquire(ctx)
	if err != nil {
		return err
	}
	if err = fn(&File{F: of.f, C: of.c, b: b}); err == nil {
		of.c.DropData()
		b.release(of)
	}
	return err
}

// RowGroupBytes is the byte length of row group i's column chunks.
func (f *File) RowGroupBytes(i int) int64 {
	off, end := pqread.RowGroupRange(&f.F.Metadata().RowGroups[i])
	if end <= off {
		return 0
	}
	return end - off
}

// ReadRowsAll converts the given rows (ascending) of row group i to OTLP
// keeping repeated spans (as Tempo's search does), reading the row group
// in one request. fn returning false stops.
func (f *File) ReadRowsAll(i int, rows []int64, fn func(row int64, td ptrace.Traces) bool) error {
	b := f.b
	if err := b.prefetch(f.F, f.C, i); err != nil {
		return err
	}
	rr := f.F.RowGroups()[i].Rows()
	defer rr.Close()
	buf := make([]parquet.Row, 1)
	next := int64(-1) // the row ReadRows gives next; -1: not positioned
	for _, row := range rows {
		// Read on sequentially over short gaps: a seek restarts the pages.
		if next < 0 || row < next || row-next > 64 {
			if err := rr.SeekToRow(row); err != nil {
				return b.errorf("row group %d: %w", i, err)
			}
			next = row
		}
		for next < row {
			if n, err := rr.ReadRows(buf); n != 1 {
				return b.errorf("row group %d row %d: %w", i, next, err)
			}
			next++
		}
		next++
		if n, err := rr.ReadRows(buf); n != 1 {
			if err == nil || errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return b.errorf("row group %d row %d: %w", i, row, err)
		}
		tr := &Trace{}
		if err := rowSchema().Reconstruct(tr, buf[0]); err != nil {
			return b.errorf("row group %d row %d: %w", i, row, err)
		}
		td := ptrace.NewTraces()
		if err := appendOTLP(td, tr, b.ded, true); err != nil {
			return b.errorf("trace %s: %v", tr.ID(), err)
		}
		if !fn(row, td) {
			return nil
		}
	}
	return nil
}
