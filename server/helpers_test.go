package server

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/wspush/wspush/internal/testpki"
	"github.com/wspush/wspush/internal/testsupport"
)

// startServer starts a Server on loopback ports picked by the kernel, with
// cfg's non-zero fields over the defaults, and closes it when the test ends.
func startServer(t testing.TB, cfg Config) *Server {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.Admin == "" {
		cfg.Admin = "127.0.0.1:0"
	}
	if cfg.Loops == 0 {
		cfg.Loops = 2
	}
	if cfg.Logger == nil {
		cfg.Logger = testsupport.Logger()
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("start server: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

func (s *Server) wsURL(pathAndQuery string) string {
	if s.TLS() {
		return "wss://" + s.Addr().String() + pathAndQuery
	}
	return "ws://" + s.Addr().String() + pathAndQuery
}

// transport is how a test reaches the public port: plain TCP (ws://) or
// native TLS (wss://). Tests that hold for both run once per transport
// (eachTransport); dial, dialRaw and wsURL follow the server they are given.
type transport struct {
	name string
	tls  bool
}

var transports = []transport{{"ws", false}, {"wss", true}}

// eachTransport runs fn as a subtest per transport.
func eachTransport(t *testing.T, fn func(t *testing.T, tr transport)) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) { fn(t, tr) })
	}
}

// config returns cfg set up for the transport: for TLS, the test PKI's
// certificate and key in files of the test's own.
func (tr transport) config(t testing.TB, cfg Config) Config {
	t.Helper()
	if tr.tls {
		cfg.TLSCert, cfg.TLSKey = writeTestCert(t)
	}
	return cfg
}

// testPKI is the test CA and the server certificate it signed (for
// 127.0.0.1 and localhost), made once for the package's tests.
var testPKI = sync.OnceValues(func() (*testpki.PKI, error) { return testpki.New("127.0.0.1", "localhost") })

func mustPKI(t testing.TB) *testpki.PKI {
	t.Helper()
	p, err := testPKI()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// writeTestCert writes the test PKI's server pair to files in a directory
// of the test's own and returns their paths.
func writeTestCert(t testing.TB) (certFile, keyFile string) {
	t.Helper()
	p := mustPKI(t)
	return testsupport.WriteCertPair(t, t.TempDir(), p.CertPEM, p.KeyPEM)
}

// clientTLS is the TLS client configuration that trusts the test CA only.
func clientTLS(t testing.TB) *tls.Config {
	return mustPKI(t).ClientConfig("127.0.0.1")
}

// dialOptions are coder/websocket's options for s: over TLS, an HTTP
// client that trusts the test CA. opts may be nil.
func dialOptions(t testing.TB, s *Server, opts *websocket.DialOptions) *websocket.DialOptions {
	if !s.TLS() {
		return opts
	}
	if opts == nil {
		opts = &websocket.DialOptions{}
	}
	opts.HTTPClient = &http.Client{Transport: &http.Transport{TLSClientConfig: clientTLS(t)}}
	return opts
}

func (s *Server) adminURL(pathAndQuery string) string {
	return "http://" + s.AdminAddr() + pathAndQuery
}

// dial opens a WebSocket with coder/websocket, an implementation independent
// of gobwas/ws, so a bug the server shares with its library cannot hide.
func dial(t testing.TB, s *Server, pathAndQuery string) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, s.wsURL(pathAndQuery), dialOptions(t, s, nil))
	if err != nil {
		t.Fatalf("dial %s: %v", pathAndQuery, err)
	}
	c.SetReadLimit(64 << 20)
	t.Cleanup(func() { c.CloseNow() })
	return c
}

func sendJSON(t testing.TB, c *websocket.Conn, v string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, []byte(v)); err != nil {
		t.Fatalf("write %s: %v", v, err)
	}
}

// publish POSTs body to topic over the admin API and returns the status and
// the decoded answer.
func publish(t testing.TB, s *Server, topic, body string, header ...string) (int, map[string]any) {
	t.Helper()
	return testsupport.Publish(t, s.AdminAddr(), topic, body, header...)
}

