package jaegeres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jaegertracing/jaeger/model"
	jaegertranslator "github.com/open-telemetry/opentelemetry-collector-contrib/pkg/translator/jaeger"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tracectl/tracectl/internal/blocks"
	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/blocks/vparquet4"
	"github.com/tracectl/tracectl/internal/migrate"
	"github.com/tracectl/tracectl/internal/storage"
	"github.com/tracectl/tracectl/internal/tenant"
)

// Defaults of Options.
const (
	DefaultBatchSize     = 1000
	DefaultParallel      = 2
	DefaultMaxBlockBytes = 64 << 20 // bytes of _source buffered per block
	DefaultKeepAlive     = 5 * time.Minute
	DefaultVerifySample  = 20
)

// Options configure Migrate.
type Options struct {
	Client    ClientOptions
	Selection Selection
	Bucket    *storage.Bucket
	Tenant    string
	// Parallel is how many slices each snapshot is read in, and how many
	// requests run at once (default 2).
	Parallel int
	// BatchSize is documents per page (default 1000, at most 10000).
	BatchSize int
	// MaxBlockBytes cuts a block once this many bytes of _source are
	// buffered (default 64 MiB); a trace is never split across blocks.
	MaxBlockBytes int64
	KeepAlive     time.Duration // PIT / scroll keep-alive (default 5m)
	// Checkpoint is a local path, or "bucket:KEY" for an object in Bucket.
	// Empty: no checkpoint (the run cannot be resumed).
	Checkpoint string
	// Resume continues from Checkpoint; without it an unfinished
	// checkpoint is an error (a finished one makes the run a no-op).
	Resume bool
	// DryRun only plans: indices, document counts, estimated output.
	DryRun bool
	// MaxErrors is how many undecodable documents may be skipped before
	// the run stops; negative means no limit.
	MaxErrors int
	// Verify checks the counts, then reads VerifySample traces back from
	// the blocks and compares them with Elasticsearch span by span.
	Verify       bool
	VerifySample int
	// DotReplacement of tags-as-fields keys (default "@").
	DotReplacement string
	// OnProgress, if set, is called from the migration's goroutine about
	// every ProgressEvery (default 1s) and once at the end.
	OnProgress    func(*Progress)
	ProgressEvery time.Duration
	// Client may be given instead of Client options (tests, benchmarks).
	ESClient *Client
	// afterBlock, for tests, runs after each block's checkpoint is saved.
	afterBlock func(n int)
}

// Progress is the state of a running migration.
type Progress struct {
	Indices []IndexProgress
	Spans   int64 // written
	Traces  int64
	Blocks  int
	Bytes   uint64
	Read    int64 // documents read in this run
	Elapsed time.Duration
	Done    bool
}

// IndexProgress is one index's share of Progress.
type IndexProgress struct {
	Name  string
	Total int64 // from _count
	Read  int64 // accounted for so far (including earlier runs)
}

// Summary is what a migration did, over every run of its checkpoint.
type Summary struct {
	Server       string           `json:"server"`
	Snapshot     string           `json:"snapshot"` // pit or scroll
	Indices      []IndexSummary   `json:"indices"`
	Documents    int64            `json:"documents"` // read
	SpansWritten int64            `json:"spansWritten"`
	Duplicates   int64            `json:"duplicates"`
	Traces       int64            `json:"traces"`
	Blocks       []string         `json:"blocks"`
	Bytes        uint64           `json:"bytes"`
	Skipped      int64            `json:"skipped"`
	SkippedDocs  []SkippedDoc     `json:"skippedDocs"`
	Elapsed      migrate.Duration `json:"elapsed"`
	Resumed      bool             `json:"resumed"`
	AlreadyDone  bool             `json:"alreadyDone"`
	Checkpoint   string           `json:"checkpoint,omitempty"`
	Plan         *Plan            `json:"plan,omitempty"`
	Verify       *VerifyResult    `json:"verify,omitempty"`
	perIndex     map[string]*IndexStats
}

