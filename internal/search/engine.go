package search

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tracectl/tracectl/internal/blocks"
	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/blocks/pqread"
	"github.com/tracectl/tracectl/internal/blocks/vparquet3"
	"github.com/tracectl/tracectl/internal/blocks/vparquet4"
	"github.com/tracectl/tracectl/internal/blocks/vparquet5"
	"github.com/tracectl/tracectl/internal/storage"
)

// Options tune an Engine.
type Options struct {
	// Concurrency bounds the block jobs run at once (default: the number
	// of CPUs, at least 2).
	Concurrency int
	// Generic forces the slower path (whole rows converted to OTLP) for
	// every block; tests compare both paths with it.
	Generic bool
	// SkipUnreadable makes Search skip a block that cannot be read (with a
	// warning to Logger) and answer from the others, as trace by ID does;
	// the search still fails when every block failed. Without it the
	// first unreadable block fails the search.
	SkipUnreadable bool
	Logger         *slog.Logger
	// OnSkip, if set, is called for each block skipped by SkipUnreadable,
	// with the kind of query ("search", "tags", "tag_values", "metrics")
	// and the error (for a metric, or to list the blocks again when one is
	// gone); it must be quick and safe for concurrent use.
	OnSkip func(query, tenant string, m *block.Meta, err error)
}

// Engine answers searches over one bucket. It is safe for concurrent use
// and meant to live as long as the server: it keeps parsed block footers
// between queries.
type Engine struct {
	bucket   *storage.Bucket
	opts     Options
	files    *fileCache
	distinct distinctCache
}

// CacheStats describes what the engine keeps between queries.
type CacheStats struct {
	// Blocks is the block readers kept (with their parsed footers) and
	// BlockBytes the memory they are estimated to hold, within a budget.
	Blocks     int
	BlockBytes int64
	// DistinctEntries is the per-block answers of tag queries kept.
	DistinctEntries int
}

// CacheStats returns the engine's cache sizes, for metrics.
func (e *Engine) CacheStats() CacheStats {
	n, b := e.files.stats()
	return CacheStats{Blocks: n, BlockBytes: b, DistinctEntries: e.distinct.len()}
}

// NewEngine returns an engine reading blocks from b.
func NewEngine(b *storage.Bucket, opts Options) *Engine {
	if opts.Concurrency <= 0 {
		opts.Concurrency = max(2, runtime.NumCPU())
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Engine{bucket: b, opts: opts, files: newFileCache(b, defaultFileCacheBytes)}
}

// stats counts what a query did.
type stats struct {
	inspectedBytes atomic.Int64
	inspectedSpans atomic.Int64
	inspectedRows  atomic.Int64
	completedJobs  atomic.Int64
}

// collector gathers matching parts; it asks the jobs to stop once limit
// distinct traces matched.
type collector struct {
	mu     sync.Mutex
	limit  int
	traces map[block.TraceID]*combined
	order  []block.TraceID
	stop   context.CancelFunc
}

type combined struct {
	parts []*part
}

// add records a matching part; it returns false when the search has enough.
func (c *collector) add(p *part) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.traces[p.id]
	if t == nil {
		if len(c.traces) >= c.limit {
			return false
		}
		t = &combined{}
		c.traces[p.id] = t
		c.order = append(c.order, p.id)
	}
	t.parts = append(t.parts, p)
	if len(c.traces) >= c.limit {
		c.stop()
		return false
	}
	return true
}

func (c *collector) full() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.traces) >= c.limit
}

// inWindow picks the blocks whose [start, end] overlaps the window.
func inWindow(metas []*block.Meta, start, end time.Time) []*block.Meta {
	var out []*block.Meta
	for _, m := range metas {
		if !start.IsZero() && m.EndTime.Before(start.Truncate(time.Second)) {
			continue
		}
		if !end.IsZero() && m.StartTime.After(end) {
			continue
		}
		out = append(out, m)
	}
	return out
}

