package main

import (
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"
)

func TestApplyMemoryLimit(t *testing.T) {
	prev := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(prev) })
	log := slog.New(slog.DiscardHandler)
	dir := t.TempDir()
	oldPath := cgroupMemoryMax
	t.Cleanup(func() { cgroupMemoryMax = oldPath })

	for _, tc := range []struct {
		name     string
		flag     int64
		explicit bool
		gomem    string
		cgroup   string // "" = no file
		want     int64
	}{
		{"default, no cgroup", defaultMemoryLimit, false, "", "", defaultMemoryLimit},
		{"default, unlimited cgroup", defaultMemoryLimit, false, "", "max\n", defaultMemoryLimit},
		{"default under a small cgroup", defaultMemoryLimit, false, "", "536870912\n", 536870912 / 10 * 9},
		{"default under a large cgroup", defaultMemoryLimit, false, "", "8589934592\n", defaultMemoryLimit},
		{"explicit wins over the cgroup", 2 << 30, true, "", "536870912\n", 2 << 30},
		{"explicit zero: none", 0, true, "", "", 0},
		{"GOMEMLIMIT when the flag is not given", defaultMemoryLimit, false, "700MiB", "", 700 << 20},
		{"flag over GOMEMLIMIT", 300 << 20, true, "700MiB", "", 300 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cgroupMemoryMax = filepath.Join(dir, "missing")
			if tc.cgroup != "" {
				cgroupMemoryMax = filepath.Join(dir, "memory.max")
				if err := os.WriteFile(cgroupMemoryMax, []byte(tc.cgroup), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			t.Setenv("GOMEMLIMIT", tc.gomem)
			if tc.gomem != "" {
				debug.SetMemoryLimit(700 << 20) // what the runtime read at start
			}
			if got := applyMemoryLimit(tc.flag, tc.explicit, log); got != tc.want {
				t.Errorf("limit = %d, want %d", got, tc.want)
			}
			cur := debug.SetMemoryLimit(-1)
			want := tc.want
			if want == 0 {
				want = int64(^uint64(0) >> 1)
			}
			if cur != want {
				t.Errorf("runtime limit = %d, want %d", cur, want)
			}
		})
	}
}

func TestApplyBatchGC(t *testing.T) {
	prev := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(prev) })
	for _, tc := range []struct {
		name  string
		gogc  string
		limit int64
		want  int
	}{
		{"a limit and no GOGC: the batch target", "", 900 << 20, batchGCPercent},
		{"no limit: the default stays", "", 0, 100},
		{"GOGC given: it stays", "50", 900 << 20, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			debug.SetGCPercent(100)
			t.Setenv("GOGC", tc.gogc)
			if got := applyBatchGC(tc.limit); got != tc.want {
				t.Errorf("applyBatchGC = %d, want %d", got, tc.want)
			}
			if cur := debug.SetGCPercent(100); cur != tc.want {
				t.Errorf("runtime GC percent = %d, want %d", cur, tc.want)
			}
		})
	}
}
