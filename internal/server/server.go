// Package server is the heart of `tracectl serve`: it accepts traces from
// the receivers, makes them durable in the write-ahead log before they are
// acknowledged, keeps them in an in-memory head, and cuts the head into
// vParquet4 blocks in the bucket. WAL segments are removed only after the
// blocks holding their data are stored (meta.json written), so a crash at
// any moment loses no acknowledged span: on start the WAL is replayed,
// and its cuts are redone so that no span is stored twice (replay.go).
//
// It does not parse flags, listen for queries or translate protocols; the
// command, the query API and package ingest do.
package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"golang.org/x/time/rate"

	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/blocks/vparquet4"
	"github.com/tracectl/tracectl/internal/headtags"
	"github.com/tracectl/tracectl/internal/ingest"
	"github.com/tracectl/tracectl/internal/storage"
	"github.com/tracectl/tracectl/internal/tenant"
	"github.com/tracectl/tracectl/internal/wal"
)

// Defaults, chosen so one process stays within about 1 GB of memory.
const (
	DefaultMaxBlockDuration   = 5 * time.Minute
	DefaultMaxBlockBytes      = 64 << 20
	DefaultIngestionRateBytes = 15_000_000 // Tempo's ingestion_rate_limit_bytes
	DefaultIngestionBurst     = 20_000_000 // Tempo's ingestion_burst_size_bytes
	DefaultMaxTraceBytes      = 5_000_000  // Tempo's max_bytes_per_trace
	DefaultWALMaxBytes        = 512 << 20
	// DefaultMaxLiveBytes bounds what is held in memory (the head and
	// the blocks waiting to be stored, as protobuf): six blocks' worth,
	// room for a burst or a slow store while the process stays under 1 GB.
	DefaultMaxLiveBytes       = 6 * DefaultMaxBlockBytes
	DefaultFlushCheckInterval = time.Second
	DefaultTraceIdlePeriod    = 10 * time.Second // Tempo's trace_idle_period
	// requeueChunkBytes bounds one WAL record when still-active traces are
	// written again at a cut.
	requeueChunkBytes = 4 << 20
)

// Config configures a Server. Zero values take the defaults above.
type Config struct {
	Bucket *storage.Bucket
	WALDir string
	WAL    wal.Options

	// A block is cut when the head holds MaxBlockBytes (protobuf size) or
	// its oldest span arrived MaxBlockDuration ago. A time-based cut takes
	// only traces idle for TraceIdlePeriod (or older than MaxBlockDuration),
	// so that a trace still receiving spans is not split across blocks; a
	// size-based cut, Flush and shutdown take everything. Negative
	// TraceIdlePeriod takes every trace at every cut.
	MaxBlockDuration time.Duration
	MaxBlockBytes    int64
	TraceIdlePeriod  time.Duration
	// IngestionRateBytes and IngestionBurstBytes limit each tenant
	// (request protobuf bytes per second); negative disables the limit.
	IngestionRateBytes  float64
	IngestionBurstBytes int
	// MaxTraceBytes bounds one trace in the head; spans past it are
	// dropped and counted. Negative disables the limit.
	MaxTraceBytes int64
	// MaxLiveBytes bounds the protobuf bytes held in memory, in the head
	// and in blocks not yet stored; past it requests are refused as
	// limited (429 / ResourceExhausted) until flushing catches up, so a
	// slow or failing store cannot exhaust memory. Negative disables it.
	MaxLiveBytes int64
	// DedicatedColumns for written blocks; nil means Tempo's default list.
	DedicatedColumns []block.DedicatedColumn

	FlushCheckInterval time.Duration
	// FlushRetryMin/Max bound the backoff between failed flush attempts.
	FlushRetryMin, FlushRetryMax time.Duration

	// OnBlockFlushed, if set, is called after each block is stored and
	// before its traces leave the head, so a query side that adds the
	// block to its list at once never misses a trace in between. It runs
	// on the flush goroutine: keep it quick.
	OnBlockFlushed func(tenant string, meta *block.Meta)

	Logger   *slog.Logger
	Registry prometheus.Registerer
	Now      func() time.Time
}

