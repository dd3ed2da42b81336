package headtags

import (
	"reflect"
	"sort"
	"testing"

	"go.opentelemetry.io/collector/pdata/ptrace"
)

func strKey(scope Scope, name, v string) Key {
	return Key{Scope: scope, Name: name, Value: Value{Type: "string", Value: v}}
}

func values(t *testing.T, ix *Index, tenant string, scope Scope, name string) ([]string, bool) {
	t.Helper()
	var out []string
	ok := ix.Values(tenant, scope, name, func(v Value) { out = append(out, v.Type+":"+v.Value) })
	sort.Strings(out)
	return out, ok
}

func names(ix *Index, tenant string) ([]string, bool) {
	var out []string
	ok := ix.Names(tenant, func(s Scope, n string) { out = append(out, n) })
	sort.Strings(out)
	return out, ok
}

// TestCounts: a value stays while any piece holding it is in the index,
// and a removed piece is never applied afterwards.
func TestCounts(t *testing.T) {
	ix := New(0, 0)
	var a, b, c Handle
	ix.Apply("t", &a, []Key{strKey(Span, "k", "x"), strKey(Resource, "service.name", "api")})
	ix.Apply("t", &b, []Key{strKey(Span, "k", "x"), strKey(Span, "k", "y")})
	ix.Apply("t", &b, []Key{strKey(Span, "k", "again")}) // applied once only
	if got, ok := values(t, ix, "t", Span, "k"); !ok || !reflect.DeepEqual(got, []string{"string:x", "string:y"}) {
		t.Fatalf("span k = %v (ok %v)", got, ok)
	}
	ix.Remove(&b)
	if got, _ := values(t, ix, "t", Span, "k"); !reflect.DeepEqual(got, []string{"string:x"}) {
		t.Fatalf("after removing b, span k = %v, want x (a holds it)", got)
	}
	ix.Remove(&c) // never applied
	ix.Apply("t", &c, []Key{strKey(Span, "late", "z")})
	if got, _ := names(ix, "t"); !reflect.DeepEqual(got, []string{"k", "service.name"}) {
		t.Fatalf("names %v: a removed piece was applied, or a name was lost", got)
	}
	ix.Remove(&a, &a)
	if n, v := ix.Len("t"); n != 0 || v != 0 || len(ix.tenants) != 0 {
		t.Fatalf("after removing everything: %d names, %d values, %d tenants", n, v, len(ix.tenants))
	}
	// Another tenant's data is its own.
	var d Handle
	ix.Apply("u", &d, []Key{strKey(Span, "k", "u-only")})
	if got, _ := values(t, ix, "t", Span, "k"); len(got) != 0 {
		t.Fatalf("tenant t sees %v of tenant u", got)
	}
}

// TestBounds: past a bound the answer says it is short, until the pieces
// that passed it leave.
func TestBounds(t *testing.T) {
	ix := New(2, 3)
	var a, b, c, d Handle
	ix.Apply("t", &a, []Key{strKey(Span, "k", "1")})
	ix.Apply("t", &b, []Key{strKey(Span, "k", "2")})
	ix.Apply("t", &c, []Key{strKey(Span, "k", "3"), strKey(Span, "k", "4")})
	if _, ok := values(t, ix, "t", Span, "k"); ok {
		t.Fatal("3 values with a bound of 2: the answer should say it is short")
	}
	if got, ok := names(ix, "t"); !ok || !reflect.DeepEqual(got, []string{"k"}) {
		t.Fatalf("names %v ok %v: a name past its value bound is still a name", got, ok)
	}
	ix.Remove(&c)
	if got, ok := values(t, ix, "t", Span, "k"); !ok || !reflect.DeepEqual(got, []string{"string:1", "string:2"}) {
		t.Fatalf("after the excess left: %v ok %v", got, ok)
	}
	ix.Remove(&a)
	ix.Apply("t", &d, []Key{strKey(Span, "k", "3"), strKey(Span, "n2", "v"), strKey(Span, "n3", "v"), strKey(Span, "n4", "v")})
	if got, ok := values(t, ix, "t", Span, "k"); !ok || !reflect.DeepEqual(got, []string{"string:2", "string:3"}) {
		t.Fatalf("a freed place is reused: %v ok %v", got, ok)
	}
	if _, ok := names(ix, "t"); ok {
		t.Fatal("4 names with a bound of 3: the names should say they are short")
	}
	if _, ok := values(t, ix, "t", Span, "n4"); ok {
		t.Fatal("values of a name that was not kept must not answer (none) with ok")
	}
	ix.Remove(&b, &d)
	if n, v := ix.Len("t"); n != 0 || v != 0 || len(ix.tenants) != 0 {
		t.Fatalf("after removing everything: %d names, %d values, %d tenants", n, v, len(ix.tenants))
	}
}

// TestSummarize: every scope, typed values, intrinsics; unlisted values
// count as names only; a resource without spans adds nothing.
func TestSummarize(t *testing.T) {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "api")
	rs.Resource().Attributes().PutEmptySlice("arr").AppendEmpty().SetStr("a")
	ss := rs.ScopeSpans().AppendEmpty()
	ss.Scope().Attributes().PutBool("sc", true)
	sp := ss.Spans().AppendEmpty()
	sp.SetName("GET /")
	sp.SetKind(ptrace.SpanKindServer)
	sp.Status().SetCode(ptrace.StatusCodeError)
	sp.Status().SetMessage("boom")
	sp.Attributes().PutInt("code", 500)
	sp.Attributes().PutDouble("ratio", 0.5)
	sp.Events().AppendEmpty().Attributes().PutStr("ev", "e")
	sp.Links().AppendEmpty().Attributes().PutStr("ln", "l")
	empty := td.ResourceSpans().AppendEmpty()
	empty.Resource().Attributes().PutStr("ghost", "g")
	empty.ScopeSpans().AppendEmpty()

	got := map[Key]bool{}
	for _, k := range Summarize(td) {
		got[k] = true
	}
	want := map[Key]bool{
		strKey(Resource, "service.name", "api"):                 true,
		{Scope: Resource, Name: "arr"}:                          true,
		{Instrumentation, "sc", Value{"bool", "true"}}:          true,
		{Span, "code", Value{"int", "500"}}:                     true,
		{Span, "ratio", Value{"float", "0.5"}}:                  true,
		strKey(Event, "ev", "e"):                                true,
		strKey(Link, "ln", "l"):                                 true,
		strKey(Intrinsic, IntrinsicName, "GET /"):               true,
		{Intrinsic, IntrinsicStatus, Value{"keyword", "error"}}: true,
		{Intrinsic, IntrinsicKind, Value{"keyword", "server"}}:  true,
		strKey(Intrinsic, IntrinsicStatusMessage, "boom"):       true,
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Summarize:\n got %v\nwant %v", got, want)
	}
	var h Handle
	ix := New(0, 0)
	ix.Apply("t", &h, Summarize(td))
	if got, _ := values(t, ix, "t", Resource, "arr"); len(got) != 0 {
		t.Fatalf("an array is not a listed value, got %v", got)
	}
	if got, _ := names(ix, "t"); !reflect.DeepEqual(got, []string{"arr", "code", "ev", "ln", "ratio", "sc", "service.name"}) {
		t.Fatalf("names %v (intrinsics are not names; ghost has no spans)", got)
	}
}
