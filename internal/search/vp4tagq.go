package search

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/parquet-go/parquet-go"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tracectl/tracectl/internal/blocks"
	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/blocks/pqread"
	"github.com/tracectl/tracectl/internal/blocks/vparquet4"
	"github.com/tracectl/tracectl/internal/traceql"
)

// Tag values narrowed by a query (`q`), from columns. Grafana asks for
// them constantly: every drop-down of the Search tab loads with q = the
// other filters (`{resource.service.name="frontend"}` for the span-name
// list once a service is picked). Converting candidate rows to OTLP costs
// seconds on a big bucket; here a span's fields are read from the columns
// that hold them, each span is evaluated with the same evaluator as
// everywhere else (traceql.SpansetFilter.Match), and the tag's value is
// taken from the spans that match.
//
// It applies when q is one spanset filter whose every attribute has its
// own vParquet4 column (columnFor: resource.service.name, name, status,
// kind, duration, rootName, rootServiceName), the tag has one too, and
// every block is vParquet4. Levels in those columns (vParquet4 schema):
// rs, ss and Spans are lists (repetition levels 1, 2, 3); a span's
// required fields are defined at level 3, a resource's at level 1; the
// root names are one value per trace.

type colLevel int

const (
	levelSpan colLevel = iota
	levelResource
	levelTrace
)

func levelOf(col int) colLevel {
	switch col {
	case vparquet4.ColServiceName:
		return levelResource
	case vparquet4.ColRootSpanName, vparquet4.ColRootServiceName:
		return levelTrace
	}
	return levelSpan
}

// Definition levels at which a span (its required fields) and a resource
// exist in the vParquet4 schema.
const (
	spanDefLevel     = 3
	resourceDefLevel = 1
)

// qTagPlan is what the column path needs: the filter, and for every
// attribute it reads (the filter's and the tag), its column.
type qTagPlan struct {
	filter *traceql.SpansetFilter
	// attrs maps each attribute to its column; byPtr does the same for
	// the attribute nodes of the filter and for &target, which is how the
	// evaluator asks (no hashing of names per span).
	attrs  map[traceql.Attribute]int
	byPtr  map[*traceql.Attribute]int
	target traceql.Attribute
}

// newQTagPlan returns the plan, or false when q or the tag needs anything
// the columns above do not hold.
func newQTagPlan(q *traceql.Query, attr *traceql.Attribute) (*qTagPlan, bool) {
	if q == nil || q.Metrics != nil {
		return nil, false
	}
	f, ok := q.Filter.(*traceql.SpansetFilter)
	if !ok || f.Expr == nil {
		return nil, false
	}
	p := &qTagPlan{filter: f, attrs: map[traceql.Attribute]int{}, byPtr: map[*traceql.Attribute]int{}, target: *attr}
	use := func(a *traceql.Attribute) bool {
		if a.Scope == traceql.ScopeNone {
			return false
		}
		c, _, ok := columnFor(a)
		if !ok || valueTypeOf(c) == traceql.TypeNil {
			return false
		}
		p.attrs[*a] = c
		p.byPtr[a] = c
		return true
	}
	var walk func(e traceql.FieldExpr) bool
	walk = func(e traceql.FieldExpr) bool {
		switch e := e.(type) {
		case *traceql.BinaryOp:
			if e.Op == traceql.OpAnd || e.Op == traceql.OpOr {
				return walk(e.LHS) && walk(e.RHS)
			}
			a, ok := e.LHS.(*traceql.Attribute)
			if !ok {
				return false
			}
			if _, ok := e.RHS.(*traceql.Static); !ok {
				return false
			}
			return use(a)
		case *traceql.Static:
			return true
		}
		return false
	}
	if !walk(f.Expr) || attr.Intrinsic == traceql.IntrinsicDuration || !use(attr) {
		return nil, false
	}
	delete(p.byPtr, attr)
	p.byPtr[&p.target] = p.attrs[*attr]
	return p, true
}

// valueTypeOf is the type of the values of a column columnFor names.
func valueTypeOf(col int) traceql.StaticType {
	switch col {
	case vparquet4.ColServiceName, vparquet4.ColSpanName, vparquet4.ColRootSpanName, vparquet4.ColRootServiceName:
		return traceql.TypeString
	case vparquet4.ColSpanStatusCode:
		return traceql.TypeStatus
	case vparquet4.ColSpanKind:
		return traceql.TypeKind
	case vparquet4.ColSpanDurationNano:
		return traceql.TypeDuration
	}
	return traceql.TypeNil
}

