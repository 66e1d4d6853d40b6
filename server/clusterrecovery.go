package server

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/wspush/wspush/pubsub"
	"github.com/wspush/wspush/pubsub/natsbroker"
)

// Recovery in cluster mode (v1.1, issue 11; docs/cluster.md "Recovery"):
// the stream is every topic's history, and a resubscribe from a position is
// replayed from it without the loop ever waiting on NATS, then handed over
// to the live subscription with nothing missing and nothing twice.
//
// The subscriber's loop is where the handover is decided. The session
// subscribes as usual (a topic new to the node is pending first), then
// holds the subscription (pubsub.Topic.Hold: live pushes skip it) and hands
// the read to the server's recovery workers; the session holds its later
// commands meanwhile, as for a pending subscription (pending.go). A worker
// reads the topic's messages after the position from the stream
// (natsbroker.ReadSince) and posts them to the loop. There, "live" is the
// last seq the loop handed out for the topic (or the subscription's own
// position, if later): every message above live reaches the loop later, in
// order, and every message up to it the held subscriber skipped. If the
// read reaches live, the answer goes out with the replay and the
// subscription is released at the read's end, all in this loop turn: live
// pushes up to that end (still queued on the loop) are skipped, the later
// ones are sent. If live has moved past the read, another read continues
// from where this one ended, at most maxRecoveryReads in all.
//
// Bounds: one read at a time per connection (later commands wait; a
// handshake's topics are read in turn, clusterjoin.go), at most
// -recovery-queue reads waiting for -recovery-workers workers (past it the
// answer is recovered:false at once), at most -history-size messages and
// -max-buffered bytes per recovery (past it, recovered:false, as on a
// single node: a replay never drops the client as a slow consumer).

// maxRecoveryReads bounds the reads of one recovery before it gives up on
// catching up with live pushes (recovered:false).
const maxRecoveryReads = 4

// clusterRecovery is one subscription being recovered from the stream; it is
// owned by the session's loop, never touched by a worker but for gone.
type clusterRecovery struct {
	// gone is set by the loop once nobody waits for the recovery (the
	// connection closed, POST /unsubscribe took the topic): a worker then
	// skips its queued read instead of spending a NATS round trip on it.
	gone atomic.Bool

	t     *pubsub.Topic
	from  pubsub.Position // the client's position
	at    uint64          // the subscription's own position when it was held
	msgs  []natsbroker.StreamMessage
	bytes int // their frames' size, against -max-buffered
	reads int

	join *joinRecovery // the handshake's recoveries it is one of (clusterjoin.go); nil for a sub command's
	end  uint64        // join: the last read's end, when not failed
	fail bool          // join: not recoverable
}

// unread reports whether r's first read is yet to start (settleJoin).
func (r *clusterRecovery) unread() bool { return r.reads == 0 && !r.fail }

// recoveryRead is one read handed to a worker: values only.
type recoveryRead struct {
	s        *session
	r        *clusterRecovery
	topic    string
	after    pubsub.Position
	limit    int
	maxBytes int
	live     uint64 // the topic's last seq the loop had handed out when it queued the read
}

// startRecoveryWorkers starts the workers that read the stream for the
// recoveries of every loop; they stop when done closes.
func (s *Server) startRecoveryWorkers(done <-chan struct{}) {
	s.recoveries = make(chan recoveryRead, s.cfg.RecoveryQueue)
	// Shared reads leave when their life ends, not at the next read
	// (recoveryshare.go).
	go every(readShareTTL, done, s.readShare.expire)
	for range s.cfg.RecoveryWorkers {
		go func() {
			for {
				select {
				case <-done:
					return
				case rd := <-s.recoveries:
					s.readForRecovery(rd)
				}
			}
		}()
	}
}

