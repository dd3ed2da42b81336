// Package wal owns tracectl's write-ahead log: the durable record of every
// request `tracectl serve` has accepted but not yet stored in a block. A
// receiver appends a request (opaque bytes, e.g. an OTLP ExportRequest, and
// its tenant) and acknowledges it only after Append returns; on start the
// server replays the log into its head; once a block holding the data of
// segments up to S is stored, the server removes those segments.
//
// The package owns the directory it is given and nothing else: segment
// files NNNNNNNNNNNNNNNNNNNN.wal (see record.go for the format), a LOCK
// file and the directory's ID (wal-id, see id.go). It never interprets
// payloads, never talks to object storage, and never drops a record it
// acknowledged: when it cannot accept more it says so (ErrFull,
// ErrTooLarge) instead of blocking forever or discarding.
//
// Guarantees:
//   - A record whose Append returned nil survives a process crash (kill -9)
//     under every sync policy, and a power loss under SyncAlways and
//     SyncGroup.
//   - Replay returns records in append order, each exactly once (a record
//     whose Append failed may or may not be replayed; it never appears
//     twice).
//   - Damage never costs the records before it: a torn tail is cut off at
//     Open, corruption in an older segment skips only the rest of that
//     segment, and both are logged and counted in ReplayStats.
//
// Limit: damage inside the newest segment looks like a torn tail, so Open
// cuts the segment there. Records after that point are lost only if the
// disk corrupted data it had already fsynced; the warning names the offset
// and the bytes removed.
package wal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
)

// SyncPolicy says when appended records are fsynced.
type SyncPolicy int

const (
	// SyncGroup (the default) makes appenders from many goroutines share one
	// fsync. The pending batch is written and fsynced when it reaches
	// Options.GroupBytes, or Options.GroupDelay after the previous group
	// fsync started, whichever is first. So fsyncs happen about once per
	// GroupDelay at most (unless batches fill), an Append waits at most
	// GroupDelay plus one fsync (plus the rest of one already running), and
	// the first append after a quiet spell is synced at once rather than
	// after GroupDelay. (The brief timed D from the batch's first record;
	// timing it from the last fsync keeps both bounds and spares a lightly
	// loaded server the wait.) One goroutine appending in a loop still gets
	// about one append per GroupDelay: use SyncAlways for that.
	SyncGroup SyncPolicy = iota
	// SyncAlways fsyncs after every append before it returns, with no added
	// wait. Appends that arrive while an fsync runs share the next one: a
	// separate fsync per append would give the same durability at a
	// fraction of the throughput, so this is deliberately not done.
	SyncAlways
	// SyncNone writes each record to the operating system before Append
	// returns but leaves fsync to the OS (segments are still fsynced when
	// sealed and on Close). Acknowledged records survive a process crash but
	// NOT a power loss or kernel crash. For benchmarks only.
	SyncNone
)

func (p SyncPolicy) String() string {
	switch p {
	case SyncGroup:
		return "group"
	case SyncAlways:
		return "always"
	case SyncNone:
		return "none"
	}
	return fmt.Sprintf("SyncPolicy(%d)", int(p))
}

// ParseSyncPolicy parses "group", "always" or "none".
func ParseSyncPolicy(s string) (SyncPolicy, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "group", "":
		return SyncGroup, nil
	case "always":
		return SyncAlways, nil
	case "none":
		return SyncNone, nil
	}
	return 0, fmt.Errorf("WAL sync policy %q is unknown; use group (the default), always or none", s)
}

// Defaults for Options' zero values.
const (
	DefaultGroupBytes     = 1 << 20
	DefaultGroupDelay     = 10 * time.Millisecond
	DefaultSegmentBytes   = 128 << 20
	DefaultMaxBytes       = 4 << 30
	DefaultMaxRecordBytes = 64 << 20
)

