package render

import (
	"io"
	"strconv"

	"github.com/charmbracelet/lipgloss"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// WriteSpanTable writes one line per span, in tree order (depth first,
// children by start time): span and parent IDs, depth, start offset from
// the trace's start, duration, kind, status, service and name. Spans whose
// parent is missing keep their parent ID; names are made safe for a
// terminal. styled asks for a styled header (see Table).
func WriteSpanTable(w io.Writer, td ptrace.Traces, r *lipgloss.Renderer, styled bool) error {
	t := BuildTree(td)
	tab := NewTable(w, r, styled)
	tab.Header("SPAN ID", "PARENT", "DEPTH", "START", "DURATION", "KIND", "STATUS", "SERVICE", "NAME")
	for _, n := range t.Nodes {
		if n.Missing {
			continue
		}
		parent := "-"
		if p := n.Span.ParentSpanID(); !p.IsEmpty() {
			parent = p.String()
		}
		tab.Row(
			n.Span.SpanID().String(),
			parent,
			strconv.Itoa(n.Depth),
			"+"+formatDuration(n.Start-t.Start),
			formatDuration(n.Duration()),
			kindName(n.Span.Kind()),
			statusText(n.Span.Status()),
			sanitize(n.Service),
			sanitize(n.Span.Name()),
		)
	}
	return tab.Flush()
}

func statusText(s ptrace.Status) string {
	switch s.Code() {
	case ptrace.StatusCodeError:
		return "error"
	case ptrace.StatusCodeOk:
		return "ok"
	}
	return "unset"
}
