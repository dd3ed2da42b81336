// Package block owns what every Tempo block format (vParquet3, 4 and 5) has
// in common: trace IDs, the names of a block's objects in the bucket, the
// meta.json document, the per-tenant index (index.json.gz and index.pb.zst)
// and the bloom-filter shards over trace IDs.
//
// It knows nothing of parquet or of the trace model: the format packages
// (vparquet3, vparquet4, vparquet5) build on it. It moves no bytes itself
// except through the helpers that take a *storage.Bucket explicitly.
//
// Encoders here must produce exactly what Tempo produces (see
// shared/TEMPO-FORMAT.md §1–§4): Tempo reads these objects directly, so a
// reordered key or an extra field is a compatibility bug. Decoders are
// tolerant where Tempo's output varies (time-zone offsets) and strict where a
// wrong guess would serve wrong data (unknown formats, truncated shards).
package block
