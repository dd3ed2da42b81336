package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// The object store of -target serve-outage: gofakes3 with its in-memory
// backend, hosted by the harness process (so the bucket outlives every
// serve it kills), behind a fault switch that takes it down in several
// ways while serve runs.

// Outage kinds (the -modes of -target serve-outage), each a state of the
// fault switch.
const (
	// outage503: every request answered 503 with an S3 error body
	// (SlowDown and ServiceUnavailable in turn), as S3 does when it sheds
	// load.
	outage503 = "down-503"
	// outageHang: every request held without an answer (a network
	// partition, a store that stopped answering) until the switch changes
	// state, then handled as the new state says (requests held across a
	// recovery reach the store, as after a partition heals), or answered
	// 503 after maxHang.
	outageHang = "down-hang"
	// outageReset: every connection reset (RST) without an answer.
	outageReset = "down-reset"
	// outageTorn: PUT bodies (PutObject, UploadPart) read in part, then
	// the connection reset: a write that breaks midway and stores
	// nothing, as S3 keeps no partial object. Other requests pass.
	outageTorn = "torn"
	// outageLostReply: PUTs are stored, then the connection is reset
	// instead of the answer: a write that landed though the client was
	// told it failed. Other requests pass.
	outageLostReply = "lost-reply"
)

// outageKinds are the outage kinds in their default cycle.
var outageKinds = []string{outage503, outageHang, outageReset, outageTorn, outageLostReply}

// stateUp is the fault switch's state when storage works.
const stateUp = "up"

// faultSwitch is an http.Handler in front of an S3 server that fails
// requests as its current state (stateUp or an outage kind) says. Safe for
// concurrent use; the state can be changed at any time.
type faultSwitch struct {
	next    http.Handler
	maxHang time.Duration

	mu      sync.Mutex
	state   string
	changed chan struct{} // closed (and replaced) at each state change

	requests  atomic.Int64             // requests seen
	faulted   atomic.Int64             // requests failed (or answered late, hang) by the switch
	faultedBy map[string]*atomic.Int64 // the same by outage kind
	held      atomic.Int64             // requests held by a hang right now
	seq       atomic.Int64
}

func newFaultSwitch(next http.Handler, maxHang time.Duration) *faultSwitch {
	f := &faultSwitch{next: next, maxHang: maxHang, state: stateUp, changed: make(chan struct{}), faultedBy: map[string]*atomic.Int64{}}
	for _, k := range outageKinds {
		f.faultedBy[k] = new(atomic.Int64)
	}
	return f
}

// FaultedBy returns the requests failed (or held) so far, by outage kind.
func (f *faultSwitch) FaultedBy() map[string]int64 {
	m := map[string]int64{}
	for k, n := range f.faultedBy {
		m[k] = n.Load()
	}
	return m
}

// Set switches to state (stateUp or an outage kind).
func (f *faultSwitch) Set(state string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if state == f.state {
		return
	}
	f.state = state
	close(f.changed)
	f.changed = make(chan struct{})
}

// State is the current state.
func (f *faultSwitch) State() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.state
}

func (f *faultSwitch) current() (string, <-chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.state, f.changed
}

func (f *faultSwitch) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.requests.Add(1)
	f.serve(w, r, false)
}

// isWrite tells a request that uploads an object body: PutObject,
// UploadPart (both PUT; CopyObject too, with no body).
func isWrite(r *http.Request) bool { return r.Method == http.MethodPut }

func (f *faultSwitch) serve(w http.ResponseWriter, r *http.Request, counted bool) {
	state, changed := f.current()
	fault := func() {
		if !counted {
			f.faulted.Add(1)
			f.faultedBy[state].Add(1)
			counted = true
		}
	}
	switch state {
	case outage503:
		fault()
		f.unavailable(w, r)
	case outageHang:
		fault()
		f.held.Add(1)
		t := time.NewTimer(f.maxHang)
		defer t.Stop()
		select {
		case <-changed:
			f.held.Add(-1)
			f.serve(w, r, true) // as the store is now
		case <-r.Context().Done():
			// The client gave up (a request with a body is only seen to
			// go when the switch changes state or at maxHang).
			f.held.Add(-1)
		case <-t.C:
			f.held.Add(-1)
			f.unavailable(w, r)
		}
	case outageReset:
		fault()
		resetConn(w)
	case outageTorn:
		if !isWrite(r) {
			f.next.ServeHTTP(w, r)
			return
		}
		fault()
		// Read a part of the body (10–90% of what is announced, at least
		// a byte when there is one), then break the connection.
		n := r.ContentLength
		if d := r.Header.Get("X-Amz-Decoded-Content-Length"); d != "" {
			fmt.Sscan(d, &n)
		}
		if n > 0 {
			part := max(1, n*int64(10+rand.IntN(81))/100)
			_, _ = io.CopyN(io.Discard, r.Body, min(part, n-1))
		}
		resetConn(w)
	case outageLostReply:
		if !isWrite(r) {
			f.next.ServeHTTP(w, r)
			return
		}
		fault()
		// The store handles the write; its answer is thrown away.
		f.next.ServeHTTP(httptest.NewRecorder(), r)
		resetConn(w)
	default:
		f.next.ServeHTTP(w, r)
	}
}

