package bench

import (
	"errors"
	"io"
	"time"

	"github.com/wspush/wspush/internal/looptls"
)

// wss:// on the epoll client. The TLS handshake runs on a goroutine of the
// loop's looptls.Pool (crypto/tls cannot be resumed after a would-block in
// the middle of a handshake); afterwards the loop drives the connection
// itself, as the server does: ciphertext read from the socket goes through
// Conn.Read, the plaintext the client writes (c.out) is encrypted into
// c.tout when it is flushed.

// clientHandshakes bounds one loop's TLS handshakes in flight; dialing is
// already bounded by WorkerSpec.MaxPending, so this is not expected to bind.
const clientHandshakes = 1 << 16

// startTLS begins c's TLS handshake once its TCP connect has completed.
func (l *loop) startTLS(c *Conn) {
	if l.tlsPool == nil {
		l.tlsPool = looptls.NewPool(clientHandshakes, l.hsTO)
	}
	if !l.tlsPool.TryAcquire(nil) {
		l.end(c, "tls_busy", time.Now().UnixNano())
		return
	}
	c.tls = looptls.Client(c.spec.tls, l.post, tlsEvents{l, c}, nil, nil)
	l.tlsPool.Start(c.tls)
}

// tlsEvents tells the loop about one connection's handshake.
type tlsEvents struct {
	l *loop
	c *Conn
}

func (e tlsEvents) TLSOutput(tc *looptls.Conn) {
	e.c.tout = append(e.c.tout, tc.Output()...)
	e.l.flushTLS(e.c, time.Now().UnixNano())
}

func (e tlsEvents) TLSHandshakeDone(tc *looptls.Conn, err error) {
	l, c, now := e.l, e.c, time.Now().UnixNano()
	c.tout = append(c.tout, tc.Output()...)
	if err != nil {
		l.flushTLS(c, now) // the alert
		l.end(c, "tls_handshake", now)
		return
	}
	pt, err := tc.Read(nil, nil) // what came with the server's last flight
	if err != nil {
		l.end(c, "tls", now)
		return
	}
	c.in = append(c.in, pt...) // handed to process with the next read
	c.out, c.accept = appendHandshake(c.out, c.spec.host, c.spec.path)
	l.flushTLS(c, now)
}

// decrypt turns the ciphertext read from c's socket into plaintext, valid
// until the next call on the loop. False: c has ended.
func (l *loop) decrypt(c *Conn, data []byte, now int64) ([]byte, bool) {
	pt, err := c.tls.Read(l.pbuf[:0], data)
	if cap(pt) > cap(l.pbuf) {
		l.pbuf = pt[:0]
	}
	if out := c.tls.Output(); len(out) > 0 {
		c.tout = append(c.tout, out...)
		l.flushTLS(c, now)
	}
	switch {
	case err == nil:
	case errors.Is(err, io.EOF) && len(pt) > 0: // close_notify after the last frames: process them, the FIN follows
	case errors.Is(err, io.EOF):
		l.end(c, "eof", now)
		return nil, false
	default:
		l.end(c, "tls", now)
		return nil, false
	}
	return pt, c.state != stClosed
}

// flushTLS encrypts the plaintext waiting in c.out and writes what the
// socket takes of the ciphertext.
func (l *loop) flushTLS(c *Conn, now int64) {
	if len(c.out) > 0 && c.tls.Established() {
		if _, err := c.tls.Write(c.out); err != nil {
			l.end(c, "tls", now)
			return
		}
		c.out = c.out[:0]
		c.tout = append(c.tout, c.tls.Output()...)
	}
	l.writeOut(c, &c.tout, now)
}
