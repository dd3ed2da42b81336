package search

import (
	"errors"
	"net/url"
	"testing"

	"github.com/tracectl/tracectl/internal/traceql"
)

// FuzzTagsQuery: any legacy `tags=` value either becomes a TraceQL query
// that prints and parses back to the same query, or a bad-request error;
// never a panic. The same for the whole /api/search parameter set.
func FuzzTagsQuery(f *testing.F) {
	for _, s := range []string{
		`service.name=frontend`, `http.status_code=500 name="GET /api/cart"`, `status=error`,
		`a="x \"y\" z" b=1.5 c=true`, `=`, `"`, `k="unterminated`, `kind=server   root.name=x`,
	} {
		f.Add(s, "1s", "20")
	}
	f.Fuzz(func(t *testing.T, tags, minDuration, limit string) {
		q, err := TagsQuery(tags)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("tags %q: error %v is not a bad request", tags, err)
			}
		} else {
			back, err := traceql.Parse(q.String())
			if err != nil {
				t.Fatalf("tags %q became %q, which does not parse: %v", tags, q.String(), err)
			}
			if back.String() != q.String() {
				t.Fatalf("tags %q: %q parses back as %q", tags, q.String(), back.String())
			}
		}
		_, err = ParseRequest(url.Values{"tags": {tags}, "minDuration": {minDuration}, "limit": {limit}})
		if err != nil && !errors.Is(err, ErrBadRequest) && !errors.Is(err, ErrUnsupported) {
			t.Fatalf("ParseRequest: %v is neither a bad request nor unsupported", err)
		}
	})
}
