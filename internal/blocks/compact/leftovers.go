package compact

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/storage"
)

// removeFileLeftovers finishes the deletion of a block directory on a
// file:// bucket (a no-op elsewhere): it removes the temporary files of
// writes to it last touched before cutoff (a writer killed mid-object
// leaves one; listings hide it, so deleteBlockObjects never sees it) and
// then the directory if nothing is left in it (fileblob never removes
// directories). A fresher temporary file is a live writer's and keeps the
// directory; deleteExpired gives orphan status only to directories whose
// temporary files are all past the orphan age too.
func removeFileLeftovers(ctx context.Context, b *storage.Bucket, tenantID string, id uuid.UUID, cutoff time.Time) error {
	prefix := block.BlockPrefix(tenantID, id)
	if _, err := b.RemoveStaleTemp(ctx, prefix, cutoff); err != nil {
		return err
	}
	return b.RemoveEmptyDirs(ctx, prefix)
}
