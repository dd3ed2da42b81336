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

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/blocks/pqread"
	"github.com/tracectl/tracectl/internal/storage"
)

// maxStringSlots is the number of dedicated string columns per scope.
const maxStringSlots = 10

// Block reads one vParquet3 block. It is safe for concurrent use. Trace by
// ID, iteration and OTLP conversion come from pqread.Reader; this package
// supplies what vParquet3 rows mean.
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
	for _, scope := range []string{block.ScopeResource, block.ScopeSpan} {
		b.slots[scope] = pqread.Slots(meta.DedicatedColumns, scope, false, maxStringSlots, 0)
	}
	b.Reader = pqread.NewReader(bucket, meta, block.FormatVParquet3, b.convertRow)
	return b
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
	sid, _ := pqread.PutSpanFields(g, tid, sp)

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
