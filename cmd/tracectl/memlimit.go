package main

import (
	"log/slog"
	"os"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
)

// defaultMemoryLimit is serve's soft memory limit when neither
// --memory-limit nor GOMEMLIMIT is given. The server's defaults (64 MiB
// head, one block in flight) keep about 350-550 MB live; without a limit the
// Go heap grows to twice that before collecting, which took a sustained
// 48,000 spans/s past 1.1 GB of RSS. With it, the collector works harder
// only as the process nears the limit.
const defaultMemoryLimit = 900 << 20

// cgroupMemoryMax is where cgroup v2 publishes the container's hard limit.
var cgroupMemoryMax = "/sys/fs/cgroup/memory.max"

// addMemoryLimitFlag adds --memory-limit to a command.
func addMemoryLimitFlag(cmd *cobra.Command, dst *int64) {
	cmd.Flags().Int64Var(dst, "memory-limit", defaultMemoryLimit,
		"soft memory limit in bytes for the Go runtime (0: none); default 900 MiB, or 90% of the container's limit if lower; GOMEMLIMIT wins when this flag is not given (env TRACECTL_MEMORY_LIMIT)")
}

// applyBatchMemory sets a batch command's soft memory limit (as serve's)
// and, under it, the batch GC target (applyBatchGC).
func applyBatchMemory(cmd *cobra.Command, limit int64, log *slog.Logger) {
	applyBatchGC(applyMemoryLimit(limit, cmd.Flags().Changed("memory-limit"), log))
}

// applyMemoryLimit sets the runtime's soft memory limit for a command and
// returns it (0: none) with where it came from.
func applyMemoryLimit(limit int64, explicit bool, log *slog.Logger) int64 {
	src := "flag"
	switch {
	case !explicit && os.Getenv("GOMEMLIMIT") != "":
		// The runtime already read it.
		cur := debug.SetMemoryLimit(-1)
		log.Info("memory limit", "bytes", cur, "source", "GOMEMLIMIT")
		return cur
	case !explicit:
		src = "default"
		if c := cgroupLimit(); c > 0 && c/10*9 < limit {
			limit, src = c/10*9, "90% of the cgroup limit"
		}
	}
	if limit <= 0 {
		debug.SetMemoryLimit(int64(^uint64(0) >> 1))
		log.Info("memory limit", "bytes", "none", "source", src)
		return 0
	}
	debug.SetMemoryLimit(limit)
	log.Info("memory limit", "bytes", limit, "source", src)
	return limit
}

// batchGCPercent is the GC target of batch commands (migrate) when GOGC is
// not set: the heap may grow to 5x what is live before a collection, which
// took a 1M-span Jaeger migration from 47,755 to 59,479 spans/s on 2 cores
// (BENCHMARKS.md). The soft memory limit bounds it: near the limit the
// runtime collects as often as it must, whatever this target says.
const batchGCPercent = 400

// applyBatchGC raises the GC target for a batch command when GOGC is not
// set and a memory limit bounds the heap; without a limit it leaves the
// runtime's default, since the heap would then grow unbounded. It returns
// the GC percent in force.
func applyBatchGC(limit int64) int {
	if os.Getenv("GOGC") != "" || limit <= 0 {
		cur := debug.SetGCPercent(100)
		debug.SetGCPercent(cur)
		return cur
	}
	debug.SetGCPercent(batchGCPercent)
	return batchGCPercent
}

// cgroupLimit is the cgroup v2 memory limit, 0 when there is none.
func cgroupLimit() int64 {
	b, err := os.ReadFile(cgroupMemoryMax)
	if err != nil {
		return 0
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil { // "max"
		return 0
	}
	return n
}
