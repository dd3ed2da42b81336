package server

import (
	"errors"
	"fmt"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/tracectl/tracectl/internal/blocks/block"
)

// The head keeps each request as the OTLP protobuf it arrived in (the same
// bytes the WAL holds) with an index of where each trace's spans are, and
// decodes a trace only when it is written to a block or read by a query.
// pdata costs about four times the protobuf size and keeps the garbage
// collector busy scanning it; bytes cost their size and nothing to scan.
// A trace is rebuilt as a small ExportTraceServiceRequest holding just its
// spans, under copies of their resource and scope.

// Field numbers of the OTLP messages the index walks.
const (
	fieldResourceSpans = 1 // ExportTraceServiceRequest / TracesData
	fieldResource      = 1 // ResourceSpans
	fieldScopeSpans    = 2
	fieldRSSchemaURL   = 3
	fieldScope         = 1 // ScopeSpans
	fieldSpans         = 2
	fieldSSSchemaURL   = 3
	fieldTraceID       = 1 // Span
)

// rng is a byte range of a request's buffer.
type rng struct{ off, n uint32 }

func (r rng) of(b []byte) []byte { return b[r.off : r.off+r.n] }

// rawRequest is one request's protobuf and the layout of its resources and
// scopes. It is never changed after indexing.
type rawRequest struct {
	buf []byte
	rs  []rawResource
}

// Every occurrence of a field is kept: protobuf merges repeated
// occurrences of a message field (last one wins for a string), and
// writing them all again gives the decoder the same result.
type rawResource struct {
	resource, schemaURL []rng
	scopes              []rawScope
}

type rawScope struct{ scope, schemaURL []rng }

// spanRef is one span of a request: its resource and scope, and its bytes.
type spanRef struct {
	rs, ss int32
	r      rng
}

// rawPiece is the spans of one trace in one request, in the order received.
type rawPiece struct {
	req   *rawRequest
	spans []spanRef
	// tags is the piece's place in the server's tag index (headtags.go),
	// set when the head accepts the piece.
	tags *pieceTags
}

// indexedTrace is one trace's piece of an indexed request.
type indexedTrace struct {
	id    block.TraceID
	piece rawPiece
	bytes int64 // protobuf size of the trace's part of the request
}

