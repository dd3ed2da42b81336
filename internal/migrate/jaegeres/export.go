package jaegeres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jaegertracing/jaeger/model"
	elastic "github.com/olivere/elastic/v7"
)

// hit is one exported document, decoded.
type hit struct {
	index string
	id    string
	key   string      // the traceID as ES sorted it
	span  *model.Span // nil when err != nil
	err   error
	size  int
}

type page struct {
	hits []hit
	err  error
	end  bool
}

// rawQuery is a query body sent as is (olivere's builders emit forms
// newer servers reject).
type rawQuery map[string]any

func (q rawQuery) Source() (any, error) {
	if q == nil {
		return map[string]any{"match_all": map[string]any{}}, nil
	}
	return map[string]any(q), nil
}

// exportOptions configure an export.
type exportOptions struct {
	indices   []string
	sel       *Selection
	slices    int
	parallel  int
	batch     int
	keepAlive time.Duration
	dec       *Decoder
}

// maxPathIndices bounds the index list of one request path: servers
// refuse request lines over 4 KiB.
const maxPathIndices = 3000

// exporter reads every selected span document once, in ascending order of
// the stored traceID, from several sorted streams (index groups × slices)
// merged on the client. It can restart from a traceID boundary: after a
// PIT or scroll expired, or in a new process.
type exporter struct {
	c      *Client
	o      exportOptions
	groups [][]string

	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	pits    []*atomic.Value // newest PIT id per group
	streams []*stream
	sem     chan struct{}
	pending *hit  // first hit of the next group
	group   []hit // nextGroup's answer, reused

	searches atomic.Int64
}

type stream struct {
	ch   chan page
	cur  []hit
	pos  int
	done bool
}

func newExporter(c *Client, o exportOptions) *exporter {
	e := &exporter{c: c, o: o}
	var cur []string
	n := 0
	for _, ix := range o.indices {
		if len(cur) > 0 && n+len(ix)+1 > maxPathIndices {
			e.groups = append(e.groups, cur)
			cur, n = nil, 0
		}
		cur = append(cur, ix)
		n += len(ix) + 1
	}
	if len(cur) > 0 {
		e.groups = append(e.groups, cur)
	}
	return e
}

// start opens the snapshots and the streams, reading documents whose
// traceID is > after ("" for all).
func (e *exporter) start(ctx context.Context, after string) error {
	e.ctx, e.cancel = context.WithCancel(ctx)
	e.pending = nil
	e.streams = nil
	e.pits = make([]*atomic.Value, len(e.groups))
	e.sem = make(chan struct{}, max(1, e.o.parallel))
	var extra []map[string]any
	if after != "" {
		extra = append(extra, map[string]any{"range": map[string]any{"traceID": map[string]any{"gt": after}}})
	}
	q := e.o.sel.query(extra)
	kind := e.c.info.PIT()
	for g, names := range e.groups {
		e.pits[g] = &atomic.Value{}
		if kind != PITNone {
			id, err := e.c.openPIT(e.ctx, names, e.o.keepAlive)
			if err != nil {
				e.stop()
				return err
			}
			e.pits[g].Store(id)
		}
		for sl := range max(1, e.o.slices) {
			st := &stream{ch: make(chan page, 1)}
			e.streams = append(e.streams, st)
			e.wg.Add(1)
			go func() {
				defer e.wg.Done()
				if kind == PITNone {
					e.runScroll(st, names, q, sl)
				} else {
					e.runPIT(st, g, q, sl)
				}
			}()
		}
	}
	return nil
}

// stop ends the streams and closes the snapshots.
func (e *exporter) stop() {
	if e.cancel == nil {
		return
	}
	e.cancel()
	for _, st := range e.streams {
		go func() {
			for range st.ch {
			}
		}()
	}
	e.wg.Wait()
	for _, st := range e.streams {
		close(st.ch)
	}
	e.streams = nil
	ctx, cancel := context.WithTimeout(context.WithoutCancel(e.ctx), 10*time.Second)
	defer cancel()
	for _, p := range e.pits {
		if p == nil {
			continue
		}
		if id, ok := p.Load().(string); ok && id != "" {
			_ = e.c.closePIT(ctx, id) // best effort: it expires by itself
		}
	}
	e.cancel = nil
}

func (e *exporter) send(st *stream, p page) bool {
	select {
	case st.ch <- p:
		return true
	case <-e.ctx.Done():
		return false
	}
}

func sortSpec() []elastic.Sorter {
	return []elastic.Sorter{
		elastic.NewFieldSort("traceID").Asc(),
		elastic.NewFieldSort("spanID").Asc(),
		elastic.NewFieldSort("startTime").Asc(),
	}
}