// Options configure a WAL. The zero value is usable.
type Options struct {
	Sync SyncPolicy
	// GroupBytes and GroupDelay bound a group commit (SyncGroup only).
	GroupBytes int64
	GroupDelay time.Duration
	// SegmentBytes is the size at which a segment is sealed and a new one
	// started. A record larger than that gets a segment of its own.
	SegmentBytes int64
	// MaxBytes bounds all segments together; an Append that would pass it
	// fails with ErrFull. 0 means DefaultMaxBytes, a negative value no limit.
	MaxBytes int64
	// MaxRecordBytes bounds one payload; larger ones fail with ErrTooLarge.
	MaxRecordBytes int64
	// Logger receives warnings about damaged segments. Nil discards them.
	Logger *slog.Logger
}

func (o Options) withDefaults() (Options, error) {
	if o.Sync < SyncGroup || o.Sync > SyncNone {
		return o, fmt.Errorf("WAL sync policy %d is unknown; use SyncGroup, SyncAlways or SyncNone", int(o.Sync))
	}
	if o.GroupBytes == 0 {
		o.GroupBytes = DefaultGroupBytes
	}
	if o.GroupDelay == 0 {
		o.GroupDelay = DefaultGroupDelay
	}
	if o.SegmentBytes == 0 {
		o.SegmentBytes = DefaultSegmentBytes
	}
	if o.MaxBytes == 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.MaxRecordBytes == 0 {
		o.MaxRecordBytes = DefaultMaxRecordBytes
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case o.GroupBytes < 0 || o.GroupDelay < 0:
		return o, fmt.Errorf("WAL group commit limits must not be negative (got %d bytes, %s)", o.GroupBytes, o.GroupDelay)
	case o.SegmentBytes < 64:
		return o, fmt.Errorf("WAL segment size %d is too small; use at least 64 bytes (default %d)", o.SegmentBytes, DefaultSegmentBytes)
	case o.MaxRecordBytes < 0 || o.MaxRecordBytes > maxFormatBody-MaxTenantBytes-16:
		return o, fmt.Errorf("WAL record size limit %d is out of range; use 1 to %d bytes", o.MaxRecordBytes, maxFormatBody-MaxTenantBytes-16)
	}
	return o, nil
}

var (
	// ErrFull means the WAL holds MaxBytes already. Nothing was written; the
	// caller should refuse the request as retryable (HTTP 429, gRPC
	// ResourceExhausted). Space returns when Remove deletes flushed segments.
	ErrFull = errors.New("write-ahead log is full")
	// ErrTooLarge means the record can never be accepted (MaxRecordBytes,
	// MaxBytes or MaxTenantBytes); retrying will not help.
	ErrTooLarge = errors.New("record is too large for the write-ahead log")
	// ErrClosed is returned by calls after Close.
	ErrClosed = errors.New("write-ahead log is closed")
)

// Position is where a record starts: its segment and byte offset there.
// Positions grow in append order.
type Position struct {
	Segment uint64
	Offset  int64
}

func (p Position) String() string { return fmt.Sprintf("%d:%d", p.Segment, p.Offset) }

// Damage is a stretch of a segment that could not be read as records.
type Damage struct {
	Segment uint64
	Offset  int64 // where the bad data starts; every record before it was replayed
	Bytes   int64 // bytes from Offset to the end of the segment
	Torn    bool  // the tail of the newest segment, cut off at Open (a crash mid-write)
	Err     error // what was wrong at Offset
}

// ReplayStats describes one Replay.
type ReplayStats struct {
	Segments       int   // segments read
	Records        int   // records given to fn
	Bytes          int64 // bytes of those records on disk
	TruncatedBytes int64 // torn tail cut off the newest segment at Open
	SkippedBytes   int64 // bytes after corruption in older segments, not replayed
	Damage         []Damage
}

