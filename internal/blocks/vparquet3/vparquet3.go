// Package vparquet3 reads Grafana Tempo's vParquet3 blocks (an older format
// that Tempo 2.x wrote; TEMPO-FORMAT.md §6) into OTLP traces.
//
// It only reads. Differences from vParquet4 that shape what comes back:
// scopes keep only name and version (no attributes, no dropped count),
// resources have no dropped-attributes count, and generic attributes with a
// bytes value are stored as the key alone, so they read back as an empty
// value. Event attributes (protobuf AnyValue) and links (a protobuf blob)
// keep every value type.
package vparquet3

import (
	"context"
	"fmt"
	"iter"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/blocks/pqread"
	"github.com/tracectl/tracectl/internal/storage"
)

// maxStringSlots is the number of dedicated string columns per scope.
const maxStringSlots = 10

// Block reads one vParquet3 block. It is safe for concurrent use; parsed footers
// are reused across calls (see pqread.DataFile).
type Block struct {
	bucket *storage.Bucket
	meta   *block.Meta
	data   *pqread.DataFile
	slots  map[string][]pqread.Slot // by scope: resource, span
}

// Trace is one row of a block: its trace-level columns and the trace
// converted to OTLP (the row's buffers do not outlive the iteration step,
// so conversion cannot wait). The field names are those of the columns.
type Trace struct {
	TraceID           []byte // as stored; see ID
	TraceIDText       string
	StartTimeUnixNano uint64
	EndTimeUnixNano   uint64
	DurationNano      uint64
	RootServiceName   string
	RootSpanName      string

	otlp    ptrace.Traces // every stored span
	repeats bool          // otlp holds repeats of a span ID + kind
}

// ID returns the row's trace ID (left-padded to 16 bytes).
func (tr *Trace) ID() block.TraceID {
	id, _ := block.TraceIDFromBytes(tr.TraceID)
	return id
}

// SpanCount is the number of spans stored in the row, repeats included.
func (tr *Trace) SpanCount() int { return tr.otlp.SpanCount() }

// OpenBlock prepares reading the block meta describes from bucket. It does
// no I/O; errors (missing objects, a meta of another format) surface from
// the reading methods.
func OpenBlock(_ context.Context, bucket *storage.Bucket, meta *block.Meta) *Block {
	b := &Block{bucket: bucket, meta: meta, data: pqread.NewDataFile(bucket, *meta), slots: map[string][]pqread.Slot{}}
	for _, scope := range []string{block.ScopeResource, block.ScopeSpan} {
		b.slots[scope] = pqread.Slots(meta.DedicatedColumns, scope, false, maxStringSlots, 0)
	}
	return b
}

// Meta is the block's meta.
func (b *Block) Meta() *block.Meta { return b.meta }

func (b *Block) checkFormat() error {
	if b.meta.Format != block.FormatVParquet3 {
		return fmt.Errorf("block %s is %q, not %s", b.meta.String(), b.meta.Format, block.FormatVParquet3)
	}
	return nil
}

// FindTraceByID returns the trace with id and true, or false when the
// block does not hold it. It reads the footer and the one row group whose
// TraceID statistics admit id (two object reads when the row group is at
// most pqread.MaxPrefetchBytes). The caller is expected to have consulted
// the bloom filter (MayContain, block.MayContain). Repeats of a span ID +
// kind within the row are dropped. Errors name the block and the object.
func (b *Block) FindTraceByID(ctx context.Context, id block.TraceID) (ptrace.Traces, bool, error) {
	if err := b.checkFormat(); err != nil {
		return ptrace.Traces{}, false, err
	}
	var tr *Trace
	found, err := b.data.FindRow(ctx, id, func(g *pqread.Group) error {
		var err error
		tr, err = b.convert(g)
		if err == nil && tr.ID() != id {
			err = b.data.Errorf(b.data.Key(), "looked up trace %s, row holds %s", id, tr.ID())
		}
		return err
	})
	if err != nil || !found {
		return ptrace.Traces{}, false, err
	}
	td, _ := b.OTLP(tr)
	return td, true, nil
}

// MayContain tests the block's bloom filter shard for id (see
// block.MayContain): false means the block certainly does not hold it.
func (b *Block) MayContain(ctx context.Context, id block.TraceID) (bool, error) {
	return block.MayContain(ctx, b.bucket, b.meta, id)
}

