package query

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/otlptest"
	"github.com/tracectl/tracectl/internal/search"
	"github.com/tracectl/tracectl/internal/traceql"
)

// searchRequestProto encodes a tempopb.SearchRequest as Grafana's
// streaming search sends it.
func searchRequestProto(query string, limit, start, end uint64, tags map[string]string) []byte {
	var b []byte
	for k, v := range tags {
		var e []byte
		e = appendString(e, 1, k)
		e = appendString(e, 2, v)
		b = appendMessage(b, 1, e)
	}
	b = block.AppendUvarintField(b, 4, limit)
	b = block.AppendUvarintField(b, 5, start)
	b = block.AppendUvarintField(b, 6, end)
	b = appendString(b, 8, query)
	return b
}

// streamCall runs one server-streaming call and returns every message.
func streamCall(ctx context.Context, t *testing.T, base, method string, req []byte, md ...string) ([][]byte, error) {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient("passthrough:///"+u.Host, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, md...)
	st, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, "/"+streamingService+"/"+method)
	if err != nil {
		return nil, err
	}
	if err := st.SendMsg(&req); err != nil {
		return nil, err
	}
	if err := st.CloseSend(); err != nil {
		return nil, err
	}
	var out [][]byte
	for {
		var m []byte
		err := st.RecvMsg(&m)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, m)
	}
}

// decodeSearchResponse reads a tempopb.SearchResponse back into the
// engine's types (the inverse of sendSearch's encoding).
func decodeSearchResponse(t *testing.T, b []byte) *search.Response {
	t.Helper()
	res := &search.Response{}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("decoding SearchResponse: %v", err)
		}
	}
	kvs := func(val []byte) search.KeyValue {
		var kv search.KeyValue
		must(block.WalkFields(val, func(num protowire.Number, typ protowire.Type, val []byte, _ uint64) error {
			if num == 1 {
				kv.Key = string(val)
				return nil
			}
			return block.WalkFields(val, func(num protowire.Number, _ protowire.Type, v []byte, x uint64) error {
				switch num {
				case 1:
					kv.Value = search.AnyValue{Type: traceql.TypeString, S: string(v)}
				case 2:
					kv.Value = search.AnyValue{Type: traceql.TypeBool, B: x != 0}
				case 3:
					kv.Value = search.AnyValue{Type: traceql.TypeInt, I: int64(x)}
				case 4:
					kv.Value = search.AnyValue{Type: traceql.TypeFloat, F: math.Float64frombits(x)}
				}
				return nil
			})
		}))
		return kv
	}
	spanSet := func(val []byte) *search.SpanSet {
		ss := &search.SpanSet{}
		must(block.WalkFields(val, func(num protowire.Number, typ protowire.Type, val []byte, n uint64) error {
			switch num {
			case 1:
				sp := &search.Span{}
				must(block.WalkFields(val, func(num protowire.Number, typ protowire.Type, val []byte, n uint64) error {
					switch num {
					case 1:
						sp.SpanID = string(val)
					case 2:
						sp.Name = string(val)
					case 3:
						sp.StartTimeUnixNano = search.Uint64String(n)
					case 4:
						sp.DurationNanos = search.Uint64String(n)
					case 5:
						sp.Attributes = append(sp.Attributes, kvs(val))
					}
					return nil
				}))
				ss.Spans = append(ss.Spans, sp)
			case 2:
				ss.Matched = uint32(n)
			case 3:
				ss.Attributes = append(ss.Attributes, kvs(val))
			}
			return nil
		}))
		return ss
	}
	must(block.WalkFields(b, func(num protowire.Number, typ protowire.Type, val []byte, _ uint64) error {
		switch num {
		case 1:
			tm := &search.TraceMetadata{}
			must(block.WalkFields(val, func(num protowire.Number, typ protowire.Type, val []byte, n uint64) error {
				switch num {
				case 1:
					tm.TraceID = string(val)
				case 2:
					tm.RootServiceName = string(val)
				case 3:
					tm.RootTraceName = string(val)
				case 4:
					tm.StartTimeUnixNano = search.Uint64String(n)
				case 5:
					tm.DurationMs = uint32(n)
				case 6:
					tm.SpanSet = spanSet(val)
				case 7:
					tm.SpanSets = append(tm.SpanSets, spanSet(val))
				case 8:
					var name string
					var st search.ServiceStats
					must(block.WalkFields(val, func(num protowire.Number, typ protowire.Type, val []byte, _ uint64) error {
						if num == 1 {
							name = string(val)
							return nil
						}
						return block.WalkFields(val, func(num protowire.Number, typ protowire.Type, val []byte, n uint64) error {
							if num == 1 {
								st.SpanCount = uint32(n)
							} else if num == 2 {
								st.ErrorCount = uint32(n)
							}
							return nil
						})
					}))
					if tm.ServiceStats == nil {
						tm.ServiceStats = map[string]search.ServiceStats{}
					}
					tm.ServiceStats[name] = st
				}
				return nil
			}))
			res.Traces = append(res.Traces, tm)
		case 2:
			m := &search.Metrics{}
			must(block.WalkFields(val, func(num protowire.Number, typ protowire.Type, val []byte, n uint64) error {
				switch num {
				case 1:
					m.InspectedTraces = uint32(n)
				case 2:
					m.InspectedBytes = search.Uint64String(n)
				case 3:
					m.TotalBlocks = uint32(n)
				case 4:
					m.CompletedJobs = uint32(n)
				case 5:
					m.TotalJobs = uint32(n)
				case 6:
					m.TotalBlockBytes = search.Uint64String(n)
				case 7:
					m.InspectedSpans = search.Uint64String(n)
				}
				return nil
			}))
			res.Metrics = m
		}
		return nil
	}))
	return res
}

