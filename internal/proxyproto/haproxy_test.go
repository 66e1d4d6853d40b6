package proxyproto_test

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/wspush/wspush/internal/haproxytest"
	"github.com/wspush/wspush/internal/proxyproto"
	"github.com/wspush/wspush/internal/testpki"
	"github.com/wspush/wspush/internal/testsupport"
)

// Every wait in these tests is bounded by this; HAProxy answers in
// milliseconds, so it only matters when something is broken.
const ioTimeout = 10 * time.Second

// The client's first line after connecting, and the backend's answer.
const (
	hello = "hello\n"
	ok    = "ok\n"
)

// accepted is what the backend saw on one connection.
type accepted struct {
	peer   netip.AddrPort // the socket's remote address: HAProxy's
	header proxyproto.Header
	rest   []byte // bytes after the header: the client's hello
	err    error  // refused peer, bad header
	// helloErr: the connection ended before the hello (health checks).
	helloErr error
}

// startBackend runs a TCP server standing in for wspush. It refuses peers
// outside trusted, reads each connection's PROXY header as an event loop
// does (appending what each read returns and calling Parse until it stops
// answering ErrIncomplete), then expects the client's hello, answers ok and
// reports what it saw.
func startBackend(t *testing.T, trusted proxyproto.Trusted) (string, <-chan accepted) {
	t.Helper()
	got := make(chan accepted, 16)
	addr := testsupport.ServeTCP(t, func(c net.Conn) {
		select {
		case got <- serveBackendConn(c, trusted):
		default: // nobody is listening for more (health checks)
		}
	})
	return addr, got
}

func serveBackendConn(c net.Conn, trusted proxyproto.Trusted) accepted {
	a := accepted{peer: netip.MustParseAddrPort(c.RemoteAddr().String())}
	if !trusted.Contains(a.peer.Addr()) {
		a.err = fmt.Errorf("untrusted peer %v", a.peer)
		return a
	}
	_ = c.SetDeadline(time.Now().Add(ioTimeout))
	var buf []byte
	a.header, buf, a.err = readHeader(c)
	if a.err != nil {
		return a
	}
	a.rest = append([]byte(nil), buf[a.header.Len:]...)
	if a.header.Command == proxyproto.Local {
		return a // a health check: nothing follows
	}
	for !bytes.Contains(a.rest, []byte("\n")) {
		n, err := c.Read(buf[:cap(buf)])
		a.rest = append(a.rest, buf[:n]...)
		if err != nil {
			a.helloErr = fmt.Errorf("read hello after %+v: %w", a.header, err)
			return a
		}
	}
	if _, err := io.WriteString(c, ok); err != nil {
		a.helloErr = err
	}
	return a
}

// readHeader reads from c as an event loop does: it appends what each read
// returns and calls Parse until Parse stops answering ErrIncomplete. It
// returns the header and the bytes read, which may go past the header.
func readHeader(c net.Conn) (proxyproto.Header, []byte, error) {
	buf := make([]byte, 0, 512)
	for {
		n, err := c.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		h, perr := proxyproto.Parse(buf)
		if perr != proxyproto.ErrIncomplete {
			return h, buf, perr
		}
		if err != nil {
			return h, buf, fmt.Errorf("read before the header was whole: %w", err)
		}
	}
}

// dialThrough connects to addr from the local address from (port chosen by
// the kernel), over TLS if tlsConf is set, says hello and waits for the
// backend's answer. It returns the connection's local address, which the
// backend must have received as the PROXY source.
func dialThrough(t *testing.T, addr, from string, tlsConf *tls.Config) netip.AddrPort {
	t.Helper()
	d := &net.Dialer{Timeout: ioTimeout, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	var c net.Conn
	var err error
	if tlsConf != nil {
		c, err = (&tls.Dialer{NetDialer: d, Config: tlsConf}).Dial("tcp", addr)
	} else {
		c, err = d.Dial("tcp", addr)
	}
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, from, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(ioTimeout))
	if tc, isTLS := c.(*tls.Conn); isTLS {
		if p := tc.ConnectionState().NegotiatedProtocol; p != "" && p != "http/1.1" {
			t.Errorf("ALPN %q", p)
		}
	}
	if _, err := io.WriteString(c, hello); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != ok {
		t.Fatalf("answer through %s: %q, %v", addr, line, err)
	}
	return netip.MustParseAddrPort(c.LocalAddr().String())
}

