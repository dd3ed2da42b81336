package jaegeres

import (
	"context"
	"encoding/hex"
	"fmt"
	"reflect"
	"slices"

	"github.com/jaegertracing/jaeger/model"
	jaegertranslator "github.com/open-telemetry/opentelemetry-collector-contrib/pkg/translator/jaeger"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tracectl/tracectl/internal/blocks"
	"github.com/tracectl/tracectl/internal/blocks/block"
)

// VerifyResult is what --verify found.
type VerifyResult struct {
	Indices  []IndexCheck `json:"indices"`
	Sampled  int          `json:"sampledTraces"`
	Matched  int          `json:"matchedTraces"`
	Problems []string     `json:"problems"`
	OK       bool         `json:"ok"`
}

// IndexCheck compares an index's _count now with what was accounted.
type IndexCheck struct {
	Index string `json:"index"`
	Count int64  `json:"count"`
	IndexStats
	OK bool `json:"ok"`
}

// ErrVerify is returned when --verify finds a difference.
var ErrVerify = fmt.Errorf("verification failed")

func (m *migration) verify(ctx context.Context) (*VerifyResult, error) {
	r := &VerifyResult{Problems: []string{}}
	q := m.o.Selection.query(nil)
	var names []string
	for _, ix := range m.indices {
		names = append(names, ix.Name)
		n, err := m.c.Count(ctx, []string{ix.Name}, q)
		if err != nil {
			return r, err
		}
		ic := IndexCheck{Index: ix.Name, Count: n}
		if v := m.cp.Stats.Indices[ix.Name]; v != nil {
			ic.IndexStats = *v
		}
		ic.OK = ic.Count == ic.Read-ic.Related && ic.Read == ic.Written+ic.Duplicates+ic.Skipped
		if !ic.OK {
			r.Problems = append(r.Problems, fmt.Sprintf("%s: %d documents in Elasticsearch, %d read (%d of them of other services, completing traces) = %d spans written + %d duplicates + %d skipped", ix.Name, ic.Count, ic.Read, ic.Related, ic.Written, ic.Duplicates, ic.Skipped))
		}
		r.Indices = append(r.Indices, ic)
	}
	listing, err := blocks.List(ctx, m.o.Bucket, m.o.Tenant, blocks.ListOptions{})
	if err != nil {
		return r, err
	}
	var metas []*block.Meta
	for _, b := range listing.Blocks {
		metas = append(metas, b.Meta)
	}
	sample := m.cp.Sample
	if len(sample) > m.o.VerifySample {
		sample = sample[:m.o.VerifySample]
	}
	for _, s := range sample {
		id, err := ParseTraceID(s)
		if err != nil {
			continue
		}
		r.Sampled++
		problems, err := m.verifyTrace(ctx, names, metas, id)
		if err != nil {
			return r, err
		}
		if len(problems) == 0 {
			r.Matched++
		}
		r.Problems = append(r.Problems, problems...)
	}
	r.OK = len(r.Problems) == 0
	if !r.OK {
		return r, fmt.Errorf("%w: %d problems (first: %s)", ErrVerify, len(r.Problems), r.Problems[0])
	}
	return r, nil
}

// verifyTrace reads one trace from Elasticsearch (every stored form of its
// ID, every service: --services selects whole traces) and from the blocks,
// and compares them span by span.
func (m *migration) verifyTrace(ctx context.Context, indices []string, metas []*block.Meta, id model.TraceID) ([]string, error) {
	q := m.o.Selection.traceQuery(TraceIDForms(id))
	tb := &traceBuf{id: id, seen: map[spanKey]bool{}}
	var st stats
	for _, group := range newExporter(m.c, exportOptions{indices: indices}).groups {
		hits, err := m.c.searchAll(ctx, group, q, m.dec)
		if err != nil {
			return nil, fmt.Errorf("verify: reading trace %s from %s: %w", id, m.c, err)
		}
		for i := range hits {
			if hits[i].err == nil {
				tb.add(&hits[i], &st)
			}
		}
	}
	want, err := jaegertranslator.ProtoToTraces([]*model.Batch{{Spans: tb.spans}})
	if err != nil {
		return nil, err
	}
	res, err := blocks.FindTrace(ctx, m.o.Bucket, metas, block.TraceID(toOTLPID(id)), blocks.FindOptions{})
	if err != nil {
		return nil, fmt.Errorf("verify: reading trace %s from the blocks: %w", id, err)
	}
	return compareTraces(id.String(), want, res.Trace), nil
}

