package server

import (
	"errors"
	"net/http"
	"time"

	"github.com/gobwas/ws"

	"github.com/wspush/wspush/auth"
	"github.com/wspush/wspush/frames"
	"github.com/wspush/wspush/netpoll"
	"github.com/wspush/wspush/pubsub"
)

// Connection states.
const (
	stateHandshake uint8 = iota // gathering the HTTP request
	stateOpen                   // WebSocket frames flow both ways
	stateClosing                // our close frame is out; waiting for the peer's, or the timeout
	stateDraining               // our last word is out; input is discarded until the peer's FIN or the timeout
	stateJoining                // upgraded; the 101 waits for the cluster's interest in its topics (pending.go)
)

// session is one connection's protocol state. It is owned by the
// connection's loop (see the package comment).
//
// Every idle connection holds one, so its size is counted: it fits the
// 160-byte allocation size class (TestSessionSizeClass). State that most
// connections never use lives behind pointers allocated when it is (aside,
// claims, tls, proxy), the small fields share one word, the last read's
// time is 8 bytes on the server's monotonic clock (clock.go), the peer
// address 16 (peerIP), the loop's loopServer is looked up (ls), not kept, and
// the Decoder (48 bytes) keeps its reassembly buffer and error out of line.
type session struct {
	srv      *Server
	c        *netpoll.Conn
	dec      frames.Decoder
	topics   []*pubsub.Topic
	lastRead monoTime      // when the current (or last) input was read
	aside    *sessionAside // what only some connections need at times; nil until one is needed

	state      uint8
	upgraded   bool   // counted in Server.open
	echo       bool   // the /echo endpoint
	deflate    bool   // permessage-deflate was negotiated
	pinged     bool   // a ping is out since lastRead
	overIP     bool   // over -max-conns-per-ip: the request gets 429 once it is whole (overPeerLimit)
	cmdStrikes uint16 // refused commands not yet forgiven by allowed ones (ratelimit.go)

	peer   peerIP // counted in Server.peers until the connection closes (peerlimit.go)
	cmdTAT int64  // the command rate limit's bucket: when it is full again, a monoTime (ratelimit.go)

	claims *auth.Claims  // what the token allows (auth.go); nil with auth off
	tls    *sessionTLS   // nil on plain TCP
	proxy  *sessionProxy // nil without -proxy-protocol
}

// sessionAside is what a session needs only at times, behind one pointer in
// every session: allocated the first time either part is needed, and kept.
type sessionAside struct {
	held heldInput     // unfinished message bytes, counted against -max-pending-bytes (limits.go)
	pend *pendingState // a subscription pending on the cluster and what waits behind it; nil when none (pending.go)
}

// setAside is the session's sessionAside, allocated on first use.
func (s *session) setAside() *sessionAside {
	if s.aside == nil {
		s.aside = new(sessionAside)
	}
	return s.aside
}

// ls is the loopServer of the session's loop: looked up rather than kept, 8
// bytes less in every session for two loads per use.
func (s *session) ls() *loopServer { return s.srv.loops[s.c.Loop().ID()] }

// handler adapts Server to netpoll.Handler.
type handler struct{ s *Server }

func (h handler) Open(c *netpoll.Conn) {
	s := &session{srv: h.s, c: c}
	s.dec.MaxMessage = h.s.cfg.MaxMessage
	s.dec.Pool = c.Loop().Pool()
	c.Data = s
	c.SetTimer(time.Now().Add(h.s.cfg.HandshakeTimeout))
	if h.s.proxy != nil {
		s.startProxy() // the client's address, its -max-conns-per-ip count and TLS come after the header
		return
	}
	// Counted from accept, before any byte is read: connections that never
	// finish a handshake count against -max-conns-per-ip too.
	s.peer = toPeerIP(peerAddr(c))
	if !h.s.peers.add(s.peer) {
		if h.s.tls != nil {
			s.refuseBeforeTLS(reasonMaxConnsPerIP)
			return
		}
		s.overPeerLimit()
		return
	}
	if h.s.tls != nil {
		s.startTLS()
	}
}

