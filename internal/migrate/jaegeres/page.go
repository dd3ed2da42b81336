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
	// Elasticsearch and OpenSearch put pit_id and _shards before hits, so
	// this stops before the hits; the hits are then walked once.
	var ferr error
	jsonparser.EachKey(body, func(idx int, value []byte, vt jsonparser.ValueType, err error) {
		if err != nil {
			return
		}
		switch idx {
		case 0:
			if vt == jsonparser.String {
				out.pitID, err = jsonparser.ParseString(value)
				if err != nil && ferr == nil {
					ferr = fmt.Errorf("pit_id: %w", err)
				}
			}
		case 1:
			n, _ := jsonparser.ParseInt(value)
			out.failed = int(n)
		case 2:
			n, _ := jsonparser.ParseInt(value)
			out.total = int(n)
		}
	}, []string{"pit_id"}, []string{"_shards", "failed"}, []string{"_shards", "total"})
	if ferr != nil {
		return nil, ferr
	}
	var herr error
	_, err := jsonparser.ArrayEach(body, func(v []byte, vt jsonparser.ValueType, _ int, err error) {
		if herr != nil {
			return
		}
		if err != nil || vt != jsonparser.Object {
			herr = fmt.Errorf("hits.hits[%d] is not an object", len(out.hits))
			return
		}
		h, err := r.hit(v)
		if err != nil {
			herr = fmt.Errorf("hits.hits[%d]: %w", len(out.hits), err)
			return
		}
		out.hits = append(out.hits, h)
	}, "hits", "hits")
	if herr != nil {
		return nil, herr
	}
	if err != nil {
		// No hits array (or null): an empty page, the end of the slice.
		if _, vt, _, gerr := jsonparser.Get(body, "hits", "hits"); gerr == nil && vt != jsonparser.Null {
			return nil, fmt.Errorf("hits.hits: %w", err)
		}
		return out, nil
	}
	if len(out.hits) > 0 && len(r.lastRaw) > 0 {
		if err := jsonCfg.Unmarshal(r.lastRaw, &out.after); err != nil {
			return nil, fmt.Errorf("sort values: %w", err)
		}
	}
	return out, nil
}

// hit reads one element of hits.hits; _source is decoded where it lies in
// the answer.
func (r *pageReader) hit(v []byte) (hit, error) {
	var h hit
	var src []byte
	r.lastRaw = r.lastRaw[:0]
	err := jsonparser.ObjectEach(v, func(key, value []byte, dt jsonparser.ValueType, _ int) error {
		switch string(key) {
		case "_index", "_id":
			if dt != jsonparser.String {
				return fmt.Errorf("%s is not a string", key)
			}
			s, err := r.str(value)
			if err != nil {
				return fmt.Errorf("%s: %w", key, err)
			}
			if key[1] == 'i' && key[2] == 'n' {
				h.index = s
			} else {
				h.id = s
			}
		case "_source":
			if dt == jsonparser.Object {
				src = value
			}
		case "sort":
			if dt == jsonparser.Array {
				r.lastRaw = append(r.lastRaw, value...)
			}
		}
		return nil
	})
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

// str is a string value as jsonparser gives it (still escaped), shared
// through the interner when it needs no unescaping.
func (r *pageReader) str(raw []byte) (string, error) {
	if bytes.IndexByte(raw, '\\') >= 0 {
		return jsonparser.ParseString(raw)
	}
	return r.in.get(raw), nil
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
