//go:build linux

package netpoll

import "time"

// wheel is a hashed timing wheel holding at most one deadline per connection.
// It is owned by one loop: no locks. Adding, moving and removing a deadline is
// O(1); a tick visits only the connections hashed to its slot, and a
// connection whose deadline is rounds away stays in place until its round.
type wheel struct {
	slots []*Conn // heads of intrusive doubly linked lists (Conn.tnext/tprev)
	tick  time.Duration
	start time.Time
	now   int64 // the last tick processed
}

func newWheel(tick time.Duration, slots int) *wheel {
	return &wheel{slots: make([]*Conn, slots), tick: tick, start: time.Now()}
}

// ticksAt converts an absolute time to a tick number, rounding up so a
// deadline never fires early.
func (w *wheel) ticksAt(t time.Time) int64 {
	d := t.Sub(w.start)
	return int64((d + w.tick - 1) / w.tick)
}

func (w *wheel) add(c *Conn, due int64) {
	if c.tdue != 0 {
		w.remove(c)
	}
	if due <= w.now {
		due = w.now + 1
	}
	slot := &w.slots[due%int64(len(w.slots))]
	c.tdue = due
	c.tprev = nil
	c.tnext = *slot
	if *slot != nil {
		(*slot).tprev = c
	}
	*slot = c
}

func (w *wheel) remove(c *Conn) {
	if c.tdue == 0 {
		return
	}
	if c.tprev != nil {
		c.tprev.tnext = c.tnext
	} else {
		w.slots[c.tdue%int64(len(w.slots))] = c.tnext
	}
	if c.tnext != nil {
		c.tnext.tprev = c.tprev
	}
	c.tnext, c.tprev, c.tdue = nil, nil, 0
}

// advance fires, in tick order, every deadline up to time t. fire may set a
// new deadline for the connection it is given or close it.
func (w *wheel) advance(t time.Time, fire func(*Conn)) {
	to := int64(t.Sub(w.start) / w.tick) // ticks fully elapsed: round down
	if to-w.now > int64(len(w.slots)) {
		// After a stall, one round over the slots visits every deadline.
		w.now = to - int64(len(w.slots))
	}
	for w.now < to {
		w.now++
		for c := w.slots[w.now%int64(len(w.slots))]; c != nil; {
			next := c.tnext
			if c.tdue <= w.now {
				w.remove(c)
				fire(c)
			}
			c = next
		}
	}
}
