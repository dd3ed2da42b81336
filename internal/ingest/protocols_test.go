package ingest

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
	"github.com/jaegertracing/jaeger-idl/proto-gen/api_v2"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// tcpProtocol drives one TCP receiver with a valid one-span payload, with
// or without a tenant.
type tcpProtocol struct {
	name string
	new  func(t *testing.T, cfg Config, e env) Receiver
	// send posts the payload; tenant nil sends no tenant. It returns the
	// HTTP status (HTTP protocols) or the gRPC error (gRPC protocols), and
	// the response headers.
	send func(t *testing.T, r Receiver, tenant *string) (int, error, http.Header)
	grpc bool
}

func tcpProtocols(t *testing.T) []tcpProtocol {
	otlpBody, err := ptraceotlp.NewExportRequestFromTraces(otlpTraces("one")).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	jbatch, _, _ := jaegerThriftBatch()
	jthrift, err := thrift.NewTSerializer().Write(context.Background(), jbatch)
	if err != nil {
		t.Fatal(err)
	}
	pbatch, _, _ := jaegerProtoBatch()
	jproto, err := (&api_v2.PostSpansRequest{Batch: pbatch}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	httpSend := func(path, ct string, body []byte) func(t *testing.T, r Receiver, tenant *string) (int, error, http.Header) {
		return func(t *testing.T, r Receiver, tenant *string) (int, error, http.Header) {
			o := postOpts{contentType: ct}
			if tenant != nil {
				o.header = map[string]string{"X-Scope-OrgID": *tenant}
			}
			code, hdr, b := post(t, "http://"+r.Addr().String()+path, body, o)
			if code >= 300 {
				return code, errors.New(string(b)), hdr
			}
			return code, nil, hdr
		}
	}
	grpcSend := func(method string, body []byte) func(t *testing.T, r Receiver, tenant *string) (int, error, http.Header) {
		return func(t *testing.T, r Receiver, tenant *string) (int, error, http.Header) {
			var md []string
			if tenant != nil {
				md = []string{"x-scope-orgid", *tenant}
			}
			return 0, invokeRaw(t, grpcConn(t, r.Addr().String()), method, body, md...), nil
		}
	}
	return []tcpProtocol{
		{
			name: ProtocolOTLPGRPC, grpc: true,
			new: func(t *testing.T, cfg Config, e env) Receiver {
				return start(NewOTLPGRPC(cfg, e.rec, testLogger(t), e.reg))(t)
			},
			send: grpcSend("/"+otlpTraceService+"/Export", otlpBody),
		},
		{
			name: ProtocolOTLPHTTP,
			new: func(t *testing.T, cfg Config, e env) Receiver {
				return start(NewOTLPHTTP(cfg, e.rec, testLogger(t), e.reg))(t)
			},
			send: httpSend("/v1/traces", otlpProto, otlpBody),
		},
		{
			name: ProtocolJaegerGRPC, grpc: true,
			new: func(t *testing.T, cfg Config, e env) Receiver {
				return start(NewJaegerGRPC(cfg, e.rec, testLogger(t), e.reg))(t)
			},
			send: grpcSend("/"+jaegerCollectorService+"/PostSpans", jproto),
		},
		{
			name: ProtocolJaegerThriftHTTP,
			new: func(t *testing.T, cfg Config, e env) Receiver {
				return start(NewJaegerThriftHTTP(cfg, e.rec, testLogger(t), e.reg))(t)
			},
			send: httpSend("/api/traces", "application/x-thrift", jthrift),
		},
		{
			name: ProtocolZipkin,
			new: func(t *testing.T, cfg Config, e env) Receiver {
				return start(NewZipkin(ZipkinConfig{Config: cfg}, e.rec, testLogger(t), e.reg))(t)
			},
			send: httpSend("/api/v1/spans", "application/json", []byte(zipkinV1JSON)),
		},
	}
}

func ptr[T any](v T) *T { return &v }

func TestTenancy(t *testing.T) {
	for _, p := range tcpProtocols(t) {
		t.Run(p.name, func(t *testing.T) {
			e := newEnv()
			r := p.new(t, tcpConfig(true), e)
			for _, tc := range []struct {
				name     string
				tenant   *string
				httpCode int
				grpcCode codes.Code
				msg      string
			}{
				{"missing", nil, http.StatusUnauthorized, codes.Unauthenticated, "X-Scope-OrgID"},
				{"empty", ptr(""), http.StatusUnauthorized, codes.Unauthenticated, "X-Scope-OrgID"},
				{"traversal", ptr("../x"), http.StatusBadRequest, codes.InvalidArgument, `"../x"`},
				{"dot-dot", ptr(".."), http.StatusBadRequest, codes.InvalidArgument, "directory"},
				{"slash", ptr("a/b"), http.StatusBadRequest, codes.InvalidArgument, "'/'"},
			} {
				code, err, _ := p.send(t, r, tc.tenant)
				if p.grpc {
					if status.Code(err) != tc.grpcCode {
						t.Errorf("%s: %v, want %v", tc.name, err, tc.grpcCode)
					}
				} else if code != tc.httpCode {
					t.Errorf("%s: status %d, want %d", tc.name, code, tc.httpCode)
				}
				if err == nil || !strings.Contains(err.Error(), tc.msg) || !strings.Contains(err.Error(), p.name) {
					t.Errorf("%s: message %v should name the protocol and contain %q", tc.name, err, tc.msg)
				}
			}
			if e.rec.Calls() != 0 {
				t.Fatalf("consumer called %d times for refused tenants", e.rec.Calls())
			}
			if got := e.value(t, "tracectl_receiver_refused_requests_total", p.name, reasonBadTenant); got != 3 {
				t.Errorf("refused requests (invalid_tenant) = %v, want 3", got)
			}
			if _, err, _ := p.send(t, r, ptr("team-a")); err != nil {
				t.Fatalf("valid tenant: %v", err)
			}
			b := e.rec.Batches()
			if len(b) != 1 || b[0].Tenant != "team-a" {
				t.Errorf("batches %v, want one for team-a", b)
			}
		})
	}
}

func TestTenancyOffUsesDefaultTenant(t *testing.T) {
	for _, p := range tcpProtocols(t) {
		t.Run(p.name, func(t *testing.T) {
			e := newEnv()
			r := p.new(t, tcpConfig(false), e)
			for _, tenant := range []*string{nil, ptr("team-a"), ptr("../x")} {
				if _, err, _ := p.send(t, r, tenant); err != nil {
					t.Fatalf("tenant %v with multi-tenancy off: %v", tenant, err)
				}
			}
			for _, b := range e.rec.Batches() {
				if b.Tenant != DefaultTenant {
					t.Errorf("tenant %q, want %q", b.Tenant, DefaultTenant)
				}
			}
			if len(e.rec.Batches()) != 3 {
				t.Errorf("%d batches, want 3", len(e.rec.Batches()))
			}
		})
	}
}

// value reads a counter child through the registry; labels are the label
// values in the order of their names.
func (e env) value(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			lp := m.GetLabel()
			if len(lp) != len(labels) {
				continue
			}
			for i := range lp {
				if lp[i].GetValue() != labels[i] {
					continue metric
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

func TestConsumerErrorsAllProtocols(t *testing.T) {
	for _, p := range tcpProtocols(t) {
		t.Run(p.name, func(t *testing.T) {
			e := newEnv()
			r := p.new(t, tcpConfig(false), e)
			e.rec.SetErr(Limited("live_traces", 3*time.Second, "tenant %s has too many live traces", DefaultTenant))
			code, err, hdr := p.send(t, r, nil)
			if p.grpc {
				if status.Code(err) != codes.ResourceExhausted {
					t.Errorf("limit: %v, want ResourceExhausted", err)
				}
			} else if code != http.StatusTooManyRequests || hdr.Get("Retry-After") != "3" {
				t.Errorf("limit: %d Retry-After %q, want 429 and 3", code, hdr.Get("Retry-After"))
			}
			if err == nil || !strings.Contains(err.Error(), "too many live traces") {
				t.Errorf("limit: message %v should carry the consumer's", err)
			}
			e.rec.SetErr(errors.New("wal: fsync failed"))
			code, err, hdr = p.send(t, r, nil)
			if p.grpc {
				if status.Code(err) != codes.Unavailable {
					t.Errorf("failure: %v, want Unavailable", err)
				}
			} else if code != http.StatusServiceUnavailable || hdr.Get("Retry-After") != "" {
				t.Errorf("failure: %d Retry-After %q, want 503 without Retry-After", code, hdr.Get("Retry-After"))
			}
			if got := e.value(t, "tracectl_receiver_refused_spans_total", p.name, "live_traces"); got < 1 {
				t.Errorf("refused spans (live_traces) = %v, want the request's spans", got)
			}
		})
	}
}

func TestOversizeAllProtocols(t *testing.T) {
	for _, p := range tcpProtocols(t) {
		t.Run(p.name, func(t *testing.T) {
			e := newEnv()
			cfg := tcpConfig(false)
			cfg.MaxRequestBytes = 40 // every payload above is larger
			r := p.new(t, cfg, e)
			code, err, _ := p.send(t, r, nil)
			if p.grpc {
				if status.Code(err) != codes.ResourceExhausted {
					t.Errorf("oversize: %v, want ResourceExhausted", err)
				}
			} else if code != http.StatusRequestEntityTooLarge {
				t.Errorf("oversize: %d, want 413", code)
			}
			if e.rec.Calls() != 0 {
				t.Errorf("consumer called for an oversize request")
			}
			if got := settle(func() float64 { return e.value(t, "tracectl_receiver_refused_requests_total", p.name, reasonTooLarge) }, 1); got != 1 {
				t.Errorf("refused requests (too_large) = %v, want 1", got)
			}
		})
	}
}
