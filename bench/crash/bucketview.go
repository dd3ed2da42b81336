package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tracectl/tracectl/internal/blocks"
	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/blocks/compact"
	"github.com/tracectl/tracectl/internal/blocks/vparquet4"
	"github.com/tracectl/tracectl/internal/storage"
)

// bucketView is what the readers make of a bucket's default tenant at one
// moment: the spans a reader returns (each block's rows converted as
// readers do, the parts of a trace across blocks merged with
// blocks.Combine) and the raw stored copies. The compact and migrate
// targets judge it against the spans they expect; the serve target's
// verify counts it against the spans it sent (split by protocol).
type bucketView struct {
	Blocks           int
	Incomplete       int
	Compacted        int // blocks with meta.compacted.json only (readers ignore them)
	Reader           map[spanKey]int
	Raw              map[spanKey]int
	RawExtraSame     int // copies beyond the first inside one block
	RawExtraOther    int // copies beyond the first in other blocks
	Unreadable       []string
	VerifyProblems   []string
	Metas            []*block.Meta
	Parts            map[[16]byte][]ptrace.Traces
	MaxLevel         uint32
	TracesInManyBlks int // traces a reader combines from several blocks
}

// readBucket lists and reads every live block of the default tenant, and
// runs compact.Verify (what `tracectl blocks verify` runs) when runVerify.
func readBucket(ctx context.Context, b *storage.Bucket, runVerify bool) (*bucketView, error) {
	v := &bucketView{Reader: map[spanKey]int{}, Raw: map[spanKey]int{}, Parts: map[[16]byte][]ptrace.Traces{}}
	l, err := blocks.List(ctx, b, block.DefaultTenant, blocks.ListOptions{IncludeCompacted: true})
	if err != nil {
		return nil, err
	}
	v.Incomplete = l.Incomplete
	for _, p := range l.Problems {
		v.Unreadable = append(v.Unreadable, p.Error())
	}
	blocksOf := map[spanKey]int{}
	for _, bi := range l.Blocks {
		if bi.Compacted {
			v.Compacted++
			continue
		}
		m := bi.Meta
		v.Blocks++
		v.Metas = append(v.Metas, m)
		v.MaxLevel = max(v.MaxLevel, m.CompactionLevel)
		if m.Format != block.FormatVParquet4 {
			v.Unreadable = append(v.Unreadable, fmt.Sprintf("block %s: format %q, not vparquet4", m.BlockID, m.Format))
			continue
		}
		blk := vparquet4.OpenBlock(ctx, b, m)
		var rows int64
		var blkRaw []spanKey
		blkParts := map[[16]byte]ptrace.Traces{}
		var readErr error
		for tr, err := range blk.Iterate(ctx) {
			if err != nil {
				readErr = err
				break
			}
			rows++
			all, err := blk.OTLPAll(tr)
			if err != nil {
				readErr = err
				break
			}
			forEachSpan(all, func(k spanKey) { blkRaw = append(blkRaw, k) })
			view, err := blk.OTLP(tr)
			if err != nil {
				readErr = err
				break
			}
			blkParts[tr.ID()] = view
		}
		if readErr == nil && rows != m.TotalObjects {
			readErr = fmt.Errorf("%d rows read, meta.json says %d traces", rows, m.TotalObjects)
		}
		if readErr != nil {
			v.Unreadable = append(v.Unreadable, fmt.Sprintf("block %s: %v", m.BlockID, readErr))
			continue
		}
		inBlock := map[spanKey]int{}
		for _, k := range blkRaw {
			v.Raw[k]++
			inBlock[k]++
		}
		for k, n := range inBlock {
			v.RawExtraSame += n - 1
			blocksOf[k]++
		}
		for id, td := range blkParts {
			v.Parts[id] = append(v.Parts[id], td)
		}
	}
	for _, n := range blocksOf {
		v.RawExtraOther += n - 1
	}
	for _, ps := range v.Parts {
		if len(ps) > 1 {
			v.TracesInManyBlks++
		}
		forEachSpan(blocks.Combine(ps...), func(k spanKey) { v.Reader[k]++ })
	}
	if runVerify {
		vr, err := compact.Verify(ctx, b, block.DefaultTenant, compact.VerifyOptions{})
		if err != nil {
			return nil, fmt.Errorf("compact.Verify: %w", err)
		}
		for _, br := range vr.Blocks {
			for _, p := range br.Problems {
				v.VerifyProblems = append(v.VerifyProblems, br.BlockID+": "+p)
			}
		}
	}
	return v, nil
}

// judgement compares a bucketView with the spans expected in it.
type judgement struct {
	Expected      int      `json:"expected_spans"`
	Found         int      `json:"found_spans"` // distinct spans a reader returns
	Lost          int      `json:"lost"`
	Duplicated    int      `json:"duplicated"` // returned more than once by a reader
	Unknown       int      `json:"unknown"`
	RawDuplicated int      `json:"raw_duplicated"` // spans stored more than once
	RawExtra      int      `json:"raw_extra_copies"`
	RawExtraSame  int      `json:"raw_extra_copies_same_block"`
	RawExtraOther int      `json:"raw_extra_copies_other_blocks"`
	Unreadable    int      `json:"unreadable_blocks"`
	Problems      []string `json:"problems,omitempty"` // first lost/dup/unknown spans and unreadable blocks
}

