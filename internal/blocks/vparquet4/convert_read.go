package vparquet4

import (
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tracectl/tracectl/internal/blocks/block"
)

// ID returns the row's trace ID (left-padded to 16 bytes).
func (tr *Trace) ID() block.TraceID {
	id, _ := block.TraceIDFromBytes(tr.TraceID)
	return id
}

// SpanCount is the number of spans stored in the row.
func (tr *Trace) SpanCount() int {
	n := 0
	for i := range tr.ResourceSpans {
		for j := range tr.ResourceSpans[i].ScopeSpans {
			n += len(tr.ResourceSpans[i].ScopeSpans[j].Spans)
		}
	}
	return n
}

// resourceFixedColumns lists the resource fixed columns in the order Tempo
// emits them after generic and dedicated attributes.
var resourceFixedNames = []string{"cluster", "namespace", "pod", "container",
	"k8s.cluster.name", "k8s.namespace.name", "k8s.pod.name", "k8s.container.name"}

func resourceFixedValues(r *Resource) [8]*string {
	return [8]*string{r.Cluster, r.Namespace, r.Pod, r.Container,
		r.K8sClusterName, r.K8sNamespaceName, r.K8sPodName, r.K8sContainerName}
}

// appendOTLP converts a row back into OTLP (the inverse of the writer),
// mapping dedicated columns with ded (the block's own list). Repeats of a
// span ID + kind inside the row are dropped.
func appendOTLP(dst ptrace.Traces, tr *Trace, ded *dedicatedMap, keepRepeats bool) error {
	tid := pcommon.TraceID(tr.ID())
	seen := make(map[spanKey]struct{}, 64)
	for i := range tr.ResourceSpans {
		rs := &tr.ResourceSpans[i]
		ors := dst.ResourceSpans().AppendEmpty()
		res := ors.Resource()
		res.SetDroppedAttributesCount(uint32(rs.Resource.DroppedAttributesCount))
		ra := res.Attributes()
		ra.EnsureCapacity(len(rs.Resource.Attrs) + 4)
		if err := putAttrs(ra, rs.Resource.Attrs); err != nil {
			return err
		}
		for slot, name := range ded.resourceNames {
			if v := *rs.Resource.DedicatedAttributes.slot(slot); v != nil {
				ra.PutStr(name, *v)
			}
		}
		if rs.Resource.ServiceName != "" {
			ra.PutStr("service.name", rs.Resource.ServiceName)
		}
		for k, v := range resourceFixedValues(&rs.Resource) {
			if v != nil {
				ra.PutStr(resourceFixedNames[k], *v)
			}
		}
		for j := range rs.ScopeSpans {
			ss := &rs.ScopeSpans[j]
			oss := ors.ScopeSpans().AppendEmpty()
			sc := oss.Scope()
			sc.SetName(ss.Scope.Name)
			sc.SetVersion(ss.Scope.Version)
			sc.SetDroppedAttributesCount(uint32(ss.Scope.DroppedAttributesCount))
			if err := putAttrs(sc.Attributes(), ss.Scope.Attrs); err != nil {
				return err
			}
			spans := oss.Spans()
			spans.EnsureCapacity(len(ss.Spans))
			for k := range ss.Spans {
				sp := &ss.Spans[k]
				key := spanKey{kind: ptrace.SpanKind(sp.Kind)}
				copy(key.id[:], sp.SpanID)
				if _, dup := seen[key]; dup && !keepRepeats {
					continue
				}
				seen[key] = struct{}{}
				if err := convertSpanOut(spans.AppendEmpty(), sp, tid, ded); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func convertSpanOut(o ptrace.Span, sp *Span, tid pcommon.TraceID, ded *dedicatedMap) error {
	o.SetTraceID(tid)
	o.SetSpanID(spanIDOf(sp.SpanID))
	o.SetParentSpanID(spanIDOf(sp.ParentSpanID))
	o.SetName(sp.Name)
	o.SetKind(ptrace.SpanKind(sp.Kind))
	o.TraceState().FromRaw(sp.TraceState)
	o.SetStartTimestamp(pcommon.Timestamp(sp.StartTimeUnixNano))
	o.SetEndTimestamp(pcommon.Timestamp(sp.StartTimeUnixNano + sp.DurationNano))
	o.Status().SetCode(ptrace.StatusCode(sp.StatusCode))
	o.Status().SetMessage(sp.StatusMessage)
	o.SetDroppedAttributesCount(uint32(sp.DroppedAttributesCount))
	o.SetDroppedEventsCount(uint32(sp.DroppedEventsCount))
	o.SetDroppedLinksCount(uint32(sp.DroppedLinksCount))

	attrs := o.Attributes()
	attrs.EnsureCapacity(len(sp.Attrs) + 3)
	if err := putAttrs(attrs, sp.Attrs); err != nil {
		return err
	}
	for slot, name := range ded.spanNames {
		if v := *sp.DedicatedAttributes.slot(slot); v != nil {
			attrs.PutStr(name, *v)
		}
	}
	if sp.HttpMethod != nil {
		attrs.PutStr("http.method", *sp.HttpMethod)
	}
	if sp.HttpUrl != nil {
		attrs.PutStr("http.url", *sp.HttpUrl)
	}
	if sp.HttpStatusCode != nil {
		attrs.PutInt("http.status_code", *sp.HttpStatusCode)
	}

	if len(sp.Events) > 0 {
		evs := o.Events()
		evs.EnsureCapacity(len(sp.Events))
		for i := range sp.Events {
			e := &sp.Events[i]
			oe := evs.AppendEmpty()
			oe.SetTimestamp(pcommon.Timestamp(sp.StartTimeUnixNano + e.TimeSinceStartNano))
			oe.SetName(e.Name)
			oe.SetDroppedAttributesCount(uint32(e.DroppedAttributesCount))
			if err := putAttrs(oe.Attributes(), e.Attrs); err != nil {
				return err
			}
		}
	}
	if len(sp.Links) > 0 {
		ls := o.Links()
		ls.EnsureCapacity(len(sp.Links))
		for i := range sp.Links {
			l := &sp.Links[i]
			ol := ls.AppendEmpty()
			var lt pcommon.TraceID
			if len(l.TraceID) <= 16 {
				copy(lt[16-len(l.TraceID):], l.TraceID)
			}
			ol.SetTraceID(lt)
			ol.SetSpanID(spanIDOf(l.SpanID))
			ol.TraceState().FromRaw(l.TraceState)
			ol.SetDroppedAttributesCount(uint32(l.DroppedAttributesCount))
			if err := putAttrs(ol.Attributes(), l.Attrs); err != nil {
				return err
			}
		}
	}
	return nil
}

// spanIDOf left-pads up to 8 raw bytes into a span ID (longer input keeps
// its last 8 bytes).
func spanIDOf(b []byte) pcommon.SpanID {
	var id pcommon.SpanID
	if len(b) > 8 {
		b = b[len(b)-8:]
	}
	copy(id[8-len(b):], b)
	return id
}

func putAttrs(m pcommon.Map, attrs []Attribute) error {
	for i := range attrs {
		if err := attrToValue(&attrs[i], m.PutEmpty(attrs[i].Key)); err != nil {
			return err
		}
	}
	return nil
}
