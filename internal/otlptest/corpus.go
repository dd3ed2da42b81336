// Package otlptest holds test helpers shared by every package that turns
// traces into or out of some format: loading the public OTLP corpus
// (fixtures/corpus/public.otlp.jsonl) and comparing two ptrace.Traces
// semantically, with a readable list of differences.
//
// Only tests import this package. It never writes fixtures and never copies
// them into the repository; it reads them where package testfix finds them.
package otlptest

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"sort"
	"testing"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tracectl/tracectl/internal/testfix"
)

// Corpus is the public OTLP corpus, decoded.
type Corpus struct {
	// Lines holds one ptrace.Traces per line of the file, in file order
	// (each line is one OTLP ExportTraceServiceRequest).
	Lines []ptrace.Traces
	// ByID maps a trace ID (32 lowercase hex digits) to every span sent for
	// that trace, across all lines. Traces sent in several requests (P02,
	// P03, P18) are combined: their resourceSpans are appended in line order,
	// so a span sent twice (P18) occurs twice.
	ByID map[string]ptrace.Traces
	// IDs lists the keys of ByID in ascending order, which is also the order
	// of the 16 trace ID bytes and so the row order of a Tempo block.
	IDs []string
}

// Label returns the corpus label of a trace ID ("P04"), or "" for an ID not
// in the public corpus.
func Label(traceIDHex string) string { return labels[traceIDHex] }

// IDOf returns the 32-digit hex trace ID of a corpus label such as "P03",
// or "" when the label is unknown.
func IDOf(label string) string {
	for id, l := range labels {
		if l == label {
			return id
		}
	}
	return ""
}

// labels is the trace table of fixtures/corpus/README.md.
var labels = map[string]string{
	"594dbe7e6cff645eb51079037485e52a": "P00",
	"b5d58700eb8a46ec1c2a07ca5004da34": "P01",
	"faa1e828cc634cf9b753d480d06ab588": "P02",
	"305002328d372d90c18827d9a0b405fd": "P03",
	"00000f1e2d3c4b5a6978877665544332": "P04",
	"00000000000000005b8efff798038103": "P05",
	"764e0ba0b5d6abaf4c411c1c7085492e": "P06",
	"c4172781126eb519df1e31f421e3f9d3": "P07",
	"442b26c577f1ad637d86dbcfeb833f40": "P08",
	"381d198ed3e8341054a0752cdace88b1": "P09",
	"d13dc426159551a1730f07ce7e03d001": "P10",
	"b84b95557d8977cce2c355b094b186b0": "P11",
	"e3fe0a007037d2440f8c878e1e72e64b": "P12",
	"d768e0364e13cba0f1e293ca9f828197": "P13",
	"7f3e36de21daa4a620c4909ffb77c450": "P14",
	"7abbbc14ae32b1aa00d6a1da8a4df86b": "P15",
	"885abc5608c9a51996c232bb97ac29a9": "P16",
	"d07fbe93080b82d5238761f5b85b350a": "P17",
	"7de650c90c7cf4b69ecdd5e4fa984331": "P18",
	"d730c4bc730c98943597f30aeec5684c": "P19",
	"b76aa8b72cf886a102e20a99adb85e60": "P20",
	"e236d2ee1da3764de367617765faeef6": "P21",
	"41dc759eb3c6feca0e3116704e07b043": "P22",
	"d39570f921950d60c32ed9002b0035f7": "P23",
	"4af00a393b9a6cdd3a6b1ba941e49f9e": "P24",
	"f646e4a5e13e321682c55ab4c23018fb": "P25",
	"9d8d3aa62f17563a7e1ad2c93fb479e1": "P26",
	"e8822198ee24a2ef9e187db7fc777584": "P27",
	"4251f94350db2d8bba5f5cd373f1c576": "P28",
	"9a3da2b3e505218e7f7adf298448fa1a": "P29",
	"78ce3333a381013a4468151f31de423f": "P30",
	"e89893e31d6498283f059f2a68dbbfdd": "P31",
	"b82499799d9b03ad96ef34e888bf0562": "P32",
	"a4853a76219220b43c8329cebd1a724e": "P33",
	"3e82082e38a625af5092f1dbfb3ed8fe": "P34",
	"bddaf40d78c648064f00974332edfd06": "P35",
	"cbcb62be2746c23cc69e88c20292c529": "P36",
	"7d134543141e8481eaf446abac517f29": "P37",
	"6fd4b8df0c69634db15b26b349d063c6": "P38",
	"fcb514dae490b887af21831c9e65b095": "P39",
}

