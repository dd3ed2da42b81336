package pqread

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"iter"
	"math/bits"
	"sort"
	"sync"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/encoding/thrift"
	"github.com/parquet-go/parquet-go/format"

	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/storage"
)

// MaxPrefetchBytes bounds the byte range of a row group read in one
// request; larger row groups are read column chunk by column chunk.
const MaxPrefetchBytes = 64 << 20

// readBufferSize is parquet-go's per-column read buffer for chunks that
// were not prefetched.
const readBufferSize = 64 << 10

// tailReadSize is read from the end of the file when meta.json gives no
// footer size.
const tailReadSize = 256 << 10

// DataFile reads one block's data.parquet. It is safe for concurrent use:
// each call works on its own parsed file, reading through a bucket reader
// bound to the call's context. Parsed footers of finished calls are kept
// (up to maxIdleFiles) so that later calls skip the footer read.
type DataFile struct {
	bucket *storage.Bucket
	meta   block.Meta
	key    string

	// onReaderAt, when set (tests), sees every data.parquet reader opened.
	onReaderAt func(*storage.ReaderAt)

	mu   sync.Mutex
	idle []*opened
}

const maxIdleFiles = 4

// NewDataFile describes the data.parquet of the block meta describes. It does
// no I/O.
func NewDataFile(bucket *storage.Bucket, meta block.Meta) *DataFile {
	return &DataFile{bucket: bucket, meta: meta, key: block.DataKey(meta.TenantID, meta.BlockID)}
}

// Meta returns the block's meta.
func (d *DataFile) Meta() block.Meta { return d.meta }

// Key returns the object key of data.parquet.
func (d *DataFile) Key() string { return d.key }

// Errorf returns an error naming the block and the object concerned
// ("<format> block <tenant>/<id>, object <key>: …").
func (d *DataFile) Errorf(key string, format string, args ...any) error {
	return fmt.Errorf("%s block %s, object %s: %w", d.meta.Format, d.meta.String(), key, fmt.Errorf(format, args...))
}

// acquire returns a parsed file reading through ctx: a kept one when there
// is one (no I/O), else a newly opened one (one footer read).
func (d *DataFile) acquire(ctx context.Context) (*opened, error) {
	d.mu.Lock()
	if n := len(d.idle); n > 0 {
		o := d.idle[n-1]
		d.idle = d.idle[:n-1]
		d.mu.Unlock()
		ra, err := d.bucket.OpenReaderAt(ctx, d.key, o.c.size)
		if err != nil {
			return nil, d.Errorf(d.key, "%w", err)
		}
		if d.onReaderAt != nil {
			d.onReaderAt(ra)
		}
		o.c.r = ra
		o.c.DropData()
		return o, nil
	}
	d.mu.Unlock()
	return d.open(ctx)
}

// release keeps o for a later call; only call it after a use without error.
func (d *DataFile) release(o *opened) {
	o.c.DropData()
	o.c.r = nil
	d.mu.Lock()
	if len(d.idle) < maxIdleFiles {
		d.idle = append(d.idle, o)
	}
	d.mu.Unlock()
}

// opened is an open data.parquet.
type opened struct {
	f     *parquet.File
	c     *SegmentReaderAt
	asm   *Assembler
	idCol int
}

