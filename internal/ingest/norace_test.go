//go:build !race

package ingest

// raceEnabled: see race_test.go.
const raceEnabled = false
