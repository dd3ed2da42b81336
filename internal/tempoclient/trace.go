package tempoclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/tracectl/tracectl/internal/render"
)

// Encoding is how a trace is asked for.
type Encoding int

const (
	// Protobuf asks for application/protobuf, as Grafana does: smaller and
	// faster to decode.
	Protobuf Encoding = iota
	// JSON asks for application/json.
	JSON
)

func (e Encoding) accept() string {
	if e == JSON {
		return "application/json"
	}
	return "application/protobuf"
}

// TraceRequest narrows a trace-by-ID request.
type TraceRequest struct {
	// Start and End (Unix seconds on the wire) limit the blocks searched;
	// zero means unbounded.
	Start, End time.Time
	Encoding   Encoding
}

func (r TraceRequest) query() url.Values {
	q := url.Values{}
	if !r.Start.IsZero() {
		q.Set("start", strconv.FormatInt(r.Start.Unix(), 10))
	}
	if !r.End.IsZero() {
		q.Set("end", strconv.FormatInt(r.End.Unix(), 10))
	}
	return q
}

// TraceResult is a trace found by ID.
type TraceResult struct {
	Trace ptrace.Traces
	// InspectedBytes is what the server read to answer (v2 only; 0 if not
	// reported).
	InspectedBytes uint64
	// Partial is set when the server says the trace was cut short (v2
	// status PARTIAL, e.g. it exceeded the maximum trace size); Message is
	// the server's explanation.
	Partial bool
	Message string
	// API is the endpoint that answered: "v2" or "v1".
	API string
}

// TraceByID fetches a trace the way Grafana does: /api/v2/traces/<id>, and
// only when that endpoint answers 404 (an older Tempo without it),
// /api/traces/<id>. id is hex (1–32 digits, any case). A trace the server
// does not have is ErrNotFound.
func (c *Client) TraceByID(ctx context.Context, id string, req TraceRequest) (*TraceResult, error) {
	res, err := c.TraceByIDV2(ctx, id, req)
	var se *StatusError
	if errors.As(err, &se) && se.Code == http.StatusNotFound {
		return c.TraceByIDV1(ctx, id, req)
	}
	return res, err
}

// TraceByIDV2 calls GET /api/v2/traces/<id>. Tempo answers a trace it does
// not have with 200 and an empty trace, which is ErrNotFound here; a 404
// (the endpoint itself missing) is a *StatusError wrapping ErrNotFound.
func (c *Client) TraceByIDV2(ctx context.Context, id string, req TraceRequest) (*TraceResult, error) {
	what := "getting trace " + id
	a, err := c.get(ctx, "/api/v2/traces/"+url.PathEscape(id), req.query(), req.Encoding.accept())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if a.status != http.StatusOK {
		return nil, c.statusError(what, a)
	}
	var res *TraceResult
	if isProtobuf(a.contentType) {
		res, err = decodeV2Proto(a.body)
	} else {
		res, err = decodeV2JSON(a.body)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w: decoding the answer of %s (%s): %v", what, ErrProtocol, c.base.Host, contentTypeName(a.contentType), err)
	}
	if res.Trace.SpanCount() == 0 {
		return nil, fmt.Errorf("%s: trace %w", what, ErrNotFound)
	}
	res.API = "v2"
	return res, nil
}