// open reads the footer (one request when meta.json gives footerSize, whose
// trailer it then checks) and prepares the assembler.
func (d *DataFile) open(ctx context.Context) (o *opened, err error) {
	defer d.recoverInto(&err)
	ra, err := d.bucket.OpenReaderAt(ctx, d.key, sizeOrUnknown(int64(d.meta.Size)))
	if err != nil {
		return nil, d.Errorf(d.key, "%w", err)
	}
	if d.onReaderAt != nil {
		d.onReaderAt(ra)
	}
	size := ra.Size()
	c := NewSegmentReaderAt(ra, size)
	if fs := int64(d.meta.FooterSize); fs > 0 && fs+12 <= size {
		off := size - 8 - fs
		buf := make([]byte, fs+8)
		if n, err := ra.ReadAt(buf, off); n != len(buf) {
			return nil, d.Errorf(d.key, "reading footer: %w", eofIsUnexpected(err))
		}
		if got := binary.LittleEndian.Uint32(buf[fs : fs+4]); int64(got) != fs || string(buf[fs+4:]) != "PAR1" {
			return nil, d.Errorf(d.key, "trailer does not match meta.json (footer %d bytes, file %d bytes): truncated or corrupt", fs, size)
		}
		c.Add(off, buf)
	} else {
		tail := min(size, tailReadSize)
		buf := make([]byte, tail)
		if n, err := ra.ReadAt(buf, size-tail); n != len(buf) {
			return nil, d.Errorf(d.key, "reading footer: %w", eofIsUnexpected(err))
		}
		c.Add(size-tail, buf)
	}
	f, err := parquet.OpenFile(c, size,
		parquet.SkipMagicBytes(true),
		parquet.SkipPageIndex(true),
		parquet.SkipBloomFilters(true),
		parquet.ReadBufferSize(readBufferSize))
	if err != nil {
		return nil, d.Errorf(d.key, "opening parquet: %w", err)
	}
	asm, err := NewAssembler(f.Schema())
	if err != nil {
		return nil, d.Errorf(d.key, "schema: %w", err)
	}
	idCol := asm.ColumnIndex("TraceID")
	if idCol < 0 {
		return nil, d.Errorf(d.key, "no TraceID column")
	}
	return &opened{f: f, c: c, asm: asm, idCol: idCol}, nil
}

