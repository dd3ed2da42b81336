package server

import (
	"context"
	"encoding/binary"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/wal"
)

// Exactly once across crashes.
//
// A cut seals WAL segment S, moves the head's complete traces into a
// snapshot stored as one block per tenant, and appends the traces it keeps
// (still receiving spans) to the WAL again; segments <= S are removed once
// the snapshot is stored. A crash between "stored" and "removed", or
// between the cut and the store, used to make the restart replay segments
// <= S whole: the stored spans went into a second block, and the kept
// traces were read twice (original and copy) into one row.
//
// So the WAL now says where the cuts were, and replay redoes them:
//
//   - The requeued copies of a cut are tagged (requeue, S); after them the
//     cut appends a marker (cut S, requeued or not, how many copies) with
//     the empty tenant, which no request can have. Both are written under
//     the cut lock, so no request's record falls between them.
//   - Replay adds records to the head as before. At the marker of cut S it
//     does what the cut did: the head's traces, except those requeued,
//     become snapshot S (queued, flushed first); the requeued traces stay,
//     with the copies' pieces instead of the originals'. Copies without
//     their marker (the cut was interrupted, or its requeue failed and the
//     snapshot took everything) are dropped: the originals are replayed.
//   - Snapshot S's block for tenant T has the ID blockIDFor(walID, S, T),
//     the same in the process that cut and in every restart. Before
//     writing, the flusher reads that block's meta.json (or its compacted
//     marker): a replayed snapshot whose block is stored is not written
//     again. One read (two when absent) per block.
//
// Compatibility: a tag is a protobuf field (fieldWALControl) that the
// request index and older versions skip, so an older tracectl replays the
// copies as plain requests (its old behaviour) and reads a marker as an
// empty request of the empty tenant, which stores nothing. A WAL written
// by an older version has neither: it is replayed whole, as before. The
// tag carries the WAL's ID, so a client cannot forge one.

// fieldWALControl is the ExportTraceServiceRequest field number of the
// tag. OTLP defines only field 1 there; readers skip unknown fields.
const fieldWALControl = 1999

const (
	ctlRequeue = 1 // a record of traces a cut kept, copied after the sealed segment
	ctlCut     = 2 // the end of a cut: its requeue is complete (or failed)
)

// walControl is a decoded tag.
type walControl struct {
	kind     byte
	cut      uint64 // the segment the cut sealed
	requeued bool   // ctlCut: the kept traces were requeued (else the snapshot took them)
	records  uint64 // ctlCut: how many requeue records precede the marker
}

// markerTenant is the tenant of cut markers: empty, which tenant.Validate
// refuses, so no request has it.
const markerTenant = ""

// appendControl appends c as a tagged field to dst.
func appendControl(dst []byte, walID uuid.UUID, c walControl) []byte {
	var v []byte
	v = append(v, walID[:]...)
	v = append(v, c.kind)
	v = binary.AppendUvarint(v, c.cut)
	if c.kind == ctlCut {
		flag := byte(0)
		if c.requeued {
			flag = 1
		}
		v = append(v, flag)
		v = binary.AppendUvarint(v, c.records)
	}
	dst = protowire.AppendTag(dst, fieldWALControl, protowire.BytesType)
	return protowire.AppendBytes(dst, v)
}

// parseControl reads the tag at the start of a WAL payload, if it has one
// made with walID. A payload without one (a request, or a WAL of an
// older version or of another ID) is not a control record.
func parseControl(payload []byte, walID uuid.UUID) (walControl, bool) {
	num, typ, n := consumeTag(payload)
	if n < 0 || num != fieldWALControl || typ != protowire.BytesType {
		return walControl{}, false
	}
	v, m := consumeBytes(payload[n:])
	if m < 0 || len(v) < len(walID)+2 || [16]byte(v[:16]) != walID {
		return walControl{}, false
	}
	c := walControl{kind: v[16]}
	v = v[17:]
	cut, k := binary.Uvarint(v)
	if k <= 0 {
		return walControl{}, false
	}
	c.cut, v = cut, v[k:]
	switch c.kind {
	case ctlRequeue:
		return c, true
	case ctlCut:
		if len(v) < 2 {
			return walControl{}, false
		}
		c.requeued = v[0] == 1
		recs, k := binary.Uvarint(v[1:])
		if k <= 0 {
			return walControl{}, false
		}
		c.records = recs
		return c, true
	}
	return walControl{}, false
}

// blockNamespace names the block IDs of cuts (uuid.NewSHA1).
var blockNamespace = uuid.MustParse("6f0c3a8e-56b2-4c1e-9a57-0e3c2d7b9f41")

// blockIDFor is the ID of the block of tenantID cut at WAL segment seg.
func blockIDFor(walID uuid.UUID, seg uint64, tenantID string) uuid.UUID {
	name := make([]byte, 0, 16+8+len(tenantID))
	name = append(name, walID[:]...)
	name = binary.BigEndian.AppendUint64(name, seg)
	name = append(name, tenantID...)
	return uuid.NewSHA1(blockNamespace, name)
}

// replayer feeds WAL records to the head and redoes the cuts it finds.
type replayer struct {
	s     *Server
	walID uuid.UUID
	now   time.Time

	// The requeue records of a cut whose marker has not come yet.
	pendingCut uint64
	pending    []requeued
	has        bool

	records, spans, cuts, dropped int
}