func (c Config) withDefaults() Config {
	if c.MaxBlockDuration <= 0 {
		c.MaxBlockDuration = DefaultMaxBlockDuration
	}
	if c.MaxBlockBytes <= 0 {
		c.MaxBlockBytes = DefaultMaxBlockBytes
	}
	if c.TraceIdlePeriod == 0 {
		c.TraceIdlePeriod = DefaultTraceIdlePeriod
	}
	if c.IngestionRateBytes == 0 {
		c.IngestionRateBytes = DefaultIngestionRateBytes
	}
	if c.IngestionBurstBytes == 0 {
		c.IngestionBurstBytes = DefaultIngestionBurst
	}
	if c.MaxTraceBytes == 0 {
		c.MaxTraceBytes = DefaultMaxTraceBytes
	}
	if c.MaxLiveBytes == 0 {
		c.MaxLiveBytes = DefaultMaxLiveBytes
	}
	if c.WAL.MaxBytes == 0 {
		c.WAL.MaxBytes = DefaultWALMaxBytes
	}
	if c.FlushCheckInterval <= 0 {
		c.FlushCheckInterval = DefaultFlushCheckInterval
	}
	if c.FlushRetryMin <= 0 {
		c.FlushRetryMin = time.Second
	}
	if c.FlushRetryMax <= 0 {
		c.FlushRetryMax = time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.WAL.Logger == nil {
		c.WAL.Logger = c.Logger
	}
	return c
}

// Server ingests traces into a WAL-backed head and flushes blocks.
type Server struct {
	cfg   Config
	wal   *wal.WAL
	walID uuid.UUID // names the blocks of cuts (blockIDFor)
	head  *head
	m     *metrics

	// cutMu orders appends against cuts: Consume holds it for reading from
	// WAL append to head insert, a cut holds it for writing while it seals
	// the WAL segment and takes the head. So every record in a sealed
	// segment is in the snapshot taken with it.
	cutMu sync.RWMutex

	// flushing holds snapshots taken but not yet stored, oldest first; they
	// are flushed in order so WAL segments are removed in order.
	flushMu  sync.Mutex
	flushing []*snapshot
	// queued is the protobuf bytes of the snapshots in flushing.
	queued atomic.Int64
	// kick wakes the flusher after a cut.
	kick chan struct{}
	// flushRun makes flushPending run once at a time (the loop, Flush).
	flushRun sync.Mutex

	limitersMu sync.Mutex
	limiters   map[string]*rate.Limiter

	// tags indexes the tag names and values of the head and of flushing
	// snapshots (headtags.go); tagsMu makes its catch-ups run one at a
	// time.
	tags   *headtags.Index
	tagsMu sync.Mutex

	startOnce sync.Once
	started   atomic.Bool
	stop      chan struct{}
	done      chan struct{}
	closeErr  error
	closed    sync.Once

	// crashAt, set by tests only, stops a flush at a point where a
	// crash is interesting: after tenant's block is stored ("stored") or
	// before a flushed snapshot's WAL segments are removed
	// ("before-remove"), when it returns true.
	crashAt func(point, tenant string) bool
}

// errCrashed is what a flush stopped by crashAt returns.
var errCrashed = errors.New("stopped by a test's crash point")

var (
	_ ingest.Consumer    = (*Server)(nil)
	_ ingest.RawConsumer = (*Server)(nil)
)

// New opens the WAL and replays it into the head, redoing the cuts the
// WAL records (replay.go): their snapshots are queued and stored first,
// unless their blocks are stored already. The rest of the replayed data
// is flushed by the first cut.
func New(cfg Config) (*Server, error) {
	cfg = cfg.withDefaults()
	if cfg.Bucket == nil {
		return nil, errors.New("server: no bucket configured")
	}
	w, err := wal.Open(cfg.WALDir, cfg.WAL)
	if err != nil {
		return nil, fmt.Errorf("opening the write-ahead log in %s: %w", cfg.WALDir, err)
	}
	s := &Server{
		cfg:      cfg,
		wal:      w,
		walID:    w.ID(),
		head:     newHead(cfg.MaxTraceBytes),
		limiters: map[string]*rate.Limiter{},
		tags:     headtags.New(0, 0),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
		kick:     make(chan struct{}, 1),
	}
	s.m = newMetrics(s, cfg.Registry)
	start := time.Now()
	r := &replayer{s: s, walID: s.walID, now: cfg.Now()}
	st, err := w.Replay(func(tenantID string, payload []byte, pos wal.Position) error {
		r.record(tenantID, payload, pos)
		return nil
	})
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("replaying the write-ahead log in %s: %w", cfg.WALDir, err)
	}
	r.dropPending(wal.Position{})
	if r.records > 0 || r.cuts > 0 || len(st.Damage) > 0 {
		cfg.Logger.Info("replayed the write-ahead log", "records", r.records, "spans", r.spans,
			"cuts_redone", r.cuts, "unfinished_copies_ignored", r.dropped,
			"segments", st.Segments, "truncated_bytes", st.TruncatedBytes, "skipped_bytes", st.SkippedBytes,
			"duration", time.Since(start).Round(time.Millisecond))
	}
	return s, nil
}

