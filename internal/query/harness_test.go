package query

import (
	"bytes"
	"context"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/blocks/vparquet4"
	"github.com/tracectl/tracectl/internal/storage"
	"github.com/tracectl/tracectl/internal/storage/storagetest"
	"github.com/tracectl/tracectl/internal/testfix"
)

// recording is one exchange from fixtures/tempo/api (format in its README).
type recording struct {
	name        string
	path        string // request path with query
	reqHeader   http.Header
	status      int
	respHeader  http.Header
	body        []byte
	contentType string
}

func loadRecording(t testing.TB, name string) *recording {
	t.Helper()
	file := testfix.Path(t, "tempo", "api", name+".http")
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	parts := bytes.SplitN(data, []byte("\n\n"), 3)
	if len(parts) != 3 {
		t.Fatalf("%s: not a recorded exchange", file)
	}
	rec := &recording{name: name, reqHeader: http.Header{}, respHeader: http.Header{}}
	reqLines := strings.Split(string(parts[0]), "\n")
	fields := strings.Fields(reqLines[0])
	rec.path = fields[1]
	for _, l := range reqLines[1:] {
		if k, v, ok := strings.Cut(l, ": "); ok && k != "Host" {
			rec.reqHeader.Add(k, v)
		}
	}
	respLines := strings.Split(string(parts[1]), "\n")
	rec.status, err = strconv.Atoi(strings.Fields(respLines[0])[1])
	if err != nil {
		t.Fatalf("%s: status line %q", file, respLines[0])
	}
	for _, l := range respLines[1:] {
		if k, v, ok := strings.Cut(l, ": "); ok {
			rec.respHeader.Add(k, v)
		}
	}
	rec.contentType = rec.respHeader.Get("Content-Type")
	rec.body = bytes.TrimSuffix(parts[2], []byte("\n"))
	if bytes.HasPrefix(rec.body, []byte("<binary body:")) {
		rec.body, err = os.ReadFile(strings.TrimSuffix(file, ".http") + ".bin")
		if err != nil {
			t.Fatal(err)
		}
	}
	return rec
}

// fixtureBucket copies a fixture bucket (e.g. tempo/vparquet4) into a new
// bucket in a temporary directory, so tests never touch the fixtures.
func fixtureBucket(t testing.TB, elem ...string) (*storage.Bucket, string) {
	t.Helper()
	src := testfix.Path(t, elem...)
	dir := t.TempDir()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		dst := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	b := storagetest.OpenDir(t, dir)
	return b, dir
}

// startAPI serves an API over HTTP on 127.0.0.1:0.
func startAPI(t testing.TB, cfg Config) (*API, string) {
	t.Helper()
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	a.Start()
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(func() {
		srv.Close()
		a.Close()
	})
	return a, srv.URL
}

type httpResult struct {
	status int
	header http.Header
	body   []byte
}

func (r httpResult) String() string {
	return strconv.Itoa(r.status) + " " + r.header.Get("Content-Type") + " " + shorten(string(r.body))
}

func shorten(s string) string {
	if len(s) > 300 {
		return s[:300] + "…"
	}
	return s
}

// get sends GET base+path with headers (pairs of name, value).
func get(t testing.TB, base, path string, headers ...string) httpResult {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return httpResult{status: resp.StatusCode, header: resp.Header, body: body}
}

func headerPairs(h http.Header) []string {
	var out []string
	for k, vs := range h {
		for _, v := range vs {
			out = append(out, k, v)
		}
	}
	return out
}

// fakeHead is a Head holding traces in memory, for tests.
type fakeHead struct {
	mu     sync.Mutex
	traces map[string]map[block.TraceID][]ptrace.Traces
}

func newFakeHead() *fakeHead {
	return &fakeHead{traces: map[string]map[block.TraceID][]ptrace.Traces{}}
}

func (h *fakeHead) add(tenant string, id block.TraceID, td ptrace.Traces) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.traces[tenant] == nil {
		h.traces[tenant] = map[block.TraceID][]ptrace.Traces{}
	}
	h.traces[tenant][id] = append(h.traces[tenant][id], td)
}

func (h *fakeHead) FindInHead(tenant string, id block.TraceID) []ptrace.Traces {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []ptrace.Traces
	for _, td := range h.traces[tenant][id] {
		c := ptrace.NewTraces()
		td.CopyTo(c)
		out = append(out, c)
	}
	return out
}

func (h *fakeHead) ForEachHeadTrace(tenant string, fn func(id block.TraceID, parts []ptrace.Traces) bool) {
	h.mu.Lock()
	ids := make([]block.TraceID, 0, len(h.traces[tenant]))
	for id := range h.traces[tenant] {
		ids = append(ids, id)
	}
	h.mu.Unlock()
	for _, id := range ids {
		if !fn(id, h.FindInHead(tenant, id)) {
			return
		}
	}
}

var _ Head = (*fakeHead)(nil)

func queryEscape(s string) string { return url.QueryEscape(s) }

// writeBlock stores traces as one vParquet4 block of tenant, as another
// writer (migrate, another tracectl) would.
func writeBlock(t testing.TB, b *storage.Bucket, tenant string, traces ...ptrace.Traces) *block.Meta {
	t.Helper()
	m, err := vparquet4.WriteBlock(context.Background(), b, vparquet4.WriterConfig{TenantID: tenant}, traces...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
