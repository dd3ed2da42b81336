package search

import (
	"context"
	"errors"
	"net/url"
	"testing"
	"time"
)

// TestEndedContextIsAnError: when the query's time has run out, tag names,
// tag values (every path) and metrics fail with the context's error
// instead of answering with what little was read (the API turns it into
// 504); a search, which may stop early at its limit, too.
func TestEndedContextIsAnError(t *testing.T) {
	b, metas := openFixture(t, "vparquet4-compacted")
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	for _, generic := range []bool{false, true} {
		e := NewEngine(b, Options{Generic: generic})
		check := func(what string, err error) {
			t.Helper()
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("generic=%v %s: %v, want the deadline's error", generic, what, err)
			}
		}
		treq, err := ParseTagsRequest(url.Values{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = e.TagNames(ctx, "single-tenant", metas, nil, treq)
		check("tag names", err)
		for _, c := range []struct{ tag, q string }{
			{"status", ""},                                     // enumeration from columns
			{"resource.service.name", ""},                      // dictionaries
			{"name", `{ resource.service.name = "frontend" }`}, // narrowed by q, from columns
			{"span.http.method", `{ status = error }`},         // the OTLP path
		} {
			v := url.Values{}
			if c.q != "" {
				v.Set("q", c.q)
			}
			req, err := ParseTagValuesRequest(c.tag, true, v)
			if err != nil {
				t.Fatal(err)
			}
			_, err = e.TagValues(ctx, "single-tenant", metas, nil, req)
			check("tag values "+c.tag+" "+c.q, err)
		}
		sreq, err := ParseRequest(url.Values{"q": {"{}"}})
		if err != nil {
			t.Fatal(err)
		}
		_, err = e.Search(ctx, "single-tenant", metas, nil, sreq)
		check("search", err)
		mreq, err := ParseMetricsRequest(url.Values{"q": {"{} | rate()"}, "start": {"1795168800"}, "end": {"1795170600"}, "step": {"60s"}}, false)
		if err != nil {
			t.Fatal(err)
		}
		_, err = e.MetricsQueryRange(ctx, "single-tenant", metas, nil, mreq)
		check("metrics", err)
	}
}
