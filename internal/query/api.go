// Package query owns tracectl's Tempo-compatible HTTP query API: trace by
// ID (v1 and v2, JSON and protobuf), search (also as Tempo's gRPC streaming
// search on the same port), tag names and tag values, TraceQL metrics, the
// operational endpoints (/ready, /api/echo, /api/status/buildinfo), the
// per-tenant block list that is polled from the bucket, tenant handling and
// the limits on queries. Every answer combines the live head (spans not yet
// in a block) with the blocks of the bucket, whoever wrote them.
//
// It must not parse TraceQL or scan blocks for search itself (package
// search and traceql do), must not write to the bucket, and takes typed
// options and an http.Handler contract only: no flags, no globals.
package query

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"google.golang.org/grpc"

	"github.com/tracectl/tracectl/internal/blocks"
	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/search"
	"github.com/tracectl/tracectl/internal/storage"
)

// Head is what the query API needs from the live server: the parts of
// traces that are not in a stored block yet. *server.Server satisfies it.
// Both methods are called concurrently from request goroutines; the parts
// they hand out belong to the caller.
type Head interface {
	// FindInHead returns the pieces of trace id held in memory (none when
	// the head does not hold it).
	FindInHead(tenant string, id block.TraceID) []ptrace.Traces
	// ForEachHeadTrace calls fn for every trace of tenant held in memory
	// until fn returns false.
	ForEachHeadTrace(tenant string, fn func(id block.TraceID, parts []ptrace.Traces) bool)
}

// BuildInfo is the body of /api/status/buildinfo.
type BuildInfo struct {
	Version   string `json:"version"`
	Revision  string `json:"revision"`
	Branch    string `json:"branch"`
	BuildUser string `json:"buildUser"`
	BuildDate string `json:"buildDate"`
	GoVersion string `json:"goVersion"`
}

// Defaults of Config.
const (
	DefaultPollInterval      = 30 * time.Second
	DefaultIndexMaxAge       = 0 // list the bucket itself on every poll
	DefaultMaxConcurrent     = 16
	DefaultQueueTimeout      = 5 * time.Second
	DefaultQueryTimeout      = time.Minute
	DefaultMaxTraceBytes     = 50 << 20
	DefaultMaxResponseBytes  = 64 << 20
	DefaultSearchLimit       = 20
	DefaultSpansPerSpanSet   = 3
	DefaultMaxSearchLimit    = 10000
	DefaultMaxSpansPerSet    = 1000
	DefaultTagsRecentBlocks  = 16
	DefaultMaxTenants        = 10000
	DefaultTenantIdle        = time.Hour
	DefaultBloomCacheBytes   = 64 << 20
	DefaultBlockConcurrency  = 8
	DefaultTagValuesMaxLimit = 100000
)

// Config configures the API. Zero values take the defaults above.
type Config struct {
	Bucket *storage.Bucket
	// Head is the live server; nil answers from blocks only.
	Head Head
	// MultiTenancy takes the tenant from X-Scope-OrgID (401 without it);
	// otherwise every request is tenant "single-tenant".
	MultiTenancy bool

	// PollInterval is how often each tenant's block list is read again
	// from the bucket, so blocks written elsewhere appear and compacted
	// ones disappear.
	PollInterval time.Duration
	// IndexMaxAge lets a poll use the tenant index (index.json.gz) when it
	// is younger than this instead of listing the bucket; 0 never uses it.
	IndexMaxAge time.Duration

	// MaxConcurrent bounds queries running at once; a query waits at most
	// QueueTimeout for a slot and is then refused with 429.
	MaxConcurrent int
	QueueTimeout  time.Duration
	// QueryTimeout bounds one query; past it the answer is 504.
	QueryTimeout time.Duration
	// MaxTraceBytes bounds a trace returned by ID (protobuf size); a larger
	// trace is cut and v2 answers status PARTIAL with a message.
	MaxTraceBytes int64
	// MaxResponseBytes bounds any other response body; past it the answer
	// is 413 asking for a smaller limit or time range.
	MaxResponseBytes int64
	// MaxSearchLimit and MaxSpansPerSpanSet cap limit and spss.
	MaxSearchLimit     int
	MaxSpansPerSpanSet int
	// TagsRecentBlocks is how many of a tenant's newest blocks tag-name and
	// tag-value requests without start/end read, besides the head (see
	// defaultTagBlocks).
	TagsRecentBlocks int
	// MaxTenants bounds the tenants whose block lists are kept; a tenant
	// not queried for TenantIdle is forgotten.
	MaxTenants int
	TenantIdle time.Duration
	// BloomCacheBytes bounds the cache of bloom shards for trace by ID.
	BloomCacheBytes int64
	// BlockConcurrency bounds blocks read at once by one query.
	BlockConcurrency int

	Ready     func() bool
	BuildInfo BuildInfo
	Logger    *slog.Logger
	Registry  prometheus.Registerer
	Now       func() time.Time
}

