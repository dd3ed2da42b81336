// Package faulty injects storage faults into a storage.Bucket for tests:
// errors of the storage kinds, added latency, operations that hang until
// their context ends (timeouts), and torn writes that store only a prefix
// of an object. It works on any backend (mem://, file://, the emulators),
// through the bucket's hook (storage.Bucket.SetHook), so the code under
// test runs unchanged.
//
// Faults are rules, matched per operation and key pattern and switched on
// and off at run time: Add a rule when storage "goes down", Remove it (or
// Clear all) when it "comes back". An Injector is safe for concurrent use.
package faulty

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tracectl/tracectl/internal/storage"
)

// Operation names, as the bucket's hook reports them. Read covers Read,
// ReadRange, NewReader and every ReaderAt.ReadAt; Write covers Write and
// NewWriter; Create is CreateIfNotExists; Stat covers Attributes and
// Exists.
const (
	Read   = "read"
	Write  = "write"
	Create = "create"
	Delete = "delete"
	Copy   = "copy"
	Stat   = "stat"
	List   = "list"
)

// Rule is one fault. The zero Rule fails every operation as unavailable.
type Rule struct {
	// Ops are the operations the rule applies to; none means all.
	Ops []string
	// Keys is a pattern the key (the prefix, for List) must match; ""
	// matches every key. '*' matches any run of characters, '/' included,
	// and '?' one character: "*/data.parquet", "team-a/*".
	Keys string

	// Latency delays the operation (or until its context ends, which fails
	// it with the context's error).
	Latency time.Duration
	// Hang holds the operation until its context ends and fails it with
	// the context's error, as a request to a store that stopped answering
	// times out. Removing the rule (or Clear) releases operations held.
	Hang bool
	// Torn, for writes, stores the first Keep bytes of the object and then
	// fails the write (see storage.TornWrite). Keep may be past the end:
	// the whole object is stored and the caller still told it failed.
	Torn bool
	Keep int64
	// Pass, when set, makes the rule only delay (Latency) and not fail.
	Pass bool
	// Kind of the injected error (default storage.KindUnavailable) and
	// its message (default "injected fault").
	Kind    storage.Kind
	Message string

	// Skip lets the first Skip matching operations through untouched;
	// Times, when > 0, retires the rule after it fired Times times.
	Skip  int
	Times int

	// OnFire, when set, is called (outside the injector's lock) each time
	// the rule fires, before the fault, with the operation and key. Tests
	// use it to look at the bucket at that moment.
	OnFire func(op, key string)

	re      *regexp.Regexp
	seen    atomic.Int64
	fired   atomic.Int64
	release chan struct{}
	once    sync.Once
}

// Fired is how many operations the rule has faulted so far.
func (r *Rule) Fired() int { return int(r.fired.Load()) }

// Injector holds the rules of one bucket.
type Injector struct {
	mu    sync.RWMutex
	rules []*Rule
	// injected counts faults per operation.
	injected sync.Map // op -> *atomic.Int64
}

// Install makes an Injector the hook of b, replacing any other hook. Call
// b.SetHook(nil) to remove it.
func Install(b *storage.Bucket) *Injector {
	in := &Injector{}
	b.SetHook(in.Hook)
	return in
}

// Add switches a rule on and returns it, for Remove and Fired. The rule
// must not be changed afterwards. Rules are tried in the order added; the
// first that matches an operation applies.
func (in *Injector) Add(r *Rule) *Rule {
	pat := "^" + strings.NewReplacer(`\*`, ".*", `\?`, ".").Replace(regexp.QuoteMeta(r.Keys)) + "$"
	if r.Keys == "" {
		pat = ""
	}
	r.re = regexp.MustCompile(pat)
	r.release = make(chan struct{})
	in.mu.Lock()
	in.rules = append(in.rules, r)
	in.mu.Unlock()
	return r
}

// Remove switches a rule off; operations it holds (Hang, Latency) go on
// and fail as they would have.
func (in *Injector) Remove(r *Rule) {
	in.mu.Lock()
	in.rules = slices.DeleteFunc(in.rules, func(x *Rule) bool { return x == r })
	in.mu.Unlock()
	r.once.Do(func() { close(r.release) })
}

// Clear removes every rule: storage is healthy again.
func (in *Injector) Clear() {
	in.mu.Lock()
	rules := in.rules
	in.rules = nil
	in.mu.Unlock()
	for _, r := range rules {
		r.once.Do(func() { close(r.release) })
	}
}

// Down fails every operation of the given kinds (all, with none) as
// unavailable until the returned rule is removed or Clear is called.
func (in *Injector) Down(ops ...string) *Rule {
	return in.Add(&Rule{Ops: ops, Message: "injected outage"})
}

// Injected is the number of faults injected into op so far ("" for all).
func (in *Injector) Injected(op string) int {
	var n int64
	in.injected.Range(func(k, v any) bool {
		if op == "" || k.(string) == op {
			n += v.(*atomic.Int64).Load()
		}
		return true
	})
	return int(n)
}

// match returns the rule that applies to op on key, counting it.
func (in *Injector) match(op, key string) *Rule {
	in.mu.RLock()
	defer in.mu.RUnlock()
	for _, r := range in.rules {
		if len(r.Ops) > 0 && !slices.Contains(r.Ops, op) {
			continue
		}
		if r.re.String() != "" && !r.re.MatchString(key) {
			continue
		}
		if n := r.seen.Add(1); n <= int64(r.Skip) {
			return nil
		}
		if r.Times > 0 {
			if r.fired.Add(1) > int64(r.Times) {
				r.fired.Add(-1)
				continue
			}
		} else {
			r.fired.Add(1)
		}
		return r
	}
	return nil
}

// Hook is the storage.Hook of the injector (Install sets it).
func (in *Injector) Hook(ctx context.Context, op, key string) error {
	r := in.match(op, key)
	if r == nil {
		return nil
	}
	c, _ := in.injected.LoadOrStore(op, new(atomic.Int64))
	c.(*atomic.Int64).Add(1)
	if r.OnFire != nil {
		r.OnFire(op, key)
	}
	if r.Latency > 0 {
		t := time.NewTimer(r.Latency)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
	if r.Hang {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-r.release:
			return fmt.Errorf("%s %s: operation held by an injected hang, released", op, key)
		}
	}
	if r.Pass {
		return nil
	}
	msg := r.Message
	if msg == "" {
		msg = "injected fault"
	}
	kind := r.Kind
	if kind == storage.KindOther {
		kind = storage.KindUnavailable
	}
	err := &storage.Error{Op: op, Key: key, Kind: kind, Err: errors.New(msg)}
	if r.Torn && op == Write {
		return &storage.TornWrite{Keep: r.Keep, Err: err}
	}
	return err
}
