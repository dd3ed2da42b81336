//go:build linux

package main

import (
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// fsEvent is a file landing in (or leaving) a watched directory: fileblob
// writes a temporary file and renames it, so a landed object is a rename
// (IN_MOVED_TO) or a create.
type fsEvent struct {
	Dir, Name string
	Removed   bool
	At        time.Time
}

// dirWatcher watches a directory and its subdirectories (added as they
// appear) with inotify, so that kills can be keyed to objects landing
// (meta.json, meta.compacted.json, the compaction journal, a checkpoint)
// within a millisecond, without polling the bucket.
type dirWatcher struct {
	f      *os.File
	fd     int
	mu     sync.Mutex
	dirs   map[int32]string
	Events chan fsEvent
	done   chan struct{}
}

const watchMask = syscall.IN_CREATE | syscall.IN_MOVED_TO | syscall.IN_DELETE

func newDirWatcher(root string) (*dirWatcher, error) {
	fd, err := syscall.InotifyInit1(syscall.IN_NONBLOCK | syscall.IN_CLOEXEC)
	if err != nil {
		return nil, err
	}
	w := &dirWatcher{f: os.NewFile(uintptr(fd), "inotify"), fd: fd, dirs: map[int32]string{}, Events: make(chan fsEvent, 4096), done: make(chan struct{})}
	err = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		return w.add(p)
	})
	if err != nil {
		w.f.Close()
		return nil, err
	}
	go w.loop()
	return w, nil
}

func (w *dirWatcher) add(dir string) error {
	wd, err := syscall.InotifyAddWatch(w.fd, dir, watchMask)
	if err != nil {
		return err
	}
	w.mu.Lock()
	w.dirs[int32(wd)] = dir
	w.mu.Unlock()
	return nil
}

func (w *dirWatcher) loop() {
	defer close(w.done)
	buf := make([]byte, 64<<10)
	for {
		n, err := w.f.Read(buf)
		if err != nil {
			return
		}
		now := time.Now()
		for off := 0; off+syscall.SizeofInotifyEvent <= n; {
			ev := (*syscall.InotifyEvent)(unsafe.Pointer(&buf[off]))
			nameBytes := buf[off+syscall.SizeofInotifyEvent : off+syscall.SizeofInotifyEvent+int(ev.Len)]
			off += syscall.SizeofInotifyEvent + int(ev.Len)
			name := string(nameBytes)
			for len(name) > 0 && name[len(name)-1] == 0 {
				name = name[:len(name)-1]
			}
			w.mu.Lock()
			dir := w.dirs[ev.Wd]
			w.mu.Unlock()
			if ev.Mask&syscall.IN_ISDIR != 0 {
				if ev.Mask&(syscall.IN_CREATE|syscall.IN_MOVED_TO) != 0 {
					_ = w.add(filepath.Join(dir, name))
				}
				continue
			}
			e := fsEvent{Dir: dir, Name: name, Removed: ev.Mask&syscall.IN_DELETE != 0, At: now}
			select {
			case w.Events <- e:
			default: // nobody is waiting for that many events
			}
		}
	}
}

// Close stops the watcher.
func (w *dirWatcher) Close() {
	w.f.Close()
	<-w.done
}

// drain drops queued events.
func (w *dirWatcher) drain() {
	for {
		select {
		case <-w.Events:
		default:
			return
		}
	}
}
