package server

import (
	"container/list"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wspush/wspush/pubsub"
)

// idempotencyHeader is the request header of POST /publish that makes a
// retried publish safe (v1.1, docs/protocol.md).
const idempotencyHeader = "Idempotency-Key"

// maxIdempotencyKey is the longest Idempotency-Key accepted, in bytes.
const maxIdempotencyKey = 200

// errIdempotencyKey is a malformed Idempotency-Key (answered 400).
var errIdempotencyKey = fmt.Errorf("%s must be 1-%d visible ASCII characters", idempotencyHeader, maxIdempotencyKey)

// checkIdempotencyKey accepts 1-maxIdempotencyKey bytes of visible ASCII
// (0x21-0x7E): a UUID, a hash, a client's counter.
func checkIdempotencyKey(key string) error {
	if len(key) == 0 || len(key) > maxIdempotencyKey {
		return errIdempotencyKey
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x21 || key[i] > 0x7e {
			return errIdempotencyKey
		}
	}
	return nil
}

// publishWithKey publishes like Publish; with a key (an Idempotency-Key), a
// publish of the same topic and key within -idempotency-window is not made
// again but answered with the first one's result and Duplicate set. In
// cluster mode the stream de-duplicates (natsbroker.PublishIdempotent); on a
// single node a bounded cache of recent keys does (recentKeys).
func (s *Server) publishWithKey(ctx context.Context, key, topic string, data []byte) (pubsub.Published, error) {
	if key == "" {
		return s.Publish(ctx, topic, data)
	}
	if err := checkIdempotencyKey(key); err != nil {
		return pubsub.Published{}, err
	}
	if s.shuttingDown.Load() {
		return pubsub.Published{}, ErrShuttingDown
	}
	if s.nats != nil {
		return s.nats.PublishIdempotent(ctx, topic, key, data)
	}
	return s.recent.do(ctx, topic+"\x00"+key, time.Now(), func() (pubsub.Published, error) {
		return s.hub.Publish(ctx, topic, data)
	})
}

// recentKeys is a single node's memory of recent Idempotency-Keys: at most
// max keys, each for window after its publish began; past max the oldest key
// is forgotten first. A retry of a key being published waits for the first
// attempt's result; a key whose publish failed is forgotten, so a retry
// publishes. Safe from any goroutine.
type recentKeys struct {
	max    int
	window time.Duration

	mu    sync.Mutex
	keys  map[string]*list.Element // -> *recentKey
	order list.List                // oldest first

	duplicates atomic.Uint64
}

type recentKey struct {
	key  string
	at   time.Time
	done chan struct{} // closed once res and err are set
	res  pubsub.Published
	err  error
}

func newRecentKeys(max int, window time.Duration) *recentKeys {
	return &recentKeys{max: max, window: window, keys: make(map[string]*list.Element)}
}

// do runs publish once per key within the window and answers a repeated key
// with the first result, Duplicate set.
func (c *recentKeys) do(ctx context.Context, key string, now time.Time, publish func() (pubsub.Published, error)) (pubsub.Published, error) {
	for {
		c.mu.Lock()
		c.expire(now)
		if el, ok := c.keys[key]; ok {
			e := el.Value.(*recentKey)
			c.mu.Unlock()
			select {
			case <-e.done:
			case <-ctx.Done():
				return pubsub.Published{}, fmt.Errorf("waiting for the first publish with this %s: %w", idempotencyHeader, ctx.Err())
			}
			if e.err != nil {
				continue // the first attempt failed and is forgotten: this one publishes
			}
			c.duplicates.Add(1)
			res := e.res
			res.Duplicate = true
			return res, nil
		}
		e := &recentKey{key: key, at: now, done: make(chan struct{})}
		c.keys[key] = c.order.PushBack(e)
		for c.order.Len() > c.max {
			c.remove(c.order.Front())
		}
		c.mu.Unlock()

		res, err := publish()
		c.mu.Lock()
		e.res, e.err = res, err
		if err != nil {
			if el, ok := c.keys[key]; ok && el.Value == e {
				c.remove(el)
			}
		}
		close(e.done)
		c.mu.Unlock()
		return res, err
	}
}

// expire forgets the keys older than the window. Called with c.mu held.
func (c *recentKeys) expire(now time.Time) {
	for el := c.order.Front(); el != nil && now.Sub(el.Value.(*recentKey).at) > c.window; el = c.order.Front() {
		c.remove(el)
	}
}

func (c *recentKeys) remove(el *list.Element) {
	delete(c.keys, el.Value.(*recentKey).key)
	c.order.Remove(el)
}

// len is the number of keys remembered.
func (c *recentKeys) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
