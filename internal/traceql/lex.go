package traceql

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

type tokKind int

const (
	tEOF tokKind = iota
	tLBrace
	tRBrace
	tLParen
	tRParen
	tComma
	tPipe
	tAnd
	tOr
	tEq
	tNeq
	tGt
	tGte
	tLt
	tLte
	tRegex
	tNotRegex
	tNot
	tString
	tNumber   // int or float, text in tok.text
	tDuration // text in tok.text
	tIdent    // bare word: intrinsic, keyword, scope prefix
	tAttr     // .x, span.x, resource.x, event.x, …: text is the full path
	tOther    // any other operator character(s), for error messages
)

type token struct {
	kind tokKind
	text string // source text (unquoted for strings)
	pos  int
}

func (t token) describe() string {
	switch t.kind {
	case tEOF:
		return "end of query"
	case tString:
		return strconv.Quote(t.text)
	}
	return t.text
}

// attrStop reports whether r ends an attribute name or identifier.
func attrStop(r rune) bool {
	if unicode.IsSpace(r) {
		return true
	}
	switch r {
	case '{', '}', '(', ')', '=', '~', '!', '<', '>', '&', '|', '^', ',', '"', '`', '+', '*', '%':
		return true
	}
	return false
}

type lexer struct {
	src  string
	pos  int
	toks []token
}

func lex(src string) ([]token, *ParseError) {
	l := &lexer{src: src}
	for {
		t, err := l.next()
		if err != nil {
			return l.toks, err
		}
		l.toks = append(l.toks, t)
		if t.kind == tEOF {
			return l.toks, nil
		}
	}
}

func (l *lexer) errAt(pos int, msg string) *ParseError { return newError(l.src, pos, msg) }

func newError(src string, pos int, msg string) *ParseError {
	if pos > len(src) {
		pos = len(src)
	}
	line, col := 1, 1
	for _, r := range src[:pos] {
		if r == '\n' {
			line++
			col = 1
		} else {
			col++
		}
	}
	return &ParseError{Pos: pos, Line: line, Col: col, Msg: msg}
}

func (l *lexer) next() (token, *ParseError) {
	for l.pos < len(l.src) {
		r, n := utf8.DecodeRuneInString(l.src[l.pos:])
		if !unicode.IsSpace(r) {
			break
		}
		l.pos += n
	}
	start := l.pos
	if start >= len(l.src) {
		return token{kind: tEOF, pos: start}, nil
	}
	two := ""
	if start+2 <= len(l.src) {
		two = l.src[start : start+2]
	}
	switch two {
	case "&&":
		l.pos += 2
		return token{tAnd, two, start}, nil
	case "||":
		l.pos += 2
		return token{tOr, two, start}, nil
	case "!=":
		l.pos += 2
		return token{tNeq, two, start}, nil
	case ">=":
		l.pos += 2
		return token{tGte, two, start}, nil
	case "<=":
		l.pos += 2
		return token{tLte, two, start}, nil
	case "=~":
		l.pos += 2
		return token{tRegex, two, start}, nil
	case "!~":
		l.pos += 2
		return token{tNotRegex, two, start}, nil
	case ">>", "<<", "!>", "!<", "~~", "&>", "&<", "&~":
		l.pos += 2
		return token{tOther, two, start}, nil
	}
	c := l.src[start]
	single := map[byte]tokKind{'{': tLBrace, '}': tRBrace, '(': tLParen, ')': tRParen, ',': tComma, '|': tPipe, '=': tEq, '>': tGt, '<': tLt, '!': tNot}
	if k, ok := single[c]; ok {
		l.pos++
		return token{k, string(c), start}, nil
	}
	switch {
	case c == '"' || c == '`':
		return l.str(c)
	case c >= '0' && c <= '9':
		return l.number()
	case c == '-' && start+1 < len(l.src) && l.src[start+1] >= '0' && l.src[start+1] <= '9':
		return l.number()
	case c == '.':
		if start+1 < len(l.src) && l.src[start+1] >= '0' && l.src[start+1] <= '9' {
			return l.number()
		}
		return l.attr(start, start+1)
	}
	r, _ := utf8.DecodeRuneInString(l.src[start:])
	if unicode.IsLetter(r) || c == '_' {
		return l.word()
	}
	if r == utf8.RuneError {
		return token{}, l.errAt(start, "invalid UTF-8 in query")
	}
	l.pos += utf8.RuneLen(r)
	return token{tOther, string(r), start}, nil
}