func eofIsUnexpected(err error) error {
	if err == nil || errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// prefetch reads the byte range of row group i in one request when it is
// at most MaxPrefetchBytes, dropping earlier prefetched row groups.
func (d *DataFile) prefetch(o *opened, i int) error {
	o.c.DropData()
	md := &o.f.Metadata().RowGroups[i]
	off, end := RowGroupRange(md)
	if off < 0 || end <= off {
		return nil // no chunks: let parquet-go report what it finds
	}
	if end > o.c.size || off < 0 {
		return d.Errorf(d.key, "row group %d: column chunks at bytes %d…%d of a %d-byte file: truncated or corrupt", i, off, end, o.c.size)
	}
	if end-off > MaxPrefetchBytes {
		return nil // read chunk by chunk
	}
	buf := make([]byte, end-off)
	if n, err := o.c.r.ReadAt(buf, off); n != len(buf) {
		return d.Errorf(d.key, "row group %d: %w", i, eofIsUnexpected(err))
	}
	if err := CheckPageHeaders(md, buf, off, o.asm.levels()); err != nil {
		return d.Errorf(d.key, "row group %d: %w", i, err)
	}
	o.c.Add(off, buf)
	return nil
}

// Limits on what a column chunk may claim, so that a damaged file cannot
// make the parquet reader allocate gigabytes: uncompressed data at most
// maxExpansion times the compressed bytes (plus slack for tiny chunks).
const (
	maxExpansion   = 1024
	expansionSlack = 16 << 20
)

// CheckPageHeaders walks the page headers of every column chunk of a
// prefetched row group (buf holds the file from byte off) and rejects sizes
// that do not fit, and level runs longer than their page: parquet-go
// allocates from these numbers before it can notice the damage, so a
// damaged data.parquet could otherwise cost gigabytes. levels gives each
// leaf column's maximum levels, in column order. Every format's reader
// calls it before handing a row group to parquet-go.
func CheckPageHeaders(rg *format.RowGroup, buf []byte, off int64, levels []MaxLevels) error {
	var proto thrift.CompactProtocol
	for ci := range rg.Columns {
		m := &rg.Columns[ci].MetaData
		bad := func(format string, args ...any) error {
			return fmt.Errorf("column %d: %s", ci, fmt.Sprintf(format, args...))
		}
		start := m.DataPageOffset
		if m.DictionaryPageOffset > 0 && m.DictionaryPageOffset < start {
			start = m.DictionaryPageOffset
		}
		end := start + m.TotalCompressedSize
		if start < off || m.TotalCompressedSize < 0 || end > off+int64(len(buf)) {
			return bad("chunk outside its row group")
		}
		if m.TotalUncompressedSize < 0 || m.TotalUncompressedSize > m.TotalCompressedSize*maxExpansion+expansionSlack {
			return bad("implausible uncompressed size %d for %d bytes", m.TotalUncompressedSize, m.TotalCompressedSize)
		}
		b := buf[start-off : end-off]
		for len(b) > 0 {
			var h format.PageHeader
			r := proto.NewReaderFromBytes(b)
			if err := thrift.NewDecoder(r).Decode(&h); err != nil {
				return bad("page header: %v", err)
			}
			counter, ok := r.(interface{ BytesRead() int })
			if !ok {
				return nil // cannot measure headers with this parquet-go
			}
			n := counter.BytesRead()
			if n <= 0 || n > len(b) {
				return bad("page header overruns the chunk")
			}
			b = b[n:]
			if h.CompressedPageSize < 0 || int(h.CompressedPageSize) > len(b) {
				return bad("page of %d bytes in %d remaining", h.CompressedPageSize, len(b))
			}
			if h.UncompressedPageSize < 0 || int64(h.UncompressedPageSize) > m.TotalUncompressedSize {
				return bad("page of %d uncompressed bytes in a chunk of %d", h.UncompressedPageSize, m.TotalUncompressedSize)
			}
			page := b[:h.CompressedPageSize]
			body, compressed := page, true
			if v2 := h.DataPageHeaderV2; v2.Valid {
				if ci < len(levels) {
					if err := checkLevelsV2(page, &v2.V, levels[ci]); err != nil {
						return bad("%v", err)
					}
				}
				lv := int64(v2.V.RepetitionLevelsByteLength) + int64(v2.V.DefinitionLevelsByteLength)
				if lv < 0 || lv > int64(len(page)) {
					return bad("data page levels of %d bytes in a %d-byte page", lv, len(page))
				}
				body = page[lv:]
				if c, ok := v2.V.IsCompressed.Get(); ok && !c {
					compressed = false
				}
			}
			// A snappy block starts with its decoded length, which the
			// decoder allocates: it must fit the page's uncompressed size.
			if m.Codec == format.Snappy && compressed && len(body) > 0 {
				if n, k := binary.Uvarint(body); k <= 0 || n > uint64(h.UncompressedPageSize) {
					return bad("snappy data claims more than the page's %d bytes", h.UncompressedPageSize)
				}
			}
			b = b[h.CompressedPageSize:]
		}
	}
	return nil
}

// MaxLevels is the maximum repetition and definition level of a column.
type MaxLevels struct{ Rep, Def int }

// levelSlack is how many level entries beyond a page's value count the
// runs may describe (bit-packed runs pad to groups of 8).
const levelSlack = 1024

// checkLevelsV2 checks the repetition and definition levels of a
// DATA_PAGE_V2 (stored uncompressed before the values): their runs must
// not describe more entries than the page has values. parquet-go expands
// every run before it checks, so one damaged run header could otherwise
// cost gigabytes.
func checkLevelsV2(page []byte, h *format.DataPageHeaderV2, ml MaxLevels) error {
	rl, dl := int64(h.RepetitionLevelsByteLength), int64(h.DefinitionLevelsByteLength)
	if rl < 0 || dl < 0 || rl+dl > int64(len(page)) {
		return fmt.Errorf("data page levels of %d+%d bytes in a %d-byte page", rl, dl, len(page))
	}
	limit := int64(h.NumValues) + levelSlack
	if err := checkRuns(page[:rl], bits.Len(uint(ml.Rep)), limit); err != nil {
		return fmt.Errorf("repetition levels: %w", err)
	}
	if err := checkRuns(page[rl:rl+dl], bits.Len(uint(ml.Def)), limit); err != nil {
		return fmt.Errorf("definition levels: %w", err)
	}
	return nil
}

// checkRuns walks an RLE/bit-packed hybrid stream of bitWidth-bit values
// and fails when it describes more than limit entries or overruns b.
func checkRuns(b []byte, bitWidth int, limit int64) error {
	var n int64
	for len(b) > 0 {
		h, k := binary.Uvarint(b)
		if k <= 0 {
			return errors.New("bad run header")
		}
		b = b[k:]
		count, size := int64(h>>1), int64((bitWidth+7)/8)
		if h&1 == 1 { // bit-packed groups of 8
			if count > int64(len(b)) {
				return errors.New("run overruns the levels")
			}
			count, size = count*8, count*int64(bitWidth)
		}
		if count > limit-n {
			return fmt.Errorf("runs describe more than %d entries", limit)
		}
		if size > int64(len(b)) {
			return errors.New("run overruns the levels")
		}
		n += count
		b = b[size:]
	}
	return nil
}

// RowGroupRange is the byte range of all column chunks of a row group.
func RowGroupRange(rg *format.RowGroup) (off, end int64) {
	off = -1
	for _, c := range rg.Columns {
		m := &c.MetaData
		start := m.DataPageOffset
		if m.DictionaryPageOffset > 0 && m.DictionaryPageOffset < start {
			start = m.DictionaryPageOffset
		}
		if off < 0 || start < off {
			off = start
		}
		end = max(end, start+m.TotalCompressedSize)
	}
	return off, end
}

// SegmentReaderAt serves reads from prefetched segments (the footer first,
// then at most one row group) and passes the rest to the bucket. It is how
// every format's reader keeps a trace lookup to a footer read and one row
// group read. Not safe for concurrent use.
type SegmentReaderAt struct {
	r    *storage.ReaderAt
	size int64
	segs []segment
}

type segment struct {
	off  int64
	data []byte
}

// NewSegmentReaderAt wraps r, an object of size bytes.
func NewSegmentReaderAt(r *storage.ReaderAt, size int64) *SegmentReaderAt {
	return &SegmentReaderAt{r: r, size: size}
}

// Size is the object's length in bytes.
func (c *SegmentReaderAt) Size() int64 { return c.size }

// Rebind points the reader at r (nil while it is idle) and forgets every
// segment but the footer, so a parsed footer can be reused by the next
// call with a fresh request context.
func (c *SegmentReaderAt) Rebind(r *storage.ReaderAt) {
	c.r = r
	c.DropData()
}

// Add keeps data, read from offset off, to serve later reads.
func (c *SegmentReaderAt) Add(off int64, data []byte) { c.segs = append(c.segs, segment{off, data}) }

// DropData forgets every segment but the first (the footer). The dropped
// entries are cleared, not only cut off: the backing array outlives the
// call (an idle reader is kept for reuse), and a cut-off entry would keep
// its data reachable, a row group's bytes per idle reader of every block.
func (c *SegmentReaderAt) DropData() {
	if len(c.segs) > 1 {
		clear(c.segs[1:])
		c.segs = c.segs[:1]
	}
}

// Covers reports whether n bytes at off are held.
func (c *SegmentReaderAt) Covers(off, n int64) bool {
	for _, s := range c.segs {
		if off >= s.off && off+n <= s.off+int64(len(s.data)) {
			return true
		}
	}
	return false
}

// ReadAt implements io.ReaderAt.
func (c *SegmentReaderAt) ReadAt(p []byte, off int64) (int, error) {
	for _, s := range c.segs {
		if off >= s.off && off+int64(len(p)) <= s.off+int64(len(s.data)) {
			return copy(p, s.data[off-s.off:]), nil
		}
	}
	// A read running past the end of the object: serve what a segment
	// reaching the end holds, short, with io.EOF.
	if off+int64(len(p)) > c.size {
		for _, s := range c.segs {
			if off >= s.off && s.off+int64(len(s.data)) == c.size {
				return copy(p, s.data[off-s.off:]), io.EOF
			}
		}
	}
	return c.r.ReadAt(p, off)
}

func sizeOrUnknown(n int64) int64 {
	if n <= 0 {
		return -1
	}
	return n
}

// recoverInto turns a panic inside parquet-go (which it may raise on
// corrupt input) into an error naming the block and object.
func (d *DataFile) recoverInto(err *error) {
	if r := recover(); r != nil {
		*err = d.Errorf(d.key, "corrupt parquet data: %v", r)
	}
}

// FindRow looks id up and, when found, calls fn with its row; fn must not
// keep the Group (see Group). Row groups are narrowed down by their TraceID
// statistics (binary search when every group has them); the candidate group
// is fetched in one request (up to MaxPrefetchBytes), so a lookup costs two
// object reads: footer and row group. The bloom filter is the caller's
// business (block.MayContain).
func (d *DataFile) FindRow(ctx context.Context, id block.TraceID, fn func(*Group) error) (found bool, err error) {
	o, err := d.acquire(ctx)
	if err != nil {
		return false, err
	}
	defer func() {
		if err == nil {
			d.release(o)
		}
	}()
	defer d.recoverInto(&err)
	rgs := o.f.RowGroups()
	for _, i := range candidateRowGroups(o.f, o.idCol, id) {
		if err := ctx.Err(); err != nil {
			return false, err
		}
		if err := d.prefetch(o, i); err != nil {
			return false, err
		}
		row, err := d.findInRowGroup(rgs[i], o.idCol, id)
		if err != nil {
			return false, d.Errorf(d.key, "row group %d: %w", i, err)
		}
		if row < 0 {
			continue
		}
		g, err := d.readRow(rgs[i], o.asm, row)
		if err != nil {
			return false, d.Errorf(d.key, "row group %d, row %d: %w", i, row, err)
		}
		if err := fn(g); err != nil {
			return false, err
		}
		return true, nil
	}
	return false, nil
}

// candidateRowGroups returns the row groups whose TraceID statistics admit
// id, in file order. Rows are sorted by ID across the file, so when every
// group has statistics a binary search finds the only candidate.
func candidateRowGroups(f *parquet.File, col int, id block.TraceID) []int {
	md := f.Metadata()
	type bounds struct {
		min, max []byte
		ok       bool
	}
	bs := make([]bounds, len(md.RowGroups))
	all := true
	for i, rg := range md.RowGroups {
		if col < len(rg.Columns) {
			st := rg.Columns[col].MetaData.Statistics
			mn, mx := st.MinValue, st.MaxValue
			if mn == nil || mx == nil {
				mn, mx = st.Min, st.Max
			}
			if mn != nil && mx != nil {
				bs[i] = bounds{padID(mn), padID(mx), true}
				continue
			}
		}
		all = false
	}
	if all {
		i := sort.Search(len(bs), func(i int) bool { return bytes.Compare(bs[i].max, id[:]) >= 0 })
		if i < len(bs) && bytes.Compare(bs[i].min, id[:]) <= 0 {
			return []int{i}
		}
		return nil
	}
	var out []int
	for i, b := range bs {
		if !b.ok || (bytes.Compare(b.min, id[:]) <= 0 && bytes.Compare(b.max, id[:]) >= 0) {
			out = append(out, i)
		}
	}
	return out
}

// padID left-pads a stored ID to 16 bytes so that byte order is ID order.
func padID(b []byte) []byte {
	if len(b) >= 16 {
		return b
	}
	out := make([]byte, 16)
	copy(out[16-len(b):], b)
	return out
}

// findInRowGroup reads the TraceID column of one row group and returns the
// index of the row holding id, or -1.
func (d *DataFile) findInRowGroup(rg parquet.RowGroup, col int, id block.TraceID) (int64, error) {
	pages := rg.ColumnChunks()[col].Pages()
	defer pages.Close()
	buf := make([]parquet.Value, 256)
	row := int64(0)
	for {
		p, err := pages.ReadPage()
		if err == io.EOF {
			return -1, nil
		}
		if err != nil {
			return -1, err
		}
		vr := p.Values()
		for {
			n, err := vr.ReadValues(buf)
			for _, v := range buf[:n] {
				switch c := bytes.Compare(padID(v.ByteArray()), id[:]); {
				case c == 0:
					parquet.Release(p)
					return row, nil
				case c > 0:
					// Rows are sorted: the ID is not in this group.
					parquet.Release(p)
					return -1, nil
				}
				row++
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				parquet.Release(p)
				return -1, err
			}
			if n == 0 {
				break
			}
		}
		parquet.Release(p)
	}
}

func (d *DataFile) readRow(rg parquet.RowGroup, asm *Assembler, row int64) (*Group, error) {
	rows := rg.Rows()
	defer rows.Close()
	if err := rows.SeekToRow(row); err != nil {
		return nil, err
	}
	buf := make([]parquet.Row, 1)
	n, err := rows.ReadRows(buf)
	if n != 1 {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return asm.Assemble(buf[0])
}

// Rows streams every row of the file in file order (trace ID order), one
// Group per row, valid only until the next iteration. The first error ends
// the sequence. Each row group is fetched in one request (up to
// MaxPrefetchBytes).
func (d *DataFile) Rows(ctx context.Context) iter.Seq2[*Group, error] {
	return func(yield func(*Group, error) bool) {
		o, err := d.acquire(ctx)
		if err != nil {
			yield(nil, err)
			return
		}
		for i, rg := range o.f.RowGroups() {
			if err := d.prefetch(o, i); err != nil {
				yield(nil, err)
				return
			}
			more, failed := d.rowGroupRows(ctx, i, rg, o.asm, yield)
			if failed {
				return
			}
			if !more {
				break
			}
		}
		d.release(o)
	}
}

// rowGroupRows yields the rows of one row group. more is false when the
// iteration must stop; failed says it stopped on an error (already yielded).
// Panics of the parquet reader become errors; the caller's loop body runs
// outside that recovery, so its own panics propagate untouched.
func (d *DataFile) rowGroupRows(ctx context.Context, i int, rg parquet.RowGroup, asm *Assembler, yield func(*Group, error) bool) (more, failed bool) {
	rows := rg.Rows()
	defer rows.Close()
	buf := make([]parquet.Row, 1)
	declared := rg.NumRows()
	for row := int64(0); ; row++ {
		if err := ctx.Err(); err != nil {
			yield(nil, err)
			return false, true
		}
		if row == declared {
			// Never read past the declared rows: damaged levels could
			// otherwise produce rows without end.
			return true, false
		}
		g, err := d.nextRow(rows, buf, asm)
		if err != nil {
			yield(nil, d.Errorf(d.key, "row group %d, row %d: %w", i, row, err))
			return false, true
		}
		if g == nil {
			if row < declared {
				yield(nil, d.Errorf(d.key, "row group %d: %d rows read, %d declared", i, row, declared))
				return false, true
			}
			return true, false
		}
		if !yield(g, nil) {
			return false, false
		}
	}
}

// nextRow reads and assembles one row; nil, nil at the end.
func (d *DataFile) nextRow(rows parquet.Rows, buf []parquet.Row, asm *Assembler) (g *Group, err error) {
	defer func() {
		if r := recover(); r != nil {
			g, err = nil, fmt.Errorf("corrupt parquet data: %v", r)
		}
	}()
	n, err := rows.ReadRows(buf)
	if n == 1 {
		// A final row may come with io.EOF; the next call reports the end.
		return asm.Assemble(buf[0])
	}
	if err == io.EOF {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return nil, errors.New("no progress reading rows")
}
