package search

import (
	"context"
	"net/url"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/headtags"
	"github.com/tracectl/tracectl/internal/otlptest"
	"github.com/tracectl/tracectl/internal/server"
	"github.com/tracectl/tracectl/internal/storage/storagetest"
	"github.com/tracectl/tracectl/internal/wal"
)

// scanOnly is a head without its tag index: the engine reads it span by
// span, the reference the index must agree with.
type scanOnly struct{ h HeadSource }

func (s scanOnly) ForEachHeadTrace(tenant string, fn func(id block.TraceID, parts []ptrace.Traces) bool) {
	s.h.ForEachHeadTrace(tenant, fn)
}

// countingHead is the server with its index, counting span-by-span reads.
type countingHead struct {
	h interface {
		HeadSource
		HeadTagSource
	}
	scans atomic.Int64
}

func (c *countingHead) ForEachHeadTrace(tenant string, fn func(id block.TraceID, parts []ptrace.Traces) bool) {
	c.scans.Add(1)
	c.h.ForEachHeadTrace(tenant, fn)
}

func (c *countingHead) HeadTags(tenant string) *headtags.Index { return c.h.HeadTags(tenant) }

// oddTraces holds what the corpus lacks: values of every type, the same
// name in several scopes, a service.name that is an int or empty, event,
// link and scope attributes, a status message, and a resource without
// spans (its attributes are not tags).
func oddTraces() ptrace.Traces {
	td := ptrace.NewTraces()
	id := pcommon.TraceID{0x0d, 0xd1}
	add := func(svc func(rs ptrace.ResourceSpans), span func(sp ptrace.Span)) {
		rs := td.ResourceSpans().AppendEmpty()
		svc(rs)
		ss := rs.ScopeSpans().AppendEmpty()
		ss.Scope().SetName("odd-lib")
		ss.Scope().Attributes().PutStr("odd.scope", "s1")
		sp := ss.Spans().AppendEmpty()
		sp.SetTraceID(id)
		sp.SetSpanID([8]byte{byte(td.ResourceSpans().Len()), 1})
		sp.SetStartTimestamp(1795170000_000000000)
		sp.SetEndTimestamp(1795170001_000000000)
		span(sp)
	}
	add(func(rs ptrace.ResourceSpans) {
		rs.Resource().Attributes().PutStr("service.name", "odd-svc")
		rs.Resource().Attributes().PutStr("odd.both", "from-resource")
		rs.Resource().Attributes().PutBool("odd.bool", true)
	}, func(sp ptrace.Span) {
		sp.SetName("odd op")
		sp.SetKind(ptrace.SpanKindProducer)
		sp.Status().SetCode(ptrace.StatusCodeError)
		sp.Status().SetMessage("odd failure")
		sp.Attributes().PutStr("odd.both", "from-span")
		sp.Attributes().PutInt("odd.int", 42)
		sp.Attributes().PutDouble("odd.float", 2.5)
		sp.Attributes().PutEmptySlice("odd.array").AppendEmpty().SetStr("x")
		sp.Attributes().PutStr("service.name", "span-level-svc")
		sp.Events().AppendEmpty().Attributes().PutStr("odd.event", "ev1")
		l := sp.Links().AppendEmpty()
		l.SetTraceID(pcommon.TraceID{0x0d, 0xd2})
		l.Attributes().PutStr("odd.link", "ln1")
	})
	add(func(rs ptrace.ResourceSpans) {
		rs.Resource().Attributes().PutInt("service.name", 123)
	}, func(sp ptrace.Span) {
		sp.SetName("")
		sp.SetParentSpanID([8]byte{1, 1})
	})
	add(func(rs ptrace.ResourceSpans) {
		rs.Resource().Attributes().PutStr("service.name", "")
	}, func(sp ptrace.Span) {
		sp.SetName("empty-svc op")
		sp.SetParentSpanID([8]byte{1, 1})
	})
	ghost := td.ResourceSpans().AppendEmpty()
	ghost.Resource().Attributes().PutStr("odd.ghost", "no spans")
	ghost.ScopeSpans().AppendEmpty()
	return td
}

