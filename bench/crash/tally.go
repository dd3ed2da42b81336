package main

import (
	"encoding/binary"
	"encoding/hex"
	"sort"
)

// spanKey identifies one span the harness sent: trace ID and span ID.
// Span IDs are unique within a run (they embed the trial), so the kind is
// not part of the key.
type spanKey struct {
	Trace [16]byte
	Span  [8]byte
}

func (k spanKey) String() string {
	return hex.EncodeToString(k.Trace[:]) + "/" + hex.EncodeToString(k.Span[:])
}

// traceIDFor builds a trace ID unique to (run, trial, seq): 8 bytes of run
// nonce, 4 of trial, 4 of the trace's sequence number within the trial.
func traceIDFor(run uint64, trial, seq uint32) [16]byte {
	var id [16]byte
	binary.BigEndian.PutUint64(id[0:], run)
	binary.BigEndian.PutUint32(id[8:], trial)
	binary.BigEndian.PutUint32(id[12:], seq)
	return id
}

// spanIDFor builds a span ID unique within a run: the trial in the high 32
// bits, the span's sequence number (from 1) in the low 32. Never zero.
func spanIDFor(trial, seq uint32) [8]byte {
	var id [8]byte
	binary.BigEndian.PutUint32(id[0:], trial+1)
	binary.BigEndian.PutUint32(id[4:], seq)
	return id
}

// trialOfSpan returns the trial a span ID was made for by spanIDFor.
func trialOfSpan(id [8]byte) uint32 { return binary.BigEndian.Uint32(id[0:]) - 1 }

// spanOrigin is what the harness knows about a span it sent.
type spanOrigin struct {
	Trial    int    `json:"trial"`
	Protocol string `json:"protocol"`
	// SentMs is when the request carrying it was sent, in ms after the
	// trial's serve was ready.
	SentMs int64 `json:"sent_ms"`
	// AckMs is when it was acknowledged (same origin), -1 when it was not.
	AckMs int64 `json:"ack_ms"`
}

// tally is the verdict on a run: what was acknowledged against what a
// reader returns (judged) and against raw stored copies (reported).
type tally struct {
	SpansSent         int `json:"spans_sent"`
	AckedSpans        int `json:"acked_spans"`
	NotAckedSpans     int `json:"not_acked_spans"`
	SpansFound        int `json:"spans_found"`         // distinct spans a reader returns
	AckedFound        int `json:"acked_found"`         // acknowledged spans a reader returns
	Lost              int `json:"lost"`                // acknowledged, not returned: must be 0
	Duplicated        int `json:"duplicated"`          // acknowledged, returned more than once: must be 0
	NotAckedFound     int `json:"not_acked_found"`     // sent, not acknowledged, returned anyway (allowed)
	NotAckedDuplicate int `json:"not_acked_duplicate"` // sent, not acknowledged, returned more than once
	Unknown           int `json:"unknown"`             // returned but never sent by this run: must be 0
	RawDuplicated     int `json:"raw_duplicated"`      // spans stored more than once in the blocks (reader combines them)
	RawExtraCopies    int `json:"raw_extra_copies"`    // stored copies beyond the first
}

// countSpans compares what was sent (origins; AckMs ≥ 0 means acknowledged)
// with what a reader returns (reader: returned copies per span after the
// reader's combine) and what the blocks hold (raw: stored copies per span).
// It returns the figures and the keys of lost, duplicated and unknown spans,
// sorted.
func countSpans(origins map[spanKey]spanOrigin, reader, raw map[spanKey]int) (t tally, lost, dup, unknown []spanKey) {
	t.SpansSent = len(origins)
	for k, o := range origins {
		n := reader[k]
		if o.AckMs >= 0 {
			t.AckedSpans++
			switch {
			case n == 0:
				t.Lost++
				lost = append(lost, k)
			case n == 1:
				t.AckedFound++
			default:
				t.AckedFound++
				t.Duplicated++
				dup = append(dup, k)
			}
		} else {
			t.NotAckedSpans++
			if n > 0 {
				t.NotAckedFound++
			}
			if n > 1 {
				t.NotAckedDuplicate++
			}
		}
	}
	for k, n := range reader {
		if n > 0 {
			t.SpansFound++
		}
		if _, ok := origins[k]; !ok && n > 0 {
			t.Unknown++
			unknown = append(unknown, k)
		}
	}
	for _, n := range raw {
		if n > 1 {
			t.RawDuplicated++
			t.RawExtraCopies += n - 1
		}
	}
	for _, s := range [][]spanKey{lost, dup, unknown} {
		sort.Slice(s, func(i, j int) bool { return s[i].String() < s[j].String() })
	}
	return t, lost, dup, unknown
}
