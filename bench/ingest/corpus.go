package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"google.golang.org/protobuf/encoding/protowire"
)

// The load is the public OTLP corpus replayed over and over. Every request
// sent is one of a fixed set of templates (corpus lines concatenated into
// Collector-sized batches, encoded once as ExportTraceServiceRequest
// protobuf) with its trace IDs, span IDs and timestamps rewritten in place:
// each repetition of the corpus gets its own ID masks (XORed into every
// non-zero trace/span/parent/link ID, so a trace split over several lines or
// batches keeps one new ID and parent links stay intact), and timestamps are
// shifted so the corpus' latest end time is the moment of sending. Rewriting
// bytes instead of re-marshalling pdata keeps the generator cheap, so it is
// not the bottleneck on its one CPU.

// patch kinds
const (
	patchTraceID = iota // 16 bytes, XOR trace mask
	patchSpanID         // 8 bytes, XOR span mask
	patchTime           // fixed64, add the shift
)

type patch struct {
	off  int32
	kind uint8
	rep  int32 // repetition offset within the template cycle
}

type template struct {
	body    []byte
	patches []patch
	spans   int
	lines   int
	// traces: one entry per trace (per repetition) the request carries,
	// at the offset of its first span's trace_id, for the query workers.
	traces     []traceRef
	spanTraces []spanTrace // while encoding: each span's trace_id offset and span ID
}

type spanTrace struct {
	off  int32
	rep  int32
	span uint64
}

// traceRef is one trace of a template: where its (rewritten) ID is in the
// rendered body, how many of its spans this request carries, and how many
// spans the whole trace has in one pass over the corpus. Spans are counted
// by distinct span ID: the corpus sends some spans twice (a redelivery),
// and readers return each span ID once.
type traceRef struct {
	off   int32
	spans int32
	full  int32
}

type corpusLoad struct {
	path        string
	lines       []ptrace.Traces
	lineSpans   []int
	repSpans    int   // spans in one pass over the corpus (as sent)
	maxEndNanos int64 // latest end time in the corpus
	minStart    int64
	traceSpans  map[[16]byte]int32 // distinct span IDs per trace in one pass
	services    []string           // service.name values with spans in the corpus' last 10 minutes, by span count

	templates  []template
	cycleReps  int // repetitions of the corpus one pass over the templates covers
	cycleSpans int
	seed       uint64
}

// findFixtures returns the fixtures directory: $TRACECTL_FIXTURES, else
// ../shared/fixtures beside the module root, else /work/shared/fixtures.
func findFixtures(explicit, root string) (string, error) {
	cands := []string{}
	if explicit != "" {
		cands = append(cands, explicit)
	} else if env := os.Getenv("TRACECTL_FIXTURES"); env != "" {
		cands = append(cands, env)
	} else {
		cands = append(cands, filepath.Join(filepath.Dir(root), "shared", "fixtures"), "/work/shared/fixtures")
	}
	for _, c := range cands {
		if _, err := os.Stat(filepath.Join(c, "corpus", "public.otlp.jsonl")); err == nil {
			return c, nil
		}
	}
	return "", fmt.Errorf("corpus/public.otlp.jsonl not found under %v; set TRACECTL_FIXTURES or -fixtures", cands)
}

