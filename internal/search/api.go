// Package search answers Tempo-style searches, tag-name and tag-value
// queries and TraceQL metrics (query_range, instant) over the unflushed
// head and the blocks of one tenant. It owns
// request parsing (Tempo's /api/search parameters), the evaluation plan
// (time pruning, column projection, row-group push-down, a bounded pool of
// block jobs, stopping at the limit) and the exact JSON shapes of Tempo's
// answers. It does not serve HTTP, list the bucket or hold the head: the
// caller (internal/query, cmd/tracectl) passes block metas and a
// HeadSource.
package search

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/traceql"
)

// Defaults of Tempo's search API.
const (
	DefaultLimit           = 20
	DefaultSpansPerSpanSet = 3
)

// HeadSource is the unflushed data of a server (internal/server). The
// engine calls ForEachHeadTrace once per query; fn gets every trace of the
// tenant the head holds, in the pieces it holds them (parts may repeat
// spans), and returns false to stop. fn must not keep parts after it
// returns. Implementations must be safe for concurrent use.
type HeadSource interface {
	ForEachHeadTrace(tenant string, fn func(id block.TraceID, parts []ptrace.Traces) bool)
}

// Request is one search.
type Request struct {
	// Query is the TraceQL query; `tags=` searches are translated to one.
	Query *traceql.Query
	// Tags is true for a legacy `tags=` search (no TraceQL): the answer
	// then carries no span sets and no serviceStats, as Tempo's.
	Tags bool
	// MinDuration and MaxDuration bound the trace duration (0: no bound).
	MinDuration, MaxDuration time.Duration
	// Limit is the most traces returned (default 20); SpansPerSpanSet the
	// most spans per span set (default 3).
	Limit, SpansPerSpanSet int
	// Start and End bound the traces' time (zero: unbounded). Blocks
	// whose [start, end] misses the window are not read.
	Start, End time.Time
}

// Response is Tempo's SearchResponse, JSON exactly as Tempo writes it:
// only the fields Grafana's strict decoder knows.
type Response struct {
	Traces  []*TraceMetadata `json:"traces"`
	Metrics *Metrics         `json:"metrics"`
}

// TraceMetadata is one search result.
type TraceMetadata struct {
	TraceID           string                  `json:"traceID"` // hex, no leading zeros
	RootServiceName   string                  `json:"rootServiceName"`
	RootTraceName     string                  `json:"rootTraceName,omitempty"`
	StartTimeUnixNano Uint64String            `json:"startTimeUnixNano,omitempty"`
	DurationMs        uint32                  `json:"durationMs,omitempty"`
	SpanSet           *SpanSet                `json:"spanSet,omitempty"`
	SpanSets          []*SpanSet              `json:"spanSets,omitempty"`
	ServiceStats      map[string]ServiceStats `json:"serviceStats,omitempty"`
}

// ServiceStats counts one service's spans in a trace.
type ServiceStats struct {
	SpanCount  uint32 `json:"spanCount,omitempty"`
	ErrorCount uint32 `json:"errorCount,omitempty"`
}

// SpanSet is the spans a spanset filter matched in one trace (at most
// SpansPerSpanSet of them) and how many matched in all.
type SpanSet struct {
	Spans      []*Span    `json:"spans"`
	Matched    uint32     `json:"matched"`
	Attributes []KeyValue `json:"attributes,omitempty"`
}

// Span is a matched span with the attributes the query refers to.
type Span struct {
	SpanID            string       `json:"spanID"` // 16 hex digits
	Name              string       `json:"name,omitempty"`
	StartTimeUnixNano Uint64String `json:"startTimeUnixNano,omitempty"`
	DurationNanos     Uint64String `json:"durationNanos,omitempty"`
	Attributes        []KeyValue   `json:"attributes,omitempty"`
}

// KeyValue is an OTLP attribute in protobuf-JSON form.
type KeyValue struct {
	Key   string   `json:"key"`
	Value AnyValue `json:"value"`
}

// AnyValue is an OTLP value: exactly one of the fields is used, by Type.
type AnyValue struct {
	Type traceql.StaticType // TypeString, TypeInt, TypeFloat, TypeBool
	S    string
	I    int64
	F    float64
	B    bool
}

// MarshalJSON writes {"stringValue":…}, {"intValue":"…"}, {"doubleValue":…}
// or {"boolValue":…}.
func (v AnyValue) MarshalJSON() ([]byte, error) {
	switch v.Type {
	case traceql.TypeInt:
		return []byte(`{"intValue":"` + strconv.FormatInt(v.I, 10) + `"}`), nil
	case traceql.TypeFloat:
		b, err := json.Marshal(v.F)
		if err != nil {
			return nil, err
		}
		return append(append([]byte(`{"doubleValue":`), b...), '}'), nil
	case traceql.TypeBool:
		return []byte(`{"boolValue":` + strconv.FormatBool(v.B) + `}`), nil
	}
	b, err := json.Marshal(v.S)
	if err != nil {
		return nil, err
	}
	return append(append([]byte(`{"stringValue":`), b...), '}'), nil
}

