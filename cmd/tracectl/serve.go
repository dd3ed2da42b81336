package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/ingest"
	"github.com/tracectl/tracectl/internal/query"
	"github.com/tracectl/tracectl/internal/server"
	"github.com/tracectl/tracectl/internal/storage"
	"github.com/tracectl/tracectl/internal/wal"
)

func init() {
	registerCommand(func(root *cobra.Command, g *globalOptions) { root.AddCommand(newServeCmd(g)) })
}

// off disables a receiver when given as its endpoint.
const off = "off"

type serveOptions struct {
	HTTPListen       string
	HTTPTLSCert      string
	HTTPTLSKey       string
	HTTPAuthToken    string
	HTTPAuthUser     string
	HTTPAuthPassword string

	OTLPGRPC, OTLPHTTP                      string
	JaegerGRPC, JaegerThriftHTTP            string
	JaegerThriftCompact, JaegerThriftBinary string
	Zipkin                                  string
	TLSCert, TLSKey                         string
	MultiTenancy                            bool
	MaxRequestBytes                         int64

	WALDir      string
	WALSync     string
	WALMaxBytes int64

	MaxBlockDuration    time.Duration
	MaxBlockBytes       int64
	TraceIdlePeriod     time.Duration
	IngestionRateBytes  float64
	IngestionBurstBytes int
	MaxTraceBytes       int64
	MaxLiveBytes        int64

	QueryPollInterval  time.Duration
	QueryTimeout       time.Duration
	QueryMaxConcurrent int
	QueryMaxTraceBytes int64
	QueryBloomCache    int64

	LogFormat       string
	LogLevel        string
	ShutdownTimeout time.Duration

	Compaction *serveCompactionOptions

	MemoryLimit    int64
	memoryLimitSet bool // --memory-limit given (flag, env or config)
}

func newServeCmd(g *globalOptions) *cobra.Command {
	cmd, _ := newServeCmdOptions(g)
	return cmd
}