// unavailable answers 503 with an S3 error body, SlowDown and
// ServiceUnavailable in turn (HEAD gets no body, as from S3).
func (f *faultSwitch) unavailable(w http.ResponseWriter, r *http.Request) {
	code, msg := "ServiceUnavailable", "Service is unable to handle request."
	id := f.seq.Add(1)
	if id%2 == 0 {
		code, msg = "SlowDown", "Please reduce your request rate."
	}
	reqID := fmt.Sprintf("OUTAGE%010d", id)
	w.Header().Set("Content-Type", "application/xml")
	w.Header().Set("x-amz-request-id", reqID)
	w.Header().Set("Retry-After", "1")
	w.WriteHeader(http.StatusServiceUnavailable)
	if r.Method == http.MethodHead {
		return
	}
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>%s</Code><Message>%s</Message><RequestId>%s</RequestId><HostId>b3V0YWdl</HostId></Error>`, code, msg, reqID)
}

// resetConn closes the request's connection without an answer, with a
// TCP reset (SO_LINGER 0) rather than an orderly close.
func resetConn(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

// s3Peer is the harness's S3 server: one in-memory gofakes3 backend
// served on two 127.0.0.1 ports, Addr behind the fault switch (for serve)
// and DirectAddr without it (for the harness's own looks at the bucket
// while storage is "down").
type s3Peer struct {
	Switch     *faultSwitch
	Addr       string
	DirectAddr string
	Bucket     string
	srvs       []*http.Server
}

// startS3Peer starts gofakes3 with an in-memory backend and creates bucket.
func startS3Peer(bucket string, maxHang time.Duration) (*s3Peer, error) {
	be := s3mem.New()
	if err := be.CreateBucket(bucket); err != nil {
		return nil, fmt.Errorf("create S3 bucket %s: %w", bucket, err)
	}
	h := gofakes3.New(be, gofakes3.WithLogger(gofakes3.DiscardLog())).Server()
	p := &s3Peer{Switch: newFaultSwitch(h, maxHang), Bucket: bucket}
	for i, handler := range []http.Handler{p.Switch, h} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			p.Close()
			return nil, err
		}
		srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
		p.srvs = append(p.srvs, srv)
		go func() { _ = srv.Serve(ln) }()
		if i == 0 {
			p.Addr = ln.Addr().String()
		} else {
			p.DirectAddr = ln.Addr().String()
		}
	}
	return p, nil
}

// URL is the bucket URL through the fault switch; DirectURL without it.
func (p *s3Peer) URL() string       { return s3URL(p.Addr, p.Bucket) }
func (p *s3Peer) DirectURL() string { return s3URL(p.DirectAddr, p.Bucket) }

func s3URL(addr, bucket string) string {
	return fmt.Sprintf("s3://%s?endpoint=http://%s&use_path_style=true&region=us-east-1", bucket, addr)
}

// Close stops both servers (held requests are let go first).
func (p *s3Peer) Close() {
	if p.Switch != nil {
		p.Switch.Set(stateUp)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, s := range p.srvs {
		if err := s.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
			_ = s.Close()
		}
	}
}

// awsEnv is the environment the AWS SDK gets, in the harness and in serve:
// static dummy credentials, no shared config, no metadata lookups, so it
// never looks on the network or in the home directory (as
// internal/storage/storagetest.SetAWSEnv does for tests).
func awsEnv(work string) map[string]string {
	none := filepath.Join(work, "no-aws-config")
	return map[string]string{
		"AWS_ACCESS_KEY_ID":           "tracectlcrash",
		"AWS_SECRET_ACCESS_KEY":       "tracectlcrashsecret",
		"AWS_SESSION_TOKEN":           "",
		"AWS_REGION":                  "us-east-1",
		"AWS_EC2_METADATA_DISABLED":   "true",
		"AWS_CONFIG_FILE":             none,
		"AWS_SHARED_CREDENTIALS_FILE": none,
		"AWS_PROFILE":                 "",
		"AWS_ENDPOINT_URL":            "",
		"AWS_ENDPOINT_URL_S3":         "",
	}
}

// setAWSEnv sets awsEnv in this process (serve children inherit it).
func setAWSEnv(work string) error {
	for k, v := range awsEnv(work) {
		var err error
		if v == "" {
			err = os.Unsetenv(k)
		} else {
			err = os.Setenv(k, v)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