// colSpan is one span as read from the columns of a row group.
type colSpan struct {
	p    *qTagPlan
	cols map[int]*rgColumn
	k    int // span index in the row group
	rs   int // its resource's index
	row  int // its trace's row
}

func (s *colSpan) Attr(a *traceql.Attribute) (traceql.Static, bool) {
	col, ok := s.p.byPtr[a]
	if !ok {
		if col, ok = s.p.attrs[*a]; !ok {
			return traceql.Static{}, false
		}
	}
	c := s.cols[col]
	i := s.k
	switch c.level {
	case levelResource:
		i = s.rs
	case levelTrace:
		i = s.row
	}
	if c.typ == traceql.TypeString {
		v := c.dict[c.ids[i]]
		if v == "" && col == vparquet4.ColServiceName {
			// The column holds "" where the resource has no
			// service.name; intrinsics (root names included) always
			// have a value.
			return traceql.Static{}, false
		}
		return traceql.Static{Type: traceql.TypeString, S: v}, true
	}
	if c.typ == traceql.TypeDuration {
		return traceql.Static{Type: traceql.TypeDuration, D: time.Duration(c.ints[i])}, true
	}
	return traceql.Static{Type: c.typ, I: c.ints[i]}, true
}

// rgColumn is one column of a row group, one value per span, resource or
// trace by its level: strings as indexes into dict (interned: a column
// holds few distinct names), the rest as integers.
type rgColumn struct {
	level colLevel
	typ   traceql.StaticType
	ids   []uint32
	dict  []string
	index map[string]uint32
	ints  []int64
}

func (c *rgColumn) add(v parquet.Value) {
	if c.typ != traceql.TypeString {
		c.ints = append(c.ints, v.Int64())
		return
	}
	b := v.ByteArray()
	id, ok := c.index[string(b)]
	if !ok {
		id = uint32(len(c.dict))
		s := string(b)
		c.dict = append(c.dict, s)
		c.index[s] = id
	}
	c.ids = append(c.ids, id)
}

func (c *rgColumn) len() int {
	if c.typ == traceql.TypeString {
		return len(c.ids)
	}
	return len(c.ints)
}

// tagValuesQuery answers a tag-values request narrowed by q from columns
// (see above); ok is false when it does not apply.
func (e *Engine) tagValuesQuery(ctx context.Context, tenant string, metas []*block.Meta, head HeadSource, req TagValuesRequest, attr *traceql.Attribute) (*TagValuesResponse, bool, error) {
	if !req.V2 || e.opts.Generic {
		return nil, false, nil
	}
	p, ok := newQTagPlan(req.Query, attr)
	if !ok || !allVParquet4(metas) {
		return nil, false, nil
	}
	var mu sync.Mutex
	seen := map[TagValue]bool{}
	add := func(s traceql.Static) {
		if s.Type == traceql.TypeString && s.S == "" && attr.Intrinsic != traceql.IntrinsicName {
			return // no value
		}
		if tv, ok := columnTagValue(s); ok {
			seen[tv] = true
		}
	}
	if head != nil {
		head.ForEachHeadTrace(tenant, func(id block.TraceID, parts []ptrace.Traces) bool {
			td := parts[0]
			if len(parts) > 1 {
				td = blocks.Combine(parts...)
			}
			tr := &traceInfo{}
			tr.rootService, tr.rootName, _ = rootOf(td)
			visitSpans(req.Query, td, nil, func(rs ptrace.ResourceSpans, _ ptrace.ScopeSpans, sp ptrace.Span) {
				s := &pdSpan{sp: sp, res: rs.Resource().Attributes(), tr: tr}
				if v, ok := s.Attr(attr); ok {
					mu.Lock()
					add(v)
					mu.Unlock()
				}
			})
			return ctx.Err() == nil
		})
	}
	st := &stats{}
	err := e.runAll(ctx, "tag_values", metas, func(ctx context.Context, m *block.Meta) error {
		vals, err := e.blockQueryValues(ctx, m, p, req.Query.String(), st)
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		for s := range vals {
			add(s)
		}
		return nil
	}, st)
	if err != nil {
		return nil, true, err
	}
	var values []TagValue
	for v := range seen {
		values = append(values, v)
	}
	sortValues(values)
	if req.Limit > 0 && len(values) > req.Limit {
		values = values[:req.Limit]
	}
	return &TagValuesResponse{Values: values, Metrics: &Metrics{InspectedBytes: Uint64String(st.inspectedBytes.Load())}}, true, nil
}

