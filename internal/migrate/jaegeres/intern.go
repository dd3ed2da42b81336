package jaegeres

import (
	"slices"

	"github.com/jaegertracing/jaeger/model"
	jsoniter "github.com/json-iterator/go"
)

// interner shares the strings that repeat across span documents (tag
// keys, types, service names, common values), so decoding a page makes
// far fewer small allocations and the spans buffered for a block hold one
// copy of each. One interner belongs to one goroutine (an export stream).
type interner struct {
	m map[string]string
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
	internMaxEntries = 8192 // then the table starts over
)

func newInterner() *interner {
	return &interner{m: make(map[string]string, 1024), procs: map[string][]*model.Process{}}
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

// get returns b as a string, shared when it was seen before.
func (in *interner) get(b []byte) string {
	if s, ok := in.m[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(b) <= internMaxLen {
		if len(in.m) >= internMaxEntries {
			clear(in.m)
		}
		in.m[s] = s
	}
	return s
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