// IndexSummary accounts for one index.
type IndexSummary struct {
	Index
	IndexStats
}

// Plan is the outcome of a dry run.
type Plan struct {
	Documents      int64   `json:"documents"`
	SampledDocs    int     `json:"sampledDocs"`
	AvgSourceBytes float64 `json:"avgSourceBytes"`
	// EstimatedBytes extrapolates the block bytes per span of a sample
	// written to an in-memory block.
	EstimatedBytes  uint64 `json:"estimatedBytes"`
	EstimatedBlocks int    `json:"estimatedBlocks"`
}

// ErrTooManyErrors is migrate.ErrTooManyErrors: --max-errors was passed.
var ErrTooManyErrors = migrate.ErrTooManyErrors

// ErrUnfinishedCheckpoint: a checkpoint exists and --resume was not given.
var ErrUnfinishedCheckpoint = errors.New("an unfinished migration's checkpoint exists")

// Migrate runs (or resumes) a migration. On return every document read is
// in a stored block, counted as a duplicate, or reported as skipped, and
// the checkpoint says so; an error says what stopped it. When MaxErrors is
// exceeded, what was read so far is still written, then the error wraps
// ErrTooManyErrors.
func Migrate(ctx context.Context, o Options) (*Summary, error) {
	start := time.Now()
	if err := tenant.Validate(o.Tenant); err != nil {
		return nil, err
	}
	o.Parallel = cmp.Or(o.Parallel, DefaultParallel)
	o.BatchSize = cmp.Or(o.BatchSize, DefaultBatchSize)
	if o.BatchSize < 1 || o.BatchSize > 10000 {
		return nil, fmt.Errorf("batch size %d: want 1 to 10000 (the server's result window)", o.BatchSize)
	}
	o.MaxBlockBytes = cmp.Or(o.MaxBlockBytes, DefaultMaxBlockBytes)
	o.KeepAlive = cmp.Or(o.KeepAlive, DefaultKeepAlive)
	o.VerifySample = cmp.Or(o.VerifySample, DefaultVerifySample)
	o.ProgressEvery = cmp.Or(o.ProgressEvery, time.Second)
	o.Selection.defaults()
	if !o.Selection.Since.IsZero() && !o.Selection.Until.IsZero() && !o.Selection.Since.Before(o.Selection.Until) {
		return nil, fmt.Errorf("--since %s is not before --until %s", o.Selection.Since.Format(time.RFC3339), o.Selection.Until.Format(time.RFC3339))
	}
	c := o.ESClient
	if c == nil {
		var err error
		if c, err = NewClient(ctx, o.Client); err != nil {
			return nil, err
		}
	}
	m := &migration{o: o, c: c, dec: &Decoder{DotReplacement: o.DotReplacement}}
	s, err := m.run(ctx)
	if s != nil {
		s.Elapsed = migrate.Duration(time.Since(start))
	}
	return s, err
}

type migration struct {
	o       Options
	c       *Client
	dec     *Decoder
	indices []Index
	store   *checkpointStore
	cp      *checkpoint
	read    int64 // documents read this run
	start   time.Time
	lastRep time.Time
	mu      sync.Mutex // guards cp and pendingSkips between the reader and the block writer
	// pendingSkips are skips in blocks handed to the writer, not yet saved.
	pendingSkips int64
}

func (m *migration) params() params {
	sel := m.o.Selection
	p := params{
		URLs: m.c.String(), Bucket: m.o.Bucket.String(), Tenant: m.o.Tenant,
		Prefixes: sel.Prefixes, DateSeparator: sel.DateSeparator, UseAliases: sel.UseAliases,
		IncludeArchive: sel.IncludeArchive, Services: sel.Services,
	}
	if !sel.Since.IsZero() {
		p.Since = sel.Since.UTC()
	}
	if !sel.Until.IsZero() {
		p.Until = sel.Until.UTC()
	}
	return p
}

