package compact

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/parquet-go/parquet-go"

	"github.com/tracectl/tracectl/internal/blocks"
	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/blocks/pqread"
	"github.com/tracectl/tracectl/internal/blocks/vparquet4"
	"github.com/tracectl/tracectl/internal/storage"
	"github.com/tracectl/tracectl/internal/tenant"
)

// VerifyOptions narrow and extend a verification.
type VerifyOptions struct {
	// Blocks limits the check to these block IDs (default: every live block).
	Blocks []uuid.UUID
	// Repair rewrites what can be rebuilt safely from a sound data.parquet:
	// bloom shards, the index object, and meta.json's sizes, counts and
	// time range. Damaged data is never rewritten.
	Repair bool
}

// BlockReport is the verdict on one block.
type BlockReport struct {
	Tenant   string   `json:"tenant"`
	BlockID  string   `json:"blockID"`
	Format   string   `json:"format,omitempty"`
	Traces   int64    `json:"traces"`
	Problems []string `json:"problems"`
	// Repaired lists the repairs made; Fixed says they cover every problem.
	Repaired []string `json:"repaired,omitempty"`
	Fixed    bool     `json:"fixed,omitempty"`
}

// OK says the block had no problem, or every problem was repaired.
func (r *BlockReport) OK() bool { return len(r.Problems) == 0 || r.Fixed }

// VerifyResult is the verdict on a tenant.
type VerifyResult struct {
	Tenant string        `json:"tenant"`
	Blocks []BlockReport `json:"blocks"`
}

// Problems counts blocks with problems left (not repaired).
func (v *VerifyResult) Problems() int {
	n := 0
	for i := range v.Blocks {
		if !v.Blocks[i].OK() {
			n++
		}
	}
	return n
}

// Verify checks every live block of a tenant: meta.json parses and
// matches data.parquet (size, footer size, row groups, trace count, time
// range covering every trace), rows are sorted and unique by trace ID,
// every trace ID is in its bloom shard, the index object (when present)
// names the last trace ID of every row group, and every object meta.json
// implies is there. Problems are reported per block; with Repair, what
// can be rebuilt from a sound data.parquet is rewritten (meta.json last).
// The error is non-nil only when the tenant cannot be listed.
func Verify(ctx context.Context, b *storage.Bucket, tenantID string, opts VerifyOptions) (*VerifyResult, error) {
	if err := tenant.Validate(tenantID); err != nil {
		return nil, err
	}
	res := &VerifyResult{Tenant: tenantID}
	want := map[uuid.UUID]bool{}
	for _, id := range opts.Blocks {
		want[id] = true
	}
	l, err := blocks.List(ctx, b, tenantID, blocks.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing blocks of tenant %s: %w", tenantID, err)
	}
	for _, p := range l.Problems {
		if len(want) > 0 {
			if id, err := uuid.Parse(p.BlockID); err != nil || !want[id] {
				continue
			}
		}
		res.Blocks = append(res.Blocks, BlockReport{Tenant: tenantID, BlockID: p.BlockID, Problems: []string{p.Object + ": " + p.Err.Error()}})
	}
	found := map[uuid.UUID]bool{}
	for _, bi := range l.Blocks {
		if len(want) > 0 && !want[bi.Meta.BlockID] {
			continue
		}
		found[bi.Meta.BlockID] = true
		if bi.Meta.TenantID != tenantID {
			res.Blocks = append(res.Blocks, BlockReport{Tenant: tenantID, BlockID: bi.Meta.BlockID.String(), Format: bi.Meta.Format,
				Problems: []string{fmt.Sprintf("meta.json: names tenant %q but the block is under tenant %q; readers look for its objects in the wrong place (copied by hand? fix the meta or move the block)", bi.Meta.TenantID, tenantID)}})
			continue
		}
		res.Blocks = append(res.Blocks, VerifyBlock(ctx, b, bi.Meta, opts.Repair))
	}
	for _, id := range opts.Blocks {
		if !found[id] && !slices.ContainsFunc(res.Blocks, func(r BlockReport) bool { return r.BlockID == id.String() }) {
			res.Blocks = append(res.Blocks, BlockReport{Tenant: tenantID, BlockID: id.String(),
				Problems: []string{"meta.json: not found; the block does not exist, was compacted away, or is still being written"}})
		}
	}
	slices.SortStableFunc(res.Blocks, func(a, b BlockReport) int { return strings.Compare(a.BlockID, b.BlockID) })
	return res, nil
}