// WAL is a write-ahead log in one directory. All methods are safe for
// concurrent use.
type WAL struct {
	dir  string
	id   uuid.UUID
	opts Options
	log  *slog.Logger
	lock *os.File
	m    counters

	kick        chan struct{} // wakes the flusher; capacity 1
	flusherDone chan struct{}
	diskSeq     atomic.Uint64 // the segment open on disk (trails seq while a rotation is pending)

	mu      sync.Mutex
	closing bool
	err     error     // sticky: after a failed write or fsync nothing more is accepted
	sealed  []segment // sealed segments on disk or pending, ascending
	seq     uint64    // the segment appends go to
	segSize int64     // its size, appends not yet written included
	total   int64     // all segments, appends not yet written included
	pending *batch    // the group being filled (SyncAlways, SyncGroup)
	spare   []byte    // a written batch's buffer, for the next batch
	nbuf    []byte    // SyncNone's write buffer

	// file is the segment being written. The flusher goroutine owns it under
	// SyncAlways and SyncGroup, the holder of mu under SyncNone, and Close
	// once the flusher has stopped.
	file segFile

	replaySegs []segment // the sealed segments found by Open: what Replay reads
	openDamage []Damage
}

// batch is a group of appends written with one write and made durable by
// one fsync. Its buffer holds whole records; a split rotates to a new
// segment at an offset in the buffer.
type batch struct {
	buf    []byte
	splits []split
	n      int
	urgent bool // write without waiting for the group to fill (Cut, Close, Remove)
	done   chan struct{}
	err    error // set before done is closed
}

type split struct {
	at  int
	seq uint64
}

func (b *batch) empty() bool { return b.n == 0 && len(b.splits) == 0 && !b.urgent }

// Open opens the WAL in dir, creating the directory if needed, and prepares
// it for appends: a torn tail of the newest segment is cut off (with a
// warning) and appends go to a fresh segment, so the segments found here are
// never written again. Call Replay to read them. Only one process may have
// a directory open.
func Open(dir string, opts Options) (*WAL, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating the WAL directory %s: %w", dir, err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	w := &WAL{
		dir:         dir,
		opts:        opts,
		log:         opts.Logger,
		lock:        lock,
		kick:        make(chan struct{}, 1),
		flusherDone: make(chan struct{}),
		file:        segFile{dir: dir},
	}
	if w.id, err = loadOrCreateID(dir, w); err != nil {
		lock.Close()
		return nil, err
	}
	if err := w.recover(); err != nil {
		w.file.close()
		lock.Close()
		return nil, err
	}
	w.replaySegs = append([]segment(nil), w.sealed...)
	w.seq, w.segSize = w.file.seq, w.file.size
	w.diskSeq.Store(w.file.seq)
	for _, s := range w.sealed {
		w.total += s.size
	}
	w.total += w.segSize
	if opts.Sync != SyncNone {
		w.pending = w.newBatchLocked()
		go w.flushLoop()
	} else {
		close(w.flusherDone)
	}
	return w, nil
}

// recover finds the segments, repairs the newest and opens the segment for
// appends.
func (w *WAL) recover() error {
	seqs, err := listSegments(w.dir)
	if err != nil {
		return fmt.Errorf("listing the WAL directory %s: %w", w.dir, err)
	}
	var next uint64 = 1
	if len(seqs) > 0 {
		next = seqs[len(seqs)-1] + 1
	}
	for i, seq := range seqs {
		path := filepath.Join(w.dir, segmentName(seq))
		if i == len(seqs)-1 {
			return w.recoverNewest(seq, path, next)
		}
		fi, err := os.Stat(path)
		if err != nil {
			return fmt.Errorf("reading WAL segment %s: %w", path, err)
		}
		if err := checkVersion(path); err != nil {
			return err
		}
		w.sealed = append(w.sealed, segment{seq: seq, size: fi.Size()})
	}
	return w.file.create(next)
}

// checkVersion fails for a segment of another format version: skipping it as
// damage would let Remove delete data this build cannot read.
func checkVersion(path string) error {
	data, err := readHead(path, headerSize)
	if err != nil {
		return fmt.Errorf("reading WAL segment %s: %w", path, err)
	}
	if herr := checkHeader(data); errors.Is(herr, errVersion) {
		return fmt.Errorf("WAL segment %s: %w; open this WAL with the tracectl version that wrote it", path, herr)
	}
	return nil
}

func readHead(path string, n int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, n)
	m, err := io.ReadFull(f, buf)
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		err = nil
	}
	return buf[:m], err
}