// runPIT pages one slice of a PIT with search_after, echoing back every
// sort value (with the implicit _shard_doc tiebreaker of ES ≥ 7.12).
func (e *exporter) runPIT(st *stream, g int, q map[string]any, slice int) {
	var after []any
	r := newPageReader(e)
	for {
		src := elastic.NewSearchSource().Query(rawQuery(q)).Size(e.o.batch).SortBy(sortSpec()...).
			PointInTime(elastic.NewPointInTimeWithKeepAlive(e.pits[g].Load().(string), keepAliveString(e.o.keepAlive))).
			TrackTotalHits(false)
		if e.o.slices > 1 {
			src.Slice(elastic.NewSliceQuery().Id(slice).Max(e.o.slices))
		}
		if after != nil {
			src.SearchAfter(after...)
		}
		body, err := src.Source()
		if err != nil {
			e.send(st, page{err: err})
			return
		}
		var res *searchResult
		err = e.retry(func(ctx context.Context) (failed, total int, err error) {
			res, err = r.search(ctx, "/_search", body)
			if err != nil {
				return 0, 0, err
			}
			return res.failed, res.total, nil
		})
		if err != nil {
			e.send(st, page{err: err})
			return
		}
		if res.pitID != "" {
			e.pits[g].Store(res.pitID)
		}
		if len(res.hits) == 0 {
			e.send(st, page{end: true})
			return
		}
		after = res.after
		if !e.send(st, page{hits: res.hits}) {
			return
		}
	}
}

// runScroll reads one slice with a sorted scroll (servers without PIT).
func (e *exporter) runScroll(st *stream, names []string, q map[string]any, slice int) {
	svc := e.c.es.Scroll(names...).Scroll(keepAliveString(e.o.keepAlive)).Size(e.o.batch).
		Query(rawQuery(q)).SortBy(sortSpec()...)
	if e.o.slices > 1 {
		svc.Slice(elastic.NewSliceQuery().Id(slice).Max(e.o.slices))
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(e.ctx), 10*time.Second)
		defer cancel()
		_ = svc.Clear(ctx)
	}()
	for {
		res, err := e.search(func(ctx context.Context) (*elastic.SearchResult, error) { return svc.Do(ctx) })
		if errors.Is(err, io.EOF) {
			e.send(st, page{end: true})
			return
		}
		if err != nil {
			e.send(st, page{err: err})
			return
		}
		p := e.decodePage(res)
		if len(p.hits) == 0 {
			e.send(st, page{end: true})
			return
		}
		if !e.send(st, p) {
			return
		}
	}
}

// search runs one page request under the concurrency limit. A page with
// failed shards is retried: its missing spans would be lost silently.
func (e *exporter) search(do func(context.Context) (*elastic.SearchResult, error)) (*elastic.SearchResult, error) {
	var res *elastic.SearchResult
	err := e.retry(func(ctx context.Context) (int, int, error) {
		var err error
		if res, err = do(ctx); err != nil {
			return 0, 0, err
		}
		if res.Shards == nil {
			return 0, 0, nil
		}
		return res.Shards.Failed, res.Shards.Total, nil
	})
	return res, err
}

// retry runs do under the concurrency limit until no shard failed (at
// most 6 times, with backoff); do reports the failed and total shards.
func (e *exporter) retry(do func(context.Context) (failed, total int, err error)) error {
	for attempt := 0; ; attempt++ {
		select {
		case e.sem <- struct{}{}:
		case <-e.ctx.Done():
			return e.ctx.Err()
		}
		e.searches.Add(1)
		failed, total, err := do(e.ctx)
		<-e.sem
		if err != nil {
			if errors.Is(err, io.EOF) {
				return err
			}
			return classify(err)
		}
		if failed == 0 {
			return nil
		}
		if attempt >= 5 {
			return fmt.Errorf("%d of %d shards failed to answer, %d times in a row; check the cluster's health", failed, total, attempt+1)
		}
		select {
		case <-time.After(time.Duration(200<<attempt) * time.Millisecond):
		case <-e.ctx.Done():
			return e.ctx.Err()
		}
	}
}

func (e *exporter) decodePage(res *elastic.SearchResult) page {
	if res.Hits == nil {
		return page{}
	}
	hits := make([]hit, len(res.Hits.Hits))
	for i, h := range res.Hits.Hits {
		out := &hits[i]
		out.index, out.id, out.size = h.Index, h.Id, len(h.Source)
		if len(h.Sort) > 0 {
			if s, ok := h.Sort[0].(string); ok {
				out.key = s
			}
		}
		out.span, _, out.err = e.o.dec.Decode(h.Source)
		if out.key == "" {
			out.key = "\U0010FFFF" // no traceID: sorted last
		}
	}
	return page{hits: hits}
}