// scan is what VerifyBlock learns from data.parquet.
type scan struct {
	size       int64
	footerSize uint32
	rowGroups  int
	rows       int64
	lastIDs    []block.TraceID
	ids        []block.TraceID // kept only for repair
	minStart   uint64
	maxEnd     uint64
	haveTimes  bool
	sorted     bool // strictly ascending: sorted and unique
}

// VerifyBlock checks one block (see Verify).
func VerifyBlock(ctx context.Context, b *storage.Bucket, m *block.Meta, repair bool) BlockReport {
	r := BlockReport{Tenant: m.TenantID, BlockID: m.BlockID.String(), Format: m.Format, Traces: m.TotalObjects}
	problem := func(format string, a ...any) { r.Problems = append(r.Problems, fmt.Sprintf(format, a...)) }

	objs, err := b.ListAll(ctx, block.BlockPrefix(m.TenantID, m.BlockID), "")
	if err != nil {
		problem("listing objects: %v", err)
		return r
	}
	present := map[string]int64{}
	for _, o := range objs {
		present[strings.TrimPrefix(o.Key, block.BlockPrefix(m.TenantID, m.BlockID))] = o.Size
	}
	dataSize, ok := present[block.DataName]
	if !ok {
		problem("%s: missing; the block cannot be read (not repairable: restore it or delete the block)", block.DataName)
		return r
	}
	if m.Size != 0 && uint64(dataSize) != m.Size {
		problem("%s: %d bytes, meta.json says %d", block.DataName, dataSize, m.Size)
	}

	bloom, bloomErr := loadBlooms(ctx, b, m, present)
	if bloomErr != nil {
		problem("%v", bloomErr)
	}
	sc, err := scanData(ctx, b, m, dataSize, repair, bloom)
	if err != nil {
		problem("%s: %v (not repairable)", block.DataName, err)
		return r
	}
	dataSound := sc.sorted
	if !sc.sorted {
		problem("%s: rows are not sorted and unique by trace ID; Tempo would miss traces (not repairable: re-write the block)", block.DataName)
	}
	var fixMeta, fixBloom, fixIndex bool
	if m.FooterSize != 0 && m.FooterSize != sc.footerSize {
		problem("meta.json: footerSize %d, the file's footer is %d bytes", m.FooterSize, sc.footerSize)
		fixMeta = true
	}
	if m.Size != 0 && uint64(sc.size) != m.Size {
		fixMeta = true
	}
	if int(m.TotalRecords) != sc.rowGroups {
		problem("meta.json: totalRecords %d, data.parquet has %d row groups", m.TotalRecords, sc.rowGroups)
		fixMeta = true
	}
	if m.TotalObjects != sc.rows {
		problem("meta.json: totalObjects %d, data.parquet has %d traces", m.TotalObjects, sc.rows)
		fixMeta = true
	}
	if sc.haveTimes && sc.rows > 0 {
		start := time.Unix(int64(sc.minStart/1e9), 0).UTC()
		end := time.Unix(int64(sc.maxEnd/1e9), 0).UTC()
		if m.StartTime.After(start) || m.EndTime.Before(end) {
			problem("meta.json: time range %s…%s does not cover the spans' %s…%s; searches would miss them",
				m.StartTime.Format(time.RFC3339), m.EndTime.Format(time.RFC3339), start.Format(time.RFC3339), end.Format(time.RFC3339))
			fixMeta = true
		}
	}
	if bloomErr != nil {
		fixBloom = true
	} else if bloom.missing > 0 {
		problem("bloom filter: %d of %d trace IDs missing; Tempo would not find them by ID", bloom.missing, sc.rows)
		fixBloom = true
	}
	if m.Format == block.FormatVParquet4 {
		if _, ok := present[block.IndexName]; ok {
			data, err := b.Read(ctx, block.IndexKey(m.TenantID, m.BlockID))
			switch {
			case err != nil:
				problem("%s: %v", block.IndexName, err)
				fixIndex = true
			case !indexMatches(data, sc.lastIDs):
				problem("%s: does not list the last trace ID of each of the %d row groups", block.IndexName, sc.rowGroups)
				fixIndex = true
			}
		}
	}
	if !repair || len(r.Problems) == 0 {
		return r
	}
	if !dataSound || m.Format != block.FormatVParquet4 {
		return r // repair only rebuilds from sound vParquet4 data
	}
	nm := *m
	if fixBloom {
		shards := block.NewBloom(len(sc.ids))
		for _, id := range sc.ids {
			shards.Add(id)
		}
		for i := range shards.Shards() {
			data, err := shards.Marshal(i)
			if err == nil {
				err = b.Write(ctx, block.BloomKey(m.TenantID, m.BlockID, i), data)
			}
			if err != nil {
				problem("repairing %s: %v", block.BloomName(i), err)
				return r
			}
		}
		if nm.BloomShards != uint32(shards.Shards()) {
			nm.BloomShards = uint32(shards.Shards())
			fixMeta = true
		}
		r.Repaired = append(r.Repaired, fmt.Sprintf("rebuilt %d bloom shards", shards.Shards()))
	}
	if fixIndex {
		if err := b.Write(ctx, block.IndexKey(m.TenantID, m.BlockID), vparquet4.EncodeIndex(sc.lastIDs)); err != nil {
			problem("repairing %s: %v", block.IndexName, err)
			return r
		}
		r.Repaired = append(r.Repaired, "rewrote "+block.IndexName)
	}
	if fixMeta {
		nm.Size = uint64(sc.size)
		nm.FooterSize = sc.footerSize
		nm.TotalRecords = uint32(sc.rowGroups)
		nm.TotalObjects = sc.rows
		if sc.haveTimes && sc.rows > 0 {
			start := time.Unix(int64(sc.minStart/1e9), 0).UTC()
			end := time.Unix(int64(sc.maxEnd/1e9), 0).UTC()
			if nm.StartTime.IsZero() || nm.StartTime.After(start) {
				nm.StartTime = start
			}
			if nm.EndTime.Before(end) {
				nm.EndTime = end
			}
		}
		if err := block.WriteMeta(ctx, b, &nm); err != nil {
			problem("repairing %s: %v", block.MetaName, err)
			return r
		}
		r.Repaired = append(r.Repaired, "rewrote "+block.MetaName)
	}
	// Sound data: every problem found is one of those rebuilt above.
	r.Fixed = true
	r.Traces = sc.rows
	return r
}