// recoverNewest handles the newest segment, the only one a crash can leave
// half-written: every older one was fsynced before the next was created.
func (w *WAL) recoverNewest(seq uint64, path string, next uint64) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("opening WAL segment %s: %w; check the directory's permissions", path, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("reading WAL segment %s: %w", path, err)
	}
	size := fi.Size()
	res, err := scanSegment(f, size, nil)
	if err != nil {
		f.Close()
		if errors.Is(err, errVersion) {
			return fmt.Errorf("WAL segment %s: %w; open this WAL with the tracectl version that wrote it", path, err)
		}
		return fmt.Errorf("reading WAL segment %s: %w", path, err)
	}

	if res.end == 0 { // no valid header
		data, small, rerr := readSmallFile(path, 1<<20)
		if rerr == nil && small && isTornCreation(data) {
			f.Close()
			w.log.Warn("removing a WAL segment left empty by a crash while it was created",
				"segment", path, "bytes", size)
			if err := os.Remove(path); err != nil {
				return fmt.Errorf("removing the empty WAL segment %s: %w; remove it by hand", path, err)
			}
			if err := syncDir(w.dir); err != nil {
				return err
			}
			return w.file.create(next)
		}
		// Not ours or badly damaged: keep it (Replay reports it) and move on.
		f.Close()
		w.sealed = append(w.sealed, segment{seq: seq, size: size})
		return w.file.create(next)
	}

	if res.bad != nil {
		cut := size - res.end
		w.log.Warn("cutting off a torn tail of the newest WAL segment (a crash during a write); every record before it is kept",
			"segment", path, "offset", res.end, "bytes", cut, "records_kept", res.records, "reason", res.bad.Error())
		if err := f.Truncate(res.end); err != nil {
			f.Close()
			return fmt.Errorf("truncating the torn tail of WAL segment %s at byte %d: %w; check permissions and free space", path, res.end, err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return fmt.Errorf("syncing WAL segment %s: %w", path, err)
		}
		w.openDamage = append(w.openDamage, Damage{Segment: seq, Offset: res.end, Bytes: cut, Torn: true, Err: res.bad})
	}
	if res.records == 0 {
		// Nothing in it: append to it rather than leaving an empty segment
		// behind on every restart.
		if _, err := f.Seek(res.end, 0); err != nil {
			f.Close()
			return fmt.Errorf("opening WAL segment %s for appending: %w", path, err)
		}
		w.file.f, w.file.seq, w.file.size = f, seq, res.end
		return nil
	}
	f.Close()
	w.sealed = append(w.sealed, segment{seq: seq, size: res.end})
	return w.file.create(next)
}

// Append adds a record and returns its position once it is durable as the
// sync policy defines. It fails with ErrFull when the WAL holds MaxBytes
// (nothing written), ErrTooLarge for a record that can never fit, ErrClosed
// after Close, and the context's error if ctx ends first; in that last case
// the record may still be written and replayed later, so the caller must not
// acknowledge it. After an I/O error every Append fails: the server must
// restart and recover from the log. payload is not kept after Append
// returns.
func (w *WAL) Append(ctx context.Context, tenant string, payload []byte) (Position, error) {
	return w.append(ctx, tenant, payload, false)
}

// MaxMarkerBytes bounds the payload of AppendMarker.
const MaxMarkerBytes = 4096

// AppendMarker is Append for a small bookkeeping record (at most
// MaxMarkerBytes) that must not be refused for space: it is written even
// when the WAL holds MaxBytes, which it may pass by its size, and at once
// (with what is pending) rather than after the group delay. The server
// appends one at every cut; refusing it on a full WAL would keep the cut,
// and so the removal that frees the space, from ever finishing.
func (w *WAL) AppendMarker(ctx context.Context, tenant string, payload []byte) (Position, error) {
	if len(payload) > MaxMarkerBytes {
		return Position{}, fmt.Errorf("appending a marker to the write-ahead log: %w: %d bytes (at most %d)", ErrTooLarge, len(payload), MaxMarkerBytes)
	}
	return w.append(ctx, tenant, payload, true)
}

