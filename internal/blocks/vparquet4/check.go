package vparquet4

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"sync"

	"github.com/parquet-go/parquet-go/encoding/thrift"
	"github.com/parquet-go/parquet-go/format"
)

// parquet-go allocates from the sizes a file claims (page sizes, snappy
// lengths, level runs) before it can notice they are wrong, so a damaged
// data.parquet could cost gigabytes. checkRowGroup validates a prefetched
// row group's page headers against the bytes actually there first.

// Limits on what a column chunk may claim: uncompressed data at most
// maxExpansion times its compressed bytes (plus slack for tiny chunks), and
// level runs at most levelSlack entries past the page's value count (bit-
// packed runs pad to groups of 8).
const (
	maxExpansion   = 1024
	expansionSlack = 16 << 20
	levelSlack     = 1024
)

type maxLevels struct{ rep, def int }

var (
	levelsOnce sync.Once
	levels     []maxLevels
)

// columnLevels returns the maximum repetition and definition level of each
// leaf column of the schema, in column order.
func columnLevels() []maxLevels {
	levelsOnce.Do(func() {
		s := rowSchema()
		for _, path := range s.Columns() {
			leaf, _ := s.Lookup(path...)
			levels = append(levels, maxLevels{leaf.MaxRepetitionLevel, leaf.MaxDefinitionLevel})
		}
	})
	return levels
}

// checkRowGroup walks every page header of every column chunk of a row
// group held in buf (the file from byte off).
func checkRowGroup(rg *format.RowGroup, buf []byte, off int64) error {
	lv := columnLevels()
	var proto thrift.CompactProtocol
	for ci := range rg.Columns {
		m := &rg.Columns[ci].MetaData
		bad := func(f string, args ...any) error {
			return fmt.Errorf("column %d: %s", ci, fmt.Sprintf(f, args...))
		}
		start := m.DataPageOffset
		if m.DictionaryPageOffset > 0 && m.DictionaryPageOffset < start {
			start = m.DictionaryPageOffset
		}
		end := start + m.TotalCompressedSize
		if start < off || m.TotalCompressedSize < 0 || end > off+int64(len(buf)) {
			return bad("chunk outside its row group")
		}
		if m.TotalUncompressedSize < 0 || m.TotalUncompressedSize > m.TotalCompressedSize*maxExpansion+expansionSlack {
			return bad("implausible uncompressed size %d for %d bytes", m.TotalUncompressedSize, m.TotalCompressedSize)
		}
		b := buf[start-off : end-off]
		for len(b) > 0 {
			var h format.PageHeader
			r := proto.NewReaderFromBytes(b)
			if err := thrift.NewDecoder(r).Decode(&h); err != nil {
				return bad("page header: %v", err)
			}
			counter, ok := r.(interface{ BytesRead() int })
			if !ok {
				return nil // this parquet-go cannot tell header lengths
			}
			n := counter.BytesRead()
			if n <= 0 || n > len(b) {
				return bad("page header overruns the chunk")
			}
			b = b[n:]
			if h.CompressedPageSize < 0 || int(h.CompressedPageSize) > len(b) {
				return bad("page of %d bytes in %d remaining", h.CompressedPageSize, len(b))
			}
			if h.UncompressedPageSize < 0 || int64(h.UncompressedPageSize) > m.TotalUncompressedSize {
				return bad("page of %d uncompressed bytes in a chunk of %d", h.UncompressedPageSize, m.TotalUncompressedSize)
			}
			page := b[:h.CompressedPageSize]
			body, compressed := page, true
			if v2, ok := h.DataPageHeaderV2.Get(); ok {
				rl, dl := int64(v2.RepetitionLevelsByteLength), int64(v2.DefinitionLevelsByteLength)
				if rl < 0 || dl < 0 || rl+dl > int64(len(page)) {
					return bad("data page levels of %d+%d bytes in a %d-byte page", rl, dl, len(page))
				}
				if ci < len(lv) {
					limit := int64(v2.NumValues) + levelSlack
					if err := checkRuns(page[:rl], bits.Len(uint(lv[ci].rep)), limit); err != nil {
						return bad("repetition levels: %v", err)
					}
					if err := checkRuns(page[rl:rl+dl], bits.Len(uint(lv[ci].def)), limit); err != nil {
						return bad("definition levels: %v", err)
					}
				}
				body = page[rl+dl:]
				if c, ok := v2.IsCompressed.Get(); ok && !c {
					compressed = false
				}
			}
			// A snappy block starts with its decoded length, which the
			// decoder allocates: it must fit the page's uncompressed size.
			if m.Codec == format.Snappy && compressed && len(body) > 0 {
				if n, k := binary.Uvarint(body); k <= 0 || n > uint64(h.UncompressedPageSize) {
					return bad("snappy data claims more than the page's %d bytes", h.UncompressedPageSize)
				}
			}
			b = b[h.CompressedPageSize:]
		}
	}
	return nil
}

// checkRuns walks an RLE/bit-packed hybrid stream of bitWidth-bit values and
// fails when it describes more than limit entries or overruns b.
func checkRuns(b []byte, bitWidth int, limit int64) error {
	var n int64
	for len(b) > 0 {
		h, k := binary.Uvarint(b)
		if k <= 0 {
			return errors.New("bad run header")
		}
		b = b[k:]
		count, size := int64(h>>1), int64((bitWidth+7)/8)
		if h&1 == 1 { // bit-packed groups of 8
			if count > int64(len(b)) {
				return errors.New("run overruns the levels")
			}
			count, size = count*8, count*int64(bitWidth)
		}
		if count > limit-n {
			return fmt.Errorf("runs describe more than %d entries", limit)
		}
		if size > int64(len(b)) {
			return errors.New("run overruns the levels")
		}
		n += count
		b = b[size:]
	}
	return nil
}
