//go:build linux

package netpoll

import (
	"encoding/binary"
	"sync/atomic"
	"testing"
	"time"
)

// countingHandler counts Read calls: one per read(2) that returned bytes.
type countingHandler struct {
	sizedHandler
	calls atomic.Int64
}

func (h *countingHandler) Read(c *Conn, b []byte) (int, int) {
	h.calls.Add(1)
	return h.sizedHandler.Read(c, b)
}

// TestSmallTailDoesNotShrinkReads: a peer sending small units back to back
// leaves part of one unit after nearly every read. Its next read must still
// take up to ReadBuffer: read into the small tail's own room (a ping
// flooder's 131-byte frames into a 512-byte tail) it took 393 bytes a
// syscall, each a full read that cost the connection its turn, and 200 such
// peers posted ~50,000 reads in front of the pushes (docs/benchmarks.md).
func TestSmallTailDoesNotShrinkReads(t *testing.T) {
	const readBuffer = 16 << 10
	const unit, units = 131, 1000 // 131,000 bytes: 8 reads of 16 KiB
	h := &countingHandler{}
	g := startGroupConfig(t, Config{Addr: "127.0.0.1:0", Loops: 1, Handler: h, ReadBuffer: readBuffer})
	c := dialGroup(t, g)
	msg := make([]byte, 0, unit*units)
	for range units {
		msg = binary.BigEndian.AppendUint32(msg, unit-4)
		msg = append(msg, make([]byte, unit-4)...)
	}
	// Hold the loop while all of it arrives, so every read finds a full
	// buffer's worth waiting.
	release := make(chan struct{})
	g.Loops()[0].Post(func() { <-release })
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	close(release)
	deadline := time.Now().Add(5 * time.Second)
	for h.read.Load() < int64(len(msg)) {
		if time.Now().After(deadline) {
			t.Fatalf("read %d of %d bytes", h.read.Load(), len(msg))
		}
		time.Sleep(time.Millisecond)
	}
	// 8 full reads; a few more if the kernel hands the bytes over in
	// pieces. Into the tail's room it was about 330.
	if calls, most := h.calls.Load(), int64(2*len(msg)/readBuffer+4); calls > most {
		t.Fatalf("%d reads for %d bytes with a %d-byte read buffer: want at most %d", calls, len(msg), readBuffer, most)
	}
}
