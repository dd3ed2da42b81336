package search

import (
	"container/list"
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/encoding"
	"github.com/parquet-go/parquet-go/format"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tracectl/tracectl/internal/blocks"
	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/blocks/pqread"
	"github.com/tracectl/tracectl/internal/blocks/vparquet4"
	"github.com/tracectl/tracectl/internal/storage"
	"github.com/tracectl/tracectl/internal/traceql"
)

// The vParquet4 path works in two phases per row group. Phase 1 reads only
// the columns the filter's conditions live in (service name, span name,
// status, kind, duration, root names: small, dictionary- or delta-encoded)
// plus the trace ID and times, and keeps the rows that may match: a
// superset, since each condition is tested on its own. Phase 2 reads the
// candidate rows whole and evaluates the query exactly (the OTLP path), so
// both paths give the same answers. Row groups without candidates are
// never read beyond their few filter columns, and the job stops at the
// limit.

// fileCache keeps block readers (with their parsed footers) across queries,
// least recently used first out, within a memory budget. A parsed footer
// takes about 6-7 times its size in the file (2.5 MB for the 380 KB footer
// of a 17 MB block), and a reader keeps up to vparquet4.MaxIdleFiles of
// them: a cache bounded by count (256 blocks) let serve's heap grow by
// ~7 MB for every block stored under a steady trickle of queries, to the
// memory limit and into GC thrash (issue 9's 30-minute run).
type fileCache struct {
	b      *storage.Bucket
	budget int64
	mu     sync.Mutex
	used   int64
	lru    *list.List // of *fileEntry, most recently used at the front
	m      map[string]*list.Element
}

type fileEntry struct {
	key  string
	blk  *vparquet4.Block
	cost int64
}

// defaultFileCacheBytes is the search engine's footer cache budget.
const defaultFileCacheBytes = 128 << 20

func newFileCache(b *storage.Bucket, budget int64) *fileCache {
	return &fileCache{b: b, budget: budget, lru: list.New(), m: map[string]*list.Element{}}
}

// footerCost estimates the memory a cached block's readers may hold.
func footerCost(m *block.Meta) int64 {
	fs := int64(m.FooterSize)
	if fs == 0 { // meta.json without footerSize: guess from the size
		fs = int64(m.Size)/40 + 1
	}
	return 7 * fs * vparquet4.MaxIdleFiles
}

func (c *fileCache) get(ctx context.Context, m *block.Meta) *vparquet4.Block {
	key := m.String()
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.m[key]; ok {
		e := el.Value.(*fileEntry)
		if e.blk.Meta().Size == m.Size {
			c.lru.MoveToFront(el)
			return e.blk
		}
		c.remove(el)
	}
	e := &fileEntry{key: key, blk: vparquet4.OpenBlock(ctx, c.b, m), cost: footerCost(m)}
	for c.lru.Len() > 0 && c.used+e.cost > c.budget {
		c.remove(c.lru.Back())
	}
	if e.cost <= c.budget {
		c.m[key] = c.lru.PushFront(e)
		c.used += e.cost
	}
	return e.blk
}

// stats returns the blocks held and their estimated cost.
func (c *fileCache) stats() (blocks int, bytes int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len(), c.used
}

func (c *fileCache) remove(el *list.Element) {
	e := c.lru.Remove(el).(*fileEntry)
	delete(c.m, e.key)
	c.used -= e.cost
}

// colTest is one comparison phase 1 can test on a column: true for a row
// when any value of the column in that row satisfies it.
type colTest struct {
	col int
	op  *traceql.BinaryOp
	// conv turns a column value into the attribute's value.
	conv func(parquet.Value) traceql.Static
}

// cand is phase 1's view of a spanset or field expression: a tree whose
// leaves are colTests (index into plan.tests) or "unknown" (always true).
type cand struct {
	op          traceql.Op // OpAnd, OpOr, or OpNone for a leaf
	l, r        *cand
	test        int // leaf: index into tests, -1 = unknown (may match)
	trivialTrue bool
}

type vp4Plan struct {
	root  *cand
	tests []colTest
	ded   dedicatedSlots
}

func strConv(v parquet.Value) traceql.Static {
	return traceql.Static{Type: traceql.TypeString, S: string(v.ByteArray())}
}