// TestHeadTagIndexAgreesWithScan asks every tag query Grafana and users
// send of a live server, once through the server's tag index and once
// reading its head span by span, head alone and head with a block, on
// both engine paths: the answers must be equal, and the ones the index
// can answer must not read the head.
func TestHeadTagIndexAgreesWithScan(t *testing.T) {
	srv, b, metas, _ := liveServer(t)
	ctx := context.Background()
	if err := srv.Consume(ctx, "single-tenant", oddTraces()); err != nil {
		t.Fatal(err)
	}
	v2Tags := []string{"resource.service.name", "span.service.name", ".service.name", "name", "status", "kind",
		"statusMessage", "rootName", "rootServiceName", "duration", "span.http.status_code", ".odd.both",
		"span.odd.both", "resource.odd.both", "span.odd.int", ".odd.float", "resource.odd.bool", "span.odd.array",
		".odd.event", "resource.odd.ghost", "span.no.such.tag"}
	v1Tags := []string{"service.name", "odd.both", "odd.int", "odd.scope", "odd.event", "odd.link", "odd.ghost", "http.method"}
	// Values the index cannot answer: the roots of traces.
	scans := map[string]bool{"rootName": true, "rootServiceName": true}
	nonEmpty := 0
	for _, generic := range []bool{false, true} {
		e := NewEngine(b, Options{Generic: generic})
		for _, ms := range [][]*block.Meta{nil, metas} {
			ch := &countingHead{h: srv}
			for _, q := range []url.Values{{}, {"scope": {"span"}}, {"scope": {"resource"}}, {"scope": {"intrinsic"}},
				{"q": {"{}"}}, {"limit": {"3"}}} {
				req, err := ParseTagsRequest(q)
				if err != nil {
					t.Fatal(err)
				}
				got, err := e.TagNames(ctx, "single-tenant", ms, ch, req)
				if err != nil {
					t.Fatal(err)
				}
				want, err := e.TagNames(ctx, "single-tenant", ms, scanOnly{srv}, req)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got.Scopes, want.Scopes) || !reflect.DeepEqual(got.V1(), want.V1()) {
					t.Errorf("generic=%v blocks=%d names %v:\nindex %v\n scan %v", generic, len(ms), q, got.Scopes, want.Scopes)
				}
			}
			if n := ch.scans.Load(); n != 0 {
				t.Errorf("generic=%v blocks=%d: tag names read the head %d times, want 0 (the index answers)", generic, len(ms), n)
			}
			ask := func(tag string, v2 bool, q url.Values) {
				req, err := ParseTagValuesRequest(tag, v2, q)
				if err != nil {
					t.Fatal(err)
				}
				before := ch.scans.Load()
				got, err := e.TagValues(ctx, "single-tenant", ms, ch, req)
				if err != nil {
					t.Fatal(err)
				}
				want, err := e.TagValues(ctx, "single-tenant", ms, scanOnly{srv}, req)
				if err != nil {
					t.Fatal(err)
				}
				if len(got.Values) > 0 {
					nonEmpty++
				}
				if !reflect.DeepEqual(got.Values, want.Values) {
					t.Errorf("generic=%v blocks=%d v2=%v %s %v:\nindex %v\n scan %v", generic, len(ms), v2, tag, q, got.Values, want.Values)
				}
				if scanned := ch.scans.Load() > before; scanned != scans[tag] {
					t.Errorf("generic=%v blocks=%d v2=%v %s: head read span by span %v, want %v", generic, len(ms), v2, tag, scanned, scans[tag])
				}
			}
			for _, tag := range v2Tags {
				ask(tag, true, url.Values{})
				ask(tag, true, url.Values{"q": {"{}"}})
			}
			for _, tag := range v1Tags {
				ask(tag, false, url.Values{})
			}
		}
	}
	if nonEmpty < 40 {
		t.Fatalf("only %d answers had values: the comparison is too weak", nonEmpty)
	}
}

// BenchmarkHeadTagQueries measures one tag-names and one tag-values query
// over a head of 200 corpus passes (143,000 spans), reading the head span
// by span (scan) and through the server's index: when nothing arrived
// since the last query (idle), and when one more corpus pass arrived
// (+715 spans, about what 0.06 s of a 12,000 spans/s load adds between
// two queries).
func BenchmarkHeadTagQueries(b *testing.B) {
	corpus := otlptest.LoadCorpus(b)
	ctx := context.Background()
	srv, err := server.New(server.Config{Bucket: storagetest.OpenMem(b), WALDir: b.TempDir(), Registry: prometheus.NewRegistry(),
		IngestionRateBytes: -1, MaxLiveBytes: -1, MaxBlockDuration: time.Hour, WAL: wal.Options{Sync: wal.SyncNone}})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Shutdown(ctx)
	pass := 0
	addPass := func() {
		pass++
		for _, td := range corpus.Lines {
			cp := ptrace.NewTraces()
			td.CopyTo(cp)
			for _, rs := range cp.ResourceSpans().All() {
				for _, ss := range rs.ScopeSpans().All() {
					for _, sp := range ss.Spans().All() {
						id := sp.TraceID()
						id[13], id[14], id[15] = byte(pass>>16), byte(pass>>8), byte(pass)
						sp.SetTraceID(id)
					}
				}
			}
			if err := srv.Consume(ctx, "t", cp); err != nil {
				b.Fatal(err)
			}
		}
	}
	for range 200 {
		addPass()
	}
	names, err := ParseTagsRequest(url.Values{})
	if err != nil {
		b.Fatal(err)
	}
	values, err := ParseTagValuesRequest("resource.service.name", true, url.Values{"q": {"{}"}})
	if err != nil {
		b.Fatal(err)
	}
	e := NewEngine(storagetest.OpenMem(b), Options{})
	query := func(b *testing.B, head HeadSource) {
		if _, err := e.TagNames(ctx, "t", nil, head, names); err != nil {
			b.Fatal(err)
		}
		got, err := e.TagValues(ctx, "t", nil, head, values)
		if err != nil {
			b.Fatal(err)
		}
		if len(got.Values) < 10 {
			b.Fatalf("%d service names", len(got.Values))
		}
	}
	b.Run("scan", func(b *testing.B) {
		for range b.N {
			query(b, scanOnly{srv})
		}
	})
	b.Run("index-idle", func(b *testing.B) {
		query(b, srv)
		b.ResetTimer()
		for range b.N {
			query(b, srv)
		}
	})
	b.Run("index-new-pass", func(b *testing.B) {
		for range b.N {
			b.StopTimer()
			addPass()
			b.StartTimer()
			query(b, srv)
		}
	})
}
