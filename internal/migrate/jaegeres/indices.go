package jaegeres

import (
	"context"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Selection says which span documents to migrate.
type Selection struct {
	// Prefixes are Jaeger's --es.index-prefix values; "" is no prefix.
	// Each is its own index set. Default: [""].
	Prefixes []string
	// DateSeparator is --es.index-date-separator (default "-").
	DateSeparator string
	// UseAliases reads <prefix>jaeger-span-read (Jaeger's --es.use-aliases)
	// instead of listing dated indices.
	UseAliases bool
	// IncludeArchive adds <prefix>jaeger-span-archive (and its rollover
	// indices). Its spans duplicate dated ones and are de-duplicated.
	IncludeArchive bool
	// Since and Until bound spans by start time: Since ≤ start < Until.
	Since, Until time.Time
	// Services selects the traces with a span of one of these services
	// (process.serviceName); a selected trace is migrated whole, its
	// spans of other services included (within Since/Until).
	Services []string
}

// Index is one span index to migrate.
type Index struct {
	Name   string    `json:"name"`
	Prefix string    `json:"prefix"`
	Kind   string    `json:"kind"`         // daily, hourly, rollover, archive
	Day    time.Time `json:"day,omitzero"` // daily/hourly: the UTC start of its period
	Docs   int64     `json:"docs"`         // span documents (_count), filters applied
}

func (s *Selection) defaults() {
	if len(s.Prefixes) == 0 {
		s.Prefixes = []string{""}
	}
	if s.DateSeparator == "" {
		s.DateSeparator = "-"
	}
}

func spanBase(prefix string) string {
	if prefix == "" {
		return "jaeger-span-"
	}
	return prefix + "-jaeger-span-"
}

// Discover lists the span indices of the selection with their document
// counts (_count, with the time and service filters: _cat's docs.count
// counts nested documents). Indices whose period lies wholly outside
// Since/Until are left out.
func (c *Client) Discover(ctx context.Context, sel Selection) ([]Index, error) {
	sel.defaults()
	sep := regexp.QuoteMeta(sel.DateSeparator)
	var out []Index
	for _, prefix := range sel.Prefixes {
		base := spanBase(prefix)
		daily := regexp.MustCompile(`^` + regexp.QuoteMeta(base) + `(\d{4})` + sep + `(\d{2})` + sep + `(\d{2})(?:` + sep + `(\d{2}))?$`)
		rollover := regexp.MustCompile(`^` + regexp.QuoteMeta(base) + `\d{6}$`)
		archive := regexp.MustCompile(`^` + regexp.QuoteMeta(base) + `archive(?:-\d{6})?$`)
		var names []string
		if sel.UseAliases {
			var err error
			if names, err = c.aliasIndices(ctx, base+"read"); err != nil {
				return nil, err
			}
		} else {
			var err error
			if names, err = c.catIndices(ctx, base+"*"); err != nil {
				return nil, err
			}
		}
		if sel.IncludeArchive {
			arch, err := c.catIndices(ctx, base+"archive*")
			if err != nil {
				return nil, err
			}
			names = append(names, arch...)
		}
		slices.Sort(names)
		names = slices.Compact(names)
		for _, n := range names {
			ix := Index{Name: n, Prefix: prefix}
			switch m := daily.FindStringSubmatch(n); {
			case archive.MatchString(n):
				if !sel.IncludeArchive {
					continue
				}
				ix.Kind = "archive"
			case m != nil:
				layout := "2006-01-02"
				v := m[1] + "-" + m[2] + "-" + m[3]
				period := 24 * time.Hour
				ix.Kind = "daily"
				if m[4] != "" {
					layout, v, period, ix.Kind = "2006-01-02-15", v+"-"+m[4], time.Hour, "hourly"
				}
				day, err := time.Parse(layout, v)
				if err != nil {
					continue // not a date: not Jaeger's
				}
				ix.Day = day
				if !sel.Since.IsZero() && !day.Add(period).After(sel.Since) {
					continue
				}
				if !sel.Until.IsZero() && !day.Before(sel.Until) {
					continue
				}
			case rollover.MatchString(n):
				ix.Kind = "rollover"
			default:
				continue // e.g. another prefix's indices, or a service index
			}
			out = append(out, ix)
		}
	}
	q := sel.query(nil)
	for i := range out {
		n, err := c.Count(ctx, []string{out[i].Name}, q)
		if err != nil {
			return nil, err
		}
		out[i].Docs = n
	}
	return out, nil
}

func (c *Client) catIndices(ctx context.Context, pattern string) ([]string, error) {
	var rows []map[string]any
	params := url.Values{"format": {"json"}, "h": {"index"}, "expand_wildcards": {"open"}}
	if err := c.do(ctx, "GET", "/_cat/indices/"+url.PathEscape(pattern), params, nil, &rows); err != nil {
		return nil, fmt.Errorf("listing indices %s on %s: %w", pattern, c, err)
	}
	var names []string
	for _, r := range rows {
		if n, ok := r["index"].(string); ok {
			names = append(names, n)
		}
	}
	return names, nil
}

func (c *Client) aliasIndices(ctx context.Context, alias string) ([]string, error) {
	var m map[string]any
	if err := c.do(ctx, "GET", "/_alias/"+url.PathEscape(alias), nil, nil, &m); err != nil {
		return nil, fmt.Errorf("resolving alias %s on %s: %w; without --es-use-aliases dated indices are listed", alias, c, err)
	}
	var names []string
	for n := range m {
		names = append(names, n)
	}
	return names, nil
}

// Count is _count over indices with query q.
func (c *Client) Count(ctx context.Context, indices []string, q map[string]any) (int64, error) {
	var res map[string]any
	body := map[string]any{}
	if q != nil {
		body["query"] = q
	}
	if err := c.do(ctx, "POST", "/"+strings.Join(indices, ",")+"/_count", nil, body, &res); err != nil {
		return 0, fmt.Errorf("counting documents of %s: %w", strings.Join(indices, ","), err)
	}
	return jsonNumber(res["count"]), nil
}

// query is the filter of the selection, plus extra clauses. Range bounds
// are emitted as gte/lt: olivere's RangeQuery sends from/to, which ES 9
// rejects. Only startTimeMillis can be range-queried (startTime is not
// indexed as a date).
func (s *Selection) query(extra []map[string]any) map[string]any {
	filter := s.timeFilter()
	if len(s.Services) > 0 {
		filter = append(filter, s.servicesFilter())
	}
	filter = append(filter, extra...)
	if len(filter) == 0 {
		return nil
	}
	return map[string]any{"bool": map[string]any{"filter": filter}}
}

// timeFilter bounds spans by start time (Since ≤ start < Until).
func (s *Selection) timeFilter() []map[string]any {
	if s.Since.IsZero() && s.Until.IsZero() {
		return nil
	}
	r := map[string]any{"format": "epoch_millis"}
	if !s.Since.IsZero() {
		r["gte"] = s.Since.UnixMilli()
	}
	if !s.Until.IsZero() {
		r["lt"] = s.Until.UnixMilli()
	}
	return []map[string]any{{"range": map[string]any{"startTimeMillis": r}}}
}

func (s *Selection) servicesFilter() map[string]any {
	return map[string]any{"terms": map[string]any{"process.serviceName": s.Services}}
}

// traceQuery selects every span of the traces whose stored IDs are forms,
// in the time range, whatever its service: a selected trace whole.
func (s *Selection) traceQuery(forms []string) map[string]any {
	filter := append(s.timeFilter(), map[string]any{"terms": map[string]any{"traceID": forms}})
	return map[string]any{"bool": map[string]any{"filter": filter}}
}

// relatedQuery selects the spans of those traces that --services left
// out: the rest of each selected trace.
func (s *Selection) relatedQuery(forms []string) map[string]any {
	q := s.traceQuery(forms)
	q["bool"].(map[string]any)["must_not"] = []map[string]any{s.servicesFilter()}
	return q
}