// readForRecovery reads from the stream and posts the outcome to the
// session's loop.
func (s *Server) readForRecovery(rd recoveryRead) {
	if rd.r.gone.Load() {
		s.recoverySkips.Add(1)
		return // the loop ignores a late read anyway (recoveryRead)
	}
	ctx, cancel := context.WithTimeout(context.Background(), recoveryReadTimeout)
	k := readKey{epoch: s.nats.Epoch(), topic: rd.topic, after: rd.after, limit: rd.limit, maxBytes: rd.maxBytes}
	res, shared, err := s.readShare.read(ctx, k, rd.live, func(ctx context.Context) (natsbroker.Read, error) {
		return s.nats.ReadSince(ctx, rd.topic, rd.after, rd.limit, rd.maxBytes)
	})
	cancel()
	if shared {
		s.recoveryShares.Add(1)
	}
	rd.s.c.Loop().Post(func() { rd.s.recoveryRead(rd.r, res, err) })
}

// recoveryReadTimeout bounds one read of the stream (each of its requests
// shares it).
const recoveryReadTimeout = 5 * time.Second

// errMissed closes a joining connection whose topic missed messages.
var errMissed = errors.New("messages missed while joining")

// subscribeFromStream is subscribeSince in cluster mode: subscribe, then
// recover from the stream; the answer comes when the recovery ends.
func (s *session) subscribeFromStream(topic string, from pubsub.Position) {
	if !s.mayJoin(topic) {
		return
	}
	if t := s.topic(topic); t != nil {
		// Held already: every push since it subscribed has reached it.
		pos := pubsub.Position{Epoch: t.Epoch(), Seq: t.Position(s.c.Loop().ID(), s)}
		s.srv.metrics.recovery(pos == from)
		s.reply(subscribedReply(topic, pos, pos == from))
		return
	}
	if !s.roomFor(topic) {
		return
	}
	t, _, waiting := s.add(topic)
	if t == nil {
		return // dropped while answering (limits.go)
	}
	p := s.pending()
	p.waitOn, p.recov = t, &clusterRecovery{t: t, from: from}
	if !waiting { // else Subscribed starts it, at the position the cluster confirms
		s.startRecovery(t.Hold(s.c.Loop().ID(), s))
	}
}

// startRecovery starts s.pend().recov, whose subscription is held at
// position at, with its first read.
func (s *session) startRecovery(at uint64) {
	r := s.pending().recov
	r.at = at
	if r.from.Epoch != r.t.Epoch() || !s.readMore(r, r.from) {
		s.endRecovery(r, false, 0) // another stream's position, or no worker free
	}
}

// readMore hands the next read of r, from after, to a worker; false when
// none can take it now (the queue is full).
func (s *session) readMore(r *clusterRecovery, after pubsub.Position) bool {
	r.reads++
	held := r.bytes
	if r.join != nil {
		held = r.join.bytes() // a handshake's reads share -max-buffered (clusterjoin.go)
	}
	rd := recoveryRead{s: s, r: r, topic: r.t.Name(), after: after,
		limit: max(int(s.srv.cfg.streamPerTopic())-len(r.msgs), 1), maxBytes: s.srv.cfg.MaxBuffered - held,
		live: r.live(s.c.Loop().ID())}
	select {
	case s.srv.recoveries <- rd:
		return true
	default:
		s.srv.log.Debug("recovery queue full: answered recovered:false", "topic", r.t.Name())
		return false
	}
}

// abandonRecoveries marks the recoveries s waits for as gone: the
// connection is closing (or closed), so their queued reads are skipped.
func (s *session) abandonRecoveries() {
	p := s.pend()
	if p == nil {
		return
	}
	if p.recov != nil {
		p.recov.gone.Store(true)
	}
	if p.joinRec != nil {
		for _, jt := range p.joinRec.topics {
			if jt.r != nil {
				jt.r.gone.Store(true)
			}
		}
	}
}

// live is the last seq of r's topic the held subscriber has skipped on
// loop: the later of where it was held and what the loop has handed out
// since. A read that reaches it leaves nothing missing.
func (r *clusterRecovery) live(loop int) uint64 { return max(r.at, r.t.LoopLast(loop)) }

