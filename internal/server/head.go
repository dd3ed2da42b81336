package server

import (
	"github.com/google/uuid"
	"sync"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tracectl/tracectl/internal/blocks/block"
)

// headTrace is one trace's spans received since the last cut: per request
// (piece), where they are in the request's protobuf (rawhead.go), which
// the head keeps and never changes.
type headTrace struct {
	pieces    []rawPiece
	bytes     int64 // protobuf size of the pieces
	spans     int64
	firstSeen time.Time
	lastSeen  time.Time
}

// tenantHead holds one tenant's unflushed traces.
type tenantHead struct {
	traces map[block.TraceID]*headTrace
	bytes  int64
	spans  int64
}

// head is the in-memory part of the store: every span acknowledged and not
// yet in a stored block. It is guarded by the server's mutex discipline:
// add runs under the server's cut lock held for reading, so its own mutex
// only orders concurrent adds.
type head struct {
	mu            sync.Mutex
	tenants       map[string]*tenantHead
	bytes         int64
	firstAppend   time.Time // zero when empty
	maxTraceBytes int64
}

func newHead(maxTraceBytes int64) *head {
	return &head{tenants: map[string]*tenantHead{}, maxTraceBytes: maxTraceBytes}
}

// addResult says what add did with a request's spans.
type addResult struct {
	accepted, dropped int
}

// add keeps each trace's piece of an indexed request, unless the trace
// would pass maxTraceBytes: then the piece's spans are dropped and counted
// (the trace keeps what it had). The same request replayed from the WAL in
// the same order gives the same result, so replay reproduces what was
// acknowledged.
func (h *head) add(tenant string, groups []indexedTrace, now time.Time) addResult {
	return h.insert(tenant, groups, now, h.maxTraceBytes)
}

// insert is add with limit (0: none) in place of maxTraceBytes.
func (h *head) insert(tenant string, groups []indexedTrace, now time.Time, limit int64) addResult {
	h.mu.Lock()
	defer h.mu.Unlock()
	th := h.tenants[tenant]
	if th == nil {
		th = &tenantHead{traces: map[block.TraceID]*headTrace{}}
		h.tenants[tenant] = th
	}
	var res addResult
	tags := make([]pieceTags, len(groups))
	for i, g := range groups {
		n := len(g.piece.spans)
		size := g.bytes
		ht := th.traces[g.id]
		if ht == nil {
			ht = &headTrace{firstSeen: now}
			th.traces[g.id] = ht
		}
		if limit > 0 && ht.bytes+size > limit {
			res.dropped += n
			if len(ht.pieces) == 0 {
				delete(th.traces, g.id)
			}
			continue
		}
		g.piece.tags = &tags[i]
		ht.pieces = append(ht.pieces, g.piece)
		ht.bytes += size
		ht.spans += int64(n)
		ht.lastSeen = now
		th.bytes += size
		th.spans += int64(n)
		h.bytes += size
		res.accepted += n
	}
	if h.firstAppend.IsZero() && res.accepted > 0 {
		h.firstAppend = now
	}
	return res
}

// restore adds the pieces of traces a cut kept, read back from their WAL
// copies at replay, whatever maxTraceBytes says now: they were accepted
// within the limit. It returns the spans added.
func (h *head) restore(tenant string, groups []indexedTrace, now time.Time) int {
	return h.insert(tenant, groups, now, 0).accepted
}

// putBack returns a snapshot's traces to the head (a cut that could not
// finish). Its traces left the head whole, so none is there now.
func (h *head) putBack(snap *snapshot, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for t, sth := range snap.tenants {
		th := h.tenants[t]
		if th == nil {
			th = &tenantHead{traces: map[block.TraceID]*headTrace{}}
			h.tenants[t] = th
		}
		for id, ht := range sth.traces {
			if cur := th.traces[id]; cur != nil {
				cur.pieces = append(ht.pieces, cur.pieces...)
				cur.bytes += ht.bytes
				cur.spans += ht.spans
				cur.firstSeen = ht.firstSeen
			} else {
				th.traces[id] = ht
			}
			th.bytes += ht.bytes
			th.spans += ht.spans
			h.bytes += ht.bytes
		}
	}
	if h.firstAppend.IsZero() && h.bytes > 0 {
		h.firstAppend = now
	}
}

