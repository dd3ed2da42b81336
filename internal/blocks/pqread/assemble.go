package pqread

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/parquet-go/parquet-go"
)

// Assembler turns rows of one schema into Group trees.
type Assembler struct {
	root   *shape
	leaves []leafPath
}

// leafPath is the way from the root to one leaf column.
type leafPath struct {
	name  string // dotted, for messages
	steps []step
}

// step is one node on a leaf's path, below the root.
type step struct {
	index    int    // field index in the parent group
	shape    *shape // the child's shape, for groups
	leaf     bool
	repeated bool
	defLevel int // definition level at which this node is present
	repLevel int // repetition level of this node (when repeated)
}

// NewAssembler prepares the assembly of rows of schema s (normally the
// file's own schema, so that columns are found by name whatever the file
// holds).
func NewAssembler(s *parquet.Schema) (*Assembler, error) {
	a := &Assembler{root: buildShape(s.Name(), s)}
	a.walk(a.root, s, nil, nil, 0, 0)
	// Our depth-first leaf order must be parquet-go's column order.
	cols := s.Columns()
	if len(cols) != len(a.leaves) {
		return nil, fmt.Errorf("schema has %d leaf columns, walked %d", len(cols), len(a.leaves))
	}
	for i, c := range cols {
		if strings.Join(c, ".") != a.leaves[i].name {
			return nil, fmt.Errorf("leaf column %d is %s, walked %s", i, strings.Join(c, "."), a.leaves[i].name)
		}
	}
	return a, nil
}

// buildShape describes group node n and, recursively, its child groups.
func buildShape(name string, n parquet.Node) *shape {
	sh := &shape{name: name, index: map[string]int{}}
	for i, f := range n.Fields() {
		sh.names = append(sh.names, f.Name())
		sh.index[f.Name()] = i
		sh.repeated = append(sh.repeated, f.Repeated())
		sh.leaf = append(sh.leaf, f.Leaf())
		var c *shape
		if !f.Leaf() {
			c = buildShape(f.Name(), f)
		}
		sh.children = append(sh.children, c)
	}
	return sh
}

// walk records the path of every leaf under group node n (shape sh), in
// depth-first order: the order of parquet's leaf columns.
func (a *Assembler) walk(sh *shape, n parquet.Node, path []step, names []string, def, rep int) {
	for i, f := range n.Fields() {
		st := step{index: i, shape: sh.children[i], leaf: f.Leaf(), repeated: f.Repeated(), defLevel: def, repLevel: rep}
		if !f.Required() {
			st.defLevel++
		}
		if f.Repeated() {
			st.repLevel++
		}
		p := append(slices.Clip(path), st)
		nm := append(slices.Clip(names), f.Name())
		if f.Leaf() {
			a.leaves = append(a.leaves, leafPath{name: strings.Join(nm, "."), steps: p})
		} else {
			a.walk(st.shape, f, p, nm, st.defLevel, st.repLevel)
		}
	}
}

// levels returns the maximum repetition and definition level per column.
func (a *Assembler) levels() []MaxLevels {
	out := make([]MaxLevels, len(a.leaves))
	for i, l := range a.leaves {
		last := l.steps[len(l.steps)-1]
		out[i] = MaxLevels{Rep: last.repLevel, Def: last.defLevel}
	}
	return out
}

// Columns returns the dotted path of every leaf column, in column order.
func (a *Assembler) Columns() []string {
	out := make([]string, len(a.leaves))
	for i, l := range a.leaves {
		out[i] = l.name
	}
	return out
}

// ColumnIndex returns the index of the leaf column with the given dotted
// path, or -1.
func (a *Assembler) ColumnIndex(path string) int {
	for i, l := range a.leaves {
		if l.name == path {
			return i
		}
	}
	return -1
}

var errLevels = errors.New("repetition/definition levels do not fit the schema")

// Assemble builds the Group tree of one row. The row's values must be in
// column order (as parquet-go's row readers return them). The result shares
// byte arrays with row: see Group.
func (a *Assembler) Assemble(row parquet.Row) (g *Group, err error) {
	root := newGroup(a.root)
	pos := make([]int, 0, 16)
	col := -1
	var lp *leafPath
	for _, v := range row {
		if c := v.Column(); c != col {
			if c < 0 || c >= len(a.leaves) || c < col {
				return nil, fmt.Errorf("row value of unknown or out-of-order column %d", c)
			}
			col = c
			lp = &a.leaves[c]
			pos = pos[:0]
			for range lp.steps {
				pos = append(pos, 0)
			}
		}
		if err := a.insert(root, lp, pos, v); err != nil {
			return nil, fmt.Errorf("column %s: %w", lp.name, err)
		}
	}
	return root, nil
}

func newGroup(sh *shape) *Group {
	return &Group{shape: sh, fields: make([]any, len(sh.names))}
}

func (a *Assembler) insert(root *Group, lp *leafPath, pos []int, v parquet.Value) error {
	r, d := v.RepetitionLevel(), v.DefinitionLevel()
	g := root
	last := len(lp.steps) - 1
	for i, st := range lp.steps {
		if st.defLevel > d {
			return nil // this node and everything below is null or empty
		}
		if st.repeated {
			switch {
			case st.repLevel > r:
				pos[i] = 0
			case st.repLevel == r:
				pos[i]++
			}
		}
		f := &g.fields[st.index]
		switch {
		case i == last && st.repeated:
			list, _ := (*f).([]parquet.Value)
			if pos[i] != len(list) {
				return errLevels
			}
			*f = append(list, v)
		case i == last:
			*f = v
		case st.repeated:
			list, _ := (*f).([]*Group)
			switch {
			case pos[i] == len(list):
				list = append(list, newGroup(st.shape))
				*f = list
			case pos[i] > len(list):
				return errLevels
			}
			g = list[pos[i]]
		default:
			c, _ := (*f).(*Group)
			if c == nil {
				c = newGroup(st.shape)
				*f = c
			}
			g = c
		}
	}
	return nil
}
