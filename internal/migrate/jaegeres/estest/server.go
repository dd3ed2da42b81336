// Package estest is an Elasticsearch/OpenSearch test server for the Jaeger
// migration: it follows the REST semantics the migrator relies on, as the
// Elasticsearch and OpenSearch documentation describe them — GET / with the
// version, _cat/indices and _alias with wildcards, _count, point-in-time
// (ES /_pit and OpenSearch /_search/point_in_time) as a snapshot: documents
// indexed after it opened are invisible, search with sort, search_after,
// the implicit _shard_doc tiebreaker of ES ≥ 7.12, slices, scroll, expiry
// errors, 429 rejections, partial shard failures, basic and API-key auth.
//
// It is for tests and benchmarks only: it binds 127.0.0.1 on a free port,
// holds everything in memory, and implements only the query forms the
// migrator sends (bool filter, range, term(s), match_all).
package estest

import (
	"bytes"
	"cmp"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"net"
	"net/http"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Doc is one stored document: the fields the server sorts and filters on,
// and its _source. Source may be nil when the server has a Render func.
type Doc struct {
	ID        string
	TraceID   string
	SpanID    string
	Service   string
	StartTime int64 // µs; startTimeMillis is StartTime/1000
	Source    []byte
}

// Config describes the server to pretend to be.
type Config struct {
	// Version is the version number GET / reports, e.g. "7.17.0", "8.15.0",
	// "6.8.23", "2.11.0" (with Distribution "opensearch").
	Version      string
	Distribution string // "" for Elasticsearch, "opensearch"
	// Username and Password, when set, are required (basic auth); APIKey,
	// when set, is accepted as "Authorization: ApiKey <key>".
	Username, Password string
	APIKey             string
	// Render produces the _source of documents stored without one.
	Render func(d *Doc, dst []byte) []byte
	// Shards is how many shards each index reports (default 1).
	Shards int
}

// Fault lets a test answer a request itself: return status 0 to let the
// server handle it.
type Fault func(r *http.Request, body []byte) (status int, respBody string)

// Server is a running test server.
type Server struct {
	URL string
	cfg Config

	mu       sync.Mutex
	indices  map[string]*index
	aliases  map[string][]string
	pits     map[string]*context_
	scrolls  map[string]*context_
	nextID   atomic.Int64
	fault    atomic.Pointer[Fault]
	Requests atomic.Int64
	Searches atomic.Int64

	ln  net.Listener
	srv *http.Server
}

type index struct {
	name string
	docs []*Doc
}

// context_ is an open PIT or scroll: a snapshot of the documents of its
// indices when it opened, sorted orders cached per sort spec.
type context_ struct {
	id        string
	indices   []string
	docs      []snapDoc
	expires   time.Time
	keepAlive time.Duration
	sorted    map[string][]int32
	// scroll state
	scroll *scrollState
}

type snapDoc struct {
	index string
	doc   *Doc
	seq   int64 // _shard_doc
}

type scrollState struct {
	req  *searchReq
	pos  int
	list []int32
}

// Start starts a server on 127.0.0.1 and a free port. Close it when done.
func Start(cfg Config) (*Server, error) {
	if cfg.Version == "" {
		cfg.Version = "7.17.0"
	}
	if cfg.Shards == 0 {
		cfg.Shards = 1
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Server{
		URL: "http://" + ln.Addr().String(), cfg: cfg, ln: ln,
		indices: map[string]*index{}, aliases: map[string][]string{},
		pits: map[string]*context_{}, scrolls: map[string]*context_{},
	}
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go s.srv.Serve(ln)
	return s, nil
}

// Close stops the server.
func (s *Server) Close() error { return s.srv.Close() }

// SetFault installs f (nil removes it).
func (s *Server) SetFault(f Fault) {
	if f == nil {
		s.fault.Store(nil)
		return
	}
	s.fault.Store(&f)
}

// Add indexes documents into idx (creating it). Open PITs and scrolls do
// not see them.
func (s *Server) Add(idx string, docs ...*Doc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ix := s.indices[idx]
	if ix == nil {
		ix = &index{name: idx}
		s.indices[idx] = ix
	}
	ix.docs = append(ix.docs, docs...)
}

// CreateIndex creates an empty index.
func (s *Server) CreateIndex(idx string) { s.Add(idx) }

// Alias points alias at indices.
func (s *Server) Alias(alias string, indices ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.aliases[alias] = append([]string(nil), indices...)
}

// ExpireContexts makes every open PIT and scroll expire now.
func (s *Server) ExpireContexts() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.pits)
	clear(s.scrolls)
}

// OpenContexts is how many PITs and scrolls are open.
func (s *Server) OpenContexts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pits) + len(s.scrolls)
}

