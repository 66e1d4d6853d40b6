package proxyproto_test

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"testing"
	"time"

	coder "github.com/coder/websocket"
	"github.com/gorilla/websocket"

	"github.com/wspush/wspush/internal/haproxytest"
	"github.com/wspush/wspush/internal/proxyproto"
	"github.com/wspush/wspush/internal/testpki"
)

// proxyListener is a net.Listener for net/http that reads each connection's
// PROXY header before handing it over, so the handler's r.RemoteAddr is the
// client's. It stands in for the server's loop until wspush parses headers
// itself.
type proxyListener struct {
	net.Listener
	trusted proxyproto.Trusted
}

func (l proxyListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		peer := netip.MustParseAddrPort(c.RemoteAddr().String())
		if !l.trusted.Contains(peer.Addr()) {
			c.Close()
			continue
		}
		_ = c.SetReadDeadline(time.Now().Add(ioTimeout))
		h, buf, err := readHeader(c)
		_ = c.SetReadDeadline(time.Time{})
		if err != nil {
			c.Close()
			continue
		}
		return &proxiedConn{Conn: c, rest: buf[h.Len:], remote: net.TCPAddrFromAddrPort(h.Client(peer))}, nil
	}
}

// proxiedConn is a connection whose header has been consumed: reads start
// with the bytes that followed it.
type proxiedConn struct {
	net.Conn
	rest   []byte
	remote net.Addr
}

func (c *proxiedConn) Read(p []byte) (int, error) {
	if len(c.rest) > 0 {
		n := copy(p, c.rest)
		c.rest = c.rest[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

func (c *proxiedConn) RemoteAddr() net.Addr { return c.remote }

// startWebSocketBackend serves /ws behind proxyListener: it sends the
// client's address as seen by the handler, then echoes one message.
func startWebSocketBackend(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, err := coder.Accept(w, r, nil)
			if err != nil {
				return
			}
			defer c.CloseNow()
			ctx, cancel := context.WithTimeout(r.Context(), ioTimeout)
			defer cancel()
			if err := c.Write(ctx, coder.MessageText, []byte(r.RemoteAddr)); err != nil {
				return
			}
			typ, msg, err := c.Read(ctx)
			if err != nil {
				return
			}
			if err := c.Write(ctx, typ, msg); err != nil {
				return
			}
			c.Close(coder.StatusNormalClosure, "")
		}),
		ReadHeaderTimeout: ioTimeout,
	}
	go func() { _ = srv.Serve(proxyListener{Listener: ln, trusted: loopbackTrusted(t)}) }()
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// TestHAProxyWebSocket opens WebSockets through HAProxy in both modes the
// harness offers, HTTP (upgrade, then a tunnel) and TCP, with gorilla's
// client from distinct addresses: the upgrade succeeds, messages pass both
// ways, and the server sees each client's address.
func TestHAProxyWebSocket(t *testing.T) {
	pki, err := testpki.New("wspush.test")
	if err != nil {
		t.Fatal(err)
	}
	backend := startWebSocketBackend(t)
	fronts := []haproxytest.Frontend{
		{Name: "http-tls-v2", HTTP: true, TLSCert: pki.CertPEM, TLSKey: pki.KeyPEM, Backend: backend, SendProxy: 2},
		{Name: "tcp-tls-v2", TLSCert: pki.CertPEM, TLSKey: pki.KeyPEM, Backend: backend, SendProxy: 2},
		{Name: "http-plain-v1", HTTP: true, Backend: backend, SendProxy: 1},
	}
	h := haproxytest.StartFrontends(t, fronts...)
	for _, f := range fronts {
		for _, src := range []string{"127.0.0.2", "127.0.0.3"} {
			t.Run(f.Name+"/"+src, func(t *testing.T) {
				d := &websocket.Dialer{
					NetDialContext:   (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}).DialContext,
					HandshakeTimeout: ioTimeout,
				}
				url := "ws://" + h.Addr(f.Name) + "/ws"
				if f.TLSCert != nil {
					d.TLSClientConfig = pki.ClientConfig("wspush.test")
					url = "wss://" + h.Addr(f.Name) + "/ws"
				}
				c, resp, err := d.Dial(url, nil)
				if err != nil {
					t.Fatalf("dial %s: %v (response %v)", url, err, resp)
				}
				defer c.Close()
				_ = c.SetReadDeadline(time.Now().Add(ioTimeout))
				_, seen, err := c.ReadMessage()
				if err != nil {
					t.Fatal(err)
				}
				if want := c.LocalAddr().String(); string(seen) != want {
					t.Errorf("server saw the client as %s, want %s", seen, want)
				}
				if err := c.WriteMessage(websocket.BinaryMessage, []byte("push")); err != nil {
					t.Fatal(err)
				}
				typ, echo, err := c.ReadMessage()
				if err != nil || typ != websocket.BinaryMessage || string(echo) != "push" {
					t.Fatalf("echo: %d %q %v", typ, echo, err)
				}
			})
		}
	}
}
