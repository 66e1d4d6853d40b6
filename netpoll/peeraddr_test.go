//go:build linux

package netpoll

import (
	"net"
	"net/netip"
	"testing"
	"time"
)

// peerHandler answers every line with what AcceptedPeer said in Open and
// what it says now, outside Open.
type peerHandler struct {
	lineHandler
}

type peerData struct {
	open netip.Addr
	ok   bool
}

func (h *peerHandler) Open(c *Conn) {
	a, ok := c.AcceptedPeer()
	c.Data = peerData{a, ok}
}

func (h *peerHandler) Read(c *Conn, b []byte) (int, int) {
	d := c.Data.(peerData)
	_, later := c.AcceptedPeer()
	c.Queue([]byte(d.open.String() + " " + boolWord(d.ok) + " " + boolWord(later) + "\n"))
	return len(b), 0
}

func boolWord(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func TestAcceptedPeerIsTheDialersAddress(t *testing.T) {
	g := startGroup(t, &peerHandler{}, 2)
	for _, src := range []string{"127.0.0.3", "127.0.0.7", "127.0.0.3"} {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
		c, err := d.Dial("tcp", g.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write([]byte("x\n")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 64)
		n, err := c.Read(buf)
		c.Close()
		if err != nil {
			t.Fatal(err)
		}
		// in Open: the dialer's address; after Open: not known without getpeername
		if got, want := string(buf[:n]), src+" yes no\n"; got != want {
			t.Errorf("from %s: %q, want %q", src, got, want)
		}
	}
}