// Count is how many documents idx holds.
func (s *Server) Count(idx string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ix := s.indices[idx]; ix != nil {
		return len(ix.docs)
	}
	return 0
}

// LoadBulk reads Elasticsearch _bulk NDJSON (index actions only) and
// indexes the documents, extracting the sort and filter fields from each
// Jaeger span document.
func (s *Server) LoadBulk(r io.Reader) error {
	dec := json.NewDecoder(r)
	for {
		var action struct {
			Index *struct {
				Index string `json:"_index"`
				ID    string `json:"_id"`
			} `json:"index"`
		}
		if err := dec.Decode(&action); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("bulk: %w", err)
		}
		var src json.RawMessage
		if err := dec.Decode(&src); err != nil {
			return fmt.Errorf("bulk: %w", err)
		}
		if action.Index == nil {
			return fmt.Errorf("bulk: only index actions are supported")
		}
		d, err := DocFromSource(action.Index.ID, src)
		if err != nil {
			return fmt.Errorf("bulk %s/%s: %w", action.Index.Index, action.Index.ID, err)
		}
		s.Add(action.Index.Index, d)
	}
}

// DocFromSource builds a Doc from a Jaeger span document (service
// documents have no traceID; they are stored all the same).
func DocFromSource(id string, src []byte) (*Doc, error) {
	var f struct {
		TraceID   string      `json:"traceID"`
		SpanID    string      `json:"spanID"`
		StartTime json.Number `json:"startTime"`
		Process   struct {
			ServiceName string `json:"serviceName"`
		} `json:"process"`
		ServiceName string `json:"serviceName"`
	}
	dec := json.NewDecoder(bytes.NewReader(src))
	dec.UseNumber()
	if err := dec.Decode(&f); err != nil {
		return nil, err
	}
	st, _ := f.StartTime.Int64()
	svc := cmp.Or(f.Process.ServiceName, f.ServiceName)
	return &Doc{ID: id, TraceID: f.TraceID, SpanID: f.SpanID, Service: svc, StartTime: st, Source: bytes.Clone(src)}, nil
}

func (s *Server) major() int {
	m, _ := strconv.Atoi(strings.SplitN(s.cfg.Version, ".", 2)[0])
	return m
}

func (s *Server) minor() int {
	parts := strings.SplitN(s.cfg.Version, ".", 3)
	if len(parts) < 2 {
		return 0
	}
	m, _ := strconv.Atoi(parts[1])
	return m
}

func (s *Server) isOpenSearch() bool { return s.cfg.Distribution == "opensearch" }

// hasESPIT: Elasticsearch 7.10+; implicitTiebreak: 7.12+.
func (s *Server) hasESPIT() bool {
	return !s.isOpenSearch() && (s.major() > 7 || s.major() == 7 && s.minor() >= 10)
}
func (s *Server) implicitTiebreak() bool {
	return !s.isOpenSearch() && (s.major() > 7 || s.major() == 7 && s.minor() >= 12)
}
func (s *Server) hasOSPIT() bool {
	return s.isOpenSearch() && (s.major() > 2 || s.major() == 2 && s.minor() >= 4)
}

