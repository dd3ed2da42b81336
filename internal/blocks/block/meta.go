package block

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/tracectl/tracectl/internal/storage"
)

// Block formats tracectl knows (meta.json "format").
const (
	FormatVParquet3 = "vParquet3"
	FormatVParquet4 = "vParquet4"
	FormatVParquet5 = "vParquet5"
)

// KnownFormats lists the formats tracectl reads, oldest first.
var KnownFormats = []string{FormatVParquet3, FormatVParquet4, FormatVParquet5}

// ErrUnknownFormat is wrapped by the error ParseMeta returns for a format
// string tracectl cannot read.
var ErrUnknownFormat = errors.New("unknown block format")

// Dedicated-column scopes and types (§3.6). The zero values ("") mean span
// and string, as in meta.json where those are left out.
const (
	ScopeSpan     = "span"
	ScopeResource = "resource"
	ScopeEvent    = "event"
	TypeString    = "string"
	TypeInt       = "int"
)

// DedicatedColumn assigns one attribute to a spare column (§3.6). Scope and
// Type are normalised on decode: "" never comes back, "span"/"string" do.
type DedicatedColumn struct {
	Scope   string   // "span", "resource" or (v5) "event"
	Name    string   // attribute name
	Type    string   // "string" or "int"
	Options []string // v5 only: "array", "blob"
}

// Normalize returns c with empty Scope and Type set to their defaults.
func (c DedicatedColumn) Normalize() DedicatedColumn {
	if c.Scope == "" {
		c.Scope = ScopeSpan
	}
	if c.Type == "" {
		c.Type = TypeString
	}
	return c
}

// Equal compares two columns after normalisation.
func (c DedicatedColumn) Equal(o DedicatedColumn) bool {
	a, b := c.Normalize(), o.Normalize()
	if a.Scope != b.Scope || a.Name != b.Name || a.Type != b.Type || len(a.Options) != len(b.Options) {
		return false
	}
	for i := range a.Options {
		if a.Options[i] != b.Options[i] {
			return false
		}
	}
	return true
}

// MarshalJSON writes {"s":…,"n":…,"t":…,"o":[…]} with defaults left out.
func (c DedicatedColumn) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	c.appendJSON(&b)
	return b.Bytes(), nil
}

func (c DedicatedColumn) appendJSON(b *bytes.Buffer) {
	b.WriteByte('{')
	first := true
	field := func(k string) {
		if !first {
			b.WriteByte(',')
		}
		first = false
		b.WriteString(`"` + k + `":`)
	}
	if c.Scope != "" && c.Scope != ScopeSpan {
		field("s")
		writeJSONString(b, c.Scope)
	}
	field("n")
	writeJSONString(b, c.Name)
	if c.Type != "" && c.Type != TypeString {
		field("t")
		writeJSONString(b, c.Type)
	}
	if len(c.Options) > 0 {
		field("o")
		b.WriteByte('[')
		for i, o := range c.Options {
			if i > 0 {
				b.WriteByte(',')
			}
			writeJSONString(b, o)
		}
		b.WriteByte(']')
	}
	b.WriteByte('}')
}

// UnmarshalJSON reads the meta.json form and normalises it.
func (c *DedicatedColumn) UnmarshalJSON(data []byte) error {
	var aux struct {
		S string   `json:"s"`
		N string   `json:"n"`
		T string   `json:"t"`
		O []string `json:"o"`
	}
	if err := json.Unmarshal(data, &aux); err != nil {
		return err
	}
	*c = DedicatedColumn{Scope: aux.S, Name: aux.N, Type: aux.T, Options: aux.O}.Normalize()
	return nil
}

// DedicatedColumnsEqual compares two lists entry by entry (order matters:
// Tempo only compacts blocks whose lists are equal).
func DedicatedColumnsEqual(a, b []DedicatedColumn) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].Equal(b[i]) {
			return false
		}
	}
	return true
}

// MarshalDedicatedColumns encodes a list as in meta.json ("[]" when empty).
func MarshalDedicatedColumns(cols []DedicatedColumn) []byte {
	var b bytes.Buffer
	appendDedicatedColumns(&b, cols)
	return b.Bytes()
}

