package server

import (
	"context"
	"fmt"
	"reflect"
	"sort"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/headtags"
)

// oneSpan is a request of one span of trace id from service svc.
func oneSpan(id byte, svc string, n int) ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", svc)
	sp := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	sp.SetTraceID(pcommon.TraceID{id, 0x7a})
	sp.SetSpanID(pcommon.SpanID{byte(n >> 8), byte(n), 1})
	sp.SetName("op")
	now := time.Now()
	sp.SetStartTimestamp(pcommon.NewTimestampFromTime(now))
	sp.SetEndTimestamp(pcommon.NewTimestampFromTime(now.Add(time.Millisecond)))
	return td
}

// headServices is the set of service names the index gives, and the set
// found by reading the head span by span.
func headServices(t *testing.T, s *Server, tenant string) (indexed, scanned []string) {
	t.Helper()
	ok := s.HeadTags(tenant).Values(tenant, headtags.Resource, "service.name", func(v headtags.Value) {
		indexed = append(indexed, v.Value)
	})
	if !ok {
		t.Fatal("the index says it is short; no bound was passed")
	}
	seen := map[string]bool{}
	s.ForEachHeadTrace(tenant, func(_ block.TraceID, parts []ptrace.Traces) bool {
		for _, td := range parts {
			for i := 0; i < td.ResourceSpans().Len(); i++ {
				v, _ := td.ResourceSpans().At(i).Resource().Attributes().Get("service.name")
				seen[v.Str()] = true
			}
		}
		return true
	})
	for v := range seen {
		scanned = append(scanned, v)
	}
	sort.Strings(indexed)
	sort.Strings(scanned)
	return indexed, scanned
}

// TestHeadTagsFollowHead: with ingest, tag queries, partial cuts and
// flushes running at once, the index holds exactly the values of the
// spans not yet stored, and is empty once everything is stored.
func TestHeadTagsFollowHead(t *testing.T) {
	s := newServer(t, Config{Bucket: open(t, "mem://"), WALDir: t.TempDir(), IngestionRateBytes: -1,
		MaxBlockDuration: time.Hour, TraceIdlePeriod: time.Millisecond})
	defer s.Shutdown(context.Background())
	ctx := context.Background()
	const writers, perWriter = 4, 150
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < perWriter; i++ {
				// 20 traces shared by all writers: traces get many pieces.
				n := w*perWriter + i
				if err := s.Consume(ctx, "t", oneSpan(byte(n%20), fmt.Sprintf("svc-%d", n), n)); err != nil {
					t.Error(err)
					return
				}
			}
		}(w)
	}
	var bg sync.WaitGroup
	bg.Add(2)
	go func() {
		defer bg.Done()
		for {
			select {
			case <-stop:
				return
			default:
				s.HeadTags("t")
			}
		}
	}()
	go func() {
		defer bg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
			var err error
			if i%3 == 0 {
				err = s.Flush(ctx)
			} else if err = s.cut(false); err == nil {
				err = s.flushPending(ctx)
			}
			if err != nil {
				t.Error(err)
				return
			}
		}
	}()
	wg.Wait()
	close(stop)
	bg.Wait()
	// The flusher may have stored everything before it stopped; a last
	// batch, half into traces that already had pieces, makes sure the
	// head holds something the check below can compare. Values left
	// behind by wrongly counted pieces would still show.
	for n := writers * perWriter; n < writers*perWriter+40; n++ {
		if err := s.Consume(ctx, "t", oneSpan(byte(n%40), fmt.Sprintf("svc-%d", n), n)); err != nil {
			t.Fatal(err)
		}
	}

	indexed, scanned := headServices(t, s, "t")
	if len(scanned) < 40 {
		t.Fatalf("the head holds %d services, want at least the last 40", len(scanned))
	}
	if !reflect.DeepEqual(indexed, scanned) {
		t.Fatalf("index and head disagree:\nindex %d values %v\n head %d values %v", len(indexed), indexed, len(scanned), scanned)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if indexed, _ := headServices(t, s, "t"); len(indexed) != 0 {
		t.Fatalf("everything is stored, yet the index holds %d values", len(indexed))
	}
	if n, v := s.tags.Len("t"); n != 0 || v != 0 {
		t.Fatalf("everything is stored, yet the index holds %d names and %d values", n, v)
	}
}
