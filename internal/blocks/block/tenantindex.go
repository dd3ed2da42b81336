package block

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/google/uuid"
	"github.com/klauspost/compress/zstd"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/tracectl/tracectl/internal/storage"
)

// TenantIndex lists a tenant's live and compacted blocks (§4). Tempo's
// queriers read only this, so it must be complete and exact.
type TenantIndex struct {
	CreatedAt time.Time
	Meta      []*Meta
	Compacted []*CompactedMeta
}

// MarshalJSON encodes {"created_at":…,"meta":[…],"compacted":[…]} with
// empty lists as [].
func (ti *TenantIndex) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(`{"created_at":"`)
	b.WriteString(ti.CreatedAt.UTC().Format(time.RFC3339Nano))
	b.WriteString(`","meta":[`)
	for i, m := range ti.Meta {
		if i > 0 {
			b.WriteByte(',')
		}
		m.appendJSON(&b, nil)
	}
	b.WriteString(`],"compacted":[`)
	for i, c := range ti.Compacted {
		if i > 0 {
			b.WriteByte(',')
		}
		c.Meta.appendJSON(&b, &c.CompactedTime)
	}
	b.WriteString(`]}`)
	return b.Bytes(), nil
}

// UnmarshalJSON decodes the JSON form.
func (ti *TenantIndex) UnmarshalJSON(data []byte) error {
	var aux struct {
		CreatedAt time.Time        `json:"created_at"`
		Meta      []*Meta          `json:"meta"`
		Compacted []*CompactedMeta `json:"compacted"`
	}
	if err := json.Unmarshal(data, &aux); err != nil {
		return err
	}
	*ti = TenantIndex{CreatedAt: aux.CreatedAt.UTC(), Meta: aux.Meta, Compacted: aux.Compacted}
	return nil
}

// EncodeJSONGz is the index.json.gz object: gzip, embedded name index.json.
func (ti *TenantIndex) EncodeJSONGz() ([]byte, error) {
	js, _ := ti.MarshalJSON()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Name = tenantIndexEmbeddedName
	if _, err := zw.Write(js); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// DecodeTenantIndexJSONGz decodes an index.json.gz object.
func DecodeTenantIndexJSONGz(data []byte) (*TenantIndex, error) {
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("decoding %s: %w", TenantIndexJSONName, err)
	}
	js, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("decoding %s: %w", TenantIndexJSONName, err)
	}
	var ti TenantIndex
	if err := json.Unmarshal(js, &ti); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", TenantIndexJSONName, err)
	}
	return &ti, nil
}

// Protobuf field numbers of Tempo's TenantIndex, BlockMeta and
// CompactedBlockMeta messages (§4).
const (
	tiCreatedAt = 1
	tiMeta      = 2
	tiCompacted = 3

	cbMeta          = 1
	cbCompactedTime = 2

	bmFormat            = 1
	bmBlockID           = 2
	bmTenantID          = 5
	bmStartTime         = 6
	bmEndTime           = 7
	bmTotalObjects      = 8
	bmSize              = 9
	bmCompactionLevel   = 10
	bmIndexPageSize     = 12
	bmTotalRecords      = 13
	bmBloomShards       = 15
	bmFooterSize        = 16
	bmDedicatedColumns  = 17
	bmReplicationFactor = 18

	tsSeconds = 1
	tsNanos   = 2
)

func appendTimestamp(b []byte, num protowire.Number, t time.Time) []byte {
	var ts []byte
	if s := t.Unix(); s != 0 {
		ts = protowire.AppendTag(ts, tsSeconds, protowire.VarintType)
		ts = protowire.AppendVarint(ts, uint64(s))
	}
	if n := t.Nanosecond(); n != 0 {
		ts = protowire.AppendTag(ts, tsNanos, protowire.VarintType)
		ts = protowire.AppendVarint(ts, uint64(n))
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, ts)
}

