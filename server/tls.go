package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wspush/wspush/internal/looptls"
	"github.com/wspush/wspush/netpoll"
)

// serverTLS is the public port's TLS (-tls-cert, -tls-key): the certificate
// store, the configuration every handshake shares, and the bounded pool the
// handshakes run on. Nil when the port speaks plain TCP.
type serverTLS struct {
	certs  *looptls.Certs
	config *tls.Config
	pool   *looptls.Pool
	stop   context.CancelFunc // ends the file watcher
}

// newServerTLS loads the pair and starts watching its files.
func newServerTLS(cfg Config) (*serverTLS, error) {
	if cfg.TLSCert == "" || cfg.TLSKey == "" {
		return nil, errors.New("-tls-cert and -tls-key go together")
	}
	certs, err := looptls.LoadCerts(cfg.TLSCert, cfg.TLSKey, cfg.Logger)
	if err != nil {
		return nil, err
	}
	ctx, stop := context.WithCancel(context.Background())
	go certs.Watch(ctx, cfg.TLSReloadInterval)
	return &serverTLS{
		certs:  certs,
		config: certs.TLSConfig(),
		pool:   looptls.NewPool(cfg.TLSHandshakes, cfg.HandshakeTimeout),
		stop:   stop,
	}, nil
}

// Admit is netpoll.AcceptGate: a connection is accepted only with a
// handshake slot reserved for it. Without one the loop stops polling its
// listener (the next connections wait in the kernel's backlog) until a
// handshake ends.
func (t *serverTLS) Admit(l *netpoll.Loop) bool {
	return t.pool.TryAcquire(func() { l.Post(l.ResumeAccept) })
}

// Unadmit gives back a slot accept4 did not use.
func (t *serverTLS) Unadmit(*netpoll.Loop) { t.pool.Release() }

// ReloadTLS reads the certificate and key files again (what SIGHUP does in
// cmd/wspush). A pair that does not load keeps the old one in service and
// is returned as the error.
func (s *Server) ReloadTLS() error {
	if s.tls == nil {
		return errors.New("TLS is off (no -tls-cert)")
	}
	return s.tls.certs.Reload()
}

// TLS reports whether the public port speaks TLS.
func (s *Server) TLS() bool { return s.tls != nil }

func (s *Server) stopTLS() {
	if s.tls != nil {
		s.tls.stop()
	}
}

// sessionTLS is one connection's TLS: the loop-driven crypto/tls connection
// and the plaintext that arrived after the last whole unit the session
// consumed (a pool buffer; nil when there is none). Owned by the loop.
type sessionTLS struct {
	conn  *looptls.Conn
	ptail []byte
}

// startTLS begins the TLS handshake of a connection the AcceptGate admitted:
// its slot is the one Pool.Start takes.
func (s *session) startTLS() {
	t := s.srv.tls
	s.tls = &sessionTLS{conn: looptls.Server(t.config, s.c.Loop().Post, s, nil, nil)}
	t.pool.Start(s.tls.conn)
}

// refuseBeforeTLS refuses a connection the AcceptGate admitted before its
// handshake starts (-max-conns-per-ip): an HTTP answer would cost the
// handshake it is meant to save, so the socket is closed, and the slot given
// back.
func (s *session) refuseBeforeTLS(reason failureReason) {
	s.srv.tls.pool.Release()
	s.srv.metrics.handshakeFailed(reason)
	s.state = stateDraining // counted: not an EOF in the handshake
	s.c.Close(fmt.Errorf("refused before the TLS handshake: %s", reason))
}

// TLSOutput is looptls.Events: the handshake wrote a flight.
func (s *session) TLSOutput(c *looptls.Conn) { s.c.Queue(c.Output()) }

// TLSHandshakeDone is looptls.Events: the handshake ended. On success the
// plaintext that came with the client's last flight (the start of the HTTP
// request) is read at once.
func (s *session) TLSHandshakeDone(c *looptls.Conn, err error) {
	s.c.Queue(c.Output()) // the alert of a failure, tickets of a success
	if err != nil {
		s.srv.log.Debug("tls handshake failed", "err", err)
		s.state = stateDraining // nothing to say over a connection without TLS
		s.c.CloseWrite()
		s.c.SetTimer(time.Now().Add(s.srv.cfg.CloseTimeout))
		return
	}
	// The HTTP request gets a -handshake-timeout of its own: the TLS
	// handshake had one (the Pool's).
	s.c.SetTimer(time.Now().Add(s.srv.cfg.HandshakeTimeout))
	s.readTLS(nil)
}

