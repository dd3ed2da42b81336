package block

import (
	"fmt"
	"strings"

	"github.com/google/uuid"
)

// Object names inside a block directory and at the tenant root (§1).
const (
	DataName          = "data.parquet"
	IndexName         = "index"
	MetaName          = "meta.json"
	CompactedMetaName = "meta.compacted.json"
	NoCompactName     = "nocompact.flg"
	bloomPrefix       = "bloom-"

	TenantIndexJSONName  = "index.json.gz"
	TenantIndexProtoName = "index.pb.zst"
	// tenantIndexEmbeddedName is the file name stored in the gzip header.
	tenantIndexEmbeddedName = "index.json"

	// DefaultTenant is Tempo's tenant when multi-tenancy is off.
	DefaultTenant = "single-tenant"
)

// BlockPrefix is "<tenant>/<blockID>/", the directory of one block.
func BlockPrefix(tenant string, blockID uuid.UUID) string {
	return tenant + "/" + blockID.String() + "/"
}

// ObjectKey is "<tenant>/<blockID>/<name>".
func ObjectKey(tenant string, blockID uuid.UUID, name string) string {
	return BlockPrefix(tenant, blockID) + name
}

// DataKey, MetaKey, … name the objects of one block.
func DataKey(tenant string, blockID uuid.UUID) string  { return ObjectKey(tenant, blockID, DataName) }
func IndexKey(tenant string, blockID uuid.UUID) string { return ObjectKey(tenant, blockID, IndexName) }
func MetaKey(tenant string, blockID uuid.UUID) string  { return ObjectKey(tenant, blockID, MetaName) }
func CompactedMetaKey(tenant string, blockID uuid.UUID) string {
	return ObjectKey(tenant, blockID, CompactedMetaName)
}
func NoCompactKey(tenant string, blockID uuid.UUID) string {
	return ObjectKey(tenant, blockID, NoCompactName)
}

// BloomName is "bloom-<shard>".
func BloomName(shard int) string { return fmt.Sprintf("%s%d", bloomPrefix, shard) }

// BloomKey is "<tenant>/<blockID>/bloom-<shard>".
func BloomKey(tenant string, blockID uuid.UUID, shard int) string {
	return ObjectKey(tenant, blockID, BloomName(shard))
}

// TenantIndexJSONKey and TenantIndexProtoKey name a tenant's two index objects.
func TenantIndexJSONKey(tenant string) string  { return tenant + "/" + TenantIndexJSONName }
func TenantIndexProtoKey(tenant string) string { return tenant + "/" + TenantIndexProtoName }

// ParseBlockKey splits "<tenant>/<blockID>/<name>" into its parts. ok is
// false for keys of another shape (tenant-index objects, root files) or whose
// middle part is not a lowercase UUID.
func ParseBlockKey(key string) (tenant string, blockID uuid.UUID, name string, ok bool) {
	parts := strings.SplitN(key, "/", 3)
	if len(parts) != 3 || parts[0] == "" || parts[2] == "" {
		return "", uuid.UUID{}, "", false
	}
	id, err := uuid.Parse(parts[1])
	if err != nil || id.String() != parts[1] {
		return "", uuid.UUID{}, "", false
	}
	return parts[0], id, parts[2], true
}
