package query

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/search"
	"github.com/tracectl/tracectl/internal/traceql"
)

// Tempo's streaming query service (tempopb.StreamingQuerier), which
// Grafana's Tempo data source uses instead of /api/search when the data
// source's "streaming" setting is on. Grafana dials the host:port of the
// data source URL and speaks gRPC over HTTP/2 — cleartext (h2c) for an
// http:// URL — so it is served on the HTTP API's own port: Handler
// passes gRPC requests here, and the server must accept unencrypted
// HTTP/2 (EnableH2C).
//
// Messages are encoded by hand with protowire from the field numbers of
// Tempo's public API (SearchRequest, SearchResponse, TraceSearchMetadata,
// SpanSet, Span, ServiceStats, SearchMetrics; attributes are OTLP
// KeyValues), so no generated code is needed.

const streamingService = "tempopb.StreamingQuerier"

// maxStreamMessage keeps each streamed message under gRPC's default 4 MiB
// receive limit (Grafana keeps that default).
const maxStreamMessage = 3 << 20

// rawCodec hands gRPC message bytes through untouched; the handlers encode
// and decode with protowire.
type rawCodec struct{}

func (rawCodec) Name() string { return "proto" }

func (rawCodec) Marshal(v any) ([]byte, error) {
	if b, ok := v.(*[]byte); ok {
		return *b, nil
	}
	return nil, fmt.Errorf("rawCodec: cannot marshal %T", v)
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	b, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("rawCodec: cannot unmarshal into %T", v)
	}
	*b = append((*b)[:0], data...)
	return nil
}

// EnableH2C lets s accept cleartext HTTP/2 with prior knowledge beside
// HTTP/1.1, as gRPC clients (Grafana's streaming search) connect.
func EnableH2C(s *http.Server) {
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	if s.TLSConfig != nil {
		p.SetHTTP2(true)
	}
	s.Protocols = &p
}

func (a *API) newGRPC() *grpc.Server {
	gs := grpc.NewServer(grpc.ForceServerCodec(rawCodec{}), grpc.MaxRecvMsgSize(1<<20))
	gs.RegisterService(&grpc.ServiceDesc{
		ServiceName: streamingService,
		HandlerType: (*any)(nil),
		Streams: []grpc.StreamDesc{
			{StreamName: "Search", ServerStreams: true, Handler: func(_ any, ss grpc.ServerStream) error { return a.streamSearch(ss) }},
			{StreamName: "MetricsQueryRange", ServerStreams: true, Handler: streamMetricsUnsupported},
			{StreamName: "MetricsQueryInstant", ServerStreams: true, Handler: streamMetricsUnsupported},
		},
	}, a)
	return gs
}

// isGRPC reports whether r is a gRPC call (HTTP/2, application/grpc).
func isGRPC(r *http.Request) bool {
	return r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc")
}

func streamMetricsUnsupported(_ any, _ grpc.ServerStream) error {
	return status.Error(codes.Unimplemented,
		"tracectl does not stream TraceQL metrics over gRPC; switch off streaming for metrics in the Tempo data source (metrics are then asked over HTTP, /api/metrics/query_range)")
}

// streamSearch serves StreamingQuerier/Search: the request becomes the
// parameters of /api/search, runs through the same limits and engine, and
// the whole answer is sent in as few messages as fit under
// maxStreamMessage, each carrying the metrics (Grafana appends the traces
// of every message and keeps the last metrics).
func (a *API) streamSearch(ss grpc.ServerStream) error {
	var in []byte
	if err := ss.RecvMsg(&in); err != nil {
		return err
	}
	v, err := decodeSearchRequest(in)
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "decoding tempopb.SearchRequest: %v", err)
	}
	r, err := http.NewRequestWithContext(ss.Context(), http.MethodGet, "/api/search?"+v.Encode(), nil)
	if err != nil {
		return status.Error(codes.Internal, err.Error())
	}
	md, _ := metadata.FromIncomingContext(ss.Context())
	// Grafana before plugin 13.1.5 could send the org id twice: the same
	// value repeated is one tenant.
	seen := map[string]bool{}
	for _, t := range md.Get(TenantHeader) {
		if !seen[t] {
			seen[t] = true
			r.Header.Add(TenantHeader, t)
		}
	}
	start := time.Now()
	var res *search.Response
	_, err = a.serveQuery(routeSearchStream, func(ctx context.Context, tenantID string, r *http.Request) (*response, error) {
		req, err := search.ParseRequest(r.URL.Query())
		if err != nil {
			return nil, err
		}
		res, err = a.Search(ctx, tenantID, req)
		return &response{status: http.StatusOK}, err
	}, r)
	code := http.StatusOK
	if err != nil {
		resp := a.errorResponse(routeSearchStream, r, err)
		code = resp.status
		err = status.Error(grpcCode(resp.status), string(resp.body))
	} else {
		err = sendSearch(ss, res)
	}
	a.m.requests.WithLabelValues(routeSearchStream, strconv.Itoa(code)).Inc()
	a.m.duration.WithLabelValues(routeSearchStream).Observe(time.Since(start).Seconds())
	return err
}