// columnFor maps an attribute to a vParquet4 column phase 1 can test.
func columnFor(a *traceql.Attribute) (int, func(parquet.Value) traceql.Static, bool) {
	switch a.Scope {
	case traceql.ScopeResource:
		if a.Name == "service.name" {
			return vparquet4.ColServiceName, strConv, true
		}
	case traceql.ScopeIntrinsic:
		switch a.Intrinsic {
		case traceql.IntrinsicName:
			return vparquet4.ColSpanName, strConv, true
		case traceql.IntrinsicRootName:
			return vparquet4.ColRootSpanName, strConv, true
		case traceql.IntrinsicRootServiceName:
			return vparquet4.ColRootServiceName, strConv, true
		case traceql.IntrinsicStatus:
			return vparquet4.ColSpanStatusCode, func(v parquet.Value) traceql.Static {
				return traceql.Static{Type: traceql.TypeStatus, I: v.Int64()}
			}, true
		case traceql.IntrinsicKind:
			return vparquet4.ColSpanKind, func(v parquet.Value) traceql.Static {
				return traceql.Static{Type: traceql.TypeKind, I: v.Int64()}
			}, true
		case traceql.IntrinsicDuration:
			return vparquet4.ColSpanDurationNano, func(v parquet.Value) traceql.Static {
				return traceql.Static{Type: traceql.TypeDuration, D: time.Duration(v.Int64())}
			}, true
		}
	}
	return 0, nil, false
}

func (vp *vp4Plan) field(e traceql.FieldExpr) *cand {
	switch e := e.(type) {
	case *traceql.BinaryOp:
		if e.Op == traceql.OpAnd || e.Op == traceql.OpOr {
			return &cand{op: e.Op, l: vp.field(e.LHS), r: vp.field(e.RHS)}
		}
		a := e.LHS.(*traceql.Attribute)
		s := e.RHS.(*traceql.Static)
		if s.Type == traceql.TypeNil {
			return &cand{test: -1}
		}
		col, conv, ok := columnFor(a)
		if !ok || a.Scope == traceql.ScopeResource {
			if c := vp.attrCand(a, e); c != nil {
				return c
			}
			return &cand{test: -1}
		}
		vp.tests = append(vp.tests, colTest{col: col, op: e, conv: conv})
		return &cand{test: len(vp.tests) - 1}
	}
	return &cand{test: -1}
}

func (vp *vp4Plan) spanset(e traceql.SpansetExpr) *cand {
	switch e := e.(type) {
	case *traceql.SpansetFilter:
		if e.Expr == nil {
			return &cand{test: -1}
		}
		return vp.field(e.Expr)
	case *traceql.SpansetOp:
		return &cand{op: e.Op, l: vp.spanset(e.LHS), r: vp.spanset(e.RHS)}
	}
	return &cand{test: -1}
}

func (c *cand) eval(results [][]bool, row int) bool {
	switch c.op {
	case traceql.OpAnd:
		return c.l.eval(results, row) && c.r.eval(results, row)
	case traceql.OpOr:
		return c.l.eval(results, row) || c.r.eval(results, row)
	}
	if c.test == -2 {
		return false
	}
	if c.test < 0 {
		return true
	}
	return results[c.test][row]
}

