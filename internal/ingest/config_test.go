package ingest

import (
	"context"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"go.yaml.in/yaml/v3"
)

func parseYAML(t *testing.T, doc string) (ReceiversConfig, error) {
	t.Helper()
	var m map[string]any
	if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
		t.Fatalf("test YAML: %v", err)
	}
	return ParseReceiversConfig(m)
}

func TestParseReceiversConfigTempoSection(t *testing.T) {
	const doc = `
receivers:
  otlp:
    protocols:
      grpc: {endpoint: 0.0.0.0:4317}
      http: {endpoint: 0.0.0.0:4318}
  jaeger:
    protocols:
      grpc: {endpoint: 0.0.0.0:14250}
      thrift_http: {endpoint: 0.0.0.0:14268}
      thrift_compact: {endpoint: 0.0.0.0:6831}
      thrift_binary: {endpoint: 0.0.0.0:6832}
  zipkin: {endpoint: 0.0.0.0:9411}
`
	got, err := parseYAML(t, doc)
	if err != nil {
		t.Fatal(err)
	}
	want := ReceiversConfig{
		OTLPGRPC:            &Config{Endpoint: "0.0.0.0:4317"},
		OTLPHTTP:            &Config{Endpoint: "0.0.0.0:4318"},
		JaegerGRPC:          &Config{Endpoint: "0.0.0.0:14250"},
		JaegerThriftHTTP:    &Config{Endpoint: "0.0.0.0:14268"},
		JaegerThriftCompact: &UDPConfig{Endpoint: "0.0.0.0:6831"},
		JaegerThriftBinary:  &UDPConfig{Endpoint: "0.0.0.0:6832"},
		Zipkin:              &ZipkinConfig{Config: Config{Endpoint: "0.0.0.0:9411"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}

	// The section's value alone (as under Tempo's distributor.receivers)
	// parses the same.
	inner := strings.Replace(doc, "receivers:\n", "", 1)
	got2, err := parseYAML(t, strings.ReplaceAll(inner, "\n  ", "\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got2, want) {
		t.Errorf("without the receivers key: %+v", got2)
	}
}

func TestParseReceiversConfigDefaultsAndOptions(t *testing.T) {
	got, err := parseYAML(t, `
otlp:
  protocols:
    grpc:
      max_recv_msg_size_mib: 8
      keepalive: {server_parameters: {max_connection_age: 1m}}
      tls: {cert_file: /etc/tls/c.pem, key_file: /etc/tls/k.pem}
    http:
      cors: {allowed_origins: ["*"]}
      max_request_body_size: 1000
      traces_url_path: /v1/traces
jaeger:
  protocols:
    thrift_compact:
      queue_size: 50
      max_packet_size: 9000
      workers: 3
      socket_buffer_size: 0
zipkin:
  parse_string_tags: true
`)
	if err != nil {
		t.Fatal(err)
	}
	if g := got.OTLPGRPC; g == nil || g.Endpoint != DefaultOTLPGRPCEndpoint || g.MaxRequestBytes != 8<<20 ||
		g.TLS == nil || g.TLS.CertFile != "/etc/tls/c.pem" || g.TLS.KeyFile != "/etc/tls/k.pem" {
		t.Errorf("otlp grpc = %+v", g)
	}
	if h := got.OTLPHTTP; h == nil || h.Endpoint != DefaultOTLPHTTPEndpoint || h.MaxRequestBytes != 1000 {
		t.Errorf("otlp http = %+v", h)
	}
	if c := got.JaegerThriftCompact; c == nil || *c != (UDPConfig{Endpoint: DefaultJaegerThriftCompactEndpoint, QueueSize: 50, MaxPacketSize: 9000, Workers: 3}) {
		t.Errorf("thrift_compact = %+v", c)
	}
	if z := got.Zipkin; z == nil || z.Endpoint != DefaultZipkinEndpoint || !z.ParseStringTags {
		t.Errorf("zipkin = %+v", z)
	}
	if got.JaegerGRPC != nil || got.JaegerThriftHTTP != nil || got.JaegerThriftBinary != nil {
		t.Errorf("protocols not named are enabled: %+v", got)
	}
	wantIgnored := []string{"otlp.protocols.grpc.keepalive", "otlp.protocols.http.cors", "jaeger.protocols.thrift_compact.socket_buffer_size"}
	for _, k := range wantIgnored {
		found := false
		for _, g := range got.Ignored {
			found = found || g == k
		}
		if !found {
			t.Errorf("Ignored = %v, want it to list %s", got.Ignored, k)
		}
	}
	if len(got.Ignored) != len(wantIgnored) {
		t.Errorf("Ignored = %v, want exactly %v", got.Ignored, wantIgnored)
	}

	// Bare keys (YAML null) enable a protocol at its default endpoint.
	got, err = parseYAML(t, "otlp:\n  protocols:\n    grpc:\n    http:\njaeger:\n  protocols:\n    thrift_binary:\nzipkin:\n")
	if err != nil {
		t.Fatal(err)
	}
	if got.OTLPGRPC.Endpoint != DefaultOTLPGRPCEndpoint || got.OTLPHTTP.Endpoint != DefaultOTLPHTTPEndpoint ||
		got.JaegerThriftBinary.Endpoint != DefaultJaegerThriftBinaryEndpoint || got.Zipkin.Endpoint != DefaultZipkinEndpoint {
		t.Errorf("defaults: %+v", got)
	}
}

func TestParseReceiversConfigErrors(t *testing.T) {
	for doc, want := range map[string]string{
		"opencensus: {}":                                                "receivers.opencensus: not supported",
		"kafka: {brokers: [a]}":                                         "receivers.kafka: not supported",
		"otlp: {protocols: {grpc: {endpoint: 4317}}}":                   "otlp.protocols.grpc.endpoint",
		"otlp: {protocols: {grpc: {endpoint: localhost}}}":              "has no port",
		"otlp: {protocols: {websocket: {}}}":                            "otlp.protocols.websocket: unknown OTLP protocol",
		"otlp: {}":                                                      "otlp.protocols: name at least one protocol",
		"otlp: [grpc]":                                                  "otlp: want a mapping",
		"jaeger: {protocols: {thrift_udp: {}}}":                         "unknown Jaeger protocol",
		"jaeger: {protocols: {thrift_compact: {tls: {cert_file: a}}}}":  "UDP receivers cannot serve TLS",
		"jaeger: {protocols: {thrift_compact: {queue_size: many}}}":     "queue_size: want a whole number",
		"zipkin: {tls: {cert_file: a.pem}}":                             "set both cert_file and key_file",
		"zipkin: {tls: {cert_file: a, key_file: b, client_ca_file: c}}": "client_ca_file: not supported",
		"zipkin: {parse_string_tags: yes-please}":                       "parse_string_tags",
		"otlp: {protocols: {http: {traces_url_path: /otlp/v1/traces}}}": "only /v1/traces",
		"otlp: {protocols: {grpc: {max_recv_msg_size_mib: -1.5}}}":      "want a whole number",
	} {
		_, err := parseYAML(t, doc)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want it to contain %q", doc, err, want)
		}
	}
}

func TestSetFromConfig(t *testing.T) {
	rc, err := parseYAML(t, `
otlp: {protocols: {grpc: {endpoint: "127.0.0.1:0"}, http: {endpoint: "127.0.0.1:0"}}}
jaeger: {protocols: {grpc: {endpoint: "127.0.0.1:0"}, thrift_http: {endpoint: "127.0.0.1:0"}, thrift_compact: {endpoint: "127.0.0.1:0"}, thrift_binary: {endpoint: "127.0.0.1:0"}}}
zipkin: {endpoint: "127.0.0.1:0"}
`)
	if err != nil {
		t.Fatal(err)
	}
	rc.MultiTenancy = true
	e := newEnv()
	set, err := NewSet(rc, e.rec, testLogger(t), e.reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if len(set.Addrs()) != 0 {
		t.Errorf("addresses before Start: %v", set.Addrs())
	}
	if err := set.Start(ctx); err != nil {
		t.Fatal(err)
	}
	addrs := set.Addrs()
	if len(addrs) != 7 {
		t.Fatalf("addresses %v, want 7 receivers", addrs)
	}
	body, _ := ptraceotlp.NewExportRequestFromTraces(otlpTraces("via-set")).MarshalProto()
	code, _, b := post(t, "http://"+addrs[ProtocolOTLPHTTP].String()+"/v1/traces", body, postOpts{contentType: otlpProto})
	if code != http.StatusUnauthorized {
		t.Errorf("no tenant with the set's multi-tenancy on: %d %s, want 401", code, b)
	}
	code, _, b = post(t, "http://"+addrs[ProtocolOTLPHTTP].String()+"/v1/traces", body,
		postOpts{contentType: otlpProto, header: map[string]string{"X-Scope-OrgID": "t1"}})
	if code != http.StatusOK {
		t.Errorf("with tenant: %d %s", code, b)
	}
	batch, _, _ := jaegerThriftBatch()
	sendUDP(t, addrs[ProtocolJaegerThriftCompact], emitBatchPacket(t, batch, true))
	e.rec.WaitSpans(t, 2, 10*time.Second)
	if err := set.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Post("http://"+addrs[ProtocolOTLPHTTP].String()+"/v1/traces", otlpProto, strings.NewReader("")); err == nil {
		t.Error("the OTLP HTTP receiver still answers after Shutdown")
	}

	// A port in use fails Start and leaves nothing listening.
	busy := newEnv()
	blocker := start(NewZipkin(ZipkinConfig{Config: tcpConfig(false)}, busy.rec, nil, nil))(t)
	rc2 := ReceiversConfig{
		OTLPHTTP: &Config{Endpoint: "127.0.0.1:0"},
		Zipkin:   &ZipkinConfig{Config: Config{Endpoint: blocker.Addr().String()}},
	}
	set2, err := NewSet(rc2, busy.rec, testLogger(t), busy.reg)
	if err != nil {
		t.Fatal(err)
	}
	if err := set2.Start(ctx); err == nil || !strings.Contains(err.Error(), "starting zipkin") {
		t.Errorf("Start with a busy port: %v, want an error naming zipkin", err)
	}
	if a := set2.Addrs()[ProtocolOTLPHTTP]; a == nil {
		t.Error("the OTLP HTTP receiver was not started before zipkin")
	} else if _, err := http.Post("http://"+a.String()+"/v1/traces", otlpProto, strings.NewReader("")); err == nil {
		t.Error("the OTLP HTTP receiver still answers after a failed Start")
	}
}