// ServeHTTP routes requests.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.Requests.Add(1)
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<20))
	if err != nil {
		errorResp(w, 400, "parse_exception", err.Error())
		return
	}
	if !s.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Basic realm="security" charset="UTF-8"`)
		errorResp(w, 401, "security_exception", "missing authentication credentials for REST request ["+r.URL.Path+"]")
		return
	}
	if f := s.fault.Load(); f != nil {
		if status, resp := (*f)(r, body); status != 0 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			io.WriteString(w, resp)
			return
		}
	}
	p := strings.Trim(r.URL.Path, "/")
	parts := strings.Split(p, "/")
	switch {
	case p == "" && (r.Method == "GET" || r.Method == "HEAD"):
		s.root(w)
	case parts[0] == "_cat" && len(parts) >= 2 && parts[1] == "indices":
		pattern := "*"
		if len(parts) > 2 {
			pattern = parts[2]
		}
		s.catIndices(w, pattern)
	case parts[0] == "_alias" && len(parts) == 2 && r.Method == "GET":
		s.getAlias(w, parts[1])
	case p == "_pit" && r.Method == "DELETE" && s.hasESPIT():
		s.closePIT(w, body, "id")
	case p == "_search/point_in_time" && r.Method == "DELETE" && s.hasOSPIT():
		s.closePIT(w, body, "pit_id")
	case p == "_search/scroll" && r.Method == "DELETE":
		s.clearScroll(w, body)
	case p == "_search/scroll" && (r.Method == "POST" || r.Method == "GET"):
		s.scrollNext(w, body)
	case p == "_search" && (r.Method == "POST" || r.Method == "GET"):
		s.search(w, r, "", body)
	case len(parts) == 2 && parts[1] == "_pit" && r.Method == "POST" && s.hasESPIT():
		s.openPIT(w, r, parts[0], "id")
	case len(parts) == 3 && parts[1] == "_search" && parts[2] == "point_in_time" && r.Method == "POST" && s.hasOSPIT():
		s.openPIT(w, r, parts[0], "pit_id")
	case len(parts) == 2 && parts[1] == "_search" && (r.Method == "POST" || r.Method == "GET"):
		s.search(w, r, parts[0], body)
	case len(parts) == 2 && parts[1] == "_count" && (r.Method == "POST" || r.Method == "GET"):
		s.count(w, parts[0], body)
	default:
		errorResp(w, 400, "illegal_argument_exception", fmt.Sprintf("request [%s] contains unrecognized path [/%s]", r.Method, p))
	}
}

func (s *Server) authorized(r *http.Request) bool {
	if s.cfg.Username == "" && s.cfg.APIKey == "" {
		return true
	}
	auth := r.Header.Get("Authorization")
	if s.cfg.APIKey != "" {
		if k, ok := strings.CutPrefix(auth, "ApiKey "); ok && subtle.ConstantTimeCompare([]byte(k), []byte(s.cfg.APIKey)) == 1 {
			return true
		}
	}
	if s.cfg.Username != "" {
		u, p, ok := r.BasicAuth()
		return ok && subtle.ConstantTimeCompare([]byte(u), []byte(s.cfg.Username)) == 1 &&
			subtle.ConstantTimeCompare([]byte(p), []byte(s.cfg.Password)) == 1
	}
	return false
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func errorResp(w http.ResponseWriter, status int, typ, reason string) {
	writeJSON(w, status, map[string]any{
		"error": map[string]any{
			"root_cause": []any{map[string]any{"type": typ, "reason": reason}},
			"type":       typ, "reason": reason,
		},
		"status": status,
	})
}

// ContextMissing is the body Elasticsearch answers (HTTP 404) for an
// expired or unknown PIT or scroll.
func contextMissing(w http.ResponseWriter, id string) {
	writeJSON(w, 404, map[string]any{
		"error": map[string]any{
			"root_cause": []any{map[string]any{"type": "search_context_missing_exception", "reason": "No search context found for id [" + id + "]"}},
			"type":       "search_phase_execution_exception", "reason": "all shards failed", "phase": "query",
		},
		"status": 404,
	})
}

// Rejected429 is the body of Elasticsearch's 429 answer.
const Rejected429 = `{"error":{"root_cause":[{"type":"es_rejected_execution_exception","reason":"rejected execution of coordinating operation"}],"type":"es_rejected_execution_exception","reason":"rejected execution of coordinating operation"},"status":429}`

func (s *Server) root(w http.ResponseWriter) {
	v := map[string]any{"number": s.cfg.Version, "build_flavor": "default", "lucene_version": "9.0.0"}
	tagline := "You Know, for Search"
	if s.isOpenSearch() {
		v["distribution"] = "opensearch"
		tagline = "The OpenSearch Project: https://opensearch.org/"
	}
	writeJSON(w, 200, map[string]any{"name": "estest", "cluster_name": "estest", "cluster_uuid": "estest", "version": v, "tagline": tagline})
}

// resolve expands a comma list of names, wildcards and aliases (with
// -exclusions) into index names, sorted.
func (s *Server) resolve(expr string) []string {
	set := map[string]bool{}
	for _, part := range strings.Split(expr, ",") {
		neg := strings.HasPrefix(part, "-")
		part = strings.TrimPrefix(part, "-")
		var names []string
		if strings.ContainsAny(part, "*?") || part == "_all" {
			pat := part
			if pat == "_all" {
				pat = "*"
			}
			for n := range s.indices {
				if ok, _ := path.Match(pat, n); ok {
					names = append(names, n)
				}
			}
			for a, ix := range s.aliases {
				if ok, _ := path.Match(pat, a); ok {
					names = append(names, ix...)
				}
			}
		} else if ix, ok := s.aliases[part]; ok {
			names = ix
		} else if _, ok := s.indices[part]; ok {
			names = []string{part}
		} else if !neg {
			return nil
		}
		for _, n := range names {
			set[n] = !neg
		}
	}
	var out []string
	for n, ok := range set {
		if ok {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

func (s *Server) catIndices(w http.ResponseWriter, pattern string) {
	s.mu.Lock()
	names := s.resolve(pattern)
	rows := []map[string]string{}
	for _, n := range names {
		rows = append(rows, map[string]string{"index": n, "health": "green", "status": "open",
			// docs.count counts nested Lucene documents, as the real one does.
			"docs.count": strconv.Itoa(len(s.indices[n].docs) * 4)})
	}
	s.mu.Unlock()
	writeJSON(w, 200, rows)
}

func (s *Server) getAlias(w http.ResponseWriter, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]any{}
	for a, ix := range s.aliases {
		if ok, _ := path.Match(name, a); ok {
			for _, n := range ix {
				out[n] = map[string]any{"aliases": map[string]any{a: map[string]any{}}}
			}
		}
	}
	if len(out) == 0 {
		writeJSON(w, 404, map[string]any{"error": "alias [" + name + "] missing", "status": 404})
		return
	}
	writeJSON(w, 200, out)
}

func (s *Server) indexNotFound(w http.ResponseWriter, expr string) {
	errorResp(w, 404, "index_not_found_exception", "no such index ["+expr+"]")
}

func (s *Server) count(w http.ResponseWriter, expr string, body []byte) {
	req, err := s.parseSearch(body)
	if err != nil {
		errorResp(w, 400, "parsing_exception", err.Error())
		return
	}
	s.mu.Lock()
	names := s.resolve(expr)
	if names == nil {
		s.mu.Unlock()
		s.indexNotFound(w, expr)
		return
	}
	n := 0
	for _, name := range names {
		for _, d := range s.indices[name].docs {
			if req.query.match(d) {
				n++
			}
		}
	}
	s.mu.Unlock()
	writeJSON(w, 200, map[string]any{"count": n, "_shards": s.shards(len(names), 0)})
}

func (s *Server) shards(indices, failed int) map[string]any {
	t := indices * s.cfg.Shards
	return map[string]any{"total": t, "successful": t - failed, "skipped": 0, "failed": failed}
}

func parseKeepAlive(v string) (time.Duration, error) {
	if v == "" {
		return 0, fmt.Errorf("keep_alive is required")
	}
	unit := strings.TrimLeft(v, "0123456789")
	n, err := strconv.Atoi(strings.TrimSuffix(v, unit))
	if err != nil {
		return 0, fmt.Errorf("failed to parse [%s] as a time value", v)
	}
	mult := map[string]time.Duration{"ms": time.Millisecond, "s": time.Second, "m": time.Minute, "h": time.Hour, "d": 24 * time.Hour}[unit]
	if mult == 0 {
		return 0, fmt.Errorf("failed to parse [%s] as a time value", v)
	}
	return time.Duration(n) * mult, nil
}

func (s *Server) snapshot(names []string, keepAlive time.Duration) *context_ {
	return s.snapshotMatching(names, keepAlive, nil)
}

// snapshotMatching is a snapshot of the documents q matches (nil: all),
// numbered as in the full snapshot.
func (s *Server) snapshotMatching(names []string, keepAlive time.Duration, q query) *context_ {
	c := &context_{indices: names, keepAlive: keepAlive, expires: time.Now().Add(keepAlive), sorted: map[string][]int32{}}
	seq := int64(0)
	for _, n := range names {
		for _, d := range s.indices[n].docs {
			if q == nil || q.match(d) {
				c.docs = append(c.docs, snapDoc{index: n, doc: d, seq: seq})
			}
			seq++
		}
	}
	c.id = base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, "ctx-%d-%d", s.nextID.Add(1), time.Now().UnixNano()))
	return c
}

func (s *Server) openPIT(w http.ResponseWriter, r *http.Request, expr, idField string) {
	ka, err := parseKeepAlive(r.URL.Query().Get("keep_alive"))
	if err != nil {
		errorResp(w, 400, "illegal_argument_exception", err.Error())
		return
	}
	s.mu.Lock()
	names := s.resolve(expr)
	if names == nil {
		s.mu.Unlock()
		s.indexNotFound(w, expr)
		return
	}
	c := s.snapshot(names, ka)
	s.pits[c.id] = c
	s.mu.Unlock()
	resp := map[string]any{idField: c.id}
	if idField == "pit_id" {
		resp["_shards"] = s.shards(len(names), 0)
		resp["creation_time"] = time.Now().UnixMilli()
	}
	writeJSON(w, 200, resp)
}

func (s *Server) closePIT(w http.ResponseWriter, body []byte, idField string) {
	var req map[string]any
	if err := json.Unmarshal(body, &req); err != nil {
		errorResp(w, 400, "parse_exception", err.Error())
		return
	}
	var ids []string
	switch v := req[idField].(type) {
	case string:
		ids = []string{v}
	case []any:
		for _, x := range v {
			if s, ok := x.(string); ok {
				ids = append(ids, s)
			}
		}
	}
	s.mu.Lock()
	n := 0
	for _, id := range ids {
		if _, ok := s.pits[id]; ok {
			delete(s.pits, id)
			n++
		}
	}
	s.mu.Unlock()
	if idField == "pit_id" {
		var res []any
		for _, id := range ids {
			res = append(res, map[string]any{"pit_id": id, "successful": true})
		}
		writeJSON(w, 200, map[string]any{"pits": res})
		return
	}
	writeJSON(w, 200, map[string]any{"succeeded": true, "num_freed": n})
}

func (s *Server) clearScroll(w http.ResponseWriter, body []byte) {
	var req struct {
		ScrollID any `json:"scroll_id"`
	}
	json.Unmarshal(body, &req)
	var ids []string
	switch v := req.ScrollID.(type) {
	case string:
		ids = []string{v}
	case []any:
		for _, x := range v {
			if s, ok := x.(string); ok {
				ids = append(ids, s)
			}
		}
	}
	s.mu.Lock()
	n := 0
	for _, id := range ids {
		if _, ok := s.scrolls[id]; ok {
			delete(s.scrolls, id)
			n++
		}
	}
	s.mu.Unlock()
	writeJSON(w, 200, map[string]any{"succeeded": true, "num_freed": n})
}

// search handles /_search (with a PIT) and /<indices>/_search (plain or
// starting a scroll).
func (s *Server) search(w http.ResponseWriter, r *http.Request, expr string, body []byte) {
	s.Searches.Add(1)
	req, err := s.parseSearch(body)
	if err != nil {
		errorResp(w, 400, "parsing_exception", err.Error())
		return
	}
	scroll := r.URL.Query().Get("scroll")
	if req.pitID != "" && expr != "" {
		errorResp(w, 400, "action_request_validation_exception", "Validation Failed: 1: [indices] cannot be used with point in time. Do not specify any index with point in time.;")
		return
	}
	if req.pitID != "" && scroll != "" {
		errorResp(w, 400, "action_request_validation_exception", "Validation Failed: 1: using [point in time] is not allowed in a scroll context;")
		return
	}
	if req.size > 10000 && scroll == "" {
		errorResp(w, 400, "illegal_argument_exception", "Result window is too large, from + size must be less than or equal to: [10000]")
		return
	}
	if req.slice != nil && req.pitID == "" && scroll == "" {
		errorResp(w, 400, "action_request_validation_exception", "[slice] can only be used with [scroll] or [point-in-time] requests")
		return
	}
	s.mu.Lock()
	var c *context_
	switch {
	case req.pitID != "":
		c = s.pits[req.pitID]
		if c == nil || time.Now().After(c.expires) {
			delete(s.pits, req.pitID)
			s.mu.Unlock()
			contextMissing(w, req.pitID)
			return
		}
		if req.pitKeepAlive > 0 {
			c.keepAlive = req.pitKeepAlive
		}
		c.expires = time.Now().Add(c.keepAlive)
	default:
		names := s.resolve(expr)
		if names == nil && expr != "" {
			s.mu.Unlock()
			s.indexNotFound(w, expr)
			return
		}
		if expr == "" {
			names = s.resolve("*")
		}
		ka := time.Minute
		if scroll != "" {
			if ka, err = parseKeepAlive(scroll); err != nil {
				s.mu.Unlock()
				errorResp(w, 400, "illegal_argument_exception", err.Error())
				return
			}
		}
		// A search without a PIT serves one query for its whole life, so
		// its snapshot holds only the matching documents: sorting every
		// document of every index per page made each trace-ID lookup of
		// the migrator cost seconds (and hold the lock) on a large dataset,
		// where Elasticsearch answers from its inverted index.
		c = s.snapshotMatching(names, ka, req.query)
		if scroll != "" {
			s.scrolls[c.id] = c
		}
	}
	tiebreak := req.pitID != "" && s.implicitTiebreak() && (req.searchAfter == nil || len(req.searchAfter) == len(req.sort)+1)
	sortSpec := req.sort
	if tiebreak && (len(sortSpec) == 0 || sortSpec[len(sortSpec)-1].field != "_shard_doc") {
		sortSpec = append(slices.Clone(sortSpec), sortField{field: "_shard_doc"})
	}
	if req.pitID == "" {
		for _, f := range sortSpec {
			if f.field == "_shard_doc" {
				s.mu.Unlock()
				errorResp(w, 400, "illegal_argument_exception", "[_shard_doc] sort field cannot be used without [point in time]")
				return
			}
		}
	}
	list := c.order(sortSpec)
	if len(req.searchAfter) > 0 && len(req.searchAfter) != len(sortSpec) {
		s.mu.Unlock()
		errorResp(w, 400, "illegal_argument_exception", fmt.Sprintf("search_after has %d value(s) but sort has %d.", len(req.searchAfter), len(sortSpec)))
		return
	}
	start := 0
	if len(req.searchAfter) > 0 {
		start, _ = slices.BinarySearchFunc(list, req.searchAfter, func(i int32, after []any) int {
			if compareAfter(sortSpec, &c.docs[i], after) <= 0 {
				return -1
			}
			return 1
		})
	}
	hits, pos := c.page(list, start, req)
	total := -1
	if req.trackTotal {
		total = 0
		for _, i := range list {
			if req.query.match(c.docs[i].doc) && req.slice.has(c.docs[i].doc) {
				total++
			}
		}
	}
	if scroll != "" {
		c.scroll = &scrollState{req: req, pos: pos, list: list}
	}
	s.mu.Unlock()
	var extra string
	switch {
	case req.pitID != "":
		extra = `"pit_id":` + strconv.Quote(req.pitID) + `,`
	case scroll != "":
		extra = `"_scroll_id":` + strconv.Quote(c.id) + `,`
	}
	s.writeHits(w, extra, len(c.indices), hits, sortSpec, total)
}

func (s *Server) scrollNext(w http.ResponseWriter, body []byte) {
	s.Searches.Add(1)
	var req struct {
		Scroll   string `json:"scroll"`
		ScrollID string `json:"scroll_id"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		errorResp(w, 400, "parse_exception", err.Error())
		return
	}
	s.mu.Lock()
	c := s.scrolls[req.ScrollID]
	if c == nil || time.Now().After(c.expires) {
		delete(s.scrolls, req.ScrollID)
		s.mu.Unlock()
		contextMissing(w, req.ScrollID)
		return
	}
	if ka, err := parseKeepAlive(req.Scroll); err == nil {
		c.keepAlive = ka
	}
	c.expires = time.Now().Add(c.keepAlive)
	st := c.scroll
	hits, pos := c.page(st.list, st.pos, st.req)
	st.pos = pos
	s.mu.Unlock()
	s.writeHits(w, `"_scroll_id":`+strconv.Quote(c.id)+`,`, len(c.indices), hits, st.req.sort, -1)
}

