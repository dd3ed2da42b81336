package traceql

import (
	"strconv"
	"strings"
)

// String is the query in canonical TraceQL (what Parse reads back to an
// equal tree).
func (q *Query) String() string {
	var b strings.Builder
	b.WriteString(q.Filter.String())
	if len(q.Select) > 0 {
		b.WriteString(" | select(")
		b.WriteString(attrList(q.Select))
		b.WriteString(")")
	}
	if m := q.Metrics; m != nil {
		arg := ""
		if m.Attr != nil {
			arg = m.Attr.String()
		}
		b.WriteString(" | " + m.Func + "(" + arg + ")")
		if len(m.By) > 0 {
			b.WriteString(" by(" + attrList(m.By) + ")")
		}
	}
	return b.String()
}

func attrList(as []Attribute) string {
	s := make([]string, len(as))
	for i := range as {
		s[i] = as[i].String()
	}
	return strings.Join(s, ", ")
}

func (f *SpansetFilter) String() string {
	if f.Expr == nil {
		return "{}"
	}
	return "{ " + f.Expr.String() + " }"
}

func (o *SpansetOp) String() string {
	return "(" + o.LHS.String() + " " + opText[o.Op] + " " + o.RHS.String() + ")"
}

func (b *BinaryOp) String() string {
	if b.Op == OpAnd || b.Op == OpOr {
		return "(" + b.LHS.String() + " " + opText[b.Op] + " " + b.RHS.String() + ")"
	}
	return b.LHS.String() + " " + opText[b.Op] + " " + b.RHS.String()
}

var intrinsicNames = map[Intrinsic]string{
	IntrinsicName: "name", IntrinsicStatus: "status", IntrinsicStatusMessage: "statusMessage",
	IntrinsicKind: "kind", IntrinsicDuration: "duration", IntrinsicRootName: "rootName",
	IntrinsicRootServiceName: "rootServiceName", IntrinsicTraceDuration: "traceDuration",
}

// IntrinsicName is the canonical (unscoped) name of an intrinsic.
func (i Intrinsic) String() string { return intrinsicNames[i] }

func quoteName(n string) string {
	if n == "" || strings.IndexFunc(n, func(r rune) bool { return attrStop(r) || r == '\\' }) >= 0 {
		return strconv.Quote(n)
	}
	return n
}

func (a *Attribute) String() string {
	switch a.Scope {
	case ScopeIntrinsic:
		return a.Intrinsic.String()
	case ScopeSpan:
		return "span." + quoteName(a.Name)
	case ScopeResource:
		return "resource." + quoteName(a.Name)
	}
	if a.Name != "" && a.Name[0] >= '0' && a.Name[0] <= '9' {
		// `.0` would read as a number.
		return "." + strconv.Quote(a.Name)
	}
	return "." + quoteName(a.Name)
}

func (s *Static) String() string {
	switch s.Type {
	case TypeNil:
		return "nil"
	case TypeString:
		return strconv.Quote(s.S)
	case TypeInt:
		return strconv.FormatInt(s.I, 10)
	case TypeFloat:
		t := strconv.FormatFloat(s.F, 'f', -1, 64)
		if !strings.ContainsAny(t, ".") {
			t += ".0"
		}
		return t
	case TypeBool:
		return strconv.FormatBool(s.B)
	case TypeDuration:
		return s.D.String()
	case TypeStatus:
		for k, v := range statusWords {
			if v == s.I {
				return k
			}
		}
	case TypeKind:
		for k, v := range kindWords {
			if v == s.I {
				return k
			}
		}
	}
	return "nil"
}

// ValueString is the value as Tempo's tag-value answers write it.
func (s *Static) ValueString() string {
	switch s.Type {
	case TypeString:
		return s.S
	case TypeFloat:
		return strconv.FormatFloat(s.F, 'g', -1, 64)
	}
	if s.Type == TypeDuration {
		return s.D.String()
	}
	return s.String()
}