// searchVP4 answers the plan over one vParquet4 block (see above).
func (e *Engine) searchVP4(ctx context.Context, m *block.Meta, p *plan, col *collector, st *stats) error {
	vp := &vp4Plan{ded: newDedicatedSlots(m)}
	vp.root = vp.spanset(p.query.Filter)
	blk := e.files.get(ctx, m)
	return blk.WithFile(ctx, func(f *vparquet4.File) error {
		for i, rg := range f.F.RowGroups() {
			if ctx.Err() != nil || col.full() {
				return nil
			}
			nrows := int(rg.NumRows())
			md := &f.F.Metadata().RowGroups[i]
			cols := []int{vparquet4.ColTraceID, vparquet4.ColStartTimeUnixNano, vparquet4.ColEndTimeUnixNano,
				vparquet4.ColRootServiceName, vparquet4.ColRootSpanName}
			for _, t := range vp.tests {
				cols = append(cols, t.col)
			}
			if err := fetchChunks(f, md, cols, st); err != nil {
				return err
			}
			chunks := rg.ColumnChunks()
			results := make([][]bool, len(vp.tests))
			for ti, t := range vp.tests {
				res := make([]bool, nrows)
				err := scanColumn(chunks[t.col], func(row int, v parquet.Value) {
					if !res[row] && traceql.Compare(t.op, t.conv(v), *t.op.RHS.(*traceql.Static)) {
						res[row] = true
					}
				})
				if err != nil {
					return blkErr(m, i, err)
				}
				results[ti] = res
			}
			ids := make([]block.TraceID, nrows)
			starts := make([]uint64, nrows)
			ends := make([]uint64, nrows)
			if err := scanColumn(chunks[vparquet4.ColTraceID], func(row int, v parquet.Value) {
				b := v.ByteArray()
				copy(ids[row][16-min(16, len(b)):], b)
			}); err != nil {
				return blkErr(m, i, err)
			}
			if err := scanColumn(chunks[vparquet4.ColStartTimeUnixNano], func(row int, v parquet.Value) { starts[row] = uint64(v.Int64()) }); err != nil {
				return blkErr(m, i, err)
			}
			if err := scanColumn(chunks[vparquet4.ColEndTimeUnixNano], func(row int, v parquet.Value) { ends[row] = uint64(v.Int64()) }); err != nil {
				return blkErr(m, i, err)
			}
			rootSvc := make([]string, nrows)
			rootName := make([]string, nrows)
			if err := scanColumn(chunks[vparquet4.ColRootServiceName], func(row int, v parquet.Value) { rootSvc[row] = string(v.ByteArray()) }); err != nil {
				return blkErr(m, i, err)
			}
			if err := scanColumn(chunks[vparquet4.ColRootSpanName], func(row int, v parquet.Value) { rootName[row] = string(v.ByteArray()) }); err != nil {
				return blkErr(m, i, err)
			}
			st.inspectedRows.Add(int64(nrows))
			var rows []int64
			for r := 0; r < nrows; r++ {
				if !p.traceFilter(starts[r], ends[r]) {
					continue
				}
				if vp.root.eval(results, r) {
					rows = append(rows, int64(r))
				}
			}
			spans := spanCount(md)
			st.inspectedSpans.Add(spans)
			f.C.DropData()
			if len(rows) == 0 {
				continue
			}
			st.inspectedBytes.Add(f.RowGroupBytes(i))
			var stop bool
			err := f.ReadRowsAll(i, rows, func(row int64, td ptrace.Traces) bool {
				info := &part{id: ids[row], hasRoot: rootSvc[row] != "" || rootName[row] != "",
					rootService: rootSvc[row], rootName: rootName[row], start: starts[row], end: ends[row]}
				if pt := p.evalOTLP(ids[row], td, info); pt != nil {
					if !col.add(pt) {
						stop = true
						return false
					}
				}
				return ctx.Err() == nil
			})
			f.C.DropData()
			if err != nil {
				return err
			}
			if stop {
				return nil
			}
		}
		return nil
	})
}

func blkErr(m *block.Meta, rg int, err error) error {
	return errors.Join(errors.New("block "+m.String()+": row group "+itoa(rg)), err)
}

func itoa(i int) string {
	return string(appendInt(nil, i))
}

func appendInt(b []byte, i int) []byte {
	if i >= 10 {
		b = appendInt(b, i/10)
	}
	return append(b, byte('0'+i%10))
}

// spanCount is the number of spans in a row group: values of the span ID
// column (one per span, never null).
func spanCount(md *format.RowGroup) int64 {
	return md.Columns[47].MetaData.NumValues
}

// fetchChunks reads the byte ranges of the given column chunks (one
// request each, merged when adjacent) and hands them to the file.
func fetchChunks(f *vparquet4.File, md *format.RowGroup, cols []int, st *stats) error {
	for _, c := range cols {
		cm := &md.Columns[c].MetaData
		off := cm.DataPageOffset
		if cm.DictionaryPageOffset > 0 && cm.DictionaryPageOffset < off {
			off = cm.DictionaryPageOffset
		}
		n := cm.TotalCompressedSize
		if off < 0 || n <= 0 || off+n > f.C.Size() {
			return errors.New("column chunk out of the file's bounds: corrupt footer")
		}
		if f.C.Covers(off, n) {
			continue
		}
		buf := make([]byte, n)
		if got, err := f.C.ReadAt(buf, off); int64(got) != n {
			if err == nil {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		st.inspectedBytes.Add(n)
		f.C.Add(off, buf)
	}
	return nil
}

// scanColumn calls fn for every defined value of a column chunk with the
// index of its row.
func scanColumn(cc parquet.ColumnChunk, fn func(row int, v parquet.Value)) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = errors.New("corrupt column chunk")
		}
	}()
	row := -1
	return pqread.ColumnValues(cc, make([]parquet.Value, 1024), func(vals []parquet.Value) {
		for _, v := range vals {
			if v.RepetitionLevel() == 0 {
				row++
			}
			if !v.IsNull() {
				fn(row, v)
			}
		}
	})
}

