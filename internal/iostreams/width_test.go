package iostreams

import "testing"

func TestLayoutWidth(t *testing.T) {
	tty, _, _, _ := Test(true)
	if got := tty.LayoutWidth(); got != 80 {
		t.Errorf("terminal: %d, want its 80 columns", got)
	}
	piped, _, _, _ := Test(false)
	if got := piped.LayoutWidth(); got != DefaultLayoutWidth {
		t.Errorf("piped: %d, want %d", got, DefaultLayoutWidth)
	}
	piped.SetWidth(200)
	if got := piped.LayoutWidth(); got != 200 {
		t.Errorf("after SetWidth(200): %d", got)
	}
}
