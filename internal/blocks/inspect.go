package blocks

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/google/uuid"
	"github.com/parquet-go/parquet-go"

	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/storage"
)

// Inspection is what `blocks inspect` shows of one block.
type Inspection struct {
	Info      BlockInfo
	Objects   []ObjectInfo
	RowGroups []RowGroupInfo
	Columns   []ColumnInfo // summed over row groups, in schema order
	Blooms    []BloomInfo
	// CreatedBy is the parquet writer named in the footer.
	CreatedBy string
	Problems  []Problem
}

// ObjectInfo is one object of the block directory.
type ObjectInfo struct {
	Name string `json:"name"`
	Size int64  `json:"size"`
}

// RowGroupInfo describes one parquet row group.
type RowGroupInfo struct {
	Rows             int64  `json:"rows"`
	CompressedSize   int64  `json:"compressedSize"`
	UncompressedSize int64  `json:"uncompressedSize"`
	MinTraceID       string `json:"minTraceID,omitempty"`
	MaxTraceID       string `json:"maxTraceID,omitempty"`
}

// ColumnInfo describes one leaf column across the file.
type ColumnInfo struct {
	Path             string   `json:"path"`
	Values           int64    `json:"values"`
	CompressedSize   int64    `json:"compressedSize"`
	UncompressedSize int64    `json:"uncompressedSize"`
	Codec            string   `json:"codec"`
	Encodings        []string `json:"encodings"`
}

// BloomInfo describes one bloom shard.
type BloomInfo struct {
	Shard             int     `json:"shard"`
	Size              int     `json:"size"`
	FillRatio         float64 `json:"fillRatio"`
	FalsePositiveRate float64 `json:"falsePositiveRate"`
}

// Inspect reads a block's meta, its parquet footer and its bloom shards.
// It reports damage as Problems and returns an error only when the block's
// meta cannot be found.
func Inspect(ctx context.Context, b *storage.Bucket, tenantID string, id uuid.UUID) (*Inspection, error) {
	info, prob, err := ReadBlockMeta(ctx, b, tenantID, id)
	if err != nil {
		return nil, fmt.Errorf("block %s/%s: %w", tenantID, id, err)
	}
	if prob != nil {
		return nil, *prob
	}
	in := &Inspection{Info: *info}
	m := info.Meta
	problem := func(object string, err error) {
		in.Problems = append(in.Problems, Problem{Tenant: tenantID, BlockID: id.String(), Object: object, Err: err})
	}

	objs, err := b.ListAll(ctx, block.BlockPrefix(tenantID, id), "")
	if err != nil {
		return nil, err
	}
	var dataSize int64 = -1
	for _, o := range objs {
		name := strings.TrimPrefix(o.Key, block.BlockPrefix(tenantID, id))
		in.Objects = append(in.Objects, ObjectInfo{Name: name, Size: o.Size})
		if name == block.DataName {
			dataSize = o.Size
		}
	}

	if dataSize < 0 {
		problem(block.DataName, fmt.Errorf("object missing"))
	} else {
		if m.Size != 0 && uint64(dataSize) != m.Size {
			problem(block.DataName, fmt.Errorf("%d bytes, but meta.json says %d", dataSize, m.Size))
		}
		if err := inspectParquet(ctx, b, m, dataSize, in); err != nil {
			problem(block.DataName, err)
		}
	}

	for i := 0; i < int(m.BloomShards); i++ {
		key := block.BloomKey(tenantID, id, i)
		data, err := b.Read(ctx, key)
		if err != nil {
			problem(block.BloomName(i), err)
			continue
		}
		s, err := block.ParseBloomShard(key, data)
		if err != nil {
			problem(block.BloomName(i), err)
			continue
		}
		in.Blooms = append(in.Blooms, BloomInfo{Shard: i, Size: len(data), FillRatio: s.FillRatio(), FalsePositiveRate: s.FalsePositiveRate()})
	}
	return in, nil
}

func inspectParquet(ctx context.Context, b *storage.Bucket, m *block.Meta, size int64, in *Inspection) error {
	r, err := b.OpenReaderAt(ctx, block.DataKey(m.TenantID, m.BlockID), size)
	if err != nil {
		return err
	}
	f, err := parquet.OpenFile(r, size, parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true), parquet.ReadBufferSize(1<<20))
	if err != nil {
		return fmt.Errorf("not a readable parquet file: %w", err)
	}
	md := f.Metadata()
	in.CreatedBy = md.CreatedBy
	if m.TotalRecords != 0 && int(m.TotalRecords) != len(md.RowGroups) {
		in.Problems = append(in.Problems, Problem{Tenant: m.TenantID, BlockID: m.BlockID.String(), Object: block.DataName,
			Err: fmt.Errorf("%d row groups, but meta.json says %d", len(md.RowGroups), m.TotalRecords)})
	}
	byPath := map[string]*ColumnInfo{}
	var order []string
	for _, rg := range md.RowGroups {
		ri := RowGroupInfo{Rows: rg.NumRows}
		for _, c := range rg.Columns {
			cm := c.MetaData
			path := strings.Join(cm.PathInSchema, ".")
			ri.CompressedSize += cm.TotalCompressedSize
			ri.UncompressedSize += cm.TotalUncompressedSize
			if path == "TraceID" {
				ri.MinTraceID = hexID(cm.Statistics.MinValue)
				ri.MaxTraceID = hexID(cm.Statistics.MaxValue)
			}
			ci, ok := byPath[path]
			if !ok {
				ci = &ColumnInfo{Path: path, Codec: cm.Codec.String()}
				for _, e := range cm.Encoding {
					ci.Encodings = append(ci.Encodings, e.String())
				}
				sort.Strings(ci.Encodings)
				byPath[path] = ci
				order = append(order, path)
			}
			ci.Values += cm.NumValues
			ci.CompressedSize += cm.TotalCompressedSize
			ci.UncompressedSize += cm.TotalUncompressedSize
		}
		in.RowGroups = append(in.RowGroups, ri)
	}
	for _, p := range order {
		in.Columns = append(in.Columns, *byPath[p])
	}
	return nil
}

func hexID(b []byte) string {
	if len(b) == 0 || len(b) > 16 {
		return ""
	}
	id, _ := block.TraceIDFromBytes(b)
	return id.Hex()
}
