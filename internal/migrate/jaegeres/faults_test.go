package jaegeres

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tracectl/tracectl/internal/migrate/jaegeres/estest"
	"github.com/tracectl/tracectl/internal/storage"
)

func TestAuthErrorsStopAtOnce(t *testing.T) {
	es := startDataset(t, estest.Config{Version: "8.15.0", Username: "elastic", Password: "s3cret-pw"})
	b := memBucket(t)
	o := baseOptions(es, b)
	o.Client.Username, o.Client.Password = "elastic", "wrong-pw"
	_, err := Migrate(context.Background(), o)
	if !errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), "--es-username") {
		t.Fatalf("got %v, want ErrAuth naming the flags", err)
	}
	if strings.Contains(err.Error(), "wrong-pw") || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("the error shows a secret: %v", err)
	}
	if n := es.Requests.Load(); n != 1 {
		t.Errorf("%d requests: auth errors must not be retried", n)
	}
	o.Client.Password = "s3cret-pw"
	if _, err := Migrate(context.Background(), o); err != nil {
		t.Fatalf("with the right password: %v", err)
	}
	assertExpected(t, b)
}

func TestAPIKey(t *testing.T) {
	es := startDataset(t, estest.Config{Version: "8.15.0", APIKey: "a2V5OnNlY3JldA=="})
	o := baseOptions(es, memBucket(t))
	o.Client.APIKey = "a2V5OnNlY3JldA=="
	if _, err := Migrate(context.Background(), o); err != nil {
		t.Fatal(err)
	}
}

