package jaegeres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/buger/jsonparser"
	jsoniter "github.com/json-iterator/go"
	elastic "github.com/olivere/elastic/v7"
)

// pageReader fetches and decodes search pages for one export stream. It
// sends the request through olivere's PerformRequest (same retries, auth
// and error answers as SearchService.Do) but reads the answer with one
// pass of jsonparser instead of olivere's SearchResult: each _source is
// decoded where it lies in the answer with shared strings, and only the
// last hit's sort values are kept for search_after. The profile of the
// export was dominated by copying every _source into a json.RawMessage
// (and by skipping it with jsoniter) and by allocating its strings.
type pageReader struct {
	e       *exporter
	in      *interner
	lastRaw []byte // sort values of the last hit read
	body    bytes.Buffer
}

// searchResult is what a page says besides its hits.
type searchResult struct {
	hits          []hit
	after         []any // sort values of the last hit
	pitID         string
	failed, total int // shards
}

func newPageReader(e *exporter) *pageReader {
	return &pageReader{e: e, in: newInterner(), lastRaw: make([]byte, 0, 256)}
}

// maxPageBytes bounds one search answer (10000 hits of 100 KiB).
const maxPageBytes = 1 << 30

// search posts body to path and decodes the page. The answer is read
// into the reader's own buffer, reused from page to page.
func (r *pageReader) search(ctx context.Context, path string, body any) (*searchResult, error) {
	res, err := r.e.c.es.PerformRequest(ctx, elastic.PerformRequestOptions{Method: "POST", Path: path, Body: body, Stream: true})
	if res != nil && res.BodyReader != nil {
		defer res.BodyReader.Close()
	}
	if err != nil {
		return nil, err
	}
	if res.BodyReader == nil {
		return nil, errors.New("the search answer has no body")
	}
	r.body.Reset()
	if _, err := r.body.ReadFrom(io.LimitReader(res.BodyReader, maxPageBytes+1)); err != nil {
		return nil, fmt.Errorf("reading a search answer: %w", err)
	}
	if r.body.Len() > maxPageBytes {
		return nil, fmt.Errorf("a search answer is over %d MiB; lower --batch-size", maxPageBytes>>20)
	}
	out, err := r.parse(r.body.Bytes())
	if err != nil {
		return nil, fmt.Errorf("decoding a search answer: %w", err)
	}
	return out, nil
}

func (r *pageReader) parse(body []byte) (*searchResult, error) {
	out := &searchResult{}
	r.lastRaw = r.lastRaw[:0]
	// One walk over the answer: each hit is passed over once, its _source
	// once more to be decoded. (jsonparser's ArrayEach and ObjectEach
	// scanned each hit to its end, then its _source again, before the
	// decoder read it: a third of the export's time went to those scans.)
	s := &scanner{b: body}
	if s.peek() != '{' {
		return nil, errors.New("the answer is not a JSON object")
	}
	err := s.object(func(key []byte) error {
		switch string(key) {
		case "pit_id":
			if s.peek() != '"' {
				s.skip()
				return nil
			}
			raw, esc := s.str()
			if !esc {
				out.pitID = string(raw)
				return nil
			}
			var err error
			if out.pitID, err = jsonparser.ParseString(raw); err != nil {
				return fmt.Errorf("pit_id: %w", err)
			}
		case "_shards":
			start := s.i
			s.skip()
			v := body[start:s.i]
			n, _ := jsonparser.GetInt(v, "failed")
			out.failed = int(n)
			n, _ = jsonparser.GetInt(v, "total")
			out.total = int(n)
		case "hits":
			if s.peek() != '{' {
				s.skip()
				return nil
			}
			return s.object(func(key []byte) error {
				if string(key) != "hits" {
					s.skip()
					return nil
				}
				switch s.peek() {
				case '[':
				case 'n': // null: an empty page, the end of the slice
					s.skip()
					return nil
				default:
					return errors.New("hits.hits is not an array")
				}
				return s.array(func() error {
					if s.peek() != '{' {
						return fmt.Errorf("hits.hits[%d] is not an object", len(out.hits))
					}
					h, err := r.hit(s)
					if err != nil {
						return fmt.Errorf("hits.hits[%d]: %w", len(out.hits), err)
					}
					out.hits = append(out.hits, h)
					return nil
				})
			})
		default:
			s.skip()
		}
		return nil
	})
	if err == nil {
		err = s.err
	}
	if err != nil {
		return nil, err
	}
	if len(out.hits) > 0 && len(r.lastRaw) > 0 {
		if err := jsonCfg.Unmarshal(r.lastRaw, &out.after); err != nil {
			return nil, fmt.Errorf("sort values: %w", err)
		}
	}
	return out, nil
}