func (w *WAL) append(ctx context.Context, tenant string, payload []byte, unlimited bool) (Position, error) {
	start := time.Now()
	if err := ctx.Err(); err != nil {
		return Position{}, err
	}
	if len(tenant) > MaxTenantBytes {
		return Position{}, fmt.Errorf("appending to the write-ahead log: %w: tenant ID of %d bytes (at most %d)", ErrTooLarge, len(tenant), MaxTenantBytes)
	}
	if int64(len(payload)) > w.opts.MaxRecordBytes {
		return Position{}, fmt.Errorf("appending to the write-ahead log: %w: %d bytes (at most %d); send smaller requests or raise the WAL record limit",
			ErrTooLarge, len(payload), w.opts.MaxRecordBytes)
	}
	size := frameSize(tenant, payload)
	if w.opts.MaxBytes > 0 && !unlimited && size+headerSize > w.opts.MaxBytes {
		return Position{}, fmt.Errorf("appending to the write-ahead log: %w: %d bytes, more than the WAL size limit of %d", ErrTooLarge, size, w.opts.MaxBytes)
	}
	prefix := recordPrefix(tenant, payload)

	w.mu.Lock()
	if err := w.usableLocked(); err != nil {
		w.mu.Unlock()
		return Position{}, err
	}
	// Bound the memory held by the pending batch while the disk is slow: wait
	// (for at most one batch's write and fsync) rather than buffer more.
	for w.opts.Sync != SyncNone {
		b := w.pending
		if len(b.buf) == 0 || int64(len(b.buf))+size <= w.maxPendingBytes() {
			break
		}
		b.urgent = true
		w.mu.Unlock()
		w.wakeFlusher()
		select {
		case <-b.done:
		case <-ctx.Done():
			return Position{}, fmt.Errorf("waiting for the write-ahead log to write earlier records: %w", ctx.Err())
		}
		w.mu.Lock()
		if err := w.usableLocked(); err != nil {
			w.mu.Unlock()
			return Position{}, err
		}
	}
	rotate := w.segSize > headerSize && w.segSize+size > w.opts.SegmentBytes
	need := size
	if rotate {
		need += headerSize
	}
	if w.opts.MaxBytes > 0 && !unlimited && w.total+need > w.opts.MaxBytes {
		used := w.total
		w.mu.Unlock()
		w.m.fullRejections.Add(1)
		return Position{}, fmt.Errorf("appending %d bytes to the write-ahead log in %s: %w (%d of %d bytes in use); retry later, once the head is flushed to a block, or raise the WAL size limit",
			size, w.dir, ErrFull, used, w.opts.MaxBytes)
	}
	if rotate {
		if err := w.rotateLocked(); err != nil {
			w.mu.Unlock()
			return Position{}, err
		}
	}
	pos := Position{Segment: w.seq, Offset: w.segSize}
	w.segSize += size
	w.total += size
	w.m.appends.Add(1)
	w.m.appendedBytes.Add(uint64(size))

	if w.opts.Sync == SyncNone {
		w.nbuf = append(append(w.nbuf[:0], prefix...), payload...)
		err := w.file.write(w.nbuf)
		if cap(w.nbuf) > 1<<20 {
			w.nbuf = nil
		}
		if err != nil {
			w.err = err
		}
		w.mu.Unlock()
		if err != nil {
			return Position{}, err
		}
		w.m.appendLatency.observe(time.Since(start))
		return pos, nil
	}

	b := w.pending
	before := int64(len(b.buf))
	b.buf = append(append(b.buf, prefix...), payload...)
	b.n++
	if unlimited {
		// A marker is written at once: its writer holds back every other
		// append meanwhile, so waiting for a group is waiting for nothing.
		b.urgent = true
	}
	wake := b.n == 1 || b.urgent || w.opts.Sync == SyncAlways ||
		(before < w.opts.GroupBytes && int64(len(b.buf)) >= w.opts.GroupBytes)
	w.mu.Unlock()
	if wake {
		w.wakeFlusher()
	}

	select {
	case <-b.done:
		if b.err != nil {
			return Position{}, b.err
		}
		w.m.appendLatency.observe(time.Since(start))
		return pos, nil
	case <-ctx.Done():
		return Position{}, fmt.Errorf("waiting for the write-ahead log to sync (the record may still be replayed after a restart): %w", ctx.Err())
	}
}

