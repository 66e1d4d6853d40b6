package testsupport

import (
	"bytes"
	"sync"
)

// SyncBuffer is a bytes.Buffer that a writer on another goroutine (a
// logger on an event loop, a child process's output) and the test reading
// it can share. The zero value is ready to use.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String is everything written so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