func newServeCmdOptions(g *globalOptions) (*cobra.Command, *serveOptions) {
	o := &serveOptions{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the ingest server: OTLP, Jaeger and Zipkin in, blocks out",
		Long: `Run a single-process trace backend. Spans arrive over OTLP (gRPC and HTTP),
Jaeger (gRPC, thrift over HTTP and UDP) and Zipkin, are appended to a write-ahead
log before they are acknowledged, and are cut into vParquet4 blocks in the bucket
(--storage) every --max-block-duration or --max-block-bytes. On start the WAL is
replayed, so a crash loses no acknowledged span. SIGINT/SIGTERM: stop accepting,
store everything, exit 0.

Receivers are on by default at their usual ports; give "off" as an endpoint to
switch one off. A Tempo or Collector "receivers:" section in the config file
(top level or under "distributor:") is used as written; endpoint flags override it.

The HTTP port (--http-listen-address) serves Tempo's query API, so Grafana's
Tempo data source works unchanged: /api/traces/<id>, /api/v2/traces/<id>,
/api/search, /api/search/tags, /api/v2/search/tags, /api/search/tag/<tag>/values,
/api/v2/search/tag/<tag>/values, /api/echo, /ready, /api/status/buildinfo, and
/metrics (Prometheus). Queries answer from the spans in memory and from every
block of the bucket, including blocks written by another tracectl, by migrate or
by Tempo: each tenant's block list is read again every --query-poll-interval.
With --multitenancy queries name their tenant in X-Scope-OrgID.

` + exitCodesHelp,
		Example: `  tracectl serve                                   # blocks in ./tracectl-data, WAL in ./tracectl-wal
  tracectl serve --storage s3://traces?region=eu-west-1 --multitenancy
  tracectl serve --zipkin-endpoint off --jaeger-thrift-compact-endpoint off`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.memoryLimitSet = cmd.Flags().Changed("memory-limit")
			return runServe(cmd.Context(), g, o)
		},
	}
	addMemoryLimitFlag(cmd, &o.MemoryLimit)
	o.Compaction = addServeCompactionFlags(cmd)
	f := cmd.Flags()
	f.StringVar(&o.HTTPListen, "http-listen-address", "0.0.0.0:3100", "address of the HTTP API: /metrics, /ready, /api/... (env TRACECTL_HTTP_LISTEN_ADDRESS)")
	f.StringVar(&o.HTTPTLSCert, "http-tls-cert-file", "", "serve the HTTP API (query API, /metrics) over TLS with this certificate (env TRACECTL_HTTP_TLS_CERT_FILE)")
	f.StringVar(&o.HTTPTLSKey, "http-tls-key-file", "", "private key for --http-tls-cert-file (env TRACECTL_HTTP_TLS_KEY_FILE)")
	f.StringVar(&o.HTTPAuthToken, "http-auth-token", "", "require this bearer token on the HTTP API, /ready excepted (env TRACECTL_HTTP_AUTH_TOKEN, better than the flag)")
	f.StringVar(&o.HTTPAuthUser, "http-auth-user", "", "require basic auth with this user on the HTTP API, /ready excepted (env TRACECTL_HTTP_AUTH_USER)")
	f.StringVar(&o.HTTPAuthPassword, "http-auth-password", "", "password for --http-auth-user (env TRACECTL_HTTP_AUTH_PASSWORD, better than the flag)")
	f.StringVar(&o.OTLPGRPC, "otlp-grpc-endpoint", ingest.DefaultOTLPGRPCEndpoint, "OTLP gRPC receiver, or off (env TRACECTL_OTLP_GRPC_ENDPOINT)")
	f.StringVar(&o.OTLPHTTP, "otlp-http-endpoint", ingest.DefaultOTLPHTTPEndpoint, "OTLP HTTP receiver, or off (env TRACECTL_OTLP_HTTP_ENDPOINT)")
	f.StringVar(&o.JaegerGRPC, "jaeger-grpc-endpoint", ingest.DefaultJaegerGRPCEndpoint, "Jaeger gRPC receiver, or off (env TRACECTL_JAEGER_GRPC_ENDPOINT)")
	f.StringVar(&o.JaegerThriftHTTP, "jaeger-thrift-http-endpoint", ingest.DefaultJaegerThriftHTTPEndpoint, "Jaeger thrift over HTTP receiver, or off (env TRACECTL_JAEGER_THRIFT_HTTP_ENDPOINT)")
	f.StringVar(&o.JaegerThriftCompact, "jaeger-thrift-compact-endpoint", ingest.DefaultJaegerThriftCompactEndpoint, "Jaeger agent thrift compact (UDP), or off (env TRACECTL_JAEGER_THRIFT_COMPACT_ENDPOINT)")
	f.StringVar(&o.JaegerThriftBinary, "jaeger-thrift-binary-endpoint", ingest.DefaultJaegerThriftBinaryEndpoint, "Jaeger agent thrift binary (UDP), or off (env TRACECTL_JAEGER_THRIFT_BINARY_ENDPOINT)")
	f.StringVar(&o.Zipkin, "zipkin-endpoint", ingest.DefaultZipkinEndpoint, "Zipkin receiver, or off (env TRACECTL_ZIPKIN_ENDPOINT)")
	f.StringVar(&o.TLSCert, "tls-cert-file", "", "serve every TCP receiver over TLS with this certificate (env TRACECTL_TLS_CERT_FILE)")
	f.StringVar(&o.TLSKey, "tls-key-file", "", "private key for --tls-cert-file (env TRACECTL_TLS_KEY_FILE)")
	f.BoolVar(&o.MultiTenancy, "multitenancy", false, "take the tenant from the X-Scope-OrgID header; refuse requests without one (env TRACECTL_MULTITENANCY)")
	f.Int64Var(&o.MaxRequestBytes, "max-request-bytes", ingest.DefaultMaxRequestBytes, "largest request accepted, compressed or not (env TRACECTL_MAX_REQUEST_BYTES)")
	f.StringVar(&o.WALDir, "wal-dir", "./tracectl-wal", "write-ahead log directory, on local disk (env TRACECTL_WAL_DIR)")
	f.StringVar(&o.WALSync, "wal-sync", "group", "when to fsync the WAL: group (batched, bounded latency), always, none (env TRACECTL_WAL_SYNC)")
	f.Int64Var(&o.WALMaxBytes, "wal-max-bytes", server.DefaultWALMaxBytes, "refuse data (429) once the WAL holds this much unflushed (env TRACECTL_WAL_MAX_BYTES)")
	f.DurationVar(&o.MaxBlockDuration, "max-block-duration", server.DefaultMaxBlockDuration, "cut a block when its oldest span arrived this long ago (env TRACECTL_MAX_BLOCK_DURATION)")
	f.DurationVar(&o.TraceIdlePeriod, "trace-idle-period", server.DefaultTraceIdlePeriod, "a time-based cut leaves traces that received spans this recently in memory, so they are not split across blocks (env TRACECTL_TRACE_IDLE_PERIOD)")
	f.Int64Var(&o.MaxBlockBytes, "max-block-bytes", server.DefaultMaxBlockBytes, "cut a block when the head holds this many bytes (env TRACECTL_MAX_BLOCK_BYTES)")
	f.Float64Var(&o.IngestionRateBytes, "ingestion-rate-bytes", server.DefaultIngestionRateBytes, "per-tenant ingestion rate limit in bytes/s; -1 for none (env TRACECTL_INGESTION_RATE_BYTES)")
	f.IntVar(&o.IngestionBurstBytes, "ingestion-burst-bytes", server.DefaultIngestionBurst, "per-tenant ingestion burst in bytes (env TRACECTL_INGESTION_BURST_BYTES)")
	f.Int64Var(&o.MaxTraceBytes, "max-trace-bytes", server.DefaultMaxTraceBytes, "largest trace kept in one block; spans past it are dropped and counted; -1 for none (env TRACECTL_MAX_TRACE_BYTES)")
	f.Int64Var(&o.MaxLiveBytes, "max-live-bytes", server.DefaultMaxLiveBytes, "most bytes of spans held in memory (head and blocks waiting to be stored); past it ingest is refused with 429/ResourceExhausted until storing catches up; -1 for none (env TRACECTL_MAX_LIVE_BYTES)")
	f.DurationVar(&o.QueryPollInterval, "query-poll-interval", query.DefaultPollInterval, "how often the query API reads each tenant's block list again, so blocks written elsewhere appear and compacted ones go (env TRACECTL_QUERY_POLL_INTERVAL)")
	f.DurationVar(&o.QueryTimeout, "query-timeout", query.DefaultQueryTimeout, "longest a query may run before it is answered 504 (env TRACECTL_QUERY_TIMEOUT)")
	f.IntVar(&o.QueryMaxConcurrent, "query-max-concurrent", query.DefaultMaxConcurrent, "queries run at once; more wait briefly, then get 429 (env TRACECTL_QUERY_MAX_CONCURRENT)")
	f.Int64Var(&o.QueryMaxTraceBytes, "query-max-trace-bytes", query.DefaultMaxTraceBytes, "largest trace returned by ID; a larger one is cut and marked partial (env TRACECTL_QUERY_MAX_TRACE_BYTES)")
	f.Int64Var(&o.QueryBloomCache, "query-bloom-cache-bytes", query.DefaultBloomCacheBytes, "memory kept for the bloom filters that trace by ID reads; each block's filter takes 100 KiB or more, so a bucket of many blocks wants more (env TRACECTL_QUERY_BLOOM_CACHE_BYTES)")
	f.StringVar(&o.LogFormat, "log-format", "text", "log format: text or json (env TRACECTL_LOG_FORMAT)")
	f.StringVar(&o.LogLevel, "log-level", "info", "log level: debug, info, warn, error (env TRACECTL_LOG_LEVEL)")
	f.DurationVar(&o.ShutdownTimeout, "shutdown-timeout", 30*time.Second, "how long to wait for in-flight requests at shutdown (env TRACECTL_SHUTDOWN_TIMEOUT)")
	return cmd, o
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, usageError("--log-level %q: use debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, usageError("--log-format %q: use text or json", format)
}

