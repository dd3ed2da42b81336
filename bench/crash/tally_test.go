package main

import "testing"

func TestIDsAreUniqueAndCarryTheTrial(t *testing.T) {
	seen := map[[8]byte]bool{}
	for trial := uint32(0); trial < 3; trial++ {
		for seq := uint32(1); seq < 100; seq++ {
			id := spanIDFor(trial, seq)
			if id == ([8]byte{}) || seen[id] {
				t.Fatalf("span ID %x (trial %d, seq %d) zero or repeated", id, trial, seq)
			}
			seen[id] = true
			if got := trialOfSpan(id); got != trial {
				t.Fatalf("trialOfSpan(%x) = %d, want %d", id, got, trial)
			}
		}
	}
	if traceIDFor(7, 1, 2) == traceIDFor(7, 2, 1) {
		t.Fatal("trace IDs of different trials collide")
	}
}

func TestCountSpans(t *testing.T) {
	k := func(trial, seq uint32) spanKey {
		return spanKey{Trace: traceIDFor(1, trial, 1), Span: spanIDFor(trial, seq)}
	}
	acked := spanOrigin{AckMs: 5}
	notAcked := spanOrigin{AckMs: -1}
	origins := map[spanKey]spanOrigin{
		k(0, 1): acked,    // found once: fine
		k(0, 2): acked,    // lost
		k(0, 3): acked,    // returned twice
		k(0, 4): notAcked, // absent: allowed
		k(0, 5): notAcked, // present: allowed, counted
		k(1, 1): acked,    // stored twice, returned once: fine, raw duplicate
	}
	reader := map[spanKey]int{k(0, 1): 1, k(0, 3): 2, k(0, 5): 1, k(1, 1): 1, k(9, 9): 1}
	raw := map[spanKey]int{k(0, 1): 1, k(0, 3): 2, k(0, 5): 1, k(1, 1): 3, k(9, 9): 1}
	got, lost, dup, unknown := countSpans(origins, reader, raw)
	want := tally{SpansSent: 6, AckedSpans: 4, NotAckedSpans: 2, SpansFound: 5, AckedFound: 3, Lost: 1,
		Duplicated: 1, NotAckedFound: 1, Unknown: 1, RawDuplicated: 2, RawExtraCopies: 3}
	if got != want {
		t.Fatalf("countSpans:\n got %+v\nwant %+v", got, want)
	}
	if len(lost) != 1 || lost[0] != k(0, 2) || len(dup) != 1 || dup[0] != k(0, 3) || len(unknown) != 1 || unknown[0] != k(9, 9) {
		t.Fatalf("lost %v dup %v unknown %v", lost, dup, unknown)
	}
}
