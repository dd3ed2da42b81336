package traceql

// Span is one span as the evaluator sees it; search builds them from OTLP
// pdata (head, older formats) or from parquet columns (vParquet4).
// Implementations need not be safe for concurrent use.
type Span interface {
	// Attr returns the value of a span attribute (ScopeSpan), resource
	// attribute (ScopeResource) or intrinsic (ScopeIntrinsic; trace-level
	// intrinsics answer for the span's trace). ok is false when the span
	// has no such attribute. Unscoped attributes (ScopeNone) are never
	// asked: the evaluator asks ScopeSpan, then ScopeResource.
	Attr(a *Attribute) (v Static, ok bool)
}

// Match reports whether the filter's expression holds for s (a nil
// expression holds for every span).
func (f *SpansetFilter) Match(s Span) bool {
	if f.Expr == nil {
		return true
	}
	return evalField(f.Expr, s)
}

// Lookup resolves a (any scope, ScopeNone included) on s.
func Lookup(s Span, a *Attribute) (Static, bool) {
	if a.Scope != ScopeNone {
		return s.Attr(a)
	}
	sa := Attribute{Scope: ScopeSpan, Name: a.Name}
	if v, ok := s.Attr(&sa); ok {
		return v, true
	}
	sa.Scope = ScopeResource
	return s.Attr(&sa)
}

func evalField(e FieldExpr, s Span) bool {
	switch e := e.(type) {
	case *BinaryOp:
		switch e.Op {
		case OpAnd:
			return evalField(e.LHS, s) && evalField(e.RHS, s)
		case OpOr:
			return evalField(e.LHS, s) || evalField(e.RHS, s)
		}
		a := e.LHS.(*Attribute)
		want := e.RHS.(*Static)
		v, ok := Lookup(s, a)
		if want.Type == TypeNil {
			return ok == (e.Op == OpNeq)
		}
		if !ok {
			return false
		}
		return Compare(e, v, *want)
	case *Static:
		return e.Type == TypeBool && e.B
	}
	return false
}

// Compare applies b's comparison to an attribute value v and the literal
// want. Values of different types are unequal (and not ordered), except
// that ints and floats compare as numbers.
func Compare(b *BinaryOp, v, want Static) bool {
	switch b.Op {
	case OpRegex, OpNotRegex:
		if v.Type != TypeString {
			return false
		}
		return b.Regexp.MatchString(v.S) == (b.Op == OpRegex)
	}
	c, ok := cmp(v, want)
	if !ok {
		return false
	}
	switch b.Op {
	case OpEq:
		return c == 0
	case OpNeq:
		return c != 0
	case OpGt:
		return c > 0
	case OpGte:
		return c >= 0
	case OpLt:
		return c < 0
	case OpLte:
		return c <= 0
	}
	return false
}

func sign[T int64 | float64 | string](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// cmp orders v against w; ok is false when they cannot be compared.
func cmp(v, w Static) (int, bool) {
	if v.Type == TypeInt && w.Type == TypeFloat {
		return sign(float64(v.I), w.F), true
	}
	if v.Type == TypeFloat && w.Type == TypeInt {
		return sign(v.F, float64(w.I)), true
	}
	if v.Type != w.Type {
		return 0, false
	}
	switch v.Type {
	case TypeString:
		return sign(v.S, w.S), true
	case TypeInt, TypeStatus, TypeKind:
		return sign(v.I, w.I), true
	case TypeFloat:
		if v.F != v.F || w.F != w.F { // NaN
			return 0, false
		}
		return sign(v.F, w.F), true
	case TypeDuration:
		return sign(int64(v.D), int64(w.D)), true
	case TypeBool:
		a, b := int64(0), int64(0)
		if v.B {
			a = 1
		}
		if w.B {
			b = 1
		}
		return sign(a, b), true
	}
	return 0, false
}

// Eval evaluates a spanset expression over the spans of one trace and
// returns the indices (ascending) of the spans it selects; nil when the
// trace does not match.
func Eval(e SpansetExpr, spans []Span) []int {
	sel := evalSet(e, spans)
	if sel == nil {
		return nil
	}
	var out []int
	for i, ok := range sel {
		if ok {
			out = append(out, i)
		}
	}
	return out
}

// evalSet returns a selection mask, nil when nothing is selected.
func evalSet(e SpansetExpr, spans []Span) []bool {
	switch e := e.(type) {
	case *SpansetFilter:
		var sel []bool
		for i, s := range spans {
			if e.Match(s) {
				if sel == nil {
					sel = make([]bool, len(spans))
				}
				sel[i] = true
			}
		}
		return sel
	case *SpansetOp:
		l := evalSet(e.LHS, spans)
		if e.Op == OpAnd && l == nil {
			return nil
		}
		r := evalSet(e.RHS, spans)
		if e.Op == OpAnd && r == nil {
			return nil
		}
		if l == nil {
			return r
		}
		if r == nil {
			return l
		}
		for i := range l {
			l[i] = l[i] || r[i]
		}
		return l
	}
	return nil
}

// Filters returns the spanset filters of e, left to right.
func Filters(e SpansetExpr) []*SpansetFilter {
	switch e := e.(type) {
	case *SpansetFilter:
		return []*SpansetFilter{e}
	case *SpansetOp:
		return append(Filters(e.LHS), Filters(e.RHS)...)
	}
	return nil
}

// Attributes returns every attribute q refers to (filters, select, by),
// in order of appearance, without repeats; search uses it to decide which
// columns to read.
func (q *Query) Attributes() []Attribute {
	var out []Attribute
	seen := map[Attribute]bool{}
	add := func(a Attribute) {
		a.Pos = 0
		if !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	for _, f := range Filters(q.Filter) {
		walkAttrs(f.Expr, add)
	}
	for _, a := range q.Select {
		add(a)
	}
	if q.Metrics != nil {
		for _, a := range q.Metrics.By {
			add(a)
		}
	}
	return out
}

// FilterAttributes returns the attributes the filter's expression refers
// to, in order, with repeats.
func (f *SpansetFilter) Attributes() []Attribute {
	var out []Attribute
	walkAttrs(f.Expr, func(a Attribute) { out = append(out, a) })
	return out
}

func walkAttrs(e FieldExpr, fn func(Attribute)) {
	switch e := e.(type) {
	case *BinaryOp:
		walkAttrs(e.LHS, fn)
		walkAttrs(e.RHS, fn)
	case *Attribute:
		fn(*e)
	}
}
