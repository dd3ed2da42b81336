package search

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tracectl/tracectl/internal/traceql"
)

// MaxLimit bounds the limit parameter.
const MaxLimit = 100_000

// requestError is a bad parameter; its message is meant for the user.
type requestError struct{ msg string }

func (e *requestError) Error() string { return e.msg }
func (e *requestError) Unwrap() error { return ErrBadRequest }

func reqErr(format string, args ...any) error { return &requestError{fmt.Sprintf(format, args...)} }

// ParseRequest reads Tempo's /api/search parameters: q (TraceQL) or tags
// (logfmt, `service.name=x http.status_code=500`), minDuration and
// maxDuration (Go durations), limit, spss, start and end (Unix seconds).
// Errors wrap ErrBadRequest and name the parameter.
func ParseRequest(v url.Values) (Request, error) {
	var req Request
	q := strings.TrimSpace(v.Get("q"))
	tags := strings.TrimSpace(v.Get("tags"))
	switch {
	case q != "":
		query, err := traceql.Parse(q)
		if err != nil {
			return req, reqErr("invalid TraceQL query: %v", err)
		}
		if query.Metrics != nil {
			return req, reqErr("invalid TraceQL query: %s() is a metrics query; send it to /api/metrics/query_range", query.Metrics.Func)
		}
		req.Query = query
	case tags != "":
		query, err := TagsQuery(tags)
		if err != nil {
			return req, err
		}
		req.Query, req.Tags = query, true
	default:
		req.Query, _ = traceql.Parse("{}")
	}
	var err error
	if req.MinDuration, err = durationParam(v, "minDuration"); err != nil {
		return req, err
	}
	if req.MaxDuration, err = durationParam(v, "maxDuration"); err != nil {
		return req, err
	}
	if req.MaxDuration != 0 && req.MinDuration > req.MaxDuration {
		return req, reqErr("invalid maxDuration: %s is less than minDuration %s", req.MaxDuration, req.MinDuration)
	}
	if req.Limit, err = intParam(v, "limit", DefaultLimit); err != nil {
		return req, err
	}
	if req.SpansPerSpanSet, err = intParam(v, "spss", DefaultSpansPerSpanSet); err != nil {
		return req, err
	}
	if req.Start, req.End, err = timeRange(v); err != nil {
		return req, err
	}
	return req, nil
}

func durationParam(v url.Values, name string) (time.Duration, error) {
	s := v.Get(name)
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, reqErr("invalid %s %q: want a duration such as 100ms or 2s", name, s)
	}
	return d, nil
}

func intParam(v url.Values, name string, def int) (int, error) {
	s := v.Get(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, reqErr("invalid %s %q: want a whole number of 0 or more", name, s)
	}
	if n == 0 {
		return def, nil
	}
	return min(n, MaxLimit), nil
}

