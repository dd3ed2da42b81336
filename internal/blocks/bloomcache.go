package blocks

import (
	"container/list"
	"sync"

	"github.com/google/uuid"

	"github.com/tracectl/tracectl/internal/blocks/block"
)

// BloomCache keeps decoded bloom shards in memory, least recently used out
// first, so warm trace lookups read no bloom objects. Blocks are immutable,
// so entries never go stale; a deleted block's entries just age out. Safe
// for concurrent use.
type BloomCache struct {
	mu       sync.Mutex
	maxBytes int64
	bytes    int64
	order    *list.List // front = most recent; values are *bloomEntry
	entries  map[bloomKey]*list.Element
}

type bloomKey struct {
	tenant string
	block  uuid.UUID
	shard  int
}

type bloomEntry struct {
	key   bloomKey
	shard *block.BloomShard
	size  int64
}

// NewBloomCache returns a cache holding at most maxBytes of shards (one
// shard is about 100 KiB).
func NewBloomCache(maxBytes int64) *BloomCache {
	return &BloomCache{maxBytes: maxBytes, order: list.New(), entries: map[bloomKey]*list.Element{}}
}

func (c *BloomCache) get(k bloomKey) *block.BloomShard {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[k]
	if !ok {
		return nil
	}
	c.order.MoveToFront(e)
	return e.Value.(*bloomEntry).shard
}

func (c *BloomCache) put(k bloomKey, s *block.BloomShard, size int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[k]; ok || size > c.maxBytes {
		return
	}
	c.entries[k] = c.order.PushFront(&bloomEntry{key: k, shard: s, size: size})
	c.bytes += size
	for c.bytes > c.maxBytes {
		last := c.order.Back()
		e := last.Value.(*bloomEntry)
		c.order.Remove(last)
		delete(c.entries, e.key)
		c.bytes -= e.size
	}
}

// Bytes is the size of the shards held.
func (c *BloomCache) Bytes() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bytes
}

// Len is the number of shards held.
func (c *BloomCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