// tagValuesFast answers tag values from one column per row group when the
// attribute has its own column, no query narrows the spans and every block
// is vParquet4: values of service.name, name, status, kind come from small
// dictionary- or delta-encoded chunks. ok is false when it does not apply.
func (e *Engine) tagValuesFast(ctx context.Context, tenant string, metas []*block.Meta, head HeadSource, req TagValuesRequest, attr *traceql.Attribute) (*TagValuesResponse, bool, error) {
	if !req.V2 || e.opts.Generic {
		return nil, false, nil
	}
	if req.Query != nil {
		if f, ok := req.Query.Filter.(*traceql.SpansetFilter); !ok || f.Expr != nil {
			return nil, false, nil
		}
	}
	c, conv, ok := columnFor(attr)
	if !ok || attr.Intrinsic == traceql.IntrinsicDuration || !allVParquet4(metas) {
		return nil, false, nil
	}
	var mu sync.Mutex
	seen := map[TagValue]bool{}
	add := func(s traceql.Static) {
		if tv, ok := columnTagValue(s); ok {
			seen[tv] = true
		}
	}
	st := &stats{}
	if head != nil && headTagValues(head, tenant, req.Query, attr, true, func(tv TagValue) {
		// As the column and the span-by-span reading below: strings
		// (no empty one but a span's name) and keywords.
		if tv.Type == "keyword" || tv.Type == "string" && (tv.Value != "" || attr.Intrinsic == traceql.IntrinsicName) {
			seen[tv] = true
		}
	}) {
		head = nil // answered from the head's index
	}
	if head != nil {
		probe := &traceql.Attribute{Scope: attr.Scope, Name: attr.Name, Intrinsic: attr.Intrinsic}
		head.ForEachHeadTrace(tenant, func(id block.TraceID, parts []ptrace.Traces) bool {
			td := parts[0]
			if len(parts) > 1 {
				td = blocks.Combine(parts...)
			}
			tr := &traceInfo{}
			if attr.Intrinsic == traceql.IntrinsicRootName || attr.Intrinsic == traceql.IntrinsicRootServiceName {
				tr.rootService, tr.rootName, _ = rootOf(td)
			}
			forEachSpan(td, func(res pcommon.Map, sp ptrace.Span) {
				s := &pdSpan{sp: sp, res: res, tr: tr}
				v, ok := s.Attr(probe)
				if ok && v.Type == traceql.TypeString && v.S == "" && attr.Intrinsic != traceql.IntrinsicName {
					ok = false // no value, as for blocks
				}
				if ok && (v.Type == traceql.TypeString || v.Type == traceql.TypeStatus || v.Type == traceql.TypeKind) {
					mu.Lock()
					add(v)
					mu.Unlock()
				}
			})
			return true
		})
	}
	// Enumerations (status, kind) have few values: once all are seen,
	// nothing more is read.
	enum := 0
	switch attr.Intrinsic {
	case traceql.IntrinsicStatus:
		enum = len(statusNames)
	case traceql.IntrinsicKind:
		enum = len(kindNames)
	}
	allSeen := func() bool { return enum > 0 && len(seen) >= enum }
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	job, allSkipped := e.skipUnreadable("tag_values", func(ctx context.Context, m *block.Meta) error {
		distinct, err := e.blockDistinct(ctx, m, c, conv, enum)
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		for s := range distinct {
			if s.Type == traceql.TypeString && s.S == "" && attr.Intrinsic != traceql.IntrinsicName {
				continue // no value
			}
			add(s)
		}
		if allSeen() {
			cancel()
		}
		return nil
	})
	err := e.runJobs(ctx, metas, job, st)
	if allSeen() {
		err = nil // the other jobs were cancelled: nothing new to find
	} else if err == nil {
		err = parent.Err() // the query's time ran out: not a short answer
	}
	if err == nil {
		err = allSkipped(len(metas))
	}
	if err != nil {
		return nil, true, err
	}
	values := make([]TagValue, 0, len(seen))
	for v := range seen {
		values = append(values, v)
	}
	sortValues(values)
	if req.Limit > 0 && len(values) > req.Limit {
		values = values[:req.Limit]
	}
	return &TagValuesResponse{Values: values, Metrics: &Metrics{InspectedBytes: Uint64String(st.inspectedBytes.Load())}}, true, nil
}