// Search answers req from the head (may be nil) and the blocks in metas
// (one tenant's live blocks; the engine prunes them by time). A trace with
// parts in several blocks and the head is one result. Results are sorted
// by start time, newest first, as Tempo's. A block that cannot be read
// fails the search, or with Options.SkipUnreadable is skipped with a
// warning (the search fails only when every block failed or its context
// ended).
func (e *Engine) Search(ctx context.Context, tenant string, metas []*block.Meta, head HeadSource, req Request) (*Response, error) {
	return e.SearchList(ctx, tenant, func(context.Context) ([]*block.Meta, error) { return metas, nil }, head, req)
}

// SearchList is Search with the block list taken by list after the head
// was read. A server announces a stored block before its head lets the
// block's traces go, so a trace that left the head while the search read
// it is in the list, never in neither.
func (e *Engine) SearchList(ctx context.Context, tenant string, list func(context.Context) ([]*block.Meta, error), head HeadSource, req Request) (*Response, error) {
	if req.Query == nil {
		return nil, reqErr("search: no query")
	}
	p := newPlan(req)
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	col := &collector{limit: p.limit, traces: map[block.TraceID]*combined{}, stop: cancel}
	st := &stats{}

	if head != nil {
		head.ForEachHeadTrace(tenant, func(id block.TraceID, parts []ptrace.Traces) bool {
			td := parts[0]
			if len(parts) > 1 {
				td = blocks.Combine(parts...)
			}
			st.inspectedSpans.Add(int64(td.SpanCount()))
			if pt := p.evalOTLP(id, td, nil); pt != nil {
				return col.add(pt)
			}
			return !col.full()
		})
	}
	// The caller's context: ctx ends when the head alone filled the limit.
	metas, err := list(parent)
	if err != nil {
		return nil, err
	}
	candidates := inWindow(metas, req.Start, req.End)

	var totalBytes uint64
	for _, m := range candidates {
		totalBytes += m.Size
	}
	job, allSkipped := e.skipUnreadable("search", func(ctx context.Context, m *block.Meta) error {
		return e.searchBlock(ctx, m, p, col, st)
	})
	err = e.runJobs(ctx, candidates, job, st)
	if err == nil {
		err = allSkipped(len(candidates))
	}
	if err == nil && parent.Err() != nil {
		// The jobs stopped because the query's context ended (a timeout,
		// the client gone), not because enough traces matched: runJobs
		// does not report that, and an answer now would be silently short.
		err = parent.Err()
	}
	if err != nil && !col.full() {
		return nil, err
	}

	resp := &Response{Traces: []*TraceMetadata{}, Metrics: &Metrics{
		InspectedBytes:  Uint64String(st.inspectedBytes.Load()),
		TotalBlocks:     uint32(len(candidates)),
		TotalJobs:       uint32(len(candidates)),
		CompletedJobs:   uint32(st.completedJobs.Load()),
		TotalBlockBytes: Uint64String(totalBytes),
		InspectedTraces: uint32(st.inspectedRows.Load()),
		InspectedSpans:  Uint64String(st.inspectedSpans.Load()),
	}}
	if len(candidates) == 0 {
		resp.Metrics.TotalJobs, resp.Metrics.CompletedJobs = 1, 1
	}
	for _, id := range col.order {
		resp.Traces = append(resp.Traces, p.result(id, col.traces[id]))
	}
	sort.SliceStable(resp.Traces, func(i, j int) bool {
		a, b := resp.Traces[i], resp.Traces[j]
		if a.StartTimeUnixNano != b.StartTimeUnixNano {
			return a.StartTimeUnixNano > b.StartTimeUnixNano
		}
		return a.TraceID < b.TraceID
	})
	if len(resp.Traces) > p.limit {
		resp.Traces = resp.Traces[:p.limit]
	}
	return resp, nil
}

// rootNotReceived is Tempo's rootServiceName of a trace without a root.
const rootNotReceived = "<root span not yet received>"

