package block

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/tracectl/tracectl/internal/storage"
)

// WriteNoCompact stores the empty nocompact.flg marker of a block (§5):
// compactors leave the block alone. Write it before meta.json.
func WriteNoCompact(ctx context.Context, b *storage.Bucket, tenant string, blockID uuid.UUID) error {
	return b.Write(ctx, NoCompactKey(tenant, blockID), nil)
}

// ReadCompactedMeta reads a compacted block's meta.compacted.json; its
// compactedTime is the object's modification time, as Tempo takes it.
func ReadCompactedMeta(ctx context.Context, b *storage.Bucket, tenant string, blockID uuid.UUID) (*CompactedMeta, error) {
	key := CompactedMetaKey(tenant, blockID)
	data, err := b.Read(ctx, key)
	if err != nil {
		return nil, err
	}
	attrs, err := b.Attributes(ctx, key)
	if err != nil {
		return nil, err
	}
	m, err := ParseMeta(key, data)
	if err != nil {
		return nil, err
	}
	return &CompactedMeta{Meta: *m, CompactedTime: attrs.ModTime.UTC()}, nil
}

// MarkCompacted retires a block after compaction the way Tempo does on
// object stores: meta.json is copied to meta.compacted.json, then deleted.
// Readers skip the block from then on; it is deleted after Tempo's
// compacted_block_retention.
func MarkCompacted(ctx context.Context, b *storage.Bucket, tenant string, blockID uuid.UUID) error {
	if err := b.Copy(ctx, CompactedMetaKey(tenant, blockID), MetaKey(tenant, blockID)); err != nil {
		return fmt.Errorf("marking block %s/%s compacted: %w", tenant, blockID, err)
	}
	if err := b.Delete(ctx, MetaKey(tenant, blockID)); err != nil {
		return fmt.Errorf("marking block %s/%s compacted: %w", tenant, blockID, err)
	}
	return nil
}

// BuildTenantIndex lists a tenant's blocks and reads their metas, as
// Tempo's tenant-index builder does: blocks with meta.json are live, those
// with only meta.compacted.json are compacted (compactedTime from the
// object's modification time), directories with neither (a block still
// being written) are left out. Both lists are sorted by block ID.
// Unreadable metas are errors: an index that silently drops blocks would
// hide their traces from Tempo.
func BuildTenantIndex(ctx context.Context, b *storage.Bucket, tenant string, now time.Time) (*TenantIndex, error) {
	dirs, err := b.ListAll(ctx, tenant+"/", "/")
	if err != nil {
		return nil, err
	}
	ti := &TenantIndex{CreatedAt: now.UTC(), Meta: []*Meta{}, Compacted: []*CompactedMeta{}}
	for _, d := range dirs {
		if !d.IsDir {
			continue
		}
		name := strings.TrimSuffix(strings.TrimPrefix(d.Key, tenant+"/"), "/")
		id, err := uuid.Parse(name)
		if err != nil || id.String() != name {
			continue // not a block directory
		}
		m, err := ReadMeta(ctx, b, tenant, id)
		if err == nil {
			ti.Meta = append(ti.Meta, m)
			continue
		}
		if !errors.Is(err, storage.ErrNotFound) {
			return nil, err
		}
		c, err := ReadCompactedMeta(ctx, b, tenant, id)
		if err == nil {
			ti.Compacted = append(ti.Compacted, c)
			continue
		}
		if !errors.Is(err, storage.ErrNotFound) {
			return nil, err
		}
	}
	slices.SortFunc(ti.Meta, func(x, y *Meta) int { return strings.Compare(x.BlockID.String(), y.BlockID.String()) })
	slices.SortFunc(ti.Compacted, func(x, y *CompactedMeta) int {
		return strings.Compare(x.BlockID.String(), y.BlockID.String())
	})
	return ti, nil
}