func (m *migration) run(ctx context.Context) (*Summary, error) {
	m.start = time.Now()
	var err error
	if m.indices, err = m.c.Discover(ctx, m.o.Selection); err != nil {
		return nil, err
	}
	if len(m.indices) == 0 {
		return nil, fmt.Errorf("no Jaeger span indices match on %s (prefixes %q, date separator %q); check --index-prefix and --index-date-separator", m.c, m.o.Selection.Prefixes, m.o.Selection.DateSeparator)
	}
	if m.o.DryRun {
		return m.plan(ctx)
	}
	if m.store, err = newCheckpointStore(m.o.Checkpoint, m.o.Bucket); err != nil {
		return nil, err
	}
	p := m.params()
	resumed := false
	if m.store != nil {
		if m.cp, err = m.store.load(ctx); err != nil {
			return nil, err
		}
	}
	if m.cp != nil {
		if m.cp.Fingerprint != p.fingerprint() {
			return nil, fmt.Errorf("checkpoint %s belongs to another migration (%s → %s tenant %s, prefixes %q); use another --checkpoint, or the same flags", m.store, m.cp.Params.URLs, m.cp.Params.Bucket, m.cp.Params.Tenant, m.cp.Params.Prefixes)
		}
		if !m.cp.Done && !m.o.Resume {
			return nil, fmt.Errorf("%w at %s; pass --resume to continue it, or remove the file to start over", ErrUnfinishedCheckpoint, m.store)
		}
		resumed = true
		if err := m.adoptPending(ctx); err != nil {
			return nil, err
		}
	} else {
		m.cp = &checkpoint{Version: CheckpointVersion, Fingerprint: p.fingerprint(), Params: p, Started: time.Now().UTC()}
	}
	var runErr error
	alreadyDone := m.cp.Done
	if !m.cp.Done {
		runErr = m.export(ctx)
	}
	s := m.summary()
	s.Resumed, s.AlreadyDone = resumed, alreadyDone
	m.report(true)
	if runErr == nil && m.o.Verify {
		s.Verify, runErr = m.verify(ctx)
	}
	return s, runErr
}

// adoptPending settles a block that a killed run was writing: stored
// (meta.json present) means its documents are done; otherwise its objects
// are removed and its documents are read again.
func (m *migration) adoptPending(ctx context.Context) error {
	pd := m.cp.Pending
	if pd == nil {
		return nil
	}
	id, err := uuid.Parse(pd.BlockID)
	if err != nil {
		return fmt.Errorf("checkpoint %s: pending block %q: %w", m.store, pd.BlockID, err)
	}
	ok, err := m.o.Bucket.Exists(ctx, block.MetaKey(m.o.Tenant, id))
	if err != nil {
		return fmt.Errorf("checking pending block %s: %w", id, err)
	}
	if ok {
		if bi, _, err := blocks.ReadBlockMeta(ctx, m.o.Bucket, m.o.Tenant, id); err == nil && bi != nil && bi.Meta != nil {
			pd.Stats.Bytes = bi.Meta.Size
		}
		m.cp.Stats.add(&pd.Stats)
		m.cp.After = pd.After
		m.cp.Claimed = pd.Claimed
	} else {
		for obj, err := range m.o.Bucket.List(ctx, m.o.Tenant+"/"+id.String()+"/", "") {
			if err != nil {
				break
			}
			_ = m.o.Bucket.Delete(ctx, obj.Key)
		}
	}
	m.cp.Pending = nil
	return m.store.save(ctx, m.cp)
}

func (m *migration) summary() *Summary {
	s := &Summary{Server: m.c.info.String(), Snapshot: "pit", Blocks: []string{}, SkippedDocs: []SkippedDoc{}}
	if m.c.info.PIT() == PITNone {
		s.Snapshot = "scroll"
	}
	if m.store != nil {
		s.Checkpoint = m.store.String()
	}
	st := &m.cp.Stats
	for _, ix := range m.indices {
		is := IndexSummary{Index: ix}
		if v := st.Indices[ix.Name]; v != nil {
			is.IndexStats = *v
		}
		s.Indices = append(s.Indices, is)
	}
	t := st.total()
	s.Documents, s.SpansWritten, s.Duplicates, s.Skipped = t.Read, t.Written, t.Duplicates, st.NSkipped
	s.Traces, s.Bytes = st.Traces, st.Bytes
	s.Blocks = append(s.Blocks, st.Blocks...)
	s.SkippedDocs = append(s.SkippedDocs, st.Skipped...)
	return s
}

