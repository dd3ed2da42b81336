package query

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/tracectl/tracectl/internal/blocks"
	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/render"
	"github.com/tracectl/tracectl/internal/storage"
)

// ParseTraceID parses a trace ID as Tempo's API does: 1 to 32 hex digits in
// any case, left-padded with zeros. Its errors are Tempo's texts.
func ParseTraceID(s string) (block.TraceID, error) {
	for i, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return block.TraceID{}, fmt.Errorf("trace IDs can only contain hex characters: invalid character '%c' at position %d", c, i+1)
		}
	}
	if len(s) > 32 {
		return block.TraceID{}, fmt.Errorf("trace IDs can't be larger than 128 bits")
	}
	if s == "" {
		return block.TraceID{}, fmt.Errorf("trace ID is empty; give 1 to 32 hex digits")
	}
	return block.ParseTraceID(s)
}

const (
	contentTypeProtobuf = "application/protobuf"
	// TraceByIDResponse.status values.
	statusComplete = 0
	statusPartial  = 1
)

// wantsProtobuf reports whether the client asked for protobuf (Grafana
// sends exactly "Accept: application/protobuf").
func wantsProtobuf(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept") {
		for _, part := range strings.Split(v, ",") {
			mt, _, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err == nil && (mt == contentTypeProtobuf || mt == "application/x-protobuf") {
				return true
			}
		}
	}
	return false
}

// parseRange reads the optional start and end parameters (Unix seconds).
func parseRange(r *http.Request) (start, end time.Time, err error) {
	q := r.URL.Query()
	parse := func(name string) (time.Time, error) {
		v := q.Get(name)
		if v == "" {
			return time.Time{}, nil
		}
		n, perr := strconv.ParseInt(v, 10, 64)
		if perr != nil || n < 0 {
			return time.Time{}, errorf(http.StatusBadRequest, "invalid %s %q: give Unix seconds (e.g. %d)", name, v, time.Now().Unix())
		}
		if n == 0 {
			return time.Time{}, nil
		}
		return time.Unix(n, 0), nil
	}
	if start, err = parse("start"); err != nil {
		return
	}
	if end, err = parse("end"); err != nil {
		return
	}
	if !start.IsZero() && !end.IsZero() && end.Before(start) {
		err = errorf(http.StatusBadRequest, "invalid start (%d) and end (%d): end must not be before start", start.Unix(), end.Unix())
	}
	return
}

// traceResult is one trace found by ID, combined from head and blocks.
type traceResult struct {
	trace          ptrace.Traces
	found          bool
	inspectedBytes uint64
	partialMessage string // set when the trace was cut to MaxTraceBytes
}

// FindTrace looks a trace up in the head and every block of tenant,
// combining the parts. It is the API's trace-by-ID, for other callers.
func (a *API) FindTrace(ctx context.Context, tenantID string, id block.TraceID, start, end time.Time) (ptrace.Traces, bool, error) {
	res, err := a.findTrace(ctx, tenantID, id, start, end)
	if err != nil {
		return ptrace.Traces{}, false, err
	}
	return res.trace, res.found, nil
}

