package main

// Issue 9 on the serve command: stalled calls at shutdown, and the HTTP
// API's listener (timeouts, slow-loris, slow queries).

import (
	"bytes"
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/tracectl/tracectl/internal/ingest/ingesttest"
)

// TestServeSIGTERMWithStalledCalls: clients that opened OTLP gRPC Export
// calls and HTTP requests and never finish them do not make a SIGTERM
// fail. serve waits --shutdown-timeout for them, closes them, stores
// every acknowledged span and exits 0.
func TestServeSIGTERMWithStalledCalls(t *testing.T) {
	if testing.Short() {
		t.Skip("starts tracectl processes")
	}
	dir := t.TempDir()
	bucket := "file://" + filepath.Join(dir, "bucket")
	const shutdownTimeout = 3 * time.Second
	c := startTracectl(t, serveArgs(bucket, filepath.Join(dir, "wal"), "--shutdown-timeout", shutdownTimeout.String())...)

	td, id := makeTrace(7, 3)
	js, _ := ptraceotlp.NewExportRequestFromTraces(td).MarshalJSON()
	resp, err := http.Post("http://"+c.addrs["otlp_http"]+"/v1/traces", "application/json", bytes.NewReader(js))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("OTLP/HTTP post: %v %v", err, resp)
	}
	resp.Body.Close()

	// Ten Export calls that sent their headers and an empty first
	// message, and never end their request.
	conn, err := grpc.NewClient("passthrough:///"+c.addrs["otlp_grpc"], grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(bytesCodec{})))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var streams []grpc.ClientStream
	for range 10 {
		s, err := conn.NewStream(context.Background(), &grpc.StreamDesc{ClientStreams: true}, "/opentelemetry.proto.collector.trace.v1.TraceService/Export")
		if err != nil {
			t.Fatal(err)
		}
		empty := []byte{}
		if err := s.SendMsg(&empty); err != nil {
			t.Fatal(err)
		}
		streams = append(streams, s)
	}
	// And ten HTTP requests stalled in their body.
	stalls := ingesttest.StartSlowLoris(c.addrs["otlp_http"], "/v1/traces", 10, ingesttest.StallBody, time.Second)
	defer stalls.Stop()
	time.Sleep(300 * time.Millisecond)

	began := time.Now()
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err = c.wait(t, shutdownTimeout+30*time.Second)
	took := time.Since(began)
	t.Logf("SIGTERM with 10 stalled gRPC calls and 10 stalled HTTP bodies, --shutdown-timeout %v: exit %v after %v", shutdownTimeout, err, took.Round(10*time.Millisecond))
	if err != nil {
		t.Errorf("SIGTERM: exit %v, want 0\n%s", err, c.log())
	} else if !strings.Contains(c.log(), "stopped cleanly") {
		t.Errorf("no \"stopped cleanly\" in the log:\n%s", c.log())
	}
	if took > shutdownTimeout+10*time.Second {
		t.Errorf("shutdown took %v with --shutdown-timeout %v", took, shutdownTimeout)
	}
	for _, s := range streams {
		var m []byte
		if err := s.RecvMsg(&m); err == nil {
			t.Error("a stalled call succeeded")
		}
	}
	closed, opened := stalls.Closed()
	if len(closed) != opened {
		t.Errorf("%d of %d stalled HTTP requests closed", len(closed), opened)
	}
	if res := runCLI(t, false, "get", id.Hex(), "--storage", bucket); res.code != 0 {
		t.Errorf("trace acknowledged before SIGTERM not stored: exit %d %s", res.code, res.stderr)
	}
}