// Start runs the flush loop in the background until Shutdown.
func (s *Server) Start() {
	s.startOnce.Do(func() {
		s.started.Store(true)
		// Cuts redone by replay are stored (or found stored) and their
		// segments removed now, not at the first tick.
		s.flushMu.Lock()
		if len(s.flushing) > 0 {
			select {
			case s.kick <- struct{}{}:
			default:
			}
		}
		s.flushMu.Unlock()
		go s.loop()
	})
}

// Consume makes td durable for tenantID and then acknowledges it: it is
// the ingest.Consumer every receiver calls. The head keeps td (no copy).
func (s *Server) Consume(ctx context.Context, tenantID string, td ptrace.Traces) error {
	return s.ConsumeOTLP(ctx, tenantID, td, nil)
}

// ConsumeOTLP is Consume for a request whose OTLP protobuf encoding the
// receiver already has: raw goes to the WAL as is, saving the encoding.
// raw must be the encoding of td (nil: Consume encodes td). The head keeps
// a copy of the encoding, not td.
func (s *Server) ConsumeOTLP(ctx context.Context, tenantID string, td ptrace.Traces, raw []byte) error {
	if err := tenant.Validate(tenantID); err != nil {
		return err
	}
	n := td.SpanCount()
	if n == 0 {
		return nil
	}
	var payload []byte
	if raw != nil {
		payload = bytes.Clone(raw) // the receiver may reuse its buffer
	} else {
		var err error
		payload, err = ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
		if err != nil {
			return fmt.Errorf("encoding spans for the write-ahead log: %w", err)
		}
	}
	if !s.allow(tenantID, len(payload), s.cfg.Now()) {
		retry := time.Duration(float64(len(payload)) / s.cfg.IngestionRateBytes * float64(time.Second))
		s.m.refused.WithLabelValues("rate_limited").Add(float64(n))
		if len(payload) > s.cfg.IngestionBurstBytes {
			return ingest.Limited("rate_limited", 0, "request of %d bytes is larger than tenant %s's ingestion burst of %d bytes; send smaller batches",
				len(payload), tenantID, s.cfg.IngestionBurstBytes)
		}
		return ingest.Limited("rate_limited", max(retry, time.Second), "tenant %s is over its ingestion rate of %.0f bytes/s (burst %d); retry later",
			tenantID, s.cfg.IngestionRateBytes, s.cfg.IngestionBurstBytes)
	}

	if s.cfg.MaxLiveBytes > 0 {
		if live := s.head.size() + s.queued.Load(); live+int64(len(payload)) > s.cfg.MaxLiveBytes {
			s.m.refused.WithLabelValues("live_bytes_exceeded").Add(float64(n))
			return ingest.Limited("live_bytes_exceeded", 5*time.Second,
				"the server holds %d bytes of spans not yet stored (limit %d): storage is slow or failing, or ingest is faster than blocks can be written; retry later",
				live, s.cfg.MaxLiveBytes)
		}
	}

	groups, err := indexRequest(payload)
	if err != nil {
		return fmt.Errorf("indexing a request of %d bytes: %w", len(payload), err)
	}
	// Spans of traces already at MaxTraceBytes are dropped before the WAL:
	// written there, a huge trace would fill it with spans no block keeps,
	// and every tenant would be refused (WAL full) until the next cut.
	keep, dropped := s.head.overLimit(tenantID, groups)
	if dropped > 0 {
		if len(keep) == 0 {
			return s.tooLarge(tenantID, dropped)
		}
		var kept []byte
		for _, g := range keep {
			kept = appendPiece(kept, g.piece)
		}
		payload = kept
		if groups, err = indexRequest(payload); err != nil {
			return fmt.Errorf("indexing a request of %d bytes: %w", len(payload), err)
		}
	}

	s.cutMu.RLock()
	_, err = s.wal.Append(ctx, tenantID, payload)
	if err != nil {
		s.cutMu.RUnlock()
		switch {
		case errors.Is(err, wal.ErrFull):
			s.m.refused.WithLabelValues("wal_full").Add(float64(n))
			return ingest.Limited("wal_full", 10*time.Second, "the write-ahead log is full (%d bytes) because blocks cannot be stored fast enough or storage is failing; retry later", s.cfg.WAL.MaxBytes)
		case errors.Is(err, wal.ErrTooLarge):
			s.m.refused.WithLabelValues("too_large").Add(float64(n))
			return fmt.Errorf("request of %d bytes is too large for the write-ahead log: %w", len(payload), err)
		}
		s.m.refused.WithLabelValues("wal_error").Add(float64(n))
		return fmt.Errorf("writing to the write-ahead log: %w", err)
	}
	res := s.head.add(tenantID, groups, s.cfg.Now())
	s.cutMu.RUnlock()

	if dropped += res.dropped; dropped > 0 {
		return s.tooLarge(tenantID, dropped)
	}
	return nil
}

