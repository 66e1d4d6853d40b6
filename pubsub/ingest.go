package pubsub

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
)

// DefaultMaxIngestBytes is the default bound on the bytes of cluster
// messages the loops hold at once (SetMaxIngestBytes).
const DefaultMaxIngestBytes = 64 << 20

// ingestOverhead is what a message's push frame adds to its data, counted
// against the ingest window: the frame header and the envelope around the
// topic and seq, rounded up.
const ingestOverhead = 64

// ingestWindow bounds the bytes of ingested messages that the loops have
// not handed out yet. A message larger than the whole window is let through
// alone.
type ingestWindow struct {
	max   int64
	mu    sync.Mutex
	used  int64
	freed chan struct{} // a release happened; capacity 1
	bytes atomic.Int64  // used, for Stats without the lock
}

func (w *ingestWindow) acquire(ctx context.Context, n int64) error {
	for {
		w.mu.Lock()
		if w.used == 0 || w.used+n <= w.max {
			w.used += n
			w.bytes.Store(w.used)
			w.mu.Unlock()
			return nil
		}
		w.mu.Unlock()
		select {
		case <-w.freed:
		case <-ctx.Done():
			return fmt.Errorf("waiting for the loops to take the message: %w", ctx.Err())
		}
	}
}

func (w *ingestWindow) release(n int64) {
	w.mu.Lock()
	w.used -= n
	w.bytes.Store(w.used)
	w.mu.Unlock()
	select {
	case w.freed <- struct{}{}:
	default:
	}
}

// SetMaxIngestBytes changes the bound on the bytes of cluster messages
// (IngestWait) the loops hold at once. Call it before the Hub is used.
func (h *Hub) SetMaxIngestBytes(n int64) {
	if n > 0 {
		h.ingestWin = &ingestWindow{max: n, freed: make(chan struct{}, 1)}
	}
}

// IngestBytes is the bytes of ingested messages the loops hold now.
func (h *Hub) IngestBytes() int64 { return h.ingestWin.bytes.Load() }

// IngestWait is Ingest with a bound on what the loops hold: while the
// messages it handed out and the loops have not delivered yet hold more
// than the window (SetMaxIngestBytes) in all, it waits (or gives up with
// ctx). A cluster broker's single ingest goroutine calls it, so that loops
// that fall behind hold that goroutine back, the broker's own bounded
// buffer fills, and the broker's overflow accounting applies, instead of
// the loops' task lists growing. The window is in bytes, not messages, so
// that many small messages still share each subscriber's writev. Not from
// an event loop.
func (h *Hub) IngestWait(ctx context.Context, topic string, seq uint64, data []byte) (int, error) {
	return h.IngestAfter(ctx, topic, seq, NoPrev, data)
}

// IngestAfter is IngestWait for a message whose stream also says the seq of
// the topic's message before it (prev; NoPrev when unknown): a prev above
// the last seq this node took in means messages of the topic never reached
// it, and the topic's subscribers here are told so (gap.go).
func (h *Hub) IngestAfter(ctx context.Context, topic string, seq, prev uint64, data []byte) (int, error) {
	n := int64(len(data) + len(topic) + ingestOverhead)
	if err := h.ingestWin.acquire(ctx, n); err != nil {
		return 0, err
	}
	return h.ingest(topic, seq, prev, data, func() { h.ingestWin.release(n) }), nil
}
