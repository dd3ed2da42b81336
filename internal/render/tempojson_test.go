package render

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tracectl/tracectl/internal/testfix"
)

// readHTTPBody returns the body of a recorded exchange (see the recordings'
// README: request, blank line, response head, blank line, body + newline).
func readHTTPBody(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	parts := bytes.SplitN(data, []byte("\n\n"), 3)
	if len(parts) != 3 {
		t.Fatalf("%s: not a recorded exchange", path)
	}
	return bytes.TrimSuffix(parts[2], []byte("\n"))
}

// TestTempoTraceJSONMatchesRecordings decodes each recorded v2 trace body
// and encodes it again: the bytes must be Tempo's, byte for byte.
func TestTempoTraceJSONMatchesRecordings(t *testing.T) {
	dir := testfix.Path(t, "tempo", "api")
	files, _ := filepath.Glob(filepath.Join(dir, "trace-v2-*.http"))
	n := 0
	for _, f := range files {
		body := readHTTPBody(t, f)
		if !bytes.HasPrefix(body, []byte(`{"trace":{"resourceSpans"`)) {
			continue // protobuf recordings
		}
		n++
		t.Run(filepath.Base(f), func(t *testing.T) {
			var resp struct {
				Trace   json.RawMessage `json:"trace"`
				Metrics struct {
					InspectedBytes string `json:"inspectedBytes"`
				} `json:"metrics"`
			}
			if err := json.Unmarshal(body, &resp); err != nil {
				t.Fatal(err)
			}
			td, err := UnmarshalTempoTrace(resp.Trace)
			if err != nil {
				t.Fatal(err)
			}
			if td.SpanCount() == 0 {
				t.Fatal("no spans decoded")
			}
			var out bytes.Buffer
			inspected, err := strconv.ParseUint(resp.Metrics.InspectedBytes, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			if err := TraceByIDV2(&out, &td, inspected); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out.Bytes(), body) {
				t.Errorf("re-encoded body differs from Tempo's\nfirst difference at byte %d:\n got …%s…\nwant …%s…",
					firstDiff(out.Bytes(), body), around(out.Bytes(), firstDiff(out.Bytes(), body)), around(body, firstDiff(out.Bytes(), body)))
			}
		})
	}
	if n < 5 {
		t.Fatalf("only %d JSON trace recordings found in %s", n, dir)
	}
}

func TestTraceByIDV2NotFound(t *testing.T) {
	want := readHTTPBody(t, testfix.Path(t, "tempo", "api", "notfound-v2.http"))
	var out bytes.Buffer
	if err := TraceByIDV2(&out, nil, 0); err != nil {
		t.Fatal(err)
	}
	if out.String() != string(want) {
		t.Errorf("not-found body %q, want %q", out.String(), want)
	}
	empty := ptrace.NewTraces()
	out.Reset()
	_ = TraceByIDV2(&out, &empty, 0)
	if out.String() != string(want) {
		t.Errorf("empty trace body %q, want %q", out.String(), want)
	}
}

func TestUnmarshalTempoTraceV1Batches(t *testing.T) {
	body := readHTTPBody(t, testfix.Path(t, "tempo", "api", "trace-v1-1-json.http"))
	td, err := UnmarshalTempoTrace(body)
	if err != nil {
		t.Fatal(err)
	}
	if td.SpanCount() != 8 {
		t.Errorf("P00 from v1 JSON has %d spans, want 8", td.SpanCount())
	}
	if _, err := UnmarshalTempoTrace([]byte(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"not base64!"}]}]}]}`)); err == nil {
		t.Error("bad base64 trace ID accepted")
	}
	if _, err := UnmarshalTempoTrace([]byte(`[`)); err == nil || !strings.Contains(err.Error(), "Tempo trace JSON") {
		t.Errorf("garbage: err = %v", err)
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func around(b []byte, i int) string {
	lo, hi := max(0, i-60), min(len(b), i+60)
	return string(b[lo:hi])
}