// AppendUvarintField appends varint field num unless v is 0 (proto3
// leaves zero values out).
func AppendUvarintField(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

// AppendBytesField appends length-delimited field num unless v is empty.
func AppendBytesField(b []byte, num protowire.Number, v []byte) []byte {
	if len(v) == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

func appendBlockMeta(b []byte, m *Meta) []byte {
	b = AppendBytesField(b, bmFormat, []byte(m.Format))
	b = AppendBytesField(b, bmBlockID, m.BlockID[:])
	b = AppendBytesField(b, bmTenantID, []byte(m.TenantID))
	b = appendTimestamp(b, bmStartTime, m.StartTime)
	b = appendTimestamp(b, bmEndTime, m.EndTime)
	b = AppendUvarintField(b, bmTotalObjects, uint64(m.TotalObjects))
	b = AppendUvarintField(b, bmSize, m.Size)
	b = AppendUvarintField(b, bmCompactionLevel, uint64(m.CompactionLevel))
	b = AppendUvarintField(b, bmIndexPageSize, uint64(m.IndexPageSize))
	b = AppendUvarintField(b, bmTotalRecords, uint64(m.TotalRecords))
	b = AppendUvarintField(b, bmBloomShards, uint64(m.BloomShards))
	b = AppendUvarintField(b, bmFooterSize, uint64(m.FooterSize))
	if len(m.DedicatedColumns) > 0 {
		b = AppendBytesField(b, bmDedicatedColumns, MarshalDedicatedColumns(m.DedicatedColumns))
	}
	b = AppendUvarintField(b, bmReplicationFactor, uint64(m.ReplicationFactor))
	return b
}

// MarshalProto encodes the protobuf TenantIndex message (uncompressed).
func (ti *TenantIndex) MarshalProto() []byte {
	b := appendTimestamp(nil, tiCreatedAt, ti.CreatedAt)
	for _, m := range ti.Meta {
		b = protowire.AppendTag(b, tiMeta, protowire.BytesType)
		b = protowire.AppendBytes(b, appendBlockMeta(nil, m))
	}
	for _, c := range ti.Compacted {
		inner := protowire.AppendTag(nil, cbMeta, protowire.BytesType)
		inner = protowire.AppendBytes(inner, appendBlockMeta(nil, &c.Meta))
		inner = appendTimestamp(inner, cbCompactedTime, c.CompactedTime)
		b = protowire.AppendTag(b, tiCompacted, protowire.BytesType)
		b = protowire.AppendBytes(b, inner)
	}
	return b
}

// EncodePbZst is the index.pb.zst object: one zstd frame of MarshalProto.
func (ti *TenantIndex) EncodePbZst() ([]byte, error) {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
	if err != nil {
		return nil, err
	}
	defer enc.Close()
	return enc.EncodeAll(ti.MarshalProto(), nil), nil
}

// DecodeTenantIndexPbZst decodes an index.pb.zst object.
func DecodeTenantIndexPbZst(data []byte) (*TenantIndex, error) {
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1))
	if err != nil {
		return nil, err
	}
	defer dec.Close()
	raw, err := dec.DecodeAll(data, nil)
	if err != nil {
		return nil, fmt.Errorf("decoding %s: %w", TenantIndexProtoName, err)
	}
	ti, err := UnmarshalTenantIndexProto(raw)
	if err != nil {
		return nil, fmt.Errorf("decoding %s: %w", TenantIndexProtoName, err)
	}
	return ti, nil
}