func (m *migration) report(final bool) {
	if m.o.OnProgress == nil {
		return
	}
	now := time.Now()
	if !final && now.Sub(m.lastRep) < m.o.ProgressEvery {
		return
	}
	m.lastRep = now
	m.o.OnProgress(m.progress(nil, final))
}

func (m *migration) progress(cur *stats, final bool) *Progress {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := &Progress{Elapsed: time.Since(m.start), Done: final, Read: m.read}
	st := &m.cp.Stats
	for _, ix := range m.indices {
		ip := IndexProgress{Name: ix.Name, Total: ix.Docs}
		if v := st.Indices[ix.Name]; v != nil {
			ip.Read += v.Read - v.Related
		}
		if cur != nil {
			if v := cur.Indices[ix.Name]; v != nil {
				ip.Read += v.Read - v.Related
			}
		}
		p.Indices = append(p.Indices, ip)
	}
	p.Spans = st.total().Written
	p.Traces, p.Blocks, p.Bytes = st.Traces, len(st.Blocks), st.Bytes
	return p
}

// traceBuf collects one trace's unique spans.
type traceBuf struct {
	id    model.TraceID
	spans []*model.Span
	// seen holds the keys of spans once the trace is large (seenAfter
	// spans); a smaller one is searched for duplicates span by span,
	// which spares a map per trace.
	seen  map[spanKey]bool
	forms []string // stored traceID forms seen
}

// seenAfter is how many spans a trace holds before its keys go in a map.
const seenAfter = 32

type spanKey struct {
	span      model.SpanID
	start     int64
	dur       time.Duration
	service   string
	operation string
}

func keyOf(sp *model.Span) spanKey {
	k := spanKey{span: sp.SpanID, start: sp.StartTime.UnixNano(), dur: sp.Duration, operation: sp.OperationName}
	if sp.Process != nil {
		k.service = sp.Process.ServiceName
	}
	return k
}

func (t *traceBuf) add(h *hit, st *stats) {
	is := st.index(h.index)
	if t.dup(h.span) {
		is.Duplicates++
		return
	}
	t.spans = append(t.spans, h.span)
	is.Written++
}

// dup says whether a span with sp's key was added before; if not, sp's
// key counts as seen from now on (with the map; else through t.spans,
// which the caller appends sp to).
func (t *traceBuf) dup(sp *model.Span) bool {
	k := keyOf(sp)
	if t.seen == nil && len(t.spans) < seenAfter {
		for _, o := range t.spans {
			if o.SpanID == sp.SpanID && keyOf(o) == k {
				return true
			}
		}
		return false
	}
	if t.seen == nil {
		t.seen = make(map[spanKey]bool, 2*len(t.spans))
		for _, o := range t.spans {
			t.seen[keyOf(o)] = true
		}
	}
	if t.seen[k] {
		return true
	}
	t.seen[k] = true
	return false
}

// blockBuf is the traces of the next block and the accounting they bring.
type blockBuf struct {
	traces  map[model.TraceID]*traceBuf
	bytes   int64
	after   string
	stats   stats
	claimed []string
}

func newBlockBuf() *blockBuf {
	return &blockBuf{traces: map[model.TraceID]*traceBuf{}}
}

type blockJob struct {
	buf    *blockBuf
	sorted []*traceBuf
}

