// Package compact keeps a bucket of Tempo blocks small, fast and correct:
// it plans and runs compaction jobs (merging small vParquet4 blocks into
// larger ones the way Tempo's compactor does), applies retention, and
// verifies blocks against their meta.json, bloom filters and index.
//
// It owns the compaction lease (one compactor per tenant), the job
// journal that lets a re-run finish a job a crash interrupted, and the
// order of the steps that makes a crash at any moment lose no span and
// duplicate none in query results (readers combine the parts of a trace
// and drop repeated spans, see blocks.FindTrace).
//
// It must not know any CLI or server: callers pass a *storage.Bucket,
// typed options and an io.Writer or callbacks for progress. It moves bytes
// only through internal/storage and reads and writes blocks only through
// internal/blocks and its format packages. It never touches another
// tenant's objects than the one it was given.
package compact
