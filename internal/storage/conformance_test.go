package storage_test

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tracectl/tracectl/internal/storage"
	"github.com/tracectl/tracectl/internal/storage/storagetest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	storagetest.StopAzurite()
	os.Exit(code)
}

var bucketSeq atomic.Int64

// newName returns a bucket name valid on every provider.
func newName() string { return fmt.Sprintf("tracectl-test-%d", bucketSeq.Add(1)) }

func mustOpen(t testing.TB, url string) *storage.Bucket {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := storage.Open(ctx, url)
	if err != nil {
		t.Fatalf("Open(%s): %v", url, err)
	}
	return b
}

// TestConformance runs the one storage suite against every backend, each
// over its real protocol. Conditional create is atomic on all of them.
func TestConformance(t *testing.T) {
	t.Run("mem", func(t *testing.T) {
		storagetest.RunConformance(t, storagetest.Backend{
			Name:              "mem",
			Open:              func(t testing.TB) *storage.Bucket { return mustOpen(t, "mem://") },
			ConditionalCreate: true,
		})
	})
	t.Run("file", func(t *testing.T) {
		storagetest.RunConformance(t, storagetest.Backend{
			Name:              "file",
			Open:              func(t testing.TB) *storage.Bucket { return mustOpen(t, "file://"+t.TempDir()) },
			ConditionalCreate: true,
		})
	})
	t.Run("s3", func(t *testing.T) {
		s3 := storagetest.StartS3(t)
		storagetest.RunConformance(t, storagetest.Backend{
			Name:              "s3",
			Open:              func(t testing.TB) *storage.Bucket { return mustOpen(t, s3.Bucket(t, newName())) },
			ConditionalCreate: true,
			ListRequests:      s3.ListRequests,
		})
	})
	t.Run("gcs", func(t *testing.T) {
		gcs := storagetest.StartGCS(t)
		storagetest.RunConformance(t, storagetest.Backend{
			Name:              "gcs",
			Open:              func(t testing.TB) *storage.Bucket { return mustOpen(t, gcs.Bucket(t, newName())) },
			ConditionalCreate: true,
			ListRequests:      gcs.ListRequests,
		})
	})
	t.Run("azure", func(t *testing.T) {
		az := storagetest.StartAzure(t)
		storagetest.RunConformance(t, storagetest.Backend{
			Name:              "azure",
			Open:              func(t testing.TB) *storage.Bucket { return mustOpen(t, az.Bucket(t, newName())) },
			ConditionalCreate: true,
			ListRequests:      az.ListRequests,
		})
	})
}
