package server

import (
	"errors"
	"strconv"
	"time"

	"github.com/gobwas/ws"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wspush/wspush/frames"
	"github.com/wspush/wspush/pubsub"
)

// The limits on what one client can make the server hold (issue 10):
//
//   - every byte queued for a connection goes through send (or Push) and
//     counts toward its bufferedAmount; past -max-buffered the connection is
//     dropped with 1013, whatever produced the bytes: pushes, pongs, close
//     replies, command answers, the 101 and HTTP answers. Over 1/16 of it
//     the loop stops reading the connection (netpoll's PauseReadAt) until
//     the kernel takes the queue, so a peer that does not read what it is
//     sent is pushed back on by TCP instead of being answered into memory;
//   - the bytes of unfinished messages (a frame whose end has not arrived,
//     and the fragments of a message in progress) count against the loop's
//     share of -max-pending-bytes; the connection that would go over it is
//     closed with 1009, and a message started more than -message-timeout
//     ago and not complete closes its connection with 1008.

// pauseReadDivisor sets netpoll's PauseReadAt to -max-buffered/16 (64 KiB by
// default): low, because every peer that floods without reading holds up to
// that much (plus one read's answers) until it is dropped or gives up, and
// high enough that a subscriber with a push backlog the kernel is taking
// still has its commands read.
const pauseReadDivisor = 16

// Close reasons of the limits.
const (
	closeReasonPending = "too many pending bytes" // 1009 past -max-pending-bytes
	closeReasonTooSlow = "message too slow"       // 1008 past -message-timeout
)

var (
	errTooMuchPending = &frames.CloseError{Code: ws.StatusMessageTooBig, Reason: closeReasonPending}
	errMessageTooSlow = &frames.CloseError{Code: ws.StatusPolicyViolation, Reason: closeReasonTooSlow}
)

// maxEchoedOp is how much of an unknown op the error answer repeats: an op of
// 1 MiB of '<' would otherwise be answered with 6 MiB of JSON escapes.
const maxEchoedOp = 64

// truncate shortens a client's string for an answer that quotes it.
func truncate(s string) string {
	if len(s) <= maxEchoedOp {
		return s
	}
	return s[:maxEchoedOp] + "..."
}

// send queues b, by reference, for the connection. Every writer but Push
// (which checks the same way) goes through it, so the bufferedAmount check
// covers every byte the server queues. The connection may be closed when it
// returns: callers that go on must check s.gone() before taking resources
// (session.add does). One frame alone on an empty queue is let through
// whatever its size: it is bounded by -max-message (an echo of the largest
// message), and a queue that held nothing is not a slow consumer. Once the
// session drains, its last word (a close frame, an HTTP answer) is out and
// nothing more is queued.
func (s *session) send(b []byte) { s.put(b, false) }

// sendCopy is send for bytes the caller reuses (the loop's handshake
// scratch): a copy is queued, in the connection's queue's own room
// (netpoll.Conn.QueueCopy); over TLS the record is a copy anyway.
func (s *session) sendCopy(b []byte) { s.put(b, true) }

// put is send and sendCopy: b queued by reference or as a copy, then the
// bufferedAmount check.
func (s *session) put(b []byte, copied bool) {
	if s.state == stateDraining {
		return
	}
	if copied && s.tls == nil {
		s.c.QueueCopy(b)
	} else {
		s.queue(b)
	}
	if n := s.c.Buffered(); n > s.srv.cfg.MaxBuffered && n > len(b) {
		s.dropSlow()
	}
}

// pendingShare is one loop's share of -max-pending-bytes: the total split
// evenly, as SO_REUSEPORT spreads connections evenly, so that each loop
// checks its own sum without touching another loop's (no shared counter on
// the read path). A share never goes below one largest message.
func pendingShare(cfg Config) int {
	return max(cfg.MaxPendingBytes/cfg.Loops, cfg.MaxMessage+ws.MaxHeaderSize)
}

// latestPing is the payload of the last ping not yet answered. Pings are
// answered once per read, and before whatever answers the frames after them:
// a burst of pings gets one pong, for the latest, as RFC 6455 5.5.3 allows.
// A ping flood then queues one small frame per read instead of one per ping
// (tiny pings would cost an allocation and a queue slot each, about 13 times
// the bytes bufferedAmount counts for them).
//
// It is the loop's (loopServer.ping), not the connection's: a ping is set
// and answered within one read (session.read answers it before returning),
// and a loop reads one connection at a time, so the 127 bytes need not sit
// in every idle connection's session (its size class fell from 512 to 384
// bytes: docs/benchmarks.md, idle memory).
type latestPing struct {
	due     bool
	n       uint8
	payload [ws.MaxControlFramePayloadSize]byte
}

