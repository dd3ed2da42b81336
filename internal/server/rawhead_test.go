package server

import (
	"testing"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/tracectl/tracectl/internal/blocks/vparquet4"
	"github.com/tracectl/tracectl/internal/otlptest"
)

// TestIndexRequestRebuildsEachTrace: every corpus request, indexed as
// protobuf, gives back each of its traces exactly as GroupByTrace splits
// the decoded request, with sizes that are the rebuilt encodings' sizes.
func TestIndexRequestRebuildsEachTrace(t *testing.T) {
	c := otlptest.LoadCorpus(t)
	for line, td := range c.Lines {
		buf, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
		if err != nil {
			t.Fatal(err)
		}
		groups, err := indexRequest(buf)
		if err != nil {
			t.Fatalf("line %d: %v", line+1, err)
		}
		want := vparquet4.GroupByTrace(td)
		if len(groups) != len(want) {
			t.Fatalf("line %d: %d traces indexed, want %d", line+1, len(groups), len(want))
		}
		byID := map[[16]byte]ptrace.Traces{}
		for _, g := range want {
			byID[g.ID] = g.Traces
		}
		spans := 0
		for _, g := range groups {
			got, enc, err := decodePieces([]rawPiece{g.piece}, nil)
			if err != nil {
				t.Fatalf("line %d trace %s: %v", line+1, g.id.Hex(), err)
			}
			if int64(len(enc)) != g.bytes {
				t.Errorf("line %d trace %s: size %d, encoding %d bytes", line+1, g.id.Hex(), g.bytes, len(enc))
			}
			if d := otlptest.Diff(byID[g.id], got); len(d) > 0 {
				t.Fatalf("line %d trace %s differs: %v", line+1, g.id.Hex(), d[:min(len(d), 5)])
			}
			spans += len(g.piece.spans)
		}
		if spans != td.SpanCount() {
			t.Errorf("line %d: %d spans indexed, want %d", line+1, spans, td.SpanCount())
		}
	}
}

// TestIndexRequestMalformed: broken protobuf is an error, never a panic.
func TestIndexRequestMalformed(t *testing.T) {
	c := otlptest.LoadCorpus(t)
	buf, _ := ptraceotlp.NewExportRequestFromTraces(c.Lines[0]).MarshalProto()
	for _, b := range [][]byte{
		buf[:len(buf)-1],
		buf[:len(buf)/2],
		{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f},
		{0x0a, 0x05, 0x12, 0x10, 0x12},
	} {
		if _, err := indexRequest(b); err == nil {
			t.Errorf("%x...: indexed without an error", b[:min(len(b), 8)])
		}
	}
}

// FuzzIndexRequest: whatever pdata accepts, the index accepts, finds
// every span of, and rebuilds so that pdata decodes it again; nothing
// panics on other input.
func FuzzIndexRequest(f *testing.F) {
	for _, line := range []string{
		`{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"a"}}]},"scopeSpans":[{"scope":{"name":"s"},"spans":[{"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708","name":"x"},{"traceId":"1102030405060708090a0b0c0d0e0f10","spanId":"0102030405060709","name":"y"}]}],"schemaUrl":"u"}]}`,
	} {
		req := ptraceotlp.NewExportRequest()
		if err := req.UnmarshalJSON([]byte(line)); err != nil {
			f.Fatal(err)
		}
		b, _ := req.MarshalProto()
		f.Add(b)
	}
	f.Add([]byte{0x0a, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		groups, err := indexRequest(b)
		req := ptraceotlp.NewExportRequest()
		if req.UnmarshalProto(b) != nil {
			return
		}
		if err != nil {
			t.Fatalf("pdata decodes it but the index fails: %v", err)
		}
		spans := 0
		for _, g := range groups {
			td, _, err := decodePieces([]rawPiece{g.piece}, nil)
			if err != nil {
				t.Fatalf("rebuilt trace does not decode: %v", err)
			}
			if td.SpanCount() != len(g.piece.spans) {
				t.Fatalf("rebuilt trace has %d spans, index %d", td.SpanCount(), len(g.piece.spans))
			}
			spans += td.SpanCount()
		}
		if spans != req.Traces().SpanCount() {
			t.Fatalf("%d spans indexed, pdata found %d", spans, req.Traces().SpanCount())
		}
	})
}