// export reads from the checkpoint's boundary to the end, cutting blocks.
func (m *migration) export(ctx context.Context) error {
	var names []string
	for _, ix := range m.indices {
		names = append(names, ix.Name)
	}
	e := newExporter(m.c, exportOptions{
		indices: names, sel: &m.o.Selection, slices: m.o.Parallel, parallel: m.o.Parallel,
		batch: m.o.BatchSize, keepAlive: m.o.KeepAlive, dec: m.dec,
	})
	if err := e.start(ctx, m.cp.After); err != nil {
		return err
	}
	defer e.stop()

	claimed := map[string]bool{}
	for _, f := range m.cp.Claimed {
		claimed[f] = true
	}
	lastDone := m.cp.After // last stored traceID wholly read in this run
	buf := newBlockBuf()

	// One block is written while the next is read.
	jobs := make(chan *blockJob)
	werr := make(chan error, 1)
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	go func() {
		var err error
		for j := range jobs {
			if err == nil {
				err = m.writeBlock(wctx, j)
				if err != nil {
					wcancel()
				}
			}
		}
		werr <- err
	}()
	writerFailed := func() error {
		select {
		case err := <-werr:
			werr <- err
			return err
		default:
			return nil
		}
	}
	finish := func(err error) error {
		close(jobs)
		werrv := <-werr
		return errors.Join(err, werrv)
	}
	cut := func() error {
		if err := m.resolveForms(ctx, buf, names, claimed); err != nil {
			return err
		}
		if err := m.completeTraces(ctx, buf, names); err != nil {
			return err
		}
		buf.after = lastDone
		for f := range claimed {
			if f > lastDone {
				buf.claimed = append(buf.claimed, f)
			}
		}
		slices.Sort(buf.claimed)
		j := &blockJob{buf: buf}
		for _, t := range buf.traces {
			j.sorted = append(j.sorted, t)
		}
		slices.SortFunc(j.sorted, func(a, b *traceBuf) int { return traceIDCompare(a.id, b.id) })
		m.mu.Lock()
		m.pendingSkips += buf.stats.NSkipped
		m.mu.Unlock()
		select {
		case jobs <- j:
		case <-wctx.Done():
			if err := writerFailed(); err != nil {
				return err
			}
			return wctx.Err()
		}
		buf = newBlockBuf()
		return nil
	}
	restarts, restartedAt := 0, ""
	var tooMany error
	for {
		group, err := e.nextGroup()
		if errors.Is(err, io.EOF) {
			break
		}
		if errors.Is(err, ErrContextMissing) && (restarts < 20 || lastDone != restartedAt) {
			// The snapshot expired: take a new one and go on after the last
			// trace read whole; the partial one is read again. Give up
			// after 20 expiries in a row without progress.
			if lastDone != restartedAt {
				restarts = 0
			}
			restarts++
			restartedAt = lastDone
			e.stop()
			if err := e.start(ctx, lastDone); err != nil {
				return finish(err)
			}
			continue
		}
		if err != nil {
			if werr := writerFailed(); werr != nil {
				return finish(nil)
			}
			return finish(fmt.Errorf("reading span documents from %s: %w", m.c, err))
		}
		m.read += int64(len(group))
		key := group[0].key
		if claimed[key] {
			// Already written with another form of this trace ID.
			delete(claimed, key)
			lastDone = key
			continue
		}
		for i := range group {
			h := &group[i]
			buf.stats.index(h.index).Read++
			buf.bytes += int64(h.size)
			if h.err != nil {
				buf.stats.skip(SkippedDoc{Index: h.index, ID: h.id, Reason: h.err.Error()})
				m.mu.Lock()
				nSkipped := m.cp.Stats.NSkipped + m.pendingSkips + buf.stats.NSkipped
				m.mu.Unlock()
				if m.o.MaxErrors >= 0 && nSkipped > int64(m.o.MaxErrors) && tooMany == nil {
					tooMany = fmt.Errorf("%w: %d documents skipped, --max-errors is %d (last: %s)", ErrTooManyErrors, nSkipped, m.o.MaxErrors, SkippedDoc{Index: h.index, ID: h.id, Reason: h.err.Error()})
				}
				continue
			}
			t := buf.traces[h.span.TraceID]
			if t == nil {
				t = &traceBuf{id: h.span.TraceID}
				buf.traces[h.span.TraceID] = t
			}
			if !slices.Contains(t.forms, key) {
				t.forms = append(t.forms, key)
			}
			t.add(h, &buf.stats)
		}
		if key != "\U0010FFFF" {
			lastDone = key
		}
		if tooMany != nil {
			break
		}
		if buf.bytes >= m.o.MaxBlockBytes {
			if err := cut(); err != nil {
				return finish(err)
			}
		}
		m.reportCur(&buf.stats)
	}
	if err := cut(); err != nil {
		return finish(err)
	}
	if err := finish(nil); err != nil {
		return err
	}
	if tooMany != nil {
		return tooMany
	}
	m.cp.Done = true
	m.cp.Claimed = nil
	if m.store != nil {
		return m.store.save(ctx, m.cp)
	}
	return nil
}

