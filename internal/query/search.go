package query

import (
	"context"
	"encoding/json"
	"net/http"
	"sort"
	"time"

	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/search"
)

// headSource hands the engine the head, or a nil interface when there is
// none (a typed nil would be called).
func (a *API) headSource() search.HeadSource {
	if a.cfg.Head == nil {
		return nil
	}
	return a.cfg.Head
}

// Search runs a search for tenant over the head and the tenant's blocks,
// for callers other than HTTP (tracectl search).
func (a *API) Search(ctx context.Context, tenantID string, req search.Request) (*search.Response, error) {
	a.clampSearch(&req)
	// The block list is taken after the head was read (see SearchList).
	return a.engine.SearchList(ctx, tenantID, func(ctx context.Context) ([]*block.Meta, error) {
		return a.blocks.get(ctx, tenantID)
	}, a.headSource(), req)
}

func (a *API) clampSearch(req *search.Request) {
	req.Limit = min(req.Limit, a.cfg.MaxSearchLimit)
	req.SpansPerSpanSet = min(req.SpansPerSpanSet, a.cfg.MaxSpansPerSpanSet)
}

// search serves /api/search. Without start/end Tempo searches only the
// recent data it holds in memory; tracectl searches the head and every
// block (the limit bounds the answer), so a store of old or migrated traces
// can be searched at all.
func (a *API) search(ctx context.Context, tenantID string, r *http.Request) (*response, error) {
	req, err := search.ParseRequest(r.URL.Query())
	if err != nil {
		return nil, err
	}
	resp, err := a.Search(ctx, tenantID, req)
	if err != nil {
		return nil, err
	}
	return marshalJSON(resp)
}

// tagBlocks picks the blocks a tag-name or tag-value request reads. With a
// time range: every block (the engine prunes by time). Without one (what
// Grafana sends by default): Tempo reads only recent data in memory, which
// leaves the drop-downs empty for a store of old or migrated traces, so
// tracectl reads the head and the tenant's TagsRecentBlocks newest blocks
// (by end time), whatever their age: bounded work, and values that exist.
func (a *API) tagBlocks(metas []*block.Meta, ranged bool) []*block.Meta {
	if ranged || len(metas) <= a.cfg.TagsRecentBlocks {
		return metas
	}
	newest := append([]*block.Meta(nil), metas...)
	sort.SliceStable(newest, func(i, j int) bool { return newest[i].EndTime.After(newest[j].EndTime) })
	newest = newest[:a.cfg.TagsRecentBlocks]
	sortMetas(newest)
	return newest
}

// tagRequestBlocks lists the tenant's blocks and picks those a tag-name or
// tag-value request with the given range (zero: none) reads, by tagBlocks.
func (a *API) tagRequestBlocks(ctx context.Context, tenantID string, start, end time.Time) ([]*block.Meta, error) {
	metas, err := a.blocks.get(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	return a.tagBlocks(metas, !start.IsZero() || !end.IsZero()), nil
}

// tags serves /api/search/tags (v1) and /api/v2/search/tags.
func (a *API) tags(v2 bool) queryFunc {
	return func(ctx context.Context, tenantID string, r *http.Request) (*response, error) {
		req, err := search.ParseTagsRequest(r.URL.Query())
		if err != nil {
			return nil, err
		}
		metas, err := a.tagRequestBlocks(ctx, tenantID, req.Start, req.End)
		if err != nil {
			return nil, err
		}
		resp, err := a.engine.TagNames(ctx, tenantID, metas, a.headSource(), req)
		if err != nil {
			return nil, err
		}
		if v2 {
			return marshalJSON(resp.V2())
		}
		return marshalJSON(resp.V1())
	}
}

// tagValues serves /api/search/tag/<name>/values (v1) and the v2 form.
// Grafana's extra tag=<name> parameter is ignored, as Tempo does.
func (a *API) tagValues(v2 bool) queryFunc {
	return func(ctx context.Context, tenantID string, r *http.Request) (*response, error) {
		req, err := search.ParseTagValuesRequest(r.PathValue("name"), v2, r.URL.Query())
		if err != nil {
			return nil, err
		}
		metas, err := a.tagRequestBlocks(ctx, tenantID, req.Start, req.End)
		if err != nil {
			return nil, err
		}
		resp, err := a.engine.TagValues(ctx, tenantID, metas, a.headSource(), req)
		if err != nil {
			return nil, err
		}
		if v2 {
			return marshalJSON(resp.V2())
		}
		return marshalJSON(resp.V1())
	}
}

// metricsQuery serves /api/metrics/query_range and /api/metrics/query.
// The search engine has no TraceQL metrics yet: a clear 400 (Grafana shows
// the body), never a 404 that reads like a wrong URL.
func (a *API) metricsQuery(rangeQuery bool) queryFunc {
	return func(ctx context.Context, tenantID string, r *http.Request) (*response, error) {
		req, err := search.ParseMetricsRequest(r.URL.Query(), !rangeQuery)
		if err != nil {
			return nil, err
		}
		metas, err := a.blocks.get(ctx, tenantID)
		if err != nil {
			return nil, err
		}
		if rangeQuery {
			resp, err := a.engine.MetricsQueryRange(ctx, tenantID, metas, a.headSource(), req)
			if err != nil {
				return nil, err
			}
			return marshalJSON(resp)
		}
		resp, err := a.engine.MetricsQueryInstant(ctx, tenantID, metas, a.headSource(), req)
		if err != nil {
			return nil, err
		}
		return marshalJSON(resp)
	}
}

func marshalJSON(v any) (*response, error) {
	body, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return jsonResponse(body), nil
}
