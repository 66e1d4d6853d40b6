package looptls

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wspush/wspush/internal/testsupport"
)

// feedMode shapes how the bytes read from a socket are handed to Conn.Read.
type feedMode struct {
	name  string
	chunk int // split every read into feeds of at most chunk bytes; 0: as read
	batch int // gather at least batch bytes before the first feed after the handshake
}

// testServer accepts on a loopback listener the way a loop would: a Pool
// slot first, then accept; each connection gets a reader goroutine (the
// loop's read events), a writer goroutine (the socket's output queue) and
// its state on the test loop.
type testServer struct {
	tb       testing.TB
	ln       net.Listener
	loop     *testsupport.Serial // stands in for the event loop
	pool     *Pool
	cfg      *tls.Config
	mode     feedMode
	echo     bool
	accepted atomic.Int64
	conns    chan *serverConn // every accepted connection
}

func startTestServer(tb testing.TB, cfg *tls.Config, pool *Pool, mode feedMode) *testServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s := &testServer{tb: tb, ln: ln, loop: testsupport.NewSerial(tb), pool: pool, cfg: cfg, mode: mode, echo: true,
		conns: make(chan *serverConn, 1024)}
	tb.Cleanup(func() { ln.Close() })
	go s.acceptLoop()
	return s
}

func (s *testServer) addr() string { return s.ln.Addr().String() }

func (s *testServer) acceptLoop() {
	ready := make(chan struct{}, 1)
	for {
		if !s.pool.TryAcquire(func() {
			select {
			case ready <- struct{}{}:
			default:
			}
		}) {
			<-ready // excess connections wait in the backlog
			continue
		}
		nc, err := s.ln.Accept()
		if err != nil {
			s.pool.Release()
			return
		}
		s.accepted.Add(1)
		sc := &serverConn{srv: s, nc: nc.(*net.TCPConn), out: make(chan []byte, 4096),
			handshake: make(chan error, 1), closed: make(chan error, 1)}
		s.tb.Cleanup(func() { nc.Close() })
		s.conns <- sc
		s.loop.Post(sc.open)
	}
}

// serverConn is one connection's state, owned by the test loop except for
// its channels.
type serverConn struct {
	srv       *testServer
	nc        *net.TCPConn
	tc        *Conn
	plain     []byte
	gathered  []byte // batch mode: input held back for one big feed
	batched   bool
	out       chan []byte // to the writer goroutine; nil closes the write side
	handshake chan error  // the handshake's result
	closed    chan error  // why the loop closed the connection
	gone      bool
}

func (sc *serverConn) open() {
	sc.tc = Server(sc.srv.cfg, sc.srv.loop.Post, sc, sc.nc.LocalAddr(), sc.nc.RemoteAddr())
	sc.srv.pool.Start(sc.tc)
	go sc.writer()
	go sc.reader()
}

func (sc *serverConn) TLSOutput(c *Conn) { sc.send(c.Output()) }

func (sc *serverConn) TLSHandshakeDone(c *Conn, err error) {
	sc.handshake <- err
	if err != nil {
		sc.send(c.Output())
		sc.close(err)
		return
	}
	var rerr error
	sc.plain, rerr = c.Read(sc.plain, nil)
	sc.handle(rerr)
}

func (sc *serverConn) send(b []byte) {
	if len(b) > 0 && !sc.gone {
		sc.out <- b
	}
}

// close ends the connection from the loop: output so far, then a FIN (the
// writer shuts down the write side), and the Conn is released.
func (sc *serverConn) close(err error) {
	if sc.gone {
		return
	}
	sc.tc.Close()
	sc.out <- nil
	sc.gone = true
	sc.closed <- err
}

// closeTLS is the orderly close: close_notify, then the FIN.
func (sc *serverConn) closeTLS() {
	if sc.gone {
		return
	}
	if err := sc.tc.CloseWrite(); err != nil {
		sc.srv.tb.Errorf("CloseWrite: %v", err)
	}
	sc.send(sc.tc.Output())
	sc.close(nil)
}

