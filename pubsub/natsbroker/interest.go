package natsbroker

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// interestState is the Hub's interest changes not yet made on NATS: the
// latest wanted state per topic, so a topic that goes idle and active again
// before interestLoop runs costs one change, and the memory is bounded by the
// number of topics.
type interestState struct {
	mu   sync.Mutex
	want map[string]bool // topic -> wanted active
	kick chan struct{}   // something in want
}

func newInterestState() interestState {
	return interestState{want: make(map[string]bool), kick: make(chan struct{}, 1)}
}

// positionWorkers is how many stream-position queries interestLoop runs at
// once when many topics become active together (a reconnect storm of
// per-user topics): one round trip each, in parallel.
const positionWorkers = 16

// SetInterest is the Hub's interest callback, called under the Hub's lock
// from any event loop: it records that topic gained its first local
// subscriber (active) or lost its last, and returns at once. interestLoop
// makes the change on NATS and, for an active topic, calls
// Hub.InterestReady when the subscription is in place.
func (b *Broker) SetInterest(topic string, active bool) {
	st := &b.interest
	st.mu.Lock()
	st.want[topic] = active
	st.mu.Unlock()
	select {
	case st.kick <- struct{}{}:
	default: // a kick is pending already
	}
}

// interestLoop applies the recorded interest changes, a batch at a time:
// every subscription and unsubscription of the batch, then each new topic's
// stream position (one JetStream request each, in parallel), and
// Hub.InterestReady for each. Without a stream yet, one flush stands in for
// the position queries.
//
// Why the position makes the "subscribed" answer exact: NATS handles one
// connection's protocol in order, and the query is sent after the SUB, so
// when its answer arrives the NATS server holds this node's subscription
// (as after a flush), and every message the stream stores from then on is
// republished to this node. The position is the stream's last message of
// the topic at that moment: every message of the topic stored before the
// subscription existed is at or below it.
// So every message above the position reaches this node, and the Hub hands
// a waiting subscriber exactly the messages above it (pubsub/interest.go).
// A message between the two (stored after the subscription, at or below
// the position) is dropped by Hub.Ingest's order check or skipped by the
// waiting subscriber: never delivered below the answer's seq.
func (b *Broker) interestLoop() {
	defer b.wg.Done()
	st := &b.interest
	for {
		select {
		case <-st.kick:
		case <-b.done:
			return
		}
		st.mu.Lock()
		changes := st.want
		st.want = make(map[string]bool)
		st.mu.Unlock()
		var ready []string
		for topic, active := range changes {
			if b.apply(topic, active) {
				ready = append(ready, topic)
			}
		}
		if len(ready) == 0 {
			continue
		}
		b.errMu.Lock()
		stream := b.stream
		b.errMu.Unlock()
		if !b.nc.IsConnected() {
			stream = nil // the subscriptions go out on reconnect
		} else if stream == nil {
			if err := b.nc.FlushTimeout(b.cfg.FlushTimeout); err != nil {
				b.log.Warn("subscriptions not confirmed by NATS; answering anyway", "topics", len(ready), "err", err)
			}
		}
		b.confirm(ready, stream)
	}
}

// apply makes one interest change on NATS and reports whether topic is now
// subscribed here, to be confirmed to the Hub. A subscription that fails is
// reported too: the Hub's subscribers are answered (and logged here) rather
// than left waiting.
func (b *Broker) apply(topic string, active bool) bool {
	b.subsMu.Lock()
	sub := b.subs[topic]
	b.subsMu.Unlock()
	if !active {
		if sub == nil {
			return false
		}
		b.subsMu.Lock()
		delete(b.subs, topic)
		b.subsMu.Unlock()
		if n, err := sub.Dropped(); err == nil && n > 0 {
			b.droppedGone.Add(uint64(n))
		}
		if err := sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
			b.log.Warn("unsubscribe failed", "topic", topic, "err", err)
		}
		return false
	}
	if sub != nil {
		return true // idle and active again before we got here: still subscribed
	}
	sub, err := b.nc.ChanSubscribe(outPrefix+Subject(topic), b.msgs)
	if err != nil {
		b.log.Error("subscribe failed: the topic gets no pushes from the cluster", "topic", topic, "err", err)
		return true
	}
	b.subsMu.Lock()
	b.subs[topic] = sub
	b.subsMu.Unlock()
	return true
}

// confirm tells the Hub that topics are subscribed, each with its position
// in stream. Without a stream (offline, or none yet) the position is the
// Hub's own: offline the subscriptions go out on reconnect, and messages
// stored meanwhile do not reach this node, as for any outage
// (docs/cluster.md).
func (b *Broker) confirm(topics []string, stream jetstream.Stream) {
	if stream == nil {
		for _, topic := range topics {
			b.hub.InterestReady(topic, 0)
		}
		return
	}
	eachTopic(topics, func(topic string) { b.hub.InterestReady(topic, b.position(stream, topic)) })
}

// eachTopic calls fn for every topic on up to positionWorkers goroutines,
// since each call waits for one NATS round trip, and returns when all are
// done.
func eachTopic(topics []string, fn func(topic string)) {
	work := make(chan string)
	var wg sync.WaitGroup
	for range min(positionWorkers, len(topics)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for topic := range work {
				fn(topic)
			}
		}()
	}
	for _, topic := range topics {
		work <- topic
	}
	close(work)
	wg.Wait()
}

// position is the stream's last sequence number for topic, 0 when it has
// none or cannot say (a timeout: logged, the subscribers are answered
// anyway).
func (b *Broker) position(stream jetstream.Stream, topic string) uint64 {
	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.FlushTimeout)
	defer cancel()
	m, err := stream.GetLastMsgForSubject(ctx, inPrefix+Subject(topic))
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		return 0
	case err != nil:
		b.log.Warn("cannot read the topic's stream position: its subscribers are answered with this node's own", "topic", topic, "err", err)
		return 0
	}
	return m.Sequence
}

// dropped is how many messages nats.go dropped for this node's subscriptions
// because the ingest channel was full.
func (b *Broker) dropped() uint64 {
	n := b.droppedGone.Load()
	b.subsMu.Lock()
	defer b.subsMu.Unlock()
	for _, sub := range b.subs {
		if d, err := sub.Dropped(); err == nil {
			n += uint64(d)
		}
	}
	return n
}

// dropLogInterval is the least time between two slow-consumer warnings.
const dropLogInterval = 10 * time.Second

// slowConsumer is nats.go's report that a subscription dropped messages (the
// ingest channel was full): warned at most once per dropLogInterval, with the
// total so far; every drop is counted in Stats.Dropped.
func (b *Broker) slowConsumer(subject string) {
	now := time.Now().UnixNano()
	last := b.lastDropLog.Load()
	if now-last < int64(dropLogInterval) || !b.lastDropLog.CompareAndSwap(last, now) {
		return
	}
	b.log.Warn("ingest buffer full: messages for this node were dropped (the event loops are behind)",
		"subject", subject, "buffer", b.cfg.Buffer, "dropped_total", b.dropped())
}
