// Package tenant validates tenant IDs. A tenant ID becomes the first element
// of every object key of that tenant, so an ID that could escape its prefix
// ("..", "a/b") must never reach storage. The rules are Tempo's (from dskit):
// letters, digits and ! - _ . * ' ( ), at most 150 bytes, not "." or "..".
package tenant

import (
	"fmt"
	"strconv"
)

// Default is the tenant Tempo uses when multi-tenancy is off.
const Default = "single-tenant"

// MaxLength is the longest tenant ID accepted, in bytes.
const MaxLength = 150

// Validate returns nil when id is a usable tenant ID, else an error that
// names the problem and the rules.
func Validate(id string) error {
	switch {
	case id == "":
		return fmt.Errorf("tenant ID is empty; use letters, digits and !-_.*'() (e.g. %q)", Default)
	case len(id) > MaxLength:
		return fmt.Errorf("tenant ID is %d bytes long; at most %d are allowed", len(id), MaxLength)
	case id == "." || id == "..":
		return fmt.Errorf("tenant ID %q is not allowed: it would name a directory", id)
	}
	for i, r := range id {
		if !allowed(r) {
			return fmt.Errorf("tenant ID %s has the character %s at byte %d; only letters, digits and !-_.*'() are allowed",
				strconv.Quote(id), strconv.QuoteRune(r), i)
		}
	}
	return nil
}

func allowed(r rune) bool {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		return true
	}
	switch r {
	case '!', '-', '_', '.', '*', '\'', '(', ')':
		return true
	}
	return false
}