func loadCorpus(path string) (*corpusLoad, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	c := &corpusLoad{path: path, minStart: math.MaxInt64, traceSpans: map[[16]byte]int32{}}
	svcSpans := map[string]int{}
	svcLastEnd := map[string]int64{}
	type spanKey struct {
		trace [16]byte
		span  [8]byte
	}
	seenSpans := map[spanKey]bool{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 1<<20), 64<<20)
	var u ptrace.JSONUnmarshaler
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		td, err := u.UnmarshalTraces(line)
		if err != nil {
			return nil, fmt.Errorf("%s line %d: %w", path, n, err)
		}
		c.lines = append(c.lines, td)
		c.lineSpans = append(c.lineSpans, td.SpanCount())
		c.repSpans += td.SpanCount()
		rss := td.ResourceSpans()
		for i := 0; i < rss.Len(); i++ {
			svc, _ := rss.At(i).Resource().Attributes().Get("service.name")
			sss := rss.At(i).ScopeSpans()
			for j := 0; j < sss.Len(); j++ {
				sp := sss.At(j).Spans()
				for k := 0; k < sp.Len(); k++ {
					s := sp.At(k)
					if k := (spanKey{s.TraceID(), s.SpanID()}); !seenSpans[k] {
						seenSpans[k] = true
						c.traceSpans[k.trace]++
					}
					if svc.Str() != "" {
						svcSpans[svc.Str()]++
						svcLastEnd[svc.Str()] = max(svcLastEnd[svc.Str()], int64(s.EndTimestamp()))
					}
					c.maxEndNanos = max(c.maxEndNanos, int64(s.EndTimestamp()))
					if st := int64(s.StartTimestamp()); st > 0 {
						c.minStart = min(c.minStart, st)
					}
				}
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(c.lines) == 0 || c.repSpans == 0 {
		return nil, fmt.Errorf("%s: no spans", path)
	}
	// The corpus covers 26 minutes and is replayed with its last end time
	// at the moment of sending, so a search over the last 15 minutes finds
	// only the services with spans in its last part.
	for svc := range svcSpans {
		if svcLastEnd[svc] >= c.maxEndNanos-int64(10*time.Minute) {
			c.services = append(c.services, svc)
		}
	}
	sort.Slice(c.services, func(i, j int) bool {
		a, b := c.services[i], c.services[j]
		return svcSpans[a] > svcSpans[b] || svcSpans[a] == svcSpans[b] && a < b
	})
	return c, nil
}

// buildTemplates cuts cycleReps passes over the corpus lines into batches
// of at least batchSpans spans (the last batch of the cycle may be smaller).
func (c *corpusLoad) buildTemplates(batchSpans, cycleReps int, seed uint64) error {
	c.templates = nil
	c.cycleReps = cycleReps
	c.cycleSpans = cycleReps * c.repSpans
	c.seed = seed
	type batch struct {
		td           ptrace.Traces
		reps         []int32
		spans, lines int
	}
	var batches []*batch
	var cur *batch
	for r := 0; r < cycleReps; r++ {
		for i, line := range c.lines {
			if cur == nil {
				cur = &batch{td: ptrace.NewTraces()}
				batches = append(batches, cur)
			}
			rss := line.ResourceSpans()
			for k := 0; k < rss.Len(); k++ {
				rss.At(k).CopyTo(cur.td.ResourceSpans().AppendEmpty())
				cur.reps = append(cur.reps, int32(r))
			}
			cur.spans += c.lineSpans[i]
			cur.lines++
			if cur.spans >= batchSpans {
				cur = nil
			}
		}
	}
	// A short last batch joins the one before it.
	if n := len(batches); n >= 2 && batches[n-1].spans < batchSpans/2 {
		last, prev := batches[n-1], batches[n-2]
		last.td.ResourceSpans().MoveAndAppendTo(prev.td.ResourceSpans())
		prev.reps = append(prev.reps, last.reps...)
		prev.spans += last.spans
		prev.lines += last.lines
		batches = batches[:n-1]
	}
	for _, b := range batches {
		t, err := encodeTemplate(b.td, b.reps)
		if err != nil {
			return err
		}
		t.lines = b.lines
		for i := range t.traces {
			var id [16]byte
			copy(id[:], t.body[t.traces[i].off:])
			t.traces[i].full = c.traceSpans[id]
		}
		c.templates = append(c.templates, t)
	}
	return nil
}

// encodeTemplate marshals td and records where its IDs and timestamps are.
// reps[i] is the repetition offset of td's i-th resourceSpans.
func encodeTemplate(td ptrace.Traces, reps []int32) (template, error) {
	var m ptrace.ProtoMarshaler
	body, err := m.MarshalTraces(td)
	if err != nil {
		return template{}, err
	}
	t := template{body: body, spans: td.SpanCount()}
	rsIndex := 0
	err = walkMessage(body, 0, func(num protowire.Number, typ protowire.Type, start int, v []byte) error {
		if num != 1 || typ != protowire.BytesType {
			return nil
		}
		if rsIndex >= len(reps) {
			return fmt.Errorf("more resourceSpans than expected")
		}
		rep := reps[rsIndex]
		rsIndex++
		return walkResourceSpans(&t, v, start, rep)
	})
	if err != nil {
		return template{}, err
	}
	if rsIndex != len(reps) {
		return template{}, fmt.Errorf("found %d resourceSpans, expected %d", rsIndex, len(reps))
	}
	// One traceRef per (repetition, trace ID): the rewritten ID is the
	// same at every span of it, so the first span's offset will do.
	type key struct {
		rep int32
		id  [16]byte
	}
	type spanKey struct {
		key
		span uint64
	}
	seen := map[key]int{}
	seenSpans := map[spanKey]bool{}
	for _, st := range t.spanTraces {
		var k key
		k.rep = st.rep
		copy(k.id[:], body[st.off:st.off+16])
		i, ok := seen[k]
		if !ok {
			i = len(t.traces)
			seen[k] = i
			t.traces = append(t.traces, traceRef{off: st.off})
		}
		if sk := (spanKey{k, st.span}); !seenSpans[sk] {
			seenSpans[sk] = true
			t.traces[i].spans++
		}
	}
	t.spanTraces = nil
	return t, nil
}

// walkMessage calls fn for every field of the message b (which starts at
// offset base of the whole buffer); start is the offset of the field's value
// (for bytes fields, past the length prefix).
func walkMessage(b []byte, base int, fn func(num protowire.Number, typ protowire.Type, start int, v []byte) error) error {
	p := 0
	for p < len(b) {
		num, typ, n := protowire.ConsumeTag(b[p:])
		if n < 0 {
			return protowire.ParseError(n)
		}
		p += n
		var v []byte
		start := p
		switch typ {
		case protowire.BytesType:
			val, m := protowire.ConsumeBytes(b[p:])
			if m < 0 {
				return protowire.ParseError(m)
			}
			start = p + m - len(val)
			v = val
			p += m
		default:
			m := protowire.ConsumeFieldValue(num, typ, b[p:])
			if m < 0 {
				return protowire.ParseError(m)
			}
			v = b[p : p+m]
			p += m
		}
		if err := fn(num, typ, base+start, v); err != nil {
			return err
		}
	}
	return nil
}

func walkResourceSpans(t *template, b []byte, base int, rep int32) error {
	return walkMessage(b, base, func(num protowire.Number, typ protowire.Type, start int, v []byte) error {
		if num != 2 || typ != protowire.BytesType { // scope_spans
			return nil
		}
		return walkMessage(v, start, func(num protowire.Number, typ protowire.Type, start int, v []byte) error {
			if num != 2 || typ != protowire.BytesType { // spans
				return nil
			}
			return walkSpan(t, v, start, rep)
		})
	})
}

func walkSpan(t *template, b []byte, base int, rep int32) error {
	add := func(kind uint8, start int, v []byte) {
		if allZero(v) {
			return
		}
		t.patches = append(t.patches, patch{off: int32(start), kind: kind, rep: rep})
	}
	traceOff := int32(-1)
	var spanID uint64
	err := walkMessage(b, base, func(num protowire.Number, typ protowire.Type, start int, v []byte) error {
		switch {
		case num == 1 && typ == protowire.BytesType && len(v) == 16: // trace_id
			add(patchTraceID, start, v)
			if !allZero(v) {
				traceOff = int32(start)
			}
		case (num == 2 || num == 4) && typ == protowire.BytesType && len(v) == 8: // span_id, parent_span_id
			add(patchSpanID, start, v)
			if num == 2 {
				spanID = binary.LittleEndian.Uint64(v)
			}
		case (num == 7 || num == 8) && typ == protowire.Fixed64Type: // start/end time
			add(patchTime, start, v)
		case num == 11 && typ == protowire.BytesType: // events
			return walkMessage(v, start, func(num protowire.Number, typ protowire.Type, start int, v []byte) error {
				if num == 1 && typ == protowire.Fixed64Type {
					add(patchTime, start, v)
				}
				return nil
			})
		case num == 13 && typ == protowire.BytesType: // links
			return walkMessage(v, start, func(num protowire.Number, typ protowire.Type, start int, v []byte) error {
				switch {
				case num == 1 && typ == protowire.BytesType && len(v) == 16:
					add(patchTraceID, start, v)
				case num == 2 && typ == protowire.BytesType && len(v) == 8:
					add(patchSpanID, start, v)
				}
				return nil
			})
		}
		return nil
	})
	if err == nil && traceOff >= 0 {
		t.spanTraces = append(t.spanTraces, spanTrace{off: traceOff, rep: rep, span: spanID})
	}
	return err
}

func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// render writes request number n (0, 1, 2, ... over the whole run) into dst
// (grown as needed) with timestamps shifted by shift nanoseconds, and
// returns the body and its span count.
func (c *corpusLoad) render(dst []byte, n uint64, shift int64) ([]byte, int) {
	nt := uint64(len(c.templates))
	t := &c.templates[n%nt]
	cycle := n / nt
	dst = append(dst[:0], t.body...)
	lastRep := int32(-1)
	var tm [2]uint64
	var sm uint64
	for _, p := range t.patches {
		if p.rep != lastRep {
			rep := cycle*uint64(c.cycleReps) + uint64(p.rep)
			k := c.seed*0x100000001b3 ^ rep*4
			tm[0], tm[1], sm = splitmix64(k), splitmix64(k+1), splitmix64(k+2)
			lastRep = p.rep
		}
		b := dst[p.off:]
		switch p.kind {
		case patchTraceID:
			binary.LittleEndian.PutUint64(b, binary.LittleEndian.Uint64(b)^tm[0])
			binary.LittleEndian.PutUint64(b[8:], binary.LittleEndian.Uint64(b[8:])^tm[1])
		case patchSpanID:
			binary.LittleEndian.PutUint64(b, binary.LittleEndian.Uint64(b)^sm)
		case patchTime:
			binary.LittleEndian.PutUint64(b, uint64(int64(binary.LittleEndian.Uint64(b))+shift))
		}
	}
	return dst, t.spans
}

func (c *corpusLoad) templateStats() (minSpans, maxSpans int, meanSpans float64, meanBytes float64) {
	minSpans = math.MaxInt
	var sumS, sumB int
	for _, t := range c.templates {
		minSpans = min(minSpans, t.spans)
		maxSpans = max(maxSpans, t.spans)
		sumS += t.spans
		sumB += len(t.body)
	}
	return minSpans, maxSpans, float64(sumS) / float64(len(c.templates)), float64(sumB) / float64(len(c.templates))
}
