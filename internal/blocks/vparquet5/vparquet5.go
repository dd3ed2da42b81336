// Package vparquet5 reads Grafana Tempo's vParquet5 blocks (Tempo 3.1's
// default format; TEMPO-FORMAT.md §7) into OTLP traces.
//
// It only reads: tracectl writes vParquet4. Columns are located by name in
// each file's own schema, because a vParquet5 file holds only the dedicated
// columns its meta.json assigns. Objects are read through package storage;
// what all formats share (trace IDs, meta, bloom shards) comes from package
// block.
package vparquet5

import (
	"context"
	"fmt"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/blocks/pqread"
	"github.com/tracectl/tracectl/internal/storage"
)

// Dedicated column slots per scope in vParquet5.
const (
	maxStringSlots = 20
	maxIntSlots    = 5
)

// Block reads one vParquet5 block. It is safe for concurrent use. Trace by
// ID, iteration and OTLP conversion come from pqread.Reader; this package
// supplies what vParquet5 rows mean.
type Block struct {
	*pqread.Reader
	slots map[string][]pqread.Slot // dedicated columns by scope
}

// Trace is one row of a block (see pqread.Trace).
type Trace = pqread.Trace

// OpenBlock prepares reading the block meta describes from bucket. It does
// no I/O; errors (missing objects, a meta of another format) surface from
// the reading methods.
func OpenBlock(_ context.Context, bucket *storage.Bucket, meta *block.Meta) *Block {
	b := &Block{slots: map[string][]pqread.Slot{}}
	for _, scope := range []string{block.ScopeResource, block.ScopeSpan, block.ScopeEvent} {
		b.slots[scope] = pqread.Slots(meta.DedicatedColumns, scope, true, maxStringSlots, maxIntSlots)
	}
	b.Reader = pqread.NewReader(bucket, meta, block.FormatVParquet5, b.convertRow)
	return b
}

func (b *Block) convertRow(row *pqread.Group, tid pcommon.TraceID, td ptrace.Traces) error {
	for _, rsG := range row.List("rs") {
		rs := td.ResourceSpans().AppendEmpty()
		resG := rsG.Group("Resource")
		res := rs.Resource()
		if err := pqread.PutGenericAttrs(res.Attributes(), resG.List("Attrs")); err != nil {
			return fmt.Errorf("resource: %w", err)
		}
		pqread.PutDedicated(res.Attributes(), resG.Group("DedicatedAttributes"), b.slots[block.ScopeResource])
		if name := resG.Str("ServiceName"); name != "" {
			res.Attributes().PutStr("service.name", name)
		}
		res.SetDroppedAttributesCount(resG.Uint32("DroppedAttributesCount"))

		for _, ssG := range rsG.List("ss") {
			ss := rs.ScopeSpans().AppendEmpty()
			scG := ssG.Group("Scope")
			sc := ss.Scope()
			sc.SetName(scG.Str("Name"))
			sc.SetVersion(scG.Str("Version"))
			if err := pqread.PutGenericAttrs(sc.Attributes(), scG.List("Attrs")); err != nil {
				return fmt.Errorf("scope: %w", err)
			}
			sc.SetDroppedAttributesCount(scG.Uint32("DroppedAttributesCount"))
			for _, spG := range ssG.List("Spans") {
				if err := b.convertSpan(spG, tid, ss.Spans().AppendEmpty()); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func (b *Block) convertSpan(g *pqread.Group, tid pcommon.TraceID, sp ptrace.Span) error {
	sid, start := pqread.PutSpanFields(g, tid, sp)
	if err := pqread.PutGenericAttrs(sp.Attributes(), g.List("Attrs")); err != nil {
		return fmt.Errorf("span %x: %w", sid, err)
	}
	pqread.PutDedicated(sp.Attributes(), g.Group("DedicatedAttributes"), b.slots[block.ScopeSpan])
	sp.SetDroppedAttributesCount(g.Uint32("DroppedAttributesCount"))

	for _, eG := range g.List("Events") {
		ev := sp.Events().AppendEmpty()
		ev.SetTimestamp(pcommon.Timestamp(start + eG.Uint64("TimeSinceStartNano")))
		ev.SetName(eG.Str("Name"))
		if err := pqread.PutGenericAttrs(ev.Attributes(), eG.List("Attrs")); err != nil {
			return fmt.Errorf("span %x event %q: %w", sid, ev.Name(), err)
		}
		pqread.PutDedicated(ev.Attributes(), eG.Group("DedicatedAttributes"), b.slots[block.ScopeEvent])
		ev.SetDroppedAttributesCount(eG.Uint32("DroppedAttributesCount"))
	}
	sp.SetDroppedEventsCount(g.Uint32("DroppedEventsCount"))

	for _, lG := range g.List("Links") {
		l := sp.Links().AppendEmpty()
		l.SetTraceID(pqread.TraceID(lG.Bytes("TraceID")))
		l.SetSpanID(pqread.SpanID(lG.Bytes("SpanID")))
		l.TraceState().FromRaw(lG.Str("TraceState"))
		if err := pqread.PutGenericAttrs(l.Attributes(), lG.List("Attrs")); err != nil {
			return fmt.Errorf("span %x link: %w", sid, err)
		}
		l.SetDroppedAttributesCount(lG.Uint32("DroppedAttributesCount"))
	}
	sp.SetDroppedLinksCount(g.Uint32("DroppedLinksCount"))
	return nil
}
