package server

import (
	"fmt"
	"time"

	"github.com/gobwas/ws"
)

// The per-connection rate limit on what a client makes the server do: a
// token bucket of -command-burst tokens refilled at -command-rate per second,
// kept as the GCRA's one number (the time the bucket would be full again,
// session.cmdTAT, on the server's monotonic clock like session.lastRead)
// so a connection holds two small fields and no timer.
//
// A token is the work of one small command, so a message is charged for the
// work it asks for, not counted as one (v1.1):
//
//   - a text or binary message costs one token per started -command-bytes of
//     it (one for any command of up to 16 KiB by default), charged before it
//     is parsed: a client cannot make the loop parse more than -command-rate
//     × -command-bytes a second;
//   - a sub or unsub naming N topics costs N tokens in all (what its size paid
//     counts toward them), charged once it is parsed and before any topic is
//     answered: a command can never make the loop answer more than
//     -command-burst topics;
//   - a ping or a pong costs one token; a ping over the rate is not answered.
//
// A message over the rate is not run and is answered {"op":"error","error":
// "rate limited"} (a control frame, nothing). A message that costs more than
// the whole bucket can never pass: it is answered with one error that says
// why, and it empties the bucket (it cost at least all of it), so the next
// large message is refused before it is parsed.
//
// Strikes close a connection that keeps on: every refusal adds its cost, at
// most maxStrikeWeight, every message run takes its cost off (a message
// charged and then refused for its topics takes nothing off), and
// at rateLimitStrikes the connection is closed with 1008 "rate limit". A
// client sending small commands at more than twice the rate soon gets there;
// a client repeating a refused large message gets there on its second
// refusal. /echo (conformance testing) is not limited.

// rateLimitStrikes is how many more refused tokens than allowed ones close
// the connection.
const rateLimitStrikes = 20

// maxStrikeWeight is the most one refusal adds to the strikes: a client
// refused once for a large message gets an error before it is closed.
const maxStrikeWeight = rateLimitStrikes / 2

// Wire words of the rate limit (docs/protocol.md, v1.1).
const (
	msgRateLimited       = "rate limited" // the error answer to a refused command
	closeReasonRateLimit = "rate limit"   // the reason of close 1008
)

// messageCost is what a data message of n bytes costs before it is parsed.
func (s *session) messageCost(n int) int {
	return max(1, (n+s.srv.cfg.CommandBytes-1)/s.srv.cfg.CommandBytes)
}

// commandAllowed charges a data message of n bytes, answering or closing
// when it is over the rate, and reports whether it may be parsed. Its cost is
// taken off the strikes only once it is run (admitted): a message refused
// after parsing (too many topics) must not be forgiven by its own charge.
func (s *session) commandAllowed(n int) bool {
	cost := s.messageCost(n)
	if cost > s.srv.cfg.CommandBurst {
		s.overBurst(cost, fmt.Sprintf("a message of %d bytes costs %d tokens, more than -command-burst (%d): send at most %d bytes", n, cost, s.srv.cfg.CommandBurst, s.srv.cfg.CommandBurst*s.srv.cfg.CommandBytes))
		return false
	}
	if s.take(cost) {
		return true
	}
	s.rateLimited(cost)
	return false
}

// chargeTopics charges a parsed sub or unsub naming n topics what its size
// (paid by commandAllowed) has not, before any topic is answered, and reports
// whether it may run.
func (s *session) chargeTopics(op string, n, size int) bool {
	burst := s.srv.cfg.CommandBurst
	if n > burst {
		s.overBurst(n, fmt.Sprintf("%q names %d topics, more than -command-burst allows in one command (%d)", op, n, burst))
		return false
	}
	if extra := n - s.messageCost(size); extra > 0 && !s.take(extra) {
		s.rateLimited(extra)
		return false
	}
	return true
}

// admitted forgives strikes for a command that runs: its size's cost, and
// its topics'.
func (s *session) admitted(topics, size int) { s.forgive(max(topics, s.messageCost(size))) }

// controlAllowed charges a ping or pong, closing when the client keeps over
// the rate; a refused control frame gets no answer.
func (s *session) controlAllowed() bool {
	if s.echo {
		return true
	}
	if s.take(1) {
		s.forgive(1)
		return true
	}
	s.srv.metrics.controlRateLimited.Inc()
	s.strike(1)
	return false
}

// rateLimited counts a command over the rate: "rate limited", or the close.
func (s *session) rateLimited(cost int) {
	s.srv.metrics.rateLimited.Inc()
	if !s.strike(cost) {
		s.reply(errorReply(msgRateLimited))
	}
}

// overBurst refuses a message that costs more than the whole bucket: one
// error saying why, a strike, and the bucket emptied.
func (s *session) overBurst(cost int, why string) {
	s.srv.metrics.overBurst.Inc()
	s.cmdTAT = int64(s.lastRead) + int64(s.srv.cfg.CommandBurst)*s.interval()
	if !s.strike(cost) {
		s.reply(errorReply(why))
	}
}

// interval is the time one token takes to come back, in ns.
func (s *session) interval() int64 { return int64(time.Second) / int64(s.srv.cfg.CommandRate) }

// take takes cost tokens from the bucket if it holds them.
func (s *session) take(cost int) bool {
	now := int64(s.lastRead) // read() took the time for this input already
	interval := s.interval()
	tat := max(s.cmdTAT, now) + int64(cost)*interval
	if tat-now > int64(s.srv.cfg.CommandBurst)*interval {
		return false
	}
	s.cmdTAT = tat
	return true
}

// forgive takes an allowed message's cost off the strikes.
func (s *session) forgive(cost int) {
	s.cmdStrikes -= uint16(min(int(s.cmdStrikes), cost))
}

// strike adds a refusal of cost to the strikes and closes the connection
// (1008) when they reach rateLimitStrikes; it reports whether it closed.
func (s *session) strike(cost int) bool {
	s.cmdStrikes += uint16(min(cost, maxStrikeWeight))
	if s.cmdStrikes < rateLimitStrikes {
		return false
	}
	s.srv.metrics.rateLimitCloses.Inc()
	s.srv.log.Debug("closing a connection over the command rate", "rate", s.srv.cfg.CommandRate, "burst", s.srv.cfg.CommandBurst)
	s.closeWith(ws.StatusPolicyViolation, closeReasonRateLimit)
	return true
}
