package server

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wspush/wspush/internal/testsupport"
)

// dialFrom opens a WebSocket with coder/websocket from the source address
// src, returning the handshake's status.
func dialFrom(t *testing.T, s *Server, src string) (*websocket.Conn, int) {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	client := &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, s.wsURL("/ws"), &websocket.DialOptions{HTTPClient: client})
	if resp == nil {
		t.Fatalf("dial from %s: %v", src, err)
	}
	if c != nil {
		t.Cleanup(func() { c.CloseNow() })
	}
	return c, resp.StatusCode
}

// TestMaxConnsPerIP: an address holding -max-conns-per-ip connections,
// idle ones that never sent a byte included, gets 429 for the next
// handshake; another address does not; closing one frees a slot.
func TestMaxConnsPerIP(t *testing.T) {
	s := startServer(t, Config{Loops: 2, MaxConnsPerIP: 3})
	var idle []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", s.Addr().String()) // from 127.0.0.1, never handshakes
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		idle = append(idle, c)
	}
	testsupport.WaitFor(t, "the idle connections to be counted", func() bool { return s.tcpConns() == 2 })
	if _, code := dialFrom(t, s, "127.0.0.1"); code != http.StatusSwitchingProtocols {
		t.Fatalf("third connection of 127.0.0.1: %d, want 101", code)
	}
	resp, body, refused := hsExchange(t, s, hsWS("/ws"))
	if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(string(body), msgTooManyFromIP) {
		t.Fatalf("fourth connection of 127.0.0.1: %d %q, want 429", resp.StatusCode, body)
	}
	if _, code := dialFrom(t, s, "127.0.0.2"); code != http.StatusSwitchingProtocols {
		t.Fatalf("first connection of 127.0.0.2: %d, want 101", code)
	}
	if got := testutil.ToFloat64(s.metrics.handshakeFailures.WithLabelValues(string(reasonMaxConnsPerIP))); got != 1 {
		t.Errorf("max_conns_per_ip failures %v, want 1", got)
	}
	if n := s.peers.addresses(); n != 2 {
		t.Errorf("%d peer addresses tracked, want 2", n)
	}
	// The refused one is counted until it is gone (a connection over the
	// limit is still a descriptor).
	refused.Close()
	idle[0].Close()
	testsupport.WaitFor(t, "two connections of 127.0.0.1 to close", func() bool { return s.tcpConns() == 3 })
	if resp, body, _ := hsExchange(t, s, hsWS("/ws")); resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("after a close, 127.0.0.1 got %d %q, want 101", resp.StatusCode, body)
	}
}

// TestPeerTableHoldsOnlyOpenAddresses: the table has an entry per address
// with a connection open, none after they close.
func TestPeerTableHoldsOnlyOpenAddresses(t *testing.T) {
	s := startServer(t, Config{Loops: 2})
	var conns []*websocket.Conn
	for i := range 5 {
		c, code := dialFrom(t, s, fmt.Sprintf("127.0.0.%d", 10+i))
		if code != 101 {
			t.Fatal(code)
		}
		conns = append(conns, c)
	}
	testsupport.WaitFor(t, "5 addresses", func() bool { return s.peers.addresses() == 5 })
	for _, c := range conns {
		c.CloseNow()
	}
	testsupport.WaitFor(t, "the table to empty", func() bool { return s.peers.addresses() == 0 })
}

// TestSocketPeer reads the peer of real loopback sockets, IPv4 from a
// source address of its own and IPv6 when the machine has ::1, with no
// allocation, its port too; a descriptor that is gone gives the zero AddrPort.
func TestSocketPeer(t *testing.T) {
	for _, tc := range []struct{ network, listen, src string }{
		{"tcp4", "127.0.0.1:0", "127.0.0.3"},
		{"tcp6", "[::1]:0", "::1"},
	} {
		ln, err := net.Listen(tc.network, tc.listen)
		if err != nil {
			t.Logf("%s: %v: skipped", tc.network, err)
			continue
		}
		defer ln.Close()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(tc.src)}}
		client, err := d.Dial(tc.network, ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer client.Close()
		server, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer server.Close()
		raw, err := server.(*net.TCPConn).SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var got netip.Addr
		var port uint16
		var allocs float64
		raw.Control(func(fd uintptr) {
			ap := socketPeer(int(fd))
			got, port = ap.Addr(), ap.Port()
			allocs = testing.AllocsPerRun(100, func() { socketPeer(int(fd)) })
		})
		if want := uint16(client.LocalAddr().(*net.TCPAddr).Port); port != want {
			t.Errorf("%s: socketPeer port %d, want %d", tc.network, port, want)
		}
		if want := netip.MustParseAddr(tc.src); got != want {
			t.Errorf("%s: socketPeer = %v, want %v", tc.network, got, want)
		}
		if allocs != 0 {
			t.Errorf("%s: socketPeer allocates %.0f times, want 0", tc.network, allocs)
		}
	}
	if got := socketPeer(-1); got.IsValid() {
		t.Errorf("socketPeer(-1) = %v, want the zero AddrPort", got)
	}
}

// TestPeerIP checks the session's 16-byte peer key: one key per address
// whichever form it came in, back to the address it stands for, and the zero
// Addr as the unknown key the table does not count.
func TestPeerIP(t *testing.T) {
	v4 := netip.MustParseAddr("192.0.2.7")
	for _, tc := range []struct{ in, want netip.Addr }{
		{v4, v4},
		{netip.MustParseAddr("::ffff:192.0.2.7"), v4}, // a dual-stack socket's form of the same peer
		{netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::1")},
		{netip.MustParseAddr("fe80::1%eth0"), netip.MustParseAddr("fe80::1")},
		{netip.Addr{}, netip.Addr{}},
	} {
		if got := toPeerIP(tc.in).addr(); got != tc.want {
			t.Errorf("toPeerIP(%v).addr() = %v, want %v", tc.in, got, tc.want)
		}
	}
	p := newPeerTable(1)
	if !p.add(toPeerIP(v4)) || p.add(toPeerIP(netip.MustParseAddr("::ffff:192.0.2.7"))) {
		t.Error("the IPv4 and IPv4-mapped forms of one peer are not counted as one")
	}
	if !p.add(peerIP{}) || !p.add(peerIP{}) || p.addresses() != 1 {
		t.Errorf("the unknown key is counted: %d addresses", p.addresses())
	}
	p.remove(toPeerIP(v4))
	p.remove(toPeerIP(v4))
	p.remove(peerIP{})
	if n := p.addresses(); n != 0 {
		t.Errorf("%d addresses left after removing every connection", n)
	}
}
