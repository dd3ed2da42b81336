package vparquet4

import (
	"sync"

	"github.com/parquet-go/parquet-go/format"

	"github.com/tracectl/tracectl/internal/blocks/pqread"
)

var (
	levelsOnce sync.Once
	levels     []pqread.MaxLevels
)

// columnLevels returns the maximum repetition and definition level of each
// leaf column of the schema, in column order.
func columnLevels() []pqread.MaxLevels {
	levelsOnce.Do(func() {
		s := rowSchema()
		for _, path := range s.Columns() {
			leaf, _ := s.Lookup(path...)
			levels = append(levels, pqread.MaxLevels{Rep: leaf.MaxRepetitionLevel, Def: leaf.MaxDefinitionLevel})
		}
	})
	return levels
}

// checkRowGroup validates a prefetched row group (buf holds the file from
// byte off) before parquet-go reads it: see pqread.CheckPageHeaders.
func checkRowGroup(rg *format.RowGroup, buf []byte, off int64) error {
	return pqread.CheckPageHeaders(rg, buf, off, columnLevels())
}
