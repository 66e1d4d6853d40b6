package pubsub

import (
	"context"
	"testing"
	"time"

	"github.com/wspush/wspush/internal/testsupport"
)

// steppedLoop is an executor with AfterFlush whose tasks wait until the test
// runs them, and whose flush the test triggers: a stand-in for a netpoll
// loop where the order of wake-ups and flushes is what is under test.
type steppedLoop struct {
	tasks []func()
	after []func()
}

func (l *steppedLoop) Post(fn func())       { l.tasks = append(l.tasks, fn) }
func (l *steppedLoop) AfterFlush(fn func()) { l.after = append(l.after, fn) }

// wake runs the queued tasks, as onWake does, but not the flush.
func (l *steppedLoop) wake() {
	tasks := l.tasks
	l.tasks = nil
	for _, fn := range tasks {
		fn()
	}
}

// flush is the end of the wake-up: the writes, then what AfterFlush queued.
func (l *steppedLoop) flush() {
	after := l.after
	l.after = nil
	for _, fn := range after {
		fn()
	}
}

type observations struct{ got []time.Duration }

func (o *observations) observe(d time.Duration) { o.got = append(o.got, d) }

// TestPushLatencyObservedAfterTheLastFlush: one observation per message, made
// when the last of its loops has flushed, not when the tasks ran.
func TestPushLatencyObservedAfterTheLastFlush(t *testing.T) {
	loops := []*steppedLoop{{}, {}, {}}
	h := NewHub([]Executor{loops[0], loops[1], loops[2]}, nil)
	var obs observations
	h.SetPushLatency(obs.observe)
	for i := range 2 { // subscribers on loops 0 and 1; loop 2 has none
		h.Subscribe(i, &counter{}, "t")
		h.Subscribe(i, &counter{}, "t")
	}
	before := time.Now()
	h.Enqueue("t", []byte(`1`))
	h.Enqueue("t", []byte(`2`))
	if len(loops[2].tasks) != 0 {
		t.Fatal("a loop without subscribers got a task")
	}

	loops[0].wake()
	loops[0].flush()
	loops[1].wake()
	if len(obs.got) != 0 {
		t.Fatalf("observed %v before the last loop flushed", obs.got)
	}
	time.Sleep(5 * time.Millisecond) // the flush comes measurably later
	loops[1].flush()
	elapsed := time.Since(before)
	if len(obs.got) != 2 {
		t.Fatalf("%d observations after both loops flushed two messages, want 2", len(obs.got))
	}
	for _, d := range obs.got {
		if d < 5*time.Millisecond || d > elapsed {
			t.Errorf("latency %v, want between 5ms (the wait before the flush) and %v", d, elapsed)
		}
	}
	// Later wake-ups run no stale observation.
	loops[1].wake()
	loops[1].flush()
	if len(obs.got) != 2 {
		t.Fatalf("%d observations, want still 2", len(obs.got))
	}
}

// TestPushLatencyOncePerMessage: with loops that cannot tell about flushes a
// message counts when its last task has run; publishes that reach nobody are
// not observed, and nothing is measured without SetPushLatency.
func TestPushLatencyOncePerMessage(t *testing.T) {
	h := NewHub([]Executor{testsupport.Inline{}, testsupport.Inline{}}, nil)
	var obs observations
	h.SetPushLatency(obs.observe)
	h.Subscribe(0, &counter{}, "t")
	h.Subscribe(1, &counter{}, "t")
	for range 3 {
		h.Publish(context.Background(), "t", []byte(`{}`))
	}
	h.Publish(context.Background(), "nobody", []byte(`{}`))
	h.Ingest("t", 10, []byte(`{}`))
	if len(obs.got) != 4 {
		t.Fatalf("%d observations for 4 messages delivered, want 4", len(obs.got))
	}

	off := newTestHub(1)
	sub := &recorder{}
	off.Subscribe(0, sub, "t")
	off.Publish(context.Background(), "t", []byte(`{}`))
	if len(sub.got) != 1 {
		t.Fatal("a Hub without SetPushLatency did not deliver")
	}
}

// flushingLoop runs each task at once and then what AfterFlush queued, as a
// netpoll loop's wake-up does.
type flushingLoop struct{ after []func() }

func (l *flushingLoop) Post(fn func()) {
	fn()
	for _, f := range l.after {
		f()
	}
	l.after = l.after[:0]
}

func (l *flushingLoop) AfterFlush(fn func()) { l.after = append(l.after, fn) }

// BenchmarkFanOut10kLatency is BenchmarkFanOut10k with push latency
// measured as the server does: allocs/op must not grow.
func BenchmarkFanOut10kLatency(b *testing.B) {
	h := NewHub([]Executor{&flushingLoop{}}, nil)
	var n int
	h.SetPushLatency(func(time.Duration) { n++ })
	fanOut10k(b, h, func(i int, data []byte) { h.Publish(context.Background(), "bench", data) })
	if n != b.N {
		b.Fatalf("%d observations for %d publishes", n, b.N)
	}
}