func receive(t *testing.T, got <-chan accepted) accepted {
	t.Helper()
	select {
	case a := <-got:
		if a.err != nil || a.helloErr != nil {
			t.Fatalf("backend: %v, %v", a.err, a.helloErr)
		}
		return a
	case <-time.After(ioTimeout):
		t.Fatal("backend saw no connection")
	}
	return accepted{}
}

func loopbackTrusted(t *testing.T) proxyproto.Trusted {
	t.Helper()
	tr, err := proxyproto.ParseTrusted("127.0.0.1/32, ::1")
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// ipv6Loopback reports whether ::1 can be listened on here.
func ipv6Loopback() bool {
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

// TestHAProxySendsClientAddress connects through a real HAProxy, TLS
// terminating with send-proxy-v2 and plain with send-proxy (v1), from
// distinct loopback addresses, and checks that the backend parses each
// client's own address and port, and the frontend's as the destination.
func TestHAProxySendsClientAddress(t *testing.T) {
	pki, err := testpki.New("127.0.0.1", "::1", "wspush.test")
	if err != nil {
		t.Fatal(err)
	}
	backend, got := startBackend(t, loopbackTrusted(t))
	fronts := []haproxytest.Frontend{
		{Name: "tls-v2", TLSCert: pki.CertPEM, TLSKey: pki.KeyPEM, Backend: backend, SendProxy: 2},
		{Name: "plain-v1", Backend: backend, SendProxy: 1},
		{Name: "tls-v1", TLSCert: pki.CertPEM, TLSKey: pki.KeyPEM, Backend: backend, SendProxy: 1},
		{Name: "plain-v2", Backend: backend, SendProxy: 2},
	}
	sources := []string{"127.0.0.2", "127.0.0.3"}
	if ipv6Loopback() {
		fronts = append(fronts,
			haproxytest.Frontend{Name: "tls-v2-ipv6", Bind: "[::1]:0", TLSCert: pki.CertPEM, TLSKey: pki.KeyPEM, Backend: backend, SendProxy: 2},
			haproxytest.Frontend{Name: "plain-v1-ipv6", Bind: "[::1]:0", Backend: backend, SendProxy: 1})
	} else {
		t.Log("no IPv6 loopback: TCP6 headers untested")
	}
	h := haproxytest.StartFrontends(t, fronts...)

	for _, f := range fronts {
		from := sources
		if f.Bind == "[::1]:0" {
			from = []string{"::1"}
		}
		var tlsConf *tls.Config
		if f.TLSCert != nil {
			tlsConf = pki.ClientConfig("wspush.test")
		}
		for _, src := range from {
			t.Run(f.Name+"/"+src, func(t *testing.T) {
				client := dialThrough(t, h.Addr(f.Name), src, tlsConf)
				a := receive(t, got)
				want := proxyproto.Header{
					Version:     uint8(f.SendProxy),
					Command:     proxyproto.Proxy,
					Source:      client,
					Destination: netip.MustParseAddrPort(h.Addr(f.Name)),
					Len:         a.header.Len,
				}
				if a.header != want {
					t.Errorf("header %+v\nwant   %+v", a.header, want)
				}
				if got := a.header.Client(a.peer); got != client {
					t.Errorf("Client(%v) = %v, want %v", a.peer, got, client)
				}
				if string(a.rest) != hello {
					t.Errorf("after the header: %q, want %q", a.rest, hello)
				}
			})
		}
	}
}

// TestHAProxyHealthCheckHeader checks what HAProxy's own health-check
// connections carry, and that Client then yields the socket's peer: v2 sends
// LOCAL, v1 a TCP4 line with the check connection's own addresses.
func TestHAProxyHealthCheckHeader(t *testing.T) {
	for _, tt := range []struct {
		version int
		want    proxyproto.Command
	}{{2, proxyproto.Local}, {1, proxyproto.Proxy}} {
		t.Run(fmt.Sprintf("v%d", tt.version), func(t *testing.T) {
			backend, got := startBackend(t, loopbackTrusted(t))
			haproxytest.StartFrontends(t, haproxytest.Frontend{Name: "checked", Backend: backend, SendProxy: tt.version, HealthCheck: true})
			var a accepted
			select {
			case a = <-got:
			case <-time.After(ioTimeout):
				t.Fatal("no health check arrived")
			}
			if a.err != nil {
				t.Fatalf("health check: %v", a.err)
			}
			if a.header.Version != uint8(tt.version) || a.header.Command != tt.want {
				t.Fatalf("health check header %+v, want version %d command %v", a.header, tt.version, tt.want)
			}
			if a.header.Client(a.peer) != a.peer {
				t.Fatalf("Client = %v, want the socket's peer %v", a.header.Client(a.peer), a.peer)
			}
		})
	}
}

// TestHAProxyUntrustedPeerRefused shows the trust list at work: a backend
// that trusts only another network refuses HAProxy's connection, whatever
// its header says.
func TestHAProxyUntrustedPeerRefused(t *testing.T) {
	tr, err := proxyproto.ParseTrusted("10.0.0.0/8")
	if err != nil {
		t.Fatal(err)
	}
	backend, got := startBackend(t, tr)
	h := haproxytest.StartFrontends(t, haproxytest.Frontend{Name: "p", Backend: backend, SendProxy: 2})
	c, err := net.DialTimeout("tcp", h.Addr("p"), ioTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	select {
	case a := <-got:
		if a.err == nil {
			t.Fatalf("untrusted HAProxy accepted: %+v", a.header)
		}
	case <-time.After(ioTimeout):
		t.Fatal("backend saw no connection")
	}
}

// TestDeployHAProxyConfig runs deploy/haproxy/haproxy.cfg, the file
// docs/deploy.md documents, unchanged but for its WSPUSH_* variables: TLS
// on the public frontend, PROXY v2 to two nodes, health checks on the
// admin port's /healthz.
func TestDeployHAProxyConfig(t *testing.T) {
	text, err := os.ReadFile(filepath.Join("..", "..", "deploy", "haproxy", "haproxy.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	pki, err := testpki.New("wspush.test")
	if err != nil {
		t.Fatal(err)
	}
	var checks = make(chan string, 64)
	admin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case checks <- r.URL.Path:
		default:
		}
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		_, _ = io.WriteString(w, `{"status":"ok"}`)
	}))
	t.Cleanup(admin.Close)
	adminPort := netip.MustParseAddrPort(admin.Listener.Addr().String()).Port()

	tr := loopbackTrusted(t)
	node1, got1 := startBackend(t, tr)
	node2, got2 := startBackend(t, tr)

	c := haproxytest.NewConfig(t)
	c.Text = string(text)
	bind, public := c.Listen("127.0.0.1:0")
	c.Env["WSPUSH_PUBLIC_BIND"] = bind
	c.Env["WSPUSH_CERT"] = c.CertFile("wspush.pem", pki.CertPEM, pki.KeyPEM)
	c.Env["WSPUSH_NODE1"] = node1
	c.Env["WSPUSH_NODE2"] = node2
	c.Env["WSPUSH_ADMIN_PORT"] = fmt.Sprint(adminPort)
	c.Env["WSPUSH_MAXCONN"] = "1000" // the test machine's descriptor limit is 20,000
	haproxytest.Start(t, c)

	select {
	case p := <-checks:
		if p != "/healthz" {
			t.Fatalf("health check asked %s", p)
		}
	case <-time.After(ioTimeout):
		t.Fatal("no health check reached the admin port")
	}

	// leastconn over two idle nodes: collect from whichever took it.
	either := func() accepted {
		t.Helper()
		select {
		case a := <-got1:
			return a
		case a := <-got2:
			return a
		case <-time.After(ioTimeout):
			t.Fatal("no node saw the connection")
		}
		return accepted{}
	}
	for _, src := range []string{"127.0.0.2", "127.0.0.3"} {
		client := dialThrough(t, public, src, pki.ClientConfig("wspush.test"))
		a := either()
		if a.err != nil || a.helloErr != nil {
			t.Fatalf("node: %v, %v", a.err, a.helloErr)
		}
		if a.header.Version != 2 || a.header.Command != proxyproto.Proxy || a.header.Source != client {
			t.Errorf("from %s: header %+v, want v2 PROXY from %v", src, a.header, client)
		}
	}

	// A client that bypasses TLS is stopped by haproxy, never forwarded.
	raw, err := net.DialTimeout("tcp", public, ioTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	_ = raw.SetDeadline(time.Now().Add(ioTimeout))
	_, _ = io.WriteString(raw, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if _, err := raw.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("plain HTTP on the TLS port: %v, want the connection closed", err)
	}
	select {
	case a := <-got1:
		t.Errorf("plain HTTP reached node1: %+v", a)
	case a := <-got2:
		t.Errorf("plain HTTP reached node2: %+v", a)
	default:
	}
}
