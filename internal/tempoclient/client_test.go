package tempoclient

import (
	"context"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tracectl/tracectl/internal/otlptest"
	"github.com/tracectl/tracectl/internal/tempoclient/tempotest"
)

// The three traces recorded with every variant (fixtures/tempo/api README).
var recorded = []struct{ label, id string }{
	{"P00", "594dbe7e6cff645eb51079037485e52a"},
	{"P01", "b5d58700eb8a46ec1c2a07ca5004da34"},
	{"P04", "00000f1e2d3c4b5a6978877665544332"},
}

func newClient(t *testing.T, url string, opts Options) *Client {
	t.Helper()
	c, err := New(url, opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestTraceByIDRecordings fetches every recorded trace through each
// endpoint and encoding and compares it with the corpus the recordings were
// made from.
func TestTraceByIDRecordings(t *testing.T) {
	srv := tempotest.Start(t)
	corpus := otlptest.LoadCorpus(t)
	c := newClient(t, srv.URL, Options{})
	ctx := context.Background()

	type call struct {
		name string
		fn   func(context.Context, string, TraceRequest) (*TraceResult, error)
		api  string
	}
	calls := []call{{"v2", c.TraceByIDV2, "v2"}, {"v1", c.TraceByIDV1, "v1"}, {"auto", c.TraceByID, "v2"}}
	for _, tr := range recorded {
		for _, cl := range calls {
			for _, enc := range []Encoding{JSON, Protobuf} {
				// Only P00 has a recorded v2 protobuf answer; the replay
				// encodes the JSON one for the others.
				res, err := cl.fn(ctx, tr.id, TraceRequest{Encoding: enc})
				if err != nil {
					t.Errorf("%s %s %v: %v", tr.label, cl.name, enc, err)
					continue
				}
				if res.API != cl.api {
					t.Errorf("%s %s: answered by %s", tr.label, cl.name, res.API)
				}
				if d := otlptest.Diff(corpus.ByID[tr.id], res.Trace); d != nil {
					t.Errorf("%s %s %v: trace differs from the corpus:\n%s", tr.label, cl.name, enc, strings.Join(d, "\n"))
				}
				if cl.api == "v2" && res.InspectedBytes == 0 {
					t.Errorf("%s %s %v: inspectedBytes not read", tr.label, cl.name, enc)
				}
			}
		}
	}
	// Tempo's v2 JSON and protobuf answers for P00 report the same metrics.
	j, err := c.TraceByIDV2(ctx, recorded[0].id, TraceRequest{Encoding: JSON})
	if err != nil {
		t.Fatal(err)
	}
	p, err := c.TraceByIDV2(ctx, recorded[0].id, TraceRequest{Encoding: Protobuf})
	if err != nil {
		t.Fatal(err)
	}
	if j.InspectedBytes != p.InspectedBytes {
		t.Errorf("inspectedBytes: json %d, protobuf %d", j.InspectedBytes, p.InspectedBytes)
	}
	// Short and upper-case spellings reach the same recordings.
	for _, id := range []string{"5b8efff798038103", "f1e2d3c4b5a6978877665544332", "594DBE7E6CFF645EB51079037485E52A"} {
		res, err := c.TraceByIDV2(ctx, id, TraceRequest{Encoding: JSON})
		if err != nil || res.Trace.SpanCount() == 0 {
			t.Errorf("v2 %s: %v", id, err)
		}
	}
}

func TestTraceByIDNotFoundAndBadID(t *testing.T) {
	srv := tempotest.Start(t)
	c := newClient(t, srv.URL, Options{})
	ctx := context.Background()
	const missing = "deadbeefdeadbeefdeadbeefdeadbeef"
	for _, enc := range []Encoding{JSON, Protobuf} {
		// v2: 200 with an empty trace; v1: 404 with no body. Both are
		// ErrNotFound, and TraceByID must not fall back on a v2 miss.
		if _, err := c.TraceByIDV2(ctx, missing, TraceRequest{Encoding: enc}); !errors.Is(err, ErrNotFound) {
			t.Errorf("v2 %v: %v, want ErrNotFound", enc, err)
		}
		if _, err := c.TraceByIDV1(ctx, missing, TraceRequest{Encoding: enc}); !errors.Is(err, ErrNotFound) {
			t.Errorf("v1 %v: %v, want ErrNotFound", enc, err)
		}
	}
	n := len(srv.Requests())
	if _, err := c.TraceByID(ctx, missing, TraceRequest{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("auto: %v", err)
	}
	if got := len(srv.Requests()) - n; got != 1 {
		t.Errorf("a v2 miss made %d requests, want 1 (no v1 fallback on 200)", got)
	}

	_, err := c.TraceByIDV2(ctx, "not-a-trace-id", TraceRequest{Encoding: JSON})
	var se *StatusError
	if !errors.Is(err, ErrBadRequest) || !errors.As(err, &se) || !strings.Contains(se.Message, "hex characters") {
		t.Errorf("bad ID: %v", err)
	}
	_, err = c.TraceByIDV1(ctx, "0123456789abcdef0123456789abcdef00", TraceRequest{Encoding: JSON})
	if !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), "larger than 128 bits") {
		t.Errorf("too long ID: %v", err)
	}
}

// TestTraceByIDFallsBackToV1 is an older Tempo (or a proxy) without the v2
// endpoint: the router's 404 sends the client to /api/traces.
func TestTraceByIDFallsBackToV1(t *testing.T) {
	srv := tempotest.Start(t)
	srv.Handler = func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasPrefix(r.URL.Path, "/api/v2/") {
			http.NotFound(w, r)
			return true
		}
		return false
	}
	c := newClient(t, srv.URL, Options{})
	res, err := c.TraceByID(context.Background(), recorded[2].id, TraceRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if res.API != "v1" || res.Trace.SpanCount() != 5 {
		t.Errorf("api %s, %d spans", res.API, res.Trace.SpanCount())
	}
	_, err = c.TraceByID(context.Background(), "deadbeef", TraceRequest{})
	var se *StatusError
	if !errors.Is(err, ErrNotFound) || errors.As(err, &se) {
		t.Errorf("v1 miss after fallback: %v, want a plain not found", err)
	}

	// A server with neither endpoint: not found, but as a status error
	// (the endpoint is missing), not as a missing trace.
	srv.Handler = func(w http.ResponseWriter, r *http.Request) bool {
		http.NotFound(w, r)
		return true
	}
	_, err = c.TraceByID(context.Background(), recorded[2].id, TraceRequest{})
	if !errors.As(err, &se) || se.Code != 404 {
		t.Errorf("no endpoint: %v, want a *StatusError 404", err)
	}
}

func TestHeadersAndQuery(t *testing.T) {
	srv := tempotest.Start(t)
	ctx := context.Background()
	start := time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)
	end := start.Add(2 * time.Hour)

	c := newClient(t, srv.URL+"/", Options{Tenant: "team-a", BearerToken: "s3cret", UserAgent: "tracectl/test"})
	if _, err := c.TraceByIDV1(ctx, recorded[0].id, TraceRequest{Start: start, End: end, Encoding: JSON}); err != nil {
		t.Fatal(err)
	}
	r := last(srv)
	if r.Header.Get("X-Scope-OrgID") != "team-a" || r.Header.Get("Authorization") != "Bearer s3cret" || r.Header.Get("User-Agent") != "tracectl/test" {
		t.Errorf("headers: %v", r.Header)
	}
	// The recorded request with this range exists, so the query matched it.
	if got := r.URL.RequestURI(); got != "/api/traces/594dbe7e6cff645eb51079037485e52a?end=1795172400&start=1795165200" {
		t.Errorf("request %s", got)
	}
	if r.Header.Get("Accept") != "application/json" {
		t.Errorf("accept %q", r.Header.Get("Accept"))
	}

	c = newClient(t, strings.Replace(srv.URL, "http://", "http://alice:pw@", 1), Options{})
	if _, err := c.TraceByIDV2(ctx, recorded[0].id, TraceRequest{}); err != nil {
		t.Fatal(err)
	}
	r = last(srv)
	if u, p, ok := r.BasicAuth(); !ok || u != "alice" || p != "pw" {
		t.Errorf("basic auth from URL: %v %q %q", ok, u, p)
	}
	if r.Header.Get("X-Scope-OrgID") != "" {
		t.Error("tenant header sent without a tenant")
	}
	if r.Header.Get("Accept") != "application/protobuf" {
		t.Errorf("default accept %q", r.Header.Get("Accept"))
	}
	if strings.Contains(c.URL(), "pw") {
		t.Errorf("URL() shows the password: %s", c.URL())
	}
}

