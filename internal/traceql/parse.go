package traceql

import (
	"regexp"
	"strconv"
	"strings"
	"time"
)

// MaxQueryBytes bounds the query text Parse accepts.
const MaxQueryBytes = 64 << 10

// maxDepth bounds nesting (parentheses, braces) so hostile input cannot
// exhaust the stack.
const maxDepth = 100

// Parse parses a TraceQL query strictly: anything outside the supported
// subset is a *ParseError naming the construct and where it starts.
func Parse(q string) (*Query, error) {
	query, err := parse(q)
	if err != nil {
		return nil, err
	}
	return query, nil
}

func parse(q string) (*Query, *ParseError) {
	if len(q) > MaxQueryBytes {
		return nil, newError(q, 0, "query is "+strconv.Itoa(len(q))+" bytes; at most "+strconv.Itoa(MaxQueryBytes)+" are accepted")
	}
	toks, err := lex(q)
	if err != nil {
		return nil, err
	}
	p := &parser{src: q, toks: toks}
	return p.query()
}

// ParseLenient parses the unfinished text of an editor, as Grafana's
// autocomplete sends it (`{ resource.service.name = }`): conditions that
// are incomplete or invalid are dropped, the rest is kept. It never fails
// for text that starts with a spanset filter (the result may be `{}`); for
// other text it returns the error of Parse.
func ParseLenient(q string) (*Query, error) {
	query, err := parse(q)
	if err == nil {
		return query, nil
	}
	trimmed := strings.TrimSpace(q)
	if !strings.HasPrefix(trimmed, "{") {
		return nil, err
	}
	// Keep the conditions of the first filter that parse on their own.
	body := trimmed[1:]
	if i := strings.IndexByte(body, '}'); i >= 0 {
		body = body[:i]
	}
	var kept []string
	for _, part := range splitTopLevel(body) {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if _, perr := parse("{" + part + "}"); perr == nil {
			kept = append(kept, part)
		}
	}
	text := "{" + strings.Join(kept, " && ") + "}"
	if len(kept) == 0 {
		text = "{}"
	}
	query, err2 := parse(text)
	if err2 != nil {
		return parse("{}")
	}
	query.Text = text
	return query, nil
}

// splitTopLevel splits a filter body at && outside parentheses and strings.
func splitTopLevel(s string) []string {
	var parts []string
	depth, last := 0, 0
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == '\\' && quote == '"' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '"' || c == '`':
			quote = c
		case c == '(':
			depth++
		case c == ')':
			depth--
		case c == '&' && depth == 0 && i+1 < len(s) && s[i+1] == '&':
			parts = append(parts, s[last:i])
			last = i + 2
			i++
		}
	}
	return append(parts, s[last:])
}

type parser struct {
	src   string
	toks  []token
	i     int
	depth int
}

func (p *parser) peek() token { return p.toks[p.i] }
func (p *parser) take() token {
	t := p.toks[p.i]
	if t.kind != tEOF {
		p.i++
	}
	return t
}

func (p *parser) errAt(pos int, msg string) *ParseError { return newError(p.src, pos, msg) }

func (p *parser) unexpected(t token) *ParseError {
	if t.kind == tOther {
		return p.unsupportedOp(t)
	}
	return p.errAt(t.pos, "syntax error: unexpected "+t.describe())
}

func (p *parser) unsupportedOp(t token) *ParseError {
	switch t.text {
	case ">>", "<<", "~", "!>", "!<", "~~", "&>", "&<", "&~":
		return p.errAt(t.pos, "unsupported: structural operator "+t.text+" (tracectl supports the spanset operators && and ||)")
	case "+", "-", "*", "/", "%", "^":
		return p.errAt(t.pos, "unsupported: arithmetic operator "+t.text)
	}
	return p.errAt(t.pos, "syntax error: unexpected "+t.text)
}