func (a *API) findTrace(ctx context.Context, tenantID string, id block.TraceID, start, end time.Time) (*traceResult, error) {
	// The head first, then the block list: the server announces a stored
	// block before its head lets the block's traces go, so a trace that
	// leaves the head after this look is in a block of the list below.
	// (The other order missed a trace stored in between: 1 of 11,000
	// queries in TestBlocksCompactBesideLiveServe.)
	var parts []ptrace.Traces
	if a.cfg.Head != nil {
		parts = a.cfg.Head.FindInHead(tenantID, id)
	}
	metas, gen, err := a.blocks.getGen(ctx, tenantID)
	if err != nil {
		return nil, fmt.Errorf("listing blocks of tenant %s: %w", tenantID, err)
	}
	opts := blocks.FindOptions{Start: start, End: end, Concurrency: a.cfg.BlockConcurrency, Blooms: a.blooms}
	res, err := blocks.FindTrace(ctx, a.cfg.Bucket, metas, id, opts)
	if gone := goneBlocks(res); len(gone) > 0 {
		// A block was deleted since the list was read (compacted
		// elsewhere): its traces are in a block the list does not hold
		// yet. Read the list again and ask once more, rather than answer
		// without them until the next poll.
		if fresh, ok := a.blocks.refresh(ctx, tenantID, gen, gone); ok {
			a.cfg.Logger.Info("a block was gone; trace by ID asked again with the block list read anew", "tenant", tenantID, "trace", id.Hex())
			res, err = blocks.FindTrace(ctx, a.cfg.Bucket, fresh, id, opts)
		}
	}
	if err != nil {
		if len(parts) == 0 {
			return nil, err
		}
		a.cfg.Logger.Warn("trace by ID answered from the head only", "tenant", tenantID, "trace", id.Hex(), "err", err)
		res = &blocks.FindResult{Trace: ptrace.NewTraces()}
	}
	for _, p := range res.Problems {
		a.cfg.Logger.Warn("block skipped in trace by ID", "tenant", tenantID, "trace", id.Hex(), "problem", p.Error())
		a.m.skipped.WithLabelValues("trace_by_id").Inc()
	}
	out := &traceResult{inspectedBytes: uint64(max(res.Stats.InspectedBytes, 0))}
	all := parts
	if res.Found {
		all = append([]ptrace.Traces{res.Trace}, parts...)
	}
	if len(all) == 0 {
		out.trace = ptrace.NewTraces()
		return out, nil
	}
	out.trace = blocks.Combine(all...)
	out.found = out.trace.SpanCount() > 0
	if len(all) > 1 || res.Stats.BlocksFound > 1 {
		sortCombined(out.trace)
	}
	out.inspectedBytes += uint64((&ptrace.ProtoMarshaler{}).TracesSize(out.trace))
	if size := (&ptrace.ProtoMarshaler{}).TracesSize(out.trace); int64(size) > a.cfg.MaxTraceBytes {
		total := out.trace.SpanCount()
		out.trace = truncateTrace(out.trace, a.cfg.MaxTraceBytes)
		out.partialMessage = fmt.Sprintf("trace exceeds the maximum of %d bytes (%d bytes, %d spans); the first %d spans are returned",
			a.cfg.MaxTraceBytes, size, total, out.trace.SpanCount())
	}
	return out, nil
}

// goneBlocks are the blocks of res's problems whose objects are not
// there: deleted after the list naming them was read.
func goneBlocks(res *blocks.FindResult) []string {
	if res == nil {
		return nil
	}
	var ids []string
	for _, p := range res.Problems {
		if storage.KindOf(p.Err) == storage.KindNotFound {
			ids = append(ids, p.BlockID)
		}
	}
	return ids
}

// sortCombined orders the spans of each scope by start time and each span's
// events by time, as Tempo does when it combines parts of a trace
// (observed: trace-v2-extra-split-across-blocks). A trace from one part
// keeps its stored order.
func sortCombined(td ptrace.Traces) {
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		sss := rss.At(i).ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			spans := sss.At(j).Spans()
			spans.Sort(func(a, b ptrace.Span) bool { return a.StartTimestamp() < b.StartTimestamp() })
			for k := 0; k < spans.Len(); k++ {
				ev := spans.At(k).Events()
				if ev.Len() > 1 {
					ev.Sort(func(a, b ptrace.SpanEvent) bool { return a.Timestamp() < b.Timestamp() })
				}
			}
		}
	}
}

// truncateTrace keeps the longest prefix of td's spans (in document order)
// whose protobuf encoding fits maxBytes.
func truncateTrace(td ptrace.Traces, maxBytes int64) ptrace.Traces {
	sizer := &ptrace.ProtoMarshaler{}
	lo, hi := 0, td.SpanCount() // lo fits, hi may not
	best := firstSpans(td, 0)
	for lo < hi {
		mid := (lo + hi + 1) / 2
		cand := firstSpans(td, mid)
		if int64(sizer.TracesSize(cand)) <= maxBytes {
			lo, best = mid, cand
		} else {
			hi = mid - 1
		}
	}
	return best
}

// firstSpans copies the first n spans of td with their resources and scopes.
func firstSpans(td ptrace.Traces, n int) ptrace.Traces {
	out := ptrace.NewTraces()
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len() && n > 0; i++ {
		rs := rss.At(i)
		ors := out.ResourceSpans().AppendEmpty()
		rs.Resource().CopyTo(ors.Resource())
		ors.SetSchemaUrl(rs.SchemaUrl())
		for j := 0; j < rs.ScopeSpans().Len() && n > 0; j++ {
			ss := rs.ScopeSpans().At(j)
			oss := ors.ScopeSpans().AppendEmpty()
			ss.Scope().CopyTo(oss.Scope())
			oss.SetSchemaUrl(ss.SchemaUrl())
			for k := 0; k < ss.Spans().Len() && n > 0; k++ {
				ss.Spans().At(k).CopyTo(oss.Spans().AppendEmpty())
				n--
			}
		}
	}
	return out
}

