// Package pqread reads the rows of a Tempo data.parquet without a compiled Go
// schema: each row is assembled, from its column values and their
// repetition/definition levels, into a tree of Groups whose fields are looked
// up by name. Readers of formats whose column set varies from block to block
// (vParquet5 stores only the dedicated columns its meta assigns) or that
// tracectl only reads (vParquet3) build on it; it also holds what those
// readers share: opening a block's data.parquet, finding a trace's row by ID,
// streaming rows, and decoding Tempo's attribute encodings.
//
// It never writes, and it knows no format's column names beyond the
// attribute groups common to Tempo's formats.
//
// It would sit better at internal/blocks/pqread; it lives under vparquet5
// only because of who owns which directory.
package pqread

import (
	"fmt"
	"strings"

	"github.com/parquet-go/parquet-go"
)

// Group is one instance of a parquet group (the row itself, a resource, a
// span, an attribute…). Its fields are addressed by name; a name the file's
// schema does not have reads as absent, so callers can ask for optional
// columns (vParquet5 dedicated slots) without checking the schema first.
//
// Byte-array values inside a Group point into the reader's page buffers:
// they are valid only until the next row is read. Copy what you keep (the
// accessors returning string or []byte do).
type Group struct {
	shape  *shape
	fields []any // *Group, []*Group, parquet.Value, []parquet.Value or nil
}

// shape describes a group node of the schema.
type shape struct {
	name     string
	names    []string
	index    map[string]int
	children []*shape // nil for leaves
	repeated []bool
	leaf     []bool
}

func (g *Group) field(name string) (int, any) {
	if g == nil {
		return -1, nil
	}
	i, ok := g.shape.index[name]
	if !ok {
		return -1, nil
	}
	return i, g.fields[i]
}

// Has reports whether the schema of this group has a field called name.
func (g *Group) Has(name string) bool {
	if g == nil {
		return false
	}
	_, ok := g.shape.index[name]
	return ok
}

// Group returns the non-repeated child group name, or nil when it is null
// or not in the schema. A nil *Group answers every accessor as absent.
func (g *Group) Group(name string) *Group {
	_, f := g.field(name)
	c, _ := f.(*Group)
	return c
}

// List returns the elements of a repeated child group, reading through a
// LIST wrapper (name → list → element) when the file uses one, so that
// vParquet3/4 style and vParquet5 style lists read alike.
func (g *Group) List(name string) []*Group {
	_, f := g.field(name)
	switch c := f.(type) {
	case []*Group:
		return c
	case *Group:
		if w, ok := c.listWrapper(); ok {
			return w
		}
	}
	return nil
}

// listWrapper unwraps a LIST-annotated group: one repeated child (list)
// whose elements hold one child (element).
func (g *Group) listWrapper() ([]*Group, bool) {
	if len(g.fields) != 1 || !g.shape.repeated[0] || g.shape.leaf[0] {
		return nil, false
	}
	items, _ := g.fields[0].([]*Group)
	out := make([]*Group, 0, len(items))
	for _, it := range items {
		if len(it.fields) != 1 {
			return nil, false
		}
		e, _ := it.fields[0].(*Group)
		if e == nil {
			return nil, false
		}
		out = append(out, e)
	}
	return out, true
}

// Value returns a non-repeated leaf, with ok false when it is null or not in
// the schema.
func (g *Group) Value(name string) (v parquet.Value, ok bool) {
	_, f := g.field(name)
	v, ok = f.(parquet.Value)
	return v, ok
}

// Values returns the values of a leaf however it is declared: a repeated
// leaf gives its list, a LIST-wrapped leaf (name → list → element) its
// elements, an optional or required leaf zero or one value.
func (g *Group) Values(name string) []parquet.Value {
	_, f := g.field(name)
	switch c := f.(type) {
	case []parquet.Value:
		return c
	case parquet.Value:
		return []parquet.Value{c}
	case *Group:
		// LIST wrapper around a leaf: list (repeated group) → element (leaf).
		if len(c.fields) != 1 {
			return nil
		}
		items, _ := c.fields[0].([]*Group)
		out := make([]parquet.Value, 0, len(items))
		for _, it := range items {
			if len(it.fields) == 1 {
				if v, ok := it.fields[0].(parquet.Value); ok {
					out = append(out, v)
				}
			}
		}
		return out
	}
	return nil
}

// Str returns a string leaf ("" when null or absent).
func (g *Group) Str(name string) string {
	v, ok := g.Value(name)
	if !ok {
		return ""
	}
	return string(v.ByteArray())
}

// OptStr returns a string leaf and whether it was present.
func (g *Group) OptStr(name string) (string, bool) {
	v, ok := g.Value(name)
	if !ok {
		return "", false
	}
	return string(v.ByteArray()), true
}

// Bytes returns a copy of a byte-array leaf (nil when null or absent).
func (g *Group) Bytes(name string) []byte {
	v, ok := g.Value(name)
	if !ok {
		return nil
	}
	return append([]byte(nil), v.ByteArray()...)
}

// Int64 returns an INT64 or INT32 leaf (0 when null or absent).
func (g *Group) Int64(name string) int64 {
	v, ok := g.Value(name)
	if !ok {
		return 0
	}
	return int64Of(v)
}

// Uint64 returns an unsigned INT64 leaf (0 when null or absent).
func (g *Group) Uint64(name string) uint64 { return uint64(g.Int64(name)) }

// Uint32 returns an INT32 leaf as unsigned (0 when null, negative or absent).
func (g *Group) Uint32(name string) uint32 {
	n := g.Int64(name)
	if n < 0 || n > int64(^uint32(0)) {
		return 0
	}
	return uint32(n)
}

func int64Of(v parquet.Value) int64 {
	switch v.Kind() {
	case parquet.Int32:
		return int64(v.Int32())
	case parquet.Int64:
		return v.Int64()
	case parquet.Boolean:
		if v.Boolean() {
			return 1
		}
	}
	return 0
}

// String renders the group for debugging.
func (g *Group) String() string {
	var b strings.Builder
	g.format(&b, "")
	return b.String()
}

func (g *Group) format(b *strings.Builder, indent string) {
	if g == nil {
		b.WriteString("<nil>")
		return
	}
	b.WriteString("{\n")
	for i, n := range g.shape.names {
		fmt.Fprintf(b, "%s  %s: ", indent, n)
		switch c := g.fields[i].(type) {
		case *Group:
			c.format(b, indent+"  ")
		case []*Group:
			b.WriteString("[")
			for _, e := range c {
				e.format(b, indent+"    ")
			}
			b.WriteString("]")
		case parquet.Value:
			fmt.Fprintf(b, "%v", c)
		case []parquet.Value:
			fmt.Fprintf(b, "%v", c)
		default:
			b.WriteString("null")
		}
		b.WriteString("\n")
	}
	b.WriteString(indent + "}")
}
