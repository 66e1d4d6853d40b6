package looptls

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wspush/wspush/internal/testsupport"
)

// TestEcho runs real crypto/tls clients against Conns driven by the test
// loop: handshake through the Pool, then messages of many sizes echoed
// back, over TLS 1.2 and 1.3 and with the input cut in different ways.
func TestEcho(t *testing.T) {
	cert := newTestCert(t, time.Now().Add(time.Hour))
	sizes := []int{1, 2, 5, 100, 1000, 16383, 16384, 16385, 100_000, 1 << 20}
	total := 0
	for _, n := range sizes {
		total += n
	}
	modes := []feedMode{
		{name: "as-read"},
		{name: "1-byte-feeds", chunk: 1},
		{name: "7-byte-feeds", chunk: 7},
		{name: "one-feed-of-many-records", batch: total},
	}
	versions := []struct {
		name string
		v    uint16
	}{{"tls12", tls.VersionTLS12}, {"tls13", tls.VersionTLS13}}
	for _, ver := range versions {
		for _, mode := range modes {
			t.Run(ver.name+"/"+mode.name, func(t *testing.T) {
				srv := startTestServer(t, serverConfig(cert), NewPool(4, 10*time.Second), mode)
				cc, err := tls.Dial("tcp", srv.addr(), clientConfig(cert, ver.v))
				if err != nil {
					t.Fatal(err)
				}
				defer cc.Close()
				sc := srv.next(t)
				if err := recvErr(t, sc.handshake, "handshake"); err != nil {
					t.Fatalf("server handshake: %v", err)
				}
				st := cc.ConnectionState()
				if st.Version != ver.v || st.NegotiatedProtocol != ALPNHTTP11 {
					t.Fatalf("version %x ALPN %q, want %x %q", st.Version, st.NegotiatedProtocol, ver.v, ALPNHTTP11)
				}
				var srvState tls.ConnectionState
				srv.loop.Do(func() { srvState = sc.tc.ConnectionState() })
				if srvState.NegotiatedProtocol != ALPNHTTP11 || !srvState.HandshakeComplete {
					t.Fatalf("server state: ALPN %q complete %v", srvState.NegotiatedProtocol, srvState.HandshakeComplete)
				}
				// Many records in a row: every message is its own Write, so its own records.
				var want bytes.Buffer
				msgs := make([][]byte, len(sizes))
				for i, n := range sizes {
					msgs[i] = make([]byte, n)
					for j := range msgs[i] {
						msgs[i][j] = byte(rand.IntN(256))
					}
					want.Write(msgs[i])
				}
				errc := make(chan error, 1)
				go func() {
					for _, m := range msgs {
						if _, err := cc.Write(m); err != nil {
							errc <- err
							return
						}
					}
					errc <- nil
				}()
				got := make([]byte, want.Len())
				cc.SetReadDeadline(time.Now().Add(20 * time.Second))
				if _, err := io.ReadFull(cc, got); err != nil {
					t.Fatalf("reading the echo: %v", err)
				}
				if err := <-errc; err != nil {
					t.Fatalf("client write: %v", err)
				}
				if !bytes.Equal(got, want.Bytes()) {
					t.Fatal("echo differs from what was sent")
				}
			})
		}
	}
}

