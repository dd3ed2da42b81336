package block

import (
	"bytes"
	"context"
	"fmt"
	"hash/fnv"
	"math"

	"github.com/bits-and-blooms/bloom/v3"

	"github.com/tracectl/tracectl/internal/storage"
)

// Bloom-filter parameters of §3.9.
const (
	// BloomFalsePositive is the target false-positive rate.
	BloomFalsePositive = 0.01
	// BloomShardBytes is the bitset size of one shard (m/8).
	BloomShardBytes = 100 * 1024
	// BloomShardBits is m, the bits per shard.
	BloomShardBits = BloomShardBytes * 8
	// BloomShardObjectSize is the length of one bloom-N object: three
	// uint64 headers (m, k, bitset length) plus the bitset words.
	BloomShardObjectSize = 24 + BloomShardBytes
	// MaxBloomShards caps the shard count.
	MaxBloomShards = 1000
)

// BloomParams returns the shard count and hash count k for n expected
// trace IDs (n < 1 counts as 1).
func BloomParams(n int) (shards int, k uint) {
	if n < 1 {
		n = 1
	}
	fn := float64(n)
	m := math.Ceil(fn * math.Log(1/BloomFalsePositive) / (math.Ln2 * math.Ln2))
	k = uint(math.Ceil(math.Ln2 * m / fn))
	shards = int(math.Ceil(m / BloomShardBits))
	shards = max(1, min(shards, MaxBloomShards))
	return shards, k
}

// BloomShardOf returns the shard holding id: FNV-1 (32-bit) of the 16 ID
// bytes modulo the shard count.
func BloomShardOf(id TraceID, shards int) int {
	h := fnv.New32()
	h.Write(id[:])
	return int(h.Sum32() % uint32(shards))
}

// Bloom is the set of bloom shards of one block being written. It is not
// safe for concurrent use.
type Bloom struct {
	shards []*bloom.BloomFilter
}

// NewBloom sizes a sharded bloom filter for n expected trace IDs.
func NewBloom(n int) *Bloom {
	count, k := BloomParams(n)
	b := &Bloom{shards: make([]*bloom.BloomFilter, count)}
	for i := range b.shards {
		b.shards[i] = bloom.New(BloomShardBits, k)
	}
	return b
}

// Add records id in its shard.
func (b *Bloom) Add(id TraceID) { b.shards[BloomShardOf(id, len(b.shards))].Add(id[:]) }

// Test reports whether id may be in the set.
func (b *Bloom) Test(id TraceID) bool { return b.shards[BloomShardOf(id, len(b.shards))].Test(id[:]) }

// Shards is the number of shards (meta.json bloomShards).
func (b *Bloom) Shards() int { return len(b.shards) }

// Marshal returns the bytes of object bloom-i.
func (b *Bloom) Marshal(i int) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(BloomShardObjectSize)
	if _, err := b.shards[i].WriteTo(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// BloomShard is one decoded bloom-N object.
type BloomShard struct {
	f *bloom.BloomFilter
}

// ParseBloomShard decodes a bloom-N object. name is used in errors (pass
// the object's key). Shards whose size or header do not match §3.9 are
// rejected rather than trusted: a wrong shard would hide traces.
func ParseBloomShard(name string, data []byte) (*BloomShard, error) {
	if len(data) < 24 {
		return nil, fmt.Errorf("decoding bloom shard %s: %d bytes, want %d", name, len(data), BloomShardObjectSize)
	}
	m := beUint64(data[0:])
	k := beUint64(data[8:])
	n := beUint64(data[16:])
	if m == 0 || k == 0 || k > 64 || n != m || m%64 != 0 || uint64(len(data)) != 24+m/8 {
		return nil, fmt.Errorf("decoding bloom shard %s: corrupt header (m=%d k=%d len=%d) or size %d bytes (want %d)",
			name, m, k, n, len(data), 24+m/8)
	}
	f := &bloom.BloomFilter{}
	if _, err := f.ReadFrom(bytes.NewReader(data)); err != nil {
		return nil, fmt.Errorf("decoding bloom shard %s: %w", name, err)
	}
	return &BloomShard{f: f}, nil
}

// Test reports whether id may be in the shard (false means certainly not).
func (s *BloomShard) Test(id TraceID) bool { return s.f.Test(id[:]) }

func beUint64(b []byte) uint64 {
	_ = b[7]
	return uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32 |
		uint64(b[4])<<24 | uint64(b[5])<<16 | uint64(b[6])<<8 | uint64(b[7])
}

// MayContain reads the one bloom shard of the block that would hold id and
// tests it: false means the block certainly does not hold the trace (Tempo
// then never opens data.parquet). A block without shards (bloomShards 0)
// may contain anything.
func MayContain(ctx context.Context, b *storage.Bucket, m *Meta, id TraceID) (bool, error) {
	if m.BloomShards == 0 {
		return true, nil
	}
	key := BloomKey(m.TenantID, m.BlockID, BloomShardOf(id, int(m.BloomShards)))
	data, err := b.Read(ctx, key)
	if err != nil {
		return false, fmt.Errorf("block %s: %w", m, err)
	}
	s, err := ParseBloomShard(key, data)
	if err != nil {
		return false, err
	}
	return s.Test(id), nil
}
