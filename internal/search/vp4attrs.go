package search

import (
	"github.com/parquet-go/parquet-go"

	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/blocks/vparquet4"
	"github.com/tracectl/tracectl/internal/traceql"
)

// Phase 1 for attributes (span.x, resource.x, .x). vParquet4 keeps an
// attribute's value in one of three places (TEMPO-FORMAT.md §3.5–3.7): a
// fixed column (resource service.name, cluster, …, k8s.*; span
// http.method, http.url as strings, http.status_code as an int), one of
// the block's dedicated string columns (meta.json dedicatedColumns), or
// the generic Attrs group (Key plus typed value lists) for everything
// else, including values of a fixed or dedicated name whose type differs.
// A condition becomes an OR of tests on those places; the generic one is
// "the row has the key" AND "some generic value of the row compares true",
// a superset that phase 2 makes exact.

// Leaf columns of the generic attribute groups and the fixed and
// dedicated columns (see vparquet4's schema; fixed by the format).
const (
	colResAttrKey       = 10
	colResAttrValue     = 12
	colResAttrInt       = 13
	colResAttrDouble    = 14
	colResAttrBool      = 15
	colResDedicated     = 27 // String01 … String10: 27–36
	colSpanAttrKey      = 59
	colSpanAttrValue    = 61
	colSpanAttrInt      = 62
	colSpanAttrDouble   = 63
	colSpanAttrBool     = 64
	colSpanHTTPMethod   = 90
	colSpanHTTPURL      = 91
	colSpanHTTPStatus   = 92
	colSpanDedicated    = 93 // String01 … String10: 93–102
	maxDedicatedColumns = 10
)

// resourceFixedCols are the resource attributes with string columns.
var resourceFixedCols = map[string]int{
	"service.name": vparquet4.ColServiceName, "cluster": 19, "namespace": 20, "pod": 21, "container": 22,
	"k8s.cluster.name": 23, "k8s.namespace.name": 24, "k8s.pod.name": 25, "k8s.container.name": 26,
}

// dedicatedSlots maps a block's dedicated attribute names to their
// columns, per scope, as the writer assigns them (k-th entry of a scope,
// k-th column).
type dedicatedSlots struct{ span, resource map[string]int }

func newDedicatedSlots(m *block.Meta) dedicatedSlots {
	d := dedicatedSlots{span: map[string]int{}, resource: map[string]int{}}
	for _, c := range vparquet4.FilterDedicatedColumns(m.DedicatedColumns) {
		switch c.Scope {
		case block.ScopeSpan:
			if len(d.span) < maxDedicatedColumns {
				d.span[c.Name] = colSpanDedicated + len(d.span)
			}
		case block.ScopeResource:
			if len(d.resource) < maxDedicatedColumns {
				d.resource[c.Name] = colResDedicated + len(d.resource)
			}
		}
	}
	return d
}

func intConv(v parquet.Value) traceql.Static {
	return traceql.Static{Type: traceql.TypeInt, I: v.Int64()}
}

func floatConv(v parquet.Value) traceql.Static {
	return traceql.Static{Type: traceql.TypeFloat, F: v.Double()}
}

func boolConv(v parquet.Value) traceql.Static {
	return traceql.Static{Type: traceql.TypeBool, B: v.Boolean()}
}

// keyEq is the test "the generic group has this key".
func keyEq(name string) *traceql.BinaryOp {
	return &traceql.BinaryOp{Op: traceql.OpEq, RHS: &traceql.Static{Type: traceql.TypeString, S: name}}
}

