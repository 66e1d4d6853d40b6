//go:build linux

package netpoll

import (
	"testing"
	"time"
)

func TestWheelFiresInOrderAndOnce(t *testing.T) {
	w := newWheel(10*time.Millisecond, 8) // 80ms per round: deadlines below span several rounds
	conns := make([]*Conn, 5)
	dues := []time.Duration{15 * time.Millisecond, 5 * time.Millisecond, 200 * time.Millisecond, 95 * time.Millisecond, 40 * time.Millisecond}
	for i := range conns {
		conns[i] = &Conn{idx: int32(i)}
		w.add(conns[i], w.ticksAt(w.start.Add(dues[i])))
	}
	w.remove(conns[4]) // cancelled: must never fire
	var fired []int32
	for step := 0; step <= 25; step++ {
		w.advance(w.start.Add(time.Duration(step)*10*time.Millisecond), func(c *Conn) { fired = append(fired, c.idx) })
	}
	want := []int32{1, 0, 3, 2}
	if len(fired) != len(want) {
		t.Fatalf("fired %v, want %v", fired, want)
	}
	for i := range want {
		if fired[i] != want[i] {
			t.Fatalf("fired %v, want %v", fired, want)
		}
	}
}

func TestWheelNeverFiresEarly(t *testing.T) {
	w := newWheel(10*time.Millisecond, 4)
	c := &Conn{}
	due := w.start.Add(25 * time.Millisecond)
	w.add(c, w.ticksAt(due))
	for now := w.start; now.Before(due); now = now.Add(time.Millisecond) {
		w.advance(now, func(*Conn) { t.Fatalf("fired at %v, before its deadline", now.Sub(w.start)) })
	}
	n := 0
	w.advance(due.Add(10*time.Millisecond), func(*Conn) { n++ })
	if n != 1 {
		t.Fatalf("fired %d times after the deadline, want 1", n)
	}
}

func TestWheelRescheduleFromFire(t *testing.T) {
	// A handler that sets the next deadline from inside the callback, as the
	// ping timer does, fires once per period.
	w := newWheel(10*time.Millisecond, 4)
	c := &Conn{}
	w.add(c, 1)
	n := 0
	for step := 1; step <= 20; step++ {
		w.advance(w.start.Add(time.Duration(step)*10*time.Millisecond), func(c *Conn) {
			n++
			w.add(c, w.now+5)
		})
	}
	if n != 4 { // ticks 1, 6, 11, 16
		t.Fatalf("fired %d times, want 4", n)
	}
}
