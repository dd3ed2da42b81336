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
	return false
}

// Eval evaluates a spanset expression over the spans of one trace and
// returns the indices (ascending) of the spans it selects; nil when the
// trace does not match.
func Eval(e SpansetExpr, spans []Span) []int {
	return nil
}

// Filters returns the spanset filters of e, left to right.
func Filters(e SpansetExpr) []*SpansetFilter {
	return nil
}

// Attributes returns every attribute q refers to (filters, select, by),
// in order of appearance, without repeats; search uses it to decide which
// columns to read.
func (q *Query) Attributes() []Attribute {
	return nil
}