// bloomSet is a block's loaded bloom shards.
type bloomSet struct {
	shards  []*block.BloomShard
	missing int64 // IDs seen by scanData that tested negative
}

func (s *bloomSet) test(id block.TraceID) bool {
	return s.shards[block.BloomShardOf(id, len(s.shards))].Test(id)
}

func loadBlooms(ctx context.Context, b *storage.Bucket, m *block.Meta, present map[string]int64) (*bloomSet, error) {
	if m.BloomShards == 0 {
		return nil, errors.New("meta.json: bloomShards is 0; Tempo finds nothing by ID in this block")
	}
	s := &bloomSet{}
	for i := range int(m.BloomShards) {
		name := block.BloomName(i)
		if _, ok := present[name]; !ok {
			return nil, fmt.Errorf("%s: missing (meta.json says %d shards)", name, m.BloomShards)
		}
		key := block.BloomKey(m.TenantID, m.BlockID, i)
		data, err := b.Read(ctx, key)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", name, err)
		}
		sh, err := block.ParseBloomShard(key, data)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", name, err)
		}
		s.shards = append(s.shards, sh)
	}
	return s, nil
}

// scanData reads data.parquet's footer and its trace-level ID and time
// columns (nothing else), checking order and the bloom filter as it goes.
func scanData(ctx context.Context, b *storage.Bucket, m *block.Meta, size int64, keepIDs bool, bloom *bloomSet) (sc *scan, err error) {
	defer func() {
		if p := recover(); p != nil {
			sc, err = nil, fmt.Errorf("corrupt file: %v", p)
		}
	}()
	sc = &scan{size: size, sorted: true, minStart: math.MaxUint64}
	key := block.DataKey(m.TenantID, m.BlockID)
	ra, err := b.OpenReaderAt(ctx, key, size)
	if err != nil {
		return nil, err
	}
	if size < 12 {
		return nil, fmt.Errorf("%d bytes: too short for a parquet file", size)
	}
	tail := make([]byte, 8)
	if _, err := ra.ReadAt(tail, size-8); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	if string(tail[4:]) != "PAR1" {
		return nil, errors.New("no parquet trailer: truncated or not a parquet file")
	}
	sc.footerSize = binary.LittleEndian.Uint32(tail[:4])
	f, err := parquet.OpenFile(ra, size, parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true), parquet.ReadBufferSize(256<<10))
	if err != nil {
		return nil, err
	}
	col := func(name string) int {
		if leaf, ok := f.Schema().Lookup(name); ok {
			return leaf.ColumnIndex
		}
		return -1
	}
	idCol, startCol, endCol := col("TraceID"), col("StartTimeUnixNano"), col("EndTimeUnixNano")
	if idCol < 0 {
		return nil, errors.New("no TraceID column: not a Tempo block")
	}
	sc.haveTimes = startCol >= 0 && endCol >= 0
	var prev block.TraceID
	var vals [256]parquet.Value
	for i, rg := range f.RowGroups() {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		sc.rowGroups++
		var last block.TraceID
		err := eachValue(rg.ColumnChunks()[idCol], vals[:], func(v parquet.Value) {
			id, _ := block.TraceIDFromBytes(v.ByteArray())
			if sc.rows > 0 && id.Compare(prev) <= 0 {
				sc.sorted = false
			}
			prev, last = id, id
			sc.rows++
			if keepIDs {
				sc.ids = append(sc.ids, id)
			}
			if bloom != nil && !bloom.test(id) {
				bloom.missing++
			}
		})
		if err != nil {
			return nil, fmt.Errorf("row group %d: %v", i, err)
		}
		sc.lastIDs = append(sc.lastIDs, last)
		if sc.haveTimes {
			if err := eachValue(rg.ColumnChunks()[startCol], vals[:], func(v parquet.Value) {
				if t := uint64(v.Int64()); t != 0 {
					sc.minStart = min(sc.minStart, t)
				}
			}); err != nil {
				return nil, fmt.Errorf("row group %d: %v", i, err)
			}
			if err := eachValue(rg.ColumnChunks()[endCol], vals[:], func(v parquet.Value) {
				sc.maxEnd = max(sc.maxEnd, uint64(v.Int64()))
			}); err != nil {
				return nil, fmt.Errorf("row group %d: %v", i, err)
			}
		}
	}
	if sc.minStart == math.MaxUint64 {
		sc.minStart = 0
	}
	return sc, nil
}

// eachValue calls fn for every value of a column chunk.
func eachValue(cc parquet.ColumnChunk, buf []parquet.Value, fn func(parquet.Value)) error {
	return pqread.ColumnValues(cc, buf, func(vals []parquet.Value) {
		for _, v := range vals {
			fn(v)
		}
	})
}

// indexMatches compares an index object with the row groups' last IDs.
func indexMatches(data []byte, lastIDs []block.TraceID) bool {
	var idx struct {
		RowGroups []string `json:"rowGroups"`
	}
	if err := json.Unmarshal(data, &idx); err != nil || len(idx.RowGroups) != len(lastIDs) {
		return false
	}
	for i, s := range idx.RowGroups {
		raw, err := base64.StdEncoding.DecodeString(s)
		if err != nil || !bytes.Equal(raw, lastIDs[i][:]) {
			return false
		}
	}
	return true
}
