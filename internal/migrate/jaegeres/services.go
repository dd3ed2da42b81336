package jaegeres

import (
	"context"
	"fmt"
	"slices"
)

// completeTraces reads, for a block about to be cut, the spans of other
// services of the traces --services selected, so each is written whole.
// They are outside the export's query (must_not the services), so no
// document is read twice; they count as Read and Related of their index.
func (m *migration) completeTraces(ctx context.Context, buf *blockBuf, indices []string) error {
	if len(m.o.Selection.Services) == 0 || len(buf.traces) == 0 {
		return nil
	}
	want := map[string]*traceBuf{}
	var forms []string
	for _, t := range buf.traces {
		for _, f := range append(TraceIDForms(t.id), t.forms...) {
			if want[f] == nil {
				want[f] = t
				forms = append(forms, f)
			}
		}
	}
	slices.Sort(forms)
	groups := newExporter(m.c, exportOptions{indices: indices}).groups
	for len(forms) > 0 {
		chunk := forms[:min(len(forms), 1024)]
		forms = forms[len(chunk):]
		q := m.o.Selection.relatedQuery(chunk)
		for _, group := range groups {
			hits, err := m.c.searchAll(ctx, group, q, m.dec)
			if err != nil {
				return fmt.Errorf("reading the other services' spans of the selected traces: %w", err)
			}
			for i := range hits {
				h := &hits[i]
				t := want[h.key]
				if t == nil {
					continue // not one of the forms asked for
				}
				is := buf.stats.index(h.index)
				is.Read++
				is.Related++
				buf.bytes += int64(h.size)
				m.read++
				if h.err != nil {
					buf.stats.skip(SkippedDoc{Index: h.index, ID: h.id, Reason: h.err.Error()})
					continue
				}
				t.add(h, &buf.stats)
			}
		}
	}
	return nil
}
