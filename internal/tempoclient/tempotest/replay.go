// Package tempotest serves real Tempo's recorded HTTP answers
// (fixtures/tempo/api, see its README) from a test server on 127.0.0.1, so
// clients can be tested against what Tempo really sends. Only tests import
// it; it never writes fixtures.
//
// The server answers trace-by-ID requests as Tempo does (TEMPO-FORMAT.md §8):
// an ID is 1–32 hex digits in any case, left-padded with zeros; a recorded
// trace is served for any spelling of its ID, in protobuf too when only its
// JSON answer was recorded (encoded from it); a valid ID without a recording
// is not found (v2: 200 with an empty trace; v1: 404 with no body); a
// malformed ID is Tempo's 400 text answer. Other recorded requests are
// served for their exact path and query.
package tempotest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/tracectl/tracectl/internal/render"
	"github.com/tracectl/tracectl/internal/testfix"
)

// Exchange is one recorded request and Tempo's answer.
type Exchange struct {
	Name   string // file name without .http
	Method string
	Target string // path and query as sent
	Accept string
	Status int
	Header http.Header // response headers (Date left out by the recorder)
	Body   []byte
}

// Load reads every recording in fixtures/tempo/api (skipping or failing the
// test when the fixtures are missing, see testfix).
func Load(t testing.TB) []*Exchange {
	t.Helper()
	dir := testfix.Path(t, "tempo", "api")
	files, err := filepath.Glob(filepath.Join(dir, "*.http"))
	if err != nil || len(files) == 0 {
		testfix.Missing(t, "no recordings (*.http) in "+dir)
	}
	var out []*Exchange
	for _, f := range files {
		ex, err := ReadExchange(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ex)
	}
	return out
}

var binaryBody = regexp.MustCompile(`^<binary body: (\d+) bytes, saved verbatim as (\S+)>$`)

// ReadExchange parses one recording: request line and headers, a blank
// line, status line and headers, a blank line, the body plus one newline
// (or a pointer to a .bin file with the body).
func ReadExchange(path string) (*Exchange, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	r := textproto.NewReader(bufio.NewReader(bytes.NewReader(data)))
	reqLine, err := r.ReadLine()
	if err != nil {
		return nil, fmt.Errorf("%s: request line: %v", path, err)
	}
	method, rest, _ := strings.Cut(reqLine, " ")
	target, _, _ := strings.Cut(rest, " ")
	reqHdr, err := r.ReadMIMEHeader()
	if err != nil {
		return nil, fmt.Errorf("%s: request headers: %v", path, err)
	}
	statusLine, err := r.ReadLine()
	if err != nil {
		return nil, fmt.Errorf("%s: status line: %v", path, err)
	}
	parts := strings.SplitN(statusLine, " ", 3)
	if len(parts) < 2 {
		return nil, fmt.Errorf("%s: bad status line %q", path, statusLine)
	}
	status, err := strconv.Atoi(parts[1])
	if err != nil {
		return nil, fmt.Errorf("%s: bad status line %q", path, statusLine)
	}
	respHdr, err := r.ReadMIMEHeader()
	if err != nil {
		return nil, fmt.Errorf("%s: response headers: %v", path, err)
	}
	// The body is everything after the second blank line, minus the one
	// newline the recorder appended.
	idx := bytes.Index(data, []byte("\n\n"))
	idx2 := bytes.Index(data[idx+2:], []byte("\n\n"))
	raw := data[idx+2+idx2+2:]
	body := bytes.TrimSuffix(raw, []byte("\n"))
	if m := binaryBody.FindSubmatch(body); m != nil {
		body, err = os.ReadFile(filepath.Join(filepath.Dir(path), string(m[2])))
		if err != nil {
			return nil, fmt.Errorf("%s: %v", path, err)
		}
		if want, _ := strconv.Atoi(string(m[1])); want != len(body) {
			return nil, fmt.Errorf("%s: %s has %d bytes, the recording says %d", path, m[2], len(body), want)
		}
	}
	if cl := respHdr.Get("Content-Length"); cl != "" {
		// Content-Length is the truth: a body that ends in its own newline
		// was sometimes stored without the recorder's extra one.
		n, err := strconv.Atoi(cl)
		if err == nil && n != len(body) {
			if n > len(raw) {
				return nil, fmt.Errorf("%s: body has %d bytes, Content-Length says %d", path, len(body), n)
			}
			body = raw[:n]
		}
	}
	return &Exchange{
		Name:   strings.TrimSuffix(filepath.Base(path), ".http"),
		Method: method,
		Target: target,
		Accept: reqHdr.Get("Accept"),
		Status: status,
		Header: http.Header(respHdr),
		Body:   body,
	}, nil
}