// indexRequest indexes buf, an ExportTraceServiceRequest, by trace. The
// result references buf, which must not change afterwards. Traces come in
// order of first appearance.
func indexRequest(buf []byte) ([]indexedTrace, error) {
	if uint64(len(buf)) > 1<<32-1 {
		return nil, fmt.Errorf("request of %d bytes is too large to index", len(buf))
	}
	req := &rawRequest{buf: buf}
	var out []indexedTrace
	at := map[block.TraceID]int{}
	err := eachField(buf, rng{0, uint32(len(buf))}, func(num protowire.Number, v rng) error {
		if num != fieldResourceSpans {
			return nil
		}
		rsIdx := int32(len(req.rs))
		req.rs = append(req.rs, rawResource{})
		return eachField(buf, v, func(num protowire.Number, v rng) error {
			rs := &req.rs[rsIdx]
			switch num {
			case fieldResource:
				rs.resource = append(rs.resource, v)
			case fieldRSSchemaURL:
				rs.schemaURL = append(rs.schemaURL, v)
			case fieldScopeSpans:
				ssIdx := int32(len(rs.scopes))
				rs.scopes = append(rs.scopes, rawScope{})
				return eachField(buf, v, func(num protowire.Number, v rng) error {
					sc := &req.rs[rsIdx].scopes[ssIdx]
					switch num {
					case fieldScope:
						sc.scope = append(sc.scope, v)
					case fieldSSSchemaURL:
						sc.schemaURL = append(sc.schemaURL, v)
					case fieldSpans:
						var id block.TraceID
						if err := eachField(buf, v, func(num protowire.Number, f rng) error {
							if num == fieldTraceID && f.n == uint32(len(id)) {
								copy(id[:], f.of(buf))
							}
							return nil
						}); err != nil {
							return err
						}
						i, ok := at[id]
						if !ok {
							i = len(out)
							at[id] = i
							out = append(out, indexedTrace{id: id, piece: rawPiece{req: req}})
						}
						out[i].piece.spans = append(out[i].piece.spans, spanRef{rs: rsIdx, ss: ssIdx, r: v})
						out[i].bytes += int64(v.n)
					}
					return nil
				})
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	// Each trace also carries copies of its resources and scopes.
	for i := range out {
		out[i].bytes = int64(pieceSize(out[i].piece))
	}
	return out, nil
}

var errTruncated = errors.New("truncated protobuf")

// eachField calls fn with each length-delimited field of the message at
// within in buf. Other wire types are skipped; a malformed message is an
// error.
func eachField(buf []byte, within rng, fn func(num protowire.Number, v rng) error) error {
	b, base := within.of(buf), within.off
	pos := 0
	for pos < len(b) {
		num, typ, n := consumeTag(b[pos:])
		if n < 0 {
			return errTruncated
		}
		pos += n
		if typ != protowire.BytesType {
			m := skipField(b[pos:], typ)
			if m < 0 {
				return errTruncated
			}
			pos += m
			continue
		}
		v, m := consumeBytes(b[pos:])
		if m < 0 {
			return errTruncated
		}
		start := pos + (m - len(v))
		pos += m
		if err := fn(num, rng{off: base + uint32(start), n: uint32(len(v))}); err != nil {
			return err
		}
	}
	return nil
}

// consumeTag reads a field tag as pdata's decoder does (which accepts
// field numbers protowire.ConsumeTag refuses): the number is the low 32
// bits of the varint shifted, and must be positive.
func consumeTag(b []byte) (protowire.Number, protowire.Type, int) {
	v, n := consumeVarint(b)
	if n < 0 {
		return 0, 0, -1
	}
	num := int32(v >> 3)
	if num <= 0 {
		return 0, 0, -1
	}
	return protowire.Number(num), protowire.Type(v & 7), n
}

// consumeVarint reads a varint as pdata's decoder does: at most ten
// bytes, bits past 64 ignored.
func consumeVarint(b []byte) (uint64, int) {
	var v uint64
	for i, shift := 0, uint(0); shift < 64; i, shift = i+1, shift+7 {
		if i >= len(b) {
			return 0, -1
		}
		v |= uint64(b[i]&0x7f) << shift
		if b[i] < 0x80 {
			return v, i + 1
		}
	}
	return 0, -1
}

// consumeBytes reads a length-delimited value as pdata's decoder does.
func consumeBytes(b []byte) ([]byte, int) {
	l, n := consumeVarint(b)
	if n < 0 || l > uint64(len(b)-n) {
		return nil, -1
	}
	return b[n : n+int(l)], n + int(l)
}

// skipField returns the length of a field value of wire type typ at the
// start of b, or -1. Groups (deprecated, never sent by OTLP clients) are
// skipped the way pdata's decoder skips them, so that every request pdata
// accepted is indexed: up to the first non-group field inside them.
func skipField(b []byte, typ protowire.Type) int {
	pos, depth := 0, 0
	for {
		switch typ {
		case protowire.VarintType:
			_, m := consumeVarint(b[pos:])
			if m < 0 {
				return -1
			}
			return pos + m
		case protowire.Fixed64Type, protowire.Fixed32Type:
			m := protowire.ConsumeFieldValue(0, typ, b[pos:])
			if m < 0 {
				return -1
			}
			return pos + m
		case protowire.StartGroupType:
			depth++
		case protowire.EndGroupType:
			if depth == 0 {
				return -1
			}
			depth--
		default:
			return -1
		}
		if depth == 0 {
			return pos
		}
		_, t, n := consumeTag(b[pos:])
		if n < 0 {
			return -1
		}
		typ = t
		pos += n
		if typ == protowire.BytesType {
			_, m := consumeBytes(b[pos:])
			if m < 0 {
				return -1
			}
			return pos + m
		}
	}
}

// runs calls fn for each run of consecutive spans of p under the same
// resource and scope.
func (p rawPiece) runs(fn func(rs *rawResource, sc *rawScope, spans []spanRef)) {
	for i := 0; i < len(p.spans); {
		j := i + 1
		for j < len(p.spans) && p.spans[j].rs == p.spans[i].rs && p.spans[j].ss == p.spans[i].ss {
			j++
		}
		rs := &p.req.rs[p.spans[i].rs]
		fn(rs, &rs.scopes[p.spans[i].ss], p.spans[i:j])
		i = j
	}
}

func bytesFieldSize(num protowire.Number, n int) int {
	return protowire.SizeTag(num) + protowire.SizeBytes(n)
}

func optFieldSize(num protowire.Number, rs []rng) int {
	n := 0
	for _, r := range rs {
		n += bytesFieldSize(num, int(r.n))
	}
	return n
}

// runSizes returns the encoded sizes of a run's ScopeSpans and
// ResourceSpans messages (without their own tag and length).
func runSizes(rs *rawResource, sc *rawScope, spans []spanRef) (ssLen, rsLen int) {
	ssLen = optFieldSize(fieldScope, sc.scope) + optFieldSize(fieldSSSchemaURL, sc.schemaURL)
	for _, s := range spans {
		ssLen += bytesFieldSize(fieldSpans, int(s.r.n))
	}
	rsLen = optFieldSize(fieldResource, rs.resource) + bytesFieldSize(fieldScopeSpans, ssLen) + optFieldSize(fieldRSSchemaURL, rs.schemaURL)
	return ssLen, rsLen
}

// pieceSize is the size of appendPiece's output.
func pieceSize(p rawPiece) int {
	n := 0
	p.runs(func(rs *rawResource, sc *rawScope, spans []spanRef) {
		_, rsLen := runSizes(rs, sc, spans)
		n += bytesFieldSize(fieldResourceSpans, rsLen)
	})
	return n
}

func appendOpt(dst []byte, num protowire.Number, rs []rng, buf []byte) []byte {
	for _, r := range rs {
		dst = protowire.AppendTag(dst, num, protowire.BytesType)
		dst = protowire.AppendBytes(dst, r.of(buf))
	}
	return dst
}

// appendPiece appends p to dst as ExportTraceServiceRequest fields: one
// ResourceSpans per run of spans under the same resource and scope.
// Concatenated pieces are one valid request.
func appendPiece(dst []byte, p rawPiece) []byte {
	buf := p.req.buf
	p.runs(func(rs *rawResource, sc *rawScope, spans []spanRef) {
		ssLen, rsLen := runSizes(rs, sc, spans)
		dst = protowire.AppendTag(dst, fieldResourceSpans, protowire.BytesType)
		dst = protowire.AppendVarint(dst, uint64(rsLen))
		dst = appendOpt(dst, fieldResource, rs.resource, buf)
		dst = protowire.AppendTag(dst, fieldScopeSpans, protowire.BytesType)
		dst = protowire.AppendVarint(dst, uint64(ssLen))
		dst = appendOpt(dst, fieldScope, sc.scope, buf)
		for _, s := range spans {
			dst = protowire.AppendTag(dst, fieldSpans, protowire.BytesType)
			dst = protowire.AppendBytes(dst, s.r.of(buf))
		}
		dst = appendOpt(dst, fieldSSSchemaURL, sc.schemaURL, buf)
		dst = appendOpt(dst, fieldRSSchemaURL, rs.schemaURL, buf)
	})
	return dst
}

// decodePieces decodes pieces into one Traces the caller owns. scratch is
// reused for the encoded form and returned for the next call.
func decodePieces(pieces []rawPiece, scratch []byte) (ptrace.Traces, []byte, error) {
	scratch = scratch[:0]
	for _, p := range pieces {
		scratch = appendPiece(scratch, p)
	}
	req := ptraceotlp.NewExportRequest()
	if err := req.UnmarshalProto(scratch); err != nil {
		return ptrace.Traces{}, scratch, fmt.Errorf("decoding spans held in the head: %w", err)
	}
	return req.Traces(), scratch, nil
}
