package server

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/wspush/wspush/pubsub"
	"github.com/wspush/wspush/pubsub/natsbroker"
)

// Shared stream reads (cluster recovery, clusterrecovery.go). In a
// reconnect storm thousands of clients resume the same topics from the same
// positions: they saw the same pushes before the node went away. Each read
// of the stream is a NATS round trip that the workers wait on, so reads of
// one key (stream epoch, topic, position, limits) share one request: a
// worker waits for a read of the same key in flight, or takes one that
// ended less than readShareTTL ago.
//
// A shared answer is taken only if it reaches the seq the asking loop had
// already handed out for the topic when it queued the read (read's
// atLeast), or says the position is not recoverable or the read was cut
// short (which a later read would say too: the stream only drops from its
// front). So a shared answer never makes a recovery read
// more often than a fresh one would, and never misses anything: the
// messages it holds are still the topic's messages after the position, and
// the loop reads on from its End when live pushes have passed it
// (recoveryRead). The epoch is part of the key, so a read of a replaced
// stream is never shared with one of the new stream.

// readShareTTL is how long a finished read answers its key. Short next to
// the 5 s a read may take (recoveryReadTimeout), long enough for a storm's
// resumes of one topic to arrive within it.
const readShareTTL = time.Second

// readKey is what makes two reads the same.
type readKey struct {
	epoch    string // the stream's, when read
	topic    string
	after    pubsub.Position
	limit    int
	maxBytes int
}

// sharedRead is one read of the stream; res and err are set before done
// closes and never change after.
type sharedRead struct {
	done  chan struct{}
	res   natsbroker.Read
	err   error
	ended time.Time // zero while in flight
}

// finished is a key whose read ended, in the order they ended.
type finished struct {
	key  readKey
	read *sharedRead
}

// readShare is the server's table of reads in flight and just done; safe
// for the recovery workers' concurrent use. A finished read is dropped once
// its life is over, at the next read or the next tick of the server's
// sweeper (expire): the table keeps the reads of about two lives at most,
// whose messages the recovering connections hold anyway until they are
// replayed.
type readShare struct {
	mu    sync.Mutex
	ttl   time.Duration // how long a finished read answers its key; 0 means readShareTTL. Under mu
	reads map[readKey]*sharedRead
	ended []finished // oldest first
}

// life is how long a finished read answers its key. t.mu is held.
func (t *readShare) life() time.Duration {
	if t.ttl > 0 {
		return t.ttl
	}
	return readShareTTL
}

// read returns the stream's answer for k, read with fn unless a read of k
// in flight or finished within its life answers it: one that reaches
// atLeast (see above). A failure of a read in flight is every waiter's
// answer too: they asked at the same time. shared is true when the answer
// came from another worker's request. The answer's Messages are shared:
// read-only.
func (t *readShare) read(ctx context.Context, k readKey, atLeast uint64, fn func(context.Context) (natsbroker.Read, error)) (res natsbroker.Read, shared bool, err error) {
	var tooOld *sharedRead // an answer seen not to reach atLeast
	for {
		t.mu.Lock()
		t.dropExpired(time.Now())
		sr := t.reads[k]
		if sr == nil || sr == tooOld || !sr.ended.IsZero() && !answers(sr.res, atLeast) {
			break // read it, with t.mu held
		}
		t.mu.Unlock()
		select {
		case <-sr.done:
		case <-ctx.Done():
			return natsbroker.Read{}, false, ctx.Err()
		}
		if sr.err != nil {
			return natsbroker.Read{}, false, sr.err
		}
		if answers(sr.res, atLeast) {
			return sr.res, true, nil
		}
		tooOld = sr // another reader may have started a later read meanwhile
	}
	sr := &sharedRead{done: make(chan struct{})}
	if t.reads == nil {
		t.reads = make(map[readKey]*sharedRead)
	}
	t.reads[k] = sr // replaces an answer too old for this reader: the next ones want this one
	t.mu.Unlock()

	sr.res, sr.err = fn(ctx)
	sr.res.Messages = slices.Clip(sr.res.Messages) // an append by a reader must not write into another's
	t.mu.Lock()
	if sr.err != nil {
		if t.reads[k] == sr {
			delete(t.reads, k) // a failure is not an answer for the next ones
		}
	} else {
		sr.ended = time.Now()
		t.ended = append(t.ended, finished{k, sr})
	}
	t.mu.Unlock()
	close(sr.done)
	return sr.res, false, sr.err
}

// expire drops the reads whose life ended before now: the table holds no
// storm's messages once the storm is over.
func (t *readShare) expire(now time.Time) {
	t.mu.Lock()
	t.dropExpired(now)
	t.mu.Unlock()
}

// answers reports whether res may answer a reader whose loop had handed out
// the topic's pushes up to atLeast.
func answers(res natsbroker.Read, atLeast uint64) bool {
	return !res.Recovered || res.Truncated || res.End >= atLeast
}

// dropExpired removes the reads whose life ended before now, oldest first.
// t.mu is held.
func (t *readShare) dropExpired(now time.Time) {
	n := 0
	for n < len(t.ended) && now.Sub(t.ended[n].read.ended) >= t.life() {
		f := t.ended[n]
		if t.reads[f.key] == f.read { // not replaced by a later read of the key
			delete(t.reads, f.key)
		}
		t.ended[n] = finished{}
		n++
	}
	if n > 0 {
		t.ended = t.ended[n:]
		if len(t.ended) == 0 {
			t.ended = nil // let the backing array go after a storm
		}
	}
}