func (m *migration) reportCur(cur *stats) {
	if m.o.OnProgress == nil || time.Since(m.lastRep) < m.o.ProgressEvery {
		return
	}
	m.lastRep = time.Now()
	m.o.OnProgress(m.progress(cur, false))
}

func traceIDCompare(a, b model.TraceID) int {
	if c := cmp.Compare(a.High, b.High); c != 0 {
		return c
	}
	return cmp.Compare(a.Low, b.Low)
}

// writeBlock stores one block, then the checkpoint that covers it: first
// the block as pending, then the block, then the checkpoint with it done.
func (m *migration) writeBlock(ctx context.Context, j *blockJob) error {
	b := j.buf
	id := uuid.New()
	if m.store != nil && len(j.sorted) > 0 {
		m.mu.Lock()
		ps := b.stats
		ps.Blocks = []string{id.String()}
		ps.Traces = int64(len(j.sorted))
		m.cp.Pending = &pending{BlockID: id.String(), After: b.after, Claimed: b.claimed, Stats: ps}
		err := m.store.save(ctx, m.cp)
		if err != nil {
			m.cp.Pending = nil
		}
		m.mu.Unlock()
		if err != nil {
			return err
		}
	}
	if len(j.sorted) > 0 {
		meta, err := m.writeTraces(ctx, id, j.sorted)
		if err != nil {
			return err
		}
		b.stats.Blocks = append(b.stats.Blocks, meta.BlockID.String())
		b.stats.Bytes += meta.Size
		b.stats.Traces += int64(len(j.sorted))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cp.Pending = nil
	m.cp.Stats.add(&b.stats)
	m.pendingSkips -= b.stats.NSkipped
	m.cp.After = b.after
	m.cp.Claimed = b.claimed
	for _, t := range j.sorted {
		m.cp.offerSample(t.id)
	}
	if m.store != nil {
		if err := m.store.save(ctx, m.cp); err != nil {
			return err
		}
	}
	if m.o.afterBlock != nil {
		m.o.afterBlock(len(m.cp.Stats.Blocks))
	}
	return nil
}

// Translation runs ahead of the block writer on translateWorkers
// goroutines, translateChunk traces at a time.
const (
	translateWorkers = 2
	translateChunk   = 256
)

func (m *migration) writeTraces(ctx context.Context, id uuid.UUID, traces []*traceBuf) (*block.Meta, error) {
	w, err := vparquet4.NewBlockWriter(ctx, m.o.Bucket, vparquet4.WriterConfig{
		TenantID: m.o.Tenant, BlockID: id, ExpectedTraces: len(traces),
	})
	if err != nil {
		return nil, fmt.Errorf("writing a block to %s: %w", m.o.Bucket, err)
	}
	type chunk struct {
		traces []*traceBuf
		tds    []ptrace.Traces
		err    error
	}
	chunks := make(chan *chunk, 2)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		defer close(chunks)
		for i := 0; i < len(traces); i += translateChunk {
			c := &chunk{traces: traces[i:min(len(traces), i+translateChunk)]}
			c.tds = make([]ptrace.Traces, len(c.traces))
			errs := make([]error, translateWorkers)
			var wg sync.WaitGroup
			for k := range translateWorkers {
				wg.Go(func() {
					for j := k; j < len(c.traces); j += translateWorkers {
						td, err := translate(c.traces[j].spans)
						if err != nil {
							errs[k] = fmt.Errorf("translating trace %s: %w", c.traces[j].id, err)
							return
						}
						c.tds[j] = td
					}
				})
			}
			wg.Wait()
			c.err = errors.Join(errs...)
			select {
			case chunks <- c:
			case <-stop:
				return
			}
			if c.err != nil {
				return
			}
		}
	}()
	for c := range chunks {
		if c.err != nil {
			w.Abort()
			return nil, c.err
		}
		for j, t := range c.traces {
			if err := w.Add(block.TraceID(toOTLPID(t.id)), c.tds[j]); err != nil {
				w.Abort()
				return nil, fmt.Errorf("writing a block to %s: %w", m.o.Bucket, err)
			}
			c.tds[j] = ptrace.Traces{}
			t.spans = nil
		}
	}
	meta, err := w.Close()
	if err != nil {
		return nil, fmt.Errorf("writing a block to %s: %w", m.o.Bucket, err)
	}
	return meta, nil
}