// TestStreamingSearch is GRAFANA.md §8 step 9: with streaming on, Grafana
// tests the data source and searches over gRPC StreamingQuerier/Search on
// the HTTP port (h2c). The streamed answer must hold what /api/search
// answers for the same query, head and blocks alike.
func TestStreamingSearch(t *testing.T) {
	corpus := otlptest.LoadCorpus(t)
	ls := startLiveServer(t, true)
	half := len(corpus.Lines) / 2
	ls.send(t, &otlptest.Corpus{Lines: corpus.Lines[:half]}, "t1")
	if err := ls.srv.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	ls.send(t, &otlptest.Corpus{Lines: corpus.Lines[half:]}, "t1")
	start, _ := strconv.ParseUint(replayStart, 10, 64)
	end, _ := strconv.ParseUint(replayEnd, 10, 64)
	ctx := context.Background()

	t.Run("save and test", func(t *testing.T) {
		// Grafana's health check with streaming on: {} with limit 1; the
		// org id sent twice (plugins before 13.1.5) is one tenant.
		msgs, err := streamCall(ctx, t, ls.base, "Search", searchRequestProto("{}", 1, start, end, nil),
			"x-scope-orgid", "t1", "x-scope-orgid", "t1")
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) == 0 {
			t.Fatal("no message streamed")
		}
		res := decodeSearchResponse(t, msgs[len(msgs)-1])
		if len(res.Traces) != 1 || res.Metrics == nil || res.Metrics.TotalBlocks == 0 {
			t.Fatalf("want 1 trace and metrics naming the block, got %d traces, metrics %+v", len(res.Traces), res.Metrics)
		}
	})

	for _, q := range []struct{ name, query string }{
		{"frontend", `{ resource.service.name = "frontend" }`},
		{"errors", `{ status = error }`},
		{"attribute", `{ span.http.request.method = "POST" } && { kind = server }`},
	} {
		t.Run(q.name, func(t *testing.T) {
			msgs, err := streamCall(ctx, t, ls.base, "Search", searchRequestProto(q.query, 1000, start, end, nil), "x-scope-orgid", "t1")
			if err != nil {
				t.Fatal(err)
			}
			got := &search.Response{}
			for _, m := range msgs {
				r := decodeSearchResponse(t, m)
				got.Traces = append(got.Traces, r.Traces...)
				got.Metrics = r.Metrics
			}
			httpRes := get(t, ls.base, "/api/search?q="+queryEscape(q.query)+"&limit=1000&start="+replayStart+"&end="+replayEnd, TenantHeader, "t1")
			if httpRes.status != 200 {
				t.Fatalf("HTTP search: %s", httpRes)
			}
			var want struct {
				Traces json.RawMessage `json:"traces"`
			}
			if err := json.Unmarshal(httpRes.body, &want); err != nil {
				t.Fatal(err)
			}
			if len(got.Traces) == 0 {
				t.Fatalf("streamed search found nothing for %s; the test needs matches", q.query)
			}
			gotJSON, err := json.Marshal(got.Traces)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(compactJSON(t, gotJSON), compactJSON(t, want.Traces)) {
				t.Errorf("streamed answer differs from /api/search:\n got %s\nwant %s", shorten(string(gotJSON)), shorten(string(want.Traces)))
			}
			if got.Metrics == nil || got.Metrics.TotalBlocks != 1 {
				t.Errorf("metrics %+v, want totalBlocks 1", got.Metrics)
			}
		})
	}

	t.Run("legacy tags", func(t *testing.T) {
		msgs, err := streamCall(ctx, t, ls.base, "Search", searchRequestProto("", 1000, start, end, map[string]string{"service.name": "frontend"}), "x-scope-orgid", "t1")
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, m := range msgs {
			n += len(decodeSearchResponse(t, m).Traces)
		}
		httpRes := get(t, ls.base, "/api/search?tags=service.name%3Dfrontend&limit=1000&start="+replayStart+"&end="+replayEnd, TenantHeader, "t1")
		var want search.Response
		_ = json.Unmarshal(httpRes.body, &struct{ Traces *[]*search.TraceMetadata }{&want.Traces})
		if n == 0 || n != len(want.Traces) {
			t.Errorf("tags search streamed %d traces, /api/search answers %d", n, len(want.Traces))
		}
	})

	for _, c := range []struct {
		name   string
		method string
		req    []byte
		md     []string
		code   codes.Code
		msg    string
	}{
		{"no tenant", "Search", searchRequestProto("{}", 5, start, end, nil), nil, codes.Unauthenticated, "X-Scope-OrgID"},
		{"two tenants", "Search", searchRequestProto("{}", 5, start, end, nil), []string{"x-scope-orgid", "t1", "x-scope-orgid", "t2"}, codes.InvalidArgument, "2 times"},
		{"bad tenant", "Search", searchRequestProto("{}", 5, start, end, nil), []string{"x-scope-orgid", "../t1"}, codes.InvalidArgument, "invalid"},
		{"bad TraceQL", "Search", searchRequestProto("{ span.x = }", 5, start, end, nil), []string{"x-scope-orgid", "t1"}, codes.InvalidArgument, "TraceQL"},
		{"metrics query in search", "Search", searchRequestProto("{} | rate()", 5, start, end, nil), []string{"x-scope-orgid", "t1"}, codes.InvalidArgument, "metrics"},
		{"garbage request", "Search", []byte{0x0a, 0xff}, []string{"x-scope-orgid", "t1"}, codes.InvalidArgument, "SearchRequest"},
		{"metrics streaming", "MetricsQueryRange", nil, []string{"x-scope-orgid", "t1"}, codes.Unimplemented, "/api/metrics/query_range"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := streamCall(ctx, t, ls.base, c.method, c.req, c.md...)
			st, _ := status.FromError(err)
			if st.Code() != c.code || !strings.Contains(st.Message(), c.msg) {
				t.Errorf("got %v, want %v with %q", err, c.code, c.msg)
			}
		})
	}

	// The HTTP API on the same port still answers HTTP/1.1.
	if got := get(t, ls.base, "/api/echo"); got.status != 200 {
		t.Errorf("echo beside gRPC: %s", got)
	}
}

