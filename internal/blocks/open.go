package blocks

import (
	"context"
	"fmt"

	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/blocks/vparquet3"
	"github.com/tracectl/tracectl/internal/blocks/vparquet4"
	"github.com/tracectl/tracectl/internal/blocks/vparquet5"
	"github.com/tracectl/tracectl/internal/storage"
)

// opener opens one block of a format for reading. It does no I/O until a
// read is asked for.
type opener func(ctx context.Context, b *storage.Bucket, m *block.Meta) (TraceFinder, error)

// formats maps meta.json's "format" to the package that reads it.
var formats = map[string]opener{
	block.FormatVParquet3: func(ctx context.Context, b *storage.Bucket, m *block.Meta) (TraceFinder, error) {
		return vparquet3.OpenBlock(ctx, b, m), nil
	},
	block.FormatVParquet4: func(ctx context.Context, b *storage.Bucket, m *block.Meta) (TraceFinder, error) {
		return vparquet4.OpenBlock(ctx, b, m), nil
	},
	block.FormatVParquet5: func(ctx context.Context, b *storage.Bucket, m *block.Meta) (TraceFinder, error) {
		return vparquet5.OpenBlock(ctx, b, m), nil
	},
}

// OpenBlock returns a reader for the block described by m, picked by its
// format. An unknown format is an error wrapping block.ErrUnknownFormat.
func OpenBlock(ctx context.Context, b *storage.Bucket, m *block.Meta) (TraceFinder, error) {
	open, ok := formats[m.Format]
	if !ok {
		return nil, fmt.Errorf("block %s: %w %q", m, block.ErrUnknownFormat, m.Format)
	}
	return open(ctx, b, m)
}