type flatSpan struct {
	sp       ptrace.Span
	resource map[string]any
	scope    string
}

func flatten(td ptrace.Traces) map[string][]flatSpan {
	out := map[string][]flatSpan{}
	for _, rs := range td.ResourceSpans().All() {
		res := rs.Resource().Attributes().AsRaw()
		for _, ss := range rs.ScopeSpans().All() {
			scope := ss.Scope().Name() + "@" + ss.Scope().Version()
			for _, sp := range ss.Spans().All() {
				id := sp.SpanID()
				k := hex.EncodeToString(id[:])
				out[k] = append(out[k], flatSpan{sp: sp, resource: res, scope: scope})
			}
		}
	}
	return out
}

// compareTraces lists the differences between the spans of want (from
// Elasticsearch) and got (from the blocks).
func compareTraces(name string, want, got ptrace.Traces) []string {
	var problems []string
	w, g := flatten(want), flatten(got)
	keys := make([]string, 0, len(w))
	for k := range w {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		gs := g[k]
		for _, ws := range w[k] {
			i := slices.IndexFunc(gs, func(f flatSpan) bool {
				return f.sp.StartTimestamp() == ws.sp.StartTimestamp() && f.sp.Kind() == ws.sp.Kind()
			})
			if i < 0 {
				problems = append(problems, fmt.Sprintf("trace %s: span %s is in Elasticsearch but not in the blocks", name, k))
				continue
			}
			if d := diffSpan(ws, gs[i]); d != "" {
				problems = append(problems, fmt.Sprintf("trace %s: span %s: %s", name, k, d))
			}
		}
	}
	for k := range g {
		if _, ok := w[k]; !ok {
			problems = append(problems, fmt.Sprintf("trace %s: span %s is in the blocks but not in Elasticsearch", name, k))
		}
	}
	return problems
}

func diffSpan(a, b flatSpan) string {
	x, y := a.sp, b.sp
	switch {
	case x.Name() != y.Name():
		return fmt.Sprintf("name %q ≠ %q", x.Name(), y.Name())
	case x.EndTimestamp() != y.EndTimestamp():
		return fmt.Sprintf("end %v ≠ %v", x.EndTimestamp(), y.EndTimestamp())
	case x.ParentSpanID() != y.ParentSpanID():
		return fmt.Sprintf("parent %v ≠ %v", x.ParentSpanID(), y.ParentSpanID())
	case x.Status().Code() != y.Status().Code() || x.Status().Message() != y.Status().Message():
		return "status differs"
	case x.TraceState().AsRaw() != y.TraceState().AsRaw():
		return "trace state differs"
	case !reflect.DeepEqual(x.Attributes().AsRaw(), y.Attributes().AsRaw()):
		return fmt.Sprintf("attributes %v ≠ %v", x.Attributes().AsRaw(), y.Attributes().AsRaw())
	case !reflect.DeepEqual(a.resource, b.resource):
		return fmt.Sprintf("resource %v ≠ %v", a.resource, b.resource)
	case a.scope != b.scope:
		return fmt.Sprintf("scope %s ≠ %s", a.scope, b.scope)
	case x.Events().Len() != y.Events().Len():
		return fmt.Sprintf("%d events ≠ %d", x.Events().Len(), y.Events().Len())
	case x.Links().Len() != y.Links().Len():
		return fmt.Sprintf("%d links ≠ %d", x.Links().Len(), y.Links().Len())
	}
	for i := range x.Events().Len() {
		ex, ey := x.Events().At(i), y.Events().At(i)
		if ex.Name() != ey.Name() || ex.Timestamp() != ey.Timestamp() || !reflect.DeepEqual(ex.Attributes().AsRaw(), ey.Attributes().AsRaw()) {
			return fmt.Sprintf("event %d differs", i)
		}
	}
	return ""
}