func compactJSON(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// fakeStream collects what a handler sends.
type fakeStream struct {
	grpc.ServerStream
	sent [][]byte
}

func (f *fakeStream) SendMsg(m any) error {
	f.sent = append(f.sent, append([]byte(nil), *(m.(*[]byte))...))
	return nil
}

// TestStreamSearchSplitsLargeAnswers: an answer larger than a gRPC
// message may be (4 MiB by default in Grafana) goes out in several
// messages, each with the metrics, together holding every trace once.
func TestStreamSearchSplitsLargeAnswers(t *testing.T) {
	res := &search.Response{Metrics: &search.Metrics{TotalBlocks: 7, InspectedTraces: 900}}
	big := strings.Repeat("x", 20_000)
	for i := range 900 {
		res.Traces = append(res.Traces, &search.TraceMetadata{
			TraceID: strconv.FormatInt(int64(i+1), 16), RootServiceName: "svc",
			SpanSets: []*search.SpanSet{{Matched: 1, Spans: []*search.Span{{SpanID: "0000000000000001",
				Attributes: []search.KeyValue{{Key: "big", Value: search.AnyValue{Type: traceql.TypeString, S: big}}}}}}},
		})
	}
	fs := &fakeStream{}
	if err := sendSearch(fs, res); err != nil {
		t.Fatal(err)
	}
	if len(fs.sent) < 5 {
		t.Fatalf("%d messages for an 18 MB answer", len(fs.sent))
	}
	seen := map[string]bool{}
	for i, m := range fs.sent {
		if len(m) >= 4<<20 {
			t.Errorf("message %d is %d bytes, over gRPC's default 4 MiB limit", i, len(m))
		}
		r := decodeSearchResponse(t, m)
		if r.Metrics == nil || r.Metrics.TotalBlocks != 7 {
			t.Errorf("message %d lacks the metrics: %+v", i, r.Metrics)
		}
		for _, tr := range r.Traces {
			if seen[tr.TraceID] {
				t.Errorf("trace %s sent twice", tr.TraceID)
			}
			seen[tr.TraceID] = true
			if got := tr.SpanSets[0].Spans[0].Attributes[0].Value.S; got != big {
				t.Errorf("trace %s: attribute of %d bytes", tr.TraceID, len(got))
			}
		}
	}
	if len(seen) != 900 {
		t.Errorf("%d of 900 traces streamed", len(seen))
	}
	// An empty answer is still one message, with metrics.
	fs = &fakeStream{}
	if err := sendSearch(fs, &search.Response{Metrics: &search.Metrics{}}); err != nil || len(fs.sent) != 1 {
		t.Fatalf("empty answer: %d messages, %v", len(fs.sent), err)
	}
	if _, _, n := protowire.ConsumeTag(fs.sent[0]); n < 0 || protowire.Number(fs.sent[0][0]>>3) != 2 {
		t.Errorf("empty answer carries no metrics field: % x", fs.sent[0])
	}
}
