package ingesttest

import (
	"context"
	"fmt"
	"net"
	"sync"

	"github.com/apache/thrift/lib/go/thrift"
	"github.com/jaegertracing/jaeger-idl/thrift-gen/agent"
	jaegerthrift "github.com/jaegertracing/jaeger-idl/thrift-gen/jaeger"
	jaegerclient "github.com/uber/jaeger-client-go"
	clientthrift "github.com/uber/jaeger-client-go/thrift"
)

// MaxUDPPacket is the largest datagram the Jaeger clients send (and the
// UDP receivers accept by default).
const MaxUDPPacket = 65000

// JaegerAgentBinaryTransport is a jaeger-client-go Transport that sends each
// flush as one Agent.emitBatch call in thrift binary encoding over UDP: the
// protocol of jaeger-agent's port 6832, encoded by the jaeger-idl agent
// client. jaeger-client-go itself only speaks the compact encoding (port
// 6831); with this transport a test drives the binary port with exactly the
// spans, process tags and references the real client builds
// (jaegerclient.BuildJaegerThrift and BuildJaegerProcessThrift).
//
// Like the client's own UDP transport it buffers spans until Flush; unlike
// it, it does not split large batches: Flush fails when the batch does not
// fit in one MaxUDPPacket datagram. Safe for concurrent use.
type JaegerAgentBinaryTransport struct {
	mu      sync.Mutex
	conn    net.Conn
	process *jaegerthrift.Process
	spans   []*jaegerthrift.Span
}

var _ jaegerclient.Transport = (*JaegerAgentBinaryTransport)(nil)

// NewJaegerAgentBinaryTransport dials addr (host:port of a thrift-binary
// agent receiver) over UDP.
func NewJaegerAgentBinaryTransport(addr string) (*JaegerAgentBinaryTransport, error) {
	conn, err := net.Dial("udp", addr)
	if err != nil {
		return nil, err
	}
	return &JaegerAgentBinaryTransport{conn: conn}, nil
}

// Append converts span (and, the first time, its tracer's process) to the
// jaeger-idl thrift types and buffers it.
func (t *JaegerAgentBinaryTransport) Append(span *jaegerclient.Span) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.process == nil {
		p := &jaegerthrift.Process{}
		if err := convertJaegerThrift(jaegerclient.BuildJaegerProcessThrift(span), p); err != nil {
			return 1, fmt.Errorf("converting the process: %w", err)
		}
		t.process = p
	}
	s := &jaegerthrift.Span{}
	if err := convertJaegerThrift(jaegerclient.BuildJaegerThrift(span), s); err != nil {
		return 1, fmt.Errorf("converting span %s: %w", span.OperationName(), err)
	}
	t.spans = append(t.spans, s)
	return 0, nil
}

// Flush sends the buffered spans as one emitBatch datagram.
func (t *JaegerAgentBinaryTransport) Flush() (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(t.spans)
	if n == 0 {
		return 0, nil
	}
	batch := &jaegerthrift.Batch{Process: t.process, Spans: t.spans}
	t.spans = nil
	pkt, err := EmitBatchPacket(batch, false)
	if err != nil {
		return n, err
	}
	if len(pkt) > MaxUDPPacket {
		return n, fmt.Errorf("emitBatch of %d spans is %d bytes, more than one %d-byte datagram", n, len(pkt), MaxUDPPacket)
	}
	if _, err := t.conn.Write(pkt); err != nil {
		return n, err
	}
	return n, nil
}

// Close closes the socket; call Flush first.
func (t *JaegerAgentBinaryTransport) Close() error { return t.conn.Close() }

// EmitBatchPacket encodes Agent.emitBatch(batch) as the jaeger-idl agent
// client writes it: one oneway thrift call, compact or binary encoded.
func EmitBatchPacket(batch *jaegerthrift.Batch, compact bool) ([]byte, error) {
	buf := thrift.NewTMemoryBuffer()
	var f thrift.TProtocolFactory = thrift.NewTBinaryProtocolFactoryConf(nil)
	if compact {
		f = thrift.NewTCompactProtocolFactoryConf(nil)
	}
	if err := agent.NewAgentClientFactory(buf, f).EmitBatch(context.Background(), batch); err != nil {
		return nil, fmt.Errorf("encoding emitBatch: %w", err)
	}
	return buf.Bytes(), nil
}

// convertJaegerThrift copies a struct generated into jaeger-client-go into
// the same IDL struct generated into jaeger-idl, through their common thrift
// binary encoding.
func convertJaegerThrift(from interface {
	Write(context.Context, clientthrift.TProtocol) error
}, to thrift.TStruct) error {
	ctx := context.Background()
	buf := clientthrift.NewTMemoryBuffer()
	if err := from.Write(ctx, clientthrift.NewTBinaryProtocolConf(buf, nil)); err != nil {
		return err
	}
	return thrift.NewTDeserializer().Read(ctx, to, buf.Bytes())
}