func (sc *serverConn) writer() {
	for b := range sc.out {
		if b == nil {
			sc.nc.CloseWrite()
			return
		}
		if _, err := sc.nc.Write(b); err != nil {
			return
		}
	}
}

func (sc *serverConn) reader() {
	buf := make([]byte, 64<<10)
	for {
		n, err := sc.nc.Read(buf)
		if n > 0 {
			b := append([]byte(nil), buf[:n]...)
			sc.srv.loop.Post(func() { sc.input(b) })
		}
		if err != nil {
			sc.srv.loop.Post(func() { sc.close(err) })
			return
		}
	}
}

// input is the loop's read callback.
func (sc *serverConn) input(b []byte) {
	if sc.gone {
		return
	}
	mode := sc.srv.mode
	if mode.batch > 0 && !sc.batched && sc.tc.Established() {
		sc.gathered = append(sc.gathered, b...)
		if len(sc.gathered) < mode.batch {
			return
		}
		b, sc.gathered, sc.batched = sc.gathered, nil, true
	}
	for len(b) > 0 && !sc.gone {
		k := len(b)
		if mode.chunk > 0 {
			k = min(k, mode.chunk)
		}
		var err error
		sc.plain, err = sc.tc.Read(sc.plain, b[:k])
		b = b[k:]
		sc.send(sc.tc.Output())
		sc.handle(err)
	}
}

// handle answers the plaintext gathered so far: echoed back in one Write.
func (sc *serverConn) handle(err error) {
	if sc.srv.echo && len(sc.plain) > 0 && sc.tc.Established() {
		if _, werr := sc.tc.Write(sc.plain); werr != nil {
			sc.srv.tb.Errorf("Write: %v", werr)
		}
		sc.plain = sc.plain[:0]
		sc.send(sc.tc.Output())
	}
	switch {
	case err == io.EOF:
		sc.closeTLS() // the peer's close_notify: answer with ours
	case err != nil:
		sc.close(err)
	}
}

// testCert is a self-signed ECDSA P-256 certificate for 127.0.0.1 and
// "localhost", with its PEM files.
type testCert struct {
	tls      tls.Certificate
	certPEM  []byte
	keyPEM   []byte
	pool     *x509.CertPool
	serialNo int64
}

var serials atomic.Int64

func newTestCert(tb testing.TB, notAfter time.Time) *testCert {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	serial := serials.Add(1)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: "looptls test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     notAfter,
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	c := &testCert{
		certPEM:  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:   pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}),
		pool:     x509.NewCertPool(),
		serialNo: serial,
	}
	if c.tls, err = tls.X509KeyPair(c.certPEM, c.keyPEM); err != nil {
		tb.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	c.pool.AddCert(leaf)
	return c
}

// write stores the pair as cert.pem and key.pem in dir.
func (c *testCert) write(tb testing.TB, dir string) (certFile, keyFile string) {
	tb.Helper()
	return testsupport.WriteCertPair(tb, dir, c.certPEM, c.keyPEM)
}

// serverConfig serves c with the package's defaults.
func serverConfig(c *testCert) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{ALPNHTTP11},
		Certificates: []tls.Certificate{c.tls},
	}
}

func clientConfig(c *testCert, version uint16) *tls.Config {
	return &tls.Config{
		RootCAs:    c.pool,
		ServerName: "localhost",
		NextProtos: []string{"h2", ALPNHTTP11},
		MinVersion: version,
		MaxVersion: version,
	}
}

// next returns the next accepted connection.
func (s *testServer) next(tb testing.TB) *serverConn {
	tb.Helper()
	select {
	case sc := <-s.conns:
		return sc
	case <-time.After(10 * time.Second):
		tb.Fatal("no connection accepted")
		return nil
	}
}

func recvErr(tb testing.TB, ch chan error, what string) error {
	tb.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(10 * time.Second):
		tb.Fatalf("timed out waiting for %s", what)
		return nil
	}
}
