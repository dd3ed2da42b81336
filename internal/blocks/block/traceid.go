package block

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"strings"
)

// TraceID is a trace ID as Tempo stores it: 16 bytes, shorter IDs left-padded
// with zero bytes. Its natural order (bytes.Compare) is the row order of
// every data.parquet.
type TraceID [16]byte

// ParseTraceID parses 1 to 32 hex digits in any case, left-padding with
// zeros, as Tempo's API accepts them ("5b8efff798038103" is
// 00000000000000005b8efff798038103).
func ParseTraceID(s string) (TraceID, error) {
	var id TraceID
	if len(s) == 0 || len(s) > 32 {
		return id, fmt.Errorf("trace id %q: want 1 to 32 hex digits, got %d", s, len(s))
	}
	var buf [32]byte
	for i := range buf {
		buf[i] = '0'
	}
	copy(buf[32-len(s):], s)
	if _, err := hex.Decode(id[:], buf[:]); err != nil {
		return TraceID{}, fmt.Errorf("trace id %q: not hexadecimal", s)
	}
	return id, nil
}

// TraceIDFromBytes converts raw ID bytes (at most 16) to a TraceID,
// left-padding shorter IDs with zero bytes.
func TraceIDFromBytes(b []byte) (TraceID, error) {
	var id TraceID
	if len(b) > 16 {
		return id, fmt.Errorf("trace id of %d bytes: at most 16 allowed", len(b))
	}
	copy(id[16-len(b):], b)
	return id, nil
}

// Hex is the full 32-digit lowercase hex form.
func (id TraceID) Hex() string { return hex.EncodeToString(id[:]) }

// String is the same as Hex.
func (id TraceID) String() string { return id.Hex() }

// Text is the lowercase hex form without leading zeros, as Tempo's
// TraceIDText column and search results print it (possibly of odd length;
// the all-zero ID gives "").
func (id TraceID) Text() string { return strings.TrimLeft(id.Hex(), "0") }

// Compare orders IDs as their bytes: -1, 0 or +1.
func (id TraceID) Compare(other TraceID) int { return bytes.Compare(id[:], other[:]) }

// IsZero reports whether every byte is zero.
func (id TraceID) IsZero() bool { return id == TraceID{} }
