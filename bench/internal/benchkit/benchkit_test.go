package benchkit

import (
	"math/rand/v2"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"
)

func spanIDs(td ptrace.Traces) map[[8]byte]int {
	out := map[[8]byte]int{}
	for _, rs := range td.ResourceSpans().All() {
		for _, ss := range rs.ScopeSpans().All() {
			for _, sp := range ss.Spans().All() {
				out[sp.SpanID()]++
			}
		}
	}
	return out
}

// TestPartsMakeTheWholeTrace: the two parts of a split trace, made from
// rngs of one seed, hold exactly the whole trace's spans, and dup repeats
// one span of the first part in the second.
func TestPartsMakeTheWholeTrace(t *testing.T) {
	start := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	for seed := uint64(1); seed <= 20; seed++ {
		id := TraceID(rand.New(rand.NewPCG(seed, 9)))
		rng := func() *rand.Rand { return rand.New(rand.NewPCG(seed, 1)) }
		whole := spanIDs(Trace(rng(), id, 10, start))
		if len(whole) != 10 {
			t.Fatalf("seed %d: whole trace has %d distinct spans, want 10", seed, len(whole))
		}
		cut := 1 + int(seed%9)
		for _, dup := range []bool{false, true} {
			repeated := 0
			if dup {
				repeated = 1
			}
			a := spanIDs(TracePart(rng(), id, 10, start, 0, cut, false))
			b := spanIDs(TracePart(rng(), id, 10, start, cut, 10, dup))
			if len(a) != cut || len(b) != 10-cut+repeated {
				t.Fatalf("seed %d cut %d dup %v: parts of %d and %d spans", seed, cut, dup, len(a), len(b))
			}
			shared := 0
			for sid := range b {
				if a[sid] > 0 {
					shared++
				}
				a[sid]++
			}
			if shared != repeated {
				t.Fatalf("seed %d cut %d dup %v: %d spans in both parts", seed, cut, dup, shared)
			}
			for sid := range whole {
				if a[sid] == 0 {
					t.Fatalf("seed %d cut %d: span %x of the whole trace is in neither part", seed, cut, sid)
				}
			}
			if len(a) != len(whole) {
				t.Fatalf("seed %d cut %d: parts hold %d distinct spans, the whole trace %d", seed, cut, len(a), len(whole))
			}
		}
	}
}
