package vparquet4

import (
	"github.com/tracectl/tracectl/internal/blocks/block"
)

// maxDedicated is the number of spare string columns per scope.
const maxDedicated = 10

// DefaultDedicatedColumns is Tempo 3.1's default vParquet4 list (the one in
// the fixture metas). Blocks written with it compact together with Tempo's.
func DefaultDedicatedColumns() []block.DedicatedColumn {
	return []block.DedicatedColumn{
		{Scope: block.ScopeSpan, Name: "http.request.method", Type: block.TypeString},
		{Scope: block.ScopeSpan, Name: "url.path", Type: block.TypeString},
		{Scope: block.ScopeSpan, Name: "url.route", Type: block.TypeString},
		{Scope: block.ScopeSpan, Name: "server.address", Type: block.TypeString},
		{Scope: block.ScopeSpan, Name: "http.route", Type: block.TypeString},
	}
}

// Attribute names with fixed columns (§3.5): never dedicated.
var (
	resourceFixed = map[string]bool{
		"service.name": true, "cluster": true, "namespace": true, "pod": true, "container": true,
		"k8s.cluster.name": true, "k8s.namespace.name": true, "k8s.pod.name": true, "k8s.container.name": true,
	}
	spanFixed = map[string]bool{"http.method": true, "http.url": true, "http.status_code": true}
)

// FilterDedicatedColumns keeps the entries vParquet4 can hold, as Tempo
// does before writing a block's list: string type, no options, span or
// resource scope, no name with a fixed column, no repeats, at most ten per
// scope. The result is what goes into meta.json.
func FilterDedicatedColumns(cols []block.DedicatedColumn) []block.DedicatedColumn {
	var out []block.DedicatedColumn
	seen := map[[2]string]bool{}
	count := map[string]int{}
	for _, c := range cols {
		c = c.Normalize()
		if c.Type != block.TypeString || len(c.Options) > 0 {
			continue
		}
		switch c.Scope {
		case block.ScopeSpan:
			if spanFixed[c.Name] {
				continue
			}
		case block.ScopeResource:
			if resourceFixed[c.Name] {
				continue
			}
		default:
			continue
		}
		k := [2]string{c.Scope, c.Name}
		if seen[k] || count[c.Scope] >= maxDedicated {
			continue
		}
		seen[k] = true
		count[c.Scope]++
		out = append(out, c)
	}
	return out
}

// dedicatedMap is a block's assignment of attribute names to slots
// (0-based: slot 0 is String01) per scope, and back.
type dedicatedMap struct {
	span, resource           map[string]int
	spanNames, resourceNames []string
}

// newDedicatedMap assigns slots walking the (already filtered) list in
// order: the k-th entry of a scope takes that scope's k-th column.
func newDedicatedMap(cols []block.DedicatedColumn) *dedicatedMap {
	d := &dedicatedMap{span: map[string]int{}, resource: map[string]int{}}
	for _, c := range FilterDedicatedColumns(cols) {
		switch c.Scope {
		case block.ScopeSpan:
			d.span[c.Name] = len(d.spanNames)
			d.spanNames = append(d.spanNames, c.Name)
		case block.ScopeResource:
			d.resource[c.Name] = len(d.resourceNames)
			d.resourceNames = append(d.resourceNames, c.Name)
		}
	}
	return d
}
