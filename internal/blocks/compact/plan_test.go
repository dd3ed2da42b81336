package compact

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/blocks/vparquet4"
	"github.com/tracectl/tracectl/internal/otlptest"
	"github.com/tracectl/tracectl/internal/storage"
	"github.com/tracectl/tracectl/internal/storage/storagetest"
)

var t0 = time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)

func meta(name string, end time.Duration, level uint32, size uint64) *block.Meta {
	id := uuid.NewSHA1(uuid.Nil, []byte(name))
	return &block.Meta{Format: block.FormatVParquet4, BlockID: id, TenantID: "t", StartTime: t0.Add(end - time.Minute),
		EndTime: t0.Add(end), CompactionLevel: level, Size: size, TotalObjects: int64(size / 100),
		DedicatedColumns: vparquet4.DefaultDedicatedColumns(), ReplicationFactor: 1}
}

func names(jobs []Job, byID map[uuid.UUID]string) []string {
	var out []string
	for _, j := range jobs {
		var in []string
		for _, m := range j.Inputs {
			in = append(in, byID[m.BlockID])
		}
		slices.Sort(in)
		out = append(out, fmt.Sprintf("L%d:%s", j.Level, strings.Join(in, "+")))
	}
	return out
}

func TestPlan(t *testing.T) {
	active := func() time.Time { return t0.Add(90 * time.Minute) } // 10:00 window still recent
	ended := func() time.Time { return t0.Add(5 * time.Hour) }
	other := vparquet4.DefaultDedicatedColumns()[:2]
	for _, tc := range []struct {
		name   string
		metas  []*block.Meta
		opts   PlanOptions
		noComp []string
		want   []string
	}{
		{"smallest first, up to max inputs", []*block.Meta{
			meta("a", 5*time.Minute, 0, 500), meta("b", 10*time.Minute, 0, 100), meta("c", 15*time.Minute, 0, 300),
			meta("d", 20*time.Minute, 0, 200), meta("e", 25*time.Minute, 0, 400), meta("f", 30*time.Minute, 0, 600),
		}, PlanOptions{Now: active}, nil, []string{"L1:b+c+d+e", "L1:a+f"}},
		{"windows do not mix", []*block.Meta{
			meta("a", 5*time.Minute, 0, 100), meta("b", 65*time.Minute, 0, 100), meta("c", 70*time.Minute, 0, 100),
		}, PlanOptions{Now: active}, nil, []string{"L1:b+c"}},
		{"levels apart while the window is recent", []*block.Meta{
			meta("a", 5*time.Minute, 0, 100), meta("b", 10*time.Minute, 1, 100), meta("c", 15*time.Minute, 1, 100), meta("d", 20*time.Minute, 2, 100),
		}, PlanOptions{Now: active}, nil, []string{"L2:b+c"}},
		{"levels merge once the window is old", []*block.Meta{
			meta("a", 5*time.Minute, 0, 100), meta("b", 10*time.Minute, 1, 100), meta("c", 15*time.Minute, 1, 100), meta("d", 20*time.Minute, 2, 100),
		}, PlanOptions{Now: ended}, nil, []string{"L2:b+c", "L3:a+d"}},
		{"byte cap", []*block.Meta{
			meta("a", 5*time.Minute, 0, 100), meta("b", 10*time.Minute, 0, 200), meta("c", 15*time.Minute, 0, 900), meta("d", 20*time.Minute, 0, 950),
		}, PlanOptions{Now: active, MaxBytes: 1000}, nil, []string{"L1:a+b"}},
		{"object cap", []*block.Meta{
			meta("a", 5*time.Minute, 0, 100), meta("b", 10*time.Minute, 0, 200), meta("c", 15*time.Minute, 0, 300),
		}, PlanOptions{Now: active, MaxObjects: 3}, nil, []string{"L1:a+b"}},
		{"min inputs", []*block.Meta{
			meta("a", 5*time.Minute, 0, 100), meta("b", 10*time.Minute, 0, 200),
		}, PlanOptions{Now: active, MinInputs: 3}, nil, nil},
		{"max inputs 2", []*block.Meta{
			meta("a", 5*time.Minute, 0, 100), meta("b", 10*time.Minute, 0, 200), meta("c", 15*time.Minute, 0, 300), meta("d", 20*time.Minute, 0, 400), meta("e", 25*time.Minute, 0, 500),
		}, PlanOptions{Now: active, MaxInputs: 2}, nil, []string{"L1:a+b", "L1:c+d"}},
		{"nocompact.flg", []*block.Meta{
			meta("a", 5*time.Minute, 0, 100), meta("b", 10*time.Minute, 0, 200), meta("c", 15*time.Minute, 0, 300),
		}, PlanOptions{Now: active}, []string{"a"}, []string{"L1:b+c"}},
		{"formats, dedicated columns, replication factor and tenant apart", func() []*block.Meta {
			v5, ded, rf, tn := meta("v5", 6*time.Minute, 0, 100), meta("ded", 7*time.Minute, 0, 100), meta("rf", 8*time.Minute, 0, 100), meta("tn", 9*time.Minute, 0, 100)
			v5.Format, ded.DedicatedColumns, rf.ReplicationFactor, tn.TenantID = block.FormatVParquet5, other, 0, "other"
			return []*block.Meta{meta("a", 5*time.Minute, 0, 100), v5, ded, rf, tn, meta("b", 10*time.Minute, 0, 200)}
		}(), PlanOptions{Now: ended}, nil, []string{"L1:a+b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			byID := map[uuid.UUID]string{}
			for _, n := range []string{"a", "b", "c", "d", "e", "f", "v5", "ded", "rf", "tn"} {
				byID[uuid.NewSHA1(uuid.Nil, []byte(n))] = n
			}
			nc := map[string]bool{}
			for _, n := range tc.noComp {
				nc[uuid.NewSHA1(uuid.Nil, []byte(n)).String()] = true
			}
			jobs, skipped := Plan("t", tc.metas, nc, tc.opts)
			if got := names(jobs, byID); !slices.Equal(got, tc.want) {
				t.Errorf("jobs %v, want %v", got, tc.want)
			}
			for _, j := range jobs {
				if !j.Start.Equal(j.Inputs[0].StartTime) || j.Traces == 0 || j.Bytes == 0 {
					t.Errorf("job summary %+v", j)
				}
			}
			if tc.noComp != nil && (len(skipped) != 1 || !strings.Contains(skipped[0].Reason, block.NoCompactName)) {
				t.Errorf("skipped %+v", skipped)
			}
		})
	}
	if err := (PlanOptions{MaxInputs: 1}).Validate(); err == nil {
		t.Error("max inputs 1 accepted")
	}
	if err := (PlanOptions{Window: time.Second}).Validate(); err == nil {
		t.Error("1s window accepted")
	}
}