// next returns the next document in traceID order; io.EOF at the end.
func (e *exporter) next() (*hit, error) {
	var best *stream
	for _, st := range e.streams {
		for !st.done && st.pos >= len(st.cur) {
			var p page
			var ok bool
			select {
			case p, ok = <-st.ch:
			case <-e.ctx.Done():
				return nil, e.ctx.Err()
			}
			if !ok {
				return nil, errors.New("export stream closed")
			}
			if p.err != nil {
				return nil, p.err
			}
			if p.end {
				st.done = true
				break
			}
			st.cur, st.pos = p.hits, 0
		}
		if st.done {
			continue
		}
		if best == nil || st.cur[st.pos].key < best.cur[best.pos].key {
			best = st
		}
	}
	if best == nil {
		return nil, io.EOF
	}
	h := &best.cur[best.pos]
	best.pos++
	return h, nil
}

// nextGroup returns every document of the next stored traceID, in one
// slice (documents that failed to decode come alone). The slice is valid
// until the next call.
func (e *exporter) nextGroup() ([]hit, error) {
	clear(e.group) // let the pages be collected as they are consumed
	group := e.group[:0]
	if e.pending != nil {
		group = append(group, *e.pending)
		*e.pending = hit{}
		e.pending = nil
	}
	for {
		h, err := e.next()
		if err == io.EOF && len(group) > 0 {
			e.group = group
			return group, nil
		}
		if err != nil {
			e.group = group
			return nil, err
		}
		if len(group) > 0 && h.key != group[0].key {
			e.pending = h
			e.group = group
			return group, nil
		}
		group = append(group, *h)
		*h = hit{}
	}
}

func keepAliveString(d time.Duration) string {
	if d%time.Minute == 0 {
		return fmt.Sprintf("%dm", int(d/time.Minute))
	}
	return fmt.Sprintf("%ds", max(1, int(d/time.Second)))
}

// openPIT opens a point in time over indices.
func (c *Client) openPIT(ctx context.Context, indices []string, keepAlive time.Duration) (string, error) {
	var res map[string]any
	path := "/" + strings.Join(indices, ",") + "/_pit"
	idField := "id"
	if c.info.PIT() == PITOpenSearch {
		path = "/" + strings.Join(indices, ",") + "/_search/point_in_time"
		idField = "pit_id"
	}
	if err := c.do(ctx, "POST", path, url.Values{"keep_alive": {keepAliveString(keepAlive)}}, nil, &res); err != nil {
		return "", fmt.Errorf("opening a point in time on %s: %w", strings.Join(indices, ","), err)
	}
	id, _ := res[idField].(string)
	if id == "" {
		return "", fmt.Errorf("opening a point in time on %s: the answer has no %s", strings.Join(indices, ","), idField)
	}
	return id, nil
}

func (c *Client) closePIT(ctx context.Context, id string) error {
	if c.info.PIT() == PITOpenSearch {
		return c.do(ctx, "DELETE", "/_search/point_in_time", nil, map[string]any{"pit_id": []string{id}}, nil)
	}
	return c.do(ctx, "DELETE", "/_pit", nil, map[string]any{"id": id}, nil)
}

// searchAll runs a plain sorted search over indices (no snapshot) and
// returns every hit, paging with search_after. For small result sets:
// trace lookups of --verify and of alternate trace-ID forms.
func (c *Client) searchAll(ctx context.Context, indices []string, q map[string]any, dec *Decoder) ([]hit, error) {
	var out []hit
	var after []any
	e := &exporter{c: c, o: exportOptions{dec: dec}, ctx: ctx, sem: make(chan struct{}, 1)}
	for {
		src := elastic.NewSearchSource().Query(rawQuery(q)).Size(1000).SortBy(sortSpec()...)
		if after != nil {
			src.SearchAfter(after...)
		}
		res, err := e.search(func(ctx context.Context) (*elastic.SearchResult, error) {
			return c.es.Search(indices...).SearchSource(src).Do(ctx)
		})
		if err != nil {
			return nil, err
		}
		p := e.decodePage(res)
		if len(p.hits) == 0 {
			return out, nil
		}
		out = append(out, p.hits...)
		after = res.Hits.Hits[len(res.Hits.Hits)-1].Sort
	}
}

// ReadAll reads and decodes every selected document the way Migrate does,
// writing nothing: the baseline the migration's speed is measured against.
// It returns the documents read and how many failed to decode.
func ReadAll(ctx context.Context, c *Client, sel Selection, parallel, batch int) (docs, bad int64, err error) {
	sel.defaults()
	indices, err := c.Discover(ctx, sel)
	if err != nil {
		return 0, 0, err
	}
	var names []string
	for _, ix := range indices {
		names = append(names, ix.Name)
	}
	e := newExporter(c, exportOptions{indices: names, sel: &sel, slices: parallel, parallel: parallel,
		batch: batch, keepAlive: DefaultKeepAlive, dec: &Decoder{}})
	if err := e.start(ctx, ""); err != nil {
		return 0, 0, err
	}
	defer e.stop()
	for {
		g, err := e.nextGroup()
		if errors.Is(err, io.EOF) {
			return docs, bad, nil
		}
		if err != nil {
			return docs, bad, err
		}
		for i := range g {
			docs++
			if g[i].err != nil {
				bad++
			}
		}
	}
}
