//go:build linux

package netpoll

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wspush/wspush/internal/testsupport"
)

// TestSimultaneousListenersOneWins: groups listening on one port at the same
// instant (two processes started together race the same way: SO_REUSEPORT
// is shared by user, not by process) end with exactly one listening and the
// others failing with "address already in use". Without the start-up lock
// both pass the port check before either binds.
func TestSimultaneousListenersOneWins(t *testing.T) {
	const rounds, racers = 30, 3
	for range rounds {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		var (
			wg     sync.WaitGroup
			start  = make(chan struct{})
			groups = make([]*Group, racers)
			errs   = make([]error, racers)
		)
		for i := range racers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				groups[i], errs[i] = Listen(Config{Addr: addr, Loops: 2, Handler: &sizedHandler{}})
			}()
		}
		close(start)
		wg.Wait()
		won := 0
		for i, g := range groups {
			switch {
			case errs[i] == nil:
				won++
				g.Close()
			case !errors.Is(errs[i], unix.EADDRINUSE):
				t.Fatalf("listen on %s: %v, want address already in use", addr, errs[i])
			}
		}
		if won != 1 {
			t.Fatalf("%d of %d groups listening on %s at once, want exactly 1", won, racers, addr)
		}
	}
}

// optsHandler answers every line with the accepted socket's TCP_NODELAY
// and SO_SNDBUF, read with getsockopt.
type optsHandler struct{ lineHandler }

func (h *optsHandler) Read(c *Conn, b []byte) (int, int) {
	nd, err1 := unix.GetsockoptInt(c.Fd(), unix.IPPROTO_TCP, unix.TCP_NODELAY)
	sb, err2 := unix.GetsockoptInt(c.Fd(), unix.SOL_SOCKET, unix.SO_SNDBUF)
	c.Queue(fmt.Appendf(nil, "%d %d %v %v\n", nd, sb, err1, err2))
	return len(b), 0
}

// The options are set on the listeners only (setAcceptedOptions): this
// fails if the kernel stops copying them into accepted sockets.
func TestAcceptedSocketsInheritOptions(t *testing.T) {
	const sndbuf = 24 << 10
	g := startGroupConfig(t, Config{Addr: "127.0.0.1:0", Loops: 2, Handler: &optsHandler{}, SendBuffer: sndbuf, Tick: 5 * time.Millisecond})
	for i := 0; i < 4; i++ { // both loops' listeners, most likely
		c := dialGroup(t, g)
		if _, err := c.Write([]byte("x\n")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 64)
		n, err := c.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		// Linux doubles the SO_SNDBUF asked for (bookkeeping overhead)
		if got, want := string(buf[:n]), fmt.Sprintf("1 %d <nil> <nil>\n", 2*sndbuf); got != want {
			t.Errorf("accepted socket: TCP_NODELAY, SO_SNDBUF = %q, want %q", got, want)
		}
	}
}

// TestListenerDefersAcceptUntilData: a connection is accepted once its
// first bytes arrive (TCP_DEFER_ACCEPT), not when its TCP handshake ends, so
// the loop wakes once for both.
func TestListenerDefersAcceptUntilData(t *testing.T) {
	g := startGroupConfig(t, Config{Addr: "127.0.0.1:0", Handler: &sizedHandler{}})
	l := g.Loops()[0]
	c := dialGroup(t, g) // connected: the kernel completed the handshake
	time.Sleep(300 * time.Millisecond)
	if n := l.Stats.Accepted.Load(); n != 0 {
		t.Fatalf("%d connections accepted before any byte arrived, want 0", n)
	}
	if _, err := c.Write([]byte{0}); err != nil {
		t.Fatal(err)
	}
	testsupport.WaitFor(t, "the connection accepted once it spoke", func() bool { return l.Stats.Accepted.Load() == 1 })
}
