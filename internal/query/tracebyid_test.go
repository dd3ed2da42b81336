package query

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/pdata/ptrace"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/otlptest"
	"github.com/tracectl/tracectl/internal/render"
	"github.com/tracectl/tracectl/internal/storage/storagetest"
)

// traceRecordings are the trace-by-ID exchanges of fixtures/tempo/api.
var traceRecordings = []string{
	"trace-v1-1-json", "trace-v1-1-json-with-range", "trace-v1-1-protobuf", "trace-v1-2-json", "trace-v1-2-protobuf",
	"trace-v1-3-json", "trace-v1-3-protobuf", "trace-v2-1-json", "trace-v2-1-protobuf", "trace-v2-2-json", "trace-v2-3-json",
	"trace-v2-extra-64bit-id-short", "trace-v2-extra-64bit-id", "trace-v2-extra-events-links",
	"trace-v2-extra-leading-zero-stripped", "trace-v2-extra-long-values", "trace-v2-extra-split-across-blocks",
	"trace-v2-extra-uppercase", "trace-v2-extra-well-known-columns",
	"notfound-v1", "notfound-v2", "badid-v1", "badid-v2", "badid-v1-too-long",
}

// TestTraceByIDMatchesRecordings serves the three Tempo-written vParquet4
// blocks and replays every recorded trace-by-ID exchange: same status and
// content type; error bodies byte for byte; traces equal span for span,
// and byte for byte where Tempo's order is reproducible.
func TestTraceByIDMatchesRecordings(t *testing.T) {
	b, _ := fixtureBucket(t, "tempo", "vparquet4")
	_, base := startAPI(t, Config{Bucket: b})
	for _, name := range traceRecordings {
		t.Run(name, func(t *testing.T) {
			rec := loadRecording(t, name)
			got := get(t, base, rec.path, headerPairs(rec.reqHeader)...)
			if got.status != rec.status {
				t.Fatalf("status %d, Tempo %d (%s)", got.status, rec.status, got)
			}
			if ct := got.header.Get("Content-Type"); ct != rec.contentType {
				t.Errorf("Content-Type %q, Tempo %q", ct, rec.contentType)
			}
			switch {
			case rec.status != http.StatusOK || len(rec.body) < 30:
				if !bytes.Equal(got.body, rec.body) {
					t.Errorf("body %q, Tempo %q", got.body, rec.body)
				}
			case rec.contentType == contentTypeProtobuf:
				compareProtoTrace(t, strings.Contains(rec.path, "/v2/"), got.body, rec.body)
			default:
				compareJSONTrace(t, got.body, rec.body)
			}
		})
	}
}

// compareJSONTrace checks a v1 ({"batches"}) or v2 ({"trace"}) body.
func compareJSONTrace(t *testing.T, got, want []byte) {
	t.Helper()
	split := func(body []byte) (trace json.RawMessage, inspected string) {
		var v struct {
			Batches json.RawMessage `json:"batches"`
			Trace   json.RawMessage `json:"trace"`
			Metrics *struct {
				InspectedBytes string `json:"inspectedBytes"`
			} `json:"metrics"`
		}
		if err := json.Unmarshal(body, &v); err != nil {
			t.Fatalf("not JSON: %v: %s", err, shorten(string(body)))
		}
		if v.Batches != nil {
			return body, ""
		}
		if v.Metrics == nil {
			t.Fatalf("v2 body without metrics: %s", shorten(string(body)))
		}
		return v.Trace, v.Metrics.InspectedBytes
	}
	gotTrace, gotInspected := split(got)
	wantTrace, wantInspected := split(want)
	if (gotInspected == "") != (wantInspected == "") {
		t.Errorf("inspectedBytes %q, Tempo %q", gotInspected, wantInspected)
	}
	gtd, err := render.UnmarshalTempoTrace(gotTrace)
	if err != nil {
		t.Fatal(err)
	}
	wtd, err := render.UnmarshalTempoTrace(wantTrace)
	if err != nil {
		t.Fatal(err)
	}
	otlptest.AssertEqual(t, wtd, gtd)
	// Byte for byte, apart from metrics.
	if !bytes.Equal(gotTrace, wantTrace) {
		i := 0
		for i < min(len(gotTrace), len(wantTrace)) && gotTrace[i] == wantTrace[i] {
			i++
		}
		t.Errorf("trace JSON differs from Tempo's byte for byte (same spans) at byte %d\n got …%s…\nwant …%s…", i,
			gotTrace[max(0, i-150):min(len(gotTrace), i+150)], wantTrace[max(0, i-150):min(len(wantTrace), i+150)])
	}
}