// grpcCode maps the HTTP status of an API error to the gRPC code a client
// acts on.
func grpcCode(httpStatus int) codes.Code {
	switch httpStatus {
	case http.StatusBadRequest:
		return codes.InvalidArgument
	case http.StatusUnauthorized:
		return codes.Unauthenticated
	case http.StatusTooManyRequests, http.StatusRequestEntityTooLarge:
		return codes.ResourceExhausted
	case http.StatusGatewayTimeout:
		return codes.DeadlineExceeded
	case http.StatusServiceUnavailable:
		return codes.Unavailable
	case 499:
		return codes.Canceled
	}
	return codes.Internal
}

func sendSearch(ss grpc.ServerStream, res *search.Response) error {
	metrics := appendSearchMetrics(nil, res.Metrics)
	var msg []byte
	sent := false
	flush := func() error {
		msg = protowire.AppendTag(msg, 2, protowire.BytesType)
		msg = protowire.AppendBytes(msg, metrics)
		err := ss.SendMsg(&msg)
		msg, sent = nil, true
		return err
	}
	for _, t := range res.Traces {
		tm := appendTraceMetadata(nil, t)
		if len(msg) > 0 && len(msg)+len(tm)+len(metrics)+32 > maxStreamMessage {
			if err := flush(); err != nil {
				return err
			}
		}
		msg = protowire.AppendTag(msg, 1, protowire.BytesType)
		msg = protowire.AppendBytes(msg, tm)
	}
	if len(msg) > 0 || !sent {
		return flush()
	}
	return nil
}