func (p *latestPing) set(b []byte) { p.n, p.due = uint8(copy(p.payload[:], b)), true }

// answerPing queues the pong for the latest ping, if one is due.
func (s *session) answerPing() {
	p := &s.ls().ping
	if !p.due {
		return
	}
	p.due = false
	if s.state == stateOpen { // nothing follows our close frame
		s.send(frames.AppendFrame(nil, ws.OpPong, true, p.payload[:p.n]))
	}
}

// freeHold is the part of a connection's unfinished input that does not
// count against -max-pending-bytes: bounded per connection, like the smallest
// tail buffer that holds it.
const freeHold = 1 << 10

// maxDrain is how much input a draining connection reads and drops (so the
// peer's last bytes, its close frame among them, meet no reset) before it
// stops reading: a peer still sending after our last word, a flooder that was
// dropped, would otherwise be read at line rate until -close-timeout. It
// bounds a closing connection's input too (our close frame out, the peer's
// awaited): a ping flooder closed 1008 sent on, each frame parsed and dropped,
// and read 64 KiB a read that cost the pushes 0.4 s at p99 (docs/benchmarks.md).
const maxDrain = 64 << 10

// discard counts input dropped while draining.
func (s *session) discard(n int) {
	h := s.heldInput()
	h.drained += n
	if h.drained > maxDrain {
		s.c.StopReading()
	}
}

// gone reports whether the session does no more work for its input: closed,
// or draining after its last word (a slow consumer's 1013 among others).
func (s *session) gone() bool { return s.c.Closed() || s.state == stateDraining }

// heldInput is a session's share of its loop's pending bytes. A session
// allocates it when a read first leaves a message unfinished (or input is
// dropped while draining) and keeps it: an idle connection never needs one.
type heldInput struct {
	bytes   int       // counted in loopServer.pending (beyond freeHold)
	since   time.Time // when the unfinished message started (its first byte, however small); zero when none
	drained int       // input dropped while draining (discard)
}

// hold accounts the bytes of unfinished messages the connection keeps after
// a read (rest, the input not consumed, and the decoder's reassembly buffer)
// against the loop's share of -max-pending-bytes, and runs the clock of
// -message-timeout: started when a message is left unfinished, restarted
// when a data message completes (done). It reports false when the
// connection was failed for going over the bound: its input is then dropped.
func (s *session) hold(rest int, done bool) bool {
	raw := 0
	if !s.c.Closed() && (s.state == stateOpen || s.state == stateClosing) {
		raw = rest + s.dec.Buffered()
	}
	if held := s.held(); raw == 0 && (held == nil || held.bytes == 0 && held.since.IsZero()) {
		return true // the common case: nothing unfinished before or after
	}
	h := s.heldInput()
	// The first freeHold bytes of each connection are not counted: a half
	// control frame or a small command in flight is never refused because
	// others filled the budget with large messages.
	n := max(0, raw-freeHold)
	if n > h.bytes && int(s.ls().pending.Load())-h.bytes+n > s.ls().maxPending {
		s.setHeld(0)
		h.since = time.Time{}
		s.srv.limits.pendingRefused.Inc()
		s.srv.log.Debug("closing a connection past -max-pending-bytes", "held", n, "loop_pending", s.ls().pending.Load())
		s.fail(errTooMuchPending)
		return false
	}
	s.setHeld(n)
	switch {
	case raw == 0:
		h.since = time.Time{}
	case h.since.IsZero() || done:
		h.since = s.srv.wall(s.lastRead)
		if at := h.since.Add(s.srv.cfg.MessageTimeout); s.state == stateOpen && at.Before(h.since.Add(s.srv.cfg.PingInterval)) {
			// After a read no ping or idle deadline comes earlier than
			// PingInterval: the message's deadline is the next one.
			s.setOpenTimer(at)
		}
	}
	return true
}

