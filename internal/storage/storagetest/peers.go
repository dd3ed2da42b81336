package storagetest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/fsouza/fake-gcs-server/fakestorage"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/tracectl/tracectl/internal/testfix"
)

// Peer is what the S3, GCS and Azure test peers share: an address on
// 127.0.0.1, a count of listing requests (to prove that provider paging
// happened) and a switch that answers requests with the provider's own
// "403 access denied".
type Peer struct {
	// Addr is host:port on 127.0.0.1.
	Addr string

	deny   atomic.Pointer[func(r *http.Request) bool]
	srv    *http.Server
	isList func(r *http.Request) bool
	denied func(w http.ResponseWriter, r *http.Request)
	lists  atomic.Int64
	reqs   atomic.Int64
}

// Deny makes the peer refuse the requests f picks with 403 and the
// provider's own error body, as a real store does for credentials without
// access. Deny(nil) lets everything through again.
func (p *Peer) Deny(f func(r *http.Request) bool) {
	if f == nil {
		p.deny.Store(nil)
		return
	}
	p.deny.Store(&f)
}

// Stop shuts the peer's listener and connections: later requests find
// nothing listening, as when an endpoint goes away.
func (p *Peer) Stop() {
	if p.srv != nil {
		_ = p.srv.Close()
	}
}

// ListRequests is the number of listing requests the peer has answered.
func (p *Peer) ListRequests() int64 { return p.lists.Load() }

// Requests is the number of requests the peer has answered.
func (p *Peer) Requests() int64 { return p.reqs.Load() }

func (p *Peer) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.reqs.Add(1)
		if f := p.deny.Load(); f != nil && (*f)(r) {
			p.denied(w, r)
			return
		}
		if p.isList(r) {
			p.lists.Add(1)
		}
		h.ServeHTTP(w, r)
	})
}

// serve runs h on a fresh 127.0.0.1 port until the test ends.
func serve(t testing.TB, h http.Handler) (string, *http.Server) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen on 127.0.0.1: %v", err)
	}
	return serveOn(t, ln, h)
}

// ClosedAddr returns a 127.0.0.1 address nothing listens on (it was free a
// moment ago), for "storage unavailable" tests.
func ClosedAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen on 127.0.0.1: %v", err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// S3 is gofakes3, an in-process server speaking the S3 wire protocol.
type S3 struct {
	Peer
	Backend *s3mem.Backend
}