// adminGet GETs pathAndQuery on the admin port, with the bearer token when
// token is not empty, and returns the status.
func adminGet(t testing.TB, s *Server, pathAndQuery, token string) int {
	t.Helper()
	var header []string
	if token != "" {
		header = []string{"Authorization", "Bearer " + token}
	}
	resp := adminRequest(t, s, http.MethodGet, pathAndQuery, header...)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// adminRequest sends a request without a body to the admin API, with the
// header lines given as name, value pairs, and returns the answer; the
// caller closes its body.
func adminRequest(t testing.TB, s *Server, method, pathAndQuery string, header ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, s.adminURL(pathAndQuery), nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, pathAndQuery, err)
	}
	return resp
}

// rawConn is a plain TCP client for what a WebSocket library will not do:
// stop reading, send broken frames, stall mid-handshake. On a TLS server it
// speaks through crypto/tls's client, and tcp is the socket beneath.
type rawConn struct {
	net.Conn
	r   *bufio.Reader
	tcp *net.TCPConn
}

func dialRaw(t testing.TB, s *Server) *rawConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", s.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	rc := &rawConn{Conn: c, tcp: c.(*net.TCPConn)}
	if s.TLS() {
		tc := tls.Client(c, clientTLS(t))
		tc.SetDeadline(time.Now().Add(5 * time.Second))
		if err := tc.Handshake(); err != nil {
			t.Fatalf("tls handshake: %v", err)
		}
		tc.SetDeadline(time.Time{})
		rc.Conn = tc
	}
	rc.r = bufio.NewReader(rc.Conn)
	return rc
}

// upgrade sends a valid handshake for pathAndQuery and reads the 101.
func (c *rawConn) upgrade(t testing.TB, pathAndQuery string) {
	t.Helper()
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", pathAndQuery)
	status := c.readHTTP(t)
	if status != http.StatusSwitchingProtocols {
		t.Fatalf("handshake answered %d, want 101", status)
	}
}

// readHTTP reads an HTTP response head and returns its status.
func (c *rawConn) readHTTP(t testing.TB) int {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		t.Fatalf("read HTTP response: %v", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		io.Copy(io.Discard, resp.Body)
	}
	return resp.StatusCode
}

// readFrame reads one server frame (unmasked, payload < 64 KiB in tests).
func (c *rawConn) readFrame(t testing.TB) (op byte, payload []byte) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var h [2]byte
	if _, err := io.ReadFull(c.r, h[:]); err != nil {
		t.Fatalf("read frame header: %v", err)
	}
	n := int(h[1] & 0x7f)
	switch n {
	case 126:
		var ext [2]byte
		io.ReadFull(c.r, ext[:])
		n = int(ext[0])<<8 | int(ext[1])
	case 127:
		t.Fatalf("test frame too large")
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(c.r, payload); err != nil {
		t.Fatalf("read frame payload: %v", err)
	}
	return h[0] & 0x0f, payload
}

// writeFrame sends one masked client frame: first byte b0 (FIN, RSV, opcode).
func (c *rawConn) writeFrame(t testing.TB, b0 byte, payload []byte) {
	t.Helper()
	mask := [4]byte{1, 2, 3, 4}
	f := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		f = append(f, 0x80|byte(n))
	case n < 1<<16:
		f = append(f, 0x80|126, byte(n>>8), byte(n))
	default:
		f = append(f, 0x80|127, 0, 0, 0, 0, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	f = append(f, mask[:]...)
	for i, b := range payload {
		f = append(f, b^mask[i%4])
	}
	if _, err := c.Write(f); err != nil {
		t.Fatalf("write frame: %v", err)
	}
}

// closeCode reads frames until a close frame and returns its status code.
func (c *rawConn) closeCode(t testing.TB) int {
	t.Helper()
	for {
		op, p := c.readFrame(t)
		if op == 0x8 {
			if len(p) < 2 {
				return 1005
			}
			return int(p[0])<<8 | int(p[1])
		}
	}
}

// logBuffer collects a server's log lines (debug level with logger), for the
// tests that check what the log says, or never says.
type logBuffer struct{ testsupport.SyncBuffer }

func (l *logBuffer) contains(s string) bool { return strings.Contains(l.String(), s) }

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