// TestRetries429AndShardFailures: rejected and partial pages are retried;
// nothing is lost.
func TestRetries429AndShardFailures(t *testing.T) {
	es := startDataset(t, estest.Config{Version: "7.17.0"})
	var n, rejected atomic.Int64
	es.SetFault(func(r *http.Request, body []byte) (int, string) {
		if r.URL.Path != "/_search" {
			return 0, ""
		}
		switch k := n.Add(1); {
		case k%4 == 0:
			rejected.Add(1)
			return 429, estest.Rejected429
		case k%7 == 0:
			return 200, `{"took":1,"timed_out":false,"_shards":{"total":5,"successful":4,"skipped":0,"failed":1},"hits":{"hits":[]}}`
		}
		return 0, ""
	})
	b := memBucket(t)
	o := baseOptions(es, b)
	o.BatchSize = 200
	s, err := Migrate(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if rejected.Load() == 0 {
		t.Fatal("the fault never fired")
	}
	checkSummary(t, s)
	assertExpected(t, b)
}

func TestRetriesAreBounded(t *testing.T) {
	es := startDataset(t, estest.Config{Version: "7.17.0"})
	es.SetFault(func(r *http.Request, body []byte) (int, string) {
		if r.URL.Path == "/_search" {
			return 429, estest.Rejected429
		}
		return 0, ""
	})
	o := baseOptions(es, memBucket(t))
	o.Client.MaxRetries = 3
	_, err := Migrate(context.Background(), o)
	if err == nil || !strings.Contains(err.Error(), "429") {
		t.Fatalf("got %v, want the 429 after bounded retries", err)
	}
}

// TestExpiredPITIsReopened: every PIT expires after a few pages; the
// export reopens and continues from the last whole trace.
func TestExpiredPITIsReopened(t *testing.T) {
	for _, cfg := range []estest.Config{{Version: "8.15.0"}, {Version: "6.8.23"}, {Version: "2.11.0", Distribution: "opensearch"}} {
		t.Run(cfg.Distribution+cfg.Version, func(t *testing.T) {
			es := startDataset(t, cfg)
			var pages atomic.Int64
			es.SetFault(func(r *http.Request, body []byte) (int, string) {
				if r.Method == "POST" && (strings.HasSuffix(r.URL.Path, "_search") || strings.HasSuffix(r.URL.Path, "scroll")) {
					// 15 expiries at a fixed cadence (an unbounded fixed
					// cadence can starve the export, which a real keep-alive
					// cannot).
					if n := pages.Add(1); n%12 == 0 && n <= 12*15 {
						es.ExpireContexts()
					}
				}
				return 0, ""
			})
			b := memBucket(t)
			o := baseOptions(es, b)
			o.BatchSize = 100
			s, err := Migrate(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			checkSummary(t, s)
			assertExpected(t, b)
		})
	}
}

// TestPITIsASnapshot: documents indexed after the export opened its PIT
// are not migrated (and the counts taken before still add up).
func TestPITIsASnapshot(t *testing.T) {
	es := startDataset(t, estest.Config{Version: "8.15.0"})
	var once atomic.Bool
	es.SetFault(func(r *http.Request, body []byte) (int, string) {
		if r.URL.Path == "/_search" && once.CompareAndSwap(false, true) {
			d, _ := estest.DocFromSource("late", []byte(`{"traceID":"00000000000000000000000000000001","spanID":"0000000000000001","operationName":"late","startTime":1795064152437805,"startTimeMillis":1795064152437,"duration":1,"process":{"serviceName":"late"}}`))
			es.Add("jaeger-span-2026-11-19", d)
		}
		return 0, ""
	})
	b := memBucket(t)
	if _, err := Migrate(context.Background(), baseOptions(es, b)); err != nil {
		t.Fatal(err)
	}
	if es.Count("jaeger-span-2026-11-19") != 1108 {
		t.Fatal("the late document was not indexed")
	}
	assertExpected(t, b)
}

func TestUndecodableDocumentsAreReported(t *testing.T) {
	es := startDataset(t, estest.Config{Version: "8.15.0"})
	bad, _ := estest.DocFromSource("bad-1", []byte(`{"traceID":"zz-not-hex","spanID":"1","startTime":1795064152437805,"startTimeMillis":1795064152437}`))
	es.Add("jaeger-span-2026-11-19", bad)
	b := memBucket(t)
	o := baseOptions(es, b)
	s, err := Migrate(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if s.Skipped != 1 || len(s.SkippedDocs) != 1 || s.SkippedDocs[0].ID != "bad-1" || s.SkippedDocs[0].Index != "jaeger-span-2026-11-19" ||
		!strings.Contains(s.SkippedDocs[0].Reason, "zz-not-hex") {
		t.Errorf("skipped: %d %+v", s.Skipped, s.SkippedDocs)
	}
	assertExpected(t, b)

	o.Bucket = memBucket(t)
	o.MaxErrors = 0
	_, err = Migrate(context.Background(), o)
	if !errors.Is(err, ErrTooManyErrors) {
		t.Errorf("with --max-errors 0: %v", err)
	}
}

// TestResumeAfterStorageFailures cuts storage off after N writes at many
// points (inside a block, between meta.json and the checkpoint, in the
// checkpoint itself), then resumes: every span exactly once; a further
// run writes nothing.
func TestResumeAfterStorageFailures(t *testing.T) {
	es := startDataset(t, estest.Config{Version: "8.15.0"})
	for _, cut := range []int64{1, 3, 5, 8, 13, 21, 34} {
		for _, inBucket := range []bool{false, true} {
			name := "file"
			if inBucket {
				name = "bucket"
			}
			t.Run(fmt.Sprintf("%s/after-%d-writes", name, cut), func(t *testing.T) {
				b := memBucket(t)
				o := baseOptions(es, b)
				o.MaxBlockBytes = 300 << 10 // ~10 blocks
				o.Checkpoint = filepath.Join(t.TempDir(), "cp.json")
				if inBucket {
					o.Checkpoint = "bucket:migrations/jaeger.json"
				}
				var writes atomic.Int64
				b.SetHook(func(ctx context.Context, op, key string) error {
					if op == "write" {
						if writes.Add(1) > cut {
							return errors.New("injected: storage went away")
						}
					}
					return nil
				})
				_, err := Migrate(context.Background(), o)
				if err == nil {
					t.Fatalf("no error with storage cut after %d writes", cut)
				}
				b.SetHook(nil)
				_, err = Migrate(context.Background(), o)
				if !errors.Is(err, ErrUnfinishedCheckpoint) {
					t.Fatalf("without --resume: %v", err)
				}
				o.Resume = true
				s, err := Migrate(context.Background(), o)
				if err != nil {
					t.Fatal(err)
				}
				if !s.Resumed {
					t.Error("not resumed")
				}
				checkSummary(t, s)
				assertExpected(t, b)
				// A finished migration writes nothing new.
				var after atomic.Int64
				b.SetHook(func(ctx context.Context, op, key string) error {
					if op == "write" {
						after.Add(1)
					}
					return nil
				})
				s, err = Migrate(context.Background(), o)
				if err != nil || !s.AlreadyDone || after.Load() != 0 {
					t.Errorf("re-run: done=%v, %d writes, %v", s != nil && s.AlreadyDone, after.Load(), err)
				}
			})
		}
	}
}

func TestCheckpointOfAnotherMigrationIsRefused(t *testing.T) {
	es := startDataset(t, estest.Config{Version: "8.15.0"})
	o := baseOptions(es, memBucket(t))
	o.Checkpoint = filepath.Join(t.TempDir(), "cp.json")
	if _, err := Migrate(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	o.Selection.Prefixes = []string{"taf"}
	_, err := Migrate(context.Background(), o)
	if err == nil || !strings.Contains(err.Error(), "another migration") {
		t.Errorf("got %v", err)
	}
	os.WriteFile(o.Checkpoint, []byte("{not json"), 0o644)
	if _, err := Migrate(context.Background(), o); err == nil || !strings.Contains(err.Error(), "remove it to start over") {
		t.Errorf("corrupt checkpoint: %v", err)
	}
}

func TestSelection(t *testing.T) {
	es := startDataset(t, estest.Config{Version: "8.15.0"})
	ctx := context.Background()
	c, err := NewClient(ctx, ClientOptions{URLs: []string{es.URL}})
	if err != nil {
		t.Fatal(err)
	}
	names := func(sel Selection) string {
		ix, err := c.Discover(ctx, sel)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, i := range ix {
			out = append(out, i.Name)
		}
		return strings.Join(out, ",")
	}
	if got := names(Selection{}); got != "jaeger-span-2026-11-18,jaeger-span-2026-11-19,jaeger-span-2026-11-20" {
		t.Errorf("default: %s", got)
	}
	if got := names(Selection{IncludeArchive: true}); !strings.HasSuffix(got, ",jaeger-span-archive") {
		t.Errorf("archive: %s", got)
	}
	if got := names(Selection{Prefixes: []string{"taf"}, Since: time.Date(2026, 11, 19, 12, 0, 0, 0, time.UTC)}); got != "taf-jaeger-span-2026-11-19,taf-jaeger-span-2026-11-20" {
		t.Errorf("since: %s", got)
	}
	es.Add("jaeger-span-000001")
	es.Alias("jaeger-span-read", "jaeger-span-000001", "jaeger-span-2026-11-20")
	if got := names(Selection{UseAliases: true}); got != "jaeger-span-000001,jaeger-span-2026-11-20" {
		t.Errorf("aliases: %s", got)
	}
	// The archive duplicates 3 whole traces: included, they are deduplicated.
	b := memBucket(t)
	o := baseOptions(es, b)
	o.Selection.IncludeArchive = true
	s, err := Migrate(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if s.Duplicates != 28+3 {
		t.Errorf("%d duplicates, want 31 (28 archive copies + 3 retried writes)", s.Duplicates)
	}
	assertExpected(t, b)
	// Services and time filter.
	b = memBucket(t)
	o = baseOptions(es, b)
	o.Selection.Services = []string{"frontend"}
	if s, err = Migrate(ctx, o); err != nil {
		t.Fatal(err)
	}
	// Whole traces: every trace with a frontend span, all of its spans.
	assertExpectedWhere(t, b, func(_ string, services []string) bool { return slices.Contains(services, "frontend") })
}

func TestDryRunPlans(t *testing.T) {
	es := startDataset(t, estest.Config{Version: "8.15.0"})
	b := memBucket(t)
	o := baseOptions(es, b)
	o.DryRun = true
	s, err := Migrate(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if s.Plan == nil || s.Plan.Documents != 3257 || s.Plan.EstimatedBytes == 0 || len(s.Indices) != 6 {
		t.Errorf("plan %+v, %d indices", s.Plan, len(s.Indices))
	}
	for _, err := range b.List(context.Background(), "", "") {
		if err == nil {
			t.Fatal("a dry run wrote to the bucket")
		}
	}
	_ = storage.ErrNotFound
}
