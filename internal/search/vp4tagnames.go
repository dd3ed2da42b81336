package search

import (
	"context"
	"errors"
	"strings"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"

	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/blocks/pqread"
	"github.com/tracectl/tracectl/internal/blocks/vparquet4"
	"github.com/tracectl/tracectl/internal/traceql"
)

// Tag names of vParquet4 blocks from columns, without converting a row:
// what Grafana asks first when Explore opens (/api/v2/search/tags). An
// attribute name is in a block when
//   - it is a key of a generic attribute group: the distinct values of the
//     Key columns (resource, scope, span, event, link), from their
//     dictionaries (blockDistinct, cached per block and column);
//   - or a fixed column (resource service.name, cluster, …, k8s.*; span
//     http.method, http.url, http.status_code) or one of the block's
//     dedicated columns holds a value: known from the footer's statistics
//     (min/max present, or every value null), read only when they do not
//     tell.

// Leaf columns of the Key of each generic attribute group.
const (
	colScopeAttrKey = 39
	colEventAttrKey = 69
	colLinkAttrKey  = 81
)

var keyColumns = []struct {
	col   int
	scope string
}{
	{colResAttrKey, ScopeResource},
	{colScopeAttrKey, ScopeInstrumentation},
	{colSpanAttrKey, ScopeSpan},
	{colEventAttrKey, ScopeEvent},
	{colLinkAttrKey, ScopeLink},
}

type scopedName struct{ scope, name string }

// valueColumns are the fixed and dedicated columns of block m, each with
// the attribute it holds.
func valueColumns(m *block.Meta) map[int]scopedName {
	out := map[int]scopedName{
		colSpanHTTPMethod: {ScopeSpan, "http.method"},
		colSpanHTTPURL:    {ScopeSpan, "http.url"},
		colSpanHTTPStatus: {ScopeSpan, "http.status_code"},
	}
	for name, c := range resourceFixedCols {
		out[c] = scopedName{ScopeResource, name}
	}
	ded := newDedicatedSlots(m)
	for name, c := range ded.resource {
		out[c] = scopedName{ScopeResource, name}
	}
	for name, c := range ded.span {
		out[c] = scopedName{ScopeSpan, name}
	}
	return out
}

// blockTagNames returns the attribute names of block m, each as a string
// Static "scope\x00name" (the form the distinct cache keeps).
func (e *Engine) blockTagNames(ctx context.Context, m *block.Meta) (map[traceql.Static]bool, error) {
	key := m.String() + "/tagnames"
	if d, ok := e.distinct.get(key); ok {
		return d, nil
	}
	out := map[traceql.Static]bool{}
	add := func(scope, name string) {
		out[traceql.Static{Type: traceql.TypeString, S: scope + "\x00" + name}] = true
	}
	for _, kc := range keyColumns {
		keys, err := e.blockDistinct(ctx, m, kc.col, strConv, 0)
		if err != nil {
			return nil, err
		}
		for k := range keys {
			add(kc.scope, k.S)
		}
	}
	pending := valueColumns(m)
	err := e.files.get(ctx, m).WithFile(ctx, func(f *vparquet4.File) error {
		for i, rg := range f.F.RowGroups() {
			if len(pending) == 0 {
				return nil
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			md := &f.F.Metadata().RowGroups[i]
			var unsure []int
			for c, sn := range pending {
				switch hasValues(md, c) {
				case yes:
					add(sn.scope, sn.name)
					delete(pending, c)
				case unknown:
					unsure = append(unsure, c)
				}
			}
			if len(unsure) == 0 {
				continue
			}
			if err := fetchChunks(f, md, unsure, &stats{}); err != nil {
				return err
			}
			for _, c := range unsure {
				found, err := anyValue(rg.ColumnChunks()[c], c == vparquet4.ColServiceName)
				if err != nil {
					f.C.DropData()
					return blkErr(m, i, err)
				}
				if found {
					sn := pending[c]
					add(sn.scope, sn.name)
					delete(pending, c)
				}
			}
			f.C.DropData()
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	e.distinct.put(key, out)
	return out, nil
}

type tristate int

const (
	no tristate = iota
	yes
	unknown
)

// hasValues tells from the footer whether column c of a row group holds a
// value: min/max statistics exist only for non-null values; a null count
// equal to the value count means none. Required service.name is "" where
// a resource has none, so for it only a non-empty maximum says yes.
func hasValues(md *format.RowGroup, c int) tristate {
	if c >= len(md.Columns) {
		return no
	}
	cm := md.Columns[c].MetaData
	if cm.NumValues == 0 {
		return no
	}
	st := cm.Statistics
	if len(st.MaxValue) > 0 || len(st.Max) > 0 {
		return yes
	}
	if st.NullCount == cm.NumValues {
		return no
	}
	return unknown
}

// anyValue reads a column chunk until it finds a non-null value (for
// service.name, a non-empty one).
func anyValue(cc parquet.ColumnChunk, nonEmpty bool) (found bool, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = errors.New("corrupt column chunk")
		}
	}()
	err = pqread.ColumnValues(cc, make([]parquet.Value, 256), func(vals []parquet.Value) {
		for _, v := range vals {
			if !v.IsNull() && (!nonEmpty || len(v.ByteArray()) > 0) {
				found = true
			}
		}
	})
	return found, err
}

// tagNamesFromBlocks adds the names of every block to add, when all are
// vParquet4 and no query narrows the spans; ok is false otherwise.
func (e *Engine) tagNamesFromBlocks(ctx context.Context, metas []*block.Meta, req TagsRequest, add func(scope, name string)) (ok bool, err error) {
	if e.opts.Generic {
		return false, nil
	}
	if req.Query != nil {
		if f, isFilter := req.Query.Filter.(*traceql.SpansetFilter); !isFilter || f.Expr != nil {
			return false, nil
		}
	}
	if !allVParquet4(metas) {
		return false, nil
	}
	st := &stats{}
	err = e.runAll(ctx, "tags", metas, func(ctx context.Context, m *block.Meta) error {
		names, err := e.blockTagNames(ctx, m)
		if err != nil {
			return err
		}
		for s := range names {
			scope, name, _ := strings.Cut(s.S, "\x00")
			add(scope, name)
		}
		return nil
	}, st)
	return true, err
}