// columnTagValue is the typed tag value of a value read from a column
// (strings, status and kind codes); ok is false for a code out of range.
func columnTagValue(s traceql.Static) (TagValue, bool) {
	switch s.Type {
	case traceql.TypeString:
		return TagValue{Type: "string", Value: s.S}, true
	case traceql.TypeStatus:
		if s.I >= 0 && int(s.I) < len(statusNames) {
			return TagValue{Type: "keyword", Value: statusNames[s.I]}, true
		}
	case traceql.TypeKind:
		if s.I >= 0 && int(s.I) < len(kindNames) {
			return TagValue{Type: "keyword", Value: kindNames[s.I]}, true
		}
	}
	return TagValue{}, false
}

// allVParquet4 reports whether every block is vParquet4, the format the
// column paths read.
func allVParquet4(metas []*block.Meta) bool {
	for _, m := range metas {
		if m.Format != block.FormatVParquet4 {
			return false
		}
	}
	return true
}

// scanDistinct calls fn for the distinct values of a column chunk (with
// repeats when it is not dictionary-encoded): from the dictionary pages
// alone when there are dictionaries.
func scanDistinct(cc parquet.ColumnChunk, fn func(v parquet.Value), done func() bool) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = errors.New("corrupt column chunk")
		}
	}()
	pages := cc.Pages()
	defer pages.Close()
	var last parquet.Dictionary
	for {
		p, err := pages.ReadPage()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if done() {
			parquet.Release(p)
			return nil
		}
		if d := p.Dictionary(); d != nil {
			if d != last {
				for i := 0; i < d.Len(); i++ {
					fn(d.Index(int32(i)))
				}
				last = d
			}
			parquet.Release(p)
			continue
		}
		if data := p.Data(); data.Kind() == encoding.Int64 {
			// Integers (status, kind): straight from the decoded page,
			// each distinct value once per page.
			var last int64
			for j, x := range data.Int64() {
				if j == 0 || x != last {
					fn(parquet.Int64Value(x))
					last = x
				}
			}
			parquet.Release(p)
			continue
		}
		err = pqread.PageValues(p, make([]parquet.Value, 1024), func(vals []parquet.Value) {
			for _, v := range vals {
				if !v.IsNull() {
					fn(v)
				}
			}
		})
		parquet.Release(p)
		if err != nil {
			return err
		}
	}
}

// distinctCache keeps the distinct values of one column of one block:
// blocks never change, so a warm tag-values query reads nothing.
type distinctCache struct {
	mu sync.Mutex
	m  map[string]map[traceql.Static]bool
}

// maxDistinctEntries bounds the cache (block × column entries).
const maxDistinctEntries = 4096

func (c *distinctCache) get(key string) (map[traceql.Static]bool, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	d, ok := c.m[key]
	return d, ok
}

func (c *distinctCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

// put keeps d under key; a full cache starts again empty.
func (c *distinctCache) put(key string, d map[traceql.Static]bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxDistinctEntries {
		c.m = map[string]map[traceql.Static]bool{}
	}
	c.m[key] = d
}

// blockDistinct returns the distinct values of leaf column c in block m.
// For an enumeration of enum values it stops reading once all are seen.
func (e *Engine) blockDistinct(ctx context.Context, m *block.Meta, c int, conv func(parquet.Value) traceql.Static, enum int) (map[traceql.Static]bool, error) {
	key := m.String() + "/" + itoa(c)
	if d, ok := e.distinct.get(key); ok {
		return d, nil
	}
	out := map[traceql.Static]bool{}
	err := e.files.get(ctx, m).WithFile(ctx, func(f *vparquet4.File) error {
		for i, rg := range f.F.RowGroups() {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if enum > 0 && len(out) >= enum {
				return nil
			}
			md := &f.F.Metadata().RowGroups[i]
			if err := fetchChunks(f, md, []int{c}, &stats{}); err != nil {
				return err
			}
			err := scanDistinct(rg.ColumnChunks()[c], func(v parquet.Value) { out[conv(v)] = true }, func() bool {
				return enum > 0 && len(out) >= enum
			})
			f.C.DropData()
			if err != nil {
				return blkErr(m, i, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	e.distinct.put(key, out)
	return out, nil
}