// hit reads one element of hits.hits (the scanner is at its '{'); its
// _source is decoded where it lies in the answer.
func (r *pageReader) hit(s *scanner) (hit, error) {
	var h hit
	var src []byte
	r.lastRaw = r.lastRaw[:0]
	err := s.object(func(key []byte) error {
		switch string(key) {
		case "_index", "_id":
			if s.peek() != '"' {
				return fmt.Errorf("%s is not a string", key)
			}
			raw, esc := s.str()
			var v string
			if esc {
				var err error
				if v, err = jsonparser.ParseString(raw); err != nil {
					return fmt.Errorf("%s: %w", key, err)
				}
			} else {
				v = r.in.get(raw)
			}
			if key[1] == 'i' && key[2] == 'n' {
				h.index = v
			} else {
				h.id = v
			}
		case "_source":
			obj := s.peek() == '{'
			start := s.i
			s.skip()
			if obj {
				src = s.b[start:s.i]
			}
		case "sort":
			arr := s.peek() == '['
			start := s.i
			s.skip()
			if arr {
				r.lastRaw = append(r.lastRaw, s.b[start:s.i]...)
			}
		default:
			s.skip()
		}
		return nil
	})
	if err == nil {
		err = s.err
	}
	if err != nil {
		return h, err
	}
	h.key = sortKey(r.lastRaw)
	h.size = len(src)
	// A missing _source decodes as before: "not a JSON object".
	h.span, _, h.err = r.e.o.dec.decodeWith(src, r.in)
	if h.key == "" {
		h.key = "\U0010FFFF" // no traceID: sorted last
	}
	return h, nil
}

// scanner walks JSON without decoding it: it finds where values end,
// passing over strings with bytes.IndexByte. It checks the structure of
// what it walks (objects, arrays, strings), not the contents of what it
// skips (the decoder checks the _source it is given).
type scanner struct {
	b   []byte
	i   int
	err error
}

func (s *scanner) malformed(what string) error {
	if s.err == nil {
		s.err = fmt.Errorf("malformed JSON at offset %d: %s", s.i, what)
	}
	s.i = len(s.b)
	return s.err
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// peek skips white space and returns the next byte (0 at the end).
func (s *scanner) peek() byte {
	s.ws()
	if s.i >= len(s.b) {
		return 0
	}
	return s.b[s.i]
}

// stringEnd returns the index of the closing quote of the string whose
// contents start at i, or -1.
func (s *scanner) stringEnd(i int) int {
	for {
		k := bytes.IndexByte(s.b[i:], '"')
		if k < 0 {
			return -1
		}
		i += k
		n := 0
		for p := i - 1; p >= 0 && s.b[p] == '\\'; p-- {
			n++
		}
		if n%2 == 0 {
			return i
		}
		i++
	}
}

// str reads the string at s.i: its raw contents, and whether they hold
// an escape.
func (s *scanner) str() (raw []byte, esc bool) {
	start := s.i + 1
	end := s.stringEnd(start)
	if end < 0 {
		s.malformed("unterminated string")
		return nil, false
	}
	s.i = end + 1
	raw = s.b[start:end]
	return raw, bytes.IndexByte(raw, '\\') >= 0
}

// skip passes over the value at s.i.
func (s *scanner) skip() {
	switch s.peek() {
	case 0:
		s.malformed("a value is missing")
	case '"':
		end := s.stringEnd(s.i + 1)
		if end < 0 {
			s.malformed("unterminated string")
			return
		}
		s.i = end + 1
	case '{', '[':
		depth := 0
		for s.i < len(s.b) {
			switch s.b[s.i] {
			case '"':
				end := s.stringEnd(s.i + 1)
				if end < 0 {
					s.malformed("unterminated string")
					return
				}
				s.i = end
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					s.i++
					return
				}
			}
			s.i++
		}
		s.malformed("unterminated object or array")
	default: // a number, true, false or null
		start := s.i
		for s.i < len(s.b) {
			switch s.b[s.i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				if s.i == start {
					s.malformed("a value is missing")
				}
				return
			}
			s.i++
		}
	}
}

// object calls f for each member of the object at s.i, with the scanner
// at the member's value; f must pass over the value.
func (s *scanner) object(f func(key []byte) error) error {
	if s.peek() != '{' {
		return s.malformed("an object is expected")
	}
	s.i++
	if s.peek() == '}' {
		s.i++
		return nil
	}
	for {
		if s.peek() != '"' {
			return s.malformed("a key is expected")
		}
		key, _ := s.str()
		if s.peek() != ':' {
			return s.malformed("':' is expected")
		}
		s.i++
		if err := f(key); err != nil {
			return err
		}
		if s.err != nil {
			return s.err
		}
		switch s.peek() {
		case ',':
			s.i++
		case '}':
			s.i++
			return nil
		default:
			return s.malformed("',' or '}' is expected")
		}
	}
}

// array calls f for each element of the array at s.i, with the scanner
// at the element; f must pass over it.
func (s *scanner) array(f func() error) error {
	if s.peek() != '[' {
		return s.malformed("an array is expected")
	}
	s.i++
	if s.peek() == ']' {
		s.i++
		return nil
	}
	for {
		if err := f(); err != nil {
			return err
		}
		if s.err != nil {
			return s.err
		}
		switch s.peek() {
		case ',':
			s.i++
		case ']':
			s.i++
			return nil
		default:
			return s.malformed("',' or ']' is expected")
		}
	}
}

// sortKey is the first sort value when it is a string (the traceID).
func sortKey(raw []byte) string {
	if len(raw) == 0 {
		return ""
	}
	it := jsonCfg.BorrowIterator(raw)
	defer jsonCfg.ReturnIterator(it)
	if !it.ReadArray() || it.WhatIsNext() != jsoniter.StringValue {
		return ""
	}
	return it.ReadString()
}
