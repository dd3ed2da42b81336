// Package tempoclient is a small client for Grafana Tempo's HTTP query API
// (and tracectl's own, which answers the same way): one method per endpoint,
// typed options for the tenant header, credentials, TLS and timeout, and
// errors that say what went wrong and what to try.
//
// It owns the HTTP exchange and the decoding of Tempo's answers into
// ptrace.Traces. It must not print anything, read flags or the environment,
// or retry on its own: callers decide. It never puts credentials into error
// messages (URLs in errors are redacted).
package tempoclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/tracectl/tracectl/internal/tenant"
)

// Defaults for Options left zero.
const (
	DefaultTimeout          = 30 * time.Second
	DefaultMaxResponseBytes = 256 << 20
)

// Error kinds; every error a Client returns for an answer it understood
// wraps one of them (test with errors.Is).
var (
	// ErrNotFound: the server has no such trace (v2: an empty trace; v1: 404).
	ErrNotFound = errors.New("not found")
	// ErrBadRequest: the server refused the request as malformed (400).
	ErrBadRequest = errors.New("bad request")
	// ErrUnauthorized: credentials missing or wrong (401).
	ErrUnauthorized = errors.New("unauthorized")
	// ErrForbidden: credentials not allowed to read this tenant (403).
	ErrForbidden = errors.New("forbidden")
	// ErrUnavailable: the server could not be reached, timed out, or
	// answered 429 or 5xx; trying again later may work.
	ErrUnavailable = errors.New("unavailable")
	// ErrProtocol: the answer could not be decoded.
	ErrProtocol = errors.New("unexpected answer")
)

// TLSOptions configure https connections.
type TLSOptions struct {
	// CAFile is a PEM bundle of certificate authorities to trust instead of
	// the system's.
	CAFile string
	// CertFile and KeyFile are a client certificate (mutual TLS).
	CertFile, KeyFile string
	// ServerName overrides the name checked in the server's certificate.
	ServerName string
	// InsecureSkipVerify turns off certificate verification.
	InsecureSkipVerify bool
}

// Options configure a Client. The zero value talks to a single-tenant Tempo
// without credentials.
type Options struct {
	// Tenant is sent as X-Scope-OrgID when not empty. It is validated.
	Tenant string
	// BearerToken is sent as "Authorization: Bearer <token>".
	BearerToken string
	// Username and Password are sent as basic auth when Username is set.
	// Credentials in the base URL (https://user:pass@host) are used the same
	// way when these are empty.
	Username, Password string
	TLS                TLSOptions
	// Timeout bounds each request, from dial to the last byte of the body
	// (DefaultTimeout when zero).
	Timeout time.Duration
	// MaxResponseBytes bounds the body read (DefaultMaxResponseBytes when
	// zero); a larger answer is an error, never a truncated trace.
	MaxResponseBytes int64
	// UserAgent is sent as User-Agent when not empty.
	UserAgent string
	// Transport replaces the HTTP transport (tests); TLS options are then
	// the transport's business.
	Transport http.RoundTripper
}

// Client talks to one Tempo query frontend. It is safe for concurrent use.
type Client struct {
	base *url.URL
	opts Options
	hc   *http.Client
}