// traceByID serves /api/traces/<id> (v1) and /api/v2/traces/<id>.
func (a *API) traceByID(v2 bool) queryFunc {
	return func(ctx context.Context, tenantID string, r *http.Request) (*response, error) {
		id, err := ParseTraceID(r.PathValue("id"))
		if err != nil {
			return nil, &httpError{status: http.StatusBadRequest, msg: err.Error()}
		}
		start, end, err := parseRange(r)
		if err != nil {
			return nil, err
		}
		res, err := a.findTrace(ctx, tenantID, id, start, end)
		if err != nil {
			return nil, fmt.Errorf("finding trace %s: %w", id.Hex(), err)
		}
		proto := wantsProtobuf(r)
		if !v2 {
			if !res.found {
				// Tempo: 404, empty body, no content type.
				return &response{status: http.StatusNotFound}, nil
			}
			if proto {
				body, err := marshalTraceProto(res.trace)
				if err != nil {
					return nil, err
				}
				return &response{status: http.StatusOK, contentType: contentTypeProtobuf, body: body}, nil
			}
			body, err := marshalTraceV1JSON(res.trace)
			if err != nil {
				return nil, err
			}
			return jsonResponse(body), nil
		}
		if proto {
			body, err := marshalTraceByIDProto(res)
			if err != nil {
				return nil, err
			}
			return &response{status: http.StatusOK, contentType: contentTypeProtobuf, body: body}, nil
		}
		body, err := marshalTraceByIDJSON(res)
		if err != nil {
			return nil, err
		}
		return jsonResponse(body), nil
	}
}

// marshalTraceV1JSON writes Tempo's v1 body: {"batches":[<ResourceSpans>…]}.
func marshalTraceV1JSON(td ptrace.Traces) ([]byte, error) {
	body, err := render.MarshalTempoTrace(td)
	if err != nil {
		return nil, err
	}
	const prefix = `{"resourceSpans":`
	if !bytes.HasPrefix(body, []byte(prefix)) {
		return []byte(`{"batches":[]}`), nil
	}
	return append([]byte(`{"batches":`), body[len(prefix):]...), nil
}

// marshalTraceByIDJSON writes the v2 JSON body. Field order follows the
// proto (trace, metrics, status, message), as Tempo's encoder does.
func marshalTraceByIDJSON(res *traceResult) ([]byte, error) {
	var buf bytes.Buffer
	var td *ptrace.Traces
	if res.found {
		td = &res.trace
	}
	if err := render.TraceByIDV2(&buf, td, res.inspectedBytes); err != nil {
		return nil, err
	}
	if res.partialMessage == "" {
		return buf.Bytes(), nil
	}
	msg, _ := json.Marshal(res.partialMessage)
	body := bytes.TrimSuffix(buf.Bytes(), []byte("}"))
	body = append(body, `,"status":"PARTIAL","message":`...)
	body = append(body, msg...)
	return append(body, '}'), nil
}

// marshalTraceProto encodes td as tempopb.Trace (the wire form of OTLP
// TracesData) with fields in field-number order, as Tempo's encoder writes
// them: pdata's encoder writes them in reverse, so the message goes
// through the OTLP protobuf types once more.
func marshalTraceProto(td ptrace.Traces) ([]byte, error) {
	raw, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(td)
	if err != nil {
		return nil, fmt.Errorf("encoding trace: %w", err)
	}
	var msg tracepb.TracesData
	if err := proto.Unmarshal(raw, &msg); err != nil {
		return nil, fmt.Errorf("encoding trace: %w", err)
	}
	return proto.MarshalOptions{Deterministic: true}.Marshal(&msg)
}

// marshalTraceByIDProto writes tempopb.TraceByIDResponse: 1 trace (a Trace,
// which has the wire form of OTLP TracesData), 2 metrics {1 inspectedBytes},
// 3 status, 4 message. The trace and metrics fields are always present:
// Grafana reads an absent trace as a failure, and Tempo's miss is the four
// bytes 0a 00 12 00.
func marshalTraceByIDProto(res *traceResult) ([]byte, error) {
	var trace []byte
	if res.found {
		var err error
		trace, err = marshalTraceProto(res.trace)
		if err != nil {
			return nil, err
		}
	}
	var metrics []byte
	if res.found && res.inspectedBytes > 0 {
		metrics = protowire.AppendTag(metrics, 1, protowire.VarintType)
		metrics = protowire.AppendVarint(metrics, res.inspectedBytes)
	}
	out := make([]byte, 0, len(trace)+32+len(res.partialMessage))
	out = protowire.AppendTag(out, 1, protowire.BytesType)
	out = protowire.AppendBytes(out, trace)
	out = protowire.AppendTag(out, 2, protowire.BytesType)
	out = protowire.AppendBytes(out, metrics)
	if res.partialMessage != "" {
		out = protowire.AppendTag(out, 3, protowire.VarintType)
		out = protowire.AppendVarint(out, statusPartial)
		out = protowire.AppendTag(out, 4, protowire.BytesType)
		out = protowire.AppendString(out, res.partialMessage)
	}
	return out, nil
}