// order returns the snapshot's documents sorted by spec (cached).
func (c *context_) order(spec []sortField) []int32 {
	var key strings.Builder
	for _, f := range spec {
		key.WriteString(f.field)
		if f.desc {
			key.WriteString(" desc")
		}
		key.WriteByte(',')
	}
	if l, ok := c.sorted[key.String()]; ok {
		return l
	}
	l := make([]int32, len(c.docs))
	for i := range l {
		l[i] = int32(i)
	}
	slices.SortStableFunc(l, func(a, b int32) int {
		return compareDocs(spec, &c.docs[a], &c.docs[b])
	})
	c.sorted[key.String()] = l
	return l
}

func (c *context_) page(list []int32, start int, req *searchReq) ([]*snapDoc, int) {
	var hits []*snapDoc
	size := req.size
	pos := start
	for ; pos < len(list) && len(hits) < size; pos++ {
		d := &c.docs[list[pos]]
		if req.query.match(d.doc) && req.slice.has(d.doc) {
			hits = append(hits, d)
		}
	}
	return hits, pos
}

func (s *Server) writeHits(w http.ResponseWriter, extra string, nIndices int, hits []*snapDoc, spec []sortField, total int) {
	var b bytes.Buffer
	b.Grow(len(hits) * 1500)
	b.WriteString(`{"took":1,"timed_out":false,`)
	b.WriteString(extra)
	sh, _ := json.Marshal(s.shards(nIndices, 0))
	b.WriteString(`"_shards":`)
	b.Write(sh)
	b.WriteString(`,"hits":{`)
	if total >= 0 {
		fmt.Fprintf(&b, `"total":{"value":%d,"relation":"eq"},`, total)
	}
	b.WriteString(`"max_score":null,"hits":[`)
	var buf []byte
	for i, d := range hits {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"_index":`)
		b.WriteString(strconv.Quote(d.index))
		if s.major() == 6 {
			b.WriteString(`,"_type":"span"`)
		}
		b.WriteString(`,"_id":`)
		b.WriteString(strconv.Quote(d.doc.ID))
		b.WriteString(`,"_score":null,"_source":`)
		if d.doc.Source != nil {
			b.Write(d.doc.Source)
		} else {
			buf = s.cfg.Render(d.doc, buf[:0])
			b.Write(buf)
		}
		if len(spec) > 0 {
			b.WriteString(`,"sort":[`)
			for j, f := range spec {
				if j > 0 {
					b.WriteByte(',')
				}
				switch f.field {
				case "traceID":
					b.WriteString(strconv.Quote(d.doc.TraceID))
				case "spanID":
					b.WriteString(strconv.Quote(d.doc.SpanID))
				case "startTime":
					b.WriteString(strconv.FormatInt(d.doc.StartTime, 10))
				case "startTimeMillis":
					b.WriteString(strconv.FormatInt(d.doc.StartTime/1000, 10))
				case "_shard_doc", "_doc":
					b.WriteString(strconv.FormatInt(d.seq, 10))
				}
			}
			b.WriteByte(']')
		}
		b.WriteByte('}')
	}
	b.WriteString(`]}}`)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(b.Len()))
	w.WriteHeader(200)
	w.Write(b.Bytes())
}

// --- request parsing ---------------------------------------------------

type sortField struct {
	field string
	desc  bool
}

type sliceSpec struct{ id, max int }

func (sl *sliceSpec) has(d *Doc) bool {
	if sl == nil || sl.max <= 1 {
		return true
	}
	h := fnv.New32a()
	io.WriteString(h, d.ID)
	return int(h.Sum32()%uint32(sl.max)) == sl.id
}

type searchReq struct {
	query        query
	sort         []sortField
	searchAfter  []any
	size         int
	slice        *sliceSpec
	pitID        string
	pitKeepAlive time.Duration
	trackTotal   bool
}

var sortable = map[string]bool{"traceID": true, "spanID": true, "startTime": true, "startTimeMillis": true, "_doc": true, "_shard_doc": true}

func (s *Server) parseSearch(body []byte) (*searchReq, error) {
	req := &searchReq{size: 10, trackTotal: true, query: matchAll{}}
	if len(bytes.TrimSpace(body)) == 0 {
		return req, nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	for k, v := range m {
		switch k {
		case "query":
			q, err := s.parseQuery(v)
			if err != nil {
				return nil, err
			}
			req.query = q
		case "size":
			n, err := v.(json.Number).Int64()
			if err != nil || n < 0 {
				return nil, fmt.Errorf("[size] must be a positive integer")
			}
			req.size = int(n)
		case "sort":
			list, ok := v.([]any)
			if !ok {
				list = []any{v}
			}
			for _, e := range list {
				var f sortField
				switch e := e.(type) {
				case string:
					f.field = e
				case map[string]any:
					for name, o := range e {
						f.field = name
						switch o := o.(type) {
						case string:
							f.desc = o == "desc"
						case map[string]any:
							f.desc = o["order"] == "desc"
						}
					}
				}
				if !sortable[f.field] {
					return nil, fmt.Errorf("no mapping found for [%s] in order to sort on", f.field)
				}
				req.sort = append(req.sort, f)
			}
		case "search_after":
			list, ok := v.([]any)
			if !ok {
				return nil, fmt.Errorf("[search_after] must be an array")
			}
			req.searchAfter = list
		case "slice":
			o, _ := v.(map[string]any)
			id, err1 := o["id"].(json.Number).Int64()
			mx, err2 := o["max"].(json.Number).Int64()
			if err1 != nil || err2 != nil || mx < 1 || id < 0 || id >= mx {
				return nil, fmt.Errorf("invalid slice %v", v)
			}
			req.slice = &sliceSpec{id: int(id), max: int(mx)}
		case "pit":
			o, _ := v.(map[string]any)
			req.pitID, _ = o["id"].(string)
			if ka, ok := o["keep_alive"].(string); ok {
				d, err := parseKeepAlive(ka)
				if err != nil {
					return nil, err
				}
				req.pitKeepAlive = d
			}
		case "track_total_hits":
			if b, ok := v.(bool); ok {
				req.trackTotal = b
			}
		case "_source", "version", "seq_no_primary_term", "timeout":
		default:
			return nil, fmt.Errorf("unknown key [%s] for create request", k)
		}
	}
	return req, nil
}

type query interface{ match(d *Doc) bool }

type matchAll struct{}

func (matchAll) match(*Doc) bool { return true }

type boolQuery struct{ must, mustNot []query }

func (q boolQuery) match(d *Doc) bool {
	for _, c := range q.must {
		if !c.match(d) {
			return false
		}
	}
	for _, c := range q.mustNot {
		if c.match(d) {
			return false
		}
	}
	return true
}

type termsQuery struct {
	field  string
	values map[string]bool
}

func (q termsQuery) match(d *Doc) bool { return q.values[fieldString(d, q.field)] }

type rangeQuery struct {
	field            string
	gt, gte, lt, lte *string
	numeric          bool
}

func (q rangeQuery) match(d *Doc) bool {
	if q.numeric {
		v := fieldInt(d, q.field)
		chk := func(b *string, ok func(int64) bool) bool {
			if b == nil {
				return true
			}
			n, _ := strconv.ParseInt(*b, 10, 64)
			return ok(n)
		}
		return chk(q.gt, func(n int64) bool { return v > n }) && chk(q.gte, func(n int64) bool { return v >= n }) &&
			chk(q.lt, func(n int64) bool { return v < n }) && chk(q.lte, func(n int64) bool { return v <= n })
	}
	v := fieldString(d, q.field)
	return (q.gt == nil || v > *q.gt) && (q.gte == nil || v >= *q.gte) && (q.lt == nil || v < *q.lt) && (q.lte == nil || v <= *q.lte)
}

func fieldString(d *Doc, f string) string {
	switch f {
	case "traceID":
		return d.TraceID
	case "spanID":
		return d.SpanID
	case "process.serviceName":
		return d.Service
	}
	return ""
}

func fieldInt(d *Doc, f string) int64 {
	switch f {
	case "startTime":
		return d.StartTime
	case "startTimeMillis":
		return d.StartTime / 1000
	}
	return 0
}

var numericFields = map[string]bool{"startTime": true, "startTimeMillis": true}
var keywordFields = map[string]bool{"traceID": true, "spanID": true, "process.serviceName": true}

func (s *Server) parseQuery(v any) (query, error) {
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		return nil, fmt.Errorf("[query] malformed query, expected a single query object")
	}
	for kind, body := range m {
		o, _ := body.(map[string]any)
		switch kind {
		case "match_all":
			return matchAll{}, nil
		case "bool":
			var q boolQuery
			for clause, list := range o {
				items, ok := list.([]any)
				if !ok {
					items = []any{list}
				}
				for _, it := range items {
					sub, err := s.parseQuery(it)
					if err != nil {
						return nil, err
					}
					switch clause {
					case "must", "filter":
						q.must = append(q.must, sub)
					case "must_not":
						q.mustNot = append(q.mustNot, sub)
					default:
						return nil, fmt.Errorf("[bool] query does not support [%s]", clause)
					}
				}
			}
			return q, nil
		case "term", "terms":
			for field, val := range o {
				if !keywordFields[field] {
					return nil, fmt.Errorf("[%s] on unsupported field [%s]", kind, field)
				}
				q := termsQuery{field: field, values: map[string]bool{}}
				switch val := val.(type) {
				case string:
					q.values[val] = true
				case []any:
					for _, x := range val {
						if s, ok := x.(string); ok {
							q.values[s] = true
						}
					}
				case map[string]any:
					if s, ok := val["value"].(string); ok {
						q.values[s] = true
					}
				}
				return q, nil
			}
		case "range":
			for field, val := range o {
				p, _ := val.(map[string]any)
				q := rangeQuery{field: field, numeric: numericFields[field]}
				if !q.numeric && !keywordFields[field] {
					return nil, fmt.Errorf("[range] on unsupported field [%s]", field)
				}
				for k, b := range p {
					var str string
					switch b := b.(type) {
					case string:
						str = b
					case json.Number:
						str = b.String()
					case nil:
						continue
					}
					switch k {
					case "gt":
						q.gt = &str
					case "gte":
						q.gte = &str
					case "lt":
						q.lt = &str
					case "lte":
						q.lte = &str
					case "format":
					case "from", "to", "include_lower", "include_upper":
						// Deprecated in 8.16, removed in 9.0.
						if s.major() >= 9 {
							return nil, fmt.Errorf("[range] query does not support [%s]", k)
						}
						return nil, fmt.Errorf("estest: [%s] is deprecated; send gte/lt", k)
					default:
						return nil, fmt.Errorf("[range] query does not support [%s]", k)
					}
				}
				return q, nil
			}
		}
		return nil, fmt.Errorf("unknown query [%s]", kind)
	}
	return nil, fmt.Errorf("empty query")
}

func compareField(f sortField, a, b *snapDoc) int {
	var c int
	switch f.field {
	case "traceID":
		c = strings.Compare(a.doc.TraceID, b.doc.TraceID)
	case "spanID":
		c = strings.Compare(a.doc.SpanID, b.doc.SpanID)
	case "startTime":
		c = cmp.Compare(a.doc.StartTime, b.doc.StartTime)
	case "startTimeMillis":
		c = cmp.Compare(a.doc.StartTime/1000, b.doc.StartTime/1000)
	case "_doc", "_shard_doc":
		c = cmp.Compare(a.seq, b.seq)
	}
	if f.desc {
		c = -c
	}
	return c
}

func compareDocs(spec []sortField, a, b *snapDoc) int {
	for _, f := range spec {
		if c := compareField(f, a, b); c != 0 {
			return c
		}
	}
	return cmp.Compare(a.seq, b.seq)
}

// compareAfter compares a document with search_after values.
func compareAfter(spec []sortField, d *snapDoc, after []any) int {
	for i, f := range spec {
		var c int
		switch f.field {
		case "traceID", "spanID":
			v, _ := after[i].(string)
			c = strings.Compare(fieldString(d.doc, f.field), v)
		default:
			var n int64
			switch v := after[i].(type) {
			case json.Number:
				n, _ = v.Int64()
			case string:
				n, _ = strconv.ParseInt(v, 10, 64)
			}
			var dv int64
			switch f.field {
			case "_doc", "_shard_doc":
				dv = d.seq
			default:
				dv = fieldInt(d.doc, f.field)
			}
			c = cmp.Compare(dv, n)
		}
		if f.desc {
			c = -c
		}
		if c != 0 {
			return c
		}
	}
	return 0
}
