package looptls

import (
	"sync"
	"sync/atomic"
	"time"
)

// Pool bounds the TLS handshakes in flight, across all loops, and runs each
// on a goroutine of its own. The loops reserve a slot before they accept
// (TryAcquire), so when all slots are taken the next connections wait in
// the kernel's accept backlog, costing the process nothing.
type Pool struct {
	timeout time.Duration

	mu      sync.Mutex
	free    int
	waiters []func() // told when a slot frees

	Stats PoolStats
}

// PoolStats are a Pool's counters, readable from any goroutine.
type PoolStats struct {
	InFlight atomic.Int64  // handshakes running
	Started  atomic.Uint64 // handshakes started
	Failed   atomic.Uint64 // handshakes that ended with an error (timeouts included)
	TimedOut atomic.Uint64 // handshakes aborted by the timeout
	Refused  atomic.Uint64 // TryAcquire calls that found every slot taken
}

// NewPool returns a Pool of limit slots (at least 1) whose handshakes fail
// with ErrHandshakeTimeout when not done within timeout.
func NewPool(limit int, timeout time.Duration) *Pool {
	return &Pool{free: max(limit, 1), timeout: timeout}
}

// TryAcquire reserves a slot for one handshake, to be used by Start or
// given back with Release. When every slot is taken it returns false and
// keeps ready, which is called once, from any goroutine, when a slot frees:
// the loop should stop accepting until then (and not call again before).
// ready may be nil.
func (p *Pool) TryAcquire(ready func()) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.free > 0 {
		p.free--
		return true
	}
	if ready != nil {
		p.waiters = append(p.waiters, ready)
	}
	p.Stats.Refused.Add(1)
	return false
}

// Release gives back a slot taken by TryAcquire and not used (accept found
// no connection).
func (p *Pool) Release() {
	p.mu.Lock()
	p.free++
	w := p.waiters
	p.waiters = nil
	p.mu.Unlock()
	for _, ready := range w {
		ready()
	}
}

// Start runs c's handshake on a new goroutine in a slot the caller took
// with TryAcquire. When it ends, the slot is released and c's
// TLSHandshakeDone is posted to its loop.
func (p *Pool) Start(c *Conn) {
	p.Stats.Started.Add(1)
	p.Stats.InFlight.Add(1)
	go p.run(c)
}

func (p *Pool) run(c *Conn) {
	var timedOut atomic.Bool
	hs := c.tr.hs // the timer may fire after the loop has dropped it
	timer := time.AfterFunc(p.timeout, func() {
		timedOut.Store(true)
		hs.abort(ErrHandshakeTimeout)
	})
	err := c.tc.Handshake()
	timer.Stop()
	if err != nil {
		p.Stats.Failed.Add(1)
		if timedOut.Load() {
			p.Stats.TimedOut.Add(1)
		}
	}
	p.Stats.InFlight.Add(-1)
	p.Release()
	// The last use of c.tc on this goroutine is above: from here the loop
	// owns it (the post is the hand-over).
	c.post(func() { c.handshakeDone(err) })
}
