package pubsub

import (
	"sync/atomic"
	"time"
)

// Push latency is the time from a message being sequenced (Publish, Enqueue
// or Ingest has given it its seq) to the writev of its last subscriber's
// loop: the server's own share of a push's way, without the network and the
// client. One observation per message that reached subscribers, made by the
// last loop to have written it out; nothing per subscriber.

// afterFlusher is an Executor that can run a function once the output its
// current task queued has been written: netpoll.Loop.
type afterFlusher interface {
	AfterFlush(fn func())
}

// pushTiming is a Push's share of the latency bookkeeping, in the Push so a
// publish allocates nothing more for it.
type pushTiming struct {
	accepted  int64        // when the message was sequenced: nanoseconds since latency.base
	unflushed atomic.Int32 // loops yet to write it out
}

// latency measures push latency for a Hub; its zero value measures nothing.
type latency struct {
	observe func(time.Duration) // nil: off
	base    time.Time           // the clock's origin (monotonic), so a Push holds 8 bytes of time, not 24
	loops   []loopLatency       // indexed by loop
}

// loopLatency is one loop's messages delivered in its current wake-up and
// not yet written out. Owned by that loop's goroutine.
type loopLatency struct {
	af      afterFlusher // nil when the loop cannot tell: counted at the end of the task
	pending []*Push
	flushed func() // given to AfterFlush; made once, so a publish allocates no closure for it
}

// SetPushLatency has the Hub measure push latency: observe is called once
// per message that reached subscribers, on the goroutine of the loop that
// wrote it out last, with the time since the message was sequenced. It must
// be cheap and safe for concurrent use (a Prometheus histogram's Observe).
// With loops that are not netpoll loops (no AfterFlush), a message counts as
// written when its task has run. Call it before the Hub is used.
func (h *Hub) SetPushLatency(observe func(time.Duration)) {
	l := &h.lat
	l.observe = observe
	l.base = time.Now()
	l.loops = make([]loopLatency, len(h.loops))
	for i := range l.loops {
		ll := &l.loops[i]
		ll.af, _ = h.loops[i].(afterFlusher)
		ll.flushed = func() {
			now := l.clock()
			for j, p := range ll.pending {
				l.written(p, now)
				ll.pending[j] = nil
			}
			ll.pending = ll.pending[:0]
		}
	}
}

// clock is the time since base, in nanoseconds.
func (l *latency) clock() int64 { return int64(time.Since(l.base)) }

// now is the time a message is sequenced at, 0 when nothing is measured
// (no clock read then).
func (l *latency) now() int64 {
	if l.observe == nil {
		return 0
	}
	return l.clock()
}

// start stamps p, sequenced at accepted, to be written out by loops loops.
func (l *latency) start(p *Push, accepted int64, loops int32) {
	if l.observe == nil {
		return
	}
	p.timing.accepted = accepted
	p.timing.unflushed.Store(loops)
}

// delivered is called on loop when its task has queued p to its subscribers:
// p counts as written there after the loop's flush.
func (l *latency) delivered(loop int, p *Push) {
	if l.observe == nil {
		return
	}
	ll := &l.loops[loop]
	if ll.af == nil {
		l.written(p, l.clock())
		return
	}
	if len(ll.pending) == 0 {
		ll.af.AfterFlush(ll.flushed)
	}
	ll.pending = append(ll.pending, p)
}

// written counts one loop's writing of p; the last one observes.
func (l *latency) written(p *Push, now int64) {
	if p.timing.unflushed.Add(-1) == 0 {
		l.observe(time.Duration(now - p.timing.accepted))
	}
}
