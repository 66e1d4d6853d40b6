//go:build linux

package netpoll

import (
	"testing"
	"unsafe"
)

// maxConnSize is the allocation size class a Conn must fit: every idle
// connection holds one (docs/benchmarks.md, idle memory).
const maxConnSize = 80

// TestConnSizeClass fails when Conn outgrows its size class: per-connection
// state that only some connections use belongs behind a pointer (outq holds
// what only a connection with output needs).
func TestConnSizeClass(t *testing.T) {
	if sz := unsafe.Sizeof(Conn{}); sz > maxConnSize {
		t.Fatalf("Conn is %d bytes, over the %d-byte size class: move rarely used fields behind a pointer", sz, maxConnSize)
	}
}