func (p *parser) expect(k tokKind, what string) (token, *ParseError) {
	t := p.take()
	if t.kind != k {
		if t.kind == tOther {
			return t, p.unsupportedOp(t)
		}
		return t, p.errAt(t.pos, "syntax error: unexpected "+t.describe()+", expecting "+what)
	}
	return t, nil
}

func (p *parser) enter(pos int) *ParseError {
	p.depth++
	if p.depth > maxDepth {
		return p.errAt(pos, "query nests deeper than "+strconv.Itoa(maxDepth)+" levels")
	}
	return nil
}

func (p *parser) query() (*Query, *ParseError) {
	q := &Query{Text: p.src}
	if p.peek().kind == tEOF {
		return nil, p.errAt(0, "syntax error: empty query; a search starts with a spanset filter such as {}")
	}
	f, err := p.spansetOr()
	if err != nil {
		return nil, err
	}
	q.Filter = f
	for p.peek().kind == tPipe {
		p.take()
		if err := p.pipelineStage(q); err != nil {
			return nil, err
		}
	}
	if t := p.peek(); t.kind != tEOF {
		if t.kind == tIdent && t.text == "by" {
			return nil, p.errAt(t.pos, "syntax error: by(...) must follow a metrics function such as rate()")
		}
		return nil, p.unexpected(t)
	}
	return q, nil
}

var metricsFuncs = map[string]bool{"rate": true, "count_over_time": true,
	"min_over_time": true, "max_over_time": true, "avg_over_time": true}

// overTimeFuncs take the attribute they aggregate: `min_over_time(duration)`.
var overTimeFuncs = map[string]bool{"min_over_time": true, "max_over_time": true, "avg_over_time": true}
var unsupportedStages = map[string]string{
	"count": "aggregate count()", "avg": "aggregate avg()", "sum": "aggregate sum()", "min": "aggregate min()", "max": "aggregate max()",
	"by": "grouping by()", "coalesce": "coalesce()",
	"sum_over_time": "metrics function sum_over_time()", "quantile_over_time": "metrics function quantile_over_time()",
	"histogram_over_time": "metrics function histogram_over_time()", "compare": "metrics function compare()",
	"topk": "topk()", "bottomk": "bottomk()",
}

func (p *parser) pipelineStage(q *Query) *ParseError {
	t := p.take()
	if t.kind == tLBrace {
		return p.errAt(t.pos, "unsupported: a spanset filter after | (pipelines of filters); combine the conditions in one filter with &&")
	}
	if t.kind != tIdent {
		return p.errAt(t.pos, "syntax error: unexpected "+t.describe()+" after |, expecting select() or a metrics function such as rate()")
	}
	if q.Metrics != nil {
		return p.errAt(t.pos, "syntax error: nothing may follow the metrics function "+q.Metrics.Func+"()")
	}
	switch {
	case t.text == "select":
		attrs, err := p.attrList()
		if err != nil {
			return err
		}
		q.Select = append(q.Select, attrs...)
		return nil
	case metricsFuncs[t.text]:
		if _, err := p.expect(tLParen, "("); err != nil {
			return err
		}
		m := &MetricsStage{Func: t.text, Pos: t.pos}
		if overTimeFuncs[t.text] {
			at := p.take()
			a, err := p.attribute(at)
			if err != nil {
				return err
			}
			if a == nil {
				return p.errAt(at.pos, "syntax error: unexpected "+at.describe()+", expecting the attribute "+t.text+"() aggregates, such as duration")
			}
			if a.Scope == ScopeIntrinsic && a.Intrinsic != IntrinsicDuration && a.Intrinsic != IntrinsicTraceDuration {
				return p.errAt(at.pos, "unsupported: "+t.text+"() over "+at.text+"; it aggregates duration, traceDuration or a numeric attribute")
			}
			m.Attr = a
		}
		if _, err := p.expect(tRParen, ")"); err != nil {
			return err
		}
		if b := p.peek(); b.kind == tIdent && b.text == "by" {
			p.take()
			attrs, err := p.attrList()
			if err != nil {
				return err
			}
			m.By = attrs
		}
		q.Metrics = m
		return nil
	}
	if what, ok := unsupportedStages[t.text]; ok {
		return p.errAt(t.pos, "unsupported: "+what)
	}
	return p.errAt(t.pos, "syntax error: unknown pipeline stage "+strconv.Quote(t.text)+", expecting select() or a metrics function such as rate()")
}