// overPeerLimit is a plain connection over -max-conns-per-ip (still counted
// while open: it is a descriptor): its request is answered 429 once whole. Answering before the
// request would race the client's write of it (an HTTP client, or a proxy in
// TCP mode, takes an answer that comes first for a broken connection), so it
// waits, but at most maxOverLimitWait: a peer over its limit gets no
// -handshake-timeout to hold descriptors with.
func (s *session) overPeerLimit() {
	s.overIP = true
	s.c.SetTimer(time.Now().Add(min(s.srv.cfg.HandshakeTimeout, maxOverLimitWait)))
}

// maxOverLimitWait bounds how long a connection over -max-conns-per-ip may
// take to send its request.
const maxOverLimitWait = time.Second

func (h handler) Read(c *netpoll.Conn, b []byte) (int, int) {
	s := c.Data.(*session)
	if s.proxy != nil && s.proxy.pending {
		return s.readProxy(b)
	}
	if s.tls != nil {
		s.readTLS(b)
		return len(b), 0
	}
	return s.read(b)
}

func (h handler) Timer(c *netpoll.Conn, now time.Time) { c.Data.(*session).timer(now) }

func (h handler) Close(c *netpoll.Conn, err error) {
	s := c.Data.(*session)
	if s.state == stateHandshake {
		s.srv.metrics.handshakeFailed(reasonEOF) // the peer left before its request was whole
	}
	for _, t := range s.topics {
		s.srv.hub.Unsubscribe(c.Loop().ID(), s, t)
	}
	s.topics = nil
	s.abandonRecoveries()
	s.srv.peers.remove(s.peer)
	if h := s.held(); h != nil {
		s.setHeld(0)
		h.since = time.Time{}
	}
	s.authClosed()
	s.dec.Release()
	if s.tls != nil {
		s.releaseTLS()
	}
	if s.proxy != nil {
		s.closeProxy()
	}
	if s.upgraded {
		s.srv.open.Add(-1)
	}
	s.srv.log.Debug("connection closed", "err", err)
}

// read consumes what it can of b: the handshake, then whole frames.
func (s *session) read(b []byte) (used, need int) {
	s.ls().ping.due = false // the loop's: whatever a panicked read left is not this connection's
	s.lastRead = s.srv.mono(time.Now())
	s.pinged = false
	if s.state == stateHandshake {
		used = s.handshake(b)
		if used == 0 {
			return 0, 0
		}
	}
	used, need, done := s.frames(b, used)
	s.answerPing()
	if !s.hold(len(b)-used, done) {
		return len(b), 0
	}
	return used, need
}

// frames handles the whole frames of b[used:]; done reports whether a data
// message completed.
func (s *session) frames(b []byte, used int) (int, int, bool) {
	done := false
	for used < len(b) && !s.c.Closed() {
		if s.state == stateDraining {
			s.discard(len(b) - used)
			return len(b), 0, done
		}
		if s.state == stateJoining {
			// A client is to wait for the 101; what it sends early is
			// kept, up to a message.
			if len(b)-used > s.dec.MaxMessage {
				s.c.Close(errEarlyData)
				return len(b), 0, done
			}
			return used, 0, done
		}
		m, n, err := s.dec.Next(b[used:])
		used += n
		if s.state == stateClosing {
			s.discard(n) // after our close frame, read at most maxDrain too (limits.go)
		}
		if err != nil {
			s.fail(err)
			continue
		}
		if m.Op == 0 {
			return used, s.dec.Need(), done
		}
		done = done || m.Op == ws.OpText || m.Op == ws.OpBinary
		s.message(m)
	}
	return used, 0, done
}

