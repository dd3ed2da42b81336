package storage_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tracectl/tracectl/internal/storage"
)

const killedWriterEnv = "TRACECTL_TEST_KILLED_WRITER"

// staleBlock and liveBlock are block directories of the tests below.
const (
	staleBlock = "single-tenant/0e3a8a6c-44b6-4c3c-9a57-7a6f1c0b5a01/"
	liveBlock  = "single-tenant/5d1f2b7e-8c21-4a4e-b0f3-2c9e6d4a7b02/"
)

// TestFileTempOfKilledWriter: a process killed while writing an object to
// a file:// bucket leaves fileblob's temporary file in the block's
// directory. Listings hide it; TempFiles finds it, RemoveStaleTemp removes
// it once older than the cutoff but not a live writer's fresh one, and
// RemoveEmptyDirs then removes the directory.
func TestFileTempOfKilledWriter(t *testing.T) {
	if dir := os.Getenv(killedWriterEnv); dir != "" {
		killedWriterChild(dir)
		return
	}
	if testing.Short() {
		t.Skip("starts a process and kills it")
	}
	dir := t.TempDir()
	ctx := context.Background()

	// A writer killed with SIGKILL halfway through its object.
	cmd := exec.Command(os.Args[0], "-test.run=^TestFileTempOfKilledWriter$")
	cmd.Env = append(os.Environ(), killedWriterEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "writing") {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("child: %q %v", line, err)
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()

	b := mustOpen(t, "file://"+dir)
	defer b.Close()
	if objs, err := b.ListAll(ctx, "", ""); err != nil || len(objs) != 0 {
		t.Fatalf("listing after the kill = %v, %v; want nothing", objs, err)
	}
	temps, err := b.TempFiles(ctx, staleBlock)
	if err != nil || len(temps) != 1 || !strings.HasPrefix(temps[0].Key, staleBlock+"data.parquet.") || temps[0].Size == 0 {
		t.Fatalf("TempFiles after the kill = %+v, %v; want the killed writer's data.parquet.<hex>.tmp", temps, err)
	}
	stale := temps[0].Key
	if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(stale))); err != nil {
		t.Fatalf("the temporary file is not where its key says: %v", err)
	}

	// A live writer in another block, and an object beside it.
	if err := b.Write(ctx, liveBlock+"bloom-0", []byte("bloom")); err != nil {
		t.Fatal(err)
	}
	w, err := b.NewWriter(ctx, liveBlock+"data.parquet")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	if _, err := w.Write([]byte("live data")); err != nil {
		t.Fatal(err)
	}
	var live string
	for deadline := time.Now().Add(10 * time.Second); live == ""; {
		if ts, _ := b.TempFiles(ctx, liveBlock); len(ts) == 1 {
			live = ts[0].Key
		} else if time.Now().After(deadline) {
			t.Fatalf("the live writer's temporary file did not appear: %v", ts)
		} else {
			time.Sleep(10 * time.Millisecond)
		}
	}

	// The killed writer's file is a day old; the cutoff is 24h back.
	now := time.Now()
	old := now.Add(-25 * time.Hour)
	if err := os.Chtimes(filepath.Join(dir, filepath.FromSlash(stale)), old, old); err != nil {
		t.Fatal(err)
	}
	all, err := b.TempFiles(ctx, "single-tenant/")
	if err != nil || len(all) != 2 {
		t.Fatalf("TempFiles(single-tenant/) = %+v, %v; want 2", all, err)
	}
	removed, err := b.RemoveStaleTemp(ctx, "single-tenant/", now.Add(-24*time.Hour))
	if err != nil || len(removed) != 1 || removed[0] != stale {
		t.Fatalf("RemoveStaleTemp = %v, %v; want [%s]", removed, err, stale)
	}
	if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(live))); err != nil {
		t.Fatalf("the live writer's temporary file was removed: %v", err)
	}

	if err := b.RemoveEmptyDirs(ctx, staleBlock); err != nil {
		t.Fatal(err)
	}
	if err := b.RemoveEmptyDirs(ctx, liveBlock); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(staleBlock))); !os.IsNotExist(err) {
		t.Errorf("the emptied block directory is still there: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "single-tenant")); err != nil {
		t.Errorf("the tenant directory went too: %v", err)
	}

	// The live writer is unharmed.
	if _, err := w.Write([]byte(" and more")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("the live writer's Close: %v", err)
	}
	if got, err := b.Read(ctx, liveBlock+"data.parquet"); err != nil || string(got) != "live data and more" {
		t.Errorf("the live writer's object = %q, %v", got, err)
	}
	if ts, err := b.TempFiles(ctx, ""); err != nil || len(ts) != 0 {
		t.Errorf("TempFiles at the end = %v, %v; want none", ts, err)
	}
}

// killedWriterChild starts writing an object, says so, and waits to be
// killed.
func killedWriterChild(dir string) {
	ctx := context.Background()
	b, err := storage.Open(ctx, "file://"+dir)
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(1)
	}
	w, err := b.NewWriter(ctx, staleBlock+"data.parquet")
	if err != nil {
		fmt.Println("new writer:", err)
		os.Exit(1)
	}
	if _, err := w.Write(make([]byte, 64<<10)); err != nil {
		fmt.Println("write:", err)
		os.Exit(1)
	}
	// The pipe's reader has taken the bytes; wait until they are on disk.
	for {
		m, _ := filepath.Glob(filepath.Join(dir, filepath.FromSlash(staleBlock), "data.parquet.*.tmp"))
		if len(m) == 1 {
			if fi, err := os.Stat(m[0]); err == nil && fi.Size() > 0 {
				break
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	fmt.Println("writing")
	time.Sleep(time.Minute)
	os.Exit(1)
}

// TestTempFilesOtherSchemes: only file:// has temporary files.
func TestTempFilesOtherSchemes(t *testing.T) {
	ctx := context.Background()
	b := mustOpen(t, "mem://")
	defer b.Close()
	if err := b.Write(ctx, "t/x.0123456789abcdef.tmp", []byte("an object with a temp-like name")); err != nil {
		t.Fatal(err)
	}
	if ts, err := b.TempFiles(ctx, ""); err != nil || ts != nil {
		t.Errorf("TempFiles on mem:// = %v, %v", ts, err)
	}
	if rm, err := b.RemoveStaleTemp(ctx, "", time.Now().Add(time.Hour)); err != nil || rm != nil {
		t.Errorf("RemoveStaleTemp on mem:// = %v, %v", rm, err)
	}
	if err := b.RemoveEmptyDirs(ctx, "t/"); err != nil {
		t.Error(err)
	}
	if ok, _ := b.Exists(ctx, "t/x.0123456789abcdef.tmp"); !ok {
		t.Error("mem:// object removed")
	}
}
