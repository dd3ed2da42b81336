package ingest

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	spb "google.golang.org/genproto/googleapis/rpc/status"
)

// TestLimitMessageSaysRetryLaterOnce: a limit whose message already ends in
// "retry later" (the server's full-WAL, rate and live-bytes messages) is
// answered with that message as is, on every TCP receiver; one without it
// gets it appended, once.
func TestLimitMessageSaysRetryLaterOnce(t *testing.T) {
	// The message of server.Server's full WAL, as it words it.
	const walFull = "the write-ahead log is full (1048576 bytes) because blocks cannot be stored fast enough or storage is failing; retry later"
	for _, p := range tcpProtocols(t) {
		t.Run(p.name, func(t *testing.T) {
			e := newEnv()
			r := p.new(t, tcpConfig(false), e)
			for _, tc := range []struct{ consumer, want string }{
				{walFull, p.name + ": " + walFull},
				{"tenant x has too many live traces", p.name + ": tenant x has too many live traces; retry later"},
			} {
				e.rec.SetErr(Limited("wal_full", 10*time.Second, "%s", tc.consumer))
				code, err, _ := p.send(t, r, nil)
				var msg string
				switch {
				case p.grpc:
					msg = status.Convert(err).Message()
				case p.name == ProtocolOTLPHTTP: // a google.rpc.Status, protobuf
					st := &spb.Status{}
					if err == nil || proto.Unmarshal([]byte(err.Error()), st) != nil {
						t.Fatalf("%d %v: not a google.rpc.Status", code, err)
					}
					msg = st.GetMessage()
				default: // plain text, as http.Error writes it
					msg = strings.TrimSuffix(fmt.Sprint(err), "\n")
				}
				if !p.grpc && code != http.StatusTooManyRequests {
					t.Errorf("status %d, want 429", code)
				}
				if msg != tc.want {
					t.Errorf("message\n  %q\nwant\n  %q", msg, tc.want)
				}
				if n := strings.Count(msg, "retry later"); n != 1 {
					t.Errorf("%q says retry later %d times", msg, n)
				}
			}
		})
	}
}
