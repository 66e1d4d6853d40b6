package testsupport

import (
	"testing"
	"time"
)

// WaitTimeout is how long WaitFor polls before it fails the test: far
// beyond what any condition takes on a loaded machine, so only a bug
// reaches it.
const WaitTimeout = 10 * time.Second

// waitPoll is how often WaitFor checks its condition.
const waitPoll = 5 * time.Millisecond

// WaitFor polls cond until it holds, and fails the test when it does not
// within WaitTimeout: for state that changes on another goroutine, never
// for timing.
func WaitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(WaitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(waitPoll)
	}
}