// Uint64String is a 64-bit number written as a JSON string (protobuf-JSON).
type Uint64String uint64

// MarshalJSON writes the number in quotes.
func (n Uint64String) MarshalJSON() ([]byte, error) {
	return []byte(`"` + strconv.FormatUint(uint64(n), 10) + `"`), nil
}

// UnmarshalJSON reads the number quoted or bare.
func (n *Uint64String) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "" || s == "null" {
		*n = 0
		return nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return fmt.Errorf("want a 64-bit unsigned number, got %s", b)
	}
	*n = Uint64String(v)
	return nil
}

// Metrics is Tempo's SearchMetrics (zero fields left out).
type Metrics struct {
	InspectedTraces uint32       `json:"inspectedTraces,omitempty"`
	InspectedBytes  Uint64String `json:"inspectedBytes,omitempty"`
	TotalBlocks     uint32       `json:"totalBlocks,omitempty"`
	CompletedJobs   uint32       `json:"completedJobs,omitempty"`
	TotalJobs       uint32       `json:"totalJobs,omitempty"`
	TotalBlockBytes Uint64String `json:"totalBlockBytes,omitempty"`
	InspectedSpans  Uint64String `json:"inspectedSpans,omitempty"`
}

// Tag scopes of /api/v2/search/tags, in Tempo's order of the answer.
const (
	ScopeEvent           = "event"
	ScopeLink            = "link"
	ScopeResource        = "resource"
	ScopeSpan            = "span"
	ScopeInstrumentation = "instrumentation"
	ScopeIntrinsic       = "intrinsic"
)

// TagsRequest asks for attribute names.
type TagsRequest struct {
	// Scope limits the answer to one scope ("" or "all": every scope).
	Scope string
	// Query, when set, limits the names to spans matching it (v2).
	Query      *traceql.Query
	Start, End time.Time
	// Limit bounds the names returned per scope (0: no bound).
	Limit int
}

// TagNamesResponse holds the names by scope; V1 and V2 give the JSON
// shapes of /api/search/tags and /api/v2/search/tags.
type TagNamesResponse struct {
	Scopes  []TagScope
	Metrics *Metrics
}

// TagScope is one scope's sorted attribute names.
type TagScope struct {
	Name string   `json:"name"`
	Tags []string `json:"tags"`
}

// TagNamesV1 is the JSON of /api/search/tags.
type TagNamesV1 struct {
	TagNames []string `json:"tagNames"`
	Metrics  *Metrics `json:"metrics"`
}

// TagNamesV2 is the JSON of /api/v2/search/tags.
type TagNamesV2 struct {
	Scopes  []TagScope `json:"scopes"`
	Metrics *Metrics   `json:"metrics"`
}

// V2 is the v2 answer.
func (r *TagNamesResponse) V2() *TagNamesV2 {
	return &TagNamesV2{Scopes: r.Scopes, Metrics: r.Metrics}
}

// TagValuesRequest asks for the values of one attribute.
type TagValuesRequest struct {
	// Tag is the attribute: scoped (`resource.service.name`, `span.x`,
	// `.x`, an intrinsic such as `status`) for v2, a bare name
	// (`service.name`, any scope) for v1.
	Tag string
	// V2 selects the v2 meaning of Tag and typed values.
	V2 bool
	// Query, when set, limits the values to spans matching it; Grafana
	// sends unfinished editor text, so parse it with traceql.ParseLenient.
	Query      *traceql.Query
	Start, End time.Time
	// Limit bounds the values returned (0: no bound).
	Limit int
}

// TagValue is a typed value of /api/v2/search/tag/<tag>/values: Type is
// "string", "int", "float", "bool", "duration" or "keyword".
type TagValue struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

// TagValuesResponse holds the distinct values; V1 and V2 give the JSON.
type TagValuesResponse struct {
	Values  []TagValue
	Metrics *Metrics
}

// TagValuesV1 is the JSON of /api/search/tag/<tag>/values.
type TagValuesV1 struct {
	TagValues []string `json:"tagValues"`
	Metrics   *Metrics `json:"metrics"`
}

// TagValuesV2 is the JSON of /api/v2/search/tag/<tag>/values.
type TagValuesV2 struct {
	TagValues []TagValue `json:"tagValues"`
	Metrics   *Metrics   `json:"metrics"`
}

// V2 is the v2 answer.
func (r *TagValuesResponse) V2() *TagValuesV2 {
	return &TagValuesV2{TagValues: r.Values, Metrics: r.Metrics}
}

// ErrBadRequest is wrapped by every error caused by the request (bad
// parameter, invalid TraceQL): answer those with 400 and the message.
var ErrBadRequest = errors.New("bad request")

// ErrUnsupported is wrapped by errors for queries tracectl does not
// answer (yet): answer those with 400 or 501.
var ErrUnsupported = errors.New("not supported")