// attrList reads `( attr, attr, … )`.
func (p *parser) attrList() ([]Attribute, *ParseError) {
	if _, err := p.expect(tLParen, "("); err != nil {
		return nil, err
	}
	var out []Attribute
	for {
		t := p.take()
		a, err := p.attribute(t)
		if err != nil {
			return nil, err
		}
		if a == nil {
			return nil, p.errAt(t.pos, "syntax error: unexpected "+t.describe()+", expecting an attribute")
		}
		out = append(out, *a)
		n := p.take()
		if n.kind == tRParen {
			return out, nil
		}
		if n.kind != tComma {
			return nil, p.errAt(n.pos, "syntax error: unexpected "+n.describe()+", expecting , or )")
		}
	}
}

// spansetOr: spansetAnd { || spansetAnd }
func (p *parser) spansetOr() (SpansetExpr, *ParseError) {
	l, err := p.spansetAnd()
	if err != nil {
		return nil, err
	}
	for p.peek().kind == tOr {
		op := p.take()
		r, err := p.spansetAnd()
		if err != nil {
			return nil, err
		}
		l = &SpansetOp{Op: OpOr, LHS: l, RHS: r, Pos: op.pos}
	}
	return l, nil
}

func (p *parser) spansetAnd() (SpansetExpr, *ParseError) {
	l, err := p.spansetTerm()
	if err != nil {
		return nil, err
	}
	for {
		t := p.peek()
		switch t.kind {
		case tAnd:
			p.take()
			r, err := p.spansetTerm()
			if err != nil {
				return nil, err
			}
			l = &SpansetOp{Op: OpAnd, LHS: l, RHS: r, Pos: t.pos}
			continue
		case tGt, tLt, tOther:
			if t.kind == tOther && !strings.ContainsAny(t.text, "~<>") {
				return l, nil
			}
			return nil, p.errAt(t.pos, "unsupported: structural operator "+t.text+" (tracectl supports the spanset operators && and ||)")
		}
		return l, nil
	}
}

func (p *parser) spansetTerm() (SpansetExpr, *ParseError) {
	t := p.take()
	switch t.kind {
	case tLParen:
		if err := p.enter(t.pos); err != nil {
			return nil, err
		}
		e, err := p.spansetOr()
		if err != nil {
			return nil, err
		}
		if _, err := p.expect(tRParen, ")"); err != nil {
			return nil, err
		}
		p.depth--
		return e, nil
	case tLBrace:
		if err := p.enter(t.pos); err != nil {
			return nil, err
		}
		f := &SpansetFilter{Pos: t.pos}
		if p.peek().kind != tRBrace {
			e, err := p.fieldOr()
			if err != nil {
				return nil, err
			}
			f.Expr = e
		}
		if _, err := p.expect(tRBrace, "}"); err != nil {
			return nil, err
		}
		p.depth--
		return f, nil
	case tIdent:
		if metricsFuncs[t.text] || unsupportedStages[t.text] != "" || t.text == "select" {
			return nil, p.errAt(t.pos, "syntax error: "+t.text+" must follow a spanset filter and |, as in {} | "+t.text+"()")
		}
	}
	if t.kind == tEOF {
		return nil, p.errAt(t.pos, "syntax error: unexpected end of query, expecting a spanset filter {…}")
	}
	return nil, p.errAt(t.pos, "syntax error: unexpected "+t.describe()+", expecting a spanset filter {…}")
}