// compareProtoTrace checks a v1 Trace or v2 TraceByIDResponse body.
func compareProtoTrace(t *testing.T, v2 bool, got, want []byte) {
	t.Helper()
	gotTrace, gotMetrics := got, []byte(nil)
	wantTrace, wantMetrics := want, []byte(nil)
	if v2 {
		gotTrace, gotMetrics = splitTraceByIDResponse(t, got)
		wantTrace, wantMetrics = splitTraceByIDResponse(t, want)
		if (len(gotMetrics) == 0) != (len(wantMetrics) == 0) {
			t.Errorf("metrics %x, Tempo %x", gotMetrics, wantMetrics)
		}
	}
	var u ptrace.ProtoUnmarshaler
	gtd, err := u.UnmarshalTraces(gotTrace)
	if err != nil {
		t.Fatalf("our protobuf trace: %v", err)
	}
	wtd, err := u.UnmarshalTraces(wantTrace)
	if err != nil {
		t.Fatalf("Tempo's protobuf trace: %v", err)
	}
	otlptest.AssertEqual(t, wtd, gtd)
	if !bytes.Equal(gotTrace, wantTrace) {
		t.Errorf("protobuf trace differs from Tempo's byte for byte (%d vs %d bytes)", len(gotTrace), len(wantTrace))
	}
	checkGrafanaProto(t, gotTrace)
}

// splitTraceByIDResponse returns fields 1 (trace) and 2 (metrics), failing
// on anything unknown.
func splitTraceByIDResponse(t *testing.T, b []byte) (trace, metrics []byte) {
	t.Helper()
	seen := map[protowire.Number]bool{}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			t.Fatalf("bad tag: %v", protowire.ParseError(n))
		}
		b = b[n:]
		switch {
		case (num == 1 || num == 2 || num == 4) && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				t.Fatalf("field %d: %v", num, protowire.ParseError(n))
			}
			if num == 1 {
				trace = v
			} else if num == 2 {
				metrics = v
			}
			b = b[n:]
		case num == 3 && typ == protowire.VarintType:
			_, n := protowire.ConsumeVarint(b)
			if n < 0 {
				t.Fatal("bad status")
			}
			b = b[n:]
		default:
			t.Fatalf("unexpected field %d type %d", num, typ)
		}
		seen[num] = true
	}
	if !seen[1] {
		t.Fatal("TraceByIDResponse without field 1 (trace): Grafana reads that as a failure")
	}
	return trace, metrics
}

// checkGrafanaProto enforces what Grafana's trace transform dereferences
// without nil checks: every resource, scope and span status present.
func checkGrafanaProto(t *testing.T, b []byte) {
	t.Helper()
	var msg tracepb.TracesData
	if err := proto.Unmarshal(b, &msg); err != nil {
		t.Fatal(err)
	}
	for _, rs := range msg.ResourceSpans {
		if rs.Resource == nil {
			t.Fatal("resource spans without resource: Grafana dereferences it")
		}
		for _, ss := range rs.ScopeSpans {
			if ss.Scope == nil {
				t.Fatal("scope spans without scope: Grafana dereferences it")
			}
			for _, sp := range ss.Spans {
				if sp.Status == nil {
					t.Fatalf("span %x without status: Grafana dereferences it", sp.SpanId)
				}
				if len(sp.TraceId) != 16 || len(sp.SpanId) != 8 {
					t.Fatalf("span IDs of %d/%d bytes, want 16/8", len(sp.TraceId), len(sp.SpanId))
				}
			}
		}
	}
}