// receiversConfig builds the receivers from the config file's receivers
// section (if any) and the endpoint flags: a flag given explicitly (flag or
// environment) wins over the section; without a section the flags' defaults
// apply.
func receiversConfig(g *globalOptions, o *serveOptions) (ingest.ReceiversConfig, error) {
	var rc ingest.ReceiversConfig
	section := g.cfg.v.Get("receivers")
	if section == nil {
		section = g.cfg.v.Get("distributor.receivers")
	}
	fromFile := false
	if m, ok := section.(map[string]any); ok {
		var err error
		rc, err = ingest.ParseReceiversConfig(m)
		if err != nil {
			return rc, usageError("config file %s, receivers: %v", g.cfg.file, err)
		}
		fromFile = true
	}
	explicit := func(name string) bool {
		src := g.cfg.sources[name]
		return src != "" && src != "default"
	}
	use := func(name string) bool { return !fromFile || explicit(name) }
	tcp := func(name, endpoint string, dst **ingest.Config) {
		if use(name) {
			setEndpoint(dst, endpoint, func(c *ingest.Config) { c.Endpoint = endpoint })
		}
	}
	udp := func(name, endpoint string, dst **ingest.UDPConfig) {
		if use(name) {
			setEndpoint(dst, endpoint, func(c *ingest.UDPConfig) { c.Endpoint = endpoint })
		}
	}
	tcp("otlp-grpc-endpoint", o.OTLPGRPC, &rc.OTLPGRPC)
	tcp("otlp-http-endpoint", o.OTLPHTTP, &rc.OTLPHTTP)
	tcp("jaeger-grpc-endpoint", o.JaegerGRPC, &rc.JaegerGRPC)
	tcp("jaeger-thrift-http-endpoint", o.JaegerThriftHTTP, &rc.JaegerThriftHTTP)
	udp("jaeger-thrift-compact-endpoint", o.JaegerThriftCompact, &rc.JaegerThriftCompact)
	udp("jaeger-thrift-binary-endpoint", o.JaegerThriftBinary, &rc.JaegerThriftBinary)
	if use("zipkin-endpoint") {
		setEndpoint(&rc.Zipkin, o.Zipkin, func(c *ingest.ZipkinConfig) { c.Endpoint = o.Zipkin })
	}
	if (o.TLSCert == "") != (o.TLSKey == "") {
		return rc, usageError("--tls-cert-file and --tls-key-file go together")
	}
	for _, c := range []*ingest.Config{rc.OTLPGRPC, rc.OTLPHTTP, rc.JaegerGRPC, rc.JaegerThriftHTTP, zipkinBase(rc.Zipkin)} {
		if c == nil {
			continue
		}
		if o.TLSCert != "" {
			c.TLS = &ingest.TLSConfig{CertFile: o.TLSCert, KeyFile: o.TLSKey}
		}
		if explicit("max-request-bytes") || c.MaxRequestBytes == 0 {
			c.MaxRequestBytes = o.MaxRequestBytes
		}
	}
	rc.MultiTenancy = rc.MultiTenancy || o.MultiTenancy
	return rc, nil
}

