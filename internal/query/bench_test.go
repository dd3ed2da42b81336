package query

import (
	"io"
	"net/http"
	"sort"
	"testing"
	"time"
)

// benchAPI measures one warm request over HTTP on 127.0.0.1 against the
// three Tempo-written fixture blocks (file bucket): what the query layer
// adds on top of the engine and the block reader. It reports p50 and p99
// latencies besides ns/op.
func benchAPI(b *testing.B, path string, headers ...string) {
	bucket, _ := fixtureBucket(b, "tempo", "vparquet4")
	_, base := startAPI(b, Config{Bucket: bucket})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	do := func() {
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("%s: %d", path, resp.StatusCode)
		}
	}
	for range 3 { // warm: block list, bloom shards, footers
		do()
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for b.Loop() {
		t0 := time.Now()
		do()
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

func BenchmarkTraceByIDV2Protobuf(b *testing.B) {
	benchAPI(b, "/api/v2/traces/594dbe7e6cff645eb51079037485e52a", "Accept", "application/protobuf")
}

func BenchmarkTraceByIDV2JSON(b *testing.B) {
	benchAPI(b, "/api/v2/traces/594dbe7e6cff645eb51079037485e52a")
}

func BenchmarkSearchService(b *testing.B) {
	benchAPI(b, "/api/search?q=%7Bresource.service.name%3D%22frontend%22%7D&start=1795165200&end=1795172400")
}

func BenchmarkTagValuesService(b *testing.B) {
	benchAPI(b, "/api/v2/search/tag/resource.service.name/values?limit=5000&q=%7B%7D")
}

func BenchmarkTagNames(b *testing.B) {
	benchAPI(b, "/api/v2/search/tags?limit=5000")
}
