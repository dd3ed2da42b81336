// Package iostreams carries a command's standard streams and the decisions
// that depend on them: is this a terminal, may we use colour, how wide is it.
// Commands take an *IOStreams instead of touching os.Stdout, so tests can run
// them with buffers (Test) and choose whether they look like a terminal.
package iostreams

import (
	"bytes"
	"io"
	"os"
	"strconv"

	"github.com/charmbracelet/lipgloss"
	"github.com/mattn/go-isatty"
	"github.com/muesli/termenv"
	"golang.org/x/term"
)

// ColorMode is the user's --color choice.
type ColorMode string

const (
	ColorAuto   ColorMode = "auto"
	ColorAlways ColorMode = "always"
	ColorNever  ColorMode = "never"
)

// IOStreams holds the streams of one command run.
type IOStreams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer

	outTTY, errTTY bool
	width          int
	color          ColorMode
	noColorEnv     bool // NO_COLOR set
	forceColorEnv  bool // CLICOLOR_FORCE set to non-zero
	Quiet          bool
	Verbose        bool
}

// System returns the process's real streams.
func System() *IOStreams {
	s := &IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr, color: ColorAuto}
	s.outTTY = isTerminal(os.Stdout)
	s.errTTY = isTerminal(os.Stderr)
	if s.outTTY {
		if w, _, err := term.GetSize(int(os.Stdout.Fd())); err == nil && w > 0 {
			s.width = w
		}
	}
	if cols, err := strconv.Atoi(os.Getenv("COLUMNS")); err == nil && cols > 0 && s.width == 0 {
		s.width = cols
	}
	_, s.noColorEnv = os.LookupEnv("NO_COLOR")
	if v, ok := os.LookupEnv("CLICOLOR_FORCE"); ok && v != "0" {
		s.forceColorEnv = true
	}
	return s
}

func isTerminal(f *os.File) bool {
	return isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd())
}

// Test returns streams over buffers, for tests. tty says whether stdout and
// stderr claim to be a terminal (80 columns wide).
func Test(tty bool) (*IOStreams, *bytes.Buffer, *bytes.Buffer, *bytes.Buffer) {
	in, out, errOut := &bytes.Buffer{}, &bytes.Buffer{}, &bytes.Buffer{}
	s := &IOStreams{In: in, Out: out, ErrOut: errOut, outTTY: tty, errTTY: tty, color: ColorAuto}
	if tty {
		s.width = 80
	}
	return s, in, out, errOut
}

// SetColorMode records the --color flag.
func (s *IOStreams) SetColorMode(m ColorMode) { s.color = m }

// SetTTY overrides terminal detection (tests).
func (s *IOStreams) SetTTY(out, err bool) { s.outTTY, s.errTTY = out, err }

// SetNoColorEnv records whether NO_COLOR is set (tests).
func (s *IOStreams) SetNoColorEnv(v bool) { s.noColorEnv = v }

// IsStdoutTTY reports whether stdout is a terminal.
func (s *IOStreams) IsStdoutTTY() bool { return s.outTTY }

// IsStderrTTY reports whether stderr is a terminal.
func (s *IOStreams) IsStderrTTY() bool { return s.errTTY }

// ColorEnabled decides whether stdout gets ANSI colour: --color always/never
// win; with auto, NO_COLOR turns it off, CLICOLOR_FORCE on, else only on a
// terminal.
func (s *IOStreams) ColorEnabled() bool {
	switch s.color {
	case ColorAlways:
		return true
	case ColorNever:
		return false
	}
	if s.noColorEnv {
		return false
	}
	if s.forceColorEnv {
		return true
	}
	return s.outTTY
}

// TerminalWidth is stdout's width in columns, 80 when unknown.
func (s *IOStreams) TerminalWidth() int {
	if s.width > 0 {
		return s.width
	}
	return 80
}

// Renderer returns a lipgloss renderer bound to stdout that honours
// ColorEnabled. Build styles from it, never from package-level lipgloss.
func (s *IOStreams) Renderer() *lipgloss.Renderer {
	r := lipgloss.NewRenderer(s.Out)
	if s.ColorEnabled() {
		r.SetColorProfile(termenv.TrueColor)
	} else {
		r.SetColorProfile(termenv.Ascii)
	}
	return r
}

// ShowProgress reports whether progress and warnings may be drawn on stderr.
func (s *IOStreams) ShowProgress() bool { return s.errTTY && !s.Quiet }