// Iterate yields every row of the block in trace ID order, fetching one
// row group at a time (one request per row group up to
// pqread.MaxPrefetchBytes). The rows are the caller's to keep; OTLP gives
// their traces. The sequence stops after the first error.
func (b *Block) Iterate(ctx context.Context) iter.Seq2[*Trace, error] {
	return func(yield func(*Trace, error) bool) {
		if err := b.checkFormat(); err != nil {
			yield(nil, err)
			return
		}
		for g, err := range b.data.Rows(ctx) {
			if err != nil {
				yield(nil, err)
				return
			}
			tr, err := b.convert(g)
			if err != nil {
				yield(nil, err)
				return
			}
			if !yield(tr, nil) {
				return
			}
		}
	}
}

// OTLP returns the trace of a row that Iterate yielded, without repeats of
// a span ID + kind (a span sent twice before Tempo cut the block is stored
// twice: P18). Rows are converted while they are read, so it never fails
// (the error matches vparquet4's signature); the result may share memory
// with the row.
func (b *Block) OTLP(tr *Trace) (ptrace.Traces, error) {
	if !tr.repeats {
		return tr.otlp, nil
	}
	td, _ := pqread.DropRepeatedSpans(tr.otlp)
	return td, nil
}

// OTLPAll is OTLP keeping every stored span, repeats included: what a
// compactor carries over, as Tempo does. It returns the row's own traces.
func (b *Block) OTLPAll(tr *Trace) (ptrace.Traces, error) { return tr.otlp, nil }

func (b *Block) convert(row *pqread.Group) (*Trace, error) {
	tr := &Trace{
		TraceID:           row.Bytes("TraceID"),
		TraceIDText:       row.Str("TraceIDText"),
		StartTimeUnixNano: row.Uint64("StartTimeUnixNano"),
		EndTimeUnixNano:   row.Uint64("EndTimeUnixNano"),
		DurationNano:      row.Uint64("DurationNano"),
		RootServiceName:   row.Str("RootServiceName"),
		RootSpanName:      row.Str("RootSpanName"),
		otlp:              ptrace.NewTraces(),
	}
	if len(tr.TraceID) > 16 {
		return nil, b.data.Errorf(b.data.Key(), "trace id of %d bytes: at most 16 allowed", len(tr.TraceID))
	}
	if err := b.convertRow(row, pcommon.TraceID(tr.ID()), tr.otlp); err != nil {
		return nil, b.data.Errorf(b.data.Key(), "trace %s: %w", tr.ID(), err)
	}
	tr.repeats = pqread.HasRepeatedSpans(tr.otlp)
	return tr, nil
}

// Fixed resource columns and the attribute each holds (a string).
var resourceColumns = []struct{ column, attr string }{
	{"Cluster", "cluster"},
	{"Namespace", "namespace"},
	{"Pod", "pod"},
	{"Container", "container"},
	{"K8sClusterName", "k8s.cluster.name"},
	{"K8sNamespaceName", "k8s.namespace.name"},
	{"K8sPodName", "k8s.pod.name"},
	{"K8sContainerName", "k8s.container.name"},
}

