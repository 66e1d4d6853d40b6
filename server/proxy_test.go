package server

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/wspush/wspush/internal/haproxytest"
	"github.com/wspush/wspush/internal/testsupport"
)

// dialProxied opens a TCP connection to s, sends header, then over TLS if
// the server speaks it, and returns a rawConn for what follows.
func dialProxied(t *testing.T, s *Server, header string) *rawConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", s.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, header); err != nil {
		t.Fatal(err)
	}
	rc := &rawConn{Conn: c, tcp: c.(*net.TCPConn)}
	if s.TLS() {
		rc.Conn = tls.Client(c, clientTLS(t))
	}
	rc.r = bufio.NewReader(rc.Conn)
	return rc
}

// expectClosed asserts that the server ends the connection without a byte.
func expectClosed(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := c.Read(make([]byte, 1))
	if n > 0 || err == nil || strings.Contains(err.Error(), "timeout") {
		t.Fatalf("read %d bytes, %v; want the connection closed", n, err)
	}
}

func TestProxyProtocol(t *testing.T) { eachTransport(t, testProxyProtocol) }

func testProxyProtocol(t *testing.T, tr transport) {
	var log logBuffer
	s := startServer(t, tr.config(t, Config{Loops: 1, ProxyProtocol: true, ProxyTrusted: "127.0.0.0/8, ::1",
		HandshakeTimeout: time.Minute, Logger: log.logger()}))

	t.Run("v1 header: the client's address", func(t *testing.T) {
		c := dialProxied(t, s, "PROXY TCP4 203.0.113.7 127.0.0.1 50123 443\r\n")
		c.upgrade(t, "/ws")
		testsupport.WaitFor(t, "the log line with the client's address", func() bool {
			return log.contains(`msg="websocket opened" client=203.0.113.7:50123`)
		})
	})
	t.Run("v2 LOCAL header: the socket's address", func(t *testing.T) {
		local := "\r\n\r\n\x00\r\nQUIT\n" + "\x20\x00\x00\x00" // version 2, LOCAL, AF_UNSPEC, no payload
		c := dialProxied(t, s, local)
		c.upgrade(t, "/ws")
		want := fmt.Sprintf(`msg="websocket opened" client=%s`, c.tcp.LocalAddr())
		testsupport.WaitFor(t, "the log line with the socket's address", func() bool { return log.contains(want) })
	})
	for _, tc := range []struct{ name, send, reason string }{
		{"no header", hsWS("/ws"), "no_header"},
		{"TLS without a header", "\x16\x03\x01\x02\x00\x01", "no_header"},
		{"malformed v1", "PROXY TCP4 203.0.113.999 127.0.0.1 1 2\r\n", "malformed"},
		{"v1 without CRLF", "PROXY " + strings.Repeat("x", 120), "too_long"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := metricValue(t, s, `wspush_proxy_header_failures_total{reason="`+tc.reason+`"}`)
			c, err := net.Dial("tcp", s.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			io.WriteString(c, tc.send)
			expectClosed(t, c)
			testsupport.WaitFor(t, "the failure to be counted", func() bool {
				return metricValue(t, s, `wspush_proxy_header_failures_total{reason="`+tc.reason+`"}`) == before+1
			})
		})
	}
	testsupport.WaitFor(t, "every socket to be freed", func() bool { return s.tcpConns() == 0 })
	if s.TLS() {
		testsupport.WaitFor(t, "the handshake slots of the refused ones to be free", func() bool {
			return metricValue(t, s, "wspush_tls_handshakes_in_flight") == 0
		})
	}
}

func TestProxyProtocolUntrustedPeerRefused(t *testing.T) {
	s := startServer(t, Config{Loops: 1, ProxyProtocol: true, ProxyTrusted: "10.0.0.0/8"})
	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "PROXY TCP4 203.0.113.7 127.0.0.1 50123 443\r\n"+hsWS("/ws"))
	expectClosed(t, c)
	testsupport.WaitFor(t, "the refusal to be counted", func() bool {
		return metricValue(t, s, `wspush_proxy_header_failures_total{reason="untrusted"}`) == 1
	})
}

func TestProxyProtocolNeedsTrusted(t *testing.T) {
	if _, err := New(Config{Listen: "127.0.0.1:0", Admin: "", ProxyProtocol: true}); err == nil {
		t.Fatal("-proxy-protocol without -proxy-trusted was accepted")
	}
}

// TestProxyProtocolBehindHAProxy: the real HAProxy terminates TLS and
// forwards each connection with send-proxy-v2; clients from 127.0.0.2 and
// 127.0.0.3 are seen by the server as themselves, not as HAProxy: in its
// log, and by -max-conns-per-ip 1, which lets one connection in from each
// and answers a second one from 127.0.0.2 with 429.
func TestProxyProtocolBehindHAProxy(t *testing.T) {
	var log logBuffer
	s := startServer(t, Config{Loops: 1, ProxyProtocol: true, ProxyTrusted: "127.0.0.1/32", MaxConnsPerIP: 1, Logger: log.logger()})
	pki := mustPKI(t)
	h := haproxytest.StartFrontends(t, haproxytest.Frontend{
		Name: "public", TLSCert: pki.CertPEM, TLSKey: pki.KeyPEM, Backend: s.Addr().String(), SendProxy: 2,
	})
	dialFrom := func(from string) (*websocket.Conn, *http.Response, net.Addr, error) {
		d := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
		var local net.Addr
		client := &http.Client{Transport: &http.Transport{
			TLSClientConfig: clientTLS(t),
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				c, err := d.DialContext(ctx, network, addr)
				if err == nil {
					local = c.LocalAddr()
				}
				return c, err
			},
		}}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, resp, err := websocket.Dial(ctx, "wss://127.0.0.1"+h.Addr("public")[strings.LastIndex(h.Addr("public"), ":"):]+"/ws?topics=t",
			&websocket.DialOptions{HTTPClient: client})
		return c, resp, local, err
	}
	for _, from := range []string{"127.0.0.2", "127.0.0.3"} {
		c, _, local, err := dialFrom(from)
		if err != nil {
			t.Fatalf("dial through haproxy from %s: %v", from, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if _, _, err := c.Read(ctx); err != nil { // the "subscribed" answer
			t.Fatalf("from %s: %v", from, err)
		}
		cancel()
		defer c.CloseNow()
		want := `msg="websocket opened" client=` + local.String()
		testsupport.WaitFor(t, "the server to log "+want, func() bool { return log.contains(want) })
	}
	if log.contains(`msg="websocket opened" client=127.0.0.1:`) {
		t.Fatal("the server saw HAProxy's address as a client's")
	}
	// 127.0.0.2 holds its one connection: a second one is refused, by address.
	_, resp, _, err := dialFrom("127.0.0.2")
	if err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("second connection from 127.0.0.2: status %d, %v; want 429", status, err)
	}
}
