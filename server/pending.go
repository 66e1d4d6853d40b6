package server

import (
	"errors"
	"slices"

	"github.com/wspush/wspush/pubsub"
)

// Deferred answers. In cluster mode the first subscription of a topic on a
// node is pending until NATS has the node's interest (pubsub/interest.go):
// the loop does not wait for that round trip, the session answers
// "subscribed" when the Hub confirms it (Subscribed, on the loop). The
// protocol answers in order, so meanwhile the session holds what comes
// after the pending topic: the rest of that "sub" command's topics and the
// commands that follow, replayed once the answer is out. Frames are still
// read (pings answered, a close honoured); only commands wait, bounded by
// maxHeldBytes.
//
// A handshake whose ?topics= include a pending topic is joining: every topic
// is subscribed, and the 101 and the answers go out once the last pending
// one is confirmed, so "subscribed before the 101" still holds. Pushes of the
// topics already in place are skipped meanwhile (the session is not open),
// which their answers' positions (Topic.Position) account for.

// closeReasonHeld goes with 1013 when a client's commands held behind a
// pending subscription pass maxHeldBytes.
const closeReasonHeld = "too many commands while a subscription is pending"

// errEarlyData closes a joining connection that sends more than a message
// before its 101.
var errEarlyData = errors.New("data before the 101")

// pendingState is a session's deferred work; the zero value holds nothing.
type pendingState struct {
	waitOn    *pubsub.Topic              // the pending subscription of a command, nil if none
	rest      []string                   // the topics of that "sub" command after it
	since     map[string]pubsub.Position // their positions, of that command's "since"
	held      [][]byte                   // commands received since, copied, in order
	heldBytes int

	// recov: waitOn is being recovered from the cluster stream
	// (clusterrecovery.go); answered when that ends.
	recov *clusterRecovery
	// joinRec: the handshake's answers wait for recoveries from the
	// cluster stream (clusterjoin.go).
	joinRec *joinRecovery

	join *joinState // the handshake's pending topics, nil if none
}

// joinState is a joining connection's 101 and topics.
type joinState struct {
	resp    []byte
	topics  []string
	since   map[string]pubsub.Position // ?since= (cluster mode: recovered from the stream, clusterjoin.go)
	waiting int                        // pending topics not yet confirmed
	left    []string                   // topics the server API took meanwhile: answered "unsubscribed" after the 101
}

// waiting reports whether commands must be held.
func (s *session) waiting() bool { p := s.pend(); return p != nil && p.waitOn != nil }

// pend is the session's deferred work; nil when none.
func (s *session) pend() *pendingState {
	if s.aside == nil {
		return nil
	}
	return s.aside.pend
}

// dropPending drops the session's deferred work, done.
func (s *session) dropPending() {
	if s.aside != nil {
		s.aside.pend = nil
	}
}

// pending is the session's deferred work, allocated on first use and dropped
// once it is done: most connections never wait on the cluster, and holding
// pendingState in every session would put each one a size class up
// (docs/benchmarks.md, idle memory).
func (s *session) pending() *pendingState {
	a := s.setAside()
	if a.pend == nil {
		a.pend = new(pendingState)
	}
	return a.pend
}

// holdCommand keeps a command for after the pending answer. Past maxHeldBytes the
// client is sending faster than the cluster answers: it is closed with 1013
// rather than held without bound.
func (s *session) holdCommand(payload []byte) {
	limit := s.maxHeldBytes()
	p := s.pending()
	if p.heldBytes+len(payload) > limit {
		s.srv.log.Debug("commands held past the limit while a subscription is pending", "held", p.heldBytes, "limit", limit)
		s.closeWith(statusTryAgainLater, closeReasonHeld)
		return
	}
	p.held = append(p.held, append([]byte(nil), payload...))
	p.heldBytes += len(payload)
}

// maxHeldBytes bounds the commands one connection may have held: one
// command's worth (-max-command).
func (s *session) maxHeldBytes() int { return s.srv.maxCommand() }

// maxCommand is the largest client message on /ws: -max-command, and never
// more than -max-message.
func (srv *Server) maxCommand() int { return min(srv.cfg.MaxCommand, srv.cfg.MaxMessage) }

