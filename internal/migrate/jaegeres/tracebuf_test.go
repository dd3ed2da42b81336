package jaegeres

import (
	"testing"
	"time"

	"github.com/jaegertracing/jaeger/model"
)

// TestTraceBufDropsRepeats: a span whose key (ID, start, duration,
// service, operation) came before is counted as a duplicate, below and
// above the size where the keys go in a map; one differing in any part
// of the key is kept.
func TestTraceBufDropsRepeats(t *testing.T) {
	for _, n := range []int{3, seenAfter - 1, seenAfter, seenAfter + 1, 3 * seenAfter} {
		tb := &traceBuf{id: model.TraceID{Low: 1}}
		var st stats
		base := time.Unix(1700000000, 0).UTC()
		span := func(i int, svc, op string, dur time.Duration) *hit {
			return &hit{index: "ix", span: &model.Span{SpanID: model.SpanID(i + 1), StartTime: base.Add(time.Duration(i) * time.Millisecond),
				Duration: dur, OperationName: op, Process: &model.Process{ServiceName: svc}}}
		}
		for i := range n {
			tb.add(span(i, "a", "op", time.Second), &st)
		}
		for i := range n { // exact repeats
			tb.add(span(i, "a", "op", time.Second), &st)
		}
		for i := range n { // the same IDs with another service, operation or duration
			tb.add(span(i, "b", "op", time.Second), &st)
			tb.add(span(i, "a", "op2", time.Second), &st)
			tb.add(span(i, "a", "op", 2*time.Second), &st)
		}
		tb.add(span(0, "b", "op", time.Second), &st) // a repeat of a later add
		is := st.index("ix")
		if want := 4 * n; len(tb.spans) != want || is.Written != int64(want) {
			t.Errorf("%d spans: kept %d (written %d), want %d", n, len(tb.spans), is.Written, want)
		}
		if is.Duplicates != int64(n+1) {
			t.Errorf("%d spans: %d duplicates, want %d", n, is.Duplicates, n+1)
		}
	}
}