// fieldOr: fieldAnd { || fieldAnd }
func (p *parser) fieldOr() (FieldExpr, *ParseError) {
	l, err := p.fieldAnd()
	if err != nil {
		return nil, err
	}
	for p.peek().kind == tOr {
		op := p.take()
		r, err := p.fieldAnd()
		if err != nil {
			return nil, err
		}
		l = &BinaryOp{Op: OpOr, LHS: l, RHS: r, Pos: op.pos}
	}
	return l, nil
}

func (p *parser) fieldAnd() (FieldExpr, *ParseError) {
	l, err := p.fieldUnary()
	if err != nil {
		return nil, err
	}
	for p.peek().kind == tAnd {
		op := p.take()
		r, err := p.fieldUnary()
		if err != nil {
			return nil, err
		}
		l = &BinaryOp{Op: OpAnd, LHS: l, RHS: r, Pos: op.pos}
	}
	return l, nil
}

func (p *parser) fieldUnary() (FieldExpr, *ParseError) {
	t := p.peek()
	switch t.kind {
	case tLParen:
		p.take()
		if err := p.enter(t.pos); err != nil {
			return nil, err
		}
		e, err := p.fieldOr()
		if err != nil {
			return nil, err
		}
		if _, err := p.expect(tRParen, ")"); err != nil {
			return nil, err
		}
		p.depth--
		return e, nil
	case tNot:
		return nil, p.errAt(t.pos, "unsupported: negation ! (use != or !~)")
	}
	return p.comparison()
}

var compareOps = map[tokKind]Op{tEq: OpEq, tNeq: OpNeq, tGt: OpGt, tGte: OpGte, tLt: OpLt, tLte: OpLte, tRegex: OpRegex, tNotRegex: OpNotRegex}

var opText = map[Op]string{OpAnd: "&&", OpOr: "||", OpEq: "=", OpNeq: "!=", OpGt: ">", OpGte: ">=", OpLt: "<", OpLte: "<=", OpRegex: "=~", OpNotRegex: "!~"}

func (p *parser) comparison() (FieldExpr, *ParseError) {
	lt := p.take()
	lhs, err := p.operand(lt)
	if err != nil {
		return nil, err
	}
	opTok := p.peek()
	op, ok := compareOps[opTok.kind]
	if !ok {
		if s, isStatic := lhs.(*Static); isStatic && s.Type == TypeBool {
			return s, nil
		}
		if opTok.kind == tOther {
			return nil, p.unsupportedOp(opTok)
		}
		if a, isAttr := lhs.(*Attribute); isAttr {
			if opTok.kind == tRBrace || opTok.kind == tAnd || opTok.kind == tOr || opTok.kind == tRParen {
				return nil, p.errAt(opTok.pos, "syntax error: unexpected "+opTok.describe()+": "+a.String()+" must be compared with a value (e.g. "+a.String()+" != nil)")
			}
		}
		return nil, p.errAt(opTok.pos, "syntax error: unexpected "+opTok.describe()+", expecting a comparison operator (= != > >= < <= =~ !~)")
	}
	p.take()
	rt := p.take()
	rhs, err := p.operand(rt)
	if err != nil {
		return nil, err
	}
	// Put the attribute on the left: `"x" = name` is `name = "x"`.
	if _, ok := lhs.(*Static); ok {
		if _, ok := rhs.(*Attribute); ok {
			lhs, rhs = rhs, lhs
			op = mirror(op)
		}
	}
	b := &BinaryOp{Op: op, LHS: lhs, RHS: rhs, Pos: opTok.pos}
	if err := p.check(b, rt); err != nil {
		return nil, err
	}
	if n := p.peek(); n.kind == tOther {
		return nil, p.unsupportedOp(n)
	}
	return b, nil
}

func mirror(op Op) Op {
	switch op {
	case OpGt:
		return OpLt
	case OpGte:
		return OpLte
	case OpLt:
		return OpGt
	case OpLte:
		return OpGte
	}
	return op
}

