package jaegeres

import (
	"context"
	"slices"
	"testing"

	"github.com/tracectl/tracectl/internal/migrate/jaegeres/estest"
)

// TestServicesSelectWholeTraces: --services payments migrates every trace
// with a payments span, whole (the spans of its other services too), and
// no other trace; --verify accounts for the other services' documents and
// compares the whole traces. Small blocks and pages put the selected
// traces in several blocks, read by PIT and by scroll.
func TestServicesSelectWholeTraces(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  estest.Config
	}{
		{"es8-pit", estest.Config{Version: "8.15.0"}},
		{"es6-scroll", estest.Config{Version: "6.8.23"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			es := startDataset(t, tc.cfg)
			b := memBucket(t)
			o := baseOptions(es, b)
			o.Selection.Services = []string{"payments"}
			o.Parallel, o.BatchSize, o.MaxBlockBytes = 2, 5, 8<<10
			o.Verify, o.VerifySample = true, 100
			s, err := Migrate(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			selected := func(_ string, services []string) bool { return slices.Contains(services, "payments") }
			assertExpectedWhere(t, b, selected)
			exp := loadExpected(t)
			var traces, spans int64
			for _, et := range exp.Traces {
				if selected("", et.Services) {
					traces++
					spans += int64(et.Spans)
				}
			}
			if s.Traces != traces || s.SpansWritten != spans {
				t.Errorf("summary: %d spans in %d traces, want %d in %d", s.SpansWritten, s.Traces, spans, traces)
			}
			var related int64
			for _, ix := range s.Indices {
				related += ix.Related
				if ix.Read-ix.Related != ix.Docs {
					t.Errorf("index %s: %d read - %d related ≠ %d payments documents", ix.Name, ix.Read, ix.Related, ix.Docs)
				}
			}
			if related == 0 {
				t.Error("no document of another service was read")
			}
			if s.Verify == nil || !s.Verify.OK || s.Verify.Matched == 0 {
				t.Errorf("verify: %+v", s.Verify)
			}
			if len(s.Blocks) < 2 {
				t.Errorf("%d blocks: the test wants several", len(s.Blocks))
			}
		})
	}
}
