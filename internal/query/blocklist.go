package query

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/tracectl/tracectl/internal/blocks"
	"github.com/tracectl/tracectl/internal/blocks/block"
)

// blockList keeps, per tenant, the live blocks of the bucket as of the last
// poll plus the blocks the local server stored since. A tenant's list is
// read from the bucket on its first query and then every PollInterval;
// blocks written by anyone (another tracectl, migrate, Tempo) appear at the
// next poll and compacted blocks disappear. Safe for concurrent use.
type blockList struct {
	cfg Config
	m   *metrics

	mu      sync.Mutex
	tenants map[string]*tenantBlocks
}

type tenantBlocks struct {
	// ready is closed once the first listing ended (well or not).
	ready chan struct{}
	err   error // of the first listing, when it failed

	metas []*block.Meta // live blocks from the last listing, by start time
	// flushed holds blocks stored by the local server that no listing has
	// confirmed yet, with the time they were announced.
	flushed  map[uuid.UUID]flushedBlock
	lastUsed time.Time
	polling  bool
	// pollDone is closed when the poll running (polling) ends; gen counts
	// successful polls; refreshed is when a query last asked for one.
	pollDone  chan struct{}
	gen       uint64
	refreshed time.Time
	// gone holds blocks queries found gone, for the next poll to judge;
	// stillListed those a listing still held after that (a damaged block
	// rather than a deleted one): they ask for no more listings while
	// they stay listed.
	gone, stillListed map[string]bool
}

type flushedBlock struct {
	meta *block.Meta
	at   time.Time
}

func newBlockList(cfg Config, m *metrics) *blockList {
	return &blockList{cfg: cfg, m: m, tenants: map[string]*tenantBlocks{}}
}

// get returns the live blocks of tenantID, listing the bucket first if the
// tenant was not queried before. The slice is the caller's.
func (l *blockList) get(ctx context.Context, tenantID string) ([]*block.Meta, error) {
	metas, _, err := l.getGen(ctx, tenantID)
	return metas, err
}