func last(s *tempotest.Server) *http.Request {
	r := s.Requests()
	return r[len(r)-1]
}

func TestNewRejects(t *testing.T) {
	for _, tc := range []struct {
		url  string
		opts Options
		want string
	}{
		{"localhost:3200", Options{}, "http://host:port"},
		{"ftp://x", Options{}, "http://host:port"},
		{"http://x/?q=1", Options{}, "query"},
		{"http://x", Options{Tenant: "../etc"}, "tenant"},
		{"http://x", Options{BearerToken: "t", Username: "u"}, "use one"},
		{"https://x", Options{TLS: TLSOptions{CAFile: "/does/not/exist"}}, "CA file"},
		{"https://x", Options{TLS: TLSOptions{CertFile: "a"}}, "key file"},
		{"http://u:hunter2@%zz", Options{}, "http"},
	} {
		_, err := New(tc.url, tc.opts)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%q): %v, want an error mentioning %q", tc.url, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("New(%q) error shows the password: %v", tc.url, err)
		}
	}
}

// TestStatusErrors: each failure the user can meet gives an error of the
// right kind that says what to try, with the server's message, and never
// the credentials.
func TestStatusErrors(t *testing.T) {
	srv := tempotest.Start(t)
	status := 0
	body, ctype := "", "text/plain; charset=utf-8"
	srv.Handler = func(w http.ResponseWriter, r *http.Request) bool {
		w.Header().Set("Content-Type", ctype)
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
		return true
	}
	c := newClient(t, srv.URL, Options{Tenant: "team-a", Username: "bob", Password: "hunter2"})
	for _, tc := range []struct {
		status      int
		body, ctype string
		kind        error
		want        []string
	}{
		{401, "no org id\n", "text/plain", ErrUnauthorized, []string{"401", "no org id", "credentials"}},
		{403, "denied", "text/plain", ErrForbidden, []string{"403", "team-a"}},
		{429, "slow down", "text/plain", ErrUnavailable, []string{"429", "try again later"}},
		{500, "boom\x1b[31m", "text/plain", ErrUnavailable, []string{"500", "boom[31m", "logs"}},
		{502, "<html><body>bad gateway</body></html>", "text/html", ErrUnavailable, []string{"502", "HTML page"}},
		{503, "", "text/plain", ErrUnavailable, []string{"503 service unavailable"}},
		{418, "teapot", "text/plain", ErrProtocol, []string{"418"}},
		{200, "not json", "application/json", ErrProtocol, []string{"decoding", "application/json"}},
		{200, "\xff\xff\xff", "application/protobuf", ErrProtocol, []string{"decoding", "protobuf"}},
	} {
		status, body, ctype = tc.status, tc.body, tc.ctype
		_, err := c.TraceByIDV2(context.Background(), recorded[0].id, TraceRequest{})
		if !errors.Is(err, tc.kind) {
			t.Errorf("%d: %v, want kind %v", tc.status, err, tc.kind)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%d: %q does not mention %q", tc.status, err, w)
			}
		}
		if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "\x1b") {
			t.Errorf("%d: error carries a secret or a control character: %q", tc.status, err)
		}
	}
}

