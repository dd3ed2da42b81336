package server

import (
	"context"
	"testing"

	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/tracectl/tracectl/internal/otlptest"
	"github.com/tracectl/tracectl/internal/storage"
	"github.com/tracectl/tracectl/internal/wal"
)

// BenchmarkConsumeAndFlush measures the server's own work per span for
// OTLP protobuf requests: decode (as the receiver does), WAL append (no
// fsync), index into the head, and writing the block at the cut. Run with
// -cpuprofile to see where the time goes; bench/ingest measures the whole
// process over the network.
func BenchmarkConsumeAndFlush(b *testing.B) {
	c := otlptest.LoadCorpus(b)
	type req struct {
		raw []byte
	}
	var reqs []req
	spans := 0
	for pass := range 20 {
		for _, td := range c.Lines {
			cp := renumber(td, byte(pass))
			raw, err := ptraceotlp.NewExportRequestFromTraces(cp).MarshalProto()
			if err != nil {
				b.Fatal(err)
			}
			reqs = append(reqs, req{raw})
			spans += cp.SpanCount()
		}
	}
	bucket, err := storage.Open(context.Background(), "mem://")
	if err != nil {
		b.Fatal(err)
	}
	s, err := New(Config{Bucket: bucket, WALDir: b.TempDir(), WAL: wal.Options{Sync: wal.SyncNone}, IngestionRateBytes: -1, MaxLiveBytes: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		for _, r := range reqs {
			exp := ptraceotlp.NewExportRequest()
			if err := exp.UnmarshalProto(r.raw); err != nil {
				b.Fatal(err)
			}
			if err := s.ConsumeOTLP(context.Background(), "t", exp.Traces(), r.raw); err != nil {
				b.Fatal(err)
			}
		}
		if err := s.Flush(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(spans*b.N)/b.Elapsed().Seconds(), "spans/s")
}