// maxPendingBytes bounds the pending batch; a batch is due at GroupBytes,
// so this only binds while an earlier batch's fsync is slow.
func (w *WAL) maxPendingBytes() int64 { return 4 * w.opts.GroupBytes }

func (w *WAL) usableLocked() error {
	if w.closing {
		return fmt.Errorf("using the write-ahead log in %s: %w", w.dir, ErrClosed)
	}
	return w.err
}

// rotateLocked seals the open segment and starts the next one, at once under
// SyncNone, else as a split in the pending batch.
func (w *WAL) rotateLocked() error {
	w.sealed = append(w.sealed, segment{seq: w.seq, size: w.segSize})
	w.seq++
	w.segSize = headerSize
	w.total += headerSize
	if w.opts.Sync != SyncNone {
		w.pending.splits = append(w.pending.splits, split{at: len(w.pending.buf), seq: w.seq})
		return nil
	}
	if err := w.rotateFile(w.seq); err != nil {
		w.err = err
		return err
	}
	return nil
}

// rotateFile seals the segment on disk (fsync, close) and creates segment
// seq. Only the owner of w.file calls it.
func (w *WAL) rotateFile(seq uint64) error {
	if err := w.syncFile(0); err != nil {
		return err
	}
	if err := w.file.close(); err != nil {
		return err
	}
	if err := w.file.create(seq); err != nil {
		return err
	}
	w.diskSeq.Store(seq)
	return nil
}

func (w *WAL) syncFile(records int) error {
	start := time.Now()
	did, err := w.file.sync()
	if did {
		w.m.syncs.Add(1)
		w.m.syncedRecords.Add(uint64(records))
		w.m.syncDuration.observe(time.Since(start))
	}
	return err
}

func (w *WAL) wakeFlusher() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

func (w *WAL) newBatchLocked() *batch {
	b := &batch{buf: w.spare, done: make(chan struct{})}
	w.spare = nil
	return b
}

// flushLoop is the flusher goroutine (SyncAlways, SyncGroup): it takes the
// pending batch when it is due, writes it, fsyncs, and releases its
// appenders; meanwhile the next batch fills.
func (w *WAL) flushLoop() {
	defer close(w.flusherDone)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var lastFlush time.Time // when the previous batch was taken; zero: none yet
	for {
		w.mu.Lock()
		b := w.pending
		if b.empty() {
			closing := w.closing
			w.mu.Unlock()
			if closing {
				return
			}
			<-w.kick
			continue
		}
		now := time.Now()
		if wait := w.dueInLocked(b, now, lastFlush); wait > 0 {
			w.mu.Unlock()
			timer.Reset(wait)
			select {
			case <-w.kick:
			case <-timer.C:
			}
			timer.Stop()
			continue
		}
		w.pending = w.newBatchLocked()
		err := w.err
		w.mu.Unlock()
		lastFlush = now

		if err == nil {
			err = w.writeBatch(b)
			if err != nil {
				w.mu.Lock()
				if w.err == nil {
					w.err = err
				}
				w.mu.Unlock()
			}
		}
		b.err = err
		close(b.done)
		if int64(cap(b.buf)) <= 4*w.opts.GroupBytes {
			w.mu.Lock()
			w.spare = b.buf[:0]
			w.mu.Unlock()
		}
	}
}

// dueInLocked says how long the pending batch may still wait: under
// SyncGroup until GroupDelay after the previous flush.
func (w *WAL) dueInLocked(b *batch, now, lastFlush time.Time) time.Duration {
	if b.urgent || w.closing || w.opts.Sync == SyncAlways || b.n == 0 || int64(len(b.buf)) >= w.opts.GroupBytes {
		return 0
	}
	return lastFlush.Add(w.opts.GroupDelay).Sub(now)
}

