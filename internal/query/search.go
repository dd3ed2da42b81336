package query

import (
	"context"
	"net/http"
)

// SearchBackend answers search, tag names and tag values over the head and
// blocks (package search's Engine).
type SearchBackend interface{}

func (a *API) notAvailable(what string) error {
	return errorf(http.StatusNotImplemented, "%s is not available in this tracectl build", what)
}

func (a *API) search(ctx context.Context, tenantID string, r *http.Request) (*response, error) {
	return nil, a.notAvailable("search")
}

func (a *API) tags(v2 bool) queryFunc {
	return func(ctx context.Context, tenantID string, r *http.Request) (*response, error) {
		return nil, a.notAvailable("tag names")
	}
}

func (a *API) tagValues(v2 bool) queryFunc {
	return func(ctx context.Context, tenantID string, r *http.Request) (*response, error) {
		return nil, a.notAvailable("tag values")
	}
}

func (a *API) metricsQuery(rangeQuery bool) queryFunc {
	return func(ctx context.Context, tenantID string, r *http.Request) (*response, error) {
		return nil, errorf(http.StatusBadRequest, "TraceQL metrics queries are not supported by tracectl; use a search query, or point Grafana's metrics at Prometheus")
	}
}
