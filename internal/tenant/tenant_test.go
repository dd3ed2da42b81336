package tenant

import (
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	good := []string{Default, "team-a", "A_b.c", "x", "t!*'()", strings.Repeat("a", MaxLength), "..a", "a.."}
	for _, id := range good {
		if err := Validate(id); err != nil {
			t.Errorf("Validate(%q) = %v, want nil", id, err)
		}
	}
	bad := map[string]string{
		"":                               "empty",
		".":                              "directory",
		"..":                             "directory",
		"../other":                       "'/'",
		"a/b":                            "'/'",
		"/abs":                           "'/'",
		`..\evil`:                        `'\\'`,
		"a b":                            "' '",
		"tenant\x00":                     `'\x00'`,
		"ünïcode":                        "'ü'",
		"%2e%2e":                         "'%'",
		strings.Repeat("a", MaxLength+1): "at most 150",
	}
	for id, want := range bad {
		err := Validate(id)
		if err == nil {
			t.Errorf("Validate(%q) = nil, want error", id)
			continue
		}
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate(%q) = %q, want it to mention %q", id, err, want)
		}
	}
}

func FuzzValidate(f *testing.F) {
	for _, s := range []string{Default, "..", "a/b", "", "x\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		if Validate(id) != nil {
			return
		}
		// Anything accepted must be a single, non-special path element.
		if strings.ContainsAny(id, "/\\\x00") || id == "." || id == ".." || len(id) > MaxLength || id == "" {
			t.Fatalf("accepted unsafe tenant ID %q", id)
		}
	})
}