// result combines the matching parts of one trace: root names from a part
// that has the root, the widest time span, per service the largest counts,
// the span set of the first part.
func (p *plan) result(id block.TraceID, c *combined) *TraceMetadata {
	t := &TraceMetadata{TraceID: id.Text(), RootServiceName: rootNotReceived}
	if t.TraceID == "" {
		t.TraceID = "0"
	}
	var start, end uint64
	for i, pt := range c.parts {
		if i == 0 || pt.start < start {
			start = pt.start
		}
		if pt.end > end {
			end = pt.end
		}
		if pt.hasRoot && t.RootServiceName == rootNotReceived {
			t.RootServiceName, t.RootTraceName = pt.rootService, pt.rootName
		}
	}
	t.StartTimeUnixNano = Uint64String(start)
	t.DurationMs = uint32(spanDuration(start, end) / uint64(time.Millisecond))
	if p.req.Tags {
		return t
	}
	t.ServiceStats = map[string]ServiceStats{}
	for _, pt := range c.parts {
		for svc, s := range pt.stats {
			cur := t.ServiceStats[svc]
			cur.SpanCount = max(cur.SpanCount, s.SpanCount)
			cur.ErrorCount = max(cur.ErrorCount, s.ErrorCount)
			t.ServiceStats[svc] = cur
		}
	}
	// The span set of one part: the one with the root when there is one,
	// so that the answer does not depend on which block answered first.
	set := c.parts[0].spanSet
	for _, pt := range c.parts {
		if pt.hasRoot {
			set = pt.spanSet
			break
		}
	}
	t.SpanSet = set
	t.SpanSets = []*SpanSet{set}
	return t
}

// blockJob is the work of one query on one block.
type blockJob = func(context.Context, *block.Meta) error

// skipUnreadable wraps the per-block job of a query of kind what: with
// Options.SkipUnreadable, a block whose job fails (it cannot be read) is
// logged, reported to OnSkip and left out, and the query answers from the
// others. allSkipped, called after the jobs over n blocks, fails the query
// when every one was left out. Errors of the request itself and the end of
// the query's context are never skipped.
func (e *Engine) skipUnreadable(what string, fn blockJob) (job blockJob, allSkipped func(n int) error) {
	if !e.opts.SkipUnreadable {
		return fn, func(int) error { return nil }
	}
	var mu sync.Mutex
	var skipped []error
	job = func(ctx context.Context, m *block.Meta) error {
		err := fn(ctx, m)
		var re *requestError
		if err == nil || ctx.Err() != nil || errors.As(err, &re) {
			return err
		}
		e.opts.Logger.Warn("block skipped in "+what+": it cannot be read", "tenant", m.TenantID, "block", m.BlockID.String(), "err", err)
		if e.opts.OnSkip != nil {
			e.opts.OnSkip(what, m.TenantID, m, err)
		}
		mu.Lock()
		skipped = append(skipped, fmt.Errorf("block %s/%s: %w", m.TenantID, m.BlockID, err))
		mu.Unlock()
		return nil
	}
	allSkipped = func(n int) error {
		mu.Lock()
		defer mu.Unlock()
		if len(skipped) > 0 && len(skipped) == n {
			return fmt.Errorf("every block read for %s failed: %w", what, errors.Join(skipped...))
		}
		return nil
	}
	return job, allSkipped
}

// runJobs runs fn for every block with at most Concurrency at once. The
// first error cancels the rest and is returned.
func (e *Engine) runJobs(ctx context.Context, metas []*block.Meta, fn func(context.Context, *block.Meta) error, st *stats) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		next     atomic.Int64
	)
	workers := min(e.opts.Concurrency, len(metas))
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(metas) || ctx.Err() != nil {
					return
				}
				if err := fn(ctx, metas[i]); err != nil {
					if ctx.Err() != nil {
						return
					}
					mu.Lock()
					if firstErr == nil {
						firstErr = err
						cancel()
					}
					mu.Unlock()
					return
				}
				if st != nil {
					st.completedJobs.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return firstErr
}

