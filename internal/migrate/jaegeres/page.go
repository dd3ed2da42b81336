package jaegeres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	elastic "github.com/olivere/elastic/v7"
	jsoniter "github.com/json-iterator/go"
)

// pageReader fetches and decodes search pages for one export stream. It
// sends the request through olivere's PerformRequest (same retries, auth
// and error answers as SearchService.Do) but reads the answer with one
// pass of a JSON iterator instead of olivere's SearchResult: each _source
// is decoded from a reused buffer with shared strings, and only the last
// hit's sort values are kept for search_after. The profile of the export
// was dominated by copying every _source into a json.RawMessage and by
// allocating its strings.
type pageReader struct {
	e       *exporter
	in      *interner
	src     []byte // the current _source
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

// The buffers start non-nil: jsoniter captures into nil as "not capturing".
func newPageReader(e *exporter) *pageReader {
	return &pageReader{e: e, in: newInterner(), src: make([]byte, 0, 4096), lastRaw: make([]byte, 0, 256)}
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
	it := jsonCfg.BorrowIterator(body)
	defer jsonCfg.ReturnIterator(it)
	out := &searchResult{}
	if it.WhatIsNext() != jsoniter.ObjectValue {
		return nil, errors.New("the answer is not a JSON object")
	}
	for f := it.ReadObject(); f != ""; f = it.ReadObject() {
		switch f {
		case "pit_id":
			out.pitID = it.ReadString()
		case "_shards":
			for g := it.ReadObject(); g != ""; g = it.ReadObject() {
				switch g {
				case "failed":
					out.failed = it.ReadInt()
				case "total":
					out.total = it.ReadInt()
				default:
					it.Skip()
				}
			}
		case "hits":
			for g := it.ReadObject(); g != ""; g = it.ReadObject() {
				if g != "hits" {
					it.Skip()
					continue
				}
				for it.ReadArray() {
					out.hits = append(out.hits, r.hit(it))
				}
			}
		default:
			it.Skip()
		}
		if it.Error != nil {
			return nil, it.Error
		}
	}
	if it.Error != nil {
		return nil, it.Error
	}
	if len(out.hits) > 0 && len(r.lastRaw) > 0 {
		if err := jsonCfg.Unmarshal(r.lastRaw, &out.after); err != nil {
			return nil, fmt.Errorf("sort values: %w", err)
		}
	}
	return out, nil
}

// hit reads one element of hits.hits.
func (r *pageReader) hit(it *jsoniter.Iterator) hit {
	var h hit
	haveSource := false
	r.lastRaw = r.lastRaw[:0]
	for f := it.ReadObject(); f != ""; f = it.ReadObject() {
		switch f {
		case "_index":
			h.index = readStr(it)
		case "_id":
			h.id = it.ReadString()
		case "_source":
			r.src = it.SkipAndAppendBytes(r.src[:0])
			haveSource = true
		case "sort":
			r.lastRaw = it.SkipAndAppendBytes(r.lastRaw[:0])
		default:
			it.Skip()
		}
	}
	if it.Error != nil {
		return h
	}
	h.key = sortKey(r.lastRaw)
	if !haveSource {
		r.src = r.src[:0] // decoded as before: "not a JSON object"
	}
	h.size = len(r.src)
	h.span, _, h.err = r.e.o.dec.decodeWith(r.src, r.in)
	if h.key == "" {
		h.key = "\U0010FFFF" // no traceID: sorted last
	}
	return h
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
