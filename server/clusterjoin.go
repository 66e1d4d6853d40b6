package server

import "github.com/wspush/wspush/pubsub"

// A listen-only resume in cluster mode (v1.1, issue 11): GET /ws?topics=&since=
// on a cluster node. As on a single node (since.go, upgradeSince), the 101
// comes first, then every subscribed answer in the order of topics, then
// the replays in that order. The answers from the first topic named in
// since on wait for the stream reads (clusterrecovery.go), run one after
// the other in the order of topics, each within what the earlier ones left
// of -max-buffered: a handshake holds at most about -max-buffered of replay
// (reads at once would hold -max-buffered per topic, -max-subs times as
// much). Every topic of the wait is held (no push before its answer). When
// every topic has been read, each recovered topic's read must reach its
// loop's live position in that same loop turn; those that fall behind read
// on, one at a time (at most maxRecoveryReads each), and the answers wait
// again. Then, in one loop turn, the answers, the replays, and every topic
// released: a recovered one at its read's end, the others at their live
// position. Commands the client sends meanwhile wait (pending.go).

// joinRecovery is a handshake's answers waiting for recoveries.
type joinRecovery struct {
	topics []joinTopic
}

// joinTopic is one held topic of a joinRecovery.
type joinTopic struct {
	t  *pubsub.Topic
	at uint64           // its position when held
	r  *clusterRecovery // nil: not named in since
}

// joinFromStream holds the handshake's topics names, already subscribed,
// and starts the reads of those named in since.
func (s *session) joinFromStream(names []string, since map[string]pubsub.Position) {
	loop := s.c.Loop().ID()
	j := &joinRecovery{}
	for _, name := range names {
		t := s.topic(name)
		if t == nil {
			continue
		}
		jt := joinTopic{t: t, at: t.Hold(loop, s)}
		if from, ok := since[name]; ok {
			// Read in turn by settleJoin; another stream's position fails.
			jt.r = &clusterRecovery{t: t, from: from, at: jt.at, join: j, fail: from.Epoch != t.Epoch()}
		}
		j.topics = append(j.topics, jt)
	}
	if len(j.topics) == 0 {
		return
	}
	p := s.pending()
	p.joinRec, p.waitOn = j, j.topics[0].t // later commands wait
	s.settleJoin()
}

// settleJoin starts the handshake's next read, one at a time: first each
// topic's, then, once all were read, the next for a recovered topic that
// has not caught up with its loop. With none left to start it answers. It
// runs when no read is in flight: at the start (joinFromStream) and when
// the one read ends (recoveryRead).
func (s *session) settleJoin() {
	j := s.pending().joinRec
	for _, jt := range j.topics {
		r := jt.r
		if r == nil || !r.unread() {
			continue
		}
		if s.readMore(r, r.from) {
			return
		}
		r.fail = true // no worker free
	}
	loop := s.c.Loop().ID()
	for _, jt := range j.topics {
		r := jt.r
		if r == nil || r.fail || r.end >= r.live(loop) {
			continue
		}
		if r.reads >= maxRecoveryReads || !s.readMore(r, pubsub.Position{Epoch: r.from.Epoch, Seq: r.end}) {
			s.srv.log.Debug("recovery did not catch up with live pushes: answered recovered:false", "topic", r.t.Name())
			r.fail, r.msgs, r.bytes = true, nil, 0
			continue
		}
		return
	}
	s.answerJoin()
}

// bytes is what the join's recoveries hold of replay, against -max-buffered.
func (j *joinRecovery) bytes() int {
	n := 0
	for _, jt := range j.topics {
		if jt.r != nil && !jt.r.fail {
			n += jt.r.bytes
		}
	}
	return n
}

// answerJoin sends the held answers, then the replays, and releases every
// topic, in this loop turn. A replay that would take the connection past
// -max-buffered is answered recovered:false instead, as on a single node.
func (s *session) answerJoin() {
	p := s.pending()
	j := p.joinRec
	p.joinRec, p.waitOn = nil, nil
	loop := s.c.Loop().ID()
	planned := s.c.Buffered()
	for _, jt := range j.topics {
		r := jt.r
		if s.topic(jt.t.Name()) != jt.t {
			if r != nil {
				r.fail = true // unsubscribed meanwhile (POST /unsubscribe): no answer, no replay
			}
			continue
		}
		if r != nil && !r.fail && planned+r.bytes <= s.srv.cfg.MaxBuffered {
			planned += r.bytes
			s.srv.metrics.recovery(true)
			jt.t.Release(loop, s, r.end)
			s.reply(subscribedReply(jt.t.Name(), r.from, true))
			continue
		}
		pos := max(jt.at, jt.t.LoopLast(loop))
		jt.t.Release(loop, s, pos)
		if r == nil {
			s.reply(reply{Op: "subscribed", Topic: jt.t.Name(), Seq: &pos, Epoch: jt.t.Epoch()})
			continue
		}
		r.msgs, r.fail = nil, true
		s.srv.metrics.recovery(false)
		s.reply(subscribedReply(jt.t.Name(), pubsub.Position{Epoch: jt.t.Epoch(), Seq: pos}, false))
	}
	for _, jt := range j.topics {
		if jt.r != nil && !jt.r.fail {
			s.replayStream(jt.r)
		}
	}
	s.resumeHeld()
}
