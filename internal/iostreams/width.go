package iostreams

// DefaultLayoutWidth is the width output is laid out for when stdout's is
// unknown (piped, no $COLUMNS): wide enough for a trace waterfall.
const DefaultLayoutWidth = 120

// LayoutWidth is the width to lay out wide output (trace trees) for: the
// terminal's, else $COLUMNS, else DefaultLayoutWidth. TerminalWidth keeps
// its 80-column default for callers that wrap text.
func (s *IOStreams) LayoutWidth() int {
	if s.width > 0 {
		return s.width
	}
	return DefaultLayoutWidth
}

// SetWidth overrides the detected width (tests; 0 means unknown).
func (s *IOStreams) SetWidth(w int) { s.width = w }
