package server

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/wspush/wspush/internal/testpki"
	"github.com/wspush/wspush/internal/testsupport"
)

// startTLSServer starts a server on native TLS with the test PKI.
func startTLSServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	return startServer(t, transport{"wss", true}.config(t, cfg))
}

// tapConn records what a connection reads off the socket.
type tapConn struct {
	net.Conn
	mu  sync.Mutex
	got bytes.Buffer
}

func (c *tapConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	c.got.Write(p[:n])
	c.mu.Unlock()
	return n, err
}

// records splits a TLS byte stream into (content type, length) pairs.
func records(b []byte) (types []byte, lens []int) {
	for len(b) >= 5 {
		n := int(binary.BigEndian.Uint16(b[3:5]))
		types, lens = append(types, b[0]), append(lens, n)
		b = b[min(len(b), 5+n):]
	}
	return types, lens
}

// TestTLSCloseHandshakeEndsWithCloseNotify: over TLS 1.2, whose record
// types are visible on the wire, the server's last record after the close
// frames is an alert (close_notify), and the FIN follows it.
func TestTLSCloseHandshakeEndsWithCloseNotify(t *testing.T) {
	s := startTLSServer(t, Config{Loops: 1, Echo: true, CloseTimeout: 300 * time.Millisecond})
	for _, by := range []string{"client", "server"} {
		t.Run("closed by "+by, func(t *testing.T) {
			raw, err := net.Dial("tcp", s.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			tap := &tapConn{Conn: raw}
			cfg := clientTLS(t)
			cfg.MaxVersion = tls.VersionTLS12
			tc := tls.Client(tap, cfg)
			c := &rawConn{Conn: tc, r: bufio.NewReader(tc), tcp: raw.(*net.TCPConn)}
			c.upgrade(t, "/echo")
			if by == "client" {
				c.writeFrame(t, 0x88, protoClose(1000, ""))
			} else {
				c.writeFrame(t, 0x81, []byte("x")) // an echo first
				if op, _ := c.readFrame(t); op != 0x1 {
					t.Fatalf("echo opcode %#x", op)
				}
				c.writeFrame(t, 0x88, []byte{0x03}) // a 1-byte close payload: the server fails it with 1002
			}
			if op, _ := c.readFrame(t); op != 0x8 {
				t.Fatalf("got opcode %#x, want the server's close", op)
			}
			hsExpectEOF(t, c) // crypto/tls: io.EOF is what close_notify reads as
			// The TCP stream ended right after an alert record.
			raw.SetReadDeadline(time.Now().Add(5 * time.Second))
			if n, err := raw.Read(make([]byte, 1)); err != io.EOF {
				t.Fatalf("after close_notify: %d bytes, %v; want the FIN", n, err)
			}
			tap.mu.Lock()
			types, lens := records(tap.got.Bytes())
			tap.mu.Unlock()
			if len(types) == 0 || types[len(types)-1] != 21 { // alert
				t.Fatalf("record types on the wire %v, want an alert last", types)
			}
			// 2 bytes of alert, AES-GCM's 8-byte explicit nonce and 16-byte tag.
			if l := lens[len(lens)-1]; l != 26 {
				t.Fatalf("last alert record of %d bytes, want 26 (an encrypted 2-byte alert)", l)
			}
		})
	}
}

// TestTLSCertificateReload: ReloadTLS (SIGHUP in cmd/wspush) and a change of
// the files both put a new pair in service for new connections; a bad pair
// keeps the old one and is counted.
func TestTLSCertificateReload(t *testing.T) {
	certFile, keyFile := writeTestCert(t)
	s := startServer(t, Config{Loops: 1, Echo: true, TLSCert: certFile, TLSKey: keyFile, TLSReloadInterval: 20 * time.Millisecond})
	old := mustPKI(t)
	fresh, err := testpki.New("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	// served reports which CA the server's certificate chains to.
	served := func() *x509.Certificate {
		t.Helper()
		c, err := tls.Dial("tcp", s.Addr().String(), &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatalf("tls dial: %v", err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0]
	}
	signedBy := func(cert *x509.Certificate, p *testpki.PKI) bool {
		_, err := cert.Verify(x509.VerifyOptions{Roots: p.Pool})
		return err == nil
	}
	write := func(cert, key []byte) {
		t.Helper()
		// The key first: a watcher that looks between the two writes sees a
		// mismatched pair, refuses it, and looks again at the next change.
		if err := os.WriteFile(keyFile, key, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(certFile, cert, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if !signedBy(served(), old) {
		t.Fatal("the server does not serve the first pair")
	}
	// An existing connection is untouched by the reloads.
	live := dial(t, s, "/echo")

	t.Run("bad pair keeps the old one", func(t *testing.T) {
		before := metricValue(t, s, "wspush_tls_cert_reload_errors_total")
		write([]byte("not a certificate"), fresh.KeyPEM)
		if err := s.ReloadTLS(); err == nil {
			t.Fatal("ReloadTLS accepted a broken certificate")
		}
		if !signedBy(served(), old) {
			t.Fatal("a bad pair replaced the good one")
		}
		if after := metricValue(t, s, "wspush_tls_cert_reload_errors_total"); after <= before {
			t.Fatalf("reload errors %v -> %v, want an increase", before, after)
		}
	})
	t.Run("file change is picked up", func(t *testing.T) {
		write(fresh.CertPEM, fresh.KeyPEM)
		testsupport.WaitFor(t, "the watcher to load the new pair", func() bool { return signedBy(served(), fresh) })
	})
	t.Run("ReloadTLS", func(t *testing.T) {
		write(old.CertPEM, old.KeyPEM)
		if err := s.ReloadTLS(); err != nil {
			t.Fatalf("ReloadTLS: %v", err)
		}
		if !signedBy(served(), old) {
			t.Fatal("ReloadTLS did not put the pair in service")
		}
		if n := metricValue(t, s, "wspush_tls_cert_reloads_total"); n < 2 {
			t.Fatalf("wspush_tls_cert_reloads_total = %v, want at least 2", n)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := live.Write(ctx, websocket.MessageText, []byte("still here")); err != nil {
		t.Fatal(err)
	}
	if _, b, err := live.Read(ctx); err != nil || string(b) != "still here" {
		t.Fatalf("connection from before the reloads: %q, %v", b, err)
	}
}

// TestTLSBadClientsDoNotHurtOthers shares one loop between TLS peers that
// misbehave before or during the handshake and one that does not.
func TestTLSBadClientsDoNotHurtOthers(t *testing.T) {
	s := startTLSServer(t, Config{Loops: 1, Echo: true, HandshakeTimeout: time.Minute, CloseTimeout: 300 * time.Millisecond})
	good := dial(t, s, "/echo")

	dialTCP := func() net.Conn {
		c, err := net.Dial("tcp", s.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// A client hello cut in half, then nothing: its handshake waits.
	half := dialTCP()
	hello := clientHello(t)
	half.Write(hello[:len(hello)/2])
	// Plain HTTP on the TLS port, and random bytes.
	plain := dialTCP()
	io.WriteString(plain, hsWS("/echo"))
	junk := dialTCP()
	junk.Write(bytes.Repeat([]byte{0x16, 0x03, 0x01, 0xff, 0xff}, 1000))
	// A client that trusts another CA: it aborts the handshake with an alert.
	other, _ := testpki.New("127.0.0.1")
	if c, err := tls.Dial("tcp", s.Addr().String(), other.ClientConfig("127.0.0.1")); err == nil {
		c.Close()
		t.Fatal("a client with another CA completed the handshake")
	}

	for _, c := range []net.Conn{plain, junk} {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		b, err := io.ReadAll(c)
		if err != nil {
			t.Fatalf("bad peer: %v, want the server's FIN", err)
		}
		if bytes.Contains(b, []byte("HTTP/1.1")) {
			t.Fatalf("plain HTTP was answered in clear: %q", b)
		}
	}
	testsupport.WaitFor(t, "three failed handshakes", func() bool {
		return metricValue(t, s, "wspush_tls_handshake_failures_total") >= 3
	})
	for i := range 50 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		msg := fmt.Appendf(nil, "round trip %d %s", i, strings.Repeat("y", 100*i))
		if err := good.Write(ctx, websocket.MessageText, msg); err != nil {
			t.Fatal(err)
		}
		if _, b, err := good.Read(ctx); err != nil || !bytes.Equal(b, msg) {
			t.Fatalf("good client round trip %d: %v", i, err)
		}
		cancel()
	}
	// The half hello is still waiting, holding one handshake slot.
	if n := metricValue(t, s, "wspush_tls_handshakes_in_flight"); n != 1 {
		t.Fatalf("handshakes in flight = %v, want 1 (the half hello)", n)
	}
	half.Close()
	testsupport.WaitFor(t, "the half hello's handshake to be aborted", func() bool {
		return metricValue(t, s, "wspush_tls_handshakes_in_flight") == 0
	})
	testsupport.WaitFor(t, "the bad peers' sockets to be freed", func() bool { return s.tcpConns() == 1 })
}

// TestTLSHandshakePoolPausesAccept: with every handshake slot taken, new
// connections wait in the accept backlog, not in the server, and are taken
// when a slot frees.
func TestTLSHandshakePoolPausesAccept(t *testing.T) {
	s := startTLSServer(t, Config{Loops: 1, Echo: true, TLSHandshakes: 1, HandshakeTimeout: time.Minute})
	holder, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	testsupport.WaitFor(t, "the holder's handshake to start", func() bool {
		return metricValue(t, s, "wspush_tls_handshakes_in_flight") == 1
	})
	type result struct {
		c   *tls.Conn
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 30 * time.Second}, "tcp", s.Addr().String(), clientTLS(t))
		done <- result{c, err}
	}()
	testsupport.WaitFor(t, "the loop to pause accepting", func() bool {
		return metricValue(t, s, "wspush_tls_accept_paused_total") >= 1
	})
	if n := s.tcpConns(); n != 1 {
		t.Fatalf("%d sockets accepted with the only slot taken, want 1", n)
	}
	select {
	case r := <-done:
		t.Fatalf("a handshake completed with no slot free: %v", r.err)
	default:
	}
	holder.Close() // its handshake is aborted; the slot frees; accepting resumes
	r := <-done
	if r.err != nil {
		t.Fatalf("waiting client: %v", r.err)
	}
	r.c.Close()
}

// clientHello returns the first flight of Go's TLS client: the bytes it
// writes before it waits for the server.
func clientHello(t *testing.T) []byte {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	go tls.Client(a, clientTLS(t)).Handshake()
	b.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 16<<10)
	n, err := b.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	return buf[:n]
}

// TestTLSMaxConnsPerIPBeforeHandshake: over TLS a connection over
// -max-conns-per-ip is closed before its handshake (an HTTP 429 would cost
// the handshake the limit saves), and its handshake slot is given back: with
// one slot, the next client still gets through.
func TestTLSMaxConnsPerIPBeforeHandshake(t *testing.T) {
	s := startTLSServer(t, Config{Loops: 1, Echo: true, MaxConnsPerIP: 1, TLSHandshakes: 1})
	first := dial(t, s, "/echo")
	label := `wspush_handshake_failures_total{reason="max_conns_per_ip"}`
	for i := 1; i <= 3; i++ {
		c, err := tls.Dial("tcp", s.Addr().String(), clientTLS(t))
		if err == nil {
			c.Close()
			t.Fatalf("connection %d over the limit completed a TLS handshake", i)
		}
		testsupport.WaitFor(t, "the refusal to be counted", func() bool { return metricValue(t, s, label) == float64(i) })
	}
	first.CloseNow()
	testsupport.WaitFor(t, "the first connection to be freed", func() bool { return s.tcpConns() == 0 })
	dial(t, s, "/echo") // the only slot was not leaked by the refusals
}