// tooLarge counts spans dropped by MaxTraceBytes and says so.
func (s *Server) tooLarge(tenantID string, dropped int) error {
	s.m.refused.WithLabelValues("trace_too_large").Add(float64(dropped))
	return &ingest.PartialError{Rejected: dropped, Reason: "trace_too_large",
		Err: fmt.Errorf("traces over the limit of %d bytes per trace (tenant %s, --max-trace-bytes): their new spans were dropped", s.cfg.MaxTraceBytes, tenantID)}
}

// allow takes n bytes from the tenant's ingestion rate limiter (token
// bucket), creating it on the tenant's first request.
func (s *Server) allow(tenantID string, n int, now time.Time) bool {
	if s.cfg.IngestionRateBytes < 0 {
		return true
	}
	s.limitersMu.Lock()
	defer s.limitersMu.Unlock()
	l := s.limiters[tenantID]
	if l == nil {
		l = rate.NewLimiter(rate.Limit(s.cfg.IngestionRateBytes), s.cfg.IngestionBurstBytes)
		s.limiters[tenantID] = l
	}
	return l.AllowN(now, n)
}

// sweepLimiters forgets the limiters whose bucket has filled up again: a
// full bucket allows what a new one would, so a tenant that comes back gets
// the same answers, and the map holds only tenants that sent within the
// last burst/rate seconds instead of every tenant ever seen. It returns how
// many are left.
func (s *Server) sweepLimiters(now time.Time) int {
	s.limitersMu.Lock()
	defer s.limitersMu.Unlock()
	for t, l := range s.limiters {
		if l.TokensAt(now) >= float64(l.Burst()) {
			delete(s.limiters, t)
		}
	}
	return len(s.limiters)
}

