// Package render turns traces into what people and programs read: Tempo's
// JSON, OTLP JSON, tables and terminal trees. Every writer takes an
// io.Writer; nothing here opens files, talks to storage or decides on colour
// by itself (callers pass that in).
package render

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// MarshalTempoTrace encodes td the way Tempo's query API does: protobuf JSON
// of an OTLP trace ({"resourceSpans":[…]}) with camelCase names, trace and
// span IDs in base64, 64-bit integers as strings, enums by name and zero
// values left out. The output is compact and deterministic.
func MarshalTempoTrace(td ptrace.Traces) ([]byte, error) {
	msg, err := toProto(td)
	if err != nil {
		return nil, err
	}
	raw, err := protojson.MarshalOptions{}.Marshal(msg)
	if err != nil {
		return nil, fmt.Errorf("encoding trace as JSON: %w", err)
	}
	// protojson randomises white space on purpose; compact it away so the
	// output is byte-stable. Tempo's encoder also escapes <, > and & in
	// strings (as Go's encoding/json does), so do the same.
	var compact, buf bytes.Buffer
	if err := json.Compact(&compact, raw); err != nil {
		return nil, err
	}
	json.HTMLEscape(&buf, compact.Bytes())
	return buf.Bytes(), nil
}

// UnmarshalTempoTrace decodes Tempo's trace JSON ({"resourceSpans":[…]}, or
// {"batches":[…]} from /api/traces v1) into ptrace.Traces.
func UnmarshalTempoTrace(data []byte) (ptrace.Traces, error) {
	var probe struct {
		Batches json.RawMessage `json:"batches"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return ptrace.Traces{}, fmt.Errorf("not a Tempo trace JSON object: %w", err)
	}
	if probe.Batches != nil {
		data = append(append([]byte(`{"resourceSpans":`), probe.Batches...), '}')
	}
	var msg tracepb.TracesData
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(data, &msg); err != nil {
		return ptrace.Traces{}, fmt.Errorf("decoding Tempo trace JSON: %w", err)
	}
	return fromProto(&msg)
}

// toProto converts through the wire format: ExportTraceServiceRequest and
// TracesData share field 1 (resource_spans), so the bytes are the same.
func toProto(td ptrace.Traces) (*tracepb.TracesData, error) {
	b, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	if err != nil {
		return nil, fmt.Errorf("encoding trace: %w", err)
	}
	var msg tracepb.TracesData
	if err := proto.Unmarshal(b, &msg); err != nil {
		return nil, fmt.Errorf("encoding trace: %w", err)
	}
	return &msg, nil
}

func fromProto(msg *tracepb.TracesData) (ptrace.Traces, error) {
	b, err := proto.Marshal(msg)
	if err != nil {
		return ptrace.Traces{}, err
	}
	req := ptraceotlp.NewExportRequest()
	if err := req.UnmarshalProto(b); err != nil {
		return ptrace.Traces{}, err
	}
	return req.Traces(), nil
}

// TraceByIDV2 writes the body of Tempo's GET /api/v2/traces/<id>:
// {"trace":{…},"metrics":{"inspectedBytes":"N"}}. A nil td means not found,
// which Tempo answers with {"trace":{},"metrics":{}}.
func TraceByIDV2(w io.Writer, td *ptrace.Traces, inspectedBytes uint64) error {
	if td == nil || td.ResourceSpans().Len() == 0 {
		_, err := io.WriteString(w, `{"trace":{},"metrics":{}}`)
		return err
	}
	trace, err := MarshalTempoTrace(*td)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	buf.Grow(len(trace) + 64)
	buf.WriteString(`{"trace":`)
	buf.Write(trace)
	buf.WriteString(`,"metrics":{`)
	if inspectedBytes > 0 {
		buf.WriteString(`"inspectedBytes":"`)
		buf.WriteString(strconv.FormatUint(inspectedBytes, 10))
		buf.WriteString(`"`)
	}
	buf.WriteString(`}}`)
	_, err = w.Write(buf.Bytes())
	return err
}