// StartS3 starts an S3 peer for the test and points the AWS SDK at static
// test credentials, with every network lookup of credentials switched off.
func StartS3(t testing.TB) *S3 {
	t.Helper()
	SetAWSEnv(t)
	s := &S3{Backend: s3mem.New()}
	s.isList = func(r *http.Request) bool {
		return r.Method == http.MethodGet && r.URL.Query().Has("list-type")
	}
	s.denied = func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/xml")
		w.Header().Set("x-amz-request-id", "TRACECTLTEST0001")
		w.WriteHeader(http.StatusForbidden)
		if r.Method == http.MethodHead {
			return // S3 sends no body with HEAD, as here
		}
		_, _ = io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>AccessDenied</Code><Message>Access Denied</Message><RequestId>TRACECTLTEST0001</RequestId><HostId>dGVzdA==</HostId></Error>`)
	}
	faker := gofakes3.New(s.Backend, gofakes3.WithLogger(gofakes3.DiscardLog()))
	s.Addr, s.srv = serve(t, s.wrap(faker.Server()))
	return s
}

// SetAWSEnv gives the AWS SDK static credentials and no shared config, so
// that it never looks on the network or in the home directory.
func SetAWSEnv(t testing.TB) {
	none := filepath.Join(t.TempDir(), "none")
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID":           "tracectltest",
		"AWS_SECRET_ACCESS_KEY":       "tracectltestsecret",
		"AWS_SESSION_TOKEN":           "",
		"AWS_REGION":                  "us-east-1",
		"AWS_EC2_METADATA_DISABLED":   "true",
		"AWS_CONFIG_FILE":             none,
		"AWS_SHARED_CREDENTIALS_FILE": none,
		"AWS_ENDPOINT_URL":            "",
		"AWS_ENDPOINT_URL_S3":         "",
	} {
		t.Setenv(k, v)
	}
}

// URL returns the bucket URL tracectl opens for bucket name on this peer.
func (s *S3) URL(name string) string {
	return S3URL(s.Addr, name)
}

// S3URL is the bucket URL for an S3 endpoint at addr (host:port).
func S3URL(addr, name string) string {
	return fmt.Sprintf("s3://%s?endpoint=http://%s&use_path_style=true&region=us-east-1", name, addr)
}

// Bucket creates bucket name and returns its URL.
func (s *S3) Bucket(t testing.TB, name string) string {
	t.Helper()
	if err := s.Backend.CreateBucket(name); err != nil {
		t.Fatalf("create S3 bucket %s: %v", name, err)
	}
	return s.URL(name)
}

// GCS is fake-gcs-server's fakestorage, in-process, on 127.0.0.1.
type GCS struct {
	Peer
	Server *fakestorage.Server
}

// StartGCS starts a GCS peer and sets STORAGE_EMULATOR_HOST to it, which
// makes gocloud's gcsblob use it without credentials.
func StartGCS(t testing.TB) *GCS {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen on 127.0.0.1: %v", err)
	}
	addr := ln.Addr().String()
	g := &GCS{}
	g.isList = func(r *http.Request) bool {
		return r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/storage/v1/b/") && strings.HasSuffix(r.URL.Path, "/o")
	}
	g.denied = func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json; charset=UTF-8")
		w.WriteHeader(http.StatusForbidden)
		_, _ = io.WriteString(w, `{"error":{"code":403,"message":"tracectl-test@example.iam.gserviceaccount.com does not have storage.objects.get access to the Google Cloud Storage object.","errors":[{"message":"tracectl-test@example.iam.gserviceaccount.com does not have storage.objects.get access to the Google Cloud Storage object.","domain":"global","reason":"forbidden"}]}}`)
	}
	host, port := splitPort(t, addr)
	srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{
		NoListener:  true,
		Scheme:      "http",
		Host:        host,
		Port:        port,
		PublicHost:  addr,
		ExternalURL: "http://" + addr,
	})
	if err != nil {
		t.Fatalf("start fake-gcs-server: %v", err)
	}
	g.Server = srv
	// fakestorage needs its public address up front (for upload URLs), so
	// it serves on our listener rather than its own.
	g.Addr, g.srv = serveOn(t, ln, g.wrap(srv.HTTPHandler()))
	t.Cleanup(srv.Stop)
	t.Setenv("STORAGE_EMULATOR_HOST", g.Addr)
	t.Setenv("STORAGE_EMULATOR_HOST_GRPC", "")
	return g
}

func serveOn(t testing.TB, ln net.Listener, h http.Handler) (string, *http.Server) {
	t.Helper()
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 30 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String(), srv
}

func splitPort(t testing.TB, addr string) (string, uint16) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	var port uint16
	if _, err := fmt.Sscan(p, &port); err != nil {
		t.Fatal(err)
	}
	return host, port
}

// URL returns the bucket URL for bucket name.
func (g *GCS) URL(name string) string { return "gs://" + name }

// Bucket creates bucket name and returns its URL.
func (g *GCS) Bucket(t testing.TB, name string) string {
	t.Helper()
	g.Server.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: name})
	return g.URL(name)
}

// AzuriteAccount and AzuriteKey are Azurite's published development account
// and key (https://learn.microsoft.com/azure/storage/common/storage-use-azurite).
const (
	AzuriteAccount = "devstoreaccount1"
	AzuriteKey     = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// Azure is a view of the shared Azurite process through a proxy of its own
// on 127.0.0.1 (for request counting and Deny).
type Azure struct {
	Peer
	// Direct is Azurite's own address.
	Direct string
}

var azurite struct {
	once sync.Once
	mu   sync.Mutex
	cmd  *exec.Cmd
	addr string
	out  *tailBuffer
	err  error
}

// AzuriteMissing is the message for a missing Azurite.
const AzuriteMissing = "Azurite (the Azure Blob test peer, a node program) not found: run scripts/test.sh, which installs it into .tools/ and sets TRACECTL_AZURITE to its dist/src/blob/main.js"

// StartAzure returns the Azurite peer, starting Azurite on the first call
// in the test binary (call StopAzurite from TestMain). It sets
// AZURE_STORAGE_ACCOUNT and AZURE_STORAGE_KEY to the development account.
// Without $TRACECTL_AZURITE the test fails under CI=true and skips
// elsewhere.
func StartAzure(t testing.TB) *Azure {
	t.Helper()
	main := os.Getenv("TRACECTL_AZURITE")
	if main == "" {
		testfix.Missing(t, AzuriteMissing+" (TRACECTL_AZURITE is unset)")
	}
	if _, err := os.Stat(main); err != nil {
		testfix.Missing(t, AzuriteMissing+" (TRACECTL_AZURITE="+main+": "+err.Error()+")")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		testfix.Missing(t, "node is needed to run Azurite (the Azure Blob test peer): apt-get install -y nodejs")
	}
	azurite.once.Do(func() { azurite.err = startAzurite(node, main) })
	if azurite.err != nil {
		t.Fatalf("start Azurite: %v", azurite.err)
	}
	for k, v := range map[string]string{
		"AZURE_STORAGE_ACCOUNT":              AzuriteAccount,
		"AZURE_STORAGE_KEY":                  AzuriteKey,
		"AZURE_STORAGE_SAS_TOKEN":            "",
		"AZURE_STORAGE_CONNECTION_STRING":    "",
		"AZURE_STORAGEBLOB_CONNECTIONSTRING": "",
		"AZURE_STORAGE_DOMAIN":               "",
		"AZURE_STORAGE_PROTOCOL":             "",
		"AZURE_STORAGE_IS_LOCAL_EMULATOR":    "",
	} {
		t.Setenv(k, v)
	}
	a := &Azure{Direct: azurite.addr}
	a.isList = func(r *http.Request) bool { return r.URL.Query().Get("comp") == "list" }
	a.denied = func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/xml")
		w.Header().Set("x-ms-error-code", "AuthorizationPermissionMismatch")
		w.WriteHeader(http.StatusForbidden)
		if r.Method == http.MethodHead {
			return
		}
		_, _ = io.WriteString(w, `<?xml version="1.0" encoding="utf-8"?><Error><Code>AuthorizationPermissionMismatch</Code><Message>This request is not authorized to perform this operation using this permission.</Message></Error>`)
	}
	target := &url.URL{Scheme: "http", Host: azurite.addr}
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.FlushInterval = -1
	proxy.ErrorLog = log.New(io.Discard, "", 0)
	a.Addr, a.srv = serve(t, a.wrap(proxy))
	return a
}

// URL returns the bucket URL for container name.
func (a *Azure) URL(name string) string {
	return fmt.Sprintf("azblob://%s?protocol=http&domain=%s", name, a.Addr)
}

// Bucket creates container name and returns its URL.
func (a *Azure) Bucket(t testing.TB, name string) string {
	t.Helper()
	cred, err := azblob.NewSharedKeyCredential(AzuriteAccount, AzuriteKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := azblob.NewClientWithSharedKeyCredential(fmt.Sprintf("http://%s/%s/", a.Direct, AzuriteAccount), cred, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.CreateContainer(ctx, name, nil); err != nil {
		t.Fatalf("create Azurite container %s: %v", name, err)
	}
	return a.URL(name)
}

var listensRE = regexp.MustCompile(`listens on https?://([0-9.]+:[0-9]+)`)

// startAzurite runs Azurite on a port the kernel picks (--blobPort 0) and
// reads the port from its start-up line: unlike picking a free port and
// passing it on, nothing can take the port in between.
func startAzurite(node, main string) error {
	cmd := exec.Command(node, main,
		"--blobHost", "127.0.0.1", "--blobPort", "0",
		"--inMemoryPersistence", "--skipApiVersionCheck", "--loose",
		// Azurite sends usage telemetry to Azure Monitor unless told not
		// to (and spools it under /tmp when offline); tests stay on
		// 127.0.0.1.
		"--disableTelemetry")
	// With --inMemoryPersistence it writes no files; run it from the
	// temporary directory all the same, never from the package.
	cmd.Dir = os.TempDir()
	// Its own process group (so StopAzurite can kill node's children too),
	// and killed with the test binary if that dies first.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	out := &tailBuffer{}
	cmd.Stderr = out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("run node %s: %w", main, err)
	}
	azurite.cmd, azurite.out = cmd, out
	found := make(chan string, 1)
	eof := make(chan struct{})
	go func() {
		defer close(eof)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			out.Write([]byte(line + "\n"))
			if m := listensRE.FindStringSubmatch(line); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case azurite.addr = <-found:
	case <-eof:
		StopAzurite()
		return fmt.Errorf("azurite exited before listening; output:\n%s", out.String())
	case <-time.After(60 * time.Second):
		StopAzurite()
		return fmt.Errorf("azurite did not report its port within 60s; output:\n%s", out.String())
	}
	// Wait until it answers HTTP.
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + azurite.addr + "/" + AzuriteAccount + "?comp=list")
		if err == nil {
			resp.Body.Close()
			return nil
		}
		if time.Now().After(deadline) {
			StopAzurite()
			return fmt.Errorf("azurite on %s does not answer: %v; output:\n%s", azurite.addr, err, out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// StopAzurite ends the Azurite process, if one was started. Call it from
// TestMain after m.Run.
func StopAzurite() {
	azurite.mu.Lock()
	defer azurite.mu.Unlock()
	if azurite.cmd == nil || azurite.cmd.Process == nil {
		return
	}
	pid := azurite.cmd.Process.Pid
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	_ = azurite.cmd.Wait()
	azurite.cmd = nil
}

// tailBuffer keeps the last 16 KiB written to it, for error messages.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if len(b.buf) > 16<<10 {
		b.buf = b.buf[len(b.buf)-16<<10:]
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
