package render

import (
	"encoding/json"
	"io"
	"strconv"
	"strings"

	model "github.com/jaegertracing/jaeger-idl/model/v1"
	jaegertranslator "github.com/open-telemetry/opentelemetry-collector-contrib/pkg/translator/jaeger"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// The JSON of Jaeger's query API (GET /api/traces/<id>), which Jaeger UI's
// "JSON File" upload also reads: {"data":[trace…]}, each trace with its
// spans and a map of processes the spans point to by processID.
type (
	jaegerResponse struct {
		Data   []jaegerTrace `json:"data"`
		Total  int           `json:"total"`
		Limit  int           `json:"limit"`
		Offset int           `json:"offset"`
		Errors []any         `json:"errors"`
	}
	jaegerTrace struct {
		TraceID   string                   `json:"traceID"`
		Spans     []jaegerSpan             `json:"spans"`
		Processes map[string]jaegerProcess `json:"processes"`
		Warnings  []string                 `json:"warnings"`
	}
	jaegerSpan struct {
		TraceID       string      `json:"traceID"`
		SpanID        string      `json:"spanID"`
		Flags         uint32      `json:"flags,omitempty"`
		OperationName string      `json:"operationName"`
		References    []jaegerRef `json:"references"`
		StartTime     uint64      `json:"startTime"` // µs since the epoch
		Duration      uint64      `json:"duration"`  // µs
		Tags          []jaegerKV  `json:"tags"`
		Logs          []jaegerLog `json:"logs"`
		ProcessID     string      `json:"processID"`
		Warnings      []string    `json:"warnings"`
	}
	jaegerRef struct {
		RefType string `json:"refType"`
		TraceID string `json:"traceID"`
		SpanID  string `json:"spanID"`
	}
	jaegerKV struct {
		Key   string `json:"key"`
		Type  string `json:"type"`
		Value any    `json:"value"`
	}
	jaegerLog struct {
		Timestamp uint64     `json:"timestamp"`
		Fields    []jaegerKV `json:"fields"`
	}
	jaegerProcess struct {
		ServiceName string     `json:"serviceName"`
		Tags        []jaegerKV `json:"tags"`
	}
)

// WriteJaegerJSON writes td as Jaeger query JSON, which Jaeger UI can load
// from a file. The OTLP→Jaeger mapping is the OpenTelemetry Collector's
// (span kind, status and scope become tags, events become logs, links
// become references); processes are shared between spans with the same
// service and tags, named p1, p2, … in order of first use.
func WriteJaegerJSON(w io.Writer, td ptrace.Traces) error {
	resp := jaegerResponse{Data: []jaegerTrace{}}
	byTrace := map[model.TraceID]int{}
	type proc struct {
		p  *model.Process
		id string
	}
	procs := map[int][]proc{} // per trace
	for _, batch := range jaegertranslator.ProtoFromTraces(td) {
		for _, sp := range batch.Spans {
			ti, ok := byTrace[sp.TraceID]
			if !ok {
				ti = len(resp.Data)
				byTrace[sp.TraceID] = ti
				resp.Data = append(resp.Data, jaegerTrace{TraceID: sp.TraceID.String(), Spans: []jaegerSpan{}, Processes: map[string]jaegerProcess{}})
			}
			tr := &resp.Data[ti]
			pid := ""
			for _, p := range procs[ti] {
				if p.p.Equal(batch.Process) {
					pid = p.id
					break
				}
			}
			if pid == "" {
				pid = "p" + strconv.Itoa(len(procs[ti])+1)
				procs[ti] = append(procs[ti], proc{batch.Process, pid})
				tr.Processes[pid] = jaegerProcess{ServiceName: batch.Process.ServiceName, Tags: jaegerKVs(batch.Process.Tags)}
			}
			tr.Spans = append(tr.Spans, jaegerSpanOf(sp, pid))
		}
	}
	enc := json.NewEncoder(w)
	return enc.Encode(resp)
}

func jaegerSpanOf(sp *model.Span, pid string) jaegerSpan {
	out := jaegerSpan{
		TraceID:       sp.TraceID.String(),
		SpanID:        sp.SpanID.String(),
		Flags:         uint32(sp.Flags),
		OperationName: sp.OperationName,
		References:    []jaegerRef{},
		StartTime:     model.TimeAsEpochMicroseconds(sp.StartTime),
		Tags:          jaegerKVs(sp.Tags),
		Logs:          []jaegerLog{},
		ProcessID:     pid,
	}
	if sp.Duration > 0 {
		out.Duration = model.DurationAsMicroseconds(sp.Duration)
	}
	for _, r := range sp.References {
		out.References = append(out.References, jaegerRef{RefType: r.RefType.String(), TraceID: r.TraceID.String(), SpanID: r.SpanID.String()})
	}
	for _, l := range sp.Logs {
		out.Logs = append(out.Logs, jaegerLog{Timestamp: model.TimeAsEpochMicroseconds(l.Timestamp), Fields: jaegerKVs(l.Fields)})
	}
	return out
}

func jaegerKVs(kvs []model.KeyValue) []jaegerKV {
	out := make([]jaegerKV, 0, len(kvs))
	for i := range kvs {
		kv := &kvs[i]
		var v any
		switch kv.VType {
		case model.ValueType_STRING:
			v = kv.VStr
		case model.ValueType_BOOL:
			v = kv.Bool()
		case model.ValueType_INT64:
			v = kv.Int64()
		case model.ValueType_FLOAT64:
			v = kv.Float64()
		case model.ValueType_BINARY:
			v = kv.Binary() // base64 in JSON, as Jaeger writes it
		}
		out = append(out, jaegerKV{Key: kv.Key, Type: strings.ToLower(kv.VType.String()), Value: v})
	}
	return out
}