func TestParseTraceID(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{"594dbe7e6cff645eb51079037485e52a", "594dbe7e6cff645eb51079037485e52a", ""},
		{"594DBE7E6CFF645EB51079037485E52A", "594dbe7e6cff645eb51079037485e52a", ""},
		{"5b8efff798038103", "00000000000000005b8efff798038103", ""},
		{"f1e2d3c4b5a6978877665544332", "00000f1e2d3c4b5a6978877665544332", ""},
		{"1", "00000000000000000000000000000001", ""},
		{"not-a-trace-id", "", "trace IDs can only contain hex characters: invalid character 'n' at position 1"},
		{"abcx", "", "trace IDs can only contain hex characters: invalid character 'x' at position 4"},
		{"0123456789abcdef0123456789abcdef00", "", "trace IDs can't be larger than 128 bits"},
		{"", "", "trace ID is empty; give 1 to 32 hex digits"},
	} {
		id, err := ParseTraceID(tc.in)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("ParseTraceID(%q) error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || id.Hex() != tc.want {
			t.Errorf("ParseTraceID(%q) = %s, %v; want %s", tc.in, id.Hex(), err, tc.want)
		}
	}
}

func TestOperationalEndpointsMatchRecordings(t *testing.T) {
	ready := false
	_, base := startAPI(t, Config{Bucket: storagetest.OpenMem(t), Ready: func() bool { return ready },
		BuildInfo: BuildInfo{Version: "1.2.3", Revision: "abc"}})
	if got := get(t, base, "/ready"); got.status != http.StatusServiceUnavailable {
		t.Errorf("/ready before ready: %s", got)
	}
	ready = true
	for _, name := range []string{"echo", "ready"} {
		rec := loadRecording(t, name)
		for _, path := range []string{rec.path, "/" + rec.path} {
			got := get(t, base, path)
			if got.status != rec.status || string(got.body) != string(rec.body) || got.header.Get("Content-Type") != rec.contentType {
				t.Errorf("%s: %s; Tempo %d %s %q", path, got, rec.status, rec.contentType, rec.body)
			}
		}
	}
	rec := loadRecording(t, "buildinfo")
	got := get(t, base, rec.path)
	var want, have map[string]string
	if err := json.Unmarshal(rec.body, &want); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(got.body, &have); err != nil || got.header.Get("Content-Type") != rec.contentType {
		t.Fatalf("buildinfo: %s", got)
	}
	for k := range want {
		if _, ok := have[k]; !ok {
			t.Errorf("buildinfo lacks %q: %s", k, got.body)
		}
	}
	if have["version"] != "1.2.3" || have["goVersion"] == "" || len(have) != len(want) {
		t.Errorf("buildinfo %v", have)
	}
}

// TestTraceByIDCombinesHeadAndBlocks splits a corpus trace: half its spans
// in a block, half in the head. Every variant returns all of them once.
func TestTraceByIDCombinesHeadAndBlocks(t *testing.T) {
	corpus := otlptest.LoadCorpus(t)
	idHex := otlptest.IDOf("P00")
	full := corpus.ByID[idHex]
	inBlock, inHead := splitSpans(full)
	if inBlock.SpanCount() == 0 || inHead.SpanCount() == 0 {
		t.Fatal("split left a side empty")
	}
	b := storagetest.OpenMem(t)
	writeBlock(t, b, "single-tenant", inBlock)
	head := newFakeHead()
	id, _ := block.ParseTraceID(idHex)
	head.add("single-tenant", id, inHead)
	// The head also holds a span that is in the block already (a retry):
	// it must come back once.
	dup, _ := splitSpans(inBlock)
	head.add("single-tenant", id, dup)
	_, base := startAPI(t, Config{Bucket: b, Head: head})

	for _, path := range []string{"/api/v2/traces/" + idHex, "/api/traces/" + idHex} {
		for _, accept := range []string{"application/json", "application/protobuf"} {
			got := get(t, base, path, "Accept", accept)
			if got.status != http.StatusOK {
				t.Fatalf("%s (%s): %s", path, accept, got)
			}
			td := decodeTrace(t, got, strings.Contains(path, "/v2/"))
			otlptest.AssertEqual(t, full, td, otlptest.CountDuplicates())
		}
	}
	// Head only: a trace not in any block.
	other, _ := block.ParseTraceID(otlptest.IDOf("P01"))
	head.add("single-tenant", other, corpus.ByID[otlptest.IDOf("P01")])
	got := get(t, base, "/api/traces/"+other.Text())
	if got.status != http.StatusOK {
		t.Fatalf("head-only trace: %s", got)
	}
	otlptest.AssertEqual(t, corpus.ByID[otlptest.IDOf("P01")], decodeTrace(t, got, false))
}