// str reads a "…" (Go escapes) or `…` (raw) string.
func (l *lexer) str(q byte) (token, *ParseError) {
	start := l.pos
	i := start + 1
	for i < len(l.src) {
		switch l.src[i] {
		case '\\':
			if q == '"' {
				i += 2
				continue
			}
		case q:
			raw := l.src[start : i+1]
			l.pos = i + 1
			if q == '`' {
				return token{tString, raw[1 : len(raw)-1], start}, nil
			}
			s, err := strconv.Unquote(raw)
			if err != nil {
				return token{}, l.errAt(start, "invalid string "+raw+": bad escape sequence")
			}
			return token{tString, s, start}, nil
		}
		i++
	}
	return token{}, l.errAt(start, "unterminated string")
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// number reads an int, a float or a duration (10ms, 1.5s, 1h30m).
func (l *lexer) number() (token, *ParseError) {
	start := l.pos
	i := start
	if l.src[i] == '-' {
		i++
	}
	for i < len(l.src) && (isDigit(l.src[i]) || l.src[i] == '.' || l.src[i] == 'e' || l.src[i] == 'E' ||
		((l.src[i] == '+' || l.src[i] == '-') && i > start && (l.src[i-1] == 'e' || l.src[i-1] == 'E'))) {
		i++
	}
	// A unit makes it a duration; go on through compound forms (1h30m).
	j := i
	for j < len(l.src) {
		r, n := utf8.DecodeRuneInString(l.src[j:])
		if unicode.IsLetter(r) || r == 'µ' || isDigit(l.src[j]) || l.src[j] == '.' {
			j += n
			continue
		}
		break
	}
	if j > i {
		text := l.src[start:j]
		l.pos = j
		if strings.ContainsAny(text[i-start:], "eE") && !strings.ContainsAny(text, "hmsnuµ") {
			return token{tOther, text, start}, nil
		}
		return token{tDuration, text, start}, nil
	}
	l.pos = i
	return token{tNumber, l.src[start:i], start}, nil
}

// word reads an identifier; a following '.' makes it a scoped attribute
// (span.x, resource.x) and a ':' an intrinsic in colon form (span:name).
func (l *lexer) word() (token, *ParseError) {
	start := l.pos
	i := start
	for i < len(l.src) {
		r, n := utf8.DecodeRuneInString(l.src[i:])
		if !(unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_') {
			break
		}
		i += n
	}
	if i < len(l.src) && l.src[i] == '.' {
		return l.attr(start, i+1)
	}
	if i < len(l.src) && l.src[i] == ':' {
		j := i + 1
		for j < len(l.src) {
			r, n := utf8.DecodeRuneInString(l.src[j:])
			if !(unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_') {
				break
			}
			j += n
		}
		l.pos = j
		return token{tIdent, l.src[start:j], start}, nil
	}
	l.pos = i
	return token{tIdent, l.src[start:i], start}, nil
}

// attr reads an attribute path whose name starts at nameStart (after the
// scope's dot). A quoted name (`span."a b"`) is allowed.
func (l *lexer) attr(start, nameStart int) (token, *ParseError) {
	if nameStart < len(l.src) && l.src[nameStart] == '"' {
		l.pos = nameStart
		t, err := l.str('"')
		if err != nil {
			return t, err
		}
		return token{tAttr, l.src[start:nameStart] + t.text, start}, nil
	}
	i := nameStart
	for i < len(l.src) {
		r, n := utf8.DecodeRuneInString(l.src[i:])
		if attrStop(r) {
			break
		}
		i += n
	}
	l.pos = i
	if i == nameStart {
		return token{}, l.errAt(start, "attribute name missing after "+strconv.Quote(l.src[start:nameStart]))
	}
	return token{tAttr, l.src[start:i], start}, nil
}