func (c Config) withDefaults() Config {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def64 := func(v *int64, d int64) {
		if *v <= 0 {
			*v = d
		}
	}
	defDur(&c.PollInterval, DefaultPollInterval)
	def(&c.MaxConcurrent, DefaultMaxConcurrent)
	defDur(&c.QueueTimeout, DefaultQueueTimeout)
	defDur(&c.QueryTimeout, DefaultQueryTimeout)
	def64(&c.MaxTraceBytes, DefaultMaxTraceBytes)
	def64(&c.MaxResponseBytes, DefaultMaxResponseBytes)
	def(&c.MaxSearchLimit, DefaultMaxSearchLimit)
	def(&c.MaxSpansPerSpanSet, DefaultMaxSpansPerSet)
	def(&c.TagsRecentBlocks, DefaultTagsRecentBlocks)
	def(&c.MaxTenants, DefaultMaxTenants)
	defDur(&c.TenantIdle, DefaultTenantIdle)
	def64(&c.BloomCacheBytes, DefaultBloomCacheBytes)
	def(&c.BlockConcurrency, DefaultBlockConcurrency)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Ready == nil {
		c.Ready = func() bool { return true }
	}
	if c.BuildInfo.GoVersion == "" {
		c.BuildInfo.GoVersion = runtime.Version()
	}
	return c
}

// API is the query side of tracectl serve. Create it with New, mount
// Handler, call Start to begin polling and Close to stop. Safe for
// concurrent use.
type API struct {
	cfg    Config
	blocks *blockList
	blooms *blocks.BloomCache
	engine *search.Engine
	slots  chan struct{}
	m      *metrics
	mux    *http.ServeMux
	grpc   *grpc.Server // StreamingQuerier, served through Handler
	stop   context.CancelFunc
	done   chan struct{}
}

// New checks cfg and builds the API; it reads nothing yet.
func New(cfg Config) (*API, error) {
	if cfg.Bucket == nil {
		return nil, errors.New("query API: no bucket configured")
	}
	cfg = cfg.withDefaults()
	m := newMetrics(cfg.Registry)
	bl := newBlockList(cfg, m)
	a := &API{
		cfg:    cfg,
		blooms: blocks.NewBloomCache(cfg.BloomCacheBytes),
		engine: search.NewEngine(cfg.Bucket, search.Options{Concurrency: cfg.BlockConcurrency, SkipUnreadable: true, Logger: cfg.Logger,
			OnSkip: func(query, tenant string, meta *block.Meta, err error) {
				m.skipped.WithLabelValues(query).Inc()
				if storage.KindOf(err) == storage.KindNotFound {
					// Gone since the list was read: have the list read
					// again, so the next search sees the block's successor.
					bl.kick(tenant, meta.BlockID.String())
				}
			}}),
		slots:  make(chan struct{}, cfg.MaxConcurrent),
		m:      m,
		blocks: bl,
	}
	if cfg.Registry != nil {
		cfg.Registry.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tracectl_query_bloom_cache_bytes",
				Help: "Bloom filter shards kept for trace by ID (bounded by the bloom cache budget)."},
				func() float64 { return float64(a.blooms.Bytes()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tracectl_search_block_cache_bytes",
				Help: "Estimated memory of the block readers and parsed footers the search engine keeps (bounded)."},
				func() float64 { return float64(a.engine.CacheStats().BlockBytes) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tracectl_search_block_cache_blocks",
				Help: "Block readers the search engine keeps."},
				func() float64 { return float64(a.engine.CacheStats().Blocks) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tracectl_search_distinct_cache_entries",
				Help: "Per-block answers of tag queries the search engine keeps (bounded)."},
				func() float64 { return float64(a.engine.CacheStats().DistinctEntries) }),
		)
	}
	a.routes()
	a.grpc = a.newGRPC()
	return a, nil
}

