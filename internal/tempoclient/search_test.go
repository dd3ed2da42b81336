package tempoclient

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tracectl/tracectl/internal/tempoclient/tempotest"
)

// searchReplay serves the recorded /api/search answers, matching requests
// by their parameters whatever their order (the recordings keep the order
// they were sent in; url.Values sorts).
func searchReplay(t *testing.T) *tempotest.Server {
	t.Helper()
	srv := tempotest.Start(t)
	byQuery := map[string]*tempotest.Exchange{}
	for _, ex := range tempotest.Load(t) {
		u, err := url.Parse(ex.Target)
		if err != nil || u.Path != "/api/search" {
			continue
		}
		byQuery[u.Query().Encode()] = ex
	}
	srv.Handler = func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != "/api/search" {
			return false
		}
		ex := byQuery[r.URL.Query().Encode()]
		if ex == nil {
			http.Error(w, "no recording for "+r.URL.RawQuery, http.StatusTeapot)
			return true
		}
		for k, vs := range ex.Header {
			if k != "Content-Length" && k != "Transfer-Encoding" {
				w.Header()[k] = vs
			}
		}
		w.WriteHeader(ex.Status)
		_, _ = w.Write(ex.Body)
		return true
	}
	return srv
}

func TestSearchRecordings(t *testing.T) {
	srv := searchReplay(t)
	c := newClient(t, srv.URL, Options{Tenant: "team-a"})
	ctx := context.Background()
	start, end := time.Unix(1795165200, 0), time.Unix(1795172400, 0)

	res, err := c.Search(ctx, SearchRequest{Tags: "service.name=frontend", Limit: 5, Start: start, End: end})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Traces) != 5 || res.Traces[0].TraceID != "cbcb62be2746c23cc69e88c20292c529" || res.Traces[0].RootServiceName != "frontend" ||
		res.Traces[0].RootTraceName != "GET /api/search" || res.Traces[0].StartTimeUnixNano != 1795170244178366922 || res.Traces[0].DurationMs != 1505 {
		t.Errorf("tags search: %+v", res.Traces)
	}
	if res.Metrics.TotalBlocks != 3 || res.Metrics.TotalBlockBytes != 199863 || !strings.HasPrefix(string(res.Raw), `{"traces":[`) {
		t.Errorf("metrics %+v, raw %.40s", res.Metrics, res.Raw)
	}
	if got := srv.Requests(); got[len(got)-1].Header.Get("X-Scope-OrgID") != "team-a" {
		t.Error("tenant header not sent")
	}

	res, err = c.Search(ctx, SearchRequest{Query: `{ resource.service.name = "frontend" }`, Limit: 3, SpansPerSpanSet: 2, Start: start, End: end})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Traces) != 3 || len(res.Traces[0].SpanSets) != 1 || res.Traces[0].SpanSets[0].Matched != 6 ||
		len(res.Traces[0].SpanSets[0].Spans) != 2 || res.Traces[0].SpanSets[0].Spans[0].DurationNanos != 1505741991 ||
		res.Traces[0].ServiceStats["recommendation"].ErrorCount != 1 {
		t.Errorf("TraceQL search with spss: %+v", res.Traces)
	}

	res, err = c.Search(ctx, SearchRequest{Tags: "service.name=checkout", MinDuration: 100 * time.Millisecond, MaxDuration: 2 * time.Second,
		Limit: 5, Start: start, End: end})
	if err != nil || len(res.Traces) == 0 {
		t.Errorf("min/max duration search: %v %+v", err, res)
	}

	_, err = c.Search(ctx, SearchRequest{Query: "{ span.foo = }", Start: start, End: end})
	var se *StatusError
	if !errors.Is(err, ErrBadRequest) || !errors.As(err, &se) || se.Message != "invalid TraceQL query: parse error at line 1, col 14: syntax error: unexpected }" {
		t.Errorf("bad query: %v", err)
	}
}

func TestSearchUndecodable(t *testing.T) {
	srv := tempotest.Start(t)
	srv.Handler = func(w http.ResponseWriter, r *http.Request) bool {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"traces":[{"traceID":1}]}`))
		return true
	}
	c := newClient(t, srv.URL, Options{})
	if _, err := c.Search(context.Background(), SearchRequest{Query: "{}"}); !errors.Is(err, ErrProtocol) {
		t.Errorf("undecodable answer: %v", err)
	}
}
