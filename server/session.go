package server

import (
	"errors"
	"net/http"
	"net/netip"
	"time"

	"github.com/gobwas/ws"

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
type session struct {
	srv      *Server
	ls       *loopServer
	c        *netpoll.Conn
	dec      frames.Decoder
	topics   []*pubsub.Topic
	lastRead time.Time
	state    uint8
	upgraded bool         // counted in Server.open
	echo     bool         // the /echo endpoint
	deflate  bool         // permessage-deflate was negotiated
	pinged   bool         // a ping is out since lastRead
	pend     pendingState // a subscription pending on the cluster and what waits behind it (pending.go)

	peer       netip.Addr // counted in Server.peers until the connection closes
	cmdTAT     int64      // the command rate limit's bucket: when it is full again, in Unix ns (ratelimit.go)
	cmdStrikes uint16     // refused commands not yet forgiven by allowed ones
}

// handler adapts Server to netpoll.Handler.
type handler struct{ s *Server }

func (h handler) Open(c *netpoll.Conn) {
	s := &session{srv: h.s, ls: h.s.loops[c.Loop().ID()], c: c}
	s.dec.MaxMessage = h.s.cfg.MaxMessage
	s.dec.Pool = c.Loop().Pool()
	c.Data = s
	c.SetTimer(time.Now().Add(h.s.cfg.HandshakeTimeout))
	// Counted from accept, before any byte is read: connections that never
	// finish a handshake count against -max-conns-per-ip too.
	s.peer = peerAddr(c)
	if !h.s.peers.add(s.peer) {
		s.refuse(reasonMaxConnsPerIP, http.StatusTooManyRequests, msgTooManyFromIP, "")
	}
}

func (h handler) Read(c *netpoll.Conn, b []byte) (int, int) { return c.Data.(*session).read(b) }

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
	s.srv.peers.remove(s.peer)
	s.dec.Release()
	if s.upgraded {
		s.srv.open.Add(-1)
	}
	s.srv.log.Debug("connection closed", "err", err)
}

// read consumes what it can of b: the handshake, then whole frames.
func (s *session) read(b []byte) (used, need int) {
	s.lastRead = time.Now()
	s.pinged = false
	if s.state == stateHandshake {
		used = s.handshake(b)
		if used == 0 {
			return 0, 0
		}
	}
	for used < len(b) && !s.c.Closed() {
		if s.state == stateDraining {
			return len(b), 0
		}
		if s.state == stateJoining {
			// A client is to wait for the 101; what it sends early is
			// kept, up to a message.
			if len(b)-used > s.srv.cfg.MaxMessage {
				s.c.Close(errEarlyData)
				return len(b), 0
			}
			return used, 0
		}
		m, n, err := s.dec.Next(b[used:])
		used += n
		if err != nil {
			s.fail(err)
			continue
		}
		if m.Op == 0 {
			return used, s.dec.Need()
		}
		s.message(m)
	}
	return used, 0
}

func (s *session) message(m frames.Message) {
	if s.state == stateClosing {
		if m.Op == ws.OpClose {
			s.c.Close(nil) // the close handshake is complete; the server closes TCP first
		}
		return
	}
	switch m.Op {
	case ws.OpPing:
		s.c.Queue(frames.AppendFrame(nil, ws.OpPong, true, m.Payload))
	case ws.OpPong:
	case ws.OpClose:
		code, _ := frames.ParseClose(m.Payload)
		if len(m.Payload) == 0 {
			s.c.Queue(frames.AppendFrame(nil, ws.OpClose, true, nil))
		} else {
			s.c.Queue(frames.AppendClose(nil, echoCloseCode(code), ""))
		}
		s.drain() // the server ends TCP first; the peer's FIN completes the close
	case ws.OpText, ws.OpBinary:
		payload := m.Payload
		if m.Compressed {
			pool := s.c.Loop().Pool()
			var err error
			if payload, err = s.ls.inflater.Inflate(pool, m.Payload, s.srv.cfg.MaxMessage); err != nil {
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
	if !s.echo && !s.commandAllowed() {
		return
	}
	switch {
	case s.echo && s.deflate:
		s.c.Queue(s.ls.deflater.AppendFrame(nil, op, payload))
	case s.echo:
		s.c.Queue(frames.AppendFrame(nil, op, true, payload))
	case op == ws.OpBinary:
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
	s.state = stateClosing
	s.c.Queue(frames.AppendClose(nil, code, reason))
	s.c.SetTimer(time.Now().Add(s.srv.cfg.CloseTimeout))
}

// drain ends the connection after what is queued: a FIN once it is written,
// then the close on the peer's FIN or after CloseTimeout. Input meanwhile is
// read and dropped, so the peer's last bytes never meet a reset.
func (s *session) drain() {
	s.state = stateDraining
	s.c.CloseWrite()
	s.c.SetTimer(time.Now().Add(s.srv.cfg.CloseTimeout))
}

// goAway is the shutdown of one connection: close 1001 for a WebSocket, an
// immediate close for anything else.
func (s *session) goAway() {
	if s.state == stateOpen {
		s.closeWith(ws.StatusGoingAway, closeReasonShutdown)
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
		s.refuse(reasonTimeout, http.StatusRequestTimeout, "handshake timeout", "")
	case stateClosing, stateDraining:
		s.c.Close(errCloseTimeout)
	case stateJoining: // the handshake's deadline passed waiting for the cluster
		s.c.Close(errJoinTimeout)
	case stateOpen:
		silent := now.Sub(s.lastRead)
		switch {
		case silent >= cfg.IdleTimeout:
			s.srv.log.Debug("closing idle connection", "silent", silent)
			s.closeWith(ws.StatusGoingAway, closeReasonIdle)
		case silent >= cfg.PingInterval && !s.pinged:
			s.pinged = true
			s.c.Queue(pingFrame)
			s.c.SetTimer(s.lastRead.Add(cfg.IdleTimeout))
		default:
			next := s.lastRead.Add(cfg.PingInterval)
			if s.pinged {
				next = s.lastRead.Add(cfg.IdleTimeout)
			}
			s.c.SetTimer(next)
		}
	}
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
		s.c.Queue(p.Deflated())
	} else {
		s.c.Queue(p.Frame)
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
	s.c.DiscardPending()
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
	s.c.Queue(slowCloseFrame)
	s.drain()
}

// statusTryAgainLater is close code 1013, which gobwas/ws does not name.
const statusTryAgainLater ws.StatusCode = 1013

var slowCloseFrame = frames.AppendClose(nil, statusTryAgainLater, closeReasonSlow)