// TestRetention retires the blocks older than the cutoff of one tenant
// only, and deletes them once the compacted retention passed.
func TestRetention(t *testing.T) {
	ctx := context.Background()
	b := storagetest.OpenMem(t)
	fixtureInto(t, b, "vparquet4", "")
	fixtureInto(t, b, "vparquet4", "other")
	now := time.Now()
	// Cut between the wave-1 block (ends 10:19:23) and the others.
	olderThan := now.Sub(time.Date(2026, 11, 20, 10, 20, 0, 0, time.UTC))
	wave1 := "b1db29cc-be7a-4217-88f9-2f72c202f0fa"

	dry, err := Retention(ctx, b, block.DefaultTenant, RetentionOptions{OlderThan: olderThan, DryRun: true, Now: func() time.Time { return now }})
	if err != nil || len(dry.Marked) != 1 || dry.Marked[0].BlockID.String() != wave1 {
		t.Fatalf("dry run: %v %+v", err, dry)
	}
	if n := len(liveMetas(t, b, block.DefaultTenant)); n != 3 {
		t.Fatalf("dry run changed the bucket: %d live", n)
	}
	res, err := Retention(ctx, b, block.DefaultTenant, RetentionOptions{OlderThan: olderThan, Now: func() time.Time { return now }})
	if err != nil || len(res.Marked) != 1 || len(res.Deleted) != 0 || !res.IndexUpdated {
		t.Fatalf("retention: %v %+v", err, res)
	}
	if n := len(liveMetas(t, b, block.DefaultTenant)); n != 2 {
		t.Errorf("%d live blocks, want 2", n)
	}
	if ok, _ := b.Exists(ctx, "single-tenant/"+wave1+"/data.parquet"); !ok {
		t.Error("retired block deleted before the compacted retention")
	}
	// Two hours later: deleted.
	later := now.Add(2 * time.Hour)
	res, err = Retention(ctx, b, block.DefaultTenant, RetentionOptions{OlderThan: olderThan + 2*time.Hour, Now: func() time.Time { return later }})
	if err != nil || len(res.Deleted) != 1 || res.Deleted[0].String() != wave1 {
		t.Fatalf("second run: %v %+v", err, res)
	}
	objs, _ := b.ListAll(ctx, "single-tenant/"+wave1+"/", "")
	if len(objs) != 0 {
		t.Errorf("objects left of the deleted block: %v", objs)
	}
	// The other tenant is untouched.
	if n := len(liveMetas(t, b, "other")); n != 3 {
		t.Errorf("other tenant has %d live blocks, want 3", n)
	}
	if objs, _ := b.ListAll(ctx, "other/"+wave1+"/", ""); len(objs) != 4 {
		t.Errorf("other tenant's copy of the block: %d objects", len(objs))
	}
	if _, err := Retention(ctx, b, "../x", RetentionOptions{}); err == nil {
		t.Error("invalid tenant accepted")
	}
}

