package migrate

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/tracectl/tracectl/internal/testfix"
)

type collected struct {
	spans int
	msgs  int
	bad   []BadInput
}

func readAll(t *testing.T, path string, maxBad int) (collected, error) {
	t.Helper()
	var c collected
	err := ReadOTLPFile(context.Background(), path,
		func(td ptrace.Traces) error { c.spans += td.SpanCount(); c.msgs++; return nil },
		func(b BadInput) error {
			c.bad = append(c.bad, b)
			if len(c.bad) > maxBad {
				return ErrTooManyErrors
			}
			return nil
		})
	return c, err
}

func corpusLines(t *testing.T) [][]byte {
	data, err := os.ReadFile(testfix.Path(t, "corpus", "public.otlp.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Split(bytes.TrimSpace(data), []byte("\n"))
}

// corpusSpansSent is the number of spans in the corpus file (P18's
// duplicate counted twice): 714 distinct + 1.
const corpusSpansSent = 715

func TestReadOTLPFileFormats(t *testing.T) {
	lines := corpusLines(t)
	dir := t.TempDir()
	jsonl := filepath.Join(dir, "a.jsonl")
	os.WriteFile(jsonl, append(bytes.Join(lines, []byte("\n")), '\n'), 0o644)

	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(bytes.Join(lines, []byte("\n")))
	zw.Close()
	gzPath := filepath.Join(dir, "a.jsonl.gz")
	os.WriteFile(gzPath, gz.Bytes(), 0o644)

	var framed, bare bytes.Buffer
	all := ptrace.NewTraces()
	for _, l := range lines {
		req := ptraceotlp.NewExportRequest()
		if err := req.UnmarshalJSON(l); err != nil {
			t.Fatal(err)
		}
		req.Traces().ResourceSpans().MoveAndAppendTo(all.ResourceSpans())
		req = ptraceotlp.NewExportRequest()
		req.UnmarshalJSON(l)
		b, _ := req.MarshalProto()
		binary.Write(&framed, binary.BigEndian, uint32(len(b)))
		framed.Write(b)
	}
	b, _ := ptraceotlp.NewExportRequestFromTraces(all).MarshalProto()
	bare.Write(b)
	framedPath := filepath.Join(dir, "a.pb")
	barePath := filepath.Join(dir, "bare.pb")
	os.WriteFile(framedPath, framed.Bytes(), 0o644)
	os.WriteFile(barePath, bare.Bytes(), 0o644)

	for _, tc := range []struct {
		path string
		msgs int
	}{{jsonl, len(lines)}, {gzPath, len(lines)}, {framedPath, len(lines)}, {barePath, 1}} {
		c, err := readAll(t, tc.path, 0)
		if err != nil {
			t.Fatalf("%s: %v", tc.path, err)
		}
		if c.spans != corpusSpansSent || c.msgs != tc.msgs || len(c.bad) != 0 {
			t.Errorf("%s: %d spans in %d messages, %d bad; want %d spans in %d messages",
				filepath.Base(tc.path), c.spans, c.msgs, len(c.bad), corpusSpansSent, tc.msgs)
		}
	}
}

func TestReadOTLPFileBadLines(t *testing.T) {
	lines := corpusLines(t)
	dir := t.TempDir()
	mixed := [][]byte{lines[0], []byte(`{"resourceSpans": [ truncated`), lines[1], []byte(""), []byte(`not json at all`), lines[2]}
	path := filepath.Join(dir, "mixed.jsonl")
	os.WriteFile(path, bytes.Join(mixed, []byte("\n")), 0o644)

	c, err := readAll(t, path, 10)
	if err != nil {
		t.Fatal(err)
	}
	if c.msgs != 3 {
		t.Errorf("%d good messages, want 3", c.msgs)
	}
	if len(c.bad) != 2 || c.bad[0].Line != 2 || c.bad[1].Line != 5 {
		t.Fatalf("bad = %+v, want lines 2 and 5", c.bad)
	}
	if !strings.Contains(c.bad[0].String(), "mixed.jsonl:2: ") {
		t.Errorf("bad input message %q does not name file and line", c.bad[0].String())
	}
	// onBad may stop the run.
	c, err = readAll(t, path, 0)
	if err != ErrTooManyErrors || c.msgs != 1 {
		t.Errorf("stop after first bad line: err %v, msgs %d", err, c.msgs)
	}
}

func TestReadOTLPFileCorruptProtobuf(t *testing.T) {
	dir := t.TempDir()
	lines := corpusLines(t)
	var framed bytes.Buffer
	for _, l := range lines[:3] {
		req := ptraceotlp.NewExportRequest()
		req.UnmarshalJSON(l)
		b, _ := req.MarshalProto()
		binary.Write(&framed, binary.BigEndian, uint32(len(b)))
		framed.Write(b)
	}
	whole := framed.Bytes()
	// Truncated in the middle of the third message.
	path := filepath.Join(dir, "trunc.pb")
	os.WriteFile(path, whole[:len(whole)-10], 0o644)
	c, err := readAll(t, path, 5)
	if err != nil {
		t.Fatal(err)
	}
	if c.msgs != 2 || len(c.bad) != 1 || c.bad[0].Offset == 0 {
		t.Errorf("truncated: %d msgs, bad %+v; want 2 msgs and one bad input with its offset", c.msgs, c.bad)
	}
	// Garbage that is neither JSON nor protobuf.
	garbage := filepath.Join(dir, "garbage.bin")
	os.WriteFile(garbage, []byte("\xff\xff\xff\xff\xff\xff\xff"), 0o644)
	c, err = readAll(t, garbage, 5)
	if err != nil || len(c.bad) != 1 || c.msgs != 0 {
		t.Errorf("garbage: err %v, %+v", err, c)
	}
	// A bad gzip header.
	badgz := filepath.Join(dir, "bad.gz")
	os.WriteFile(badgz, []byte{0x1f, 0x8b, 0, 0}, 0o644)
	if _, err := readAll(t, badgz, 5); err == nil || !strings.Contains(err.Error(), "bad.gz") {
		t.Errorf("bad gzip: err = %v", err)
	}
	if _, err := readAll(t, filepath.Join(dir, "missing.jsonl"), 5); err == nil || !strings.Contains(err.Error(), "missing.jsonl") {
		t.Errorf("missing file: err = %v", err)
	}
}

func FuzzReadOTLPFile(f *testing.F) {
	f.Add([]byte(`{"resourceSpans":[]}`))
	f.Add([]byte{0, 0, 0, 2, 0x0a, 0})
	f.Add([]byte{0x1f, 0x8b})
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "f")
		os.WriteFile(path, data, 0o644)
		_ = ReadOTLPFile(context.Background(), path, func(ptrace.Traces) error { return nil }, func(BadInput) error { return nil })
	})
}