// timeRange reads start and end (Unix seconds); both or neither.
func timeRange(v url.Values) (start, end time.Time, err error) {
	parse := func(name string) (time.Time, error) {
		s := v.Get(name)
		if s == "" {
			return time.Time{}, nil
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 || n > 1<<33 {
			return time.Time{}, reqErr("invalid %s %q: want Unix seconds", name, s)
		}
		return time.Unix(n, 0).UTC(), nil
	}
	if start, err = parse("start"); err != nil {
		return
	}
	if end, err = parse("end"); err != nil {
		return
	}
	if !start.IsZero() && !end.IsZero() && end.Before(start) {
		return start, end, reqErr("invalid start/end: end %d is before start %d", end.Unix(), start.Unix())
	}
	if !start.IsZero() && end.IsZero() {
		end = time.Now().UTC()
	}
	return start, end, nil
}

// TagsQuery turns the legacy logfmt tags (`service.name=frontend
// http.status_code=500 name="GET /"`) into the TraceQL query that the
// engine evaluates: every pair is an unscoped attribute equal to the value
// (typed: integers, floats and booleans as such, the rest as strings);
// `name`, `status` and `kind` are the intrinsics.
func TagsQuery(tags string) (*traceql.Query, error) {
	pairs, err := logfmt(tags)
	if err != nil {
		return nil, reqErr("invalid tags %q: %v", tags, err)
	}
	var conds []string
	for _, kv := range pairs {
		k, val := kv[0], kv[1]
		var attr string
		switch k {
		case "name":
			attr = "name"
		case "status", "status.code":
			attr = "status"
		case "kind":
			attr = "kind"
		default:
			attr = "." + strconv.Quote(k)
		}
		var lit string
		switch {
		case attr == "status" || attr == "kind":
			lit = strings.ToLower(strings.TrimPrefix(strings.TrimPrefix(strings.ToLower(val), "status_code_"), "span_kind_"))
		case attr == "name":
			lit = strconv.Quote(val)
		default:
			if _, err := strconv.ParseInt(val, 10, 64); err == nil {
				lit = val
			} else if _, err := strconv.ParseFloat(val, 64); err == nil && strings.ContainsAny(val, ".") {
				lit = val
			} else if val == "true" || val == "false" {
				lit = val
			} else {
				lit = strconv.Quote(val)
			}
		}
		conds = append(conds, attr+" = "+lit)
	}
	text := "{" + strings.Join(conds, " && ") + "}"
	q, err := traceql.Parse(text)
	if err != nil {
		return nil, reqErr("invalid tags %q: %v", tags, err)
	}
	return q, nil
}

// logfmt splits `k=v k2="v 2"` into pairs.
func logfmt(s string) ([][2]string, error) {
	var out [][2]string
	i := 0
	for i < len(s) {
		for i < len(s) && s[i] == ' ' {
			i++
		}
		if i >= len(s) {
			break
		}
		j := i
		for j < len(s) && s[j] != '=' && s[j] != ' ' {
			j++
		}
		key := s[i:j]
		if key == "" {
			return nil, fmt.Errorf("a value without a key at byte %d", i)
		}
		if j >= len(s) || s[j] != '=' {
			return nil, fmt.Errorf("key %q has no value (want key=value)", key)
		}
		j++
		var val string
		if j < len(s) && s[j] == '"' {
			k := j + 1
			for k < len(s) && s[k] != '"' {
				if s[k] == '\\' {
					k++
				}
				k++
			}
			if k >= len(s) {
				return nil, fmt.Errorf("unterminated quoted value of %q", key)
			}
			v, err := strconv.Unquote(s[j : k+1])
			if err != nil {
				return nil, fmt.Errorf("bad quoted value of %q", key)
			}
			val, j = v, k+1
		} else {
			k := j
			for k < len(s) && s[k] != ' ' {
				k++
			}
			val, j = s[j:k], k
		}
		out = append(out, [2]string{key, val})
		i = j
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no key=value pairs")
	}
	return out, nil
}

// ParseTagsRequest reads the parameters of /api/search/tags and
// /api/v2/search/tags: scope, q, start, end, limit.
func ParseTagsRequest(v url.Values) (TagsRequest, error) {
	var req TagsRequest
	req.Scope = v.Get("scope")
	switch req.Scope {
	case "", "all", ScopeResource, ScopeSpan, ScopeEvent, ScopeLink, ScopeInstrumentation, ScopeIntrinsic:
	default:
		return req, reqErr("invalid scope %q: want resource, span, event, link, instrumentation, intrinsic or all", req.Scope)
	}
	var err error
	req.Query, req.Limit, req.Start, req.End, err = tagParams(v)
	return req, err
}

// ParseTagValuesRequest reads the parameters of /api/search/tag/<tag>/values
// (v2 false) and /api/v2/search/tag/<tag>/values: q (parsed leniently,
// ignored when it cannot be understood, as Tempo does), start, end, limit.
func ParseTagValuesRequest(tag string, v2 bool, v url.Values) (TagValuesRequest, error) {
	req := TagValuesRequest{Tag: tag, V2: v2}
	if tag == "" {
		return req, reqErr("missing tag name in the path: use /api/v2/search/tag/<tag>/values")
	}
	if v2 {
		if _, err := parseTag(tag); err != nil {
			return req, err
		}
	}
	var err error
	req.Query, req.Limit, req.Start, req.End, err = tagParams(v)
	return req, err
}

// tagParams reads the parameters tag-name and tag-value requests share: q
// (parsed leniently and ignored when it cannot be understood, as Tempo
// does), limit, start and end.
func tagParams(v url.Values) (q *traceql.Query, limit int, start, end time.Time, err error) {
	if text := v.Get("q"); strings.TrimSpace(text) != "" {
		if query, err := traceql.ParseLenient(text); err == nil {
			q = query
		}
	}
	if limit, err = intParam(v, "limit", 0); err != nil {
		return nil, 0, time.Time{}, time.Time{}, err
	}
	if start, end, err = timeRange(v); err != nil {
		return nil, 0, time.Time{}, time.Time{}, err
	}
	return q, limit, start, end, nil
}

// parseTag reads a v2 tag name (`resource.x`, `span.x`, `.x`, an
// intrinsic) as a TraceQL attribute.
func parseTag(tag string) (*traceql.Attribute, error) {
	q, err := traceql.Parse("{ " + tag + " != nil }")
	if err != nil {
		return nil, reqErr("invalid tag %q: want resource.<name>, span.<name>, .<name> or an intrinsic such as status", tag)
	}
	return q.Filter.(*traceql.SpansetFilter).Expr.(*traceql.BinaryOp).LHS.(*traceql.Attribute), nil
}
