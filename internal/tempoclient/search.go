package tempoclient

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// SearchRequest is one GET /api/search. Zero fields are left out, so the
// server applies its defaults (Tempo: limit 20, spss 3; without start and
// end Tempo searches only recent data it holds in memory).
type SearchRequest struct {
	// Query is TraceQL (`{ resource.service.name = "frontend" }`).
	Query string
	// Tags is the legacy logfmt search (`service.name=frontend`), used
	// instead of Query.
	Tags                     string
	MinDuration, MaxDuration time.Duration
	Limit, SpansPerSpanSet   int
	Start, End               time.Time
}

// Values is the request as /api/search query parameters, zero fields left
// out; tracectl's own search engine reads the same parameters.
func (r SearchRequest) Values() url.Values {
	q := url.Values{}
	set := func(k, v string) {
		if v != "" {
			q.Set(k, v)
		}
	}
	set("q", r.Query)
	set("tags", r.Tags)
	if r.MinDuration > 0 {
		q.Set("minDuration", r.MinDuration.String())
	}
	if r.MaxDuration > 0 {
		q.Set("maxDuration", r.MaxDuration.String())
	}
	if r.Limit > 0 {
		q.Set("limit", strconv.Itoa(r.Limit))
	}
	if r.SpansPerSpanSet > 0 {
		q.Set("spss", strconv.Itoa(r.SpansPerSpanSet))
	}
	if !r.Start.IsZero() {
		q.Set("start", strconv.FormatInt(r.Start.Unix(), 10))
	}
	if !r.End.IsZero() {
		q.Set("end", strconv.FormatInt(r.End.Unix(), 10))
	}
	return q
}

// SearchResult is Tempo's SearchResponse, decoded; Raw is the body as the
// server sent it (for callers that pass Tempo's JSON on).
type SearchResult struct {
	Traces  []SearchTrace `json:"traces"`
	Metrics SearchMetrics `json:"metrics"`
	Raw     []byte        `json:"-"`
}

// SearchTrace is one search result.
type SearchTrace struct {
	TraceID           string                  `json:"traceID"`
	RootServiceName   string                  `json:"rootServiceName"`
	RootTraceName     string                  `json:"rootTraceName"`
	StartTimeUnixNano uint64                  `json:"startTimeUnixNano,string"`
	DurationMs        uint32                  `json:"durationMs"`
	SpanSets          []SearchSpanSet         `json:"spanSets"`
	ServiceStats      map[string]ServiceStats `json:"serviceStats"`
}

// SearchSpanSet is the spans a filter matched in a trace (some of them).
type SearchSpanSet struct {
	Spans   []SearchSpan `json:"spans"`
	Matched uint32       `json:"matched"`
}

// SearchSpan is one matched span.
type SearchSpan struct {
	SpanID            string `json:"spanID"`
	Name              string `json:"name"`
	StartTimeUnixNano uint64 `json:"startTimeUnixNano,string"`
	DurationNanos     uint64 `json:"durationNanos,string"`
}

// ServiceStats counts one service's spans in a trace.
type ServiceStats struct {
	SpanCount  uint32 `json:"spanCount"`
	ErrorCount uint32 `json:"errorCount"`
}

// SearchMetrics is what the search cost the server.
type SearchMetrics struct {
	InspectedTraces uint32 `json:"inspectedTraces"`
	InspectedBytes  uint64 `json:"inspectedBytes,string"`
	TotalBlocks     uint32 `json:"totalBlocks"`
	CompletedJobs   uint32 `json:"completedJobs"`
	TotalJobs       uint32 `json:"totalJobs"`
	TotalBlockBytes uint64 `json:"totalBlockBytes,string"`
}

// Search calls GET /api/search. A query the server refuses (bad TraceQL,
// bad parameter) is a *StatusError wrapping ErrBadRequest with the
// server's message.
func (c *Client) Search(ctx context.Context, req SearchRequest) (*SearchResult, error) {
	what := "searching"
	a, err := c.get(ctx, "/api/search", req.Values(), "application/json")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if a.status != http.StatusOK {
		return nil, c.statusError(what, a)
	}
	var res SearchResult
	if err := json.Unmarshal(a.body, &res); err != nil {
		return nil, fmt.Errorf("%s: %w: decoding the answer of %s (%s): %v", what, ErrProtocol, c.base.Host, contentTypeName(a.contentType), err)
	}
	res.Raw = bytes.TrimSpace(a.body)
	return &res, nil
}
