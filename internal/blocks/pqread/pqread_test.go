package pqread

import (
	"bytes"
	"context"
	"encoding/hex"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/parquet-go/parquet-go"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/tracectl/tracectl/internal/blocks/block"
	"github.com/tracectl/tracectl/internal/otlptest"
	"github.com/tracectl/tracectl/internal/storage"
	"github.com/tracectl/tracectl/internal/storage/storagetest"
	"github.com/tracectl/tracectl/internal/testfix"
)

// compactedBlock is the level-2 block of fixtures/tempo/vparquet4-compacted:
// 40 traces in 10 row groups. DataFile knows no format, so it serves to
// test row-group selection on a file with several groups.
const compactedBlock = "8638efc1-2742-4667-8de0-8bae4bda7236"

func openCompacted(t *testing.T) (*DataFile, *[]*storage.ReaderAt) {
	t.Helper()
	root := testfix.Path(t, "tempo", "vparquet4-compacted")
	b := storagetest.OpenDir(t, root)
	raw, err := os.ReadFile(filepath.Join(root, block.DefaultTenant, compactedBlock, block.MetaName))
	if err != nil {
		t.Fatal(err)
	}
	m, err := block.ParseMeta("meta.json", raw)
	if err != nil {
		t.Fatal(err)
	}
	d := NewDataFile(b, *m)
	var readers []*storage.ReaderAt
	d.onReaderAt = func(r *storage.ReaderAt) { readers = append(readers, r) }
	return d, &readers
}

func TestRowsAcrossRowGroups(t *testing.T) {
	d, _ := openCompacted(t)
	var ids []string
	for g, err := range d.Rows(context.Background()) {
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, hex.EncodeToString(g.Bytes("TraceID")))
		if len(g.List("rs")) == 0 {
			t.Errorf("row %s: no resource spans", ids[len(ids)-1])
		}
	}
	want := otlptest.LoadCorpus(t).IDs
	if len(ids) != len(want) {
		t.Fatalf("%d rows, want %d", len(ids), len(want))
	}
	for i := range ids {
		if ids[i] != want[i] {
			t.Errorf("row %d = %s, want %s", i, ids[i], want[i])
		}
	}
}

func TestFindRowReadsOneRowGroup(t *testing.T) {
	d, readers := openCompacted(t)
	ctx := context.Background()
	for n, hexID := range otlptest.LoadCorpus(t).IDs {
		id, _ := block.ParseTraceID(hexID)
		*readers = nil
		found, err := d.FindRow(ctx, id, func(g *Group) error {
			if got := hex.EncodeToString(g.Bytes("TraceID")); got != hexID {
				t.Errorf("looked up %s, got row %s", hexID, got)
			}
			return nil
		})
		if err != nil || !found {
			t.Fatalf("%s: found=%v err=%v", otlptest.Label(hexID), found, err)
		}
		// The first lookup reads footer and row group, later ones reuse
		// the parsed footer.
		want := int64(1)
		if n == 0 {
			want = 2
		}
		if len(*readers) != 1 || (*readers)[0].Reads != want {
			t.Errorf("%s: %d readers, reads %v; want one reader with %d reads", otlptest.Label(hexID), len(*readers), *readers, want)
		}
	}
	// Absent IDs: at most one row group is read.
	for _, s := range []string{"1", "594dbe7e6cff645eb51079037485e52b", "ffffffffffffffffffffffffffffffff"} {
		id, _ := block.ParseTraceID(s)
		*readers = nil
		found, err := d.FindRow(ctx, id, func(*Group) error { return nil })
		if err != nil || found {
			t.Errorf("%s: found=%v err=%v", s, found, err)
		}
		if len(*readers) != 1 || (*readers)[0].Reads > 1 {
			t.Errorf("%s: %d reads", s, (*readers)[0].Reads)
		}
	}
}

