package traceql

import (
	"strings"
	"testing"
	"time"
)

func TestParseValid(t *testing.T) {
	tests := []struct{ in, want string }{
		{`{}`, `{}`},
		{`{ resource.service.name = "frontend" }`, `{ resource.service.name = "frontend" }`},
		{`{resource.service.name="frontend" && name="GET /"}`, `{ (resource.service.name = "frontend" && name = "GET /") }`},
		{`{ span.http.status_code >= 500 }`, `{ span.http.status_code >= 500 }`},
		{`{ status = error }`, `{ status = error }`},
		{`{ kind = unspecified }`, `{ kind = unspecified }`},
		{`{ span:kind = server }`, `{ kind = server }`},
		{`{ trace:rootService = "" }`, `{ rootServiceName = "" }`},
		{`{ duration > 10ms && duration <= 1.5s }`, `{ (duration > 10ms && duration <= 1.5s) }`},
		{`{ traceDuration > 1h30m }`, `{ traceDuration > 1h30m0s }`},
		{`{ .foo = 1.5 || .bar != true }`, `{ (.foo = 1.5 || .bar != true) }`},
		{`{ (.a = 1 || .b = 2) && .c = 3 }`, `{ ((.a = 1 || .b = 2) && .c = 3) }`},
		{`{ .a = 1 || .b = 2 && .c = 3 }`, `{ (.a = 1 || (.b = 2 && .c = 3)) }`},
		{`{ name =~ "GET.*" } && { status = error }`, `({ name =~ "GET.*" } && { status = error })`},
		{`{ .a = 1 } || { .b = 2 } && { .c = 3 }`, `({ .a = 1 } || ({ .b = 2 } && { .c = 3 }))`},
		{`({ .a = 1 } || { .b = 2 }) && { .c = 3 }`, `(({ .a = 1 } || { .b = 2 }) && { .c = 3 })`},
		{`{ span.x = nil }`, `{ span.x = nil }`},
		{`{ span.x != nil }`, `{ span.x != nil }`},
		{`{ "x" = name }`, `{ name = "x" }`},
		{`{ 5 < span.n }`, `{ span.n > 5 }`},
		{`{ span.n = -3 }`, `{ span.n = -3 }`},
		{`{ span."a b" = "c" }`, `{ span."a b" = "c" }`},
		{"{ name = `raw\\n` }", `{ name = "raw\\n" }`},
		{`{ resource.service.name = "ユニコード-サービス" }`, `{ resource.service.name = "ユニコード-サービス" }`},
		{`{ status = error } | select(span.http.url, resource.service.name)`, `{ status = error } | select(span.http.url, resource.service.name)`},
		{`{} | rate()`, `{} | rate()`},
		{`{ span.x = 1 } | avg_over_time(duration) by (resource.service.name)`, `{ span.x = 1 } | avg_over_time(duration) by(resource.service.name)`},
		{`{} | max_over_time(span.http.response.size)`, `{} | max_over_time(span.http.response.size)`},
		{`{ status = error } | count_over_time() by (resource.service.name)`, `{ status = error } | count_over_time() by(resource.service.name)`},
		{`{ true }`, `{ true }`},
		{`{ duration > 0 }`, `{ duration > 0s }`},
	}
	for _, tt := range tests {
		q, err := Parse(tt.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.in, err)
			continue
		}
		if got := q.String(); got != tt.want {
			t.Errorf("Parse(%q) = %s, want %s", tt.in, got, tt.want)
		}
		if q.Text != tt.in {
			t.Errorf("Parse(%q).Text = %q", tt.in, q.Text)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		in       string
		line     int
		col      int
		contains string
	}{
		// Tempo's own answer for this one (search-traceql-bad-query.http).
		{`{ span.foo = }`, 1, 14, "syntax error: unexpected }"},
		{``, 1, 1, "empty query"},
		{`{`, 1, 2, "unexpected end of query"},
		{`{ name = "x"`, 1, 13, "expecting }"},
		{`{ name = "x }`, 1, 10, "unterminated string"},
		{`{ span.foo }`, 1, 12, "must be compared"},
		{`{ event.name = "x" }`, 1, 3, "unsupported: event attributes"},
		{`{ link.foo = "x" }`, 1, 3, "unsupported: link attributes"},
		{`{ span:id = "x" }`, 1, 3, "unsupported: intrinsic span:id"},
		{`{ childCount > 1 }`, 1, 3, "unsupported: intrinsic childCount"},
		{`{ .a = 1 } >> { .b = 2 }`, 1, 12, "structural operator >>"},
		{`{ .a = 1 } > { .b = 2 }`, 1, 12, "structural operator >"},
		{`{ .a = 1 } ~ { .b = 2 }`, 1, 12, "structural operator ~"},
		{`{ .a + 1 = 2 }`, 1, 6, "arithmetic operator +"},
		{`{ !(.a = 1) }`, 1, 3, "negation"},
		{`{} | count() > 2`, 1, 6, "unsupported: aggregate count()"},
		{`{} | quantile_over_time(duration, .9)`, 1, 6, "quantile_over_time"},
		{`{} | min_over_time(name)`, 1, 20, "unsupported: min_over_time() over name"},
		{`{} | min_over_time()`, 1, 20, "expecting the attribute"},
		{`{} | min_over_time(duration, .5)`, 1, 28, "expecting )"},
		{`{} | { .a = 1 }`, 1, 6, "spanset filter after |"},
		{`{ status = 200 }`, 1, 12, "status is a status"},
		{`{ kind = "server" }`, 1, 10, "kind is a kind"},
		{`{ duration > "1s" }`, 1, 14, "duration is a duration"},
		{`{ name =~ "(" }`, 1, 11, "invalid regular expression"},
		{`{ name =~ 5 }`, 1, 11, "needs a string pattern"},
		{`{ span.x > nil }`, 1, 12, "nil can only be compared"},
		{`{ span.x = error }`, 1, 12, "status keyword"},
		{`{ foo = 1 }`, 1, 3, "unknown name \"foo\""},
		{`{ span.a = span.b }`, 1, 12, "between two attributes"},
		{`{ 1 = 2 }`, 1, 3, "between two values"},
		{`{ status != error }` + "\n" + `&& { .x = 1 } {`, 2, 15, "unexpected {"},
		{`{ duration > 5parsecs }`, 1, 14, "invalid duration"},
		{`{ foo.bar = 1 }`, 1, 3, "unknown attribute scope"},
		{`{ . = 1 }`, 1, 3, "attribute name missing"},
		{`{} by(.a)`, 1, 4, "by(...) must follow"},
		{`rate()`, 1, 1, "must follow a spanset filter"},
		{`{} | rate() | select(.a)`, 1, 15, "nothing may follow"},
		{strings.Repeat("(", 200) + "{}" + strings.Repeat(")", 200), 1, 101, "nests deeper"},
	}
	for _, tt := range tests {
		_, err := Parse(tt.in)
		pe, ok := err.(*ParseError)
		if !ok {
			t.Errorf("Parse(%q) = %v, want a *ParseError", tt.in, err)
			continue
		}
		if pe.Line != tt.line || pe.Col != tt.col || !strings.Contains(pe.Msg, tt.contains) {
			t.Errorf("Parse(%q) = %q at %d:%d, want %q at %d:%d", tt.in, pe.Msg, pe.Line, pe.Col, tt.contains, tt.line, tt.col)
		}
		if !strings.HasPrefix(pe.Error(), "parse error at line ") {
			t.Errorf("Parse(%q): message %q", tt.in, pe.Error())
		}
	}
}