func appendDedicatedColumns(b *bytes.Buffer, cols []DedicatedColumn) {
	b.WriteByte('[')
	for i, c := range cols {
		if i > 0 {
			b.WriteByte(',')
		}
		c.appendJSON(b)
	}
	b.WriteByte(']')
}

// Meta is a block's meta.json (§2).
type Meta struct {
	Format            string
	BlockID           uuid.UUID
	TenantID          string
	StartTime         time.Time // whole seconds
	EndTime           time.Time
	TotalObjects      int64  // traces (rows)
	Size              uint64 // bytes of data.parquet
	CompactionLevel   uint32
	IndexPageSize     uint32
	TotalRecords      uint32 // parquet row groups
	BloomShards       uint32
	FooterSize        uint32 // parquet footer metadata length
	DedicatedColumns  []DedicatedColumn
	ReplicationFactor uint32
}

// String names the block for messages: "<tenant>/<blockID>".
func (m *Meta) String() string { return m.TenantID + "/" + m.BlockID.String() }

// MarshalJSON encodes m exactly as Tempo does: compact, keys in Tempo's
// order, size/dedicatedColumns/replicationFactor left out when zero or
// empty, times in RFC 3339 UTC.
func (m Meta) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	m.appendJSON(&b, nil)
	return b.Bytes(), nil
}

func (m *Meta) appendJSON(b *bytes.Buffer, compactedTime *time.Time) {
	b.WriteString(`{"format":`)
	writeJSONString(b, m.Format)
	b.WriteString(`,"blockID":"`)
	b.WriteString(m.BlockID.String())
	b.WriteString(`","tenantID":`)
	writeJSONString(b, m.TenantID)
	b.WriteString(`,"startTime":"`)
	b.WriteString(formatTime(m.StartTime))
	b.WriteString(`","endTime":"`)
	b.WriteString(formatTime(m.EndTime))
	b.WriteString(`","totalObjects":`)
	b.WriteString(strconv.FormatInt(m.TotalObjects, 10))
	if m.Size != 0 {
		b.WriteString(`,"size":`)
		b.WriteString(strconv.FormatUint(m.Size, 10))
	}
	for _, kv := range []struct {
		k string
		v uint32
	}{
		{"compactionLevel", m.CompactionLevel},
		{"indexPageSize", m.IndexPageSize},
		{"totalRecords", m.TotalRecords},
		{"bloomShards", m.BloomShards},
		{"footerSize", m.FooterSize},
	} {
		b.WriteString(`,"` + kv.k + `":`)
		b.WriteString(strconv.FormatUint(uint64(kv.v), 10))
	}
	if len(m.DedicatedColumns) > 0 {
		b.WriteString(`,"dedicatedColumns":`)
		appendDedicatedColumns(b, m.DedicatedColumns)
	}
	if m.ReplicationFactor != 0 {
		b.WriteString(`,"replicationFactor":`)
		b.WriteString(strconv.FormatUint(uint64(m.ReplicationFactor), 10))
	}
	if compactedTime != nil {
		b.WriteString(`,"compactedTime":"`)
		b.WriteString(compactedTime.UTC().Format(time.RFC3339Nano))
		b.WriteByte('"')
	}
	b.WriteByte('}')
}

// formatTime prints t in UTC, without fractional seconds when whole.
func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// metaJSON is the decoding shape; absent keys stay zero.
type metaJSON struct {
	Format            string            `json:"format"`
	BlockID           string            `json:"blockID"`
	TenantID          string            `json:"tenantID"`
	StartTime         time.Time         `json:"startTime"`
	EndTime           time.Time         `json:"endTime"`
	TotalObjects      int64             `json:"totalObjects"`
	Size              uint64            `json:"size"`
	CompactionLevel   uint32            `json:"compactionLevel"`
	IndexPageSize     uint32            `json:"indexPageSize"`
	TotalRecords      uint32            `json:"totalRecords"`
	BloomShards       uint32            `json:"bloomShards"`
	FooterSize        uint32            `json:"footerSize"`
	DedicatedColumns  []DedicatedColumn `json:"dedicatedColumns"`
	ReplicationFactor uint32            `json:"replicationFactor"`
	CompactedTime     *time.Time        `json:"compactedTime,omitempty"`
}

