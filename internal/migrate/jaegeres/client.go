package jaegeres

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	elastic "github.com/olivere/elastic/v7"
)

// ClientOptions says how to reach the cluster.
type ClientOptions struct {
	URLs               []string
	Username, Password string
	APIKey             string
	CAFile             string // PEM bundle trusted in addition to the system's
	InsecureSkipVerify bool
	// Sniff and HealthCheck turn on olivere/elastic's node discovery and
	// health checks (off: behind load balancers they reach nodes the
	// client cannot).
	Sniff, HealthCheck bool
	// MaxRetries bounds retries of 429 and 5xx answers and connection
	// errors (default 8), with exponential backoff and jitter from
	// RetryBase (default 200ms) up to 30s.
	MaxRetries int
	RetryBase  time.Duration
	// Timeout bounds each request (default 2m).
	Timeout time.Duration
}

// ServerInfo is what GET / says about the cluster.
type ServerInfo struct {
	Distribution string `json:"distribution"` // "elasticsearch" or "opensearch"
	Version      string `json:"version"`
	Major, Minor int    `json:"-"`
}

func (s ServerInfo) String() string {
	name := "Elasticsearch"
	if s.Distribution == "opensearch" {
		name = "OpenSearch"
	}
	return name + " " + s.Version
}

// PITKind says how the export can take a consistent snapshot.
type PITKind int

const (
	PITNone       PITKind = iota // sliced scroll (ES 6, ES < 7.10, OpenSearch < 2.4)
	PITES                        // POST /<idx>/_pit (ES ≥ 7.10)
	PITOpenSearch                // POST /<idx>/_search/point_in_time (OpenSearch ≥ 2.4)
)

// PIT returns the snapshot mechanism the server supports.
func (s ServerInfo) PIT() PITKind {
	v := s.Major*100 + s.Minor
	switch {
	case s.Distribution == "opensearch" && v >= 204:
		return PITOpenSearch
	case s.Distribution != "opensearch" && v >= 710:
		return PITES
	}
	return PITNone
}

// ImplicitTiebreak: from ES 7.12 a PIT search with a sort gets _shard_doc.
func (s ServerInfo) ImplicitTiebreak() bool {
	return s.Distribution != "opensearch" && s.Major*100+s.Minor >= 712
}

// Client is an Elasticsearch/OpenSearch client for the export.
type Client struct {
	es   *elastic.Client
	info ServerInfo
	urls []string
}

// ErrAuth is returned for 401/403 answers: retrying will not help.
var ErrAuth = errors.New("elasticsearch refused the credentials")

// ErrContextMissing is returned when a PIT or scroll has expired.
var ErrContextMissing = errors.New("search context expired")