// blockQueryValues returns the values of p's tag among the spans of block
// m that match p's filter. Blocks never change, so the answer is kept
// (with the distinct values of tagValuesFast, same bound) per block,
// query text and tag.
func (e *Engine) blockQueryValues(ctx context.Context, m *block.Meta, p *qTagPlan, qtext string, st *stats) (map[traceql.Static]bool, error) {
	key := m.String() + "/q/" + itoa(p.attrs[p.target]) + "/" + qtext
	if d, ok := e.distinct.get(key); ok {
		return d, nil
	}

	// The columns to read, each once; a span-level one enumerates spans.
	var colList []int
	enum := -1
	for _, c := range p.attrs {
		if !slices.Contains(colList, c) {
			colList = append(colList, c)
		}
		if levelOf(c) == levelSpan {
			enum = c
		}
	}
	if enum < 0 {
		enum = vparquet4.ColSpanKind
		colList = append(colList, enum)
	}
	out := map[traceql.Static]bool{}
	err := e.files.get(ctx, m).WithFile(ctx, func(f *vparquet4.File) error {
		buf := make([]parquet.Value, 1024)
		for i, rg := range f.F.RowGroups() {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			md := &f.F.Metadata().RowGroups[i]
			if err := fetchChunks(f, md, colList, st); err != nil {
				return err
			}
			st.inspectedSpans.Add(spanCount(md))
			chunks := rg.ColumnChunks()
			read := map[int]*rgColumn{}
			var spanRS, spanRow []int32
			nspans := int(spanCount(md))
			for _, c := range colList {
				rc := &rgColumn{level: levelOf(c), typ: valueTypeOf(c)}
				n := nspans
				if rc.level == levelTrace {
					n = int(md.NumRows)
				}
				if rc.typ == traceql.TypeString {
					rc.ids, rc.index = make([]uint32, 0, n), map[string]uint32{}
				} else {
					rc.ints = make([]int64, 0, n)
				}
				row, rs := -1, -1
				isEnum := c == enum
				err := readColumn(chunks[c], buf, func(v parquet.Value) {
					rep, def := v.RepetitionLevel(), v.DefinitionLevel()
					if rep == 0 {
						row++
					}
					switch rc.level {
					case levelTrace:
						rc.add(v)
					case levelResource:
						if rep <= 1 && def >= resourceDefLevel {
							rc.add(v)
						}
					default:
						if rep <= 1 && def >= resourceDefLevel {
							rs++
						}
						if def == spanDefLevel {
							rc.add(v)
							if isEnum {
								spanRS = append(spanRS, int32(rs))
								spanRow = append(spanRow, int32(row))
							}
						}
					}
				})
				if err != nil {
					f.C.DropData()
					return blkErr(m, i, err)
				}
				read[c] = rc
			}
			f.C.DropData()
			// Every column must agree on the number of spans, resources
			// and rows, else the block is not what the schema says.
			for c, rc := range read {
				want := len(spanRS)
				switch rc.level {
				case levelResource:
					want = -1
					if n := len(spanRS); n > 0 {
						want = int(spanRS[n-1]) + 1
					}
					if rc.len() < want {
						return blkErr(m, i, errors.New("resource column shorter than the spans say"))
					}
					continue
				case levelTrace:
					want = int(md.NumRows)
				}
				if rc.len() != want {
					return blkErr(m, i, errors.New("columns disagree on the number of spans (column "+itoa(c)+")"))
				}
			}
			s := &colSpan{p: p, cols: read}
			for k := range spanRS {
				s.k, s.rs, s.row = k, int(spanRS[k]), int(spanRow[k])
				if p.filter.Match(s) {
					if v, ok := s.Attr(&p.target); ok {
						out[v] = true
					}
				}
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

// readColumn calls fn for every value of a column chunk, nulls included
// (their levels say where spans and resources are), turning a panic of
// the decoder on damaged data into an error.
func readColumn(cc parquet.ColumnChunk, buf []parquet.Value, fn func(v parquet.Value)) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = errors.New("corrupt column chunk")
		}
	}()
	return pqread.ColumnValues(cc, buf, func(vals []parquet.Value) {
		for _, v := range vals {
			fn(v)
		}
	})
}
