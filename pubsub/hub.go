package pubsub

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/wspush/wspush/frames"
)

// Executor runs tasks on one event loop's goroutine, in the order posted.
// netpoll.Loop is one.
type Executor interface {
	Post(fn func())
}

// Subscriber is a connection that receives pushes. Push is called on the
// subscriber's own loop with a message shared by every subscriber: queue its
// frames, never modify them.
type Subscriber interface {
	Push(p *Push)
}

// Broker is where publishes go. On a single node it is the Hub itself; a
// cluster broker sends the message through the cluster, which sequences it,
// and every node's broker hands it to its Hub with Hub.Ingest.
type Broker interface {
	Publish(ctx context.Context, topic string, data []byte) (Published, error)
}

// Published describes an accepted publish.
type Published struct {
	Topic       string `json:"topic"`
	Seq         uint64 `json:"seq"`
	Epoch       string `json:"epoch,omitempty"` // (v1.1) the topic stream's; "" from a broker that has none yet
	Subscribers int    `json:"subscribers"`     // connections the push was queued to

	// Duplicate (v1.1): a retry of an earlier publish with the same
	// Idempotency-Key, not published again; Seq is the first one's.
	Duplicate bool `json:"duplicate,omitempty"`
}

// ErrInvalidJSON is returned when a published value is not valid JSON.
var ErrInvalidJSON = errors.New("data is not valid JSON")

// Hub is one node's topic table and fan-out.
//
// The words for a message's way through it: a publish (Publish, Enqueue) or
// an ingest (Ingest, a message sequenced by the cluster) takes a sequence
// number and fans out: one task per loop with subscribers. Each loop's task
// delivers: it queues the push to that loop's subscribers (Stats.Delivered
// counts those pushes).
type Hub struct {
	loops    []Executor
	interest func(topic string, active bool)
	epochOf  func() string // the cluster stream's epoch (SetStreamEpoch); nil: each topic makes its own

	mu     sync.Mutex
	topics map[string]*Topic

	store     *HistoryStore       // the topics' histories (SetHistory); nil: topics live only while subscribed
	maxTopics int                 // SetMaxTopics
	idle      map[*Topic]struct{} // with a history: the topics without subscribers, Sweep's candidates; guarded by mu
	unkept    atomic.Uint64       // publishes not kept for want of a topic (SetMaxTopics)

	deflaters sync.Pool     // *frames.Deflater, shared by every Push
	inflight  chan struct{} // one token per Publish being handed out (MaxInFlight)
	lat       latency       // push latency, when measured (SetPushLatency)
	ingestWin *ingestWindow // the bytes IngestWait's messages hold in the loops (ingest.go)

	published     atomic.Uint64
	delivered     atomic.Uint64
	subscriptions atomic.Int64
	gaps          atomic.Uint64 // topics whose subscribers were told they missed messages (gap.go)
}

// NewHub returns a Hub fanning out over loops, indexed by loop ID. interest,
// when not nil, is told when a topic gains its first subscriber on this node
// (true) and loses its last (false), under the Hub's lock, in order: it must
// not block (no network round trip), and after each true its owner calls
// InterestReady once the interest is in place; until then the topic's
// subscriptions are pending (see Subscribe and interest.go).
func NewHub(loops []Executor, interest func(topic string, active bool)) *Hub {
	h := &Hub{loops: loops, interest: interest, topics: make(map[string]*Topic), inflight: make(chan struct{}, MaxInFlight)}
	h.SetMaxIngestBytes(DefaultMaxIngestBytes)
	h.deflaters.New = func() any { return new(frames.Deflater) }
	return h
}

// Publish assigns the next sequence number of topic to data, a JSON value,
// and hands it to every loop that has subscribers of it. With a history
// (SetHistory) a topic without subscribers gets the next seq too and keeps
// the message; without one such a publish is dropped and answered with seq 0.
//
// At most MaxInFlight publishes (see SetMaxInFlight) are being handed out by the loops at once;
// past that Publish waits (or gives up with ctx) until the loops catch up, so
// publishers cannot queue unbounded work and memory behind slow loops. Within
// the bound the loops take several messages per wake-up, and a subscriber's
// pushes leave in one writev. Publish must not be called from an event loop,
// which could wait for itself: loops use Enqueue.
func (h *Hub) Publish(ctx context.Context, topic string, data []byte) (Published, error) {
	select {
	case h.inflight <- struct{}{}:
	case <-ctx.Done():
		return Published{}, fmt.Errorf("waiting for the loops to take the message: %w", ctx.Err())
	}
	return h.publish(topic, data, h.release)
}

// MaxInFlight is the default bound on the publishes the loops are handing
// out at once. A larger bound lets more pushes share a writev under a burst
// (less CPU per delivery); a smaller one keeps each message's wait behind
// the others short (lower latency).
const MaxInFlight = 16

// SetMaxInFlight changes the bound on publishes in flight. Call it before the
// Hub is used.
func (h *Hub) SetMaxInFlight(n int) {
	if n > 0 {
		h.inflight = make(chan struct{}, n)
	}
}

// Enqueue is Publish for callers on an event loop, which must not wait:
// instead of waiting for a token it refuses the publish with ErrLoopsBusy
// when a loop's task queue is full (see Bounded).
func (h *Hub) Enqueue(topic string, data []byte) (Published, error) {
	if !h.loopsHaveRoom() {
		return Published{}, ErrLoopsBusy
	}
	return h.publish(topic, data, nil)
}

