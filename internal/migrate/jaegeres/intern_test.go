package jaegeres

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/jaegertracing/jaeger/model"
	jaegertranslator "github.com/open-telemetry/opentelemetry-collector-contrib/pkg/translator/jaeger"

	"github.com/tracectl/tracectl/internal/otlptest"
	"github.com/tracectl/tracectl/internal/testfix"
)

// TestInternedDecodeEqualsDecode: the export's fast path (strings read in
// place and shared, a second decode when one needs unescaping) gives the
// same span, or the same error, as Decode for every document of the
// shared dataset and for documents with escapes and control characters.
func TestInternedDecodeEqualsDecode(t *testing.T) {
	var docs [][]byte
	dir := testfix.Path(t, "jaeger-es", "dataset")
	files, _ := filepath.Glob(filepath.Join(dir, "*span*.ndjson"))
	if len(files) == 0 {
		t.Fatalf("no span documents under %s", dir)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(nil, 1<<24)
		for sc.Scan() {
			if line := bytes.TrimSpace(sc.Bytes()); len(line) > 0 && bytes.Contains(line, []byte(`"spanID"`)) {
				docs = append(docs, append([]byte(nil), line...))
			}
		}
	}
	docs = append(docs,
		[]byte(`{"traceID":"1","spanID":"2","startTime":1,"operationName":"say \"hi\"","tags":[{"key":"a\\b","type":"string","value":"x\ny"}]}`),
		[]byte(`{"traceID":"1","spanID":"2","startTime":1,"operationName":"caf\u00e9","process":{"serviceName":"s\/t"}}`),
		[]byte("{\"traceID\":\"1\",\"spanID\":\"2\",\"startTime\":1,\"operationName\":\"bad\x01control\"}"),
		[]byte(`{"traceID":"1","spanID":"2","startTime":1,"operationName":"ünïcode ok","tags":[{"key":"n","type":"int64","value":"12"}]}`),
		[]byte(`{"traceID":"zz","spanID":"2","startTime":1}`),
	)
	d := &Decoder{}
	in := newInterner()
	for i, doc := range docs {
		for round := range 2 { // the second round reads shared strings
			want, wkey, werr := d.Decode(doc)
			got, gkey, gerr := d.decodeWith(doc, in)
			if (werr == nil) != (gerr == nil) || (werr != nil && werr.Error() != gerr.Error()) {
				t.Fatalf("doc %d round %d: error %v, want %v\n%s", i, round, gerr, werr, doc)
			}
			if gkey != wkey || !reflect.DeepEqual(got, want) {
				t.Fatalf("doc %d round %d: decoded differently\nwant %+v\ngot  %+v\n%s", i, round, want, got, doc)
			}
		}
	}
	if len(docs) < 50 {
		t.Fatalf("only %d documents checked", len(docs))
	}
	shared := 0
	for _, s := range in.strs {
		if s != "" {
			shared++
		}
	}
	if shared == 0 {
		t.Fatal("nothing was shared")
	}
}

// TestTranslateGroupsByProcess: translating a trace one batch per process
// (what writeTraces does) gives the OTLP data the contrib translator gives
// for the spans as decoded, and leaves each span's process as it was.
func TestTranslateGroupsByProcess(t *testing.T) {
	d := &Decoder{}
	in := newInterner()
	doc := func(span, svc, host string) []byte {
		return []byte(`{"traceID":"a1","spanID":"` + span + `","startTime":1700000000000000,"duration":5,"operationName":"op` + span + `",` +
			`"tags":[{"key":"k","type":"string","value":"v` + span + `"}],"process":{"serviceName":"` + svc + `","tags":[{"key":"host","type":"string","value":"` + host + `"}]}}`)
	}
	var shared, own []*model.Span
	for i, p := range [][2]string{{"a", "h1"}, {"b", "h1"}, {"a", "h1"}, {"a", "h2"}, {"b", "h1"}, {"a", "h1"}} {
		id := strconv.Itoa(i + 1)
		sp, _, err := d.decodeWith(doc(id, p[0], p[1]), in)
		if err != nil {
			t.Fatal(err)
		}
		shared = append(shared, sp)
		sp2, _, err := d.Decode(doc(id, p[0], p[1]))
		if err != nil {
			t.Fatal(err)
		}
		own = append(own, sp2)
	}
	if shared[0].Process != shared[2].Process || shared[0].Process == shared[3].Process {
		t.Fatal("equal processes are not shared, or different ones are")
	}
	before := make([]*model.Process, len(shared))
	for i, sp := range shared {
		before[i] = sp.Process
	}
	got, err := translate(shared)
	if err != nil {
		t.Fatal(err)
	}
	want, err := jaegertranslator.ProtoToTraces([]*model.Batch{{Spans: own}})
	if err != nil {
		t.Fatal(err)
	}
	if diffs := otlptest.Diff(want, got); len(diffs) > 0 {
		t.Fatalf("translated differently:\n%s", strings.Join(diffs, "\n"))
	}
	if got.ResourceSpans().Len() != 3 {
		t.Errorf("%d resources, want 3 (a/h1, b/h1, a/h2)", got.ResourceSpans().Len())
	}
	for i, sp := range shared {
		if sp.Process != before[i] {
			t.Fatalf("span %d lost its process", i)
		}
	}
}
