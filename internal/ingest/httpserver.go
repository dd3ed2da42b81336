package ingest

import (
	"compress/zlib"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
)

// httpServer is the listener and lifecycle shared by the HTTP receivers;
// each protocol supplies its routes.
type httpServer struct {
	listenerBase

	mu   sync.Mutex
	srv  *http.Server
	ln   net.Listener
	done chan struct{}
}

func newHTTPServer(protocol string, cfg Config, c Consumer, log *slog.Logger, reg prometheus.Registerer) (*httpServer, error) {
	lb, err := newListenerBase(protocol, cfg, c, log, reg)
	if err != nil {
		return nil, err
	}
	return &httpServer{listenerBase: lb}, nil
}

// start listens and serves mux.
func (h *httpServer) start(ctx context.Context, mux http.Handler) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.srv != nil {
		return fmt.Errorf("%s receiver: already started", h.protocol)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", h.cfg.Endpoint)
	if err != nil {
		return fmt.Errorf("%s receiver: listening on %s: %w", h.protocol, h.cfg.Endpoint, err)
	}
	srv := &http.Server{
		Handler:           h.instrument(mux),
		ReadHeaderTimeout: httpReadHeaderTimeout,
		ReadTimeout:       httpReadTimeout,
		WriteTimeout:      httpWriteTimeout,
		IdleTimeout:       httpIdleTimeout,
		MaxHeaderBytes:    1 << 20,
		TLSConfig:         h.tlsCfg,
		ErrorLog:          slog.NewLogLogger(h.log.Handler(), slog.LevelDebug),
	}
	h.srv, h.ln, h.done = srv, ln, make(chan struct{})
	go func() {
		defer close(h.done)
		var err error
		if h.tlsCfg != nil {
			err = srv.ServeTLS(ln, "", "")
		} else {
			err = srv.Serve(ln)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			h.log.Error("receiver stopped serving", "err", err)
		}
	}()
	h.log.Info("receiver listening", "addr", ln.Addr().String(), "tls", h.tlsCfg != nil, "multitenancy", h.cfg.MultiTenancy)
	return nil
}

// Shutdown stops accepting requests and waits for in-flight ones; when ctx
// ends first it closes every connection, and returns ctx's error only if
// that cut short a request whose spans had reached the Consumer
// (forcedStop).
func (h *httpServer) Shutdown(ctx context.Context) error {
	h.mu.Lock()
	srv, done := h.srv, h.done
	h.mu.Unlock()
	if srv == nil {
		return nil
	}
	err := srv.Shutdown(ctx)
	if err != nil {
		busy := h.consuming.Load() > 0
		_ = srv.Close()
		if ctx.Err() != nil {
			err = h.forcedStop(ctx, busy)
		}
	}
	<-done
	return err
}

// Addr is the bound address, nil before Start.
func (h *httpServer) Addr() net.Addr {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ln == nil {
		return nil
	}
	return h.ln.Addr()
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (h *httpServer) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		code := sw.code
		if code == 0 {
			code = http.StatusOK
		}
		h.m.duration.WithLabelValues(h.protocol, strconv.Itoa(code)).Observe(time.Since(start).Seconds())
	})
}

// readBody reads the request body, decompressing it per Content-Encoding,
// and refuses bodies over the limit before or after decompression: the
// decompressed size is bounded as it is read, so a compression bomb costs
// at most limit bytes of memory.
func (h *httpServer) readBody(w http.ResponseWriter, r *http.Request) ([]byte, *requestError) {
	limit := h.cfg.maxBytes()
	if r.ContentLength > limit {
		return nil, tooLarge(h.protocol, limit)
	}
	body := http.MaxBytesReader(w, r.Body, limit)
	defer body.Close()

	var rd io.Reader = body
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(body)
		if err != nil {
			return nil, h.readError(err, "gzip", limit)
		}
		defer zr.Close()
		rd = zr
	case "deflate", "zlib":
		zr, err := zlib.NewReader(body)
		if err != nil {
			return nil, h.readError(err, enc, limit)
		}
		defer zr.Close()
		rd = zr
	case "zstd":
		zr, err := zstd.NewReader(body, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(uint64(limit)), zstd.WithDecoderMaxWindow(uint64(max(min(limit, zstd.MaxWindowSize), zstd.MinWindowSize))))
		if err != nil {
			return nil, h.readError(err, enc, limit)
		}
		defer zr.Close()
		rd = zr
	default:
		return nil, &requestError{http.StatusUnsupportedMediaType, codes.InvalidArgument, reasonMediaType,
			fmt.Sprintf("%s: Content-Encoding %q is not supported; use gzip, deflate, zstd or none", h.protocol, enc)}
	}

	hint := int64(0)
	if rd == io.Reader(body) {
		hint = r.ContentLength
	}
	data, over, err := readLimited(rd, limit, hint)
	if err != nil {
		return nil, h.readError(err, "body", limit)
	}
	if over {
		return nil, tooLarge(h.protocol, limit)
	}
	return data, nil
}

