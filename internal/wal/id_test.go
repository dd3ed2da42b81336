package wal

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"
)

// The WAL ID is made once, durably, and kept across opens; every
// directory gets its own; a missing (older WAL) or malformed file gets a
// new one without touching the segments.
func TestWALID(t *testing.T) {
	dir := t.TempDir()
	w := openT(t, dir, Options{})
	id := w.ID()
	if id == uuid.Nil {
		t.Fatal("no WAL ID")
	}
	appendT(t, w, "t", []byte("one"))
	w.Close()
	data, err := os.ReadFile(filepath.Join(dir, idFile))
	if err != nil || strings.TrimSpace(string(data)) != id.String() {
		t.Fatalf("ID file holds %q (%v), want %s", data, err, id)
	}
	if _, err := os.Stat(filepath.Join(dir, idFile+".tmp")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temp file left behind: %v", err)
	}

	w = openT(t, dir, Options{})
	if w.ID() != id {
		t.Fatalf("ID changed across opens: %s, then %s", id, w.ID())
	}
	w.Close()
	if other := openT(t, t.TempDir(), Options{}); other.ID() == id {
		t.Fatal("two directories share an ID")
	}

	for _, tc := range []struct{ name, content string }{{"missing", ""}, {"malformed", "not-a-uuid\n"}} {
		if tc.content == "" {
			os.Remove(filepath.Join(dir, idFile))
		} else if err := os.WriteFile(filepath.Join(dir, idFile), []byte(tc.content), 0o644); err != nil {
			t.Fatal(err)
		}
		w = openT(t, dir, Options{})
		if w.ID() == uuid.Nil || w.ID() == id {
			t.Errorf("%s ID file: got %s", tc.name, w.ID())
		}
		if got, _ := replayAll(t, w); len(got) != 1 || string(got[0].payload) != "one" {
			t.Errorf("%s ID file: replayed %d records, want the one", tc.name, len(got))
		}
		id = w.ID()
		w.Close()
	}
}

// A marker is written when the WAL is full, so that a full WAL can still
// be cut and flushed; it stays bounded in size.
func TestAppendMarkerOnAFullWAL(t *testing.T) {
	dir := t.TempDir()
	w := openT(t, dir, Options{MaxBytes: 400, Sync: SyncAlways})
	for {
		if _, err := w.Append(context.Background(), "t", make([]byte, 50)); err != nil {
			if !errors.Is(err, ErrFull) {
				t.Fatal(err)
			}
			break
		}
	}
	if _, err := w.Cut(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.AppendMarker(context.Background(), "", []byte("cut")); err != nil {
		t.Fatalf("marker on a full WAL: %v", err)
	}
	if _, err := w.AppendMarker(context.Background(), "", make([]byte, MaxMarkerBytes+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized marker: %v, want ErrTooLarge", err)
	}
	w.Close()
	w = openT(t, dir, Options{})
	got, _ := replayAll(t, w)
	if last := got[len(got)-1]; last.tenant != "" || string(last.payload) != "cut" {
		t.Fatalf("last record replayed is %q/%q, want the marker", last.tenant, last.payload)
	}
}