// limiterSweepEvery is how often idle tenants' rate limiters are dropped.
const limiterSweepEvery = time.Minute

// loop cuts the head when it is due, until Shutdown. Storing runs in
// flusher, so a slow store does not delay cuts: blocks keep their size
// and MaxLiveBytes bounds what waits.
func (s *Server) loop() {
	defer close(s.done)
	flushed := make(chan struct{})
	go func() {
		defer close(flushed)
		s.flusher()
	}()
	defer func() { <-flushed }()
	t := time.NewTicker(s.cfg.FlushCheckInterval)
	defer t.Stop()
	lastSweep := time.Now()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		if time.Since(lastSweep) >= limiterSweepEvery {
			s.sweepLimiters(s.cfg.Now())
			lastSweep = time.Now()
		}
		if due, all := s.cutDue(); due {
			if err := s.cut(all); err != nil {
				s.cfg.Logger.Error("cutting the head block", "err", err)
			}
		}
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

// flusher stores queued snapshots when kicked, retrying failures with
// backoff, until Shutdown.
func (s *Server) flusher() {
	backoff := time.Duration(0)
	var retryAt time.Time
	for {
		select {
		case <-s.stop:
			return
		case <-s.kick:
		}
		if !retryAt.IsZero() && time.Now().Before(retryAt) {
			continue
		}
		if err := s.flushPending(context.Background()); err != nil {
			backoff = min(max(2*backoff, s.cfg.FlushRetryMin), s.cfg.FlushRetryMax)
			retryAt = time.Now().Add(backoff)
			s.cfg.Logger.Error("flushing blocks to storage failed; the data stays in the write-ahead log and is retried",
				"err", err, "retry_in", backoff, "bucket", s.cfg.Bucket.String())
			continue
		}
		backoff, retryAt = 0, time.Time{}
	}
}

// cutDue says whether a cut is due, and whether it must take every trace
// (the head is full) rather than only complete ones.
func (s *Server) cutDue() (due, all bool) {
	bytes, _, first := s.head.stats()
	if bytes == 0 {
		return false, false
	}
	if bytes >= s.cfg.MaxBlockBytes {
		return true, true
	}
	return s.cfg.Now().Sub(first) >= s.cfg.MaxBlockDuration, s.cfg.TraceIdlePeriod < 0
}

// cut seals the WAL segment and moves the head, or its complete traces,
// into the flush queue. Traces kept in the head are appended to the WAL
// again, after the sealed segment, so that segment can be removed once
// its block is stored; if that fails they go into the block after all.
// A marker after the copies records the cut, so that replay can redo it
// and store every span once (replay.go); the snapshot is queued only
// once the marker is durable.
func (s *Server) cut(all bool) error {
	s.cutMu.Lock()
	defer s.cutMu.Unlock()
	if bytes, _, _ := s.head.stats(); bytes == 0 {
		return nil
	}
	seg, err := s.wal.Cut()
	if err != nil {
		return err
	}
	var snap *snapshot
	requeued, copies := true, 0
	if all {
		snap = s.head.take()
	} else {
		var kept map[string][]*headTrace
		snap, kept = s.head.takeComplete(s.cfg.Now(), s.cfg.TraceIdlePeriod, s.cfg.MaxBlockDuration)
		if copies, err = s.requeue(kept, seg); err != nil {
			requeued = false
			s.cfg.Logger.Warn("could not keep active traces in the head; storing them now", "err", err)
			rest := s.head.take()
			for t, th := range rest.tenants {
				dst := snap.tenants[t]
				if dst == nil {
					snap.tenants[t] = th
					continue
				}
				for id, ht := range th.traces {
					dst.traces[id] = ht
					dst.bytes += ht.bytes
					dst.spans += ht.spans
				}
			}
			snap.bytes += rest.bytes
		}
	}
	marker := appendControl(nil, s.walID, walControl{kind: ctlCut, cut: seg, requeued: requeued, records: uint64(copies)})
	if _, err := s.wal.AppendMarker(context.Background(), markerTenant, marker); err != nil {
		// Only a failed WAL (or closed) refuses a marker. Not queued, the
		// snapshot is never stored by this process; its records are in
		// the WAL for the next start, which stores them.
		s.head.putBack(snap, s.cfg.Now())
		return fmt.Errorf("recording a cut in the write-ahead log: %w", err)
	}
	snap.walSeg = seg
	// Queued even when empty (every trace was kept and appended again):
	// segments are removed in queue order, never past a snapshot that is
	// still waiting to be stored.
	s.flushMu.Lock()
	s.flushing = append(s.flushing, snap)
	s.queued.Add(snap.bytes)
	s.flushMu.Unlock()
	return nil
}

// requeue appends the spans of traces kept in the head to the WAL again,
// in records of at most requeueChunkBytes (a trace is never split), each
// tagged as a copy made by the cut of segment seg. It returns the number
// of records appended. Called with cutMu held.
func (s *Server) requeue(kept map[string][]*headTrace, seg uint64) (int, error) {
	tag := appendControl(nil, s.walID, walControl{kind: ctlRequeue, cut: seg})
	records := 0
	for t, traces := range kept {
		// Pieces concatenate into one valid request: no decoding needed.
		// The tag is a field the request index skips.
		batch := append([]byte(nil), tag...)
		send := func() error {
			if len(batch) == len(tag) {
				return nil
			}
			if _, err := s.wal.Append(context.Background(), t, batch); err != nil {
				return err
			}
			records++
			batch = append([]byte(nil), tag...)
			return nil
		}
		for _, ht := range traces {
			for _, p := range ht.pieces {
				batch = appendPiece(batch, p)
			}
			if len(batch) >= requeueChunkBytes {
				if err := send(); err != nil {
					return records, err
				}
			}
		}
		if err := send(); err != nil {
			return records, err
		}
	}
	return records, nil
}

// flushPending stores queued snapshots oldest first; after each, the WAL
// segments it covers are removed. It stops at the first failure.
func (s *Server) flushPending(ctx context.Context) error {
	s.flushRun.Lock()
	defer s.flushRun.Unlock()
	for {
		s.flushMu.Lock()
		if len(s.flushing) == 0 {
			s.flushMu.Unlock()
			return nil
		}
		snap := s.flushing[0]
		s.flushMu.Unlock()

		if err := s.writeSnapshot(ctx, snap); err != nil {
			s.m.flushFailures.Inc()
			return err
		}
		if s.crashAt != nil && s.crashAt("before-remove", "") {
			return errCrashed
		}
		s.flushMu.Lock()
		s.flushing = s.flushing[1:]
		s.queued.Add(-snap.bytes)
		s.flushMu.Unlock()
		if err := s.wal.Remove(snap.walSeg); err != nil {
			// The data is stored; the segment will be replayed and the
			// cut redone, finding its blocks stored. Not worth failing for.
			s.cfg.Logger.Warn("removing flushed WAL segments", "err", err)
		}
	}
}

// writeSnapshot writes one block per tenant. Tenants whose block is
// already stored (from an earlier, partly failed attempt, or by the
// process that cut a replayed snapshot) are skipped.
func (s *Server) writeSnapshot(ctx context.Context, snap *snapshot) error {
	tenants := make([]string, 0, len(snap.tenants))
	for t := range snap.tenants {
		tenants = append(tenants, t)
	}
	sort.Strings(tenants)
	for _, t := range tenants {
		th := snap.tenants[t]
		if th == nil || len(th.traces) == 0 {
			continue
		}
		start := time.Now()
		ids := make([]block.TraceID, 0, len(th.traces))
		for id := range th.traces {
			ids = append(ids, id)
		}
		slices.SortFunc(ids, block.TraceID.Compare)
		// A failed attempt is retried under the same block ID: its
		// leftovers are overwritten rather than left behind, and a
		// meta.json that was stored though its write reported failure
		// (a lost response) makes the block stored, not written twice.
		if snap.blockIDs == nil {
			snap.blockIDs = map[string]uuid.UUID{}
		}
		blockID, retry := snap.blockIDs[t]
		var meta *block.Meta
		compacted := false
		if retry {
			var err error
			meta, compacted, err = s.storedEarlier(ctx, t, blockID, len(ids))
			if err != nil {
				return err
			}
		} else {
			var err error
			blockID, meta, compacted, err = s.claimBlock(ctx, snap, t, len(ids))
			if err != nil {
				return err
			}
			snap.blockIDs[t] = blockID
		}
		if meta == nil {
			w, err := vparquet4.NewBlockWriter(ctx, s.cfg.Bucket, vparquet4.WriterConfig{
				TenantID: t, BlockID: blockID, DedicatedColumns: s.cfg.DedicatedColumns, ExpectedTraces: len(ids),
			})
			if err != nil {
				return fmt.Errorf("starting a block for tenant %s: %w", t, err)
			}
			var scratch []byte
			for _, id := range ids {
				// Decoded one trace at a time: only the block's rows are
				// ever held as pdata.
				td, sc, err := decodePieces(th.traces[id].pieces, scratch)
				scratch = sc
				if err == nil {
					err = w.Add(id, td)
				}
				if err != nil {
					w.Abort()
					return fmt.Errorf("writing a block for tenant %s: %w", t, err)
				}
			}
			meta, err = w.Close()
			if err != nil {
				return fmt.Errorf("storing a block for tenant %s in %s: %w", t, s.cfg.Bucket, err)
			}
			if meta == nil {
				return fmt.Errorf("storing a block for tenant %s: the writer stored no block for %d traces", t, len(ids))
			}
		}
		s.m.flushDuration.Observe(time.Since(start).Seconds())
		s.m.blocksWritten.Inc()
		s.cfg.Logger.Info("block stored", "tenant", t, "block", meta.BlockID.String(), "traces", meta.TotalObjects,
			"spans", th.spans, "bytes", meta.Size, "start", meta.StartTime, "end", meta.EndTime,
			"duration", time.Since(start).Round(time.Millisecond))
		// Stored: readers find it in the bucket now. FindInHead reads the
		// map under flushMu.
		if s.cfg.OnBlockFlushed != nil && !compacted {
			s.cfg.OnBlockFlushed(t, meta)
		}
		s.flushMu.Lock()
		delete(snap.tenants, t)
		s.flushMu.Unlock()
		s.untag(th)
		if s.crashAt != nil && s.crashAt("stored", t) {
			return errCrashed
		}
	}
	return nil
}

// storedEarlier tells whether an earlier, failed attempt stored block
// blockID of tenant after all: its meta.json is there, whole, for the
// same number of traces (or the block was compacted since). It returns
// that meta, or nil when the block must be written (again).
func (s *Server) storedEarlier(ctx context.Context, tenantID string, blockID uuid.UUID, traces int) (*block.Meta, bool, error) {
	m, compacted, err := s.storedBlock(ctx, tenantID, blockID)
	if err != nil || m == nil || (!compacted && int(m.TotalObjects) != traces) {
		// Absent, torn, foreign or of other traces: the rewrite replaces it.
		return nil, false, err
	}
	if !compacted {
		s.cfg.Logger.Info("a block whose storing reported failure was stored after all; not writing it again",
			"tenant", tenantID, "block", blockID.String())
	}
	return m, compacted, nil
}

// storedBlock returns the meta of block blockID of tenant when it is
// stored whole under that ID, or compacted away since (compacted: its
// traces are in the compacted block); nil when it is absent, or its
// meta.json torn or another block's.
func (s *Server) storedBlock(ctx context.Context, tenantID string, blockID uuid.UUID) (m *block.Meta, compacted bool, err error) {
	m, err = block.ReadMeta(ctx, s.cfg.Bucket, tenantID, blockID)
	switch {
	case err == nil && m.BlockID == blockID:
		return m, false, nil
	case err == nil || storage.KindOf(err) == storage.KindOther:
		return nil, false, nil
	case errors.Is(err, storage.ErrNotFound):
		cm, cerr := block.ReadCompactedMeta(ctx, s.cfg.Bucket, tenantID, blockID)
		if cerr == nil {
			return &cm.Meta, true, nil
		}
		if errors.Is(cerr, storage.ErrNotFound) || storage.KindOf(cerr) == storage.KindOther {
			return nil, false, nil
		}
		err = cerr
	}
	return nil, false, fmt.Errorf("checking whether block %s of tenant %s is stored: %w", blockID, tenantID, err)
}

// Flush cuts the head and stores everything now, for shutdown and tests.
func (s *Server) Flush(ctx context.Context) error {
	if err := s.cut(true); err != nil {
		return err
	}
	return s.flushPending(ctx)
}

// FindInHead returns the pieces of a trace that are not in stored blocks
// yet: in the head or waiting to be flushed. The caller owns them.
func (s *Server) FindInHead(tenantID string, id block.TraceID) []ptrace.Traces {
	var pieces []rawPiece
	s.eachUnstored(tenantID, func(th *tenantHead) {
		if ht := th.traces[id]; ht != nil {
			pieces = append(pieces, ht.pieces...)
		}
	})
	return decodeEach(pieces)
}

// ForEachHeadTrace calls fn for every trace of tenantID that is not in a
// stored block yet, with all its pieces (as FindInHead gives them), until
// fn returns false. It looks at the head as of the call; fn runs without
// locks held, so a slow fn delays neither ingest nor flushing. The order
// of traces is unspecified.
func (s *Server) ForEachHeadTrace(tenantID string, fn func(id block.TraceID, parts []ptrace.Traces) bool) {
	all := map[block.TraceID][]rawPiece{}
	s.eachUnstored(tenantID, func(th *tenantHead) {
		for id, ht := range th.traces {
			all[id] = append(all[id], ht.pieces...)
		}
	})
	for id, pieces := range all {
		if !fn(id, decodeEach(pieces)) {
			return
		}
	}
}

// eachUnstored calls fn with tenantID's part of the head and of every
// snapshot being flushed, under the locks that keep them still: fn must
// be quick and must not keep the maps.
func (s *Server) eachUnstored(tenantID string, fn func(th *tenantHead)) {
	s.cutMu.RLock()
	defer s.cutMu.RUnlock()
	s.head.mu.Lock()
	if th := s.head.tenants[tenantID]; th != nil {
		fn(th)
	}
	s.head.mu.Unlock()
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	for _, snap := range s.flushing {
		if th := snap.tenants[tenantID]; th != nil {
			fn(th)
		}
	}
}

// Shutdown stops the flush loop, stores everything held, and closes the
// WAL. Call it after the receivers stopped. If storing fails the data
// stays in the WAL for the next start, and the error says so.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closed.Do(func() {
		close(s.stop)
		if s.started.Load() {
			<-s.done
		}
		err := s.Flush(ctx)
		if err != nil {
			err = fmt.Errorf("flushing at shutdown: %w; the spans are kept in the write-ahead log %s and stored at the next start", err, s.cfg.WALDir)
		}
		s.closeErr = errors.Join(err, s.wal.Close())
	})
	return s.closeErr
}