func (b *Block) convertRow(row *pqread.Group, tid pcommon.TraceID, td ptrace.Traces) error {
	for _, rsG := range row.List("rs") {
		rs := td.ResourceSpans().AppendEmpty()
		resG := rsG.Group("Resource")
		attrs := rs.Resource().Attributes()
		if err := putAttrs(attrs, resG.List("Attrs")); err != nil {
			return fmt.Errorf("resource: %w", err)
		}
		pqread.PutDedicated(attrs, resG.Group("DedicatedAttributes"), b.slots[block.ScopeResource])
		if name := resG.Str("ServiceName"); name != "" {
			attrs.PutStr("service.name", name)
		}
		for _, c := range resourceColumns {
			if v, ok := resG.OptStr(c.column); ok {
				attrs.PutStr(c.attr, v)
			}
		}
		for _, ssG := range rsG.List("ss") {
			ss := rs.ScopeSpans().AppendEmpty()
			scG := ssG.Group("Scope")
			ss.Scope().SetName(scG.Str("Name"))
			ss.Scope().SetVersion(scG.Str("Version"))
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
	sp.SetTraceID(tid)
	sid := g.Bytes("SpanID")
	sp.SetSpanID(pqread.SpanID(sid))
	if p := g.Bytes("ParentSpanID"); len(p) > 0 {
		sp.SetParentSpanID(pqread.SpanID(p))
	}
	sp.SetName(g.Str("Name"))
	sp.SetKind(ptrace.SpanKind(g.Int64("Kind")))
	sp.TraceState().FromRaw(g.Str("TraceState"))
	start := g.Uint64("StartTimeUnixNano")
	sp.SetStartTimestamp(pcommon.Timestamp(start))
	sp.SetEndTimestamp(pcommon.Timestamp(start + g.Uint64("DurationNano")))
	sp.Status().SetCode(ptrace.StatusCode(g.Int64("StatusCode")))
	sp.Status().SetMessage(g.Str("StatusMessage"))

	attrs := sp.Attributes()
	if err := putAttrs(attrs, g.List("Attrs")); err != nil {
		return fmt.Errorf("span %x: %w", sid, err)
	}
	pqread.PutDedicated(attrs, g.Group("DedicatedAttributes"), b.slots[block.ScopeSpan])
	if v, ok := g.OptStr("HttpMethod"); ok {
		attrs.PutStr("http.method", v)
	}
	if v, ok := g.OptStr("HttpUrl"); ok {
		attrs.PutStr("http.url", v)
	}
	if v, ok := g.Value("HttpStatusCode"); ok {
		attrs.PutInt("http.status_code", v.Int64())
	}
	sp.SetDroppedAttributesCount(g.Uint32("DroppedAttributesCount"))

	for _, eG := range g.List("Events") {
		ev := sp.Events().AppendEmpty()
		ev.SetTimestamp(pcommon.Timestamp(eG.Uint64("TimeUnixNano")))
		ev.SetName(eG.Str("Name"))
		for _, aG := range eG.List("Attrs") {
			key := aG.Str("Key")
			raw, _ := aG.Value("Value")
			if err := pqread.AnyValueFromProtoOrJSON(raw.ByteArray(), ev.Attributes().PutEmpty(key)); err != nil {
				return fmt.Errorf("span %x event %q attribute %q: %w", sid, ev.Name(), key, err)
			}
		}
		ev.SetDroppedAttributesCount(eG.Uint32("DroppedAttributesCount"))
	}
	sp.SetDroppedEventsCount(g.Uint32("DroppedEventsCount"))

	if v, ok := g.Value("Links"); ok {
		if err := pqread.LinksFromProto(v.ByteArray(), sp.Links()); err != nil {
			return fmt.Errorf("span %x: %w", sid, err)
		}
	}
	sp.SetDroppedLinksCount(g.Uint32("DroppedLinksCount"))
	return nil
}

// putAttrs decodes vParquet3's attribute group: Key and one of Value,
// ValueInt, ValueDouble, ValueBool, or the protobuf-JSON of the whole
// AnyValue in ValueKVList or ValueArray. A key with none of them (a bytes
// value, which vParquet3 does not store) reads as an empty value.
func putAttrs(dst pcommon.Map, attrs []*pqread.Group) error {
	for _, a := range attrs {
		key := a.Str("Key")
		v := dst.PutEmpty(key)
		if s, ok := a.OptStr("Value"); ok {
			v.SetStr(s)
		} else if x, ok := a.Value("ValueInt"); ok {
			v.SetInt(x.Int64())
		} else if x, ok := a.Value("ValueDouble"); ok {
			v.SetDouble(x.Double())
		} else if x, ok := a.Value("ValueBool"); ok {
			v.SetBool(x.Boolean())
		} else if x, ok := a.Value("ValueKVList"); ok {
			if err := pqread.AnyValueFromJSON(x.ByteArray(), v); err != nil {
				return fmt.Errorf("attribute %q: %w", key, err)
			}
		} else if x, ok := a.Value("ValueArray"); ok {
			if err := pqread.AnyValueFromJSON(x.ByteArray(), v); err != nil {
				return fmt.Errorf("attribute %q: %w", key, err)
			}
		}
	}
	return nil
}