// Subscribed is the Hub's confirmation of a pending subscription, on the
// session's loop (pubsub.Confirmer).
func (s *session) Subscribed(t *pubsub.Topic, seq uint64) {
	p := s.pend()
	if p == nil {
		return // nothing waits on a confirmation
	}
	switch {
	case s.state == stateJoining:
		if p.join.waiting--; p.join.waiting == 0 {
			s.joined()
		}
	case s.state != stateOpen:
		s.dropPending()
	case t == p.waitOn && p.recov != nil:
		s.startRecovery(t.Hold(s.c.Loop().ID(), s)) // answered when it ends
	case t == p.waitOn:
		p.waitOn = nil
		s.reply(reply{Op: "subscribed", Topic: t.Name(), Seq: &seq, Epoch: t.Epoch()})
		s.resumeHeld()
	}
}

// resumeHeld carries on with what was held, until it is done or waits again.
func (s *session) resumeHeld() {
	for s.state == stateOpen && !s.waiting() {
		p := s.pend() // again each time: a command may have finished with it
		switch {
		case p == nil:
			return // nothing held
		case len(p.rest) > 0:
			rest, since := p.rest, p.since
			p.rest, p.since = nil, nil
			s.subscribeAll(slices.Values(rest), since)
		case len(p.held) > 0:
			cmd := p.held[0]
			p.held[0] = nil
			p.held = p.held[1:]
			p.heldBytes -= len(cmd)
			s.command(cmd)
		default:
			s.dropPending() // done: drop it with the emptied slices' arrays
			return
		}
	}
}

// joined opens a joining connection: the 101, then one answer per topic, in
// order, each at its position now.
func (s *session) joined() {
	p := s.pending()
	j := p.join
	p.join = nil
	s.open(j.resp, j.topics, j.since)
	for _, name := range j.left {
		if s.state != stateOpen {
			return // dropped while answering (limits.go)
		}
		s.reply(reply{Op: "unsubscribed", Topic: name})
	}
}

// leaveWhileJoining is the server API's unsubscribe (POST /unsubscribe)
// for a connection whose 101 waits for the cluster: topic leaves the
// handshake's topics and, if the connection was waiting for its interest,
// the wait; after the 101 the client is told "unsubscribed", as an open
// connection is. It reports whether the connection held topic.
func (s *session) leaveWhileJoining(topic string) bool {
	j := s.pend().join
	i := slices.Index(j.topics, topic)
	t := s.topic(topic)
	if i < 0 || t == nil {
		return false
	}
	waiting := t.Waiting(s.c.Loop().ID(), s) // Hub confirms no one who left
	s.unsubscribe(topic)
	j.topics = slices.Delete(j.topics, i, i+1)
	delete(j.since, topic)
	j.left = append(j.left, topic)
	if waiting {
		if j.waiting--; j.waiting == 0 {
			s.joined()
		}
	}
	return true
}

// disconnect closes the connection with 4002 for the server API (POST
// /disconnect). A joining connection (its 101 waits for the cluster) gets
// its 101 at once with the close right behind it, so its client learns
// 4002 and stays away, as an open one does; without the 101 it would see a
// failed handshake and reconnect. What it waited for is dropped: a late
// confirmation or recovery read finds nothing pending.
func (s *session) disconnect() {
	if s.state == stateJoining {
		resp := s.pend().join.resp // a copy the session owns (upgrade)
		s.dropPending()
		s.state = stateOpen
		s.send(resp)
	}
	s.closeWith(closeDisconnected, closeReasonDisconnected)
}

// abandonWait follows the server API's unsubscribe from topic (POST
// /unsubscribe): when a command's answer was waiting for that topic
// (pending on the cluster, or being recovered), the Hub will not confirm it
// (the subscriber left its waiting set) and a recovery read finds it gone,
// so the topic is answered nothing and what was held goes on. A
// handshake's recoveries see it themselves (answerJoin).
func (s *session) abandonWait(topic string) {
	p := s.pend() // nil when nothing waits
	if p == nil || p.waitOn == nil || p.joinRec != nil || p.waitOn.Name() != topic || s.holds(topic) {
		return
	}
	if p.recov != nil {
		p.recov.gone.Store(true)
	}
	p.waitOn, p.recov = nil, nil
	s.resumeHeld()
}