// TestVerify: the fixtures are sound; damage is found and named, the
// repairable kind is repaired, damaged data is not.
func TestVerify(t *testing.T) {
	ctx := context.Background()
	for _, name := range []string{"vparquet4", "vparquet4-compacted", "vparquet3", "vparquet5"} {
		b := fixtureBucket(t, name)
		v, err := Verify(ctx, b, block.DefaultTenant, VerifyOptions{})
		if err != nil || v.Problems() != 0 || len(v.Blocks) == 0 {
			t.Errorf("%s: %v %+v", name, err, v)
		}
	}
	c := otlptest.LoadCorpus(t)
	wave1 := uuid.MustParse("b1db29cc-be7a-4217-88f9-2f72c202f0fa")
	for _, tc := range []struct {
		name       string
		damage     func(t *testing.T, b *bucketT)
		want       string
		repairable bool
	}{
		{"bloom shard missing", func(t *testing.T, b *bucketT) { b.del(block.BloomKey(block.DefaultTenant, wave1, 0)) }, "bloom-0: missing", true},
		{"bloom shard of another block", func(t *testing.T, b *bucketT) {
			other, _ := b.b.Read(context.Background(), "single-tenant/13a60468-ebb1-45a8-b97a-c8af8c7c3888/bloom-0")
			b.put(block.BloomKey(block.DefaultTenant, wave1, 0), other)
		}, "19 of 19 trace IDs missing", true},
		{"meta trace count", func(t *testing.T, b *bucketT) { b.editMeta(wave1, func(m *block.Meta) { m.TotalObjects = 7 }) }, "totalObjects 7, data.parquet has 19", true},
		{"meta time range", func(t *testing.T, b *bucketT) {
			b.editMeta(wave1, func(m *block.Meta) { m.EndTime = m.EndTime.Add(-time.Hour) })
		}, "does not cover", true},
		{"meta row groups and footer", func(t *testing.T, b *bucketT) {
			b.editMeta(wave1, func(m *block.Meta) { m.TotalRecords, m.FooterSize = 3, 99 })
		}, "totalRecords 3", true},
		{"index", func(t *testing.T, b *bucketT) {
			b.put(block.IndexKey(block.DefaultTenant, wave1), []byte(`{"rowGroups":[]}`))
		}, "index: does not list", true},
		{"data truncated", func(t *testing.T, b *bucketT) {
			data, _ := b.b.Read(context.Background(), block.DataKey(block.DefaultTenant, wave1))
			b.put(block.DataKey(block.DefaultTenant, wave1), data[:len(data)/2])
		}, "data.parquet: ", false},
		{"data missing", func(t *testing.T, b *bucketT) { b.del(block.DataKey(block.DefaultTenant, wave1)) }, "data.parquet: missing", false},
		{"meta unreadable", func(t *testing.T, b *bucketT) { b.put(block.MetaKey(block.DefaultTenant, wave1), []byte("{")) }, "meta.json", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := &bucketT{t: t, b: fixtureBucket(t, "vparquet4")}
			tc.damage(t, b)
			v, err := Verify(ctx, b.b, block.DefaultTenant, VerifyOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if v.Problems() != 1 {
				t.Fatalf("%d blocks with problems, want 1: %+v", v.Problems(), v.Blocks)
			}
			var rep BlockReport
			for _, r := range v.Blocks {
				if !r.OK() {
					rep = r
				}
			}
			if rep.BlockID != wave1.String() || !strings.Contains(strings.Join(rep.Problems, "\n"), tc.want) {
				t.Errorf("report %+v, want a problem with %q", rep, tc.want)
			}
			v, err = Verify(ctx, b.b, block.DefaultTenant, VerifyOptions{Repair: true, Blocks: []uuid.UUID{wave1}})
			if err != nil {
				t.Fatal(err)
			}
			if got := v.Problems() == 0; got != tc.repairable {
				t.Fatalf("repairable %v, want %v: %+v", got, tc.repairable, v.Blocks)
			}
			if !tc.repairable {
				return
			}
			if v, _ := Verify(ctx, b.b, block.DefaultTenant, VerifyOptions{}); v.Problems() != 0 {
				t.Errorf("problems after repair: %+v", v.Blocks)
			}
			assertQueryable(t, b.b, block.DefaultTenant, c)
		})
	}
	// A block named on the command line that does not exist.
	b := fixtureBucket(t, "vparquet4")
	v, _ := Verify(ctx, b, block.DefaultTenant, VerifyOptions{Blocks: []uuid.UUID{uuid.New()}})
	if v.Problems() != 1 || !strings.Contains(v.Blocks[0].Problems[0], "not found") {
		t.Errorf("absent block: %+v", v.Blocks)
	}
}

type bucketT struct {
	t *testing.T
	b *storage.Bucket
}

func (b *bucketT) put(key string, data []byte) {
	if err := b.b.Write(context.Background(), key, data); err != nil {
		b.t.Fatal(err)
	}
}

func (b *bucketT) del(key string) {
	if err := b.b.Delete(context.Background(), key); err != nil {
		b.t.Fatal(err)
	}
}

func (b *bucketT) editMeta(id uuid.UUID, fn func(*block.Meta)) {
	key := block.MetaKey(block.DefaultTenant, id)
	data, err := b.b.Read(context.Background(), key)
	if err != nil {
		b.t.Fatal(err)
	}
	m, err := block.ParseMeta(key, data)
	if err != nil {
		b.t.Fatal(err)
	}
	fn(m)
	js, _ := m.MarshalJSON()
	b.put(key, js)
}
