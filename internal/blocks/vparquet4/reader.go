package vparquet4

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"iter"
	"sort"
	"sync"

	"github.com/parquet-go/parquet-go"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/blocks/pqread"
	"github.com/tracectl/tracectl/internal/storage"
)

// MaxPrefetchBytes bounds the row-group byte range read in one request by
// FindTraceByID and Iterate; larger row groups are read chunk by chunk.
const MaxPrefetchBytes = 64 << 20

// Block reads one vParquet4 block. It is safe for concurrent use: each
// call works on its own opened file (parsed footers are pooled and reused,
// each use with a fresh bucket reader bound to the caller's context).
// Prefetched row groups are validated before parquet-go decodes them, so a
// damaged file gives an error, not a huge allocation or a panic; row
// groups above MaxPrefetchBytes are read through parquet-go directly and
// get only its own checks (and a recover).
type Block struct {
	bucket *storage.Bucket
	meta   *block.Meta
	ded    *dedicatedMap
	key    string

	// onReaderAt, when set (tests), sees every data.parquet reader opened.
	onReaderAt func(*storage.ReaderAt)

	// idle holds opened files (footer parsed) for reuse by later calls, so
	// that a lookup after the first reads only its row group.
	mu   sync.Mutex
	idle []*openedFile
}

// openedFile is a parsed data.parquet whose byte source is switched to a
// fresh bucket reader (bound to the caller's context) for every use.
type openedFile struct {
	f *parquet.File
	c *pqread.SegmentReaderAt
}

// MaxIdleFiles is how many opened files (each with a parsed footer, about
// 2.5 MB for a 17 MB block) a Block keeps for reuse; concurrent callers
// beyond it open their own and drop them when done. Two: one per core of
// the machines this runs on most, and what the search engine's footer
// cache budgets for.
const MaxIdleFiles = 2

// acquire returns an opened file reading through ctx: a reused one when
// available (no I/O), else a newly opened one (one footer read).
func (b *Block) acquire(ctx context.Context) (*openedFile, error) {
	b.mu.Lock()
	if n := len(b.idle); n > 0 {
		of := b.idle[n-1]
		b.idle = b.idle[:n-1]
		b.mu.Unlock()
		ra, err := b.bucket.OpenReaderAt(ctx, b.key, of.c.Size())
		if err != nil {
			return nil, fmt.Errorf("block %s: %w", b.meta.String(), err)
		}
		if b.onReaderAt != nil {
			b.onReaderAt(ra)
		}
		of.c.Rebind(ra)
		return of, nil
	}
	b.mu.Unlock()
	f, c, err := b.openFile(ctx)
	if err != nil {
		return nil, err
	}
	return &openedFile{f: f, c: c}, nil
}

// release keeps of for reuse (only after a call that went without error).
func (b *Block) release(of *openedFile) {
	of.c.Rebind(nil)
	b.mu.Lock()
	if len(b.idle) < MaxIdleFiles {
		b.idle = append(b.idle, of)
	}
	b.mu.Unlock()
}

// OpenBlock returns a reader for the block meta describes. It does no I/O:
// errors surface on first use.
func OpenBlock(ctx context.Context, bucket *storage.Bucket, meta *block.Meta) *Block {
	return &Block{
		bucket: bucket,
		meta:   meta,
		ded:    newDedicatedMap(meta.DedicatedColumns),
		key:    block.DataKey(meta.TenantID, meta.BlockID),
	}
}

// Meta is the block's meta.
func (b *Block) Meta() *block.Meta { return b.meta }

func (b *Block) errorf(format string, args ...any) error {
	return fmt.Errorf("block %s: reading %s: %w", b.meta.String(), block.DataName, fmt.Errorf(format, args...))
}

var (
	readSchemaOnce sync.Once
	readSchema     *parquet.Schema
)

// rowSchema is the struct-derived schema used to reconstruct rows.
func rowSchema() *parquet.Schema {
	readSchemaOnce.Do(func() { readSchema = parquet.SchemaOf(Trace{}) })
	return readSchema
}

