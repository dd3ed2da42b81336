package main

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"time"
)

// The machine is shared (and a VM: no steal time is accounted), so a CPU
// second is not always the same amount of work. Before each measurement the
// harness runs a fixed CPU- and memory-bound workload on the server's CPU
// and reports its CPU time: if it varies as much as the results, the
// variation is the machine's, not tracectl's.

type calibration struct {
	CPUS  float64 `json:"cpu_s"`
	WallS float64 `json:"wall_s"`
}

// calibrateWork is the fixed workload: sorting 4M random integers and
// hashing 64 MB, allocating as it goes.
func calibrateWork() {
	r := rand.New(rand.NewPCG(1, 2))
	v := make([]uint64, 4<<20)
	for i := range v {
		v[i] = r.Uint64()
	}
	slices.Sort(v)
	buf := make([]byte, 64<<20)
	for i := range buf {
		buf[i] = byte(i * 31)
	}
	sum := sha256.Sum256(buf)
	if sum[0] == 0 && v[0] == 1 {
		fmt.Fprint(os.Stderr, "")
	}
}

// runCalibrationChild is the -calibrate mode: run the workload, print JSON.
func runCalibrationChild() int {
	w0, c0 := time.Now(), selfCPU()
	calibrateWork()
	out, _ := json.Marshal(calibration{CPUS: round(selfCPU()-c0, 4), WallS: round(time.Since(w0).Seconds(), 4)})
	fmt.Println(string(out))
	return 0
}

// calibrate runs the workload in a child pinned to cpu (unpinned if cpu < 0).
func calibrate(cpu int, taskset string) (calibration, error) {
	self, err := os.Executable()
	if err != nil {
		return calibration{}, err
	}
	var cmd *exec.Cmd
	if cpu >= 0 && taskset != "" {
		cmd = exec.Command(taskset, "-c", strconv.Itoa(cpu), self, "-calibrate")
	} else {
		cmd = exec.Command(self, "-calibrate")
	}
	cmd.Env = append(os.Environ(), "GOMAXPROCS=1", "GOGC=100")
	out, err := cmd.Output()
	if err != nil {
		return calibration{}, fmt.Errorf("calibration: %w", err)
	}
	var c calibration
	if err := json.Unmarshal(out, &c); err != nil {
		return calibration{}, fmt.Errorf("calibration output %q: %w", out, err)
	}
	return c, nil
}