// TestHandshakeNotResumable verifies why the handshake runs on a goroutine:
// fed as the loop would feed it (input so far, then "would block"), the
// handshake fails and the failure is sticky, so it cannot be resumed when
// the rest of the client's flight arrives.
func TestHandshakeNotResumable(t *testing.T) {
	cert := newTestCert(t, time.Now().Add(time.Hour))
	cs, ss := net.Pipe()
	defer cs.Close()
	defer ss.Close()
	// Capture a real ClientHello.
	go tls.Client(cs, clientConfig(cert, tls.VersionTLS13)).Handshake()
	hello := make([]byte, 64<<10)
	n, err := ss.Read(hello)
	if err != nil {
		t.Fatal(err)
	}
	hello = hello[:n]

	tr := newTransport(nil, nil, nil)
	tr.hs = nil // loop mode
	tc := tls.Server(tr, serverConfig(cert))
	tr.in = hello[:len(hello)/2] // half the ClientHello, then would-block
	first := tc.Handshake()
	if !errors.Is(first, errWouldBlock) {
		t.Fatalf("half a ClientHello: %v, want the would-block error", first)
	}
	tr.in = hello[len(hello)/2:] // the rest arrives
	if again := tc.Handshake(); again != first {
		t.Fatalf("after the rest arrived: %v, want the same error again (%v)", again, first)
	}
}

// TestPoolFull: with every slot taken by clients that never send a
// ClientHello, the server stops accepting; the next client waits in the
// backlog, and its handshake completes as soon as a slot frees.
func TestPoolFull(t *testing.T) {
	cert := newTestCert(t, time.Now().Add(time.Hour))
	pool := NewPool(2, time.Minute)
	srv := startTestServer(t, serverConfig(cert), pool, feedMode{})
	var stallers []net.Conn
	for i := 0; i < 2; i++ {
		c, err := net.Dial("tcp", srv.addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		stallers = append(stallers, c)
	}
	testsupport.WaitFor(t, "both slots taken", func() bool { return pool.Stats.InFlight.Load() == 2 })
	done := make(chan error, 1)
	go func() {
		cc, err := tls.Dial("tcp", srv.addr(), clientConfig(cert, tls.VersionTLS13))
		if err == nil {
			// Closed at the end: closing at once could abort the server's
			// side of the handshake before it has read our Finished.
			t.Cleanup(func() { cc.Close() })
		}
		done <- err
	}()
	testsupport.WaitFor(t, "the accept loop to be refused a slot", func() bool { return pool.Stats.Refused.Load() >= 1 })
	// Refused, the accept loop waits for a slot: the third connection is in
	// the kernel's backlog, not accepted.
	if got := srv.accepted.Load(); got != 2 {
		t.Fatalf("accepted %d connections with both slots taken, want 2", got)
	}
	select {
	case err := <-done:
		t.Fatalf("third handshake ended while the pool was full: %v", err)
	default:
	}
	stallers[0].Close() // its handshake fails on EOF and frees the slot
	if err := recvErr(t, done, "the third handshake"); err != nil {
		t.Fatalf("third handshake: %v", err)
	}
	if got := srv.accepted.Load(); got != 3 {
		t.Fatalf("accepted %d, want 3", got)
	}
	srv.next(t) // the stallers
	srv.next(t)
	third := srv.next(t)
	if err := recvErr(t, third.handshake, "the server's side of the third handshake"); err != nil {
		t.Fatalf("third handshake, server side: %v", err)
	}
	if f := pool.Stats.Failed.Load(); f != 1 {
		t.Fatalf("failed handshakes %d, want 1 (the closed staller)", f)
	}
}

// TestHandshakeTimeout: a client that sends half a ClientHello and waits
// loses its slot after the Pool's timeout and gets its connection closed.
func TestHandshakeTimeout(t *testing.T) {
	cert := newTestCert(t, time.Now().Add(time.Hour))
	pool := NewPool(1, 300*time.Millisecond)
	srv := startTestServer(t, serverConfig(cert), pool, feedMode{})
	c, err := net.Dial("tcp", srv.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte{22, 3, 1, 0, 200, 1, 0}) // a handshake record header and a little of the body
	sc := srv.next(t)
	herr := recvErr(t, sc.handshake, "handshake result")
	if !errors.Is(herr, ErrHandshakeTimeout) {
		t.Fatalf("handshake error %v, want ErrHandshakeTimeout", herr)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadAll(c); err != nil {
		t.Fatalf("client did not see the connection end: %v", err)
	}
	if pool.Stats.TimedOut.Load() != 1 || pool.Stats.InFlight.Load() != 0 {
		t.Fatalf("timed out %d, in flight %d; want 1, 0", pool.Stats.TimedOut.Load(), pool.Stats.InFlight.Load())
	}
	// The only slot serves the next client.
	cc, err := tls.Dial("tcp", srv.addr(), clientConfig(cert, tls.VersionTLS13))
	if err != nil {
		t.Fatalf("the slot was not given back: %v", err)
	}
	cc.Close()
}

// TestBadClients: garbage fails the handshake or the connection at once,
// with an error, and frees what it held.
func TestBadClients(t *testing.T) {
	cert := newTestCert(t, time.Now().Add(time.Hour))
	cases := []struct {
		name    string
		send    []byte
		wantErr string
	}{
		{"plain-http", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), "does not look like a TLS handshake"},
		{"sslv2", []byte{0x80, 0x2e, 0x01, 0x00, 0x02}, "SSLv2"},
		{"oversized-record", []byte{22, 3, 1, 0xff, 0xff}, "oversized record"},
		{"bad-hello", append([]byte{22, 3, 1, 0, 8}, bytes.Repeat([]byte{0xee}, 8)...), "handshake"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pool := NewPool(1, time.Minute)
			srv := startTestServer(t, serverConfig(cert), pool, feedMode{})
			c, err := net.Dial("tcp", srv.addr())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.Write(tc.send)
			sc := srv.next(t)
			herr := recvErr(t, sc.handshake, "handshake result")
			if herr == nil || !strings.Contains(herr.Error(), tc.wantErr) {
				t.Fatalf("handshake error %v, want one mentioning %q", herr, tc.wantErr)
			}
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.ReadAll(c); err != nil {
				t.Fatalf("connection not closed: %v", err)
			}
			testsupport.WaitFor(t, "the slot to be free", func() bool { return pool.Stats.InFlight.Load() == 0 })
		})
	}

	t.Run("garbage-after-handshake", func(t *testing.T) {
		srv := startTestServer(t, serverConfig(cert), NewPool(1, time.Minute), feedMode{})
		raw, err := net.Dial("tcp", srv.addr())
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		cc := tls.Client(raw, clientConfig(cert, tls.VersionTLS13))
		if err := cc.Handshake(); err != nil {
			t.Fatal(err)
		}
		sc := srv.next(t)
		if err := recvErr(t, sc.handshake, "handshake"); err != nil {
			t.Fatal(err)
		}
		raw.Write([]byte{23, 3, 3, 0, 20}) // an application-data record that does not decrypt
		raw.Write(bytes.Repeat([]byte{0x42}, 20))
		rerr := recvErr(t, sc.closed, "the server to close")
		if rerr == nil || !strings.Contains(rerr.Error(), "bad record MAC") {
			t.Fatalf("server closed with %v, want bad record MAC", rerr)
		}
		cc.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := cc.Read(make([]byte, 10)); err == nil || !strings.Contains(err.Error(), "bad record MAC") {
			t.Fatalf("client read %v, want the server's bad record MAC alert", err)
		}
	})
}