// translate converts one trace with the collector-contrib translator,
// handing it one batch per process: spans decoded by the export share
// their process, so the translator hashes each process once, not once per
// span as it does for spans that carry their own.
func translate(spans []*model.Span) (ptrace.Traces, error) {
	var batches []*model.Batch
	procs := make([]*model.Process, len(spans))
	for i, sp := range spans {
		procs[i] = sp.Process
		var b *model.Batch
		for _, x := range batches {
			if x.Process == sp.Process || (x.Process != nil && sp.Process != nil && x.Process.Equal(sp.Process)) {
				b = x
				break
			}
		}
		if b == nil {
			b = &model.Batch{Process: sp.Process}
			batches = append(batches, b)
		}
		b.Spans = append(b.Spans, sp)
		sp.Process = nil
	}
	defer func() {
		for i, sp := range spans {
			sp.Process = procs[i]
		}
	}()
	return jaegertranslator.ProtoToTraces(batches)
}

func toOTLPID(id model.TraceID) [16]byte {
	var b [16]byte
	for i := range 8 {
		b[i] = byte(id.High >> (56 - 8*i))
		b[8+i] = byte(id.Low >> (56 - 8*i))
	}
	return b
}

// offerSample keeps a uniform sample of written trace IDs (reservoir).
func (cp *checkpoint) offerSample(id model.TraceID) {
	const size = 1000
	cp.Seen++
	s := id.String()
	if len(cp.Sample) < size {
		cp.Sample = append(cp.Sample, s)
		return
	}
	if k := rand.Int64N(cp.Seen); k < size {
		cp.Sample[k] = s
	}
}

// resolveForms finds documents of the buffer's traces stored under
// another traceID form (a rolling upgrade mixes "4764d19e2bc3",
// "00004764d19e2bc3" and the 32-digit form) so each trace is written
// whole, once. A form later in the export is claimed: its documents are
// read here and skipped when the export reaches them.
func (m *migration) resolveForms(ctx context.Context, buf *blockBuf, indices []string, claimed map[string]bool) error {
	want := map[string]*traceBuf{}
	var terms []string
	for _, t := range buf.traces {
		for _, f := range TraceIDForms(t.id) {
			if !slices.Contains(t.forms, f) && !claimed[f] {
				want[f] = t
				terms = append(terms, f)
			}
		}
	}
	slices.Sort(terms)
	for len(terms) > 0 {
		chunk := terms[:min(len(terms), 1024)]
		terms = terms[len(chunk):]
		q := m.o.Selection.query([]map[string]any{{"terms": map[string]any{"traceID": chunk}}})
		var hits []hit
		for _, group := range newExporter(m.c, exportOptions{indices: indices}).groups {
			h, err := m.c.searchAll(ctx, group, q, m.dec)
			if err != nil {
				return fmt.Errorf("looking up other trace ID forms: %w", err)
			}
			hits = append(hits, h...)
		}
		for i := range hits {
			h := &hits[i]
			t := want[h.key]
			if t == nil || h.key < t.forms[0] {
				// An earlier form: that trace was handled when the export
				// passed it (and claimed this form then).
				continue
			}
			claimed[h.key] = true
			buf.stats.index(h.index).Read++
			buf.bytes += int64(h.size)
			m.read++
			if h.err != nil {
				buf.stats.skip(SkippedDoc{Index: h.index, ID: h.id, Reason: h.err.Error()})
				continue
			}
			t.add(h, &buf.stats)
		}
	}
	return nil
}