func TestTransportErrors(t *testing.T) {
	ctx := context.Background()
	// Connection refused: a port that was just closed.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, err = newClient(t, "http://"+addr, Options{}).TraceByID(ctx, "abc", TraceRequest{})
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("refused: %v", err)
	}

	// Timeout: a server slower than the client's limit.
	slow := tempotest.Start(t)
	release := make(chan struct{})
	slow.Handler = func(w http.ResponseWriter, r *http.Request) bool {
		select {
		case <-release:
		case <-r.Context().Done():
		}
		return true
	}
	defer close(release)
	_, err = newClient(t, slow.URL, Options{Timeout: 100 * time.Millisecond}).TraceByID(ctx, "abc", TraceRequest{})
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "within 100ms") {
		t.Errorf("timeout: %v", err)
	}

	// Answer larger than the limit: an error, never a truncated trace.
	srv := tempotest.Start(t)
	_, err = newClient(t, srv.URL, Options{MaxResponseBytes: 100}).TraceByIDV2(ctx, recorded[0].id, TraceRequest{Encoding: JSON})
	if !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), "larger than 100 bytes") {
		t.Errorf("size limit: %v", err)
	}

	// A cancelled context is reported as such, not as a server problem.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := newClient(t, srv.URL, Options{}).TraceByID(cctx, "abc", TraceRequest{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