// eofSpy records whether crypto/tls ever read the end of the TCP stream.
type eofSpy struct {
	net.Conn
	sawEOF atomic.Bool
	last   []byte // the last bytes read
}

func (s *eofSpy) Read(p []byte) (int, error) {
	n, err := s.Conn.Read(p)
	if err == io.EOF {
		s.sawEOF.Store(true)
	}
	if n > 0 {
		s.last = append(s.last[:0], p[:n]...)
	}
	return n, err
}

// TestCloseNotify: the server's close sends close_notify before the FIN,
// and the client's close_notify reads as io.EOF on the server. The client
// tells a close_notify from a bare FIN by crypto/tls returning io.EOF
// without having read the TCP end.
func TestCloseNotify(t *testing.T) {
	cert := newTestCert(t, time.Now().Add(time.Hour))
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(v)+"/server-closes", func(t *testing.T) {
			srv := startTestServer(t, serverConfig(cert), NewPool(1, time.Minute), feedMode{})
			raw, err := net.Dial("tcp", srv.addr())
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			spy := &eofSpy{Conn: raw}
			cc := tls.Client(spy, clientConfig(cert, v))
			if err := cc.Handshake(); err != nil {
				t.Fatal(err)
			}
			sc := srv.next(t)
			if err := recvErr(t, sc.handshake, "handshake"); err != nil {
				t.Fatal(err)
			}
			srv.loop.Post(sc.closeTLS)
			cc.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := cc.Read(make([]byte, 10)); err != io.EOF {
				t.Fatalf("client read %v, want io.EOF", err)
			}
			if spy.sawEOF.Load() {
				t.Fatal("crypto/tls read the FIN: no close_notify came before it")
			}
			if v == tls.VersionTLS12 && spy.last[0] != 21 {
				t.Fatalf("last record type %d, want 21 (alert)", spy.last[0])
			}
			// And the FIN follows.
			if _, err := io.ReadAll(raw); err != nil {
				t.Fatalf("no FIN after close_notify: %v", err)
			}
		})
		t.Run(tls.VersionName(v)+"/client-closes", func(t *testing.T) {
			srv := startTestServer(t, serverConfig(cert), NewPool(1, time.Minute), feedMode{})
			cc, err := tls.Dial("tcp", srv.addr(), clientConfig(cert, v))
			if err != nil {
				t.Fatal(err)
			}
			defer cc.Close()
			sc := srv.next(t)
			if err := recvErr(t, sc.handshake, "handshake"); err != nil {
				t.Fatal(err)
			}
			if err := cc.CloseWrite(); err != nil {
				t.Fatal(err)
			}
			if err := recvErr(t, sc.closed, "the server to close"); err != nil {
				t.Fatalf("server closed with %v, want nil after the client's close_notify (io.EOF)", err)
			}
			cc.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := cc.Read(make([]byte, 10)); err != io.EOF {
				t.Fatalf("client read %v, want io.EOF from the server's close_notify", err)
			}
		})
	}
}