// plan is the dry run: counts, and an estimate from a sample written to an
// in-memory block.
func (m *migration) plan(ctx context.Context) (*Summary, error) {
	s := &Summary{Server: m.c.info.String(), Snapshot: "pit", Blocks: []string{}, SkippedDocs: []SkippedDoc{}}
	if m.c.info.PIT() == PITNone {
		s.Snapshot = "scroll"
	}
	p := &Plan{}
	var names []string
	for _, ix := range m.indices {
		s.Indices = append(s.Indices, IndexSummary{Index: ix})
		p.Documents += ix.Docs
		names = append(names, ix.Name)
	}
	// A sample: the first page of the first index group.
	e := newExporter(m.c, exportOptions{indices: names, sel: &m.o.Selection, dec: m.dec})
	q := m.o.Selection.query(nil)
	src := map[string]any{"size": 500, "sort": []any{map[string]any{"traceID": "asc"}}}
	if q != nil {
		src["query"] = q
	}
	var res struct {
		Hits struct {
			Hits []struct {
				Source rawJSON `json:"_source"`
			} `json:"hits"`
		} `json:"hits"`
	}
	if err := m.c.do(ctx, "POST", "/"+strings.Join(e.groups[0], ",")+"/_search", nil, src, &res); err != nil {
		return nil, fmt.Errorf("sampling documents: %w", err)
	}
	buf := newBlockBuf()
	var srcBytes int64
	for _, h := range res.Hits.Hits {
		sp, _, err := m.dec.Decode(h.Source)
		if err != nil {
			continue
		}
		srcBytes += int64(len(h.Source))
		p.SampledDocs++
		t := buf.traces[sp.TraceID]
		if t == nil {
			t = &traceBuf{id: sp.TraceID, seen: map[spanKey]bool{}}
			buf.traces[sp.TraceID] = t
		}
		t.add(&hit{span: sp}, &buf.stats)
	}
	if p.SampledDocs > 0 {
		p.AvgSourceBytes = float64(srcBytes) / float64(p.SampledDocs)
		mem, err := storage.Open(ctx, "mem://")
		if err != nil {
			return nil, err
		}
		defer mem.Close()
		var sorted []*traceBuf
		for _, t := range buf.traces {
			sorted = append(sorted, t)
		}
		slices.SortFunc(sorted, func(a, b *traceBuf) int { return traceIDCompare(a.id, b.id) })
		mm := &migration{o: Options{Bucket: mem, Tenant: m.o.Tenant}}
		meta, err := mm.writeTraces(ctx, uuid.New(), sorted)
		if err == nil && meta != nil {
			p.EstimatedBytes = uint64(float64(meta.Size) / float64(p.SampledDocs) * float64(p.Documents))
		}
		p.EstimatedBlocks = int(float64(p.Documents)*p.AvgSourceBytes/float64(m.o.MaxBlockBytes)) + 1
	}
	s.Plan = p
	s.Documents = 0
	return s, nil
}

// rawJSON keeps a field's bytes as they are.
type rawJSON []byte

func (r *rawJSON) UnmarshalJSON(b []byte) error {
	*r = append((*r)[:0], b...)
	return nil
}