// decodeSearchRequest reads a tempopb.SearchRequest into /api/search
// parameters: 1 Tags (map), 2 MinDurationMs, 3 MaxDurationMs, 4 Limit,
// 5 start, 6 end (Unix seconds), 8 Query, 9 SpansPerSpanSet.
func decodeSearchRequest(b []byte) (url.Values, error) {
	v := url.Values{}
	tags := map[string]string{}
	err := block.WalkFields(b, func(num protowire.Number, typ protowire.Type, val []byte, n uint64) error {
		switch {
		case num == 1 && typ == protowire.BytesType:
			var k, s string
			err := block.WalkFields(val, func(num protowire.Number, typ protowire.Type, val []byte, _ uint64) error {
				if typ == protowire.BytesType && num == 1 {
					k = string(val)
				} else if typ == protowire.BytesType && num == 2 {
					s = string(val)
				}
				return nil
			})
			if err != nil {
				return err
			}
			tags[k] = s
		case num >= 2 && num <= 6 && typ == protowire.VarintType:
			if n == 0 {
				return nil
			}
			if n > math.MaxUint32 {
				return fmt.Errorf("field %d: %d does not fit in 32 bits", num, n)
			}
			switch num {
			case 2:
				v.Set("minDuration", (time.Duration(n) * time.Millisecond).String())
			case 3:
				v.Set("maxDuration", (time.Duration(n) * time.Millisecond).String())
			case 4:
				v.Set("limit", strconv.FormatUint(n, 10))
			case 5:
				v.Set("start", strconv.FormatUint(n, 10))
			case 6:
				v.Set("end", strconv.FormatUint(n, 10))
			}
		case num == 8 && typ == protowire.BytesType:
			if q := string(val); q != "" {
				v.Set("q", q)
			}
		case num == 9 && typ == protowire.VarintType:
			if n > 0 {
				v.Set("spss", strconv.FormatUint(n, 10))
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(tags) > 0 && v.Get("q") == "" {
		keys := make([]string, 0, len(tags))
		for k := range tags {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var sb strings.Builder
		for i, k := range keys {
			if i > 0 {
				sb.WriteByte(' ')
			}
			sb.WriteString(logfmtQuote(k))
			sb.WriteByte('=')
			sb.WriteString(logfmtQuote(tags[k]))
		}
		v.Set("tags", sb.String())
	}
	return v, nil
}

func logfmtQuote(s string) string {
	if s == "" || strings.ContainsAny(s, " =\"\t\n") {
		return strconv.Quote(s)
	}
	return s
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	return block.AppendBytesField(b, num, []byte(s))
}

func appendMessage(b []byte, num protowire.Number, m []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, m)
}

// appendTraceMetadata encodes a TraceSearchMetadata: 1 traceID,
// 2 rootServiceName, 3 rootTraceName, 4 startTimeUnixNano, 5 durationMs,
// 6 spanSet, 7 spanSets, 8 serviceStats (map<string, ServiceStats>).
func appendTraceMetadata(b []byte, t *search.TraceMetadata) []byte {
	b = appendString(b, 1, t.TraceID)
	b = appendString(b, 2, t.RootServiceName)
	b = appendString(b, 3, t.RootTraceName)
	b = block.AppendUvarintField(b, 4, uint64(t.StartTimeUnixNano))
	b = block.AppendUvarintField(b, 5, uint64(t.DurationMs))
	if t.SpanSet != nil {
		b = appendMessage(b, 6, appendSpanSet(nil, t.SpanSet))
	}
	for _, s := range t.SpanSets {
		b = appendMessage(b, 7, appendSpanSet(nil, s))
	}
	services := make([]string, 0, len(t.ServiceStats))
	for name := range t.ServiceStats {
		services = append(services, name)
	}
	sort.Strings(services)
	for _, name := range services {
		st := t.ServiceStats[name]
		var stats []byte
		stats = block.AppendUvarintField(stats, 1, uint64(st.SpanCount))
		stats = block.AppendUvarintField(stats, 2, uint64(st.ErrorCount))
		var entry []byte
		entry = protowire.AppendTag(entry, 1, protowire.BytesType)
		entry = protowire.AppendString(entry, name)
		entry = appendMessage(entry, 2, stats)
		b = appendMessage(b, 8, entry)
	}
	return b
}

// appendSpanSet encodes a SpanSet: 1 spans, 2 matched, 3 attributes.
func appendSpanSet(b []byte, s *search.SpanSet) []byte {
	for _, sp := range s.Spans {
		var m []byte
		m = appendString(m, 1, sp.SpanID)
		m = appendString(m, 2, sp.Name)
		m = block.AppendUvarintField(m, 3, uint64(sp.StartTimeUnixNano))
		m = block.AppendUvarintField(m, 4, uint64(sp.DurationNanos))
		m = appendKeyValues(m, 5, sp.Attributes)
		b = appendMessage(b, 1, m)
	}
	b = block.AppendUvarintField(b, 2, uint64(s.Matched))
	return appendKeyValues(b, 3, s.Attributes)
}

// appendKeyValues encodes OTLP KeyValues {1 key, 2 AnyValue{1 string,
// 2 bool, 3 int, 4 double}} as repeated field num.
func appendKeyValues(b []byte, num protowire.Number, kvs []search.KeyValue) []byte {
	for _, kv := range kvs {
		var val []byte
		switch kv.Value.Type {
		case traceql.TypeInt:
			val = protowire.AppendTag(val, 3, protowire.VarintType)
			val = protowire.AppendVarint(val, uint64(kv.Value.I))
		case traceql.TypeFloat:
			val = protowire.AppendTag(val, 4, protowire.Fixed64Type)
			val = protowire.AppendFixed64(val, math.Float64bits(kv.Value.F))
		case traceql.TypeBool:
			val = protowire.AppendTag(val, 2, protowire.VarintType)
			val = protowire.AppendVarint(val, protowire.EncodeBool(kv.Value.B))
		default:
			val = protowire.AppendTag(val, 1, protowire.BytesType)
			val = protowire.AppendString(val, kv.Value.S)
		}
		var m []byte
		m = protowire.AppendTag(m, 1, protowire.BytesType)
		m = protowire.AppendString(m, kv.Key)
		m = appendMessage(m, 2, val)
		b = appendMessage(b, num, m)
	}
	return b
}

// appendSearchMetrics encodes SearchMetrics: 1 inspectedTraces,
// 2 inspectedBytes, 3 totalBlocks, 4 completedJobs, 5 totalJobs,
// 6 totalBlockBytes, 7 inspectedSpans. Always present, even empty:
// Grafana's progress display reads it from every message.
func appendSearchMetrics(b []byte, m *search.Metrics) []byte {
	if m == nil {
		return b
	}
	b = block.AppendUvarintField(b, 1, uint64(m.InspectedTraces))
	b = block.AppendUvarintField(b, 2, uint64(m.InspectedBytes))
	b = block.AppendUvarintField(b, 3, uint64(m.TotalBlocks))
	b = block.AppendUvarintField(b, 4, uint64(m.CompletedJobs))
	b = block.AppendUvarintField(b, 5, uint64(m.TotalJobs))
	b = block.AppendUvarintField(b, 6, uint64(m.TotalBlockBytes))
	return block.AppendUvarintField(b, 7, uint64(m.InspectedSpans))
}
