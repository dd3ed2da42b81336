package main

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/tracectl/tracectl/internal/storage"
)

// The compact target's seeding and judging, end to end on a file://
// bucket: what the seeder writes reads back exactly (spans written into
// two blocks are returned once, raw copies are counted), and the judgement
// reports a span that went missing.
func TestSeederReadsBackAsWritten(t *testing.T) {
	ctx := context.Background()
	b, err := storage.Open(ctx, "file://"+t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	sd := newSeeder(7, rng, b)
	for range 12 {
		if err := sd.writeBlock(ctx); err != nil {
			t.Fatal(err)
		}
	}
	v, err := readBucket(ctx, b, true)
	if err != nil {
		t.Fatal(err)
	}
	j := judge(v, sd.expected)
	if !j.ok() || j.Found != len(sd.expected) || v.Blocks != 12 {
		t.Fatalf("seeded bucket: %+v, %d blocks", j, v.Blocks)
	}
	if sd.twice == 0 || j.RawExtraOther != sd.twice || v.TracesInManyBlks == 0 {
		t.Errorf("spans written twice %d, raw extra copies in other blocks %d, traces in several blocks %d", sd.twice, j.RawExtraOther, v.TracesInManyBlks)
	}
	if n, bad := findCheck(ctx, b, v, 50); n != 50 || len(bad) > 0 {
		t.Errorf("findCheck: %d checked, %v", n, bad)
	}
	var extra spanKey
	extra.Span[7] = 1
	sd.expected[extra] = true
	if j := judge(v, sd.expected); j.Lost != 1 || j.ok() {
		t.Errorf("a missing span: %+v", j)
	}
	delete(sd.expected, extra)
	for k := range sd.expected {
		delete(sd.expected, k)
		break
	}
	if j := judge(v, sd.expected); j.Unknown != 1 || j.ok() {
		t.Errorf("a span not expected: %+v", j)
	}
}
