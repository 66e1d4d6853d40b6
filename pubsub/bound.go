package pubsub

import "errors"

// Bounded is an Executor whose task queue is bounded (netpoll.Loop is one).
// With Bounded loops the Hub does not add to a full queue from an event
// loop, and makes the goroutine that ingests cluster messages wait instead,
// so that neither client publishes nor cluster deliveries queue frames
// without limit. An Executor that is not Bounded is taken as unbounded.
type Bounded interface {
	Executor
	// HasRoom reports whether the queue is below its bound; it must be
	// cheap and safe from any goroutine (one atomic load).
	HasRoom() bool
	// WaitRoom waits until the queue is below its bound and reports false
	// once the executor has stopped. Never called from an event loop.
	WaitRoom() bool
}

// ErrLoopsBusy is Enqueue's answer when a loop's task queue is full: the
// publish is refused, never queued beyond the bound.
var ErrLoopsBusy = errors.New("the server's event loops are busy: publish refused, retry later")

// loopsHaveRoom reports whether every loop's queue is below its bound. The
// bound is soft: goroutines checking at the same moment may each add one
// task past it (at most one per loop and per admin publish in flight).
func (h *Hub) loopsHaveRoom() bool {
	for _, l := range h.loops {
		if b, ok := l.(Bounded); ok && !b.HasRoom() {
			return false
		}
	}
	return true
}

// waitForRoom waits until every loop's queue is below its bound, and
// reports false if a loop has stopped.
func (h *Hub) waitForRoom() bool {
	for _, l := range h.loops {
		if b, ok := l.(Bounded); ok && !b.WaitRoom() {
			return false
		}
	}
	return true
}
