package pubsub

import "sync"

// Topic is one topic's sequence and its per-loop subscriber sets.
type Topic struct {
	name  string
	epoch string   // the stream's epoch: immutable; a recreated topic is a new Topic
	hist  *History // its history when the Hub keeps one (SetHistory), else nil
	refs  int      // subscribers on all loops; guarded by Hub.mu

	mu      sync.Mutex
	seq     uint64
	sets    []loopSet // indexed by loop
	dead    bool      // forgotten by Hub.Sweep: a publish that finds it so looks the topic up again
	pending bool      // the cluster interest is not in place yet (interest.go)
}

// loopSet is a topic's subscribers on one loop. subs is touched only by that
// loop's goroutine; n is written by that loop under Topic.mu and read by
// publishers under Topic.mu.
type loopSet struct {
	subs map[Subscriber]uint64 // subscriber -> the topic's seq when it subscribed
	last uint64                // the last seq this loop handed out; loop-owned
	n    int

	waiting map[Subscriber]struct{} // subscribed while the topic was pending; loop-owned, nil when empty
}

// Name is the topic's name.
func (t *Topic) Name() string { return t.name }

// Epoch is the topic stream's epoch (v1.1): it names this stream of the
// topic, and changes when the Hub forgets the topic and makes it anew.
func (t *Topic) Epoch() string { return t.epoch }

// Position is where s, already subscribed on loop, stands in t: every push
// it gets from now on has a larger sequence number. That is the later of the
// seq it subscribed at and the last one this loop handed out, since the loop
// takes t's messages in order. Call it on s's loop.
func (t *Topic) Position(loop int, s Subscriber) uint64 {
	set := &t.sets[loop]
	return max(set.subs[s], set.last)
}

// Subscribe adds s, living on loop, to topic and returns the topic and its
// last sequence number: every push s gets from it has a larger one. Call it on
// s's loop; subscribing twice is the caller's to avoid.
//
// With an interest callback (cluster mode) the first subscription of a topic
// on this node is pending until the cluster has the interest: then
// t.Waiting(loop, s) is true, the seq returned means nothing, s gets no
// pushes, and the Hub calls s's Subscribed (Confirmer) on its loop with the
// real position once the interest is in place (interest.go).
func (h *Hub) Subscribe(loop int, s Subscriber, topic string) (*Topic, uint64, error) {
	if err := CheckTopic(topic); err != nil {
		return nil, 0, err
	}
	t := h.acquire(topic)

	t.mu.Lock()
	seq := t.register(loop, s)
	t.mu.Unlock()
	h.subscriptions.Add(1)
	return t, seq, nil
}

// acquire returns topic's Topic, made when missing, with one more
// subscriber counted, so that Sweep cannot forget it.
func (h *Hub) acquire(topic string) *Topic {
	h.mu.Lock()
	defer h.mu.Unlock()
	t := h.topics[topic]
	if t == nil {
		t = h.newTopic(topic)
	}
	if t.refs == 0 {
		delete(h.idle, t) // a no-op without a history
		h.gainInterest(t)
	}
	t.refs++
	return t
}

// register adds s, living on loop, to t at t's last seq and returns it.
// Called with t.mu held.
func (t *Topic) register(loop int, s Subscriber) uint64 {
	set := &t.sets[loop]
	if set.subs == nil {
		set.subs = make(map[Subscriber]uint64)
	}
	seq := t.seq
	set.subs[s] = seq
	if t.pending {
		set.wait(s)
	}
	set.n++
	return t.seq
}

// Unsubscribe removes s, living on loop, from t. Call it on s's loop, once per
// successful Subscribe.
func (h *Hub) Unsubscribe(loop int, s Subscriber, t *Topic) {
	t.mu.Lock()
	set := &t.sets[loop]
	delete(set.subs, s)
	delete(set.waiting, s) // leaving while pending: never told Subscribed
	set.n--
	if set.n == 0 {
		set.subs = nil // an empty map keeps its buckets
	}
	t.mu.Unlock()
	h.subscriptions.Add(-1)

	h.mu.Lock()
	t.refs--
	if t.refs == 0 {
		switch cur := h.topics[t.name]; {
		case cur != t && cur != nil:
			// Forgotten while subscribed (Lose): the name is a newer
			// Topic's now, which has the interest.
		case cur == nil:
			h.tellInterest(t.name, false) // forgotten while subscribed: the interest is still ours
		case t.hist == nil:
			delete(h.topics, t.name) // no history to outlive its subscribers
			h.tellInterest(t.name, false)
		default:
			h.idle[t] = struct{}{} // kept for the history's TTL: Sweep's to forget
			h.tellInterest(t.name, false)
		}
	}
	h.mu.Unlock()
}

// tellInterest calls the interest callback, if any. Called with h.mu held.
func (h *Hub) tellInterest(topic string, active bool) {
	if h.interest != nil {
		h.interest(topic, active)
	}
}

// Hold stops pushes to s, subscribed to t on loop and not pending, until
// Release, and returns its position: a cluster recovery (server) replays
// from the stream meanwhile. Call it on s's loop.
func (t *Topic) Hold(loop int, s Subscriber) uint64 {
	pos := t.Position(loop, s)
	t.sets[loop].subs[s] = notYet
	return pos
}

// LoopLast is the last seq of t this loop handed out (or skipped, for held
// and waiting subscribers). Call it on the loop.
func (t *Topic) LoopLast(loop int) uint64 { return t.sets[loop].last }

// Release ends a Hold: s gets every push of t with a seq above seq that the
// loop hands out from now on. Call it on s's loop; nothing if s left.
func (t *Topic) Release(loop int, s Subscriber, seq uint64) {
	if _, ok := t.sets[loop].subs[s]; ok {
		t.sets[loop].subs[s] = seq
	}
}