func TestTLS(t *testing.T) {
	srv := tempotest.New(t, tempotest.Load(t))
	ts := httptest.NewUnstartedServer(srv)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts.Listener = ln
	ts.StartTLS()
	defer ts.Close()
	ctx := context.Background()

	// Not trusted by default.
	_, err = newClient(t, ts.URL, Options{}).TraceByID(ctx, recorded[0].id, TraceRequest{})
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "not trusted") {
		t.Errorf("untrusted: %v", err)
	}
	// Trusted through a CA file.
	ca := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw})
	if err := os.WriteFile(ca, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := newClient(t, ts.URL, Options{TLS: TLSOptions{CAFile: ca}}).TraceByID(ctx, recorded[0].id, TraceRequest{}); err != nil {
		t.Errorf("with CA file: %v", err)
	}
	// Or with verification off.
	if _, err := newClient(t, ts.URL, Options{TLS: TLSOptions{InsecureSkipVerify: true}}).TraceByID(ctx, recorded[0].id, TraceRequest{}); err != nil {
		t.Errorf("insecure: %v", err)
	}
	// The wrong name is refused even with the right CA.
	_, err = newClient(t, ts.URL, Options{TLS: TLSOptions{CAFile: ca, ServerName: "elsewhere.example"}}).TraceByID(ctx, recorded[0].id, TraceRequest{})
	if !errors.Is(err, ErrUnavailable) {
		t.Errorf("wrong server name: %v", err)
	}
	// https to a plain-HTTP server.
	plain := tempotest.Start(t)
	_, err = newClient(t, strings.Replace(plain.URL, "http://", "https://", 1), Options{}).TraceByID(ctx, "abc", TraceRequest{})
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "http://") {
		t.Errorf("https to http: %v", err)
	}
	// Mutual TLS: the server asks for a client certificate.
	mtls := httptest.NewUnstartedServer(srv)
	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mtls.Listener = ln2
	mtls.TLS = &tls.Config{ClientAuth: tls.RequireAnyClientCert}
	mtls.StartTLS()
	defer mtls.Close()
	_, err = newClient(t, mtls.URL, Options{TLS: TLSOptions{InsecureSkipVerify: true}}).TraceByID(ctx, recorded[0].id, TraceRequest{})
	if err == nil {
		t.Error("mTLS server accepted a client without a certificate")
	}
}

// TestRedirectToOtherHost: credentials must not follow a redirect elsewhere.
func TestRedirectToOtherHost(t *testing.T) {
	other := tempotest.Start(t)
	srv := tempotest.Start(t)
	srv.Handler = func(w http.ResponseWriter, r *http.Request) bool {
		http.Redirect(w, r, strings.Replace(other.URL, "127.0.0.1", "localhost", 1)+r.URL.Path, http.StatusFound)
		return true
	}
	_, err := newClient(t, srv.URL, Options{BearerToken: "tok"}).TraceByID(context.Background(), recorded[0].id, TraceRequest{})
	if err == nil || !strings.Contains(err.Error(), "another host") {
		t.Errorf("redirect: %v", err)
	}
	for _, r := range other.Requests() {
		if r.Header.Get("Authorization") != "" {
			t.Error("token sent to the other host")
		}
	}
}

func TestDecodeV2ProtoPartial(t *testing.T) {
	// status PARTIAL (3: 1) and a message (4), with an empty trace and
	// metrics: decoded, not an error.
	b := []byte{0x0a, 0x00, 0x12, 0x02, 0x08, 0x07, 0x18, 0x01, 0x22, 0x03, 'b', 'i', 'g'}
	res, err := decodeV2Proto(b)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Partial || res.Message != "big" || res.InspectedBytes != 7 {
		t.Errorf("%+v", res)
	}
	if _, err := decodeV2Proto([]byte{0x0a, 0x05, 0x01}); err == nil {
		t.Error("truncated message decoded")
	}
	res2, err := decodeV2JSON([]byte(`{"trace":{},"metrics":{"inspectedBytes":"12"},"status":"PARTIAL","message":"cut"}`))
	if err != nil || !res2.Partial || res2.Message != "cut" || res2.InspectedBytes != 12 {
		t.Errorf("json partial: %+v %v", res2, err)
	}
}

func FuzzDecodeV2(f *testing.F) {
	f.Add([]byte{0x0a, 0x00, 0x12, 0x00})
	f.Add([]byte(`{"trace":{},"metrics":{}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = decodeV2Proto(b)
		_, _ = decodeV2JSON(b)
	})
}