func (w *WAL) writeBatch(b *batch) error {
	at := 0
	for _, s := range b.splits {
		if err := w.file.write(b.buf[at:s.at]); err != nil {
			return err
		}
		at = s.at
		if err := w.rotateFile(s.seq); err != nil {
			return err
		}
	}
	if err := w.file.write(b.buf[at:]); err != nil {
		return err
	}
	return w.syncFile(b.n)
}

// flushPendingLocked marks the pending batch urgent and returns it to wait
// on; it returns nil under SyncNone, which has nothing pending. mu is held.
func (w *WAL) flushPendingLocked() *batch {
	if w.opts.Sync == SyncNone {
		return nil
	}
	b := w.pending
	b.urgent = true
	return b
}

func (w *WAL) waitBatch(b *batch) error {
	if b == nil {
		return nil
	}
	w.wakeFlusher()
	<-b.done
	return b.err
}

// Cut seals the open segment and returns its sequence number: every record
// whose Append returned before Cut was called is in a segment <= the number
// returned, and later appends go to higher ones. The server calls it when it
// starts flushing its head, and Remove with the result once the block is
// stored. If the open segment is empty it is left open and the previous
// number is returned (0 when there is none).
func (w *WAL) Cut() (uint64, error) {
	w.mu.Lock()
	if err := w.usableLocked(); err != nil {
		w.mu.Unlock()
		return 0, err
	}
	sealed := w.seq - 1
	if w.segSize > headerSize {
		sealed = w.seq
		if err := w.rotateLocked(); err != nil {
			w.mu.Unlock()
			return 0, err
		}
	}
	b := w.flushPendingLocked()
	w.mu.Unlock()
	if err := w.waitBatch(b); err != nil {
		return 0, err
	}
	return sealed, nil
}

// Remove deletes the sealed segments numbered upTo and below, whose data the
// caller has stored elsewhere (a block), and frees their space for Append.
// upTo must be below the open segment: pass what Cut returned.
func (w *WAL) Remove(upTo uint64) error {
	w.mu.Lock()
	if w.closing {
		w.mu.Unlock()
		return fmt.Errorf("removing WAL segments up to %d: %w", upTo, ErrClosed)
	}
	if upTo >= w.seq {
		open := w.seq
		w.mu.Unlock()
		return fmt.Errorf("removing WAL segments up to %d: segment %d is still open for appends; remove only up to a number Cut returned", upTo, open)
	}
	var b *batch
	if upTo >= w.diskSeq.Load() {
		b = w.flushPendingLocked() // the rotation past upTo is still pending
	}
	w.mu.Unlock()
	if err := w.waitBatch(b); err != nil {
		return fmt.Errorf("removing WAL segments up to %d: %w", upTo, err)
	}

	w.mu.Lock()
	i := sort.Search(len(w.sealed), func(i int) bool { return w.sealed[i].seq > upTo })
	victims := append([]segment(nil), w.sealed[:i]...)
	w.sealed = append([]segment(nil), w.sealed[i:]...)
	for _, s := range victims {
		w.total -= s.size
	}
	w.mu.Unlock()
	if len(victims) == 0 {
		return nil
	}

	var errs []error
	var kept []segment
	for _, s := range victims {
		path := filepath.Join(w.dir, segmentName(s.seq))
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("removing WAL segment %s: %w; its data is replayed again on restart until it is removed", path, err))
			kept = append(kept, s)
		}
	}
	if len(kept) > 0 {
		w.mu.Lock()
		w.sealed = append(kept, w.sealed...)
		for _, s := range kept {
			w.total += s.size
		}
		w.mu.Unlock()
	}
	if err := syncDir(w.dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Replay calls fn for every record in the segments Open found, in append
// order, with the position Append returned for it. The payload is fn's to
// keep. A damaged stretch ends the replay of its segment only: it is logged,
// listed in the stats, and the next segment is replayed. An error from fn
// stops the replay and is returned. Segments removed meanwhile are skipped;
// records appended since Open are not replayed.
func (w *WAL) Replay(fn func(tenant string, payload []byte, pos Position) error) (ReplayStats, error) {
	var st ReplayStats
	w.mu.Lock()
	if w.closing {
		w.mu.Unlock()
		return st, fmt.Errorf("replaying the write-ahead log in %s: %w", w.dir, ErrClosed)
	}
	segs := w.replaySegs
	for _, d := range w.openDamage {
		st.Damage = append(st.Damage, d)
		st.TruncatedBytes += d.Bytes
	}
	w.mu.Unlock()

	for _, s := range segs {
		if !w.isSealed(s.seq) {
			continue
		}
		path := filepath.Join(w.dir, segmentName(s.seq))
		f, err := os.Open(path)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return st, fmt.Errorf("replaying WAL segment %s: %w", path, err)
		}
		seq := s.seq
		res, err := scanSegment(f, s.size, func(tenant string, payload []byte, off int64) error {
			return fn(tenant, payload, Position{Segment: seq, Offset: off})
		})
		f.Close()
		st.Segments++
		st.Records += res.records
		if res.end > headerSize {
			st.Bytes += res.end - headerSize
		}
		if err != nil {
			return st, fmt.Errorf("replaying WAL segment %s: %w", path, err)
		}
		if res.bad != nil {
			skipped := s.size - res.end
			w.log.Warn("skipping the damaged rest of a WAL segment; the records before it were replayed, the later segments still are",
				"segment", path, "offset", res.end, "bytes_skipped", skipped, "records_replayed", res.records, "reason", res.bad.Error())
			st.SkippedBytes += skipped
			st.Damage = append(st.Damage, Damage{Segment: seq, Offset: res.end, Bytes: skipped, Err: res.bad})
		}
	}
	return st, nil
}