// attrCand builds the candidate tree of `a op lit` for an attribute of
// scope span or resource (unscoped: either); nil when phase 1 cannot
// help (the condition may hold for any row).
func (vp *vp4Plan) attrCand(a *traceql.Attribute, e *traceql.BinaryOp) *cand {
	switch a.Scope {
	case traceql.ScopeNone:
		l := vp.scopedCand(traceql.ScopeSpan, a.Name, e)
		r := vp.scopedCand(traceql.ScopeResource, a.Name, e)
		if l == nil || r == nil {
			return nil
		}
		return &cand{op: traceql.OpOr, l: l, r: r}
	case traceql.ScopeSpan, traceql.ScopeResource:
		return vp.scopedCand(a.Scope, a.Name, e)
	}
	return nil
}

func (vp *vp4Plan) leaf(col int, op *traceql.BinaryOp, conv func(parquet.Value) traceql.Static) *cand {
	vp.tests = append(vp.tests, colTest{col: col, op: op, conv: conv})
	return &cand{test: len(vp.tests) - 1}
}

func or(l, r *cand) *cand {
	switch {
	case l == nil:
		return r
	case r == nil:
		return l
	}
	return &cand{op: traceql.OpOr, l: l, r: r}
}

// never is a candidate no row satisfies.
var never = &cand{test: -2}

func (vp *vp4Plan) scopedCand(scope traceql.Scope, name string, e *traceql.BinaryOp) *cand {
	lit := e.RHS.(*traceql.Static)
	var fixedCol int
	fixedType := traceql.TypeString
	hasFixed := false
	key, vals := colSpanAttrKey, [4]int{colSpanAttrValue, colSpanAttrInt, colSpanAttrDouble, colSpanAttrBool}
	if scope == traceql.ScopeResource {
		key, vals = colResAttrKey, [4]int{colResAttrValue, colResAttrInt, colResAttrDouble, colResAttrBool}
		if c, ok := resourceFixedCols[name]; ok {
			fixedCol, hasFixed = c, true
		} else if c, ok := vp.ded.resource[name]; ok {
			fixedCol, hasFixed = c, true
		}
	} else {
		switch name {
		case "http.method":
			fixedCol, hasFixed = colSpanHTTPMethod, true
		case "http.url":
			fixedCol, hasFixed = colSpanHTTPURL, true
		case "http.status_code":
			fixedCol, hasFixed, fixedType = colSpanHTTPStatus, true, traceql.TypeInt
		default:
			if c, ok := vp.ded.span[name]; ok {
				fixedCol, hasFixed = c, true
			}
		}
	}
	// Which stored types can compare true with the literal (ints and
	// floats compare as numbers; regexes only match strings).
	var types []traceql.StaticType
	switch lit.Type {
	case traceql.TypeString:
		types = []traceql.StaticType{traceql.TypeString}
	case traceql.TypeInt, traceql.TypeFloat:
		types = []traceql.StaticType{traceql.TypeInt, traceql.TypeFloat}
	case traceql.TypeBool:
		types = []traceql.StaticType{traceql.TypeBool}
	default:
		return nil
	}
	if e.Op == traceql.OpRegex || e.Op == traceql.OpNotRegex {
		types = []traceql.StaticType{traceql.TypeString}
	}
	var out *cand
	var generic *cand
	for _, t := range types {
		if hasFixed && t == fixedType {
			conv := strConv
			if t == traceql.TypeInt {
				conv = intConv
			}
			out = or(out, vp.leaf(fixedCol, e, conv))
			continue // values of the fixed type are never in the generic group
		}
		switch t {
		case traceql.TypeString:
			generic = or(generic, vp.leaf(vals[0], e, strConv))
		case traceql.TypeInt:
			generic = or(generic, vp.leaf(vals[1], e, intConv))
		case traceql.TypeFloat:
			generic = or(generic, vp.leaf(vals[2], e, floatConv))
		case traceql.TypeBool:
			generic = or(generic, vp.leaf(vals[3], e, boolConv))
		}
	}
	if generic != nil {
		out = or(out, &cand{op: traceql.OpAnd, l: vp.leaf(key, keyEq(name), strConv), r: generic})
	}
	if out == nil {
		return never
	}
	return out
}