// setEndpoint switches a receiver off (endpoint "off") or on at endpoint,
// keeping the rest of its configuration.
func setEndpoint[T any](dst **T, endpoint string, set func(*T)) {
	if endpoint == off {
		*dst = nil
		return
	}
	if *dst == nil {
		*dst = new(T)
	}
	set(*dst)
}

func zipkinBase(z *ingest.ZipkinConfig) *ingest.Config {
	if z == nil {
		return nil
	}
	return &z.Config
}

func runServe(ctx context.Context, g *globalOptions, o *serveOptions) error {
	log, err := newLogger(g.io.ErrOut, o.LogFormat, o.LogLevel)
	if err != nil {
		return err
	}
	applyMemoryLimit(o.MemoryLimit, o.memoryLimitSet, log)
	sync, err := wal.ParseSyncPolicy(o.WALSync)
	if err != nil {
		return usageError("--wal-sync: %v", err)
	}
	rc, err := receiversConfig(g, o)
	if err != nil {
		return err
	}
	for _, k := range rc.Ignored {
		log.Warn("config key has no effect in tracectl", "key", k)
	}
	if o.QueryPollInterval <= 0 || o.QueryTimeout <= 0 || o.QueryMaxConcurrent <= 0 || o.QueryMaxTraceBytes <= 0 || o.QueryBloomCache <= 0 {
		return usageError("--query-poll-interval, --query-timeout, --query-max-concurrent, --query-max-trace-bytes and --query-bloom-cache-bytes must be positive")
	}

	// The bucket is checked (it exists, the credentials work) while serve
	// starts; only a check that has not answered in serveStorageCheckWait
	// lets serve start first, so an outage never keeps the receivers shut.
	b, err := g.openBucketChecked(ctx, func(*storage.Bucket) error { return nil })
	if err != nil {
		return err
	}
	checked := make(chan error, 1)
	go func() { checked <- checkServeBucket(ctx, b, log) }()
	var lateCheck <-chan error
	select {
	case err := <-checked:
		if err != nil && ctx.Err() != nil {
			// SIGTERM or Ctrl-C before anything was accepted: a clean stop.
			log.Info("stopped before start-up finished; nothing was accepted")
			return nil
		}
		if err != nil {
			return err
		}
	case <-time.After(serveStorageCheckWait):
		log.Warn("storage has not answered yet; serve starts anyway and keeps acknowledged spans in the write-ahead log until it does",
			"storage", b.String(), "waited", serveStorageCheckWait.String())
		lateCheck = checked
	}
	stopCompaction, err := startServeCompaction(ctx, b, o.Compaction, log)
	if err != nil {
		return err
	}
	defer stopCompaction()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	var ready atomic.Bool
	// The query API learns of each stored block at once (before the head
	// lets its traces go), so no trace vanishes between flush and poll.
	var qapi atomic.Pointer[query.API]
	srv, err := server.New(server.Config{
		Bucket: b, WALDir: o.WALDir,
		WAL:              wal.Options{Sync: sync, MaxBytes: o.WALMaxBytes},
		MaxBlockDuration: o.MaxBlockDuration, MaxBlockBytes: o.MaxBlockBytes, TraceIdlePeriod: o.TraceIdlePeriod,
		IngestionRateBytes: o.IngestionRateBytes, IngestionBurstBytes: o.IngestionBurstBytes,
		MaxTraceBytes: o.MaxTraceBytes, MaxLiveBytes: o.MaxLiveBytes, Logger: log, Registry: reg,
		OnBlockFlushed: func(tenant string, meta *block.Meta) {
			if a := qapi.Load(); a != nil {
				a.BlockFlushed(tenant, meta)
			}
		},
	})
	if err != nil {
		return err
	}
	qa, err := query.New(query.Config{
		Bucket: b, Head: srv, MultiTenancy: rc.MultiTenancy,
		PollInterval: o.QueryPollInterval, QueryTimeout: o.QueryTimeout,
		MaxConcurrent: o.QueryMaxConcurrent, MaxTraceBytes: o.QueryMaxTraceBytes, BloomCacheBytes: o.QueryBloomCache,
		Ready: ready.Load, BuildInfo: query.BuildInfo{Version: version, Revision: commit, BuildDate: date},
		Logger: log, Registry: reg,
	})
	if err != nil {
		_ = srv.Shutdown(context.Background())
		return err
	}
	qapi.Store(qa)
	qa.Start()
	defer qa.Close()
	srv.Start()

	api, err := startAPI(apiOptionsOf(o), reg, qa.Handler(), log)
	if err != nil {
		_ = srv.Shutdown(context.Background())
		return err
	}
	set, err := ingest.NewSet(rc, srv, log, reg)
	if err != nil {
		_ = api.Close()
		_ = srv.Shutdown(context.Background())
		return usageError("configuring receivers: %v", err)
	}
	if err := set.Start(ctx); err != nil {
		_ = api.Close()
		_ = srv.Shutdown(context.Background())
		return fmt.Errorf("starting receivers: %w; is another program using the port? pick another endpoint or switch the receiver off", err)
	}
	// Ready before the log line says so: scripts wait for the line and
	// then ask /ready.
	ready.Store(true)
	log.Info("tracectl serve ready", "storage", b.String(), "tenant_mode", tenantMode(rc.MultiTenancy), "wal", o.WALDir,
		"http", api.addr, "version", version)

	var stopErr error
	select {
	case <-ctx.Done():
	case stopErr = <-lateCheck:
		if stopErr == nil {
			<-ctx.Done()
		} else {
			// A missing bucket or refused credentials, found late.
			log.Error("stopping: the storage check failed", "err", stopErr)
		}
	}
	log.Info("shutting down: no new requests, storing what is held")
	ready.Store(false)
	sctx, cancel := context.WithTimeout(context.Background(), o.ShutdownTimeout)
	defer cancel()
	var errs []error
	if err := set.Shutdown(sctx); err != nil {
		errs = append(errs, fmt.Errorf("stopping receivers: %w", err))
	}
	if err := srv.Shutdown(context.Background()); err != nil {
		errs = append(errs, err)
	}
	_ = api.Shutdown(sctx)
	if err := errors.Join(append([]error{stopErr}, errs...)...); err != nil {
		return err
	}
	log.Info("stopped cleanly")
	return nil
}

