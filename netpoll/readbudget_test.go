//go:build linux

package netpoll

import (
	"encoding/binary"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// growthHandler records the most bytes one Read call got beyond the
// previous call's input: what one read(2) took in.
type growthHandler struct {
	sizedHandler
	last, most atomic.Int64
}

func (h *growthHandler) Read(c *Conn, b []byte) (int, int) {
	if d := int64(len(b)) - h.last.Load(); d > h.most.Load() {
		h.most.Store(d)
	}
	used, need := h.sizedHandler.Read(c, b)
	h.last.Store(int64(len(b) - used))
	return used, need
}

// TestReadsIntoATailAreBounded: a read into a connection's tail (a large unit
// being gathered) takes at most ReadBuffer bytes, like a read into the
// loop's buffer, so a turn reads at most maxReads × ReadBuffer of one peer.
func TestReadsIntoATailAreBounded(t *testing.T) {
	const readBuffer = 16 << 10
	h := &growthHandler{}
	g := startGroupConfig(t, Config{Addr: "127.0.0.1:0", Loops: 1, Handler: h, ReadBuffer: readBuffer})
	c := dialGroup(t, g)
	unit := make([]byte, 4+1<<20)
	binary.BigEndian.PutUint32(unit, 1<<20)
	// The first piece leaves a large tail; the rest arrives at once.
	if _, err := c.Write(unit[:300<<10]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if _, err := c.Write(unit[300<<10:]); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for h.read.Load() < int64(len(unit)) {
		if time.Now().After(deadline) {
			t.Fatalf("read %d of %d bytes", h.read.Load(), len(unit))
		}
		time.Sleep(time.Millisecond)
	}
	if most := h.most.Load(); most > readBuffer {
		t.Fatalf("one read took %d bytes, over ReadBuffer %d", most, readBuffer)
	}
	// 700 KiB arriving at once is more than one turn's read: the rest was
	// read in later turns, and counted (wspush_deferred_reads_total).
	if n := g.Loops()[0].Stats.DeferredReads.Load(); n == 0 {
		t.Fatal("no read was deferred to a later turn")
	}
}

// turnHandler records, in order, each Read ('R') and each run of the task
// every Read posts ('T'), and consumes nothing (a unit of 1 MiB gathering).
type turnHandler struct {
	mu  sync.Mutex
	seq []byte
}

func (h *turnHandler) Open(c *Conn) {}
func (h *turnHandler) Read(c *Conn, b []byte) (int, int) {
	h.add('R')
	c.Loop().Post(func() { h.add('T') })
	return 0, 1 << 20
}
func (h *turnHandler) Timer(c *Conn, now time.Time) {}
func (h *turnHandler) Close(c *Conn, err error)     {}

func (h *turnHandler) add(b byte) {
	h.mu.Lock()
	h.seq = append(h.seq, b)
	h.mu.Unlock()
}

func (h *turnHandler) sequence() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return string(h.seq)
}

// TestOneReadPerTurn: a peer with more input waiting than one read takes is
// read once, then again only after the tasks posted before (a push waits for
// one read of each busy peer, not four).
func TestOneReadPerTurn(t *testing.T) {
	h := &turnHandler{}
	g := startGroupConfig(t, Config{Addr: "127.0.0.1:0", Loops: 1, Handler: h, ReadBuffer: 16 << 10})
	c := dialGroup(t, g)
	// Hold the loop while 64 KiB (four reads) arrive, so they wait together.
	release := make(chan struct{})
	g.Loops()[0].Post(func() { <-release })
	if _, err := c.Write(make([]byte, 64<<10)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	close(release)
	deadline := time.Now().Add(5 * time.Second)
	for strings.Count(h.sequence(), "R") < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("reads and tasks %q: want 4 reads", h.sequence())
		}
		time.Sleep(time.Millisecond)
	}
	if seq := h.sequence(); strings.Contains(seq, "RR") {
		t.Fatalf("reads and tasks %q: two reads of one peer in one turn", seq)
	}
}
