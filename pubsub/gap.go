package pubsub

import "math"

// Gaps in cluster mode (v1.1, issue 11). A cluster node's subscribers get
// the messages the node took in from the cluster; when some never reached
// the node (it was cut off from NATS, or its NATS client dropped messages of
// a slow consumer), its subscribers have a gap that nothing on the node can
// fill. They are never left with it silently: the Hub tells each of them
// (Misser), on its loop, and the server closes those connections with a
// code that makes clients resubscribe from their position, which a
// recovery from the stream then fills (docs/cluster.md "Recovery").
//
// Two ways a gap shows. (1) The stream says with each message the seq of the
// topic's message before it (prev, IngestAfter): prev above the topic's last
// seq here is a message that did not arrive. (2) A missed message with none
// after it yet shows when the node compares the stream's last seq of the
// topic with its own after a reconnect (CheckPosition). Until the topic's
// interest is confirmed (pending) the node's seq is not a position yet, and
// neither check applies.

// NoPrev is IngestAfter's prev when the message's predecessor is unknown:
// no gap check.
const NoPrev = math.MaxUint64

// Misser is a Subscriber that can be told, on its loop, that messages of t
// did not reach it and never will on this subscription.
type Misser interface {
	Missed(t *Topic)
}

// SetStreamEpoch makes every topic the Hub makes take its epoch from epoch,
// the cluster stream's (a new random one while it returns ""), instead of
// making its own: in cluster mode the stream is every topic's history, so
// its epoch is theirs, the same on every node. Call it before the Hub is
// used.
func (h *Hub) SetStreamEpoch(epoch func() string) { h.epochOf = epoch }

// clusterEpoch is the epoch of a new topic without a local history.
func (h *Hub) clusterEpoch() string {
	if h.epochOf != nil {
		if e := h.epochOf(); e != "" {
			return e
		}
	}
	return NewEpoch()
}

// gapBefore reports whether a message whose topic's previous message is prev
// follows a gap. Called with t.mu held.
func (h *Hub) gapBefore(t *Topic, prev uint64) bool {
	return prev != NoPrev && !t.pending && prev > t.seq
}

// CheckPosition compares the stream's last seq of topic (last) with what
// this node took in, once the node's subscription is in place again (after
// a reconnect): above it, messages were missed, the topic's subscribers are
// told, and the topic's seq becomes last, the position every later
// subscriber starts from (every message above it reaches the node). It
// reports whether it found a gap. last NoPrev says the stream's last seq
// could not be read: the subscribers are told (they may have missed
// messages) and the seq stays, since there is no position to take; the next
// message's prev finds any gap again (IngestAfter). Not from an event loop.
func (h *Hub) CheckPosition(topic string, last uint64) bool {
	h.mu.Lock()
	t := h.topics[topic]
	h.mu.Unlock()
	if t == nil {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.pending || last <= t.seq {
		return false
	}
	h.lose(t)
	if last != NoPrev {
		t.seq = last
	}
	return true
}

// Lose tells every subscriber of every topic on this node that it missed
// messages: the cluster stream was replaced, so no position of the old one
// means anything in the new one. The topics are forgotten (a new subscriber
// makes the topic anew, with the new stream's epoch and seqs) while their
// subscribers leave. It returns how many topics it dropped. Not from an
// event loop.
func (h *Hub) Lose() int {
	h.mu.Lock()
	all := make([]*Topic, 0, len(h.topics))
	for _, t := range h.topics {
		all = append(all, t)
	}
	clear(h.topics)
	h.mu.Unlock()
	for _, t := range all {
		t.mu.Lock()
		h.lose(t)
		t.mu.Unlock()
	}
	return len(all)
}

// lose posts to each loop with subscribers of t a task that tells them they
// missed messages. Called with t.mu held, so the tasks run before those of
// any later message.
func (h *Hub) lose(t *Topic) {
	h.gaps.Add(1)
	for i := range t.sets {
		if t.sets[i].n == 0 {
			continue
		}
		set := &t.sets[i]
		h.loops[i].Post(func() { missed(t, set) })
	}
}

// missed runs on a set's loop. The subscribers are collected first: Missed
// may unsubscribe.
func missed(t *Topic, set *loopSet) {
	subs := make([]Subscriber, 0, len(set.subs))
	for s := range set.subs {
		subs = append(subs, s)
	}
	for _, s := range subs {
		if m, ok := s.(Misser); ok {
			m.Missed(t)
		}
	}
}