// readLimited reads rd to its end and reports over when it holds more
// than limit bytes, reading at most limit+1. With the size known (hint
// > 0) it reads into one slice of that size. Without (a chunked or
// compressed body) it reads into chunks of growing size (64 KiB to 4 MiB)
// and joins them once: about twice the body's bytes allocated, against
// three times for a buffer that doubles, and a body refused as too large
// costs no more than the limit.
func readLimited(rd io.Reader, limit, hint int64) (data []byte, over bool, err error) {
	const minChunk, maxChunk = 64 << 10, 4 << 20
	var chunks [][]byte
	var total int64
	size := int64(minChunk)
	if hint > 0 {
		size = min(hint+1, limit+1) // +1 sees a body longer than it said
	}
	for {
		chunk := make([]byte, min(size, limit+1-total))
		n, err := fill(rd, chunk)
		total += int64(n)
		if n > 0 {
			chunks = append(chunks, chunk[:n])
		}
		if total > limit {
			return nil, true, nil
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, false, err
		}
		size = min(max(size*2, minChunk), maxChunk)
	}
	switch len(chunks) {
	case 0:
		return []byte{}, false, nil
	case 1:
		return chunks[0], false, nil
	}
	data = make([]byte, 0, total)
	for _, c := range chunks {
		data = append(data, c...)
	}
	return data, false, nil
}

// fill reads into buf until it is full (nil error) or rd ends (io.EOF,
// with what was read) or fails (its error).
func fill(rd io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := rd.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func (h *httpServer) readError(err error, what string, limit int64) *requestError {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return tooLarge(h.protocol, limit)
	}
	if what == "body" {
		return malformed(h.protocol, "reading request body: %v", err)
	}
	return malformed(h.protocol, "decompressing %s request body: %v", what, err)
}

// mediaType is the request's Content-Type without parameters, lower-cased;
// def when absent.
func mediaType(r *http.Request, def string) string {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return def
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return strings.ToLower(strings.TrimSpace(ct))
	}
	return mt
}

func unsupportedMediaType(protocol, got, want string) *requestError {
	return &requestError{http.StatusUnsupportedMediaType, codes.InvalidArgument, reasonMediaType,
		fmt.Sprintf("%s: Content-Type %q is not supported; use %s", protocol, got, want)}
}

// writePlainError answers a refusal in plain text, the way Jaeger and
// Zipkin collectors do, and counts it. spans is the number refused, when
// known.
func (h *httpServer) writePlainError(w http.ResponseWriter, re *requestError, spans int) {
	h.m.refuse(h.protocol, re.reason, spans)
	h.log.Debug("request refused", "status", re.httpStatus, "err", re.msg)
	http.Error(w, re.msg, re.httpStatus)
}

// writePlainConsumerError answers a Consumer failure in plain text (the counting
// was done by consume).
func writePlainConsumerError(w http.ResponseWriter, protocol string, err error) {
	status, msg := consumerHTTPStatus(w, protocol, err)
	http.Error(w, msg, status)
}

// consumerHTTPStatus maps a Consumer error to a status code, setting
// Retry-After for limits.
func consumerHTTPStatus(w http.ResponseWriter, protocol string, err error) (int, string) {
	if errors.Is(err, ErrLimited) {
		w.Header().Set("Retry-After", retryAfterSeconds(retryAfter(err)))
		return http.StatusTooManyRequests, retryLater(fmt.Sprintf("%s: %v", protocol, err))
	}
	// 503, not 500: the failure is the server's and passing (storage, WAL),
	// and OTLP/HTTP exporters retry 503 but drop the data on 500.
	return http.StatusServiceUnavailable, retryLater(fmt.Sprintf("%s: storing spans failed: %v", protocol, err))
}