// LoadCorpus reads fixtures/corpus/public.otlp.jsonl. A missing fixture
// fails the test under CI=true and skips it otherwise (see testfix); a
// malformed file fails the test.
func LoadCorpus(t testing.TB) *Corpus {
	t.Helper()
	f, err := os.Open(testfix.Path(t, "corpus", "public.otlp.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c, err := ReadCorpus(f)
	if err != nil {
		t.Fatalf("reading the public corpus: %v", err)
	}
	return c
}

// ReadCorpus decodes OTLP/JSON lines (one ExportTraceServiceRequest per
// line; blank lines are skipped) and groups their spans per trace.
func ReadCorpus(r io.Reader) (*Corpus, error) {
	c := &Corpus{ByID: map[string]ptrace.Traces{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1<<20), 64<<20)
	var u ptrace.JSONUnmarshaler
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		td, err := u.UnmarshalTraces(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		c.Lines = append(c.Lines, td)
		for id, part := range SplitByTrace(td) {
			if prev, ok := c.ByID[id]; ok {
				c.ByID[id] = Merge(prev, part)
			} else {
				c.ByID[id] = part
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	for id := range c.ByID {
		c.IDs = append(c.IDs, id)
	}
	sort.Strings(c.IDs)
	return c, nil
}

// TraceIDHex returns the 32-digit lowercase hex of a trace ID.
func TraceIDHex(id [16]byte) string { return hex.EncodeToString(id[:]) }

// SplitByTrace returns, per trace ID (32 hex digits), a copy of td holding
// only that trace's spans. Resources and scopes are kept (copied) for every
// trace that has spans under them; empty ones are dropped. td is not changed.
func SplitByTrace(td ptrace.Traces) map[string]ptrace.Traces {
	out := map[string]ptrace.Traces{}
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		rs := rss.At(i)
		// Destination resource/scope per trace for this resourceSpans.
		dstRS := map[string]ptrace.ResourceSpans{}
		sss := rs.ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			ss := sss.At(j)
			dstSS := map[string]ptrace.ScopeSpans{}
			spans := ss.Spans()
			for k := 0; k < spans.Len(); k++ {
				sp := spans.At(k)
				id := TraceIDHex(sp.TraceID())
				dss, ok := dstSS[id]
				if !ok {
					drs, ok := dstRS[id]
					if !ok {
						t, ok := out[id]
						if !ok {
							t = ptrace.NewTraces()
							out[id] = t
						}
						drs = t.ResourceSpans().AppendEmpty()
						rs.Resource().CopyTo(drs.Resource())
						drs.SetSchemaUrl(rs.SchemaUrl())
						dstRS[id] = drs
					}
					dss = drs.ScopeSpans().AppendEmpty()
					ss.Scope().CopyTo(dss.Scope())
					dss.SetSchemaUrl(ss.SchemaUrl())
					dstSS[id] = dss
				}
				sp.CopyTo(dss.Spans().AppendEmpty())
			}
		}
	}
	return out
}

// Merge returns a new ptrace.Traces holding the resourceSpans of every
// argument, in argument order. The arguments are not changed.
func Merge(parts ...ptrace.Traces) ptrace.Traces {
	out := ptrace.NewTraces()
	for _, p := range parts {
		rss := p.ResourceSpans()
		for i := 0; i < rss.Len(); i++ {
			rss.At(i).CopyTo(out.ResourceSpans().AppendEmpty())
		}
	}
	return out
}