// Start polls the block lists of the tenants queried so far every
// PollInterval until Close.
func (a *API) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	a.stop = cancel
	a.done = make(chan struct{})
	go func() {
		defer close(a.done)
		a.blocks.pollLoop(ctx)
	}()
}

// Close stops polling. In-flight requests are the HTTP server's to drain.
func (a *API) Close() {
	if a.stop != nil {
		a.stop()
		<-a.done
	}
}

// BlockFlushed makes a block just stored by the local server visible to
// queries at once, before the next poll finds it. Fit for
// server.Config.OnBlockFlushed: it is quick and never blocks on storage.
func (a *API) BlockFlushed(tenant string, meta *block.Meta) { a.blocks.added(tenant, meta) }

// Handler serves the API. Paths with repeated leading slashes (//api/...,
// from a base URL with a trailing slash) are served as if clean.
func (a *API) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := r.URL.Path; strings.HasPrefix(p, "//") {
			r2 := r.Clone(r.Context())
			r2.URL.Path = "/" + strings.TrimLeft(p, "/")
			r2.URL.RawPath = ""
			r = r2
		}
		if isGRPC(r) {
			a.grpc.ServeHTTP(w, r)
			return
		}
		a.mux.ServeHTTP(w, r)
	})
}

// route names label the metrics.
const (
	routeTraceV1     = "trace_by_id_v1"
	routeTraceV2     = "trace_by_id_v2"
	routeSearch      = "search"
	routeTags        = "search_tags"
	routeTagsV2      = "search_tags_v2"
	routeTagValues   = "search_tag_values"
	routeTagValuesV2 = "search_tag_values_v2"
	routeQueryRange  = "metrics_query_range"
	routeQueryInst   = "metrics_query"
	// routeSearchStream is gRPC StreamingQuerier/Search (stream.go).
	routeSearchStream = "search_stream"
)

func (a *API) routes() {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, r *http.Request) {
		if !a.cfg.Ready() {
			writeText(w, http.StatusServiceUnavailable, "not ready")
			return
		}
		writeText(w, http.StatusOK, "ready")
	})
	mux.HandleFunc("GET /api/echo", func(w http.ResponseWriter, r *http.Request) {
		writeText(w, http.StatusOK, "echo")
	})
	mux.HandleFunc("GET /api/status/buildinfo", func(w http.ResponseWriter, r *http.Request) {
		body, _ := json.Marshal(a.cfg.BuildInfo)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	})
	mux.Handle("GET /api/traces/{id}", a.query(routeTraceV1, a.traceByID(false)))
	mux.Handle("GET /api/v2/traces/{id}", a.query(routeTraceV2, a.traceByID(true)))
	mux.Handle("GET /api/search", a.query(routeSearch, a.search))
	mux.Handle("GET /api/search/tags", a.query(routeTags, a.tags(false)))
	mux.Handle("GET /api/v2/search/tags", a.query(routeTagsV2, a.tags(true)))
	mux.Handle("GET /api/search/tag/{name}/values", a.query(routeTagValues, a.tagValues(false)))
	mux.Handle("GET /api/v2/search/tag/{name}/values", a.query(routeTagValuesV2, a.tagValues(true)))
	mux.Handle("GET /api/metrics/query_range", a.query(routeQueryRange, a.metricsQuery(true)))
	mux.Handle("GET /api/metrics/query", a.query(routeQueryInst, a.metricsQuery(false)))
	a.mux = mux
}

// response is what a query handler produces; query() writes it.
type response struct {
	status      int
	contentType string
	body        []byte
}

func jsonResponse(body []byte) *response {
	return &response{status: http.StatusOK, contentType: "application/json", body: body}
}

// httpError is a failure with the status Tempo uses for it; its message is
// the text/plain body.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func errorf(status int, format string, args ...any) error {
	return &httpError{status: status, msg: fmt.Sprintf(format, args...)}
}

// queryFunc handles one query for a tenant, within the limits.
type queryFunc func(ctx context.Context, tenant string, r *http.Request) (*response, error)