// New returns a client for the Tempo at baseURL (http or https, with an
// optional path prefix such as https://gateway/tempo).
func New(baseURL string, opts Options) (*Client, error) {
	u, err := url.Parse(strings.TrimSpace(baseURL))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("server URL %q: want http://host:port or https://host[:port][/prefix]", redactRaw(baseURL))
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("server URL %s: leave out the query and fragment; give the base URL only", u.Redacted())
	}
	if opts.Tenant != "" {
		if err := tenant.Validate(opts.Tenant); err != nil {
			return nil, err
		}
	}
	if u.User != nil && opts.Username == "" && opts.BearerToken == "" {
		opts.Username = u.User.Username()
		opts.Password, _ = u.User.Password()
	}
	u.User = nil
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	if opts.BearerToken != "" && opts.Username != "" {
		return nil, errors.New("both a bearer token and basic-auth credentials given; use one")
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.MaxResponseBytes <= 0 {
		opts.MaxResponseBytes = DefaultMaxResponseBytes
	}
	rt := opts.Transport
	if rt == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		cfg, err := tlsConfig(opts.TLS)
		if err != nil {
			return nil, err
		}
		tr.TLSClientConfig = cfg
		rt = tr
	}
	return &Client{
		base: u,
		opts: opts,
		hc: &http.Client{
			Transport: rt,
			Timeout:   opts.Timeout,
			// Never follow a redirect to another host with our credentials.
			CheckRedirect: func(req *http.Request, via []*http.Request) error {
				if len(via) >= 5 {
					return errors.New("too many redirects")
				}
				if req.URL.Host != via[0].URL.Host {
					return fmt.Errorf("redirected to another host (%s); give that server's URL instead", req.URL.Host)
				}
				return nil
			},
		},
	}, nil
}

// URL is the base URL with credentials removed, for messages.
func (c *Client) URL() string { return c.base.String() }

func tlsConfig(o TLSOptions) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: o.ServerName, InsecureSkipVerify: o.InsecureSkipVerify} //nolint:gosec // the user's explicit choice
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("reading CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s holds no PEM certificate", o.CAFile)
		}
		cfg.RootCAs = pool
	}
	if (o.CertFile == "") != (o.KeyFile == "") {
		return nil, errors.New("a client certificate needs both a certificate file and a key file")
	}
	if o.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("loading client certificate %s: %w", o.CertFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// answer is one HTTP response, body read in full.
type answer struct {
	status      int
	contentType string
	body        []byte
}

// get sends GET base+path?query with the client's headers and reads the
// whole (bounded) body. Transport failures come back as errors; every
// status code comes back as an answer for the caller to judge.
func (c *Client) get(ctx context.Context, path string, query url.Values, accept string) (*answer, error) {
	u := *c.base
	u.Path = c.base.Path + path
	u.RawQuery = query.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("building request for %s: %w", u.Redacted(), err)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	if c.opts.Tenant != "" {
		req.Header.Set("X-Scope-OrgID", c.opts.Tenant)
	}
	switch {
	case c.opts.BearerToken != "":
		req.Header.Set("Authorization", "Bearer "+c.opts.BearerToken)
	case c.opts.Username != "":
		req.SetBasicAuth(c.opts.Username, c.opts.Password)
	}
	if c.opts.UserAgent != "" {
		req.Header.Set("User-Agent", c.opts.UserAgent)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, c.transportError(ctx, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, c.opts.MaxResponseBytes+1))
	if err != nil {
		return nil, c.transportError(ctx, err)
	}
	if int64(len(body)) > c.opts.MaxResponseBytes {
		return nil, fmt.Errorf("%w: the answer from %s is larger than %d bytes; raise the response size limit or narrow the request",
			ErrProtocol, c.base.Redacted(), c.opts.MaxResponseBytes)
	}
	return &answer{status: resp.StatusCode, contentType: resp.Header.Get("Content-Type"), body: body}, nil
}

// transportError explains a failure to get an answer at all.
func (c *Client) transportError(ctx context.Context, err error) error {
	where := c.base.Host
	var (
		certErr    *tls.CertificateVerificationError
		unknownCA  x509.UnknownAuthorityError
		hostErr    x509.HostnameError
		recordErr  tls.RecordHeaderError
		dnsErr     *net.DNSError
		netErr     net.Error
		redirected = strings.Contains(err.Error(), "redirected to another host")
	)
	switch {
	case ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded):
		return ctx.Err()
	case redirected:
		return fmt.Errorf("%w: %s %v", ErrProtocol, where, errors.Unwrap(err))
	case errors.As(err, &unknownCA), errors.As(err, &hostErr), errors.As(err, &certErr):
		return fmt.Errorf("%w: the TLS certificate of %s is not trusted (%v); give the CA that signed it, or skip verification for a test server",
			ErrUnavailable, where, rootCause(err))
	case errors.As(err, &recordErr):
		return fmt.Errorf("%w: %s does not speak TLS; use an http:// URL", ErrUnavailable, where)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("%w: cannot connect to %s: connection refused; is the server running, and is the URL (host and port) right?", ErrUnavailable, where)
	case errors.As(err, &dnsErr):
		return fmt.Errorf("%w: cannot resolve host %s: %v; check the server URL", ErrUnavailable, dnsErr.Name, dnsErr.Err)
	case errors.As(err, &netErr) && netErr.Timeout(), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w: no answer from %s within %s; the server may be overloaded, or raise the timeout", ErrUnavailable, where, c.opts.Timeout)
	case strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		return fmt.Errorf("%w: %s answered plain HTTP; use an http:// URL", ErrUnavailable, where)
	}
	return fmt.Errorf("%w: talking to %s: %v", ErrUnavailable, where, rootCause(err))
}

