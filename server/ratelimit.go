package server

import (
	"time"

	"github.com/gobwas/ws"
)

// The per-connection command rate limit: a token bucket of -command-burst
// commands refilled at -command-rate per second, kept as the GCRA's one
// number (the time the bucket would be full again, session.cmdTAT) so a
// connection holds two small fields and no timer. A command over the rate is
// not run and is answered {"op":"error","error":"rate limited"}; every
// command the bucket lets through forgives one earlier refusal
// (session.cmdStrikes), and when refusals outnumber those by
// rateLimitStrikes, which a client sending more than twice the rate soon
// does, the connection is closed with 1008 "rate limit". A text or binary
// message on /ws is a command; control frames and /echo are not counted.

// rateLimitStrikes is how many more refused commands than allowed ones close
// the connection.
const rateLimitStrikes = 20

// Wire words of the rate limit (docs/protocol.md, v1.1).
const (
	msgRateLimited       = "rate limited" // the error answer to a refused command
	closeReasonRateLimit = "rate limit"   // the reason of close 1008
)

// commandAllowed applies the rate limit to one command, answering or closing
// when it is over, and reports whether the command may run.
func (s *session) commandAllowed() bool {
	cfg := &s.srv.cfg
	now := s.lastRead.UnixNano() // read() took the time for this input already
	interval := int64(time.Second) / int64(cfg.CommandRate)
	tat := max(s.cmdTAT, now) + interval
	if tat-now <= int64(cfg.CommandBurst)*interval {
		s.cmdTAT = tat
		if s.cmdStrikes > 0 {
			s.cmdStrikes--
		}
		return true
	}
	s.srv.metrics.rateLimited.Inc()
	if s.cmdStrikes++; s.cmdStrikes >= rateLimitStrikes {
		s.srv.metrics.rateLimitCloses.Inc()
		s.srv.log.Debug("closing a connection over the command rate", "rate", cfg.CommandRate, "burst", cfg.CommandBurst)
		s.closeWith(ws.StatusPolicyViolation, closeReasonRateLimit)
		return false
	}
	s.reply(errorReply(msgRateLimited))
	return false
}