type requeued struct {
	tenant string
	groups []indexedTrace
}

func (r *replayer) record(tenantID string, payload []byte, pos wal.Position) {
	c, ok := parseControl(payload, r.walID)
	if !ok {
		r.dropPending(pos)
		if tenantID == markerTenant {
			return // a marker of another WAL ID: nothing in it
		}
		groups, err := indexRequest(payload)
		if err != nil {
			r.s.cfg.Logger.Warn("skipping an unreadable WAL record", "position", pos.String(), "err", err)
			return
		}
		res := r.s.head.add(tenantID, groups, r.now)
		r.spans += res.accepted
		r.records++
		return
	}
	switch c.kind {
	case ctlRequeue:
		if r.has && r.pendingCut != c.cut {
			r.dropPending(pos)
		}
		groups, err := indexRequest(payload)
		if err != nil {
			r.s.cfg.Logger.Warn("skipping an unreadable WAL record", "position", pos.String(), "err", err)
			return
		}
		r.pendingCut, r.has = c.cut, true
		r.pending = append(r.pending, requeued{tenant: tenantID, groups: groups})
		r.records++
	case ctlCut:
		r.redoCut(c, pos)
	}
}

// redoCut does at cut c's marker what the cut did: the head's traces
// become snapshot c.cut, except those it requeued, which stay in the head
// as their copies hold them.
func (r *replayer) redoCut(c walControl, pos wal.Position) {
	var kept []requeued
	if c.requeued {
		if r.has && r.pendingCut == c.cut && uint64(len(r.pending)) == c.records {
			kept = r.pending
		} else if c.records > 0 {
			// Copies lost to damage: store the originals with the
			// snapshot, under a block of their own (writeSnapshot sees
			// more traces than the stored block has).
			r.s.cfg.Logger.Warn("replay: the copies of the traces a cut kept are incomplete; replaying the originals instead",
				"cut_segment", c.cut, "copies_found", len(r.pending), "copies_written", c.records, "position", pos.String())
		}
	}
	if kept == nil {
		r.dropPending(pos)
	}
	snap := r.s.head.take()
	for _, rq := range kept {
		if th := snap.tenants[rq.tenant]; th != nil {
			for _, g := range rq.groups {
				if ht := th.traces[g.id]; ht != nil {
					delete(th.traces, g.id)
					th.bytes -= ht.bytes
					th.spans -= ht.spans
					snap.bytes -= ht.bytes
				}
			}
		}
	}
	for _, rq := range kept {
		r.spans += r.s.head.restore(rq.tenant, rq.groups, r.now)
	}
	r.pending, r.has = nil, false
	snap.walSeg = c.cut
	snap.replayed = true
	r.cuts++
	r.s.flushMu.Lock()
	r.s.flushing = append(r.s.flushing, snap)
	r.s.queued.Add(snap.bytes)
	r.s.flushMu.Unlock()
}

// dropPending forgets requeue copies whose cut marker never came: the cut
// was interrupted (its snapshot never queued) or its requeue failed (the
// snapshot took the traces); either way the originals hold the spans.
func (r *replayer) dropPending(pos wal.Position) {
	if !r.has {
		return
	}
	r.s.cfg.Logger.Info("replay: ignoring copies of active traces whose cut did not finish; their originals are replayed",
		"cut_segment", r.pendingCut, "records", len(r.pending), "position", pos.String())
	r.dropped += len(r.pending)
	r.records -= len(r.pending)
	r.pending, r.has = nil, false
}

// claimBlock chooses the ID of snapshot snap's block for tenantID on the
// first attempt to write it, and says whether it is stored already. The
// ID is blockIDFor(WAL ID, snap.walSeg, tenant). If a block by that ID is
// stored (meta.json whole, or compacted since) and snap was rebuilt by
// replay, it holds the snapshot's traces: the process that cut it stored
// it before crashing. Any other block by that ID (a copy of this WAL
// directory writing to the same bucket, or more traces than the block
// has) is left alone and the snapshot gets a random ID: a copy too many
// rather than a block overwritten.
func (s *Server) claimBlock(ctx context.Context, snap *snapshot, tenantID string, traces int) (id uuid.UUID, m *block.Meta, compacted bool, err error) {
	id = blockIDFor(s.walID, snap.walSeg, tenantID)
	m, compacted, err = s.storedBlock(ctx, tenantID, id)
	if err != nil {
		return uuid.Nil, nil, false, err
	}
	if m == nil { // absent, or torn by a crash while written: the write replaces it
		return id, nil, false, nil
	}
	if snap.replayed && int(m.TotalObjects) >= traces {
		s.cfg.Logger.Info("replay: the block of this WAL segment and tenant is already stored; not writing its traces again",
			"segment", snap.walSeg, "tenant", tenantID, "block", id.String(), "traces", traces, "compacted", compacted)
		return id, m, compacted, nil
	}
	other := uuid.New()
	s.cfg.Logger.Warn("a block by this cut's ID is in the bucket already but is not this snapshot's; writing the snapshot under another ID (is a copy of this WAL directory writing to the same bucket?)",
		"segment", snap.walSeg, "tenant", tenantID, "block", id.String(), "stored_traces", m.TotalObjects,
		"traces", traces, "replayed", snap.replayed, "new_block", other.String())
	return other, nil, false, nil
}
