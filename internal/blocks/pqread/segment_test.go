package pqread

import (
	"runtime"
	"testing"
	"weak"
)

// DropData (and Rebind, which idle readers go through) must let the
// dropped segments' bytes be collected: an idle reader is kept per block
// for reuse, and a truncated slice of segments would keep the last row
// group it read alive in its backing array.
func TestDropDataReleasesSegments(t *testing.T) {
	for _, name := range []string{"DropData", "Rebind"} {
		t.Run(name, func(t *testing.T) {
			const size = 1 << 30
			c := NewSegmentReaderAt(nil, size)
			c.Add(size-8, make([]byte, 8)) // the footer, kept
			big := make([]byte, 4<<20)
			wp := weak.Make(&big[0])
			c.Add(0, big)
			big = nil
			if name == "DropData" {
				c.DropData()
			} else {
				c.Rebind(nil)
			}
			runtime.GC()
			runtime.GC()
			if wp.Value() != nil {
				t.Errorf("after %s the dropped segment's 4 MiB are still reachable", name)
			}
			if !c.Covers(size-8, 8) || c.Covers(0, 1) {
				t.Errorf("after %s: footer kept %v, data dropped %v", name, c.Covers(size-8, 8), !c.Covers(0, 1))
			}
			runtime.KeepAlive(c)
		})
	}
}
