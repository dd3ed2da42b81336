package traceql

import "errors"

var errNotYet = errors.New("traceql: not implemented yet")

// Parse parses a TraceQL query strictly: anything outside the supported
// subset is a *ParseError naming the construct and where it starts.
func Parse(q string) (*Query, error) {
	return nil, errNotYet
}

// ParseLenient parses the unfinished text of an editor, as Grafana's
// autocomplete sends it (`{ resource.service.name = }`): conditions that
// are incomplete or invalid are dropped, the rest is kept. It never fails
// for text that starts a spanset filter; for other text it returns the
// error of Parse.
func ParseLenient(q string) (*Query, error) {
	return nil, errNotYet
}

// String is the query in canonical TraceQL.
func (q *Query) String() string { return q.Text }
