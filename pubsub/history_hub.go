package pubsub

import (
	"errors"
	"time"

	"github.com/wspush/wspush/frames"
)

// The Hub's use of the history (issue 11, docs/history-design-notes.md):
// topics that outlive their subscribers, recovery from a position, reading
// the history, and forgetting idle topics.
//
// Lock order: Hub.mu -> Topic.mu -> HistoryStore.mu. A publish appends to
// the history and posts its loop tasks under Topic.mu, so whoever holds
// Topic.mu sees a history equal to every message up to t.seq; Resume reads
// the history and registers the subscriber under that same lock, which is
// what makes a replay race-free (see Resume).

// SetHistory makes the Hub keep per-topic history and positions bounded by
// cfg: topics then outlive their subscribers until Sweep forgets them. Call
// it before the Hub is used. Without it (a cluster node, whose history is
// the cluster stream) a topic lives while it has subscribers, and no
// position can be recovered.
func (h *Hub) SetHistory(cfg HistoryConfig) error {
	store, err := NewHistoryStore(cfg, time.Now())
	if err != nil {
		return err
	}
	h.store = store
	h.idle = make(map[*Topic]struct{})
	return nil
}

// HistoryStats reads the history's gauges and counters; the zero value
// without a history.
func (h *Hub) HistoryStats() HistoryStats {
	if h.store == nil {
		return HistoryStats{}
	}
	return h.store.Stats()
}

// newTopic makes topic's Topic with a new stream (a new epoch). Called with
// h.mu held.
func (h *Hub) newTopic(topic string) *Topic {
	t := &Topic{name: topic, sets: make([]loopSet, len(h.loops))}
	if h.store != nil {
		t.hist, _ = h.store.NewHistory(NewEpoch(), 0, time.Now()) // a new epoch is always valid
		t.epoch = t.hist.Epoch()
	} else {
		t.epoch = h.clusterEpoch()
	}
	h.topics[topic] = t
	if h.idle != nil {
		h.idle[t] = struct{}{} // no subscriber yet
	}
	return t
}

// SetMaxTopics bounds the topics a Hub with a history makes for publishes
// (and history reads) to topics nobody subscribes: past n topics in all, such
// a publish is not kept, as without a history (seq 0, no epoch), and counted
// in Stats.Unkept. Subscribed topics are bounded by the connections and their
// subscriptions instead, so they are always made. 0: no bound. Call it before
// the Hub is used.
func (h *Hub) SetMaxTopics(n int) { h.maxTopics = n }

// topicFor is topic's Topic for a publish: made when missing if the Hub
// keeps history and has room (SetMaxTopics), else nil when nobody
// subscribes. h.mu is held.
func (h *Hub) topicFor(topic string) *Topic {
	t := h.topics[topic]
	if t == nil && h.store != nil && (h.maxTopics <= 0 || len(h.topics) < h.maxTopics) {
		t = h.newTopic(topic)
	}
	return t
}

// lockTopic returns topic's Topic locked (Topic.mu) for a publish: made
// when missing if the Hub keeps history (within SetMaxTopics), nil when it
// does not and nobody subscribes. A topic Sweep forgot between the lookup
// and the lock is looked up (so made) again: its message goes to the new
// stream, never to a closed one.
func (h *Hub) lockTopic(topic string) *Topic {
	for {
		h.mu.Lock()
		t := h.topicFor(topic)
		h.mu.Unlock()
		if t == nil {
			return nil
		}
		t.mu.Lock()
		if !t.dead {
			return t
		}
		t.mu.Unlock()
	}
}

// record appends the push of seq to t's history, if it keeps one. Called
// with t.mu held, right after seq was assigned. Append cannot fail here:
// seqs increase under t.mu and a closed history belongs to a dead topic,
// which no publish holds.
func (t *Topic) record(seq uint64, p *Push) {
	if t.hist != nil {
		t.hist.Append(seq, p, time.Now())
	}
}

// keep records a message of a topic without subscribers on this node: the
// push is made only when the history stores messages (Size > 0).
func (h *Hub) keep(t *Topic, seq uint64, data []byte) {
	if t.hist == nil {
		return
	}
	var p *Push
	if h.store.cfg.Size > 0 {
		p = h.NewPush(t.name, seq, data)
	}
	t.hist.Append(seq, p, time.Now())
}

// Position is a place in a topic stream (v1.1): the stream's epoch and the
// last seq seen in it.
type Position struct {
	Epoch string
	Seq   uint64
}

// Resumed is the outcome of a Resume.
type Resumed struct {
	Topic *Topic
	// Position is what the subscribed answer says: from itself when
	// Recovered, else the topic's epoch and last seq.
	Position  Position
	Recovered bool
	// Replay is the caller's dst with, when Recovered, the messages after
	// from appended in seq order. Queue them before the loop runs anything
	// else.
	Replay []HistoryMessage
}

