package render

import (
	"fmt"
	"io"
	"strings"

	"github.com/charmbracelet/lipgloss"
)

// Table writes aligned columns. On a terminal the header is styled through
// the given renderer (which decides whether colour is allowed); otherwise
// the layout is plain text with columns separated by two spaces, stable for
// scripts that cut columns.
type Table struct {
	w      io.Writer
	header []string
	rows   [][]string
	style  lipgloss.Style
	styled bool
}

// NewTable returns a table writing to w. styled asks for a styled header
// (pass whether stdout is a terminal).
func NewTable(w io.Writer, r *lipgloss.Renderer, styled bool) *Table {
	return &Table{w: w, style: r.NewStyle().Bold(true).Foreground(lipgloss.Color("12")), styled: styled}
}

// Header sets the column names.
func (t *Table) Header(cells ...string) { t.header = cells }

// Row adds a row.
func (t *Table) Row(cells ...string) { t.rows = append(t.rows, cells) }

// Flush writes the table.
func (t *Table) Flush() error {
	widths := make([]int, len(t.header))
	measure := func(cells []string) {
		for i, c := range cells {
			if i >= len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], lipgloss.Width(c))
		}
	}
	measure(t.header)
	for _, r := range t.rows {
		measure(r)
	}
	var b strings.Builder
	line := func(cells []string, header bool) {
		for i, c := range cells {
			last := i == len(cells)-1
			pad := ""
			if !last {
				pad = strings.Repeat(" ", widths[i]-lipgloss.Width(c)+2)
			}
			if header && t.styled {
				c = t.style.Render(c)
			}
			b.WriteString(c)
			b.WriteString(pad)
		}
		b.WriteByte('\n')
	}
	if len(t.header) > 0 {
		line(t.header, true)
	}
	for _, r := range t.rows {
		line(r, false)
	}
	_, err := io.WriteString(t.w, b.String())
	return err
}

// Bytes formats a byte count for people: 512 B, 70.9 KiB, 1.2 GiB.
func Bytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
