package render

import (
	"bytes"
	"strings"
	"testing"

	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"
)

func TestTablePlainAndStyled(t *testing.T) {
	var plain bytes.Buffer
	r := lipgloss.NewRenderer(&plain)
	r.SetColorProfile(termenv.Ascii)
	tb := NewTable(&plain, r, false)
	tb.Header("ID", "NAME", "N")
	tb.Row("a", "long name", "1")
	tb.Row("bbbb", "x", "22")
	if err := tb.Flush(); err != nil {
		t.Fatal(err)
	}
	want := "ID    NAME       N\na     long name  1\nbbbb  x          22\n"
	if plain.String() != want {
		t.Errorf("plain table:\n%q\nwant\n%q", plain.String(), want)
	}

	var styled bytes.Buffer
	r = lipgloss.NewRenderer(&styled)
	r.SetColorProfile(termenv.TrueColor)
	tb = NewTable(&styled, r, true)
	tb.Header("ID", "NAME")
	tb.Row("a", "b")
	tb.Flush()
	if !strings.Contains(styled.String(), "\x1b[") {
		t.Errorf("styled table has no ANSI codes: %q", styled.String())
	}
	// Alignment is by visible width: the data row is unchanged by styling.
	if !strings.HasSuffix(styled.String(), "\na   b\n") {
		t.Errorf("styled table rows misaligned: %q", styled.String())
	}
}

func TestBytes(t *testing.T) {
	for n, want := range map[uint64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 72690: "71.0 KiB", 5 << 30: "5.0 GiB"} {
		if got := Bytes(n); got != want {
			t.Errorf("Bytes(%d) = %q, want %q", n, got, want)
		}
	}
}