// UnmarshalTenantIndexProto decodes the protobuf TenantIndex message,
// skipping unknown fields.
func UnmarshalTenantIndexProto(b []byte) (*TenantIndex, error) {
	ti := &TenantIndex{}
	err := WalkFields(b, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		switch num {
		case tiCreatedAt:
			t, err := parseTimestamp(v)
			ti.CreatedAt = t
			return err
		case tiMeta:
			m, err := parseBlockMeta(v)
			if err != nil {
				return err
			}
			ti.Meta = append(ti.Meta, m)
		case tiCompacted:
			c := &CompactedMeta{}
			err := WalkFields(v, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
				switch num {
				case cbMeta:
					m, err := parseBlockMeta(v)
					if err != nil {
						return err
					}
					c.Meta = *m
				case cbCompactedTime:
					t, err := parseTimestamp(v)
					c.CompactedTime = t
					return err
				}
				return nil
			})
			if err != nil {
				return err
			}
			ti.Compacted = append(ti.Compacted, c)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return ti, nil
}

// WalkFields calls fn for every field of a protobuf message: v holds the
// payload of length-delimited fields, x the value of varint and fixed
// ones. Hand-decoded messages (the tenant index here, Tempo's query
// protocol in package query) share it.
func WalkFields(b []byte, fn func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		var v []byte
		var x uint64
		switch typ {
		case protowire.VarintType:
			x, n = protowire.ConsumeVarint(b)
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(b)
		case protowire.Fixed32Type:
			var y uint32
			y, n = protowire.ConsumeFixed32(b)
			x = uint64(y)
		case protowire.Fixed64Type:
			x, n = protowire.ConsumeFixed64(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if err := fn(num, typ, v, x); err != nil {
			return err
		}
	}
	return nil
}

func parseTimestamp(b []byte) (time.Time, error) {
	var sec, nsec int64
	err := WalkFields(b, func(num protowire.Number, _ protowire.Type, _ []byte, x uint64) error {
		switch num {
		case tsSeconds:
			sec = int64(x)
		case tsNanos:
			nsec = int64(int32(x))
		}
		return nil
	})
	return time.Unix(sec, nsec).UTC(), err
}

func parseBlockMeta(b []byte) (*Meta, error) {
	m := &Meta{}
	err := WalkFields(b, func(num protowire.Number, _ protowire.Type, v []byte, x uint64) error {
		var err error
		switch num {
		case bmFormat:
			m.Format = string(v)
		case bmBlockID:
			m.BlockID, err = uuid.FromBytes(v)
		case bmTenantID:
			m.TenantID = string(v)
		case bmStartTime:
			m.StartTime, err = parseTimestamp(v)
		case bmEndTime:
			m.EndTime, err = parseTimestamp(v)
		case bmTotalObjects:
			m.TotalObjects = int64(x)
		case bmSize:
			m.Size = x
		case bmCompactionLevel:
			m.CompactionLevel = uint32(x)
		case bmIndexPageSize:
			m.IndexPageSize = uint32(x)
		case bmTotalRecords:
			m.TotalRecords = uint32(x)
		case bmBloomShards:
			m.BloomShards = uint32(x)
		case bmFooterSize:
			m.FooterSize = uint32(x)
		case bmDedicatedColumns:
			if len(v) > 0 {
				err = json.Unmarshal(v, &m.DedicatedColumns)
			}
		case bmReplicationFactor:
			m.ReplicationFactor = uint32(x)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

// WriteTenantIndex stores both index objects of tenant: index.pb.zst first,
// then index.json.gz, as Tempo does.
func WriteTenantIndex(ctx context.Context, b *storage.Bucket, tenant string, ti *TenantIndex) error {
	pb, err := ti.EncodePbZst()
	if err != nil {
		return fmt.Errorf("encoding tenant index of %s: %w", tenant, err)
	}
	js, err := ti.EncodeJSONGz()
	if err != nil {
		return fmt.Errorf("encoding tenant index of %s: %w", tenant, err)
	}
	if err := b.Write(ctx, TenantIndexProtoKey(tenant), pb); err != nil {
		return err
	}
	return b.Write(ctx, TenantIndexJSONKey(tenant), js)
}

// ReadTenantIndex reads a tenant's index as Tempo does: index.pb.zst, and
// index.json.gz only when the protobuf object does not exist. When neither
// exists the error matches storage.ErrNotFound.
func ReadTenantIndex(ctx context.Context, b *storage.Bucket, tenant string) (*TenantIndex, error) {
	data, err := b.Read(ctx, TenantIndexProtoKey(tenant))
	if err == nil {
		ti, err := DecodeTenantIndexPbZst(data)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", TenantIndexProtoKey(tenant), err)
		}
		return ti, nil
	}
	if !errors.Is(err, storage.ErrNotFound) {
		return nil, err
	}
	data, err = b.Read(ctx, TenantIndexJSONKey(tenant))
	if err != nil {
		return nil, err
	}
	ti, err := DecodeTenantIndexJSONGz(data)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", TenantIndexJSONKey(tenant), err)
	}
	return ti, nil
}
