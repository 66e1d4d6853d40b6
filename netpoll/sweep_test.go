//go:build linux

package netpoll

import (
	"io"
	"net"
	"testing"

	"github.com/wspush/wspush/internal/testsupport"
)

// TestTaskPostedMidSweepJoinsIt: a task posted while the loop writes out a
// sweep of many connections runs before the sweep ends. Its output joins the
// queues of the connections not written yet and is written in the same
// sweep to those already written; every connection gets both in order.
func TestTaskPostedMidSweepJoinsIt(t *testing.T) {
	const n = 4 * sweepCheck
	h := &lineHandler{}
	g := startGroup(t, h, 1)
	clients := make([]net.Conn, n)
	for i := range clients {
		clients[i] = dialGroup(t, g)
	}
	testsupport.WaitFor(t, "the connections to open", func() bool { opened, _ := h.counts(); return opened == n })
	l := g.Loops()[0]

	type seen struct{ first, last int }
	during := make(chan seen, 1)
	l.Post(func() {
		for _, c := range l.Conns() {
			c.Queue([]byte("a\n"))
		}
		// Posted from the loop itself, so it is pending while the sweep of
		// the a's runs (a publisher would post it from its own goroutine).
		l.Post(func() {
			conns := l.Conns()
			during <- seen{conns[0].Buffered(), conns[len(conns)-1].Buffered()}
			for _, c := range conns {
				c.Queue([]byte("b\n"))
			}
		})
	})
	s := <-during
	if s.first != 0 || s.last == 0 {
		t.Fatalf("the second task ran with %d bytes queued on the first connection and %d on the last: want 0 (written) and 2 (mid-sweep)", s.first, s.last)
	}
	for i, c := range clients {
		got := make([]byte, 4)
		if _, err := io.ReadFull(c, got); err != nil || string(got) != "a\nb\n" {
			t.Fatalf("client %d read %q, %v", i, got, err)
		}
	}
}
