package jaegeres

import (
	"fmt"
	"hash/maphash"
	"slices"

	"github.com/jaegertracing/jaeger/model"
	jsoniter "github.com/json-iterator/go"
)

// interner shares the strings that repeat across span documents (tag
// keys, types, service names, common values), so decoding a page makes
// far fewer small allocations and the spans buffered for a block hold one
// copy of each. One interner belongs to one goroutine (an export stream).
type interner struct {
	// strs is a direct-mapped table: a string goes in the slot of its
	// hash, replacing whatever was there. A lookup is one hash and one
	// comparison; a Go map (the table before) spent as long again probing
	// and, as the unique values of the spans (URLs, keys, messages) filled
	// it, inserting and clearing.
	strs [internSlots]string
	// procs are the distinct processes seen, by service name: spans of
	// one process share one *model.Process (read only once decoded).
	procs map[string][]*model.Process
	// scratch is decoded into; process() copies it when it is new.
	scratch model.Process
	// escaped is set when a string needs unescaping: the fast path reads
	// strings as raw bytes, so the document is decoded again without it.
	escaped bool
}

const (
	internMaxLen     = 64   // longer strings are rarely repeated
	internSlots      = 4096 // a power of 2
	internMaxEntries = 8192 // processes kept, then the table starts over
)

var internSeed = maphash.MakeSeed()

func newInterner() *interner {
	return &interner{procs: map[string][]*model.Process{}}
}

// scratchProcess is the process a document is decoded into (nil without
// an interner): most documents repeat a process already seen, so it is
// copied only when new.
func (in *interner) scratchProcess() *model.Process {
	if in == nil {
		return nil
	}
	in.scratch.ServiceName = ""
	in.scratch.Tags = in.scratch.Tags[:0]
	return &in.scratch
}

// process returns the shared process equal to p (p itself the first time,
// or a copy of it when it is the scratch process).
func (in *interner) process(p *model.Process) *model.Process {
	l := in.procs[p.ServiceName]
	for _, q := range l {
		if q.Equal(p) {
			return q
		}
	}
	if p == &in.scratch {
		q := &model.Process{ServiceName: p.ServiceName}
		if len(p.Tags) > 0 { // as decoded without scratch: no tags is nil
			q.Tags = slices.Clone(p.Tags)
		}
		p = q
	}
	if len(l) < 16 {
		if len(in.procs) >= internMaxEntries {
			clear(in.procs)
		}
		in.procs[p.ServiceName] = append(l, p)
	}
	return p
}

// readStr reads a JSON string the iterator is at. With an interner
// attached (it.Attachment) strings without escapes or control characters
// are read in place and shared; anything else marks the interner escaped
// and stops the iterator, so the caller decodes again the slow way.
func readStr(it *jsoniter.Iterator) string {
	in, ok := it.Attachment.(*interner)
	if !ok {
		return it.ReadString()
	}
	b := it.ReadStringAsSlice()
	for _, c := range b {
		if c == '\\' || c < ' ' {
			in.escaped = true
			it.ReportError("readStr", "string needs unescaping")
			return ""
		}
	}
	return in.get(b)
}

// get returns b as a string, shared when it was seen before (and not
// displaced since by one with the same slot).
func (in *interner) get(b []byte) string {
	if len(b) > internMaxLen {
		return string(b)
	}
	slot := &in.strs[maphash.Bytes(internSeed, b)&(internSlots-1)]
	if *slot == string(b) {
		return *slot
	}
	s := string(b)
	*slot = s
	return s
}

// readID reads a JSON string the iterator is at, like readStr but without
// sharing it: span and trace IDs are parsed at once and nearly all
// distinct, so looking them up would only displace the strings that do
// repeat.
func readID(it *jsoniter.Iterator, field string) (string, error) {
	if it.WhatIsNext() != jsoniter.StringValue {
		return "", fmt.Errorf("%s: want a string", field)
	}
	in, ok := it.Attachment.(*interner)
	if !ok {
		return it.ReadString(), nil
	}
	b := it.ReadStringAsSlice()
	for _, c := range b {
		if c == '\\' || c < ' ' {
			in.escaped = true
			it.ReportError("readID", "string needs unescaping")
			return "", nil
		}
	}
	return string(b), nil
}

// decodeWith decodes like Decode, sharing strings through in (nil: none).
func (d *Decoder) decodeWith(src []byte, in *interner) (*model.Span, string, error) {
	if in == nil {
		return d.decode(src, nil)
	}
	sp, key, err := d.decode(src, in)
	if in.escaped {
		in.escaped = false
		sp, key, err = d.decode(src, nil)
	}
	if err == nil {
		sp.Process = in.process(sp.Process)
	}
	return sp, key, err
}
