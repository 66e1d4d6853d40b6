package looptls

import (
	"crypto/tls"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// handshakeAndEcho connects a client with cfg, checks the handshake and
// one echoed message, and returns both sides.
func handshakeAndEcho(t *testing.T, srv *testServer, cfg *tls.Config, msg []byte) (*serverConn, *tls.Conn) {
	t.Helper()
	cc, err := tls.Dial("tcp", srv.addr(), cfg)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	t.Cleanup(func() { cc.Close() })
	sc := srv.next(t)
	if err := recvErr(t, sc.handshake, "handshake"); err != nil {
		t.Fatalf("server handshake: %v", err)
	}
	echo(t, cc, msg)
	return sc, cc
}

func echo(t *testing.T, cc *tls.Conn, msg []byte) {
	t.Helper()
	go cc.Write(msg)
	got := make([]byte, len(msg))
	cc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(cc, got); err != nil || string(got) != string(msg) {
		t.Fatalf("echo: %v", err)
	}
}

// TestClientHelloShapes: ClientHellos the cutting into fragments must
// survive: a HelloRetryRequest (a second ClientHello), TLS 1.2, and one
// of several KiB.
func TestClientHelloShapes(t *testing.T) {
	cert := newTestCert(t, time.Now().Add(time.Hour))
	manyProtos := clientConfig(cert, tls.VersionTLS13)
	for i := 0; i < 60; i++ {
		manyProtos.NextProtos = append(manyProtos.NextProtos, strings.Repeat("x", 100)+string(rune('a'+i%26)))
	}
	retry := serverConfig(cert)
	retry.CurvePreferences = []tls.CurveID{tls.CurveP384} // not among the client's key shares
	cases := []struct {
		name   string
		server *tls.Config
		client *tls.Config
	}{
		{"tls13", serverConfig(cert), clientConfig(cert, tls.VersionTLS13)},
		{"tls12", serverConfig(cert), clientConfig(cert, tls.VersionTLS12)},
		{"hello-retry", retry, clientConfig(cert, tls.VersionTLS13)},
		{"6KiB-hello", serverConfig(cert), manyProtos},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := startTestServer(t, c.server, NewPool(1, 10*time.Second), feedMode{})
			handshakeAndEcho(t, srv, c.client, []byte("hello"))
		})
	}
}

// TestBufferSizes: what crypto/tls keeps per connection once idle. After
// a handshake and a small request, rawInput stays at 576 bytes thanks to
// the cut ClientHello. After full-size records it is one record plus 512
// bytes, because Read never hands over more than one record; an adapter
// handing over whole reads leaves it more than twice that.
func TestBufferSizes(t *testing.T) {
	cert := newTestCert(t, time.Now().Add(time.Hour))
	srv := startTestServer(t, serverConfig(cert), NewPool(1, 10*time.Second), feedMode{})
	client := clientConfig(cert, tls.VersionTLS13)
	client.DynamicRecordSizingDisabled = true // full-size records from the first
	sc, cc := handshakeAndEcho(t, srv, client, idleRequest)
	var raw, hand, send int
	srv.loop.Do(func() { raw, hand, send = tlsBuffers(sc.tc.tc) })
	t.Logf("after the handshake and a %d-byte request: rawInput %d, hand %d, sendBuf %d", len(idleRequest), raw, hand, send)
	if raw > 576 || send != 0 {
		t.Fatalf("rawInput %d (want at most 576), sendBuf %d (want 0)", raw, send)
	}

	big := make([]byte, 20*16384) // read 64 KiB at a time: several records per read
	echo(t, cc, big)
	srv.loop.Do(func() { raw, _, _ = tlsBuffers(sc.tc.tc) })
	naive := naiveRawInput(t, cert, client, big)
	t.Logf("after 16 KiB records: rawInput %d; with an adapter handing over whole reads: %d", raw, naive)
	if raw > 18432 { // the size class of 576 + 16406 + 512 - 576
		t.Fatalf("rawInput %d after 16 KiB records, want at most 18432", raw)
	}
}

// naiveRawInput is rawInput's capacity after a goroutine crypto/tls server
// reading through naiveConn received msg.
func naiveRawInput(t *testing.T, cert *testCert, client *tls.Config, msg []byte) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	res := make(chan int, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			res <- -1
			return
		}
		defer nc.Close()
		tc := tls.Server(&naiveConn{Conn: nc, buf: make([]byte, 64<<10)}, serverConfig(cert))
		if _, err := io.ReadFull(tc, make([]byte, len(msg))); err != nil {
			res <- -1
			return
		}
		raw, _, _ := tlsBuffers(tc)
		res <- raw
	}()
	cc, err := tls.Dial("tcp", ln.Addr().String(), client)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	if _, err := cc.Write(msg); err != nil {
		t.Fatal(err)
	}
	return <-res
}

// naiveConn is the adapter this package does not use, for comparison: it
// hands crypto/tls everything the last 64 KiB socket read brought.
type naiveConn struct {
	net.Conn
	buf []byte
	in  []byte
}

func (c *naiveConn) Read(p []byte) (int, error) {
	if len(c.in) == 0 {
		n, err := c.Conn.Read(c.buf)
		if n == 0 {
			return 0, err
		}
		c.in = c.buf[:n]
	}
	n := copy(p, c.in)
	c.in = c.in[n:]
	return n, nil
}