// NewClient connects and detects the server (GET /).
func NewClient(ctx context.Context, o ClientOptions) (*Client, error) {
	if len(o.URLs) == 0 {
		return nil, errors.New("no Elasticsearch URL; pass --es-url")
	}
	for _, u := range o.URLs {
		pu, err := url.Parse(u)
		if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			return nil, fmt.Errorf("elasticsearch url %q: want http(s)://host:port", redactURL(u))
		}
	}
	if o.MaxRetries == 0 {
		o.MaxRetries = 8
	}
	if o.RetryBase == 0 {
		o.RetryBase = 200 * time.Millisecond
	}
	if o.Timeout == 0 {
		o.Timeout = 2 * time.Minute
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	tr.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	if o.CAFile != "" || o.InsecureSkipVerify {
		tc := &tls.Config{InsecureSkipVerify: o.InsecureSkipVerify} //nolint:gosec // asked for by --es-insecure-skip-verify
		if o.CAFile != "" {
			pem, err := os.ReadFile(o.CAFile)
			if err != nil {
				return nil, fmt.Errorf("reading --es-ca: %w", err)
			}
			pool, err := x509.SystemCertPool()
			if err != nil {
				pool = x509.NewCertPool()
			}
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("--es-ca %s holds no PEM certificate", o.CAFile)
			}
			tc.RootCAs = pool
		}
		tr.TLSClientConfig = tc
	}
	opts := []elastic.ClientOptionFunc{
		elastic.SetURL(o.URLs...),
		elastic.SetSniff(o.Sniff),
		elastic.SetHealthcheck(o.HealthCheck),
		elastic.SetHttpClient(&http.Client{Transport: tr, Timeout: o.Timeout}),
		elastic.SetDecoder(numberDecoder{}),
		elastic.SetRetrier(&retrier{max: o.MaxRetries, base: o.RetryBase}),
		elastic.SetRetryStatusCodes(429, 502, 503, 504),
	}
	if o.Username != "" || o.Password != "" {
		opts = append(opts, elastic.SetBasicAuth(o.Username, o.Password))
	}
	if o.APIKey != "" {
		opts = append(opts, elastic.SetHeaders(http.Header{"Authorization": {"ApiKey " + o.APIKey}}))
	}
	es, err := elastic.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", redactURLs(o.URLs), classify(err))
	}
	c := &Client{es: es, urls: o.URLs}
	if err := c.detect(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// Info is the detected server.
func (c *Client) Info() ServerInfo { return c.info }

// String names the cluster for messages, without credentials.
func (c *Client) String() string { return redactURLs(c.urls) }

func (c *Client) detect(ctx context.Context) error {
	var root struct {
		Version struct {
			Number       string `json:"number"`
			Distribution string `json:"distribution"`
		} `json:"version"`
		Tagline string `json:"tagline"`
	}
	if err := c.do(ctx, "GET", "/", nil, nil, &root); err != nil {
		return fmt.Errorf("asking %s for its version: %w", c, err)
	}
	info := ServerInfo{Distribution: "elasticsearch", Version: root.Version.Number}
	if root.Version.Distribution == "opensearch" || strings.Contains(root.Tagline, "OpenSearch") {
		info.Distribution = "opensearch"
	}
	parts := strings.SplitN(info.Version, ".", 3)
	info.Major, _ = strconv.Atoi(parts[0])
	if len(parts) > 1 {
		info.Minor, _ = strconv.Atoi(parts[1])
	}
	switch {
	case info.Major == 0:
		return fmt.Errorf("%s did not say which version it runs (GET / gave %q); is it Elasticsearch or OpenSearch?", c, info.Version)
	case info.Distribution == "elasticsearch" && (info.Major < 6 || info.Major > 9):
		return fmt.Errorf("%s runs Elasticsearch %s; supported are 6, 7, 8 and 9", c, info.Version)
	case info.Distribution == "opensearch" && (info.Major < 1 || info.Major > 3):
		return fmt.Errorf("%s runs OpenSearch %s; supported are 1, 2 and 3", c, info.Version)
	}
	c.info = info
	return nil
}

// do performs a request and decodes the JSON answer into out.
func (c *Client) do(ctx context.Context, method, path string, params url.Values, body, out any) error {
	res, err := c.es.PerformRequest(ctx, elastic.PerformRequestOptions{Method: method, Path: path, Params: params, Body: body})
	if err != nil {
		return classify(err)
	}
	if out != nil {
		if err := (numberDecoder{}).Decode(res.Body, out); err != nil {
			return fmt.Errorf("decoding the answer to %s %s: %w", method, path, err)
		}
	}
	return nil
}

// classify maps olivere's errors to ErrAuth / ErrContextMissing, keeping
// the server's reason.
func classify(err error) error {
	var ee *elastic.Error
	if errors.As(err, &ee) {
		reason := ""
		if ee.Details != nil {
			reason = ee.Details.Reason
			for _, rc := range ee.Details.RootCause {
				if rc.Type == "search_context_missing_exception" {
					return fmt.Errorf("%w: %s", ErrContextMissing, rc.Reason)
				}
			}
			if ee.Details.Type == "search_context_missing_exception" {
				return fmt.Errorf("%w: %s", ErrContextMissing, reason)
			}
		}
		switch ee.Status {
		case 401, 403:
			return fmt.Errorf("%w (HTTP %d: %s); check --es-username/--es-password or --es-api-key", ErrAuth, ee.Status, reason)
		}
		if reason == "" {
			return fmt.Errorf("HTTP %d", ee.Status)
		}
		return fmt.Errorf("HTTP %d: %s", ee.Status, reason)
	}
	if errors.Is(err, elastic.ErrNoClient) {
		return fmt.Errorf("no node answered: %w", err)
	}
	return err
}

func redactURL(u string) string {
	pu, err := url.Parse(u)
	if err != nil {
		return "(unparsable url)"
	}
	pu.User = nil
	return pu.String()
}

func redactURLs(us []string) string {
	out := make([]string, len(us))
	for i, u := range us {
		out[i] = redactURL(u)
	}
	return strings.Join(out, ",")
}

// numberDecoder decodes answers with json.Number for numbers, so sort
// values (µs times, _shard_doc) are echoed back exactly.
type numberDecoder struct{}

func (numberDecoder) Decode(data []byte, v any) error { return jsonCfg.Unmarshal(data, v) }

// retrier retries 429, 5xx and connection errors with exponential backoff
// and full jitter, a bounded number of times; 401/403 stop at once.
type retrier struct {
	max  int
	base time.Duration
}

func (r *retrier) Retry(ctx context.Context, n int, _ *http.Request, resp *http.Response, err error) (time.Duration, bool, error) {
	if resp != nil && (resp.StatusCode == 401 || resp.StatusCode == 403) {
		return 0, false, nil
	}
	if ctx.Err() != nil || n > r.max {
		return 0, false, nil
	}
	d := r.base << min(n-1, 10)
	if d > 30*time.Second {
		d = 30 * time.Second
	}
	return time.Duration(rand.Int64N(int64(d)) + 1), true, nil
}

var _ elastic.Retrier = (*retrier)(nil)
var _ elastic.Decoder = numberDecoder{}

// jsonNumber reads an int from a JSON answer field that may be a number
// or a string (_cat answers numbers as strings).
func jsonNumber(v any) int64 {
	switch v := v.(type) {
	case json.Number:
		n, _ := v.Int64()
		return n
	case string:
		n, _ := strconv.ParseInt(v, 10, 64)
		return n
	case float64:
		return int64(v)
	}
	return 0
}
