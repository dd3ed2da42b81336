//go:build race

package ingest

// raceEnabled: the race detector changes allocation (sync.Pool drops
// items at random), so allocation bounds are not checked under it.
const raceEnabled = true