func (s *session) message(m frames.Message) {
	if m.Op != ws.OpPing {
		s.answerPing() // answers leave in the order of what they answer
	}
	if s.state == stateClosing {
		if m.Op == ws.OpClose && s.tls != nil {
			s.drain() // close_notify, then the FIN; the peer's ends it
		} else if m.Op == ws.OpClose {
			s.c.Close(nil) // the close handshake is complete; the server closes TCP first
		}
		return
	}
	switch m.Op {
	case ws.OpPing:
		if s.controlAllowed() { // a ping over the rate is not answered (ratelimit.go)
			s.ls().ping.set(m.Payload)
		}
	case ws.OpPong:
		s.controlAllowed()
	case ws.OpClose:
		code, _ := frames.ParseClose(m.Payload)
		if len(m.Payload) == 0 {
			s.send(frames.AppendFrame(nil, ws.OpClose, true, nil))
		} else {
			s.send(frames.AppendClose(nil, echoCloseCode(code), ""))
		}
		s.drain() // the server ends TCP first; the peer's FIN completes the close
	case ws.OpText, ws.OpBinary:
		payload := m.Payload
		if m.Compressed {
			pool := s.c.Loop().Pool()
			var err error
			if payload, err = s.ls().inflater.Inflate(pool, m.Payload, s.dec.MaxMessage); err != nil {
				s.fail(err)
				return
			}
			defer pool.Put(payload)
			if m.Op == ws.OpText && !frames.Valid(payload) {
				s.fail(frames.ErrInvalidUTF8)
				return
			}
		}
		s.data(m.Op, payload)
	}
}

// data handles a whole text or binary message.
func (s *session) data(op ws.OpCode, payload []byte) {
	if !s.echo && !s.commandAllowed(len(payload)) {
		return
	}
	switch {
	case s.echo && s.deflate:
		s.send(s.ls().deflater.AppendFrame(nil, op, payload))
	case s.echo:
		s.send(frames.AppendFrame(nil, op, true, payload))
	case op == ws.OpBinary:
		s.admitted(0, len(payload))
		s.reply(errorReply("binary messages are not supported: send JSON commands as text"))
	default:
		s.command(payload)
	}
}

// fail answers a protocol violation with the close code it calls for.
func (s *session) fail(err error) {
	var ce *frames.CloseError
	if !errors.As(err, &ce) {
		ce = &frames.CloseError{Code: ws.StatusInternalServerError, Reason: closeReasonInternal}
	}
	s.srv.log.Debug("protocol error", "code", ce.Code, "err", err)
	s.closeWith(ce.Code, ce.Reason)
	s.drain() // the rest of the input cannot be parsed: FIN right after the close frame
}

// closeWith starts the close handshake: our close frame goes out, the peer's
// answer (or the close timeout) ends the connection.
func (s *session) closeWith(code ws.StatusCode, reason string) {
	if s.state != stateOpen {
		return
	}
	s.answerPing() // before our close frame, which nothing may follow
	s.state = stateClosing
	s.abandonRecoveries()
	s.send(frames.AppendClose(nil, code, reason))
	s.c.SetTimer(time.Now().Add(s.srv.cfg.CloseTimeout))
}

// drain ends the connection after what is queued: a FIN once it is written,
// then the close on the peer's FIN or after CloseTimeout. Input meanwhile is
// read and dropped, so the peer's last bytes never meet a reset.
func (s *session) drain() {
	s.state = stateDraining
	s.abandonRecoveries()
	if s.tls != nil {
		s.closeNotifyTLS() // the TLS session's end goes out before the FIN
	}
	s.c.CloseWrite()
	s.c.SetTimer(time.Now().Add(s.srv.cfg.CloseTimeout))
}

// goAway is the shutdown of one connection: close 1001 for a WebSocket, an
// immediate close for anything else.
func (s *session) goAway() {
	if s.state == stateOpen {
		s.closeWith(ws.StatusGoingAway, closeReasonShutdown)
	} else if s.proxyPending() {
		s.c.Close(ErrShuttingDown) // nobody to answer yet
	} else if s.state == stateHandshake {
		s.refuse(reasonShutdown, http.StatusServiceUnavailable, msgShuttingDown, "")
	} else if s.state == stateJoining {
		s.c.Close(nil)
	}
}