func (j *judgement) ok() bool {
	return j.Lost == 0 && j.Duplicated == 0 && j.Unknown == 0 && j.Unreadable == 0
}

func judge(v *bucketView, expected map[spanKey]bool) judgement {
	j := judgement{Expected: len(expected), RawExtraSame: v.RawExtraSame, RawExtraOther: v.RawExtraOther,
		Unreadable: len(v.Unreadable) + len(v.VerifyProblems)}
	add := func(s string) {
		if len(j.Problems) < 20 {
			j.Problems = append(j.Problems, s)
		}
	}
	var keys []spanKey
	for k := range expected {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(a, b int) bool { return keys[a].String() < keys[b].String() })
	for _, k := range keys {
		switch n := v.Reader[k]; {
		case n == 0:
			j.Lost++
			add("LOST " + k.String() + fmt.Sprintf(" (stored %d)", v.Raw[k]))
		case n > 1:
			j.Duplicated++
			add("DUP " + k.String() + fmt.Sprintf(" returned %d", n))
		}
	}
	for k, n := range v.Reader {
		if n > 0 {
			j.Found++
		}
		if !expected[k] {
			j.Unknown++
			add("UNKNOWN " + k.String())
		}
	}
	for _, n := range v.Raw {
		if n > 1 {
			j.RawDuplicated++
			j.RawExtra += n - 1
		}
	}
	for _, w := range v.Unreadable {
		add("UNREADABLE " + w)
	}
	for _, w := range v.VerifyProblems {
		add("VERIFY " + w)
	}
	return j
}

// findCheck looks up to n traces up with blocks.FindTrace (bloom filter +
// trace-by-ID, the path `tracectl get` and the API take) and compares
// with the scan; it returns the traces checked and the mismatches.
func findCheck(ctx context.Context, b *storage.Bucket, v *bucketView, n int) (int, []string) {
	var ids [][16]byte
	for id := range v.Parts {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return string(ids[i][:]) < string(ids[j][:]) })
	if len(ids) > n {
		step := len(ids) / n
		var s [][16]byte
		for i := 0; i < len(ids) && len(s) < n; i += step {
			s = append(s, ids[i])
		}
		ids = s
	}
	cache := blocks.NewBloomCache(64 << 20)
	var bad []string
	for _, id := range ids {
		res, err := blocks.FindTrace(ctx, b, v.Metas, block.TraceID(id), blocks.FindOptions{Blooms: cache, Concurrency: 2})
		got := map[spanKey]int{}
		if err == nil {
			forEachSpan(res.Trace, func(k spanKey) { got[k]++ })
		}
		want := map[spanKey]int{}
		forEachSpan(blocks.Combine(v.Parts[id]...), func(k spanKey) { want[k]++ })
		if err != nil || len(got) != len(want) || !sameCounts(got, want) {
			bad = append(bad, fmt.Sprintf("trace %x: FindTrace returned %d spans, the block scan %d (err %v)", id, len(got), len(want), err))
		}
	}
	return len(ids), bad
}

// expireLease makes the newest compaction lease of the default tenant
// expire now, if a killed process left it held: the state the bucket is
// in --lease-ttl after the kill, without waiting for it. The next
// compactor then takes the lease over (a new generation) as it would
// after the TTL. It returns whether a held lease was expired.
func expireLease(ctx context.Context, b *storage.Bucket) (bool, error) {
	const prefix = block.DefaultTenant + "/compactor.lease."
	objs, err := b.ListAll(ctx, prefix, "")
	if err != nil {
		return false, err
	}
	var top string
	for _, o := range objs {
		if o.Key > top && !strings.HasSuffix(o.Key, ".tmp") {
			top = o.Key
		}
	}
	if top == "" {
		return false, nil
	}
	data, err := b.Read(ctx, top)
	if err != nil {
		return false, err
	}
	var d map[string]any
	if err := json.Unmarshal(data, &d); err != nil {
		return false, nil // damaged: counts as expired already
	}
	if d["released"] == true {
		return false, nil
	}
	d["expires"] = time.Now().Add(-time.Second).UTC().Format(time.RFC3339Nano)
	data, _ = json.Marshal(d)
	return true, b.Write(ctx, top, data)
}

// buildTracectl builds ./cmd/tracectl into dir unless bin is set.
func buildTracectl(root, dir string) (string, error) {
	bin := filepath.Join(dir, "tracectl")
	logf("building tracectl ...")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/tracectl")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/tracectl: %v\n%s", err, out)
	}
	return bin, nil
}

// writeSummary writes v as indented JSON to out (default
// bench/crash/results/<name>-<UTC time>.json, or <UTC time>.json when name
// is "") and returns the path.
func writeSummary(root, out, name string, started time.Time, v any) (string, error) {
	if out == "" {
		file := started.UTC().Format("20060102T150405Z") + ".json"
		if name != "" {
			file = name + "-" + file
		}
		out = filepath.Join(root, "bench", "crash", "results", file)
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return "", err
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return "", err
	}
	return out, os.WriteFile(out, append(b, '\n'), 0o644)
}