// check validates the types of a comparison and compiles regexps.
func (p *parser) check(b *BinaryOp, rt token) *ParseError {
	rs, rStatic := b.RHS.(*Static)
	ls, lStatic := b.LHS.(*Static)
	if lStatic && rStatic {
		return p.errAt(ls.Pos, "unsupported: a comparison between two values; compare an attribute or intrinsic with a value")
	}
	if !rStatic {
		return p.errAt(rt.pos, "unsupported: a comparison between two attributes; compare an attribute or intrinsic with a value")
	}
	a := b.LHS.(*Attribute)
	if b.Op == OpRegex || b.Op == OpNotRegex {
		if rs.Type != TypeString {
			return p.errAt(rs.Pos, "syntax error: "+opText[b.Op]+" needs a string pattern, got "+rs.typeName())
		}
		re, err := regexp.Compile("^(?:" + rs.S + ")$")
		if err != nil {
			return p.errAt(rs.Pos, "invalid regular expression "+strconv.Quote(rs.S)+": "+err.Error())
		}
		b.Regexp = re
	}
	if rs.Type == TypeNil && b.Op != OpEq && b.Op != OpNeq {
		return p.errAt(rs.Pos, "syntax error: nil can only be compared with = or !=")
	}
	if a.Scope != ScopeIntrinsic || rs.Type == TypeNil {
		if (rs.Type == TypeStatus || rs.Type == TypeKind) && a.Scope != ScopeIntrinsic {
			return p.errAt(rs.Pos, "syntax error: "+rs.S+" is a "+rs.typeName()+" keyword; compare it with the intrinsic "+rs.typeName()+", or quote it to compare a string")
		}
		return nil
	}
	want := intrinsicType(a.Intrinsic)
	ok := rs.Type == want
	if want == TypeDuration && rs.Type == TypeInt && rs.I == 0 {
		rs.Type, rs.D, ok = TypeDuration, 0, true
	}
	if !ok {
		return p.errAt(rs.Pos, "syntax error: "+a.String()+" is a "+typeNames[want]+" and cannot be compared with "+rs.typeName()+" "+rt.describe())
	}
	if (want == TypeStatus || want == TypeKind) && b.Op != OpEq && b.Op != OpNeq {
		return p.errAt(b.Pos, "syntax error: "+a.String()+" can only be compared with = or !=")
	}
	return nil
}

func intrinsicType(i Intrinsic) StaticType {
	switch i {
	case IntrinsicStatus:
		return TypeStatus
	case IntrinsicKind:
		return TypeKind
	case IntrinsicDuration, IntrinsicTraceDuration:
		return TypeDuration
	}
	return TypeString
}

var typeNames = map[StaticType]string{TypeNil: "nil", TypeString: "string", TypeInt: "int", TypeFloat: "float", TypeBool: "bool", TypeDuration: "duration", TypeStatus: "status", TypeKind: "kind"}

func (s *Static) typeName() string { return typeNames[s.Type] }

var statusWords = map[string]int64{"error": StatusError, "ok": StatusOK, "unset": StatusUnset}
var kindWords = map[string]int64{"unspecified": 0, "internal": 1, "server": 2, "client": 3, "producer": 4, "consumer": 5}

var intrinsics = map[string]Intrinsic{
	"name": IntrinsicName, "status": IntrinsicStatus, "statusMessage": IntrinsicStatusMessage,
	"kind": IntrinsicKind, "duration": IntrinsicDuration, "rootName": IntrinsicRootName,
	"rootServiceName": IntrinsicRootServiceName, "traceDuration": IntrinsicTraceDuration,
	"span:name": IntrinsicName, "span:status": IntrinsicStatus, "span:statusMessage": IntrinsicStatusMessage,
	"span:kind": IntrinsicKind, "span:duration": IntrinsicDuration, "trace:rootName": IntrinsicRootName,
	"trace:rootService": IntrinsicRootServiceName, "trace:duration": IntrinsicTraceDuration,
}