// TestCloseDuringHandshake: the owner closing a Conn whose handshake is
// blocked aborts it, frees the slot, and gets no more events.
func TestCloseDuringHandshake(t *testing.T) {
	cert := newTestCert(t, time.Now().Add(time.Hour))
	pool := NewPool(1, time.Minute)
	srv := startTestServer(t, serverConfig(cert), pool, feedMode{})
	c, err := net.Dial("tcp", srv.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sc := srv.next(t)
	testsupport.WaitFor(t, "the handshake to start", func() bool { return pool.Stats.InFlight.Load() == 1 })
	srv.loop.Do(func() { sc.close(errors.New("owner gave up")) })
	testsupport.WaitFor(t, "the slot to be free", func() bool { return pool.Stats.InFlight.Load() == 0 })
	srv.loop.Do(func() {}) // the handshake's done task, if any, has run
	select {
	case err := <-sc.handshake:
		t.Fatalf("TLSHandshakeDone called after Close: %v", err)
	default:
	}
}

// TestHandshakeInputLimit: a client that floods bytes faster than the
// handshake reads them is cut off at the limit instead of being buffered.
func TestHandshakeInputLimit(t *testing.T) {
	cert := newTestCert(t, time.Now().Add(time.Hour))
	tr := newTransport(nil, nil, nil)
	c := &Conn{tr: tr, tc: tls.Server(tr, serverConfig(cert))}
	big := make([]byte, handshakeInputLimit/2+1)
	if _, err := c.Read(nil, big); err != nil {
		t.Fatalf("first feed: %v", err)
	}
	if _, err := c.Read(nil, big); !errors.Is(err, ErrHandshakeInput) {
		t.Fatalf("second feed: %v, want ErrHandshakeInput", err)
	}
}