func TestParseBadQueryMatchesTempo(t *testing.T) {
	_, err := Parse(`{ span.foo = }`)
	if got, want := err.Error(), "parse error at line 1, col 14: syntax error: unexpected }"; got != want {
		t.Fatalf("got %q, want Tempo's %q", got, want)
	}
}

func TestParseLenient(t *testing.T) {
	tests := []struct{ in, want string }{
		{`{ resource.service.name = }`, `{}`},
		{`{ resource.service.name = "frontend" && span.http.method = }`, `{ resource.service.name = "frontend" }`},
		{`{ resource.service.name = "frontend" && name =~ "GET`, `{ resource.service.name = "frontend" }`},
		{`{ .a = 1 && (.b = 2 || .c = 3) && .d }`, `{ (.a = 1 && (.b = 2 || .c = 3)) }`},
		{`{`, `{}`},
		{`{ status = error }`, `{ status = error }`},
	}
	for _, tt := range tests {
		q, err := ParseLenient(tt.in)
		if err != nil {
			t.Errorf("ParseLenient(%q): %v", tt.in, err)
			continue
		}
		if got := q.String(); got != tt.want {
			t.Errorf("ParseLenient(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
	if _, err := ParseLenient(`status = error`); err == nil {
		t.Error("ParseLenient of text without a filter did not fail")
	}
}

func TestLiterals(t *testing.T) {
	q, err := Parse(`{ span.a = 1.5e3 && span.b = 90s && span.c = false && kind = consumer && status = ok }`)
	if err != nil {
		t.Fatal(err)
	}
	var got []Static
	var walk func(FieldExpr)
	walk = func(e FieldExpr) {
		if b, ok := e.(*BinaryOp); ok {
			if s, ok := b.RHS.(*Static); ok {
				got = append(got, *s)
				return
			}
			walk(b.LHS)
			walk(b.RHS)
		}
	}
	walk(q.Filter.(*SpansetFilter).Expr)
	if len(got) != 5 || got[0].Type != TypeFloat || got[0].F != 1500 || got[1].D != 90*time.Second ||
		got[2].Type != TypeBool || got[2].B || got[3].Type != TypeKind || got[3].I != 5 || got[4].Type != TypeStatus || got[4].I != StatusOK {
		t.Fatalf("literals: %+v", got)
	}
}

// FuzzParse checks that Parse never panics, that errors carry a position
// inside the query, and that a parsed query prints to text that parses to
// the same tree.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`{}`, `{ resource.service.name = "frontend" && duration > 10ms }`, `{ span.http.status_code >= 500 }`,
		`{ status = error } | select(span.http.url)`, `{ .a = 1 } && ({ .b =~ "x.*" } || { kind != server })`,
		`{ trace:rootService = "" }`, `{ span.foo = }`, `{} | rate() by (resource.service.name)`, `{ name !~ "a|b" }`,
		`{ span."x y" != nil }`, `{ traceDuration < 2h }`, `{ true && .x = -1.5 }`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q, err := Parse(s)
		if err != nil {
			pe, ok := err.(*ParseError)
			if !ok {
				t.Fatalf("error %T %v", err, err)
			}
			if pe.Pos < 0 || pe.Pos > len(s) || pe.Line < 1 || pe.Col < 1 {
				t.Fatalf("bad position %+v for %q", pe, s)
			}
			if _, err := ParseLenient(s); err != nil && strings.HasPrefix(strings.TrimSpace(s), "{") {
				t.Fatalf("ParseLenient(%q) failed: %v", s, err)
			}
			return
		}
		text := q.String()
		q2, err := Parse(text)
		if err != nil {
			t.Fatalf("Parse(%q) printed %q which does not parse: %v", s, text, err)
		}
		if q2.String() != text {
			t.Fatalf("round trip of %q: %q then %q", s, text, q2.String())
		}
	})
}
