//go:build !linux

package main

import (
	"errors"
	"time"
)

type fsEvent struct {
	Dir, Name string
	Removed   bool
	At        time.Time
}

type dirWatcher struct{ Events chan fsEvent }

func newDirWatcher(string) (*dirWatcher, error) {
	return nil, errors.New("the compact and migrate targets key kills to bucket events with inotify: Linux only")
}

func (w *dirWatcher) Close() {}
func (w *dirWatcher) drain() {}
