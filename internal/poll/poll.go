// Package poll lets tests wait for a state to arrive, with a deadline,
// instead of sleeping for a time they hope is long enough.
package poll

import (
	"testing"
	"time"
)

// interval is how often a condition is checked: short beside any state a
// test waits for, long enough not to spin.
const interval = 2 * time.Millisecond

// Wait checks cond until it holds or within has passed, and reports
// whether it held.
func Wait(within time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(within)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		<-tick.C
	}
	return true
}

// Until is Wait that fails the test when cond does not hold in time; what
// names the state waited for.
func Until(t testing.TB, what string, within time.Duration, cond func() bool) {
	t.Helper()
	if !Wait(within, cond) {
		t.Fatalf("waited %v for %s", within, what)
	}
}
