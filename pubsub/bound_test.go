package pubsub

import (
	"errors"
	"sync"
	"testing"
	"time"
)

// queueExecutor is a Bounded executor whose tasks wait until run is called,
// as a busy loop's do.
type queueExecutor struct {
	mu    sync.Mutex
	cond  *sync.Cond
	tasks []func()
	max   int
}

func newQueueExecutor(max int) *queueExecutor {
	q := &queueExecutor{max: max}
	q.cond = sync.NewCond(&q.mu)
	return q
}

func (q *queueExecutor) Post(fn func()) {
	q.mu.Lock()
	q.tasks = append(q.tasks, fn)
	q.mu.Unlock()
}

func (q *queueExecutor) HasRoom() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.tasks) < q.max
}

func (q *queueExecutor) WaitRoom() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.tasks) >= q.max {
		q.cond.Wait()
	}
	return true
}

func (q *queueExecutor) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.tasks)
}

// run runs the waiting tasks, as the loop does when it gets to them.
func (q *queueExecutor) run() {
	q.mu.Lock()
	tasks := q.tasks
	q.tasks = nil
	q.cond.Broadcast()
	q.mu.Unlock()
	for _, fn := range tasks {
		fn()
	}
}

type countingSub struct{ n int }

func (c *countingSub) Push(*Push) { c.n++ }

func TestEnqueueRefusesWhenALoopIsFull(t *testing.T) {
	q := newQueueExecutor(3)
	h := NewHub([]Executor{q}, nil)
	sub := &countingSub{}
	h.Subscribe(0, sub, "t")
	for i := 0; i < 3; i++ {
		if _, err := h.Enqueue("t", []byte("1")); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	if _, err := h.Enqueue("t", []byte("1")); !errors.Is(err, ErrLoopsBusy) {
		t.Fatalf("publish past the bound: %v, want ErrLoopsBusy", err)
	}
	if n := q.len(); n != 3 {
		t.Fatalf("%d tasks queued, want 3", n)
	}
	q.run()
	if _, err := h.Enqueue("t", []byte("1")); err != nil {
		t.Fatalf("publish after the loop ran: %v", err)
	}
}

func TestIngestWaitsForTheLoops(t *testing.T) {
	q := newQueueExecutor(3)
	h := NewHub([]Executor{q}, nil)
	sub := &countingSub{}
	h.Subscribe(0, sub, "t")
	done := make(chan struct{})
	go func() {
		defer close(done)
		for seq := uint64(1); seq <= 10; seq++ {
			h.Ingest("t", seq, []byte("1"))
		}
	}()
	for {
		select {
		case <-done:
			q.run()
			if sub.n != 10 {
				t.Fatalf("%d pushes delivered, want 10", sub.n)
			}
			return
		case <-time.After(10 * time.Millisecond):
		}
		if n := q.len(); n > 3 {
			t.Fatalf("%d tasks queued past the bound of 3", n)
		}
		q.run()
	}
}
