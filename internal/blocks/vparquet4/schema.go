// Package vparquet4 reads and writes Grafana Tempo's vParquet4 blocks: the
// data.parquet row layout (one row per trace, §3 of TEMPO-FORMAT.md), the
// conversion between rows and OTLP traces, and the block writer and reader
// that put data.parquet, bloom shards, index and meta.json in a bucket.
//
// It owns only this format. What all formats share (trace IDs, meta.json,
// bloom shards, object names, tenant index) lives in package block; moving
// bytes is package storage's job. Callers hand in and get back
// ptrace.Traces; the row structs are exported for search code that wants to
// read columns directly.
package vparquet4

import (
	"sync"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"
	"github.com/parquet-go/parquet-go/encoding"
	"github.com/parquet-go/parquet-go/format"
)

// The row structs below mirror Tempo's vParquet4 schema leaf for leaf: field
// order, names, nesting, repetition and types are the format (Tempo locates
// columns by its own compiled schema). Tags give types, LIST/MAP wrappers,
// dictionary/delta/plain encodings and codecs; the one encoding tags cannot
// express in parquet-go v0.32, DELTA_LENGTH_BYTE_ARRAY, is applied by
// Schema to every byte-array leaf without a dictionary.

// Trace is one row of data.parquet.
type Trace struct {
	TraceID           []byte                  `parquet:"TraceID,uncompressed"`
	TraceIDText       string                  `parquet:"TraceIDText,snappy"`
	StartTimeUnixNano uint64                  `parquet:"StartTimeUnixNano,delta,uncompressed"`
	EndTimeUnixNano   uint64                  `parquet:"EndTimeUnixNano,delta,uncompressed"`
	DurationNano      uint64                  `parquet:"DurationNano,delta,uncompressed"`
	RootServiceName   string                  `parquet:"RootServiceName,dict,uncompressed"`
	RootSpanName      string                  `parquet:"RootSpanName,dict,uncompressed"`
	ServiceStats      map[string]ServiceStats `parquet:"ServiceStats" parquet-key:",uncompressed"`
	ResourceSpans     []ResourceSpans         `parquet:"rs,list"`
}

// ServiceStats counts the spans (and error spans) of one service.
type ServiceStats struct {
	SpanCount  uint32 `parquet:"SpanCount,delta,uncompressed"`
	ErrorCount uint32 `parquet:"ErrorCount,delta,uncompressed"`
}

// ResourceSpans is one resource and its scopes.
type ResourceSpans struct {
	Resource   Resource     `parquet:"Resource"`
	ScopeSpans []ScopeSpans `parquet:"ss,list"`
}

// Resource holds the resource attributes: well-known ones in fixed
// columns, assigned ones in dedicated columns, the rest in Attrs.
type Resource struct {
	Attrs                  []Attribute `parquet:"Attrs,list"`
	DroppedAttributesCount int32       `parquet:"DroppedAttributesCount,delta,snappy"`
	ServiceName            string      `parquet:"ServiceName,dict,snappy"`
	Cluster                *string     `parquet:"Cluster,dict,snappy"`
	Namespace              *string     `parquet:"Namespace,dict,snappy"`
	Pod                    *string     `parquet:"Pod,dict,snappy"`
	Container              *string     `parquet:"Container,dict,snappy"`
	K8sClusterName         *string     `parquet:"K8sClusterName,dict,snappy"`
	K8sNamespaceName       *string     `parquet:"K8sNamespaceName,dict,snappy"`
	K8sPodName             *string     `parquet:"K8sPodName,dict,snappy"`
	K8sContainerName       *string     `parquet:"K8sContainerName,dict,snappy"`

	DedicatedAttributes DedicatedAttributes `parquet:"DedicatedAttributes"`
}

// DedicatedAttributes are the ten spare string columns of one scope
// (resource or span); meta.json's dedicatedColumns says what each holds.
type DedicatedAttributes struct {
	String01 *string `parquet:"String01,dict,snappy"`
	String02 *string `parquet:"String02,dict,snappy"`
	String03 *string `parquet:"String03,dict,snappy"`
	String04 *string `parquet:"String04,dict,snappy"`
	String05 *string `parquet:"String05,dict,snappy"`
	String06 *string `parquet:"String06,dict,snappy"`
	String07 *string `parquet:"String07,dict,snappy"`
	String08 *string `parquet:"String08,dict,snappy"`
	String09 *string `parquet:"String09,dict,snappy"`
	String10 *string `parquet:"String10,dict,snappy"`
}

// slot returns a pointer to column String<i+1> (i in 0…9).
func (d *DedicatedAttributes) slot(i int) **string {
	switch i {
	case 0:
		return &d.String01
	case 1:
		return &d.String02
	case 2:
		return &d.String03
	case 3:
		return &d.String04
	case 4:
		return &d.String05
	case 5:
		return &d.String06
	case 6:
		return &d.String07
	case 7:
		return &d.String08
	case 8:
		return &d.String09
	case 9:
		return &d.String10
	}
	return nil
}

// ScopeSpans is one instrumentation scope and its spans.
type ScopeSpans struct {
	Scope InstrumentationScope `parquet:"Scope"`
	Spans []Span               `parquet:"Spans,list"`
}

// InstrumentationScope is an OTLP scope; all its attributes are generic.
type InstrumentationScope struct {
	Name                   string      `parquet:"Name,dict,snappy"`
	Version                string      `parquet:"Version,dict,snappy"`
	Attrs                  []Attribute `parquet:"Attrs,list"`
	DroppedAttributesCount int32       `parquet:"DroppedAttributesCount,delta,snappy"`
}