// TestTraceByIDNotFoundProtobuf: v2 answers a miss with Tempo's four bytes.
func TestTraceByIDNotFoundProtobuf(t *testing.T) {
	_, base := startAPI(t, Config{Bucket: storagetest.OpenMem(t)})
	got := get(t, base, "/api/v2/traces/deadbeef", "Accept", "application/protobuf")
	if got.status != http.StatusOK || !bytes.Equal(got.body, []byte{0x0a, 0x00, 0x12, 0x00}) || got.header.Get("Content-Type") != contentTypeProtobuf {
		t.Errorf("v2 protobuf miss: %d %q %x", got.status, got.header.Get("Content-Type"), got.body)
	}
	got = get(t, base, "/api/traces/deadbeef", "Accept", "application/protobuf")
	if got.status != http.StatusNotFound || len(got.body) != 0 || got.header.Get("Content-Type") != "" {
		t.Errorf("v1 protobuf miss: %s", got)
	}
}

// TestTraceByIDTooLarge: a trace over MaxTraceBytes is cut, and v2 says so.
func TestTraceByIDTooLarge(t *testing.T) {
	corpus := otlptest.LoadCorpus(t)
	idHex := otlptest.IDOf("P07") // long values
	b := storagetest.OpenMem(t)
	writeBlock(t, b, "single-tenant", corpus.ByID[idHex])
	total := corpus.ByID[idHex].SpanCount()
	// Room for the first span (and a bit), not for all three.
	limit := int64((&ptrace.ProtoMarshaler{}).TracesSize(firstSpans(corpus.ByID[idHex], 1))) + 100
	_, base := startAPI(t, Config{Bucket: b, MaxTraceBytes: limit})

	got := get(t, base, "/api/v2/traces/"+idHex)
	var v struct {
		Trace   json.RawMessage `json:"trace"`
		Status  string          `json:"status"`
		Message string          `json:"message"`
	}
	if err := json.Unmarshal(got.body, &v); err != nil || got.status != http.StatusOK {
		t.Fatalf("%s: %v", got, err)
	}
	td, err := render.UnmarshalTempoTrace(v.Trace)
	if err != nil {
		t.Fatal(err)
	}
	if v.Status != "PARTIAL" || !strings.Contains(v.Message, "exceeds the maximum") {
		t.Errorf("status %q message %q", v.Status, v.Message)
	}
	if n := td.SpanCount(); n == 0 || n >= total || int64((&ptrace.ProtoMarshaler{}).TracesSize(td)) > limit {
		t.Errorf("cut trace has %d of %d spans, %d bytes, limit %d", n, total, (&ptrace.ProtoMarshaler{}).TracesSize(td), limit)
	}
	got = get(t, base, "/api/v2/traces/"+idHex, "Accept", "application/protobuf")
	var status uint64
	rest := got.body
	for len(rest) > 0 {
		num, typ, n := protowire.ConsumeTag(rest)
		rest = rest[n:]
		if num == 3 && typ == protowire.VarintType {
			status, n = protowire.ConsumeVarint(rest)
		} else {
			n = protowire.ConsumeFieldValue(num, typ, rest)
		}
		if n < 0 {
			t.Fatal("bad protobuf")
		}
		rest = rest[n:]
	}
	if status != statusPartial {
		t.Errorf("protobuf status %d, want PARTIAL (1)", status)
	}
}

