package pubsub

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
)

// Batch publishing (POST /publish/batch and /broadcast, v1.1): many
// messages to many topics handed to the loops at once. Publishing them one
// by one costs a task, a closure and an in-flight token per message, and
// with personal inboxes (one subscriber per topic) a loop then wakes for a
// handful of messages at a time. PublishBatch takes one token for the whole
// batch and posts one task per loop with every delivery of the batch for
// that loop, in item order.
//
// Order: a topic's messages must reach every loop in sequence order, which
// Publish keeps by posting under Topic.mu. A batch holds the locks of all its
// topics from the first sequence number it assigns until its tasks are
// posted, so no other publish of those topics can post in between. It takes
// them in one global order (by name) so two batches cannot deadlock, and
// after Hub.mu is released (no code takes Hub.mu while holding a Topic.mu).

// BatchItem is one message of a PublishBatch.
type BatchItem struct {
	Topic string
	Data  []byte // a JSON value; not modified, kept by reference until delivered
	// Checked says the caller has made sure Data is UTF-8 and one JSON
	// value (it came out of a JSON document it decoded, and was checked for
	// UTF-8): the Hub then skips its own scan of it.
	Checked bool
}

// BatchResult is one item's outcome: its publish, or why it was not
// published (Err).
type BatchResult struct {
	Published
	Err error
}

// BatchPublisher is a Broker that publishes a batch at once: the Hub. A
// cluster broker need not be one; its batches are published item by item.
type BatchPublisher interface {
	PublishBatch(ctx context.Context, items []BatchItem, res []BatchResult) error
}

// delivery is one message for one loop's set, queued by a batch.
type delivery struct {
	set  *loopSet
	seq  uint64
	push *Push
}

// PublishBatch publishes items in order, each as Publish would, filling
// res[i] (len(res) must be len(items)) with item i's outcome. It takes one
// of the MaxInFlight tokens for the whole batch (waiting for it, or giving up
// with ctx: the error then says so and nothing was published), and gives it
// back once every loop has handed the batch out. Like Publish it must not be
// called from an event loop.
func (h *Hub) PublishBatch(ctx context.Context, items []BatchItem, res []BatchResult) error {
	if len(res) != len(items) {
		return fmt.Errorf("PublishBatch: %d results for %d items", len(res), len(items))
	}
	select {
	case h.inflight <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("waiting for the loops to take the batch: %w", ctx.Err())
	}
	h.publishBatch(items, res, h.release)
	return nil
}

// publishBatch is PublishBatch once the token is taken; done is called once
// every loop has run its task (at once when no item reached a subscriber).
func (h *Hub) publishBatch(items []BatchItem, res []BatchResult, done func()) {
	topics := make([]*Topic, len(items)) // item i's topic, nil when not published
	for i, it := range items {
		res[i] = BatchResult{}
		if err := CheckTopic(it.Topic); err != nil {
			res[i].Err = err
		} else if !it.Checked {
			res[i].Err = checkData(it.Data)
		}
	}
	locked := h.lockBatch(items, res, topics)
	perLoop := make([][]delivery, len(h.loops))
	accepted := h.lat.now()
	for i, it := range items {
		if res[i].Err != nil {
			continue
		}
		h.published.Add(1)
		t := topics[i]
		if t == nil {
			if h.store != nil {
				h.unkept.Add(1) // SetMaxTopics topics exist
			}
			res[i].Published = Published{Topic: it.Topic}
			continue
		}
		t.seq++
		res[i].Published = Published{Topic: it.Topic, Seq: t.seq, Epoch: t.epoch, Subscribers: h.queueBatch(t, t.seq, it.Data, accepted, perLoop)}
	}
	loops := int32(0)
	for _, ds := range perLoop {
		if len(ds) > 0 {
			loops++
		}
	}
	if loops == 0 {
		h.unlockBatch(locked)
		done()
		return
	}
	left := new(atomic.Int32)
	left.Store(loops)
	for i, ds := range perLoop {
		if len(ds) == 0 {
			continue
		}
		h.loops[i].Post(func() {
			for _, d := range ds {
				h.deliver(d.set, d.seq, d.push)
				h.lat.delivered(i, d.push)
			}
			if left.Add(-1) == 0 {
				done()
			}
		})
	}
	h.unlockBatch(locked)
}

// queueBatch is fanOut for a batch: it encodes the push once and adds one
// delivery per loop with subscribers to perLoop instead of posting a task.
// Called with t.mu held.
func (h *Hub) queueBatch(t *Topic, seq uint64, data []byte, accepted int64, perLoop [][]delivery) int {
	total, loops := t.subscribers()
	if total == 0 {
		h.keep(t, seq, data)
		return 0
	}
	push := h.NewPush(t.name, seq, data)
	h.lat.start(push, accepted, loops)
	t.record(seq, push)
	for i := range t.sets {
		if t.sets[i].n > 0 {
			perLoop[i] = append(perLoop[i], delivery{set: &t.sets[i], seq: seq, push: push})
		}
	}
	return total
}

// lockBatch finds (or, with a history, makes) the topic of every item not
// refused yet, under one Hub.mu, and locks each distinct topic once, in name
// order, after releasing Hub.mu. A topic Sweep forgot meanwhile is looked up
// again, like lockTopic does. It returns the locked topics.
func (h *Hub) lockBatch(items []BatchItem, res []BatchResult, topics []*Topic) []*Topic {
	for {
		var distinct []*Topic
		h.mu.Lock()
		for i, it := range items {
			if res[i].Err != nil {
				continue
			}
			t := h.topicFor(it.Topic)
			topics[i] = t
			if t != nil {
				distinct = append(distinct, t)
			}
		}
		h.mu.Unlock()
		slices.SortFunc(distinct, func(a, b *Topic) int { return strings.Compare(a.name, b.name) })
		distinct = slices.Compact(distinct)
		dead := false
		for k, t := range distinct {
			t.mu.Lock()
			if t.dead {
				h.unlockBatch(distinct[:k+1])
				dead = true
				break
			}
		}
		if !dead {
			return distinct
		}
	}
}

func (h *Hub) unlockBatch(locked []*Topic) {
	for _, t := range locked {
		t.mu.Unlock()
	}
}