func (s *session) timer(now time.Time) {
	cfg := &s.srv.cfg
	switch s.state {
	case stateHandshake:
		if s.proxyPending() {
			s.srv.proxy.failures.WithLabelValues("timeout").Inc()
			s.c.Close(errProxyTimeout)
			return
		}
		if s.overIP {
			s.refuse(reasonMaxConnsPerIP, http.StatusTooManyRequests, msgTooManyFromIP, "")
			return
		}
		s.refuse(reasonTimeout, http.StatusRequestTimeout, "handshake timeout", "")
	case stateClosing, stateDraining:
		s.c.Close(errCloseTimeout)
	case stateJoining: // the handshake's deadline passed waiting for the cluster
		s.c.Close(errJoinTimeout)
	case stateOpen:
		if s.messageLate(now) || s.expired(now) {
			return
		}
		silent := now.Sub(s.srv.wall(s.lastRead))
		switch {
		case silent >= cfg.IdleTimeout:
			s.srv.log.Debug("closing idle connection", "silent", silent)
			s.closeWith(ws.StatusGoingAway, closeReasonIdle)
		case silent >= cfg.PingInterval && !s.pinged:
			s.pinged = true
			s.send(pingFrame)
			s.setOpenTimer(s.keepaliveDeadline())
		default:
			s.setOpenTimer(s.keepaliveDeadline())
		}
	}
}

// keepaliveDeadline is when an open connection is next to be pinged, or,
// with a ping out, closed as idle.
func (s *session) keepaliveDeadline() time.Time {
	if s.pinged {
		return s.srv.wall(s.lastRead).Add(s.srv.cfg.IdleTimeout)
	}
	return s.srv.wall(s.lastRead).Add(s.srv.cfg.PingInterval)
}

var (
	errCloseTimeout = errors.New("close handshake timed out")
	errJoinTimeout  = errors.New("handshake timed out waiting for the cluster")
)

// pingFrame is the server's ping, shared by every connection.
var pingFrame = frames.AppendFrame(nil, ws.OpPing, true, nil)

// Push queues a push frame shared with the topic's other subscribers. It is
// the connection's bufferedAmount check: past MaxBuffered the connection is a
// slow consumer and is dropped now, before it costs memory or anyone's latency.
func (s *session) Push(p *pubsub.Push) {
	if s.state != stateOpen {
		return
	}
	if s.deflate {
		s.queue(p.Deflated())
	} else {
		s.queue(p.Frame)
	}
	if s.c.Buffered() > s.srv.cfg.MaxBuffered {
		s.dropSlow()
	}
}

// dropSlow drops a slow consumer: its backlog is dropped (but for the rest
// of a frame already partly on the wire), its subscriptions end, and the
// close 1013 is queued behind that rest, never written past it, so the peer
// never sees a truncated frame. The connection then drains like any last
// word: FIN once the close frame is out, the socket closed on the peer's FIN
// or after -close-timeout, whichever comes first. It holds at most that rest
// and the close frame meanwhile.
func (s *session) dropSlow() {
	if s.state == stateDraining {
		return
	}
	buffered := s.c.Buffered()
	if s.tls == nil {
		s.c.DiscardPending()
	} // over TLS no record can be dropped: each carries the next sequence number (dropSlowTLS)
	for _, t := range s.topics {
		s.srv.hub.Unsubscribe(s.c.Loop().ID(), s, t)
	}
	s.topics = nil
	if s.upgraded {
		// No longer an open WebSocket: its -max-conns slot is free now, its
		// descriptor (counted per address) when it closes.
		s.upgraded = false
		s.srv.open.Add(-1)
	}
	s.srv.metrics.slowDropped.Inc()
	s.srv.log.Debug("slow consumer dropped", "buffered", buffered, "kept", s.c.Buffered())
	s.queue(slowCloseFrame) // past the limit by design: the last frame
	s.drain()
}

// statusTryAgainLater is close code 1013, which gobwas/ws does not name.
const statusTryAgainLater ws.StatusCode = 1013

var slowCloseFrame = frames.AppendClose(nil, statusTryAgainLater, closeReasonSlow)

// queue queues b on the connection, by reference (see netpoll.Conn.Queue),
// encrypted first over TLS, without the bufferedAmount check: send and Push
// make it, dropSlow queues its last frame past it.
func (s *session) queue(b []byte) {
	if s.tls != nil {
		s.sendTLS(b)
		return
	}
	s.c.Queue(b)
}