func TestCandidateRowGroupsWithoutStatistics(t *testing.T) {
	d, _ := openCompacted(t)
	o, err := d.open(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	id, _ := block.ParseTraceID(otlptest.IDOf("P00"))
	if got := candidateRowGroups(o.f, o.idCol, id); len(got) != 1 {
		t.Fatalf("with statistics: %v", got)
	}
	// Without statistics on one group, that group is a candidate too.
	st := &o.f.Metadata().RowGroups[7].Columns[o.idCol].MetaData.Statistics
	st.MinValue, st.MaxValue, st.Min, st.Max = nil, nil, nil, nil
	got := candidateRowGroups(o.f, o.idCol, id)
	if len(got) != 2 || got[1] != 7 {
		t.Errorf("candidates = %v, want the matching group and 7", got)
	}
}

// Nested test rows: optional and repeated leaves and groups, plain and
// LIST-wrapped lists, as Tempo's schemas use them.
type inner struct {
	Name  string   `parquet:"Name"`
	Opt   *string  `parquet:"Opt,optional"`
	Ints  []int64  `parquet:"Ints,list"`
	Strs  []string `parquet:"Strs"`
	Inner []leafy  `parquet:"Inner"`
}

type leafy struct {
	K string `parquet:"K"`
	V *int32 `parquet:"V,optional"`
}

type testRow struct {
	ID     []byte  `parquet:"ID"`
	List   []inner `parquet:"List,list"`
	Rep    []inner `parquet:"Rep"`
	Maybe  *inner  `parquet:"Maybe,optional"`
	Counts []int32 `parquet:"Counts"`
}

func ptr[T any](v T) *T { return &v }

func TestAssemblerRoundTrip(t *testing.T) {
	rows := []testRow{
		{ID: []byte{1}},
		{
			ID: []byte{2},
			List: []inner{
				{Name: "a", Opt: ptr("x"), Ints: []int64{1, 2, 3}, Strs: []string{"s"}, Inner: []leafy{{K: "k1", V: ptr(int32(7))}, {K: "k2"}}},
				{Name: "b"},
				{Name: "c", Ints: []int64{}, Inner: []leafy{{K: "k3"}}},
			},
			Rep:    []inner{{Name: "r1"}, {Name: "r2", Strs: []string{"p", "q"}}},
			Maybe:  &inner{Name: "m", Opt: ptr("")},
			Counts: []int32{5, 6},
		},
		{ID: []byte{3}, Rep: []inner{{Name: "only", Inner: []leafy{{K: "z", V: ptr(int32(-1))}}}}},
	}
	var buf bytes.Buffer
	w := parquet.NewGenericWriter[testRow](&buf)
	if _, err := w.Write(rows); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := parquet.OpenFile(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	asm, err := NewAssembler(f.Schema())
	if err != nil {
		t.Fatal(err)
	}
	r := f.RowGroups()[0].Rows()
	defer r.Close()
	prow := make([]parquet.Row, 1)
	for i, want := range rows {
		if n, err := r.ReadRows(prow); n != 1 {
			t.Fatalf("row %d: %v", i, err)
		}
		g, err := asm.Assemble(prow[0])
		if err != nil {
			t.Fatalf("row %d: %v", i, err)
		}
		got := testRow{ID: g.Bytes("ID")}
		for _, v := range g.Values("Counts") {
			got.Counts = append(got.Counts, v.Int32())
		}
		conv := func(e *Group) inner {
			in := inner{Name: e.Str("Name")}
			if s, ok := e.OptStr("Opt"); ok {
				in.Opt = &s
			}
			for _, v := range e.Values("Ints") {
				in.Ints = append(in.Ints, v.Int64())
			}
			for _, v := range e.Values("Strs") {
				in.Strs = append(in.Strs, string(v.ByteArray()))
			}
			for _, l := range e.List("Inner") {
				lf := leafy{K: l.Str("K")}
				if v, ok := l.Value("V"); ok {
					lf.V = ptr(v.Int32())
				}
				in.Inner = append(in.Inner, lf)
			}
			return in
		}
		for _, e := range g.List("List") {
			got.List = append(got.List, conv(e))
		}
		for _, e := range g.List("Rep") {
			got.Rep = append(got.Rep, conv(e))
		}
		if m := g.Group("Maybe"); m != nil {
			got.Maybe = ptr(conv(m))
		}
		if g.Has("NoSuchColumn") || g.Group("NoSuchColumn") != nil || g.Values("NoSuchColumn") != nil || g.Str("NoSuchColumn") != "" {
			t.Errorf("row %d: an unknown column reads as present", i)
		}
		if a, b := render(want), render(got); a != b {
			t.Errorf("row %d:\nwant %s\ngot  %s", i, a, b)
		}
	}
}

// render prints a testRow with empty and nil slices alike.
func render(r testRow) string {
	var b bytes.Buffer
	var in func(x inner)
	in = func(x inner) {
		b.WriteString("{" + x.Name)
		if x.Opt != nil {
			b.WriteString(" opt=" + *x.Opt)
		}
		for _, i := range x.Ints {
			b.WriteString(" i" + strconv.FormatInt(i, 10))
		}
		for _, s := range x.Strs {
			b.WriteString(" s" + s)
		}
		for _, l := range x.Inner {
			b.WriteString(" <" + l.K)
			if l.V != nil {
				b.WriteString("=" + strconv.Itoa(int(*l.V)))
			}
			b.WriteString(">")
		}
		b.WriteString("}")
	}
	b.WriteString(hex.EncodeToString(r.ID) + " L[")
	for _, x := range r.List {
		in(x)
	}
	b.WriteString("] R[")
	for _, x := range r.Rep {
		in(x)
	}
	b.WriteString("] M")
	if r.Maybe != nil {
		in(*r.Maybe)
	}
	for _, c := range r.Counts {
		b.WriteString(" c" + strconv.Itoa(int(c)))
	}
	return b.String()
}

func TestAnyValueFromJSON(t *testing.T) {
	cases := map[string]string{
		`{"kvlistValue":{"values":[{"key":"k1","value":{"stringValue":"v1"}},{"key":"k2","value":{"intValue":"2"}}]}}`: `kvlist{"k1": str "v1", "k2": int 2}`,
		`{"kvlistValue":{}}`:        `kvlist{}`,
		`{"bytesValue":"3q2+7wAB"}`: `bytes 0xdeadbeef0001`,
		`{"arrayValue":{"values":[{"stringValue":"a"},{"intValue":"1"}]}}`:         `array[str "a", int 1]`,
		`{"arrayValue":{"values":[{"arrayValue":{"values":[{"intValue":"1"}]}}]}}`: `array[array[int 1]]`,
		`{"doubleValue":1.5}`: `double 1.5`,
	}
	for in, want := range cases {
		v := pcommon.NewValueEmpty()
		if err := AnyValueFromJSON([]byte(in), v); err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		if got := otlptest.Render(v); got != want {
			t.Errorf("%s: got %s, want %s", in, got, want)
		}
	}
	for _, bad := range []string{``, `"x"`, `{`, `{"x":1}]}]}]}]}, {"y`, `[1]`} {
		if err := AnyValueFromJSON([]byte(bad), pcommon.NewValueEmpty()); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// protoAnyValue encodes an AnyValue through pdata: a span with one
// attribute, whose encoded value bytes are cut out again.
func protoAnyValue(t *testing.T, set func(pcommon.Value)) []byte {
	t.Helper()
	td := ptrace.NewTraces()
	sp := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	set(sp.Attributes().PutEmpty(""))
	b, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(td)
	if err != nil {
		t.Fatal(err)
	}
	// TracesData.1 → ResourceSpans.2 → ScopeSpans.2 → Span.9 → KeyValue.2
	for _, field := range []protowire.Number{1, 2, 2, 9, 2} {
		b = fieldBytes(t, b, field)
	}
	return b
}

func fieldBytes(t *testing.T, b []byte, want protowire.Number) []byte {
	t.Helper()
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		b = b[n:]
		if num == want && typ == protowire.BytesType {
			v, _ := protowire.ConsumeBytes(b)
			return v
		}
		b = b[protowire.ConsumeFieldValue(num, typ, b):]
	}
	return nil
}

func TestAnyValueFromProtoOrJSON(t *testing.T) {
	setters := []func(pcommon.Value){
		func(v pcommon.Value) { v.SetStr("hello") },
		func(v pcommon.Value) { v.SetInt(-7) },
		func(v pcommon.Value) { v.SetDouble(2.5) },
		func(v pcommon.Value) { v.SetBool(true) },
		func(v pcommon.Value) { v.SetEmptyBytes().FromRaw([]byte{0xde, 0xad}) },
		func(v pcommon.Value) { _ = v.SetEmptySlice().FromRaw([]any{"a", int64(1)}) },
		func(v pcommon.Value) { _ = v.SetEmptyMap().FromRaw(map[string]any{"k": "v", "n": map[string]any{}}) },
	}
	for _, set := range setters {
		want := pcommon.NewValueEmpty()
		set(want)
		got := pcommon.NewValueEmpty()
		if err := AnyValueFromProtoOrJSON(protoAnyValue(t, set), got); err != nil {
			t.Errorf("%s: %v", otlptest.Render(want), err)
			continue
		}
		if otlptest.Render(got) != otlptest.Render(want) {
			t.Errorf("got %s, want %s", otlptest.Render(got), otlptest.Render(want))
		}
	}
	// Very old blocks: JSON.
	got := pcommon.NewValueEmpty()
	if err := AnyValueFromProtoOrJSON([]byte(`{"stringValue":"old"}`), got); err != nil || otlptest.Render(got) != `str "old"` {
		t.Errorf("JSON fallback: %s, %v", otlptest.Render(got), err)
	}
	if err := AnyValueFromProtoOrJSON([]byte{0x0a, 0x05, 'x'}, pcommon.NewValueEmpty()); err == nil {
		t.Error("truncated protobuf: no error")
	}
}

func TestLinksFromProto(t *testing.T) {
	// Build two links with pdata, cut their encodings out of the span and
	// re-tag them as field 1 of Tempo's blob.
	td := ptrace.NewTraces()
	sp := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	l := sp.Links().AppendEmpty()
	l.SetTraceID(pcommon.TraceID{1, 2, 3})
	l.SetSpanID(pcommon.SpanID{4, 5})
	l.TraceState().FromRaw("a=1")
	l.Attributes().PutStr("opentracing.ref_type", "child_of")
	l.Attributes().PutEmptyBytes("b").FromRaw([]byte{9})
	l.SetDroppedAttributesCount(3)
	sp.Links().AppendEmpty().SetSpanID(pcommon.SpanID{7})
	enc, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(td)
	if err != nil {
		t.Fatal(err)
	}
	spanBytes := enc
	for _, f := range []protowire.Number{1, 2, 2} {
		spanBytes = fieldBytes(t, spanBytes, f)
	}
	var blob []byte
	for b := spanBytes; len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		b = b[n:]
		m := protowire.ConsumeFieldValue(num, typ, b)
		if num == 13 {
			v, _ := protowire.ConsumeBytes(b)
			blob = protowire.AppendTag(blob, 1, protowire.BytesType)
			blob = protowire.AppendBytes(blob, v)
		}
		b = b[m:]
	}
	blob = protowire.AppendTag(blob, 5, protowire.VarintType) // unknown field: skipped
	blob = protowire.AppendVarint(blob, 1)

	got := ptrace.NewSpanLinkSlice()
	if err := LinksFromProto(blob, got); err != nil {
		t.Fatal(err)
	}
	wantTD, gotTD := ptrace.NewTraces(), ptrace.NewTraces()
	sp.CopyTo(wantTD.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans().AppendEmpty())
	gs := gotTD.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	sp.CopyTo(gs)
	gs.Links().RemoveIf(func(ptrace.SpanLink) bool { return true })
	got.CopyTo(gs.Links())
	if d := otlptest.Diff(wantTD, gotTD); d != nil {
		t.Errorf("links differ: %v", d)
	}
	if err := LinksFromProto(nil, ptrace.NewSpanLinkSlice()); err != nil {
		t.Errorf("empty blob: %v", err)
	}
	if err := LinksFromProto(blob[:len(blob)/2], ptrace.NewSpanLinkSlice()); err == nil {
		t.Error("truncated blob: no error")
	}
}

func TestSlots(t *testing.T) {
	cols := []block.DedicatedColumn{
		{Scope: "resource", Name: "r1"},
		{Name: "s1"},
		{Name: "i1", Type: "int"},
		{Name: "s2"},
		{Scope: "resource", Name: "r2"},
		{Scope: "event", Name: "e1"},
		{Name: "i2", Type: "int", Options: []string{"array"}},
	}
	render := func(ss []Slot) string {
		var b bytes.Buffer
		for _, s := range ss {
			b.WriteString(s.Name + "=" + s.Field + " ")
		}
		return b.String()
	}
	for _, c := range []struct {
		scope   string
		perType bool
		want    string
	}{
		{"span", true, "s1=String01 i1=Int01 s2=String02 i2=Int02 "},
		{"span", false, "s1=String01 s2=String02 "},
		{"resource", true, "r1=String01 r2=String02 "},
		{"event", true, "e1=String01 "},
	} {
		if got := render(Slots(cols, c.scope, c.perType, 20, 5)); got != c.want {
			t.Errorf("%s perType=%v: %s, want %s", c.scope, c.perType, got, c.want)
		}
	}
	if got := render(Slots(cols, "span", true, 1, 1)); got != "s1=String01 i1=Int01 " {
		t.Errorf("limits: %s", got)
	}
}