// openFile opens data.parquet reading the footer with one ranged read when
// meta.footerSize is known (Tempo's way: the trailer is synthesised from it).
func (b *Block) openFile(ctx context.Context) (*parquet.File, *pqread.SegmentReaderAt, error) {
	if b.meta.Format != block.FormatVParquet4 {
		return nil, nil, fmt.Errorf("block %s: %s says format %q; this reader reads only %s", b.meta.String(), block.MetaName, b.meta.Format, block.FormatVParquet4)
	}
	size := int64(b.meta.Size)
	if size == 0 {
		size = -1
	}
	ra, err := b.bucket.OpenReaderAt(ctx, b.key, size)
	if err != nil {
		return nil, nil, fmt.Errorf("block %s: %w", b.meta.String(), err)
	}
	if b.onReaderAt != nil {
		b.onReaderAt(ra)
	}
	size = ra.Size()
	c := pqread.NewSegmentReaderAt(ra, size)
	if fs := int64(b.meta.FooterSize); fs > 0 && fs+12 <= size {
		off := size - 8 - fs
		buf := make([]byte, fs+8)
		n, err := ra.ReadAt(buf, off)
		if err != nil && !(errors.Is(err, io.EOF) && n == len(buf)) {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, nil, b.errorf("object is shorter than the %d bytes meta.json says: truncated (%v)", size, err)
			}
			return nil, nil, b.errorf("footer: %w", err)
		}
		// Synthesise the trailer from meta, as Tempo does; a file whose own
		// trailer disagrees is corrupt or truncated.
		if got := binary.LittleEndian.Uint32(buf[fs : fs+4]); int64(got) != fs || string(buf[fs+4:]) != "PAR1" {
			return nil, nil, b.errorf("trailer does not match meta.json (footer %d bytes, file %d bytes): truncated or corrupt", fs, size)
		}
		c.Add(off, buf)
	} else {
		// Unknown footer size: read a generous tail once, more if needed.
		tail := min(size, 256<<10)
		buf := make([]byte, tail)
		if _, err := ra.ReadAt(buf, size-tail); err != nil && !errors.Is(err, io.EOF) {
			return nil, nil, b.errorf("footer: %w", err)
		}
		c.Add(size-tail, buf)
	}
	f, err := parquet.OpenFile(c, size,
		parquet.SkipMagicBytes(true),
		parquet.SkipPageIndex(true),
		parquet.SkipBloomFilters(true),
		parquet.ReadBufferSize(64<<10),
		parquet.FileSchema(rowSchema()),
	)
	if err != nil {
		return nil, nil, b.errorf("%w", err)
	}
	if n := len(f.Schema().Columns()); n != len(rowSchema().Columns()) {
		return nil, nil, b.errorf("file has %d columns, vParquet4 has %d: not a vParquet4 file", n, len(rowSchema().Columns()))
	}
	return f, c, nil
}

// prefetch reads a row group's byte range in one request when it is
// small enough.
func (b *Block) prefetch(f *parquet.File, c *pqread.SegmentReaderAt, i int) error {
	md := &f.Metadata().RowGroups[i]
	off, end := pqread.RowGroupRange(md)
	if off < 0 || end <= off {
		return nil // no chunks: let parquet-go report what it finds
	}
	if end > c.Size() {
		return b.errorf("row group %d: column chunks at bytes %d…%d of a %d-byte file: truncated or corrupt", i, off, end, c.Size())
	}
	if end-off > MaxPrefetchBytes || c.Covers(off, end-off) {
		return nil
	}
	buf := make([]byte, end-off)
	if n, err := c.ReadAt(buf, off); n != len(buf) {
		return b.errorf("row group %d: %w", i, err)
	}
	if err := checkRowGroup(md, buf, off); err != nil {
		return b.errorf("row group %d: %w", i, err)
	}
	c.Add(off, buf)
	return nil
}

// FindTraceByID returns the trace with id. It binary-searches the row
// groups by their TraceID statistics and reads the one that can hold id in
// a single request (when at most MaxPrefetchBytes): two object reads on
// the first call (footer, row group), one on later calls, which reuse the
// parsed footer. found is false when the block does not hold id; the
// caller is expected to have consulted the bloom filter first. Repeats of
// a span ID + kind within the row are dropped.
func (b *Block) FindTraceByID(ctx context.Context, id block.TraceID) (td ptrace.Traces, found bool, err error) {
	defer func() {
		if r := recover(); r != nil {
			td, found, err = ptrace.Traces{}, false, b.errorf("corrupt file: %v", r)
		}
	}()
	of, err := b.acquire(ctx)
	if err != nil {
		return ptrace.Traces{}, false, err
	}
	f, c := of.f, of.c
	defer func() {
		if err == nil {
			b.release(of)
		}
	}()
	i, row, err := b.locate(f, c, id)
	if err != nil || row < 0 {
		return ptrace.Traces{}, false, err
	}
	rg := f.RowGroups()[i]
	rows := rg.Rows()
	defer rows.Close()
	if err := rows.SeekToRow(row); err != nil {
		return ptrace.Traces{}, false, b.errorf("row group %d: %w", i, err)
	}
	buf := make([]parquet.Row, 1)
	if n, err := rows.ReadRows(buf); n != 1 {
		return ptrace.Traces{}, false, b.errorf("row group %d row %d: %w", i, row, err)
	}
	tr := &Trace{}
	if err := rowSchema().Reconstruct(tr, buf[0]); err != nil {
		return ptrace.Traces{}, false, b.errorf("row group %d row %d: %w", i, row, err)
	}
	td = ptrace.NewTraces()
	if err := appendOTLP(td, tr, b.ded, false); err != nil {
		return ptrace.Traces{}, false, b.errorf("trace %s: %w", id, err)
	}
	return td, true, nil
}

