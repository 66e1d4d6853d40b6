package pubsub

import "math"

// Cluster interest: a node receives a topic's messages from the cluster only
// once the cluster knows the node wants them, which takes a network round
// trip. The Hub never waits for it, and nor does an event loop: a topic that
// gains its first local subscriber is pending, the interest callback only
// hands the change to its owner (a broker goroutine), and the owner calls
// InterestReady when the cluster has the interest, with the stream position
// from which the node receives everything. The Hub then tells each waiting
// subscriber on its own loop (Confirmer), and from then on the topic is
// ready: later subscriptions are in place at once.
//
// Ordering. InterestReady raises the topic's seq to at least the position it
// is given, marks the topic ready and posts each loop's confirmation, all
// under the topic's lock, and every fan-out task is posted under that lock
// too. So on each loop the confirmation runs after every task of a seq at or
// below the position (which skip a waiting subscriber: its since is
// notYet) and before every task of a seq above it. The waiting subscriber is
// given since = position there: it gets exactly the pushes with a larger seq,
// and its answer carries that position. Whether that misses nothing is the
// owner's promise about the position (natsbroker: every message the stream
// stores after it reaches this node).

// notYet is a waiting subscriber's since: no seq is above it, so fan-out
// tasks skip it until it is confirmed.
const notYet = math.MaxUint64

// Confirmer is a Subscriber that can be told when a subscription Subscribe
// left pending is in place; Subscribed is called on the subscriber's loop,
// with the position from which it gets every push (the same meaning as the
// seq Subscribe returns). A subscriber that unsubscribes first is not told.
type Confirmer interface {
	Subscribed(t *Topic, seq uint64)
}

// Waiting reports whether s's subscription to t on loop is pending: it gets
// no pushes and will be told Subscribed. Call it on s's loop.
func (t *Topic) Waiting(loop int, s Subscriber) bool {
	_, ok := t.sets[loop].waiting[s]
	return ok
}

// wait records s, whose since must be set to notYet, as waiting. Called on
// the set's loop with the topic's lock held.
func (set *loopSet) wait(s Subscriber) {
	if set.waiting == nil {
		set.waiting = make(map[Subscriber]struct{})
	}
	set.subs[s] = notYet
	set.waiting[s] = struct{}{}
}

// gainInterest is a topic's change from no local subscriber to one: with an
// interest callback it becomes pending and the callback is told. Called with
// h.mu held.
func (h *Hub) gainInterest(t *Topic) {
	if h.interest == nil {
		return
	}
	t.mu.Lock()
	t.pending = true
	t.mu.Unlock()
	h.interest(t.name, true)
}

// InterestReady is the interest owner's word that the cluster has this
// node's interest in topic and that every message after seq reaches it. A
// pending topic becomes ready, its seq at least seq, and its waiting
// subscribers are told Subscribed with that position; for a topic that is
// not pending (already ready, or gone) it does nothing. Safe from any
// goroutine, never from an event loop task that holds a topic.
func (h *Hub) InterestReady(topic string, seq uint64) {
	h.mu.Lock()
	t := h.topics[topic]
	h.mu.Unlock()
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.pending {
		return
	}
	t.pending = false
	t.seq = max(t.seq, seq)
	at := t.seq
	for i := range t.sets {
		if t.sets[i].n == 0 {
			continue
		}
		set := &t.sets[i]
		h.loops[i].Post(func() { h.confirm(t, set, at) })
	}
}

// confirm runs on a set's loop: the waiting subscribers are in place from
// seq on. They are collected first: Subscribed may (un)subscribe again.
func (h *Hub) confirm(t *Topic, set *loopSet, seq uint64) {
	if len(set.waiting) == 0 {
		return
	}
	waiting := make([]Subscriber, 0, len(set.waiting))
	for s := range set.waiting {
		waiting = append(waiting, s)
		set.subs[s] = seq
	}
	set.waiting = nil
	for _, s := range waiting {
		if c, ok := s.(Confirmer); ok {
			c.Subscribed(t, seq)
		}
	}
}