// readTLS is Handler.Read for a TLS connection: in, the ciphertext, is
// always consumed whole (crypto/tls keeps a record's unfinished tail); the
// plaintext of the whole records goes to read, and what read leaves is kept
// in ptail until more arrives.
func (s *session) readTLS(in []byte) {
	t := s.tls
	if !t.conn.Established() {
		if _, err := t.conn.Read(nil, in); err != nil {
			s.c.Close(fmt.Errorf("tls handshake: %w", err))
		}
		return
	}
	ls := s.ls()
	dst := ls.plain[:0]
	if t.ptail != nil {
		dst = t.ptail
	}
	out, err := t.conn.Read(dst, in)
	s.c.Queue(t.conn.Output()) // alerts, key updates
	if t.ptail == nil && cap(out) > cap(ls.plain) && cap(out) <= maxPlainScratch {
		ls.plain = out[:0] // grown for a large read: keep for the next
	}
	used, need := 0, 0
	if len(out) > 0 {
		used, need = s.read(out)
	}
	if s.c.Closed() {
		return // Handler.Close released ptail
	}
	s.keepPlain(out, used, need)
	switch {
	case err == nil:
	case errors.Is(err, io.EOF): // the peer's close_notify: as a FIN on plain TCP
		s.c.Close(io.EOF)
	default:
		s.srv.log.Debug("tls record error", "err", err)
		s.c.Queue(t.conn.Output())
		s.state = stateDraining
		s.c.CloseWrite()
		s.c.SetTimer(time.Now().Add(s.srv.cfg.CloseTimeout))
	}
}

// maxPlainScratch bounds the loop's plaintext scratch kept between reads.
const maxPlainScratch = 256 << 10

// keepPlain keeps out[used:] in ptail, in a buffer sized for need bytes (the
// unfinished unit's total size, when read knows it).
func (s *session) keepPlain(out []byte, used, need int) {
	t := s.tls
	rest := out[used:]
	pool := s.c.Loop().Pool()
	if len(rest) == 0 {
		if t.ptail != nil {
			pool.Put(t.ptail)
			t.ptail = nil
		}
		return
	}
	size := max(need, 2*len(rest), 512)
	if t.ptail != nil && &out[0] == &t.ptail[:1][0] && cap(out) >= size {
		t.ptail = out[:copy(out, rest)] // still the ptail buffer: shift the rest down
		return
	}
	buf := append(pool.Get(size), rest...)
	if t.ptail != nil {
		pool.Put(t.ptail)
	}
	t.ptail = buf
}

// sendTLS encrypts b and queues the records. Nothing can be sent before the
// handshake has succeeded (a refusal then is just the FIN).
func (s *session) sendTLS(b []byte) {
	if _, err := s.tls.conn.Write(b); err != nil {
		s.srv.log.Debug("tls write dropped", "err", err, "bytes", len(b))
		return
	}
	s.c.Queue(s.tls.conn.Output())
}

// closeNotifyTLS queues a close_notify alert, to go out before the FIN.
func (s *session) closeNotifyTLS() {
	s.tls.conn.CloseWrite()
	s.c.Queue(s.tls.conn.Output())
}

// dropSlowTLS: a slow consumer over TLS is dropped by dropSlow, but for
// one thing. Plain TCP drops its backlog (netpoll.Conn.DiscardPending); the
// records queued over TLS cannot be dropped: each carries the next sequence
// number, so a close frame encrypted after a gap would fail the peer's
// decryption. So the queue stays and the 1013 close and close_notify go
// behind it; the session has left its topics and stateOpen, and the socket
// is closed after -close-timeout whether or not the peer has read that far.
// The memory held is what was already queued, for at most that long.

// releaseTLS is the end of the connection's TLS: a running handshake is
// aborted, and the plaintext tail goes back to the pool.
func (s *session) releaseTLS() {
	t := s.tls
	t.conn.Close()
	if t.ptail != nil {
		s.c.Loop().Pool().Put(t.ptail)
		t.ptail = nil
	}
}

// registerTLSMetrics adds the TLS collectors when TLS is on.
func (m *metrics) registerTLSMetrics(s *Server) {
	if s.tls == nil {
		return
	}
	st, certs := &s.tls.pool.Stats, s.tls.certs
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "wspush_tls_handshakes_in_flight", Help: "TLS handshakes running (at most -tls-handshakes)."},
			func() float64 { return float64(st.InFlight.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "wspush_tls_handshakes_total", Help: "TLS handshakes started."},
			func() float64 { return float64(st.Started.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "wspush_tls_handshake_failures_total", Help: "TLS handshakes that failed, timeouts included."},
			func() float64 { return float64(st.Failed.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "wspush_tls_handshake_timeouts_total", Help: "TLS handshakes not done within -handshake-timeout."},
			func() float64 { return float64(st.TimedOut.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "wspush_tls_accept_paused_total", Help: "Times a loop found every handshake slot taken and left connections in the accept backlog."},
			func() float64 { return float64(st.Refused.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "wspush_tls_cert_reloads_total", Help: "Certificate pairs loaded after the first (SIGHUP or a file change)."},
			func() float64 { return float64(certs.Reloads.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "wspush_tls_cert_reload_errors_total", Help: "Certificate reloads that failed and kept the old pair."},
			func() float64 { return float64(certs.ReloadErrors.Load()) }),
	)
}