func TestTraceByIDBadRange(t *testing.T) {
	_, base := startAPI(t, Config{Bucket: storagetest.OpenMem(t)})
	for _, q := range []string{"?start=yesterday", "?end=-5", "?start=200&end=100"} {
		got := get(t, base, "/api/v2/traces/abc"+q)
		if got.status != http.StatusBadRequest || got.header.Get("Content-Type") != "text/plain; charset=utf-8" ||
			!strings.Contains(string(got.body), "start") && !strings.Contains(string(got.body), "end") {
			t.Errorf("%s: %s", q, got)
		}
	}
}

func decodeTrace(t *testing.T, got httpResult, v2 bool) ptrace.Traces {
	t.Helper()
	if got.header.Get("Content-Type") == contentTypeProtobuf {
		body := got.body
		if v2 {
			body, _ = splitTraceByIDResponse(t, body)
		}
		checkGrafanaProto(t, body)
		td, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(body)
		if err != nil {
			t.Fatal(err)
		}
		return td
	}
	body := got.body
	if v2 {
		var v struct {
			Trace json.RawMessage `json:"trace"`
		}
		if err := json.Unmarshal(body, &v); err != nil {
			t.Fatal(err)
		}
		body = v.Trace
	}
	td, err := render.UnmarshalTempoTrace(body)
	if err != nil {
		t.Fatal(err)
	}
	return td
}

// splitSpans returns two copies of td: one with the even-numbered spans,
// one with the odd-numbered ones (in document order).
func splitSpans(td ptrace.Traces) (even, odd ptrace.Traces) {
	even, odd = ptrace.NewTraces(), ptrace.NewTraces()
	td.CopyTo(even)
	td.CopyTo(odd)
	keep := func(out ptrace.Traces, parity int) {
		i := 0
		out.ResourceSpans().RemoveIf(func(rs ptrace.ResourceSpans) bool {
			rs.ScopeSpans().RemoveIf(func(ss ptrace.ScopeSpans) bool {
				ss.Spans().RemoveIf(func(ptrace.Span) bool { i++; return (i-1)%2 != parity })
				return ss.Spans().Len() == 0
			})
			return rs.ScopeSpans().Len() == 0
		})
	}
	keep(even, 0)
	keep(odd, 1)
	return even, odd
}

func TestSplitSpans(t *testing.T) {
	corpus := otlptest.LoadCorpus(t)
	full := corpus.ByID[otlptest.IDOf("P00")]
	a, b := splitSpans(full)
	if a.SpanCount()+b.SpanCount() != full.SpanCount() || a.SpanCount() == 0 {
		t.Fatalf("split %d + %d of %d", a.SpanCount(), b.SpanCount(), full.SpanCount())
	}
	if d := otlptest.Diff(full, otlptest.Merge(a, b)); len(d) > 0 {
		t.Fatal(d)
	}
}

// FuzzParseTraceID: any input either parses to the ID block.ParseTraceID
// gives for it, or is refused with one of Tempo's messages; never a panic.
func FuzzParseTraceID(f *testing.F) {
	for _, s := range []string{"594dbe7e6cff645eb51079037485e52a", "5B8EFFF798038103", "not-a-trace-id", "", "0123456789abcdef0123456789abcdef00", "é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseTraceID(s)
		if err != nil {
			if msg := err.Error(); !strings.HasPrefix(msg, "trace ID") && !strings.HasPrefix(msg, "trace IDs") {
				t.Fatalf("%q: message %q", s, msg)
			}
			return
		}
		want, err := block.ParseTraceID(s)
		if err != nil || want != id {
			t.Fatalf("%q: %s, block.ParseTraceID %s %v", s, id.Hex(), want.Hex(), err)
		}
	})
}