// query wraps a handler with tenant resolution, the concurrency bound, the
// timeout, metrics, error mapping and response compression.
func (a *API) query(route string, h queryFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		resp, err := a.serveQuery(route, h, r)
		if err != nil {
			resp = a.errorResponse(route, r, err)
		}
		a.m.requests.WithLabelValues(route, strconv.Itoa(resp.status)).Inc()
		a.m.duration.WithLabelValues(route).Observe(time.Since(start).Seconds())
		writeResponse(w, r, resp)
	})
}

func (a *API) serveQuery(route string, h queryFunc, r *http.Request) (*response, error) {
	tenantID, err := a.tenantOf(r)
	if err != nil {
		return nil, err
	}
	wait, cancelWait := context.WithTimeout(r.Context(), a.cfg.QueueTimeout)
	select {
	case a.slots <- struct{}{}:
		cancelWait()
	case <-wait.Done():
		cancelWait()
		if r.Context().Err() != nil {
			return nil, r.Context().Err()
		}
		return nil, errorf(http.StatusTooManyRequests,
			"too many queries at once (%d running, waited %s); retry later or narrow the query", a.cfg.MaxConcurrent, a.cfg.QueueTimeout)
	}
	defer func() { <-a.slots }()
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.QueryTimeout)
	defer cancel()
	resp, err := h(ctx, tenantID, r)
	if err == nil && int64(len(resp.body)) > a.cfg.MaxResponseBytes && route != routeTraceV1 && route != routeTraceV2 {
		return nil, errorf(http.StatusRequestEntityTooLarge,
			"response of %d bytes exceeds the limit of %d bytes; ask for a smaller limit or a shorter time range", len(resp.body), a.cfg.MaxResponseBytes)
	}
	if err != nil && errors.Is(err, context.DeadlineExceeded) && r.Context().Err() == nil {
		return nil, errorf(http.StatusGatewayTimeout, "query timed out after %s; narrow the time range or the query", a.cfg.QueryTimeout)
	}
	return resp, err
}

// errorResponse maps an error to Tempo's status codes with a text body.
func (a *API) errorResponse(route string, r *http.Request, err error) *response {
	var he *httpError
	status := http.StatusInternalServerError
	msg := err.Error()
	switch {
	case errors.As(err, &he):
		status, msg = he.status, he.msg
	case errors.Is(err, search.ErrBadRequest), errors.Is(err, search.ErrUnsupported):
		status = http.StatusBadRequest
	case errors.Is(err, context.Canceled):
		status, msg = 499, "request cancelled by the client"
	case storage.KindOf(err) == storage.KindUnavailable:
		status = http.StatusServiceUnavailable
		msg = "storage unavailable: " + msg + "; retry later"
	}
	if status >= 500 {
		a.cfg.Logger.Error("query failed", "route", route, "path", r.URL.Path, "status", status, "err", msg)
	}
	return &response{status: status, contentType: "text/plain; charset=utf-8", body: []byte(msg)}
}

// gzipMin is the smallest body worth compressing.
const gzipMin = 1024

// gzipWriters are reused: each holds about 1 MB of compressor state.
var gzipWriters = sync.Pool{New: func() any {
	zw, _ := gzip.NewWriterLevel(nil, gzip.BestSpeed)
	return zw
}}

func writeResponse(w http.ResponseWriter, r *http.Request, resp *response) {
	h := w.Header()
	h.Set("Vary", "Accept-Encoding")
	if resp.contentType != "" {
		h.Set("Content-Type", resp.contentType)
	}
	body := resp.body
	if len(body) >= gzipMin && acceptsGzip(r) {
		var buf bytes.Buffer
		buf.Grow(len(body) / 4)
		zw := gzipWriters.Get().(*gzip.Writer)
		zw.Reset(&buf)
		_, _ = zw.Write(body)
		if zw.Close() == nil {
			body = buf.Bytes()
			h.Set("Content-Encoding", "gzip")
		}
		gzipWriters.Put(zw)
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(resp.status)
	_, _ = w.Write(body)
}

func acceptsGzip(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept-Encoding") {
		for _, part := range strings.Split(v, ",") {
			name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
			if !strings.EqualFold(strings.TrimSpace(name), "gzip") {
				continue
			}
			q := 1.0
			if k, v, ok := strings.Cut(strings.TrimSpace(params), "="); ok && strings.TrimSpace(k) == "q" {
				q, _ = strconv.ParseFloat(strings.TrimSpace(v), 64)
			}
			return q > 0
		}
	}
	return false
}

func writeText(w http.ResponseWriter, status int, s string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(s))
}
