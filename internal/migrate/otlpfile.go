// Package migrate moves traces from other stores into tracectl blocks:
// sources (OTLP files, Jaeger's Elasticsearch) feed the block writer, and
// progress is accounted so every span is written or reported as skipped.
// It does not parse command lines or print to terminals; commands do.
package migrate

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
)

// MaxOTLPMessage bounds one JSON line or protobuf message of an OTLP file,
// so a corrupt length prefix or a file without newlines cannot exhaust
// memory.
const MaxOTLPMessage = 256 << 20

// BadInput describes one unreadable piece of input that was skipped.
type BadInput struct {
	File   string `json:"file"`
	Line   int    `json:"line,omitempty"`   // 1-based line, for JSON lines
	Offset int64  `json:"offset,omitempty"` // byte offset, for protobuf
	Reason string `json:"reason"`
}

func (b BadInput) String() string {
	if b.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", b.File, b.Line, b.Reason)
	}
	return fmt.Sprintf("%s (byte %d): %s", b.File, b.Offset, b.Reason)
}

// ErrTooManyErrors is returned when the onBad callback gives up.
var ErrTooManyErrors = errors.New("too many bad inputs")

// ReadOTLPFile reads an OTLP file and calls fn with the traces of each
// message in file order. The file may be gzip-compressed (detected by its
// magic bytes) and holds either OTLP/JSON ExportTraceServiceRequest objects
// one per line (the OpenTelemetry Collector file exporter's JSON format) or
// protobuf: a sequence of messages each prefixed with a 4-byte big-endian
// length (the file exporter's proto format), or one bare message.
//
// Unreadable lines or messages are passed to onBad; when onBad returns an
// error reading stops with it. An error from fn stops reading too.
func ReadOTLPFile(ctx context.Context, path string, fn func(ptrace.Traces) error, onBad func(BadInput) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("opening %s: %w", path, err)
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<20)
	var r io.Reader = br
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		gz, err := gzip.NewReader(br)
		if err != nil {
			return fmt.Errorf("reading %s: not a valid gzip file: %w", path, err)
		}
		defer gz.Close()
		r = gz
	}
	br = bufio.NewReaderSize(r, 1<<20)
	first, err := firstNonSpace(br)
	if err == io.EOF {
		return nil // empty file
	}
	if err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	if first == '{' {
		return readJSONLines(ctx, path, br, fn, onBad)
	}
	return readProto(ctx, path, br, fn, onBad)
}

func firstNonSpace(br *bufio.Reader) (byte, error) {
	for i := 1; ; i++ {
		b, err := br.Peek(i)
		if err != nil {
			return 0, err
		}
		c := b[i-1]
		if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			return c, nil
		}
		if i > 4096 {
			return c, nil
		}
	}
}

func readJSONLines(ctx context.Context, path string, br *bufio.Reader, fn func(ptrace.Traces) error, onBad func(BadInput) error) error {
	sc := bufio.NewScanner(br)
	sc.Buffer(make([]byte, 0, 1<<20), MaxOTLPMessage)
	line := 0
	for sc.Scan() {
		line++
		if line%256 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		req := ptraceotlp.NewExportRequest()
		if err := req.UnmarshalJSON(b); err != nil {
			if err := onBad(BadInput{File: path, Line: line, Reason: "not an OTLP/JSON ExportTraceServiceRequest: " + shorten(err.Error())}); err != nil {
				return err
			}
			continue
		}
		if err := fn(req.Traces()); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return onBad(BadInput{File: path, Line: line + 1, Reason: fmt.Sprintf("line longer than %d bytes; the rest of the file is skipped", MaxOTLPMessage)})
		}
		return fmt.Errorf("reading %s: %w", path, err)
	}
	return nil
}

// readProto reads length-prefixed messages; if the very first prefix does
// not describe the data, the whole input is tried as one bare message.
func readProto(ctx context.Context, path string, br *bufio.Reader, fn func(ptrace.Traces) error, onBad func(BadInput) error) error {
	var off int64
	for n := 0; ; n++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		var hdr [4]byte
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			if err == io.EOF {
				return nil
			}
			return onBad(BadInput{File: path, Offset: off, Reason: "truncated length prefix at end of file"})
		}
		size := binary.BigEndian.Uint32(hdr[:])
		msg, err := readN(br, int64(size))
		req := ptraceotlp.NewExportRequest()
		if err == nil {
			err = req.UnmarshalProto(msg)
		}
		if err != nil && n == 0 {
			// Not length-prefixed: one bare ExportTraceServiceRequest.
			rest, rerr := readN(br, MaxOTLPMessage)
			if rerr != nil && rerr != io.ErrUnexpectedEOF {
				return onBad(BadInput{File: path, Reason: "neither OTLP/JSON lines nor OTLP protobuf: " + shorten(rerr.Error())})
			}
			whole := append(append(hdr[:], msg...), rest...)
			req = ptraceotlp.NewExportRequest()
			if err := req.UnmarshalProto(whole); err != nil {
				return onBad(BadInput{File: path, Reason: "neither OTLP/JSON lines nor OTLP protobuf: " + shorten(err.Error())})
			}
			return fn(req.Traces())
		}
		if err != nil {
			// A bad length prefix loses the framing: nothing after it can be trusted.
			return onBad(BadInput{File: path, Offset: off, Reason: "bad protobuf message, the rest of the file is skipped: " + shorten(err.Error())})
		}
		if err := fn(req.Traces()); err != nil {
			return err
		}
		off += 4 + int64(size)
	}
}

// readN reads exactly n bytes (n bounded by MaxOTLPMessage), or what is
// left with io.ErrUnexpectedEOF.
func readN(r io.Reader, n int64) ([]byte, error) {
	if n > MaxOTLPMessage {
		return nil, fmt.Errorf("message of %d bytes is larger than the %d-byte limit", n, MaxOTLPMessage)
	}
	var buf bytes.Buffer
	got, err := io.CopyN(&buf, r, n)
	if err == io.EOF && got < n {
		return buf.Bytes(), io.ErrUnexpectedEOF
	}
	return buf.Bytes(), err
}

func shorten(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}