// overLimit splits a request's groups (one per trace, as indexRequest
// gives them) into those add would keep as the head stands and the number
// of spans of the others, the traces already at maxTraceBytes. add checks
// again: a concurrent request may fill a trace in between.
func (h *head) overLimit(tenant string, groups []indexedTrace) (keep []indexedTrace, dropped int) {
	if h.maxTraceBytes <= 0 {
		return groups, 0
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	th := h.tenants[tenant]
	for i, g := range groups {
		held := int64(0)
		if th != nil {
			if ht := th.traces[g.id]; ht != nil {
				held = ht.bytes
			}
		}
		if held+g.bytes <= h.maxTraceBytes {
			if dropped > 0 {
				keep = append(keep, g)
			}
			continue
		}
		if dropped == 0 {
			keep = append(make([]indexedTrace, 0, len(groups)-1), groups[:i]...)
		}
		dropped += len(g.piece.spans)
	}
	if dropped == 0 {
		return groups, 0
	}
	return keep, dropped
}

// snapshot is a head taken away for flushing, with the last WAL segment
// whose records it holds.
type snapshot struct {
	tenants map[string]*tenantHead
	walSeg  uint64
	bytes   int64
	// blockIDs are the IDs of the blocks being written, per tenant, kept
	// across failed attempts so a retry rewrites the same block (see
	// writeSnapshot). Used by the flush goroutine only.
	blockIDs map[string]uuid.UUID
	// replayed: rebuilt by WAL replay from a cut of an earlier process,
	// which may have stored its blocks before it stopped (claimBlock).
	replayed bool
}

// take empties the head and returns what it held.
func (h *head) take() *snapshot {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := &snapshot{tenants: h.tenants, bytes: h.bytes}
	h.tenants = map[string]*tenantHead{}
	h.bytes = 0
	h.firstAppend = time.Time{}
	return s
}

// takeComplete moves out the traces that are complete for a block: idle
// for at least idle (no span since), or first seen at least maxAge ago
// (so a trace that never goes quiet is still stored in bounded time). The
// others stay; they are returned per tenant so the caller can write them
// to the WAL again. The head's age restarts at now.
func (h *head) takeComplete(now time.Time, idle, maxAge time.Duration) (*snapshot, map[string][]*headTrace) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := &snapshot{tenants: map[string]*tenantHead{}}
	kept := map[string][]*headTrace{}
	for t, th := range h.tenants {
		out := &tenantHead{traces: map[block.TraceID]*headTrace{}}
		for id, ht := range th.traces {
			if now.Sub(ht.lastSeen) >= idle || now.Sub(ht.firstSeen) >= maxAge {
				out.traces[id] = ht
				out.bytes += ht.bytes
				out.spans += ht.spans
				delete(th.traces, id)
				continue
			}
			kept[t] = append(kept[t], ht)
		}
		th.bytes -= out.bytes
		th.spans -= out.spans
		h.bytes -= out.bytes
		s.bytes += out.bytes
		if len(out.traces) > 0 {
			s.tenants[t] = out
		}
		if len(th.traces) == 0 {
			delete(h.tenants, t)
		}
	}
	if h.bytes == 0 {
		h.firstAppend = time.Time{}
	} else {
		h.firstAppend = now
	}
	return s, kept
}

// size is the protobuf bytes held.
func (h *head) size() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.bytes
}

// stats returns the head's size and the time of its oldest unflushed append.
func (h *head) stats() (bytes int64, traces int, first time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, th := range h.tenants {
		traces += len(th.traces)
	}
	return h.bytes, traces, h.firstAppend
}

// find returns the pieces of trace id held for tenant, decoded for the
// caller to keep.
func (h *head) find(tenant string, id block.TraceID) []ptrace.Traces {
	h.mu.Lock()
	pieces := piecesIn(h.tenants, tenant, id)
	h.mu.Unlock()
	return decodeEach(pieces)
}

// piecesIn returns trace id's pieces. The slice is the caller's; the
// pieces stay valid (the head never changes one).
func piecesIn(tenants map[string]*tenantHead, tenant string, id block.TraceID) []rawPiece {
	th := tenants[tenant]
	if th == nil {
		return nil
	}
	ht := th.traces[id]
	if ht == nil {
		return nil
	}
	return append([]rawPiece(nil), ht.pieces...)
}

// decodeEach decodes each piece into Traces the caller owns. The pieces
// were valid protobuf when they were accepted, so decoding cannot fail
// short of memory corruption; a piece that does is left out.
func decodeEach(pieces []rawPiece) []ptrace.Traces {
	if len(pieces) == 0 {
		return nil
	}
	out := make([]ptrace.Traces, 0, len(pieces))
	var scratch []byte
	for i := range pieces {
		td, sc, err := decodePieces(pieces[i:i+1], scratch)
		scratch = sc
		if err == nil {
			out = append(out, td)
		}
	}
	return out
}
