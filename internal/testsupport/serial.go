package testsupport

import (
	"sync"
	"testing"
)

// Serial is an executor (pubsub.Executor) with a goroutine of its own that
// runs tasks one at a time in the order posted, as an event loop does; Do
// runs a function there and waits, for what the tests call "on the loop".
// Unlike Inline it keeps loop-owned state on one goroutine, so -race checks
// the code's claims about it. Hold stops it running tasks (they queue) until
// the returned function is called.
type Serial struct {
	mu     sync.Mutex
	cond   *sync.Cond
	tasks  []func()
	held   bool
	closed bool
	queued int // the most tasks ever waiting at once
	done   chan struct{}
}

// NewSerial starts a Serial that stops when the test ends.
func NewSerial(t testing.TB) *Serial {
	s := &Serial{done: make(chan struct{})}
	s.cond = sync.NewCond(&s.mu)
	go s.run()
	t.Cleanup(func() {
		s.mu.Lock()
		s.closed = true
		s.cond.Broadcast()
		s.mu.Unlock()
		<-s.done
	})
	return s
}

// Post queues fn.
func (s *Serial) Post(fn func()) {
	s.mu.Lock()
	s.tasks = append(s.tasks, fn)
	s.queued = max(s.queued, len(s.tasks))
	s.cond.Signal()
	s.mu.Unlock()
}

// Do runs fn on the Serial's goroutine, after what is queued, and waits.
func (s *Serial) Do(fn func()) {
	ran := make(chan struct{})
	s.Post(func() { fn(); close(ran) })
	<-ran
}

// Hold stops running tasks until release is called.
func (s *Serial) Hold() (release func()) {
	s.mu.Lock()
	s.held = true
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		s.held = false
		s.cond.Broadcast()
		s.mu.Unlock()
	}
}

// MaxQueued is the most tasks that were waiting at once.
func (s *Serial) MaxQueued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queued
}

func (s *Serial) run() {
	defer close(s.done)
	for {
		s.mu.Lock()
		for !s.closed && (s.held || len(s.tasks) == 0) {
			s.cond.Wait()
		}
		if s.closed {
			s.mu.Unlock()
			return
		}
		fn := s.tasks[0]
		s.tasks[0] = nil
		s.tasks = s.tasks[1:]
		s.mu.Unlock()
		fn()
	}
}