// Resume subscribes s, living on loop, to topic like Subscribe, and tells
// whether every message after from is still held; if so Replay holds them.
// Call it on s's loop and queue Replay to s in the same loop turn, before
// returning to the loop: then s gets every message after from once and in
// order, however publishes race. The history is read and s registered at
// the last seq under one Topic.mu, so (1) the replay is exactly the messages
// up to that seq, (2) every later message is posted to the loop after this
// turn and reaches s live, (3) tasks already queued for earlier messages
// skip s, which registered past them (docs/history-design-notes.md).
//
// Without a history, or from another epoch, too old (evicted) or past the
// last seq, Recovered is false and the position is the topic's current one.
func (h *Hub) Resume(loop int, s Subscriber, topic string, from Position, dst []HistoryMessage) (Resumed, error) {
	if err := CheckTopic(topic); err != nil {
		return Resumed{}, err
	}
	t := h.acquire(topic)
	start := len(dst)
	t.mu.Lock()
	ok := false
	if t.hist != nil {
		dst, ok = t.hist.Since(from.Epoch, from.Seq, time.Now(), dst)
	}
	cur := t.register(loop, s)
	t.mu.Unlock()
	h.subscriptions.Add(1)
	if !ok {
		clear(dst[start:]) // what is left of an unrecoverable stretch must not pin pushes
		return Resumed{Topic: t, Position: Position{Epoch: t.epoch, Seq: cur}, Replay: dst[:start]}, nil
	}
	return Resumed{Topic: t, Position: from, Recovered: true, Replay: dst}, nil
}

// HistoryRead is what ReadHistory finds.
type HistoryRead struct {
	Position  Position         // the topic's epoch and last seq
	Recovered bool             // every message after the position asked for is in Messages or beyond limit
	Messages  []HistoryMessage // the first limit of the messages after it, in seq order
}

// ErrNoHistory is returned by ReadHistory from a Hub without a history.
var ErrNoHistory = errors.New("this node keeps no history")

// ErrTooManyTopics is returned by ReadHistory for an unknown topic when the
// Hub holds SetMaxTopics topics.
var ErrTooManyTopics = errors.New("too many topics: the topic is unknown and no new one can be made")

// ReadHistory returns the messages of topic after from (whose epoch, if
// not empty, must be the topic's for Recovered), at most limit of them. An
// unknown topic is made, as a subscribe would: the position it answers is
// one a later resume recovers from.
func (h *Hub) ReadHistory(topic string, from Position, limit int) (HistoryRead, error) {
	if err := CheckTopic(topic); err != nil {
		return HistoryRead{}, err
	}
	if h.store == nil {
		return HistoryRead{}, ErrNoHistory
	}
	t := h.lockTopic(topic)
	if t == nil {
		return HistoryRead{}, ErrTooManyTopics
	}
	defer t.mu.Unlock()
	epoch := from.Epoch
	if epoch == "" {
		epoch = t.epoch
	}
	msgs, ok := t.hist.Since(epoch, from.Seq, time.Now(), nil)
	if !ok && epoch != t.epoch {
		msgs = nil // another stream's seqs mean nothing in this one
	}
	if limit >= 0 && len(msgs) > limit {
		msgs = msgs[:limit]
	}
	return HistoryRead{Position: Position{Epoch: t.epoch, Seq: t.seq}, Recovered: ok, Messages: msgs}, nil
}

// Sweep expires old messages and forgets the topics that have had no
// subscriber and no publish for the history's TTL, returning how many it
// forgot. The server calls it periodically. It holds Hub.mu for one topic
// at a time, so publishes and subscribes wait at most that long.
func (h *Hub) Sweep(now time.Time) int {
	if h.store == nil {
		return 0
	}
	h.store.Sweep(now)
	// Only the topics without subscribers are walked, and only to copy
	// them: Hub.mu is held for about 10 ns per such topic.
	h.mu.Lock()
	idle := make([]*Topic, 0, len(h.idle))
	for t := range h.idle {
		idle = append(idle, t)
	}
	h.mu.Unlock()
	n := 0
	for _, t := range idle {
		if !t.hist.Idle(now) {
			continue
		}
		h.mu.Lock()
		if t.refs == 0 && h.topics[t.name] == t {
			t.mu.Lock()
			// Under t.mu no publish is between its seq and its append:
			// idle now means nothing can be lost. A publish holding t from
			// before the delete finds it dead and looks it up again.
			if t.hist.Idle(now) {
				t.dead = true
				delete(h.topics, t.name)
				delete(h.idle, t)
				t.hist.Close()
				n++
			}
			t.mu.Unlock()
		}
		h.mu.Unlock()
	}
	return n
}

// PushData returns the data value of a push frame made by PushFrame for
// topic and seq: the envelope is ours, so the value starts after the known
// prefix and ends before the final '}'. It shares the frame's bytes.
func PushData(frame frames.Prepared, topic string, seq uint64) []byte {
	_, hn, _ := frames.ParseHeader(frame) // our own frame: well formed
	prefix := envelopeLen(topic, seq, nil) - 1
	return frame[hn+prefix : len(frame)-1]
}