// setHeld sets the session's pending bytes, keeping the loop's sum.
func (s *session) setHeld(n int) {
	if s.held() == nil && n == 0 {
		return
	}
	h := s.heldInput()
	s.ls().pending.Add(int64(n - h.bytes))
	h.bytes = n
}

// heldInput is the session's heldInput, allocated (in its sessionAside)
// on first use.
func (s *session) heldInput() *heldInput { return &s.setAside().held }

// held is the session's heldInput, nil when it never needed one.
func (s *session) held() *heldInput {
	if s.aside == nil {
		return nil
	}
	return &s.aside.held
}

// messageSince is when the connection's unfinished message started; zero
// when none.
func (s *session) messageSince() time.Time {
	if h := s.held(); h != nil {
		return h.since
	}
	return time.Time{}
}

// messageLate fails the connection whose unfinished message started more
// than -message-timeout ago, and reports whether it did.
func (s *session) messageLate(now time.Time) bool {
	since := s.messageSince()
	if since.IsZero() || now.Sub(since) < s.srv.cfg.MessageTimeout {
		return false
	}
	s.srv.limits.messageTimeouts.Inc()
	s.srv.log.Debug("closing a connection whose message is too slow", "started", since, "held", s.held().bytes)
	s.fail(errMessageTooSlow)
	return true
}

// setOpenTimer sets an open connection's single timer to at, or to an
// earlier deadline: its unfinished message's (-message-timeout) or its
// token's expiry (auth.go).
func (s *session) setOpenTimer(at time.Time) {
	if since := s.messageSince(); !since.IsZero() {
		if due := since.Add(s.srv.cfg.MessageTimeout); due.Before(at) {
			at = due
		}
	}
	if exp := s.expiry(); !exp.IsZero() && exp.Before(at) {
		at = exp
	}
	s.c.SetTimer(at)
}

// countRefusedPublish counts a client publish refused because the loops'
// task queues are full (-max-loop-tasks).
func (s *session) countRefusedPublish(err error) {
	if errors.Is(err, pubsub.ErrLoopsBusy) {
		s.srv.limits.publishRefused.Inc()
	}
}

// limitMetrics are the counters of the limits above and the per-loop gauges
// of pending bytes and tasks.
type limitMetrics struct {
	pendingRefused  prometheus.Counter
	messageTimeouts prometheus.Counter
	publishRefused  prometheus.Counter
}

func newLimitMetrics(s *Server, reg *prometheus.Registry) *limitMetrics {
	m := &limitMetrics{
		pendingRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wspush_pending_refused_total", Help: "Connections closed (1009) because their unfinished message would take their loop past its share of -max-pending-bytes.",
		}),
		messageTimeouts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wspush_message_timeouts_total", Help: "Connections closed (1008) because a message they started did not complete within -message-timeout.",
		}),
		publishRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wspush_loop_tasks_refused_total", Help: "Client publishes refused because a loop had -max-loop-tasks tasks waiting.",
		}),
	}
	reg.MustRegister(m.pendingRefused, m.messageTimeouts, m.publishRefused)
	for i, l := range s.group.Loops() {
		labels := prometheus.Labels{"loop": strconv.Itoa(l.ID())}
		ls := s.loops[i]
		reg.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "wspush_loop_tasks_pending", Help: "Tasks (pushes, client publishes) posted to the loop and not yet run.", ConstLabels: labels,
			}, func() float64 { return float64(l.Stats.Tasks.Load()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "wspush_pending_bytes", Help: "Bytes of unfinished client messages the loop holds (bounded by its share of -max-pending-bytes).", ConstLabels: labels,
			}, func() float64 { return float64(ls.pending.Load()) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "wspush_deferred_reads_total", Help: "Reads put off to a later loop turn: the connection had been read -read-buffer bytes this turn.", ConstLabels: labels,
			}, func() float64 { return float64(l.Stats.DeferredReads.Load()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "wspush_buffer_pool_idle_bytes", Help: "Bytes of buffers the loop keeps for reuse, as of its last tick (bounded by -pool-idle).", ConstLabels: labels,
			}, func() float64 { return float64(l.Stats.PoolIdle.Load()) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "wspush_listener_pauses_total", Help: "Ticks the loop's listener was not polled: out of descriptors with none spare to shed a connection.", ConstLabels: labels,
			}, func() float64 { return float64(l.Stats.ListenPauses.Load()) }),
		)
	}
	return m
}
