package wal

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const (
	helperDirEnv   = "TRACECTL_WAL_HELPER_DIR"
	helperBaseEnv  = "TRACECTL_WAL_HELPER_BASE"
	helperDelayEnv = "TRACECTL_WAL_HELPER_DELAY"
)

// crashRecord is the record with id: its tenant and payload follow from the
// id, so the parent can check each replayed record byte for byte.
func crashRecord(id uint64) (string, []byte) {
	n := 8 + int(id*2654435761%12000)
	p := payloadFor(id, n)
	binary.LittleEndian.PutUint64(p, id)
	return fmt.Sprint("tenant-", id%3), p
}

// TestHelperProcess is the child of TestCrashKill: it appends as fast as it
// can from several goroutines with SyncGroup and prints "ack ID" after each
// Append returns, until it is killed.
func TestHelperProcess(t *testing.T) {
	dir := os.Getenv(helperDirEnv)
	if dir == "" {
		t.Skip("the child process of TestCrashKill")
	}
	base, _ := strconv.ParseUint(os.Getenv(helperBaseEnv), 10, 64)
	delay, _ := time.ParseDuration(os.Getenv(helperDelayEnv))
	w, err := Open(dir, Options{Sync: SyncGroup, GroupDelay: delay, SegmentBytes: 128 << 10})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var mu sync.Mutex
	say := func(line string) {
		mu.Lock()
		defer mu.Unlock()
		os.Stdout.Write([]byte(line)) // one write per line: no torn lines
	}
	say("ready\n")
	var next atomic.Uint64
	next.Store(base)
	for range 8 {
		go func() {
			for {
				id := next.Add(1)
				tenant, p := crashRecord(id)
				if _, err := w.Append(context.Background(), tenant, p); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(3)
				}
				say("ack " + strconv.FormatUint(id, 10) + "\n")
			}
		}()
	}
	time.Sleep(20 * time.Second) // the parent kills us long before this
	os.Exit(4)
}

func TestCrashKill(t *testing.T) {
	if runtime.GOOS == "windows" || testing.Short() {
		t.Skip("needs SIGKILL; skipped with -short")
	}
	dir := t.TempDir()
	acked := map[uint64]bool{}
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	const trials = 6
	for trial := range trials {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
		// Half the trials use a short group delay, so the kill is more
		// likely to land inside a write or an fsync than between them.
		groupDelay := DefaultGroupDelay
		if trial%2 == 1 {
			groupDelay = 200 * time.Microsecond
		}
		cmd.Env = append(os.Environ(), helperDirEnv+"="+dir, helperBaseEnv+"="+strconv.Itoa(trial*1_000_000_000),
			helperDelayEnv+"="+groupDelay.String())
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		ready := make(chan struct{})
		lines := make(chan []uint64, 1)
		go func() {
			var ids []uint64
			br := bufio.NewReader(out)
			for {
				line, err := br.ReadString('\n')
				if err != nil { // a line without its newline is not an acknowledgement
					break
				}
				line = strings.TrimSuffix(line, "\n")
				if line == "ready" {
					close(ready)
					continue
				}
				if id, ok := strings.CutPrefix(line, "ack "); ok {
					n, err := strconv.ParseUint(id, 10, 64)
					if err == nil {
						ids = append(ids, n)
					}
				}
			}
			io.Copy(io.Discard, out)
			lines <- ids
		}()
		select {
		case <-ready:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("trial %d: child never became ready; stderr: %s", trial, stderr.String())
		}
		delay := time.Duration(30+r.IntN(250)) * time.Millisecond
		time.Sleep(delay)
		if err := cmd.Process.Kill(); err != nil { // SIGKILL
			t.Fatal(err)
		}
		ids := <-lines
		cmd.Wait()
		if stderr.Len() > 0 {
			t.Fatalf("trial %d: child failed: %s", trial, stderr.String())
		}
		for _, id := range ids {
			acked[id] = true
		}

		w, err := Open(dir, Options{})
		if err != nil {
			t.Fatalf("trial %d: Open after kill: %v", trial, err)
		}
		seen := map[uint64]bool{}
		st, err := w.Replay(func(tenant string, payload []byte, pos Position) error {
			if len(payload) < 8 {
				return fmt.Errorf("record at %v is %d bytes, too short to hold an id", pos, len(payload))
			}
			id := binary.LittleEndian.Uint64(payload)
			wantTenant, want := crashRecord(id)
			if tenant != wantTenant || !bytes.Equal(payload, want) {
				return fmt.Errorf("record %d at %v is damaged", id, pos)
			}
			if seen[id] {
				return fmt.Errorf("record %d replayed twice (again at %v)", id, pos)
			}
			seen[id] = true
			return nil
		})
		if err != nil {
			t.Fatalf("trial %d: %v", trial, err)
		}
		if st.SkippedBytes != 0 {
			t.Fatalf("trial %d: %d bytes skipped as corrupt in sealed segments: %+v", trial, st.SkippedBytes, st.Damage)
		}
		missing := 0
		for id := range acked {
			if !seen[id] {
				missing++
			}
		}
		if missing > 0 {
			t.Fatalf("trial %d: %d of %d acknowledged records missing after kill -9", trial, missing, len(acked))
		}
		t.Logf("trial %d (group delay %v): killed after %v; %d acknowledged this run, %d replayed in all, torn tail %d bytes",
			trial, groupDelay, delay, len(ids), len(seen), st.TruncatedBytes)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if len(acked) == 0 {
		t.Fatal("no append was acknowledged in any trial; the test proved nothing")
	}
}