// runAll is runJobs for callers that need every readable block (a query
// of kind what; unreadable blocks are skipped as skipUnreadable says): a
// context that ended (the query's timeout, the client gone) is an error,
// never a short answer. Search, which cancels its own jobs at the limit,
// uses runJobs.
func (e *Engine) runAll(ctx context.Context, what string, metas []*block.Meta, fn blockJob, st *stats) error {
	job, allSkipped := e.skipUnreadable(what, fn)
	err := e.runJobs(ctx, metas, job, st)
	if err == nil {
		err = ctx.Err()
	}
	if err == nil {
		err = allSkipped(len(metas))
	}
	return err
}

// searchBlock evaluates the plan over one block: vParquet4 through the
// column reader, other formats row by row as OTLP.
func (e *Engine) searchBlock(ctx context.Context, m *block.Meta, p *plan, col *collector, st *stats) error {
	if m.Format == block.FormatVParquet4 && !e.opts.Generic {
		return e.searchVP4(ctx, m, p, col, st)
	}
	return e.searchGeneric(ctx, m, p, col, st)
}

// genericRow is one row of any format: its stored trace-level values and
// its spans.
type genericRow struct {
	info part
	td   ptrace.Traces
}

// forEachRow reads a block of any format row by row.
func (e *Engine) forEachRow(ctx context.Context, m *block.Meta, fn func(*genericRow) bool) error {
	var err error
	switch m.Format {
	case block.FormatVParquet4:
		b := vparquet4.OpenBlock(ctx, e.bucket, m)
		for tr, ierr := range b.Iterate(ctx) {
			if ierr != nil {
				return ierr
			}
			td, cerr := b.OTLPAll(tr)
			if cerr != nil {
				return cerr
			}
			if !fn(rowOf(tr.ID(), tr.RootServiceName, tr.RootSpanName, tr.StartTimeUnixNano, tr.EndTimeUnixNano, td)) {
				return nil
			}
		}
		return nil
	case block.FormatVParquet3:
		err = iterateReader(ctx, vparquet3.OpenBlock(ctx, e.bucket, m).Reader, fn)
	case block.FormatVParquet5:
		err = iterateReader(ctx, vparquet5.OpenBlock(ctx, e.bucket, m).Reader, fn)
	default:
		err = fmt.Errorf("block %s: %w %q", m, block.ErrUnknownFormat, m.Format)
	}
	return err
}

func iterateReader(ctx context.Context, r *pqread.Reader, fn func(*genericRow) bool) error {
	for tr, err := range r.Iterate(ctx) {
		if err != nil {
			return err
		}
		td, err := r.OTLPAll(tr)
		if err != nil {
			return err
		}
		if !fn(rowOf(tr.ID(), tr.RootServiceName, tr.RootSpanName, tr.StartTimeUnixNano, tr.EndTimeUnixNano, td)) {
			return nil
		}
	}
	return nil
}

func rowOf(id block.TraceID, rootService, rootName string, start, end uint64, td ptrace.Traces) *genericRow {
	return &genericRow{info: part{
		id: id, hasRoot: rootService != "" || rootName != "", rootService: rootService, rootName: rootName,
		start: start, end: end,
	}, td: td}
}

// searchGeneric evaluates every row of a block as OTLP.
func (e *Engine) searchGeneric(ctx context.Context, m *block.Meta, p *plan, col *collector, st *stats) error {
	st.inspectedBytes.Add(int64(m.Size))
	return e.forEachRow(ctx, m, func(r *genericRow) bool {
		st.inspectedRows.Add(1)
		st.inspectedSpans.Add(int64(r.td.SpanCount()))
		if pt := p.evalOTLP(r.info.id, r.td, &r.info); pt != nil {
			return col.add(pt)
		}
		return ctx.Err() == nil
	})
}
