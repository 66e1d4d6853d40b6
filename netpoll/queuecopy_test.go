//go:build linux

package netpoll

import (
	"bufio"
	"testing"
	"time"

	"github.com/wspush/wspush/internal/testsupport"
)

// TestQueueCopyCopies: one scratch buffer, rewritten for each of two
// connections before either is flushed (as a loop's handshake scratch is),
// reaches each peer as it was when queued; once the queue's room exists, a
// copy costs no allocation.
func TestQueueCopyCopies(t *testing.T) {
	h := &lineHandler{}
	g := startGroup(t, h, 1)
	a, b := dialGroup(t, g), dialGroup(t, g)
	testsupport.WaitFor(t, "both connections to open", func() bool { opened, _ := h.counts(); return opened == 2 })
	l := g.Loops()[0]

	allocs := make(chan float64, 1)
	l.Post(func() {
		conns := l.Conns()
		scratch := []byte("answer 0\n")
		conns[0].QueueCopy(scratch)
		scratch[7] = '1' // the scratch is reused before the flush
		conns[1].QueueCopy(scratch)
		scratch[7] = 'X'

		// A third connection's worth, queued and dropped: the queue and
		// its room go back to the loop and come out again.
		c := conns[0]
		allocs <- testing.AllocsPerRun(100, func() {
			q := c.out
			c.out = nil
			c.QueueCopy(scratch)
			c.Discard()
			c.out = q
		})
	})
	if n := <-allocs; n != 0 {
		t.Errorf("QueueCopy allocates %.1f times with a queue's room to reuse, want 0", n)
	}
	got := map[string]bool{}
	for _, c := range []interface{ SetReadDeadline(time.Time) error }{a, b} {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
	}
	for _, r := range []*bufio.Reader{bufio.NewReader(a), bufio.NewReader(b)} {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		got[line] = true
	}
	if !got["answer 0\n"] || !got["answer 1\n"] {
		t.Fatalf("the peers read %q, want one \"answer 0\" and one \"answer 1\"", keys(got))
	}
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestQueueCopyRoomBounded: the room a queue keeps for copies is emptied
// only when the queue drains, so a queue that never does (a slow reader that
// keeps sending commands) must not keep every answer: past maxCopiedKept a
// copy is an allocation of its own, freed once written.
func TestQueueCopyRoomBounded(t *testing.T) {
	h := &lineHandler{}
	g := startGroup(t, h, 1)
	dialGroup(t, g)
	testsupport.WaitFor(t, "the connection to open", func() bool { opened, _ := h.counts(); return opened == 1 })
	l := g.Loops()[0]
	room := make(chan int, 1)
	l.Post(func() {
		c := l.Conns()[0]
		answer := make([]byte, 60)
		for range 20000 { // within one task: nothing is written meanwhile
			c.QueueCopy(answer)
		}
		room <- cap(c.out.copied)
		c.Discard()
	})
	// append may round the room's last growth up: at most twice the bound.
	if n := <-room; n > 2*maxCopiedKept {
		t.Fatalf("the queue keeps %d bytes of room for copies, over twice %d", n, maxCopiedKept)
	}
}
