package server

import (
	"context"
	"sync"
	"time"

	"github.com/wspush/wspush/pubsub"
	"github.com/wspush/wspush/pubsub/natsbroker"
)

// Shared stream reads (cluster recovery, clusterrecovery.go). In a
// reconnect storm thousands of clients resume the same topics from the same
// positions: they saw the same pushes before the node went away. Each read
// of the stream is a NATS round trip that the workers wait on, so reads of
// one key (topic, position, limits) share one request: a worker waits for
// a read of the same key already in flight, or takes one that ended less
// than readShareTTL ago.
//
// A shared result is as good as a read that took readShareTTL longer: the
// stream only grows at the end and drops from the front, so the messages it
// holds are still the topic's messages after the position, and the loop
// reads on from its End when live pushes have passed it (recoveryRead),
// as after a slow read. The stream's epoch is part of the key, so a read of
// a replaced stream is never shared with one of the new stream.

// readShareTTL is how long a finished read answers the same key. Short next
// to the 5 s a read may take (recoveryReadTimeout), long enough for a storm's
// resumes of one topic to arrive within it.
const readShareTTL = time.Second

// readShareSweep is the number of keys past which finishing a read also
// drops the expired ones: at most about as many keys as reads finish in
// readShareTTL are kept, and reads are bounded by -recovery-queue.
const readShareSweep = 1024

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
	ended time.Time
}

// readShare is the server's table of reads in flight and just done; safe
// for the recovery workers' concurrent use.
type readShare struct {
	ttl   time.Duration // how long a finished read answers its key; 0 means readShareTTL
	mu    sync.Mutex
	reads map[readKey]*sharedRead
}

func (t *readShare) life() time.Duration {
	if t.ttl > 0 {
		return t.ttl
	}
	return readShareTTL
}

// read returns the stream's answer for k, read with fn unless a read of k
// is in flight (then its answer) or ended within readShareTTL. shared is
// true when the answer came from another worker's request. The result's
// Messages are shared: read-only.
func (t *readShare) read(ctx context.Context, k readKey, fn func(context.Context) (natsbroker.Read, error)) (res natsbroker.Read, shared bool, err error) {
	now := time.Now()
	t.mu.Lock()
	if sr, ok := t.reads[k]; ok && (sr.ended.IsZero() || now.Sub(sr.ended) < t.life()) {
		t.mu.Unlock()
		select {
		case <-sr.done:
			return sr.res, true, sr.err
		case <-ctx.Done():
			return natsbroker.Read{}, false, ctx.Err()
		}
	}
	sr := &sharedRead{done: make(chan struct{})}
	if t.reads == nil {
		t.reads = make(map[readKey]*sharedRead)
	}
	t.reads[k] = sr
	t.mu.Unlock()

	sr.res, sr.err = fn(ctx)
	t.mu.Lock()
	if sr.err != nil {
		delete(t.reads, k) // a failure is not an answer for the next one
	} else {
		sr.ended = time.Now()
	}
	if len(t.reads) > readShareSweep {
		t.dropExpired(time.Now())
	}
	t.mu.Unlock()
	close(sr.done)
	return sr.res, false, sr.err
}

// dropExpired removes the reads that ended their life before now. t.mu is
// held.
func (t *readShare) dropExpired(now time.Time) {
	for k, sr := range t.reads {
		if !sr.ended.IsZero() && now.Sub(sr.ended) >= t.life() {
			delete(t.reads, k)
		}
	}
}
