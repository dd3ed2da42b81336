// Package traceql parses the subset of TraceQL that tracectl answers and
// evaluates it over spans. It owns the grammar, the syntax tree, error
// positions and the matching rules (comparisons, spanset operators); it
// does not read blocks or know any storage format: callers hand it spans
// through the Span interface.
//
// The subset: spanset filters `{ ... }` combining field expressions with
// `&&`, `||` and parentheses; spanset operators `&&` and `||` between
// filters; attributes `span.x`, `resource.x` and unscoped `.x`; intrinsics
// name, status, statusMessage, kind, duration, rootName, rootServiceName,
// traceDuration (and Tempo's colon forms span:name, trace:rootService, …);
// comparisons = != > >= < <= =~ !~ against strings, integers, floats,
// booleans, durations, status and kind keywords and nil; a trailing
// `| select(...)`; and for metrics queries `| rate()`,
// `| count_over_time()` or `| min_over_time(x)` (max_, avg_) with an
// optional `by(...)`. Anything else is a
// *ParseError naming the construct and its position.
package traceql

import (
	"regexp"
	"time"
)

// Query is one parsed TraceQL query.
type Query struct {
	// Text is the query as given.
	Text string
	// Filter selects spans and traces; `{}` is a filter whose Expr is nil.
	Filter SpansetExpr
	// Select lists the attributes of `| select(...)`: they are returned
	// with the matched spans (Tempo's behaviour), they do not filter.
	Select []Attribute
	// Metrics is the metrics stage (`| rate()`, `| count_over_time()`),
	// nil for a search query.
	Metrics *MetricsStage
}

// SpansetExpr is a spanset filter or an operator between two spanset
// expressions (*SpansetFilter or *SpansetOp).
type SpansetExpr interface {
	spansetExpr()
	String() string
}

// SpansetFilter is `{ expr }`: the spans of a trace for which Expr is
// true. A nil Expr (`{}`) matches every span.
type SpansetFilter struct {
	Expr FieldExpr
	Pos  int // byte offset of '{'
}

// SpansetOp combines two spanset expressions: OpAnd is true for a trace
// when both sides match spans in it (the result is their union), OpOr
// when either does.
type SpansetOp struct {
	Op       Op // OpAnd or OpOr
	LHS, RHS SpansetExpr
	Pos      int
}

func (*SpansetFilter) spansetExpr() {}
func (*SpansetOp) spansetExpr()     {}

// FieldExpr is an expression over one span: *BinaryOp, *Attribute or
// *Static.
type FieldExpr interface {
	fieldExpr()
	String() string
}

// BinaryOp is a logical (OpAnd, OpOr) or comparison operator. For =~ and
// !~ Regexp holds the compiled right-hand side (anchored, as Tempo's).
type BinaryOp struct {
	Op       Op
	LHS, RHS FieldExpr
	Pos      int
	Regexp   *regexp.Regexp
}

func (*BinaryOp) fieldExpr()  {}
func (*Attribute) fieldExpr() {}
func (*Static) fieldExpr()    {}

// Op is an operator.
type Op int

// Operators.
const (
	OpNone Op = iota
	OpAnd
	OpOr
	OpEq
	OpNeq
	OpGt
	OpGte
	OpLt
	OpLte
	OpRegex
	OpNotRegex
)

// Scope is where an attribute is looked up.
type Scope int

// Attribute scopes. ScopeNone is the unscoped `.x` form (span first, then
// resource); ScopeIntrinsic marks Attribute.Intrinsic.
const (
	ScopeNone Scope = iota
	ScopeSpan
	ScopeResource
	ScopeIntrinsic
)

// Intrinsic is a built-in field of a span or trace.
type Intrinsic int

// Intrinsics. The trace-level ones (RootName, RootServiceName,
// TraceDuration) have the same value for every span of a trace.
const (
	IntrinsicNone Intrinsic = iota
	IntrinsicName
	IntrinsicStatus
	IntrinsicStatusMessage
	IntrinsicKind
	IntrinsicDuration
	IntrinsicRootName
	IntrinsicRootServiceName
	IntrinsicTraceDuration
)

// Attribute names a span attribute, resource attribute or intrinsic.
type Attribute struct {
	Scope     Scope
	Name      string    // attribute key (empty for intrinsics)
	Intrinsic Intrinsic // set when Scope is ScopeIntrinsic
	Pos       int
}

// StaticType is the type of a literal or attribute value.
type StaticType int

// Value types. TypeNil is the literal nil (an attribute that is absent).
const (
	TypeNil StaticType = iota
	TypeString
	TypeInt
	TypeFloat
	TypeBool
	TypeDuration
	TypeStatus
	TypeKind
)

// Status values (OTLP status codes).
const (
	StatusUnset = 0
	StatusOK    = 1
	StatusError = 2
)

// Static is a value: a literal of the query, or an attribute's value
// handed to the evaluator by a Span.
type Static struct {
	Type StaticType
	S    string
	I    int64 // ints; status and kind codes (OTLP numbering)
	F    float64
	B    bool
	D    time.Duration
	Pos  int
}

// MetricsStage is `| rate()`, `| count_over_time()` or
// `| min_over_time(attr)` (also max_, avg_) with an optional
// `by(attr, ...)`.
type MetricsStage struct {
	Func string // "rate", "count_over_time", "min_over_time", "max_over_time", "avg_over_time"
	// Attr is the aggregated attribute of the _over_time functions other
	// than count (duration, traceDuration or a numeric attribute).
	Attr *Attribute
	By   []Attribute
	Pos  int
}

// ParseError is a query outside the grammar or the supported subset. Pos
// is a byte offset into the query; Line and Col (1-based, columns in
// runes) say the same for people.
type ParseError struct {
	Pos, Line, Col int
	Msg            string
}

func (e *ParseError) Error() string {
	return "parse error at line " + itoa(e.Line) + ", col " + itoa(e.Col) + ": " + e.Msg
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b [20]byte
	n := len(b)
	neg := i < 0
	if neg {
		i = -i
	}
	for i > 0 {
		n--
		b[n] = byte('0' + i%10)
		i /= 10
	}
	if neg {
		n--
		b[n] = '-'
	}
	return string(b[n:])
}