// Span is one span. ParentID, NestedSetLeft and NestedSetRight are the
// nested-set numbering of §3.8.
type Span struct {
	SpanID                 []byte      `parquet:"SpanID,uncompressed"`
	ParentSpanID           []byte      `parquet:"ParentSpanID,uncompressed"`
	ParentID               int32       `parquet:"ParentID,delta,uncompressed"`
	NestedSetLeft          int32       `parquet:"NestedSetLeft,delta,uncompressed"`
	NestedSetRight         int32       `parquet:"NestedSetRight,delta,uncompressed"`
	Name                   string      `parquet:"Name,dict,snappy"`
	Kind                   int64       `parquet:"Kind,delta,uncompressed"`
	TraceState             string      `parquet:"TraceState,snappy"`
	StartTimeUnixNano      uint64      `parquet:"StartTimeUnixNano,delta,uncompressed"`
	DurationNano           uint64      `parquet:"DurationNano,delta,uncompressed"`
	StatusCode             int64       `parquet:"StatusCode,delta,uncompressed"`
	StatusMessage          string      `parquet:"StatusMessage,snappy"`
	Attrs                  []Attribute `parquet:"Attrs,list"`
	DroppedAttributesCount int32       `parquet:"DroppedAttributesCount,delta,snappy"`
	Events                 []Event     `parquet:"Events,list"`
	DroppedEventsCount     int32       `parquet:"DroppedEventsCount,plain,snappy"`
	Links                  []Link      `parquet:"Links,list"`
	DroppedLinksCount      int32       `parquet:"DroppedLinksCount,plain,snappy"`
	HttpMethod             *string     `parquet:"HttpMethod,dict,snappy"`
	HttpUrl                *string     `parquet:"HttpUrl,dict,snappy"`
	HttpStatusCode         *int64      `parquet:"HttpStatusCode,plain,snappy"`

	DedicatedAttributes DedicatedAttributes `parquet:"DedicatedAttributes"`
}

// Event is a span event; its time is relative to the span start.
type Event struct {
	TimeSinceStartNano     uint64      `parquet:"TimeSinceStartNano,delta,uncompressed"`
	Name                   string      `parquet:"Name,dict,snappy"`
	Attrs                  []Attribute `parquet:"Attrs,list"`
	DroppedAttributesCount int32       `parquet:"DroppedAttributesCount,delta,snappy"`
}

// Link is a span link.
type Link struct {
	TraceID                []byte      `parquet:"TraceID,uncompressed"`
	SpanID                 []byte      `parquet:"SpanID,uncompressed"`
	TraceState             string      `parquet:"TraceState,snappy"`
	Attrs                  []Attribute `parquet:"Attrs,list"`
	DroppedAttributesCount int32       `parquet:"DroppedAttributesCount,delta,snappy"`
}

// Attribute is the generic attribute group of §3.7: exactly one of the
// value lists is filled (or none for an empty array), or ValueUnsupported
// holds the protobuf-JSON of a value the lists cannot express.
type Attribute struct {
	Key              string    `parquet:"Key,dict,snappy"`
	IsArray          bool      `parquet:"IsArray,plain,snappy"`
	Value            []string  `parquet:"Value,list" parquet-element:",dict,snappy"`
	ValueInt         []int64   `parquet:"ValueInt,list" parquet-element:",plain,snappy"`
	ValueDouble      []float64 `parquet:"ValueDouble,list" parquet-element:",plain,snappy"`
	ValueBool        []bool    `parquet:"ValueBool,list" parquet-element:",plain,snappy"`
	ValueUnsupported *string   `parquet:"ValueUnsupported,snappy"`
}

var (
	schemaOnce sync.Once
	schema     *parquet.Schema
)

// Schema returns the vParquet4 schema as written: the schema of Trace with
// DELTA_LENGTH_BYTE_ARRAY on every byte-array leaf that has no dictionary.
func Schema() *parquet.Schema {
	schemaOnce.Do(func() {
		base := parquet.SchemaOf(Trace{})
		schema = parquet.NewSchema("Trace", overrideNode{base})
	})
	return schema
}

// overrideNode wraps a group of the struct-derived schema and rewrites its
// leaves' encoding, keeping field order (parquet.Group would sort fields by
// name, which would break the format).
type overrideNode struct{ parquet.Node }

func (n overrideNode) Fields() []parquet.Field {
	fields := n.Node.Fields()
	out := make([]parquet.Field, len(fields))
	for i, f := range fields {
		out[i] = overrideField{Field: f, node: override(f)}
	}
	return out
}

type overrideField struct {
	parquet.Field
	node parquet.Node
}

func (f overrideField) Fields() []parquet.Field     { return f.node.Fields() }
func (f overrideField) Encoding() encoding.Encoding { return f.node.Encoding() }
func (f overrideField) Compression() compress.Codec { return f.node.Compression() }
func (f overrideField) Leaf() bool                  { return f.node.Leaf() }
func (f overrideField) Type() parquet.Type          { return f.node.Type() }
func (f overrideField) String() string              { return f.node.String() }
func (f overrideField) Optional() bool              { return f.node.Optional() }
func (f overrideField) Repeated() bool              { return f.node.Repeated() }
func (f overrideField) Required() bool              { return f.node.Required() }

func override(n parquet.Node) parquet.Node {
	if !n.Leaf() {
		return overrideNode{n}
	}
	if n.Type().Kind() == parquet.ByteArray {
		if e := n.Encoding(); e == nil || e.Encoding() == format.Plain {
			return parquet.Encoded(n, &parquet.DeltaLengthByteArray)
		}
	}
	return n
}