// Server replays recordings. Requests records what it was asked, for tests
// that check headers (tenant, credentials).
type Server struct {
	*httptest.Server
	byTarget map[string]*Exchange // target + "\x00" + accept kind
	traces   map[string]*Exchange // api + "\x00" + 32-digit id + "\x00" + accept kind
	notFound map[string]*Exchange // api: notfound-v1 / notfound-v2
	badHex   map[string]*Exchange // api: badid-v1 / badid-v2
	tooLong  *Exchange

	mu       sync.Mutex
	requests []*http.Request
	// Handler, when set, answers instead of the recordings (tests that need
	// 401/403/5xx or a slow server); return false to fall back to replay.
	Handler func(w http.ResponseWriter, r *http.Request) bool
}

// Start serves the recordings on a free 127.0.0.1 port until the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s := New(t, Load(t))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.Server = &httptest.Server{Listener: ln, Config: &http.Server{Handler: s}}
	s.Server.Start()
	t.Cleanup(s.Server.Close)
	return s
}

// New builds a replaying handler (not started) from recordings.
func New(t testing.TB, recs []*Exchange) *Server {
	s := &Server{
		byTarget: map[string]*Exchange{},
		traces:   map[string]*Exchange{},
		notFound: map[string]*Exchange{},
		badHex:   map[string]*Exchange{},
	}
	for _, ex := range recs {
		s.byTarget[ex.Target+"\x00"+acceptKind(ex.Accept)] = ex
		switch {
		case strings.HasPrefix(ex.Name, "notfound-v"):
			s.notFound[ex.Name[len("notfound-"):]] = ex
		case ex.Name == "badid-v1-too-long":
			s.tooLong = ex
		case strings.HasPrefix(ex.Name, "badid-v"):
			s.badHex[ex.Name[len("badid-"):]] = ex
		case ex.Status == http.StatusOK:
			if api, id, ok := traceTarget(ex.Target); ok {
				if norm, ok := normaliseID(id); ok {
					s.traces[api+"\x00"+norm+"\x00"+acceptKind(ex.Accept)] = ex
				}
			}
		}
	}
	return s
}

// Requests returns the requests served so far.
func (s *Server) Requests() []*http.Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*http.Request(nil), s.requests...)
}

func acceptKind(accept string) string {
	if strings.Contains(accept, "protobuf") {
		return "protobuf"
	}
	return "json"
}

// traceTarget splits /api/traces/<id> and /api/v2/traces/<id>.
func traceTarget(target string) (api, id string, ok bool) {
	path, _, _ := strings.Cut(target, "?")
	if id, ok := strings.CutPrefix(path, "/api/v2/traces/"); ok {
		return "v2", id, true
	}
	if id, ok := strings.CutPrefix(path, "/api/traces/"); ok {
		return "v1", id, true
	}
	return "", "", false
}