var unsupportedIntrinsics = map[string]bool{
	"childCount": true, "nestedSetLeft": true, "nestedSetRight": true, "nestedSetParent": true, "parent": true,
	"span:id": true, "span:parentID": true, "span:childCount": true, "trace:id": true, "event:name": true,
	"event:timeSinceStart": true, "link:spanID": true, "link:traceID": true, "instrumentation:name": true,
	"instrumentation:version": true, "id": true,
}

// attribute turns t into an attribute, or nil when it is not one.
func (p *parser) attribute(t token) (*Attribute, *ParseError) {
	switch t.kind {
	case tAttr:
		switch {
		case strings.HasPrefix(t.text, "."):
			return &Attribute{Scope: ScopeNone, Name: t.text[1:], Pos: t.pos}, nil
		case strings.HasPrefix(t.text, "span."):
			return &Attribute{Scope: ScopeSpan, Name: t.text[len("span."):], Pos: t.pos}, nil
		case strings.HasPrefix(t.text, "resource."):
			return &Attribute{Scope: ScopeResource, Name: t.text[len("resource."):], Pos: t.pos}, nil
		}
		scope := t.text[:strings.IndexByte(t.text, '.')]
		switch scope {
		case "event", "link", "instrumentation", "parent":
			return nil, p.errAt(t.pos, "unsupported: "+scope+" attributes ("+t.text+"); tracectl searches span and resource attributes")
		}
		return nil, p.errAt(t.pos, "syntax error: unknown attribute scope "+strconv.Quote(scope)+" in "+t.text+"; use span., resource. or a leading . for either")
	case tIdent:
		if in, ok := intrinsics[t.text]; ok {
			return &Attribute{Scope: ScopeIntrinsic, Intrinsic: in, Pos: t.pos}, nil
		}
		if unsupportedIntrinsics[t.text] || strings.Contains(t.text, ":") {
			return nil, p.errAt(t.pos, "unsupported: intrinsic "+t.text)
		}
	}
	return nil, nil
}

// operand reads an attribute or a literal.
func (p *parser) operand(t token) (FieldExpr, *ParseError) {
	a, err := p.attribute(t)
	if err != nil {
		return nil, err
	}
	if a != nil {
		return a, nil
	}
	switch t.kind {
	case tString:
		return &Static{Type: TypeString, S: t.text, Pos: t.pos}, nil
	case tNumber:
		if i, err := strconv.ParseInt(t.text, 10, 64); err == nil {
			return &Static{Type: TypeInt, I: i, Pos: t.pos}, nil
		}
		f, err := strconv.ParseFloat(t.text, 64)
		if err != nil {
			return nil, p.errAt(t.pos, "syntax error: invalid number "+t.text)
		}
		return &Static{Type: TypeFloat, F: f, Pos: t.pos}, nil
	case tDuration:
		d, err := time.ParseDuration(t.text)
		if err != nil {
			return nil, p.errAt(t.pos, "syntax error: invalid duration "+t.text+" (use units ns, us, ms, s, m, h)")
		}
		return &Static{Type: TypeDuration, D: d, Pos: t.pos}, nil
	case tIdent:
		switch t.text {
		case "true", "false":
			return &Static{Type: TypeBool, B: t.text == "true", Pos: t.pos}, nil
		case "nil":
			return &Static{Type: TypeNil, Pos: t.pos}, nil
		}
		if c, ok := statusWords[t.text]; ok {
			return &Static{Type: TypeStatus, I: c, S: t.text, Pos: t.pos}, nil
		}
		if c, ok := kindWords[t.text]; ok {
			return &Static{Type: TypeKind, I: c, S: t.text, Pos: t.pos}, nil
		}
		return nil, p.errAt(t.pos, "syntax error: unknown name "+strconv.Quote(t.text)+"; attributes need a scope (span."+t.text+", resource."+t.text+" or ."+t.text+") and strings need quotes")
	case tLParen:
		return nil, p.errAt(t.pos, "syntax error: unexpected (, expecting an attribute or a value")
	case tOther:
		return nil, p.unsupportedOp(t)
	}
	return nil, p.errAt(t.pos, "syntax error: unexpected "+t.describe())
}