// TraceByIDV1 calls GET /api/traces/<id>. Tempo answers a trace it does not
// have with 404 and no body: ErrNotFound. A router's "404 page not found"
// (no such endpoint) is a *StatusError wrapping ErrNotFound.
func (c *Client) TraceByIDV1(ctx context.Context, id string, req TraceRequest) (*TraceResult, error) {
	what := "getting trace " + id
	a, err := c.get(ctx, "/api/traces/"+url.PathEscape(id), req.query(), req.Encoding.accept())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if a.status == http.StatusNotFound {
		if strings.TrimSpace(string(a.body)) == "404 page not found" {
			// A router's answer for a path it does not know (Tempo's
			// own not-found has no body): the endpoint is missing.
			return nil, c.statusError(what, a)
		}
		return nil, fmt.Errorf("%s: trace %w", what, ErrNotFound)
	}
	if a.status != http.StatusOK {
		return nil, c.statusError(what, a)
	}
	var td ptrace.Traces
	if isProtobuf(a.contentType) {
		td, err = (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(a.body)
	} else {
		td, err = render.UnmarshalTempoTrace(a.body)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w: decoding the answer of %s (%s): %v", what, ErrProtocol, c.base.Host, contentTypeName(a.contentType), err)
	}
	if td.SpanCount() == 0 {
		return nil, fmt.Errorf("%s: trace %w", what, ErrNotFound)
	}
	return &TraceResult{Trace: td, API: "v1"}, nil
}

func isProtobuf(ct string) bool {
	ct = strings.ToLower(ct)
	return strings.Contains(ct, "protobuf") || strings.Contains(ct, "x-protobuf")
}

func contentTypeName(ct string) string {
	if ct == "" {
		return "no content type"
	}
	return ct
}

// decodeV2JSON reads {"trace":{…},"metrics":{"inspectedBytes":"N"},
// "status":"PARTIAL","message":"…"}.
func decodeV2JSON(body []byte) (*TraceResult, error) {
	var resp struct {
		Trace   json.RawMessage `json:"trace"`
		Metrics struct {
			InspectedBytes json.Number `json:"inspectedBytes"`
		} `json:"metrics"`
		Status  json.RawMessage `json:"status"`
		Message string          `json:"message"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		return nil, err
	}
	res := &TraceResult{Trace: ptrace.NewTraces(), Message: resp.Message}
	if len(resp.Trace) > 0 && string(resp.Trace) != "null" {
		td, err := render.UnmarshalTempoTrace(resp.Trace)
		if err != nil {
			return nil, err
		}
		res.Trace = td
	}
	if s := strings.Trim(string(resp.Metrics.InspectedBytes), `"`); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("metrics.inspectedBytes %q: %v", s, err)
		}
		res.InspectedBytes = n
	}
	switch strings.Trim(string(resp.Status), `"`) {
	case "PARTIAL", "1":
		res.Partial = true
	}
	return res, nil
}

// decodeV2Proto reads a tempopb.TraceByIDResponse: 1 trace (a Trace whose
// field 1 is repeated ResourceSpans, the same bytes as OTLP TracesData),
// 2 metrics {1 inspectedBytes}, 3 status (1 = PARTIAL), 4 message.
func decodeV2Proto(b []byte) (*TraceResult, error) {
	res := &TraceResult{Trace: ptrace.NewTraces()}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return nil, protowire.ParseError(n)
			}
			td, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(v)
			if err != nil {
				return nil, err
			}
			res.Trace = td
			b = b[n:]
		case num == 2 && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return nil, protowire.ParseError(n)
			}
			ib, err := metricsInspectedBytes(v)
			if err != nil {
				return nil, err
			}
			res.InspectedBytes = ib
			b = b[n:]
		case num == 3 && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return nil, protowire.ParseError(n)
			}
			res.Partial = v == 1
			b = b[n:]
		case num == 4 && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return nil, protowire.ParseError(n)
			}
			res.Message = string(v)
			b = b[n:]
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return nil, protowire.ParseError(n)
			}
			b = b[n:]
		}
	}
	return res, nil
}

func metricsInspectedBytes(b []byte) (uint64, error) {
	var out uint64
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0, protowire.ParseError(n)
		}
		b = b[n:]
		if num == 1 && typ == protowire.VarintType {
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return 0, protowire.ParseError(n)
			}
			out = v
			b = b[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return 0, protowire.ParseError(n)
		}
		b = b[n:]
	}
	return out, nil
}
