// Package jaegeres migrates Jaeger's span history out of Elasticsearch or
// OpenSearch into vParquet4 blocks: it detects the server, finds the span
// indices, exports them by point-in-time + search_after (or sliced scroll
// where PIT is missing) sorted by trace ID, decodes every Jaeger document
// variant into github.com/jaegertracing/jaeger/model spans, translates them
// to OTLP with the collector-contrib Jaeger translator, writes whole traces
// into blocks and checkpoints only what is stored.
//
// It owns the Elasticsearch client (olivere/elastic v7) and the checkpoint
// format. It must not parse command lines, print to terminals or write
// anything to Elasticsearch: a migration only reads from the cluster. It
// reports progress through callbacks and returns a Summary.
package jaegeres
