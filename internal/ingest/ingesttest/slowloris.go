package ingesttest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"sync"
	"time"
)

// SlowLoris is a set of HTTP clients that hold connections open without
// ever completing a request, as the slow-loris attack does.
type SlowLoris struct {
	mu     sync.Mutex
	closed []time.Duration // when the server closed each connection, from its dial
	open   int
	wg     sync.WaitGroup
	cancel context.CancelFunc
	errs   []error
}

// SlowLorisMode says how a connection stalls.
type SlowLorisMode int

const (
	// TrickleHeaders sends a request line and then header bytes one at a
	// time, every interval, never ending the headers.
	TrickleHeaders SlowLorisMode = iota
	// StallBody sends whole headers announcing a body of a megabyte, a
	// few bytes of it, and then nothing.
	StallBody
	// H2Preface sends the HTTP/2 client preface (prior knowledge) and
	// then nothing, not even its SETTINGS frame.
	H2Preface
)

// StartSlowLoris opens n connections to addr (host:port) that stall as mode
// says, and watches for the server to close them. Stop ends them.
func StartSlowLoris(addr, path string, n int, mode SlowLorisMode, interval time.Duration) *SlowLoris {
	ctx, cancel := context.WithCancel(context.Background())
	s := &SlowLoris{cancel: cancel}
	for range n {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.run(ctx, addr, path, mode, interval)
		}()
	}
	return s
}

func (s *SlowLoris) fail(err error) {
	s.mu.Lock()
	s.errs = append(s.errs, err)
	s.mu.Unlock()
}

func (s *SlowLoris) run(ctx context.Context, addr, path string, mode SlowLorisMode, interval time.Duration) {
	began := time.Now()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		s.fail(err)
		return
	}
	defer c.Close()
	s.mu.Lock()
	s.open++
	s.mu.Unlock()
	// The server closing the connection shows as a read error (EOF or
	// reset), whatever the writer is doing.
	closedc := make(chan struct{})
	go func() {
		defer close(closedc)
		buf := make([]byte, 4096)
		for {
			if _, err := c.Read(buf); err != nil {
				if !errors.Is(err, net.ErrClosed) {
					s.mu.Lock()
					s.closed = append(s.closed, time.Since(began))
					s.mu.Unlock()
				}
				return
			}
		}
	}()
	var first, trickle []byte
	switch mode {
	case TrickleHeaders:
		first = fmt.Appendf(nil, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n", path, addr)
		trickle = []byte("X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")
	case StallBody:
		first = fmt.Appendf(nil, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 1048576\r\n\r\n[{\"tra", path, addr)
	case H2Preface:
		first = []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
	}
	if _, err := c.Write(first); err != nil {
		return
	}
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			c.Close()
			<-closedc
			return
		case <-closedc:
			return
		case <-time.After(interval):
		}
		if len(trickle) > 0 {
			_, _ = c.Write(trickle[i%len(trickle) : i%len(trickle)+1])
		}
	}
}

// Closed returns how long each connection the server closed had lived,
// sorted, and how many connections were opened.
func (s *SlowLoris) Closed() (lifetimes []time.Duration, opened int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := append([]time.Duration(nil), s.closed...)
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out, s.open
}

// Stop closes every connection still open and returns the dial errors.
func (s *SlowLoris) Stop() error {
	s.cancel()
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	return errors.Join(s.errs...)
}

// OpenFDs counts this process's open file descriptors (Linux), -1 if
// unknown.
func OpenFDs() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(ents)
}

var _ = io.EOF