func (j *metaJSON) meta() (Meta, error) {
	id, err := uuid.Parse(j.BlockID)
	if err != nil {
		return Meta{}, fmt.Errorf("blockID %q: %v", j.BlockID, err)
	}
	return Meta{
		Format: j.Format, BlockID: id, TenantID: j.TenantID,
		StartTime: j.StartTime.UTC(), EndTime: j.EndTime.UTC(),
		TotalObjects: j.TotalObjects, Size: j.Size,
		CompactionLevel: j.CompactionLevel, IndexPageSize: j.IndexPageSize,
		TotalRecords: j.TotalRecords, BloomShards: j.BloomShards, FooterSize: j.FooterSize,
		DedicatedColumns: j.DedicatedColumns, ReplicationFactor: j.ReplicationFactor,
	}, nil
}

// UnmarshalJSON decodes any meta.json, accepting any RFC 3339 offset (times
// come back in UTC). It does not check the format: see ParseMeta.
func (m *Meta) UnmarshalJSON(data []byte) error {
	var j metaJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return err
	}
	mm, err := j.meta()
	if err != nil {
		return err
	}
	*m = mm
	return nil
}

// ParseMeta decodes a meta.json (or meta.compacted.json) and checks that
// tracectl can read the block: a known format and a block ID. Errors name
// the object (pass its key as name).
func ParseMeta(name string, data []byte) (*Meta, error) {
	var m Meta
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", name, err)
	}
	if err := m.CheckFormat(); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", name, err)
	}
	return &m, nil
}

// CheckFormat returns an error wrapping ErrUnknownFormat unless m.Format is
// one of KnownFormats.
func (m *Meta) CheckFormat() error {
	for _, f := range KnownFormats {
		if m.Format == f {
			return nil
		}
	}
	return fmt.Errorf("block %s: %w %q; tracectl reads %v (is this a newer Tempo, or not a meta.json?)",
		m.BlockID, ErrUnknownFormat, m.Format, KnownFormats)
}

// CompactedMeta is an entry of a tenant index's "compacted" list: the
// block's meta plus when it was compacted away.
type CompactedMeta struct {
	Meta
	CompactedTime time.Time
}

// MarshalJSON is the meta.json encoding followed by "compactedTime".
func (c CompactedMeta) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	c.Meta.appendJSON(&b, &c.CompactedTime)
	return b.Bytes(), nil
}

// UnmarshalJSON decodes a compacted entry.
func (c *CompactedMeta) UnmarshalJSON(data []byte) error {
	var j metaJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return err
	}
	m, err := j.meta()
	if err != nil {
		return err
	}
	c.Meta = m
	c.CompactedTime = time.Time{}
	if j.CompactedTime != nil {
		c.CompactedTime = j.CompactedTime.UTC()
	}
	return nil
}

// writeJSONString writes s as a JSON string the way encoding/json does
// (HTML-safe escaping included, as Go's encoder and so Tempo use).
func writeJSONString(b *bytes.Buffer, s string) {
	enc, _ := json.Marshal(s)
	b.Write(enc)
}

// ReadMeta reads and checks the meta.json of a live block. A missing
// meta.json (block not there, or compacted away) matches storage.ErrNotFound.
func ReadMeta(ctx context.Context, b *storage.Bucket, tenant string, blockID uuid.UUID) (*Meta, error) {
	key := MetaKey(tenant, blockID)
	data, err := b.Read(ctx, key)
	if err != nil {
		return nil, err
	}
	return ParseMeta(key, data)
}

// WriteMeta stores m as the block's meta.json, which makes it live: call it
// after every other object of the block is written.
func WriteMeta(ctx context.Context, b *storage.Bucket, m *Meta) error {
	data, _ := m.MarshalJSON()
	return b.Write(ctx, MetaKey(m.TenantID, m.BlockID), data)
}
