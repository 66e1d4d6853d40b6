package looptls

import (
	"crypto/tls"
	"errors"
	"net"
	"slices"
)

// Events are the calls a Conn makes to its owner while its handshake runs.
// Both are made on the owner's loop goroutine, in tasks posted with the
// Conn's post function, and never after Close.
type Events interface {
	// TLSOutput: the handshake wrote ciphertext; queue c.Output() on the socket.
	TLSOutput(c *Conn)
	// TLSHandshakeDone: the handshake ended. With a nil error the Conn is
	// established: call c.Read(dst, nil) for plaintext that arrived with
	// the client's last flight, then drive it with Read and Write. With an
	// error, queue c.Output() (the alert, if any) and close the socket.
	TLSHandshakeDone(c *Conn, err error)
}

// Conn states, owned by the loop.
const (
	stateHandshake uint8 = iota // a Pool goroutine runs the handshake
	stateOpen                   // the loop drives the Conn
	stateFailed                 // the handshake failed
	stateClosed                 // Close was called
)

// Conn is one server-side TLS connection owned by an event loop. It never
// touches the socket: the loop hands it the ciphertext it read (Read) and
// the plaintext to send (Write), and takes the ciphertext to send (Output).
//
// All methods are for the owning loop's goroutine only. During the
// handshake a Pool goroutine uses the tls.Conn; it reaches the loop only
// through the post function and the transport's lock.
type Conn struct {
	tc    *tls.Conn
	tr    *transport
	post  func(func())
	ev    Events
	state uint8
	herr  error // the handshake's error, once stateFailed
}

// Server returns a Conn for a connection the loop accepted; start its
// handshake with Pool.Start. post runs a function on the loop's goroutine
// and must be safe to call from any goroutine (netpoll's Loop.Post); ev is
// told about the handshake's output and end. local and remote are what
// GetCertificate sees as the connection's addresses; they may be nil.
func Server(cfg *tls.Config, post func(func()), ev Events, local, remote net.Addr) *Conn {
	c := &Conn{post: post, ev: ev}
	c.tr = newTransport(local, remote, func() { post(c.outputReady) })
	c.tc = tls.Server(c.tr, cfg)
	return c
}

// Client returns a client-side Conn for a socket the loop connected (load
// generators such as wsbench); start its handshake with Pool.Start and drive
// it like a server Conn. cfg must name the server (ServerName) or skip
// verification.
func Client(cfg *tls.Config, post func(func()), ev Events, local, remote net.Addr) *Conn {
	c := &Conn{post: post, ev: ev}
	c.tr = newTransport(local, remote, func() { post(c.outputReady) })
	c.tr.cutHello = false // the server's flight is not ours to keep small
	c.tc = tls.Client(c.tr, cfg)
	return c
}

func (c *Conn) outputReady() {
	if c.state == stateHandshake {
		c.ev.TLSOutput(c)
	}
}

// handshakeDone runs on the loop, posted by the handshake goroutine after
// its last use of the tls.Conn.
func (c *Conn) handshakeDone(err error) {
	if c.state == stateClosed {
		return
	}
	c.tr.toSync()
	if err != nil {
		c.state, c.herr = stateFailed, err
	} else {
		c.state = stateOpen
	}
	c.ev.TLSHandshakeDone(c, err)
}

// Established reports whether the handshake has succeeded and the Conn is
// not closed.
func (c *Conn) Established() bool { return c.state == stateOpen }

// Read takes the ciphertext the loop read from the socket and appends to
// dst the plaintext of the whole records in it, returning the extended
// slice. in is always consumed entirely: a record's unfinished tail stays in
// crypto/tls's input buffer until the rest arrives, and in is not retained
// after the call. While the handshake runs, in is copied to it and nothing
// is returned.
//
// io.EOF means the peer sent close_notify. Any other error is fatal: queue
// Output (crypto/tls may have written an alert) and close the socket.
func (c *Conn) Read(dst, in []byte) ([]byte, error) {
	switch c.state {
	case stateHandshake:
		if len(in) == 0 {
			return dst, nil
		}
		if err := c.tr.feed(in); err != nil {
			c.tr.hs.abort(err)
			return dst, err
		}
		return dst, nil
	case stateFailed:
		return dst, c.herr
	case stateClosed:
		return dst, ErrClosed
	}
	t := c.tr
	if len(t.in) == 0 {
		t.in = in
	} else if len(in) > 0 {
		t.in = append(t.in, in...) // behind input fed during the handshake
	}
	for {
		if len(dst) == cap(dst) {
			dst = slices.Grow(dst, max(len(t.in), 1024))
		}
		n, err := c.tc.Read(dst[len(dst):cap(dst)])
		dst = dst[:len(dst)+n]
		if err != nil {
			t.in = nil // not ours to keep
			if err == errWouldBlock {
				return dst, nil
			}
			return dst, err
		}
	}
}

// Write encrypts p into TLS records and appends them to the output, to be
// taken with Output. It fails before the handshake has succeeded, after
// CloseWrite, and after a fatal error.
func (c *Conn) Write(p []byte) (int, error) {
	switch c.state {
	case stateHandshake:
		return 0, ErrHandshaking
	case stateFailed:
		return 0, c.herr
	case stateClosed:
		return 0, ErrClosed
	}
	return c.tc.Write(p)
}

// Output returns the ciphertext waiting to be sent and forgets it: the
// caller owns the slice and may queue it on the socket by reference. It is
// nil when there is none. Call it after every Read, Write and CloseWrite,
// and when Events.TLSOutput says so, and queue the bytes in that order.
func (c *Conn) Output() []byte { return c.tr.takeOut() }

// CloseWrite writes a close_notify alert to the output. Queue Output and
// only then shut the socket's sending side down: the alert must go out
// before the FIN, or the peer cannot tell the end from a truncation.
func (c *Conn) CloseWrite() error {
	if c.state != stateOpen {
		return nil // no session to close: the FIN alone ends it
	}
	return c.tc.CloseWrite()
}

// Close releases the Conn: a running handshake is aborted (its Pool slot
// frees soon after) and no Events are called any more. It writes nothing
// and does not touch the socket, which the loop closes itself.
func (c *Conn) Close() {
	if c.state == stateHandshake {
		c.tr.hs.abort(ErrClosed)
	}
	c.state = stateClosed
}

// ConnectionState is crypto/tls's view of the established connection
// (version, cipher suite, ALPN protocol, server name).
func (c *Conn) ConnectionState() tls.ConnectionState { return c.tc.ConnectionState() }

// Errors a Conn reports.
var (
	// ErrHandshakeInput: the client sent more than handshakeInputLimit bytes
	// that the handshake had not read yet.
	ErrHandshakeInput = errors.New("looptls: too much input during the TLS handshake")
	// ErrHandshakeTimeout: the handshake did not finish within the Pool's timeout.
	ErrHandshakeTimeout = errors.New("looptls: TLS handshake timed out")
	// ErrClosed: the Conn was closed by its owner.
	ErrClosed = errors.New("looptls: connection closed")
	// ErrHandshaking: plaintext cannot be written before the handshake is done.
	ErrHandshaking = errors.New("looptls: TLS handshake not finished")
)