func (h *Hub) release() { <-h.inflight }

// publish assigns the sequence number and fans out; done, if not nil, is
// called once every loop has handed the message out (at once when none has
// subscribers, or the publish fails).
func (h *Hub) publish(topic string, data []byte, done func()) (Published, error) {
	if err := CheckTopic(topic); err != nil {
		callIf(done)
		return Published{}, err
	}
	if err := checkData(data); err != nil {
		callIf(done)
		return Published{}, err
	}
	h.published.Add(1)
	t := h.lockTopic(topic)
	if t == nil {
		if h.store != nil {
			h.unkept.Add(1) // SetMaxTopics topics exist
		}
		callIf(done)
		return Published{Topic: topic}, nil
	}
	defer t.mu.Unlock()
	t.seq++
	n := h.fanOut(t, t.seq, data, done)
	return Published{Topic: topic, Seq: t.seq, Epoch: t.epoch, Subscribers: n}, nil
}

func callIf(fn func()) {
	if fn != nil {
		fn()
	}
}

// Ingest takes in a message sequenced elsewhere (by a cluster broker) and
// fans it out to this node's subscribers of topic, returning how many there
// are. Calls for one topic must come in sequence order; older or repeated
// numbers are dropped.
func (h *Hub) Ingest(topic string, seq uint64, data []byte) int {
	return h.ingest(topic, seq, NoPrev, data, nil)
}

// ingest is Ingest, with the gap check of IngestAfter when prev is not
// NoPrev; done, if not nil, is called once every loop has handed the message
// out (at once when it is dropped or has no subscribers).
func (h *Hub) ingest(topic string, seq, prev uint64, data []byte, done func()) int {
	// Data that is not UTF-8 JSON is not from a wspush node: never pushed
	// (nor replayed: natsbroker's reads skip it too), but it takes its seq
	// below, or the next message, whose predecessor it is, would look like
	// it follows a gap.
	valid := checkData(data) == nil
	// The ingesting goroutine waits for the loops rather than queue past
	// their bound: the broker's own buffer then fills, and its slow-consumer
	// protection drops and counts. Waiting before any lock keeps the loops
	// free to subscribe meanwhile.
	if !h.waitForRoom() {
		return 0
	}
	h.mu.Lock()
	t := h.topics[topic]
	h.mu.Unlock()
	if t == nil {
		callIf(done)
		return 0
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if seq <= t.seq {
		callIf(done)
		return 0
	}
	if h.gapBefore(t, prev) {
		h.lose(t) // before this message's tasks, which the loops run after it
	}
	t.seq = seq
	if !valid {
		callIf(done)
		return 0
	}
	return h.fanOut(t, seq, data, done)
}

// subscribers counts t's subscribers and the loops they are on. Called with
// t.mu held.
func (t *Topic) subscribers() (total int, loops int32) {
	for i := range t.sets {
		if n := t.sets[i].n; n > 0 {
			total += n
			loops++
		}
	}
	return total, loops
}

// fanOut encodes the push once and posts one task per loop that has
// subscribers; done, when not nil, is called after the last of those tasks.
// Called with t.mu held, which keeps every loop's tasks for t in sequence
// order and the history equal to every message up to t.seq (history_hub.go).
func (h *Hub) fanOut(t *Topic, seq uint64, data []byte, done func()) int {
	total, loops := t.subscribers()
	if total == 0 {
		h.keep(t, seq, data)
		callIf(done)
		return 0
	}
	var left *atomic.Int32 // loops yet to run their task, when someone waits for them
	if done != nil {
		left = new(atomic.Int32)
		left.Store(loops)
	}
	accepted := h.lat.now()
	push := h.NewPush(t.name, seq, data)
	h.lat.start(push, accepted, loops)
	t.record(seq, push)
	for i := range t.sets {
		if t.sets[i].n == 0 {
			continue
		}
		set := &t.sets[i]
		h.loops[i].Post(func() {
			h.deliver(set, seq, push)
			h.lat.delivered(i, push)
			if left != nil && left.Add(-1) == 0 {
				done()
			}
		})
	}
	return total
}

// deliver is the per-loop fan-out task, run on the set's loop: it queues the
// push to each subscriber that subscribed before seq was assigned, and
// returns how many. No lock: the set is this loop's own.
func (h *Hub) deliver(set *loopSet, seq uint64, push *Push) int {
	set.last = seq
	n := 0
	for s, since := range set.subs {
		if seq > since {
			s.Push(push) // may unsubscribe s (a slow consumer): deleting while ranging is safe
			n++
		}
	}
	h.delivered.Add(uint64(n))
	return n
}

// Stats are the Hub's counters.
type Stats struct {
	Topics        int
	Subscriptions int64
	Published     uint64
	Delivered     uint64
	Unkept        uint64 // (v1.1) publishes to a topic without subscribers not kept: SetMaxTopics topics existed
	Gaps          uint64 // (v1.1, cluster) times a topic's subscribers here were told they missed messages (gap.go)
}

// Stats reads the counters; safe from any goroutine.
func (h *Hub) Stats() Stats {
	h.mu.Lock()
	topics := len(h.topics)
	h.mu.Unlock()
	return Stats{
		Topics:        topics,
		Subscriptions: h.subscriptions.Load(),
		Published:     h.published.Load(),
		Delivered:     h.delivered.Load(),
		Unkept:        h.unkept.Load(),
		Gaps:          h.gaps.Load(),
	}
}