// getGen is get, also returning the list's generation for refresh.
func (l *blockList) getGen(ctx context.Context, tenantID string) ([]*block.Meta, uint64, error) {
	l.mu.Lock()
	tb, ok := l.tenants[tenantID]
	if !ok || tb.err != nil {
		tb = l.newTenantLocked(tenantID, tb)
		go l.poll(tenantID, tb)
	}
	tb.lastUsed = l.cfg.Now()
	l.mu.Unlock()

	select {
	case <-tb.ready:
	case <-ctx.Done():
		return nil, 0, ctx.Err()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if tb.err != nil {
		return nil, 0, tb.err
	}
	return tb.snapshotLocked(), tb.gen, nil
}

// newTenantLocked makes (or resets after a failed first listing) the entry
// of a tenant; old carries blocks announced meanwhile.
func (l *blockList) newTenantLocked(tenantID string, old *tenantBlocks) *tenantBlocks {
	tb := &tenantBlocks{ready: make(chan struct{}), flushed: map[uuid.UUID]flushedBlock{}}
	tb.startPollLocked()
	if old != nil {
		tb.flushed = old.flushed
	}
	if len(l.tenants) >= l.cfg.MaxTenants {
		l.evictLocked()
	}
	l.tenants[tenantID] = tb
	return tb
}

// evictLocked forgets the tenant used least recently.
func (l *blockList) evictLocked() {
	var oldest string
	var at time.Time
	for id, tb := range l.tenants {
		if oldest == "" || tb.lastUsed.Before(at) {
			oldest, at = id, tb.lastUsed
		}
	}
	delete(l.tenants, oldest)
	l.m.blocks.DeleteLabelValues(oldest)
}

func (tb *tenantBlocks) snapshotLocked() []*block.Meta {
	out := make([]*block.Meta, 0, len(tb.metas)+len(tb.flushed))
	out = append(out, tb.metas...)
	for _, f := range tb.flushed {
		out = append(out, f.meta)
	}
	if len(tb.flushed) > 0 {
		sortMetas(out)
	}
	return out
}

func sortMetas(ms []*block.Meta) {
	sort.Slice(ms, func(i, j int) bool {
		if !ms[i].StartTime.Equal(ms[j].StartTime) {
			return ms[i].StartTime.Before(ms[j].StartTime)
		}
		return ms[i].BlockID.String() < ms[j].BlockID.String()
	})
}

// added records a block the local server just stored.
func (l *blockList) added(tenantID string, meta *block.Meta) {
	if meta == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	tb, ok := l.tenants[tenantID]
	if !ok {
		// Not queried yet: its first query lists the bucket, which holds
		// the block already.
		return
	}
	for _, m := range tb.metas {
		if m.BlockID == meta.BlockID {
			return
		}
	}
	tb.flushed[meta.BlockID] = flushedBlock{meta: meta, at: l.cfg.Now()}
	l.m.blocks.WithLabelValues(tenantID).Set(float64(len(tb.metas) + len(tb.flushed)))
}

// startPollLocked marks a poll of tb as running; the caller then runs poll.
func (tb *tenantBlocks) startPollLocked() {
	tb.polling = true
	tb.pollDone = make(chan struct{})
}

// minRefreshInterval bounds how often queries make a tenant's blocks be
// listed again (refresh), however many meet a block that is gone.
const minRefreshInterval = time.Second

// refresh lists tenantID's blocks again now, out of turn, because a query
// met a block deleted since the last poll (a compactor elsewhere removed
// it; its traces are in a block this list does not know yet). gen is the
// generation of the list the query used (getGen). Queries of one tenant
// share one listing: a list newer than gen is returned at once, a caller
// arriving while a poll runs waits for it, and a tenant is listed for
// refresh at most once per minRefreshInterval. It returns the list and
// whether it is newer than gen.
func (l *blockList) refresh(ctx context.Context, tenantID string, gen uint64, gone []string) ([]*block.Meta, bool) {
	l.mu.Lock()
	tb, ok := l.tenants[tenantID]
	if !ok || !isClosed(tb.ready) || tb.err != nil {
		l.mu.Unlock()
		return nil, false
	}
	var done chan struct{}
	if tb.gen == gen {
		// Not listed again since the caller's list was taken.
		done = l.startRefreshLocked(tenantID, tb, gone)
	}
	l.mu.Unlock()
	if done != nil {
		select {
		case <-done:
		case <-ctx.Done():
			return nil, false
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if tb.gen == gen {
		return nil, false
	}
	return tb.snapshotLocked(), true
}

// startRefreshLocked starts a poll of tb for a refresh because the blocks
// gone were found gone, unless one runs (whose end it returns, to wait
// for rather than list twice at once), the last refresh began under
// minRefreshInterval ago, or every block of gone was still listed after a
// refresh (nil).
func (l *blockList) startRefreshLocked(tenantID string, tb *tenantBlocks, gone []string) chan struct{} {
	fresh := false
	for _, id := range gone {
		if !tb.stillListed[id] {
			fresh = true
			if tb.gone == nil {
				tb.gone = map[string]bool{}
			}
			tb.gone[id] = true
		}
	}
	switch {
	case !fresh:
		return nil
	case tb.polling:
		return tb.pollDone
	case l.cfg.Now().Sub(tb.refreshed) >= minRefreshInterval:
		tb.refreshed = l.cfg.Now()
		tb.startPollLocked()
		l.m.refreshes.Inc()
		go l.poll(tenantID, tb)
		return tb.pollDone
	}
	return nil
}

// kick has tenantID's blocks listed again soon, as refresh does, without
// waiting: for a search that met a gone block and answered without it.
func (l *blockList) kick(tenantID, blockID string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if tb, ok := l.tenants[tenantID]; ok && isClosed(tb.ready) && tb.err == nil {
		l.startRefreshLocked(tenantID, tb, []string{blockID})
	}
}

// poll lists tenantID's blocks once and installs the result. The caller
// marked it running (startPollLocked).
func (l *blockList) poll(tenantID string, tb *tenantBlocks) {
	ctx, cancel := context.WithTimeout(context.Background(), max(l.cfg.QueryTimeout, time.Minute))
	defer cancel()
	started := l.cfg.Now()
	listing, err := blocks.List(ctx, l.cfg.Bucket, tenantID, blocks.ListOptions{
		IncludeCompacted: true, IndexMaxAge: l.cfg.IndexMaxAge, Concurrency: l.cfg.BlockConcurrency * 2, Now: l.cfg.Now,
	})

	l.mu.Lock()
	defer l.mu.Unlock()
	first := !isClosed(tb.ready)
	defer func() {
		tb.polling = false
		close(tb.pollDone)
		if first {
			close(tb.ready)
		}
	}()
	if err != nil {
		l.m.polls.WithLabelValues("error").Inc()
		if first {
			tb.err = err
		}
		l.cfg.Logger.Warn("listing blocks failed; queries use the previous list", "tenant", tenantID, "err", err)
		return
	}
	l.m.polls.WithLabelValues("ok").Inc()
	tb.err = nil
	tb.gen++
	for _, p := range listing.Problems {
		l.cfg.Logger.Warn("block left out of queries", "tenant", tenantID, "problem", p.Error())
	}
	metas := make([]*block.Meta, 0, len(listing.Blocks))
	seen := make(map[uuid.UUID]bool, len(listing.Blocks))
	for _, bi := range listing.Blocks {
		seen[bi.Meta.BlockID] = true
		if !bi.Compacted {
			metas = append(metas, bi.Meta)
		}
	}
	tb.metas = metas
	// A block found gone and still listed is damaged, not deleted: it
	// asks for no more listings until a listing drops it.
	still := map[string]bool{}
	for _, m := range metas {
		if id := m.BlockID.String(); tb.gone[id] || tb.stillListed[id] {
			still[id] = true
		}
	}
	tb.gone, tb.stillListed = nil, still
	for id, f := range tb.flushed {
		// A listing that knows the block (live or compacted) supersedes
		// the announcement; so does a full listing made after the block
		// was stored that does not hold it (deleted meanwhile). A tenant
		// index may predate the block, so it never drops one unseen.
		if seen[id] || (!listing.FromIndex && f.at.Before(started)) {
			delete(tb.flushed, id)
		}
	}
	l.m.blocks.WithLabelValues(tenantID).Set(float64(len(tb.metas) + len(tb.flushed)))
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// pollLoop polls every known tenant each PollInterval and forgets tenants
// idle for TenantIdle.
func (l *blockList) pollLoop(ctx context.Context) {
	t := time.NewTicker(l.cfg.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		l.pollAll()
	}
}

// pollAll lists every known tenant once (one at a time, so a poll never
// competes with queries for more than one listing's worth of requests).
func (l *blockList) pollAll() {
	now := l.cfg.Now()
	type job struct {
		id string
		tb *tenantBlocks
	}
	var jobs []job
	l.mu.Lock()
	for id, tb := range l.tenants {
		if now.Sub(tb.lastUsed) > l.cfg.TenantIdle {
			delete(l.tenants, id)
			l.m.blocks.DeleteLabelValues(id)
			continue
		}
		if tb.polling || !isClosed(tb.ready) {
			continue
		}
		tb.startPollLocked()
		jobs = append(jobs, job{id, tb})
	}
	l.mu.Unlock()
	sort.Slice(jobs, func(i, j int) bool { return jobs[i].id < jobs[j].id })
	for _, j := range jobs {
		l.poll(j.id, j.tb)
	}
}