// rootCause strips net/url's "Get \"…\": " wrapper, which repeats the URL.
func rootCause(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// statusError turns a non-2xx answer into an error of the right kind,
// carrying (a bounded part of) the server's own message.
func (c *Client) statusError(what string, a *answer) error {
	msg := serverMessage(a)
	where := c.base.Host
	code := a.status
	text := http.StatusText(code)
	if text == "" {
		text = "status"
	}
	head := fmt.Sprintf("%s: %s answered %d %s", what, where, code, strings.ToLower(text))
	if msg != "" {
		head += ": " + msg
	}
	switch {
	case code == http.StatusBadRequest:
		return &StatusError{Code: code, Message: msg, kind: ErrBadRequest, text: head}
	case code == http.StatusUnauthorized:
		return &StatusError{Code: code, Message: msg, kind: ErrUnauthorized, text: head + "; the server wants credentials: give a bearer token or a user and password"}
	case code == http.StatusForbidden:
		hint := "; these credentials may not read this tenant"
		if c.opts.Tenant != "" {
			hint = fmt.Sprintf("; these credentials may not read tenant %q", c.opts.Tenant)
		}
		return &StatusError{Code: code, Message: msg, kind: ErrForbidden, text: head + hint}
	case code == http.StatusNotFound:
		return &StatusError{Code: code, Message: msg, kind: ErrNotFound, text: head}
	case code == http.StatusTooManyRequests:
		return &StatusError{Code: code, Message: msg, kind: ErrUnavailable, text: head + "; the server is rate limiting, try again later"}
	case code >= 500:
		return &StatusError{Code: code, Message: msg, kind: ErrUnavailable, text: head + "; the server failed, try again later or look at its logs"}
	}
	return &StatusError{Code: code, Message: msg, kind: ErrProtocol, text: head}
}

// StatusError is an answer with an unexpected HTTP status.
type StatusError struct {
	Code    int    // HTTP status code
	Message string // the server's message (text bodies only, bounded)
	kind    error
	text    string
}

func (e *StatusError) Error() string { return e.text }
func (e *StatusError) Unwrap() error { return e.kind }

// serverMessage is a short, printable form of an error body: text only
// (HTML pages from proxies are summarised), one line, at most 300 bytes.
func serverMessage(a *answer) string {
	ct := strings.ToLower(a.contentType)
	body := strings.TrimSpace(string(a.body))
	if body == "" {
		return ""
	}
	if strings.Contains(ct, "html") || strings.HasPrefix(body, "<") {
		return "(an HTML page, probably from a proxy in front of the server)"
	}
	if strings.Contains(ct, "protobuf") {
		return ""
	}
	var b strings.Builder
	for _, r := range body {
		if b.Len() >= 300 {
			b.WriteString("…")
			break
		}
		switch {
		case r == '\n' || r == '\r' || r == '\t':
			b.WriteByte(' ')
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			// control characters never reach a terminal
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// redactRaw hides the password in a URL that failed to parse properly.
func redactRaw(s string) string {
	if u, err := url.Parse(s); err == nil {
		return u.Redacted()
	}
	if i := strings.Index(s, "@"); i >= 0 {
		return "…" + s[i:]
	}
	return s
}
