package server

import (
	"testing"
	"unsafe"
)

// maxSessionSize is the allocation size class a session must fit: every idle
// connection holds one (docs/benchmarks.md, idle memory).
const maxSessionSize = 160

// TestSessionSizeClass fails when session outgrows its size class: state that
// most connections never use belongs behind a pointer allocated when it is
// (see heldInput, pendingState, sessionTLS, sessionProxy).
func TestSessionSizeClass(t *testing.T) {
	if sz := unsafe.Sizeof(session{}); sz > maxSessionSize {
		t.Fatalf("session is %d bytes, over the %d-byte size class: move rarely used fields behind a pointer", sz, maxSessionSize)
	}
}