// locate finds the row group and row of id (row -1 when absent). Row
// groups are sorted by TraceID, so with min/max statistics on the TraceID
// column one group is a candidate; without them (not written by Tempo or
// tracectl) every group is scanned.
func (b *Block) locate(f *parquet.File, c *pqread.SegmentReaderAt, id block.TraceID) (int, int64, error) {
	rgs := f.Metadata().RowGroups
	var candidates []int
	haveStats := true
	for i := range rgs {
		st := &rgs[i].Columns[0].MetaData.Statistics
		if len(st.MinValue) == 0 || len(st.MaxValue) == 0 {
			haveStats = false
			break
		}
	}
	if haveStats {
		// The first group whose max >= id is the only one that can hold it.
		i := sort.Search(len(rgs), func(i int) bool {
			return bytes.Compare(rgs[i].Columns[0].MetaData.Statistics.MaxValue, id[:]) >= 0
		})
		if i < len(rgs) && bytes.Compare(rgs[i].Columns[0].MetaData.Statistics.MinValue, id[:]) <= 0 {
			candidates = []int{i}
		}
	} else {
		for i := range rgs {
			candidates = append(candidates, i)
		}
	}
	for _, i := range candidates {
		if err := b.prefetch(f, c, i); err != nil {
			return 0, -1, err
		}
		row, err := findRow(f.RowGroups()[i], id)
		if err != nil {
			return 0, -1, b.errorf("row group %d: %w", i, err)
		}
		if row >= 0 {
			return i, row, nil
		}
		c.DropData()
	}
	return 0, -1, nil
}

// findRow returns the index of id in the row group's TraceID column, or -1.
func findRow(rg parquet.RowGroup, id block.TraceID) (int64, error) {
	pages := rg.ColumnChunks()[0].Pages()
	defer pages.Close()
	var base int64
	vals := make([]parquet.Value, 256)
	for {
		p, err := pages.ReadPage()
		if errors.Is(err, io.EOF) {
			return -1, nil
		}
		if err != nil {
			return -1, err
		}
		r := p.Values()
		for {
			n, err := r.ReadValues(vals)
			for j := range n {
				if bytes.Equal(vals[j].ByteArray(), id[:]) {
					parquet.Release(p)
					return base + int64(j), nil
				}
			}
			base += int64(n)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				parquet.Release(p)
				return -1, err
			}
		}
		parquet.Release(p)
	}
}

// Iterate yields every row of the block in trace-ID order, reading one row
// group at a time (one request per row group up to MaxPrefetchBytes). The
// rows are fresh values the caller may keep; convert them with OTLP. The
// sequence stops after the first error.
func (b *Block) Iterate(ctx context.Context) iter.Seq2[*Trace, error] {
	return func(yield func(*Trace, error) bool) {
		defer func() {
			if r := recover(); r != nil {
				yield(nil, b.errorf("corrupt file: %v", r))
			}
		}()
		of, err := b.acquire(ctx)
		if err != nil {
			yield(nil, err)
			return
		}
		f, c := of.f, of.c
		schema := rowSchema()
		buf := make([]parquet.Row, 16)
		for i, rg := range f.RowGroups() {
			if err := ctx.Err(); err != nil {
				yield(nil, err)
				return
			}
			c.DropData()
			if err := b.prefetch(f, c, i); err != nil {
				yield(nil, err)
				return
			}
			rows := rg.Rows()
			for {
				n, err := rows.ReadRows(buf)
				for j := range n {
					tr := &Trace{}
					if err := schema.Reconstruct(tr, buf[j]); err != nil {
						rows.Close()
						yield(nil, b.errorf("row group %d: %w", i, err))
						return
					}
					if !yield(tr, nil) {
						rows.Close()
						return
					}
				}
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					rows.Close()
					yield(nil, b.errorf("row group %d: %w", i, err))
					return
				}
			}
			rows.Close()
		}
	}
}

// OTLP converts a row of this block to OTLP, mapping dedicated columns with
// the block's own list.
func (b *Block) OTLP(tr *Trace) (ptrace.Traces, error) {
	return b.otlp(tr, false)
}

// OTLPAll is OTLP keeping every stored span, repeats of a span ID + kind
// included: what a compactor carries over, as Tempo does.
func (b *Block) OTLPAll(tr *Trace) (ptrace.Traces, error) { return b.otlp(tr, true) }

func (b *Block) otlp(tr *Trace, keepRepeats bool) (ptrace.Traces, error) {
	td := ptrace.NewTraces()
	if err := appendOTLP(td, tr, b.ded, keepRepeats); err != nil {
		return ptrace.Traces{}, fmt.Errorf("block %s: trace %s: %w", b.meta.String(), tr.ID(), err)
	}
	return td, nil
}
