package server

import (
	"bufio"
	"net"
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/wspush/wspush/internal/testsupport"
)

// TestNoGoroutinePerConnection holds 5,000 WebSocket connections and checks
// the process runs no more goroutines than it did with none: connections
// live on the event loops, not on goroutines of their own.
func TestNoGoroutinePerConnection(t *testing.T) {
	const n = 5000
	s := startServer(t, Config{Loops: 2, MaxConnsPerIP: n})
	before := runtime.NumGoroutine()
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	req := []byte("GET /ws?topics=idle HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	for i := 0; i < n; i++ {
		// Client sockets in this process do not start goroutines either: Go's
		// net package parks a reader on the runtime poller only while it reads.
		src := &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i/20000))}
		d := net.Dialer{LocalAddr: src, Timeout: 5 * time.Second}
		c, err := d.Dial("tcp", s.Addr().String())
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		conns = append(conns, c)
		if _, err := c.Write(req); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	for i, c := range conns {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("handshake %d: %v %v", i, resp, err)
		}
	}
	testsupport.WaitFor(t, "5,000 connections", func() bool { return s.Conns() == n })
	if res := s.hub.Stats(); res.Subscriptions != n {
		t.Fatalf("%d subscriptions, want %d", res.Subscriptions, n)
	}
	if after := runtime.NumGoroutine(); after > before {
		t.Fatalf("%d goroutines with %d connections, %d with none", after, n, before)
	}
}