func (w *WAL) isSealed(seq uint64) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	i := sort.Search(len(w.sealed), func(i int) bool { return w.sealed[i].seq >= seq })
	return i < len(w.sealed) && w.sealed[i].seq == seq
}

// Stats returns a snapshot of the WAL's metrics.
func (w *WAL) Stats() Stats {
	w.mu.Lock()
	st := Stats{
		Bytes:       w.total,
		Segments:    len(w.sealed) + 1,
		OpenSegment: w.seq,
	}
	w.mu.Unlock()
	if w.opts.MaxBytes > 0 {
		st.MaxBytes = w.opts.MaxBytes
	}
	st.Appends = w.m.appends.Load()
	st.AppendedBytes = w.m.appendedBytes.Load()
	st.FullRejections = w.m.fullRejections.Load()
	st.Syncs = w.m.syncs.Load()
	st.SyncedRecords = w.m.syncedRecords.Load()
	st.SyncDuration = w.m.syncDuration.snapshot()
	st.AppendLatency = w.m.appendLatency.snapshot()
	return st
}

// Dir returns the WAL's directory.
func (w *WAL) Dir() string { return w.dir }

// Close writes and fsyncs every pending append, releasing their callers,
// then closes the segment and the directory lock. Appends after Close fail
// with ErrClosed. It returns the I/O error that made the WAL unusable, if
// any. Calling it again does nothing.
func (w *WAL) Close() error {
	w.mu.Lock()
	if w.closing {
		w.mu.Unlock()
		return nil
	}
	w.closing = true
	if w.pending != nil {
		w.pending.urgent = true
	}
	w.mu.Unlock()
	w.wakeFlusher()
	<-w.flusherDone

	w.mu.Lock()
	defer w.mu.Unlock()
	var errs []error
	if w.err != nil {
		errs = append(errs, w.err)
	} else if err := w.syncFile(0); err != nil {
		errs = append(errs, err)
	}
	if err := w.file.close(); err != nil {
		errs = append(errs, err)
	}
	if err := w.lock.Close(); err != nil {
		errs = append(errs, fmt.Errorf("releasing the WAL lock in %s: %w", w.dir, err))
	}
	return errors.Join(errs...)
}