// recoveryRead is a worker's read, on the session's loop.
func (s *session) recoveryRead(r *clusterRecovery, res natsbroker.Read, err error) {
	p := s.pend() // nil once nothing is pending: a late read
	current := p != nil && (p.recov == r || r.join != nil && p.joinRec == r.join)
	if !current || s.state != stateOpen || s.c.Closed() {
		return // the connection left or is closing meanwhile
	}
	ok := s.took(r, res, err)
	if r.join == nil && s.topic(r.t.Name()) != r.t {
		// Unsubscribed meanwhile (POST /unsubscribe): nothing to answer.
		p.waitOn, p.recov = nil, nil
		s.resumeHeld()
		return
	}
	if r.join != nil {
		r.fail, r.end = !ok, res.End
		if !ok {
			r.msgs, r.bytes = nil, 0 // what an earlier read took is not replayed
		}
		s.settleJoin()
		return
	}
	if !ok {
		s.endRecovery(r, false, 0)
		return
	}
	loop := s.c.Loop().ID()
	live := r.live(loop)
	switch {
	case res.End >= live:
		s.endRecovery(r, true, res.End)
	case r.reads >= maxRecoveryReads:
		s.srv.log.Debug("recovery did not catch up with live pushes: answered recovered:false", "topic", r.t.Name())
		s.endRecovery(r, false, 0)
	case !s.readMore(r, pubsub.Position{Epoch: r.from.Epoch, Seq: res.End}):
		s.endRecovery(r, false, 0)
	}
}

// took adds a read's messages to r and reports whether r is still
// recoverable.
func (s *session) took(r *clusterRecovery, res natsbroker.Read, err error) bool {
	if err != nil || !res.Recovered || res.Truncated || res.Epoch != r.from.Epoch {
		if err != nil {
			s.srv.log.Debug("recovery read failed: answered recovered:false", "topic", r.t.Name(), "err", err)
		}
		return false
	}
	for _, m := range res.Messages {
		r.bytes += len(m.Data) + len(r.t.Name()) + ingestFrameOverhead
	}
	if r.msgs == nil {
		r.msgs = res.Messages // shared with other readers, read-only; clipped, so an append below copies
	} else {
		r.msgs = append(r.msgs, res.Messages...)
	}
	return true
}

// ingestFrameOverhead is what a push frame adds to a message's data and
// topic, rounded up: the frame header and the envelope.
const ingestFrameOverhead = 64

// endRecovery answers r and releases its subscription: recovered, with the
// replay and live pushes from end on; otherwise at the loop's live position,
// live pushes only. Then what the session held goes on.
func (s *session) endRecovery(r *clusterRecovery, recovered bool, end uint64) {
	loop := s.c.Loop().ID()
	if recovered && s.c.Buffered()+r.bytes > s.srv.cfg.MaxBuffered {
		s.srv.log.Debug("replay larger than -max-buffered: answered recovered:false", "topic", r.t.Name())
		recovered = false
	}
	p := s.pending()
	p.waitOn, p.recov = nil, nil
	s.srv.metrics.recovery(recovered)
	if !recovered {
		pos := r.live(loop)
		r.t.Release(loop, s, pos)
		s.reply(subscribedReply(r.t.Name(), pubsub.Position{Epoch: r.t.Epoch(), Seq: pos}, false))
		s.resumeHeld()
		return
	}
	r.t.Release(loop, s, end)
	s.reply(subscribedReply(r.t.Name(), r.from, true))
	s.replayStream(r)
	s.resumeHeld()
}

// replayStream queues r's messages as ordinary pushes and lets them go.
func (s *session) replayStream(r *clusterRecovery) {
	for _, m := range r.msgs {
		if s.gone() {
			return
		}
		s.Push(s.srv.hub.NewPush(r.t.Name(), m.Seq, m.Data))
	}
	s.srv.metrics.replayed.Add(float64(len(r.msgs)))
	r.msgs = nil
}

// Missed is the Hub's word that messages of t did not reach this node
// (pubsub.Misser, on the loop): the connection is closed with
// closeMissed, so that its client resubscribes from its positions, on this
// node or another, and recovers from the stream.
func (s *session) Missed(t *pubsub.Topic) {
	switch s.state {
	case stateOpen:
		s.srv.metrics.missedClosed.Inc()
		s.closeWith(closeMissed, closeReasonMissed)
	case stateJoining:
		s.c.Close(errMissed) // no answer out yet: the client retries
	}
}
