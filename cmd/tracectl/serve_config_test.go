package main

import (
	"path/filepath"
	"testing"

	"github.com/tracectl/tracectl/internal/iostreams"
)

// receiversFor loads config the way a serve run does and returns the
// receivers it would start.
func receiversFor(t *testing.T, file string, args ...string) (map[string]string, bool) {
	t.Helper()
	io, _, _, _ := iostreams.Test(false)
	g := &globalOptions{io: io, Tenant: "single-tenant"}
	cmd, o := newServeCmdOptions(g)
	cmd.PersistentFlags().StringVar(&g.ConfigFile, "config", "", "")
	cmd.PersistentFlags().StringVar(&g.Storage, "storage", "", "")
	if file != "" {
		args = append(args, "--config", file)
	}
	if err := cmd.ParseFlags(args); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(cmd, g)
	if err != nil {
		t.Fatal(err)
	}
	g.cfg = cfg
	rc, err := receiversConfig(g, o)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	if rc.OTLPGRPC != nil {
		out["otlp_grpc"] = rc.OTLPGRPC.Endpoint
	}
	if rc.OTLPHTTP != nil {
		out["otlp_http"] = rc.OTLPHTTP.Endpoint
	}
	if rc.JaegerGRPC != nil {
		out["jaeger_grpc"] = rc.JaegerGRPC.Endpoint
	}
	if rc.JaegerThriftHTTP != nil {
		out["jaeger_thrift_http"] = rc.JaegerThriftHTTP.Endpoint
	}
	if rc.JaegerThriftCompact != nil {
		out["jaeger_thrift_compact"] = rc.JaegerThriftCompact.Endpoint
	}
	if rc.JaegerThriftBinary != nil {
		out["jaeger_thrift_binary"] = rc.JaegerThriftBinary.Endpoint
	}
	if rc.Zipkin != nil {
		out["zipkin"] = rc.Zipkin.Endpoint
	}
	return out, rc.MultiTenancy
}

func TestServeReceiversFromConfig(t *testing.T) {
	isolateEnv(t)
	dir := t.TempDir()

	// No section: every receiver at its default port.
	got, _ := receiversFor(t, "")
	if len(got) != 7 || got["otlp_grpc"] != "0.0.0.0:4317" || got["zipkin"] != "0.0.0.0:9411" || got["jaeger_thrift_compact"] != "0.0.0.0:6831" {
		t.Errorf("defaults: %v", got)
	}
	// Flags switch receivers off and move them.
	got, _ = receiversFor(t, "", "--zipkin-endpoint", "off", "--otlp-http-endpoint", "127.0.0.1:14318")
	if _, on := got["zipkin"]; on || got["otlp_http"] != "127.0.0.1:14318" {
		t.Errorf("flags: %v", got)
	}

	// The mission's Helm values, as written: only the listed receivers run.
	helm := writeFile(t, filepath.Join(dir, "helm.yaml"), `
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 0.0.0.0:4317
      http:
        endpoint: 0.0.0.0:4318
  jaeger:
    protocols:
      grpc:
        endpoint: 0.0.0.0:14250
      thrift_http:
        endpoint: 0.0.0.0:14268
  zipkin:
    endpoint: 0.0.0.0:9411
`)
	got, _ = receiversFor(t, helm)
	want := map[string]string{"otlp_grpc": "0.0.0.0:4317", "otlp_http": "0.0.0.0:4318", "jaeger_grpc": "0.0.0.0:14250",
		"jaeger_thrift_http": "0.0.0.0:14268", "zipkin": "0.0.0.0:9411"}
	if len(got) != len(want) {
		t.Errorf("Helm receivers: %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("Helm receivers: %s = %q, want %q", k, got[k], v)
		}
	}
	// An explicit flag still wins over the file.
	got, _ = receiversFor(t, helm, "--otlp-grpc-endpoint", "127.0.0.1:24317", "--multitenancy")
	if got["otlp_grpc"] != "127.0.0.1:24317" || got["otlp_http"] != "0.0.0.0:4318" {
		t.Errorf("flag over file: %v", got)
	}

	// Tempo's distributor section, with multi-tenancy from the flag.
	tempo := writeFile(t, filepath.Join(dir, "tempo.yaml"), `
distributor:
  receivers:
    otlp:
      protocols:
        grpc: {endpoint: "127.0.0.1:34317"}
`)
	got, multi := receiversFor(t, tempo, "--multitenancy")
	if len(got) != 1 || got["otlp_grpc"] != "127.0.0.1:34317" || !multi {
		t.Errorf("distributor.receivers: %v multitenancy=%v", got, multi)
	}
}