func tenantMode(multi bool) string {
	if multi {
		return "multi-tenant (X-Scope-OrgID)"
	}
	return "single-tenant"
}

type apiServer struct {
	*http.Server
	addr string
}

// apiOptions are the HTTP port's address, TLS files, credentials and
// server timeouts.
type apiOptions struct {
	addr              string
	certFile, keyFile string
	auth              query.Auth
	timeouts          apiTimeouts
}

func apiOptionsOf(o *serveOptions) apiOptions {
	return apiOptions{addr: o.HTTPListen, certFile: o.HTTPTLSCert, keyFile: o.HTTPTLSKey,
		auth:     query.Auth{BearerToken: o.HTTPAuthToken, BasicUser: o.HTTPAuthUser, BasicPW: o.HTTPAuthPassword},
		timeouts: newAPITimeouts(o.QueryTimeout)}
}

// apiTimeouts are the HTTP API server's timeouts.
type apiTimeouts struct{ readHeader, read, write, idle time.Duration }

// newAPITimeouts gives the HTTP API's timeouts for queries bounded by
// queryTimeout (--query-timeout). The read-header timeout closes
// slow-loris connections. The write timeout runs from the end of a
// request's headers (for the streaming search, from the start of its
// HTTP/2 stream) to the last byte of the answer; what is still being
// produced then is cut off, and the client sees a dropped connection or
// a reset stream instead of its answer or 504. So it outlasts the wait for
// a query slot and the query timeout, with a minute to send the answer.
// The read timeout bounds reading a request only: queries have no body,
// and it stops counting once one is read (HTTP/1.1) or its stream's body
// has ended (HTTP/2).
func newAPITimeouts(queryTimeout time.Duration) apiTimeouts {
	return apiTimeouts{readHeader: 10 * time.Second, read: time.Minute, idle: 2 * time.Minute,
		write: max(2*time.Minute, query.DefaultQueueTimeout+queryTimeout+time.Minute)}
}

