package search

import (
	"context"
	"fmt"
	"net/url"

	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/storage"
)

// Options tune an Engine.
type Options struct {
	// Concurrency bounds the block jobs run at once (default: 2 × CPUs, at
	// least 4).
	Concurrency int
}

// Engine answers searches over one bucket. It is safe for concurrent use
// and meant to live as long as the server: it keeps parsed block footers
// and dictionaries between queries.
type Engine struct {
	bucket *storage.Bucket
	opts   Options
}

// NewEngine returns an engine reading blocks from b.
func NewEngine(b *storage.Bucket, opts Options) *Engine {
	return &Engine{bucket: b, opts: opts}
}

// ParseRequest reads Tempo's /api/search parameters: q (TraceQL) or tags
// (logfmt, `service.name=x http.status_code=500`), minDuration and
// maxDuration (Go durations), limit, spss, start and end (Unix seconds).
// Errors wrap ErrBadRequest and name the parameter.
func ParseRequest(v url.Values) (Request, error) {
	return Request{}, fmt.Errorf("search: not implemented yet")
}

// ParseTagsRequest reads the parameters of /api/search/tags and
// /api/v2/search/tags: scope, q, start, end, limit.
func ParseTagsRequest(v url.Values) (TagsRequest, error) {
	return TagsRequest{}, fmt.Errorf("search: not implemented yet")
}

// ParseTagValuesRequest reads the parameters of /api/search/tag/<tag>/values
// (v2 false) and /api/v2/search/tag/<tag>/values: q (parsed leniently),
// start, end, limit.
func ParseTagValuesRequest(tag string, v2 bool, v url.Values) (TagValuesRequest, error) {
	return TagValuesRequest{}, fmt.Errorf("search: not implemented yet")
}

// Search answers req from the head (may be nil) and the blocks in metas
// (one tenant's live blocks; the engine prunes them by time). A trace with
// parts in several blocks and the head is one result. Results are sorted
// by start time, newest first, as Tempo's. Blocks that cannot be read fail
// the search.
func (e *Engine) Search(ctx context.Context, tenant string, metas []*block.Meta, head HeadSource, req Request) (*Response, error) {
	return nil, fmt.Errorf("search: not implemented yet")
}

// TagNames answers /api/search/tags and /api/v2/search/tags.
func (e *Engine) TagNames(ctx context.Context, tenant string, metas []*block.Meta, head HeadSource, req TagsRequest) (*TagNamesResponse, error) {
	return nil, fmt.Errorf("search: not implemented yet")
}

// TagValues answers /api/search/tag/<tag>/values and the v2 form.
func (e *Engine) TagValues(ctx context.Context, tenant string, metas []*block.Meta, head HeadSource, req TagValuesRequest) (*TagValuesResponse, error) {
	return nil, fmt.Errorf("search: not implemented yet")
}
