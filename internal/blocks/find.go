package blocks

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/storage"
)

// TraceFinder is what every format's block reader offers for trace-by-ID.
// FindTraceByID is called only after the block's bloom filter said the ID
// may be there; it returns found=false when the block does not hold it.
// Implementations are safe for concurrent use.
type TraceFinder interface {
	FindTraceByID(ctx context.Context, id block.TraceID) (ptrace.Traces, bool, error)
}

// FindOptions narrows a trace lookup.
type FindOptions struct {
	// Start and End, when set, skip blocks whose [start, end] does not
	// overlap them (as Tempo's start/end parameters do).
	Start, End time.Time
	// Concurrency bounds blocks read at once (default 8).
	Concurrency int
	// Blooms, when set, caches bloom shards across lookups.
	Blooms *BloomCache
}

// FindStats tells what a lookup did, for metrics and benchmarks.
type FindStats struct {
	Blocks         int   // blocks considered after time pruning
	BloomNegatives int   // blocks the bloom filter ruled out
	BlocksRead     int   // blocks whose data was consulted
	BlocksFound    int   // blocks holding part of the trace
	InspectedBytes int64 // bloom and data bytes read, approximately
}

// FindResult is a combined trace and what it took to find it.
type FindResult struct {
	Trace    ptrace.Traces // empty (no resource spans) when not found
	Found    bool
	Stats    FindStats
	Problems []Problem // blocks that could not be read; the others answered
}

// FindTrace looks id up in the given blocks of one bucket and combines the
// parts it finds, dropping repeated spans (same span ID and kind). A block
// that cannot be read becomes a Problem; FindTrace fails only when every
// candidate block failed.
func FindTrace(ctx context.Context, b *storage.Bucket, metas []*block.Meta, id block.TraceID, opts FindOptions) (*FindResult, error) {
	if opts.Concurrency <= 0 {
		opts.Concurrency = 8
	}
	var candidates []*block.Meta
	for _, m := range metas {
		if !opts.Start.IsZero() && m.EndTime.Before(opts.Start.Truncate(time.Second)) {
			continue
		}
		if !opts.End.IsZero() && m.StartTime.After(opts.End) {
			continue
		}
		candidates = append(candidates, m)
	}
	res := &FindResult{Trace: ptrace.NewTraces()}
	res.Stats.Blocks = len(candidates)

	type partial struct {
		td       ptrace.Traces
		found    bool
		negative bool
		bytes    int64
		problem  *Problem
	}
	parts := make([]partial, len(candidates))
	var wg sync.WaitGroup
	sem := make(chan struct{}, opts.Concurrency)
	for i, m := range candidates {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			p := &parts[i]
			shard := block.BloomShardOf(id, int(max(m.BloomShards, 1)))
			bf, n, err := loadBloom(ctx, b, opts.Blooms, m, shard)
			p.bytes += n
			if err != nil {
				p.problem = &Problem{Tenant: m.TenantID, BlockID: m.BlockID.String(), Object: block.BloomName(shard), Err: err}
				return
			}
			if !bf.Test(id) {
				p.negative = true
				return
			}
			r, err := OpenBlock(ctx, b, m)
			if err != nil {
				p.problem = &Problem{Tenant: m.TenantID, BlockID: m.BlockID.String(), Object: block.DataName, Err: err}
				return
			}
			td, found, err := r.FindTraceByID(ctx, id)
			if err != nil {
				p.problem = &Problem{Tenant: m.TenantID, BlockID: m.BlockID.String(), Object: block.DataName, Err: err}
				return
			}
			p.td, p.found = td, found
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	var found []ptrace.Traces
	for i := range parts {
		p := &parts[i]
		res.Stats.InspectedBytes += p.bytes
		switch {
		case p.problem != nil:
			res.Problems = append(res.Problems, *p.problem)
		case p.negative:
			res.Stats.BloomNegatives++
		default:
			res.Stats.BlocksRead++
			if p.found {
				res.Stats.BlocksFound++
				found = append(found, p.td)
			}
		}
	}
	if len(found) == 0 && len(res.Problems) > 0 && len(res.Problems) == len(candidates) {
		errs := make([]error, len(res.Problems))
		for i, p := range res.Problems {
			errs[i] = p
		}
		return res, fmt.Errorf("every block that may hold trace %s failed: %w", id.Hex(), errors.Join(errs...))
	}
	if len(found) > 0 {
		res.Found = true
		res.Trace = Combine(found...)
	}
	return res, nil
}

// loadBloom returns a block's bloom shard from the cache or the bucket,
// with the bytes read.
func loadBloom(ctx context.Context, b *storage.Bucket, cache *BloomCache, m *block.Meta, shard int) (*block.BloomShard, int64, error) {
	k := bloomKey{m.TenantID, m.BlockID, shard}
	if cache != nil {
		if s := cache.get(k); s != nil {
			return s, 0, nil
		}
	}
	key := block.BloomKey(m.TenantID, m.BlockID, shard)
	data, err := b.Read(ctx, key)
	if err != nil {
		return nil, 0, err
	}
	s, err := block.ParseBloomShard(key, data)
	if err != nil {
		return nil, int64(len(data)), err
	}
	if cache != nil {
		cache.put(k, s, int64(len(data)))
	}
	return s, int64(len(data)), nil
}

// spanKey identifies a span for de-duplication across parts of a trace:
// client and server spans may share an ID, so the kind is part of the key.
type spanKey struct {
	id   pcommon.SpanID
	kind ptrace.SpanKind
}

// Combine merges parts of one trace (from several blocks, or the head and
// blocks) into one ptrace.Traces. Spans already seen with the same span ID
// and kind are dropped; resource and scope groups are kept as they come.
// The parts are not modified.
func Combine(parts ...ptrace.Traces) ptrace.Traces {
	out := ptrace.NewTraces()
	seen := make(map[spanKey]struct{})
	for _, part := range parts {
		rss := part.ResourceSpans()
		for i := 0; i < rss.Len(); i++ {
			rs := rss.At(i)
			var outRS ptrace.ResourceSpans
			haveRS := false
			sss := rs.ScopeSpans()
			for j := 0; j < sss.Len(); j++ {
				ss := sss.At(j)
				var outSS ptrace.ScopeSpans
				haveSS := false
				spans := ss.Spans()
				for k := 0; k < spans.Len(); k++ {
					sp := spans.At(k)
					key := spanKey{sp.SpanID(), sp.Kind()}
					if _, dup := seen[key]; dup {
						continue
					}
					seen[key] = struct{}{}
					if !haveRS {
						outRS = out.ResourceSpans().AppendEmpty()
						rs.Resource().CopyTo(outRS.Resource())
						outRS.SetSchemaUrl(rs.SchemaUrl())
						haveRS = true
					}
					if !haveSS {
						outSS = outRS.ScopeSpans().AppendEmpty()
						ss.Scope().CopyTo(outSS.Scope())
						outSS.SetSchemaUrl(ss.SchemaUrl())
						haveSS = true
					}
					sp.CopyTo(outSS.Spans().AppendEmpty())
				}
			}
		}
	}
	return out
}