// startAPI serves /metrics and, on every other path, the query API (which
// also answers /ready, /api/echo and /api/status/buildinfo). No ServeMux
// in front: it would redirect the //api/... paths Grafana sends when its
// URL ends in a slash.
func startAPI(o apiOptions, reg *prometheus.Registry, queryAPI http.Handler, log *slog.Logger) (*apiServer, error) {
	if (o.certFile == "") != (o.keyFile == "") {
		return nil, usageError("--http-tls-cert-file and --http-tls-key-file go together")
	}
	if err := o.auth.Check(); err != nil {
		return nil, usageError("--http-auth-user and --http-auth-password go together: %v", err)
	}
	var tlsConf *tls.Config
	if o.certFile != "" {
		cert, err := tls.LoadX509KeyPair(o.certFile, o.keyFile)
		if err != nil {
			return nil, usageError("loading the HTTP API's TLS certificate %s and key %s: %v", o.certFile, o.keyFile, err)
		}
		tlsConf = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	if o.timeouts == (apiTimeouts{}) {
		o.timeouts = newAPITimeouts(query.DefaultQueryTimeout)
	}
	metrics := promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
	mux := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/metrics" && r.Method == http.MethodGet {
			metrics.ServeHTTP(w, r)
			return
		}
		queryAPI.ServeHTTP(w, r)
	})
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return nil, fmt.Errorf("listening on %s for the HTTP API: %w; use --http-listen-address to pick another", o.addr, err)
	}
	s := &apiServer{
		Server: &http.Server{Handler: query.RequireAuth(mux, o.auth), ReadHeaderTimeout: o.timeouts.readHeader, ReadTimeout: o.timeouts.read,
			WriteTimeout: o.timeouts.write, IdleTimeout: o.timeouts.idle, MaxHeaderBytes: 1 << 20, TLSConfig: tlsConf},
		addr: ln.Addr().String(),
	}
	// Grafana's streaming search is gRPC over HTTP/2 on this port: h2c on
	// plain HTTP, h2 over TLS.
	query.EnableH2C(s.Server)
	log.Info("HTTP API listening", "address", s.addr, "tls", tlsConf != nil, "auth", o.auth.Enabled(), "write_timeout", o.timeouts.write.String())
	go func() {
		serve := s.Serve
		if tlsConf != nil {
			// ServeTLS offers h2 and http/1.1 by ALPN, as Protocols says.
			serve = func(ln net.Listener) error { return s.ServeTLS(ln, "", "") }
		}
		if err := serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("HTTP API stopped", "err", err)
		}
	}()
	return s, nil
}

// serveStorageCheckWait is how long serve waits for its start-up check of
// the bucket before it starts anyway; serveStorageCheckTimeout bounds the
// check itself.
var (
	serveStorageCheckWait    = time.Second
	serveStorageCheckTimeout = 30 * time.Second
)

// checkServeBucket checks the bucket at start. A missing bucket or refused
// credentials stop serve, as for every command; storage that does not
// answer (down, timing out) does not: serve starts, keeps what it
// acknowledges in its write-ahead log and stores it once storage is back,
// as it does when an outage starts while it runs.
func checkServeBucket(ctx context.Context, b *storage.Bucket, log *slog.Logger) error {
	cctx, cancel := context.WithTimeout(ctx, serveStorageCheckTimeout)
	defer cancel()
	err := b.Check(cctx)
	if err == nil || storage.KindOf(err) != storage.KindUnavailable || ctx.Err() != nil {
		return err
	}
	log.Warn("storage does not answer; serve starts anyway and keeps acknowledged spans in the write-ahead log until it does",
		"storage", b.String(), "err", err)
	return nil
}