// normaliseID is Tempo's reading of a trace ID: hex, any case, at most 32
// digits, left-padded with zeros.
func normaliseID(id string) (string, bool) {
	if id == "" || len(id) > 32 {
		return "", false
	}
	for _, c := range id {
		if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
			return "", false
		}
	}
	return strings.Repeat("0", 32-len(id)) + strings.ToLower(id), true
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests = append(s.requests, r.Clone(r.Context()))
	s.mu.Unlock()
	if s.Handler != nil && s.Handler(w, r) {
		return
	}
	kind := acceptKind(r.Header.Get("Accept"))
	// Tolerate a doubled slash from a base URL that ends in one (Grafana
	// sent those for a while; Tempo's router accepts them).
	target := r.URL.RequestURI()
	for strings.HasPrefix(target, "//") {
		target = target[1:]
	}
	if ex, ok := s.byTarget[target+"\x00"+kind]; ok {
		write(w, ex)
		return
	}
	api, id, ok := traceTarget(target)
	if !ok {
		http.NotFound(w, r)
		return
	}
	id, _, _ = strings.Cut(id, "?")
	norm, valid := normaliseID(id)
	switch {
	case !valid && len(id) > 32 && isHex(id) && s.tooLong != nil:
		write(w, s.tooLong)
	case !valid:
		ex := s.badHex[api]
		if ex == nil {
			http.Error(w, "trace IDs can only contain hex characters", http.StatusBadRequest)
			return
		}
		// Tempo names the first bad character; keep the recorded wording.
		msg := badCharMessage(id, string(ex.Body))
		w.Header().Set("Content-Type", ex.Header.Get("Content-Type"))
		w.WriteHeader(ex.Status)
		_, _ = w.Write([]byte(msg))
	default:
		if ex, ok := s.traces[api+"\x00"+norm+"\x00"+kind]; ok {
			write(w, ex)
			return
		}
		if ex, ok := s.traces[api+"\x00"+norm+"\x00json"]; ok && kind == "protobuf" {
			// Tempo answers every trace in either encoding; most were
			// recorded as JSON only, so encode the recorded answer.
			body, err := protobufOf(api, ex.Body)
			if err != nil {
				http.Error(w, "tempotest: "+err.Error(), http.StatusInternalServerError)
				return
			}
			w.Header().Set("Content-Type", "application/protobuf")
			_, _ = w.Write(body)
			return
		}
		if api == "v2" && kind == "protobuf" {
			// Not recorded as a file; TEMPO-FORMAT.md gives the bytes of
			// an empty TraceByIDResponse.
			w.Header().Set("Content-Type", "application/protobuf")
			_, _ = w.Write([]byte{0x0a, 0x00, 0x12, 0x00})
			return
		}
		if ex := s.notFound[api]; ex != nil {
			write(w, ex)
			return
		}
		http.NotFound(w, r)
	}
}

func isHex(s string) bool {
	_, ok := normaliseID(s[:min(len(s), 32)])
	return ok
}

// badCharMessage rewrites "invalid character 'n' at position 1" for id.
func badCharMessage(id, recorded string) string {
	for i, c := range id {
		if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
			prefix, _, _ := strings.Cut(recorded, "invalid character")
			return fmt.Sprintf("%sinvalid character '%c' at position %d", prefix, c, i+1)
		}
	}
	return recorded
}

func write(w http.ResponseWriter, ex *Exchange) {
	for k, vs := range ex.Header {
		switch k {
		case "Content-Length", "Transfer-Encoding":
			continue
		}
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	w.WriteHeader(ex.Status)
	_, _ = w.Write(ex.Body)
}

// protobufOf encodes a recorded JSON answer as Tempo's protobuf one: v1 a
// Trace (field 1: ResourceSpans, the bytes of OTLP TracesData), v2 a
// TraceByIDResponse {1 trace, 2 metrics {1 inspectedBytes}}.
func protobufOf(api string, body []byte) ([]byte, error) {
	var v2 struct {
		Trace   json.RawMessage `json:"trace"`
		Metrics struct {
			InspectedBytes string `json:"inspectedBytes"`
		} `json:"metrics"`
	}
	traceJSON := body
	if api == "v2" {
		if err := json.Unmarshal(body, &v2); err != nil {
			return nil, err
		}
		traceJSON = v2.Trace
	}
	td, err := render.UnmarshalTempoTrace(traceJSON)
	if err != nil {
		return nil, err
	}
	trace, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(td)
	if err != nil {
		return nil, err
	}
	if api == "v1" {
		return trace, nil
	}
	out := protowire.AppendTag(nil, 1, protowire.BytesType)
	out = protowire.AppendBytes(out, trace)
	var metrics []byte
	if n, err := strconv.ParseUint(v2.Metrics.InspectedBytes, 10, 64); err == nil {
		metrics = protowire.AppendTag(metrics, 1, protowire.VarintType)
		metrics = protowire.AppendVarint(metrics, n)
	}
	out = protowire.AppendTag(out, 2, protowire.BytesType)
	return protowire.AppendBytes(out, metrics), nil
}
