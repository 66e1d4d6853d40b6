//go:build linux

package netpoll

import (
	"io"
	"testing"
	"time"

	"github.com/wspush/wspush/internal/testsupport"
)

// TestAfterFlushRunsAfterTheWrite: a task queues output and asks to be told
// after the flush; the function runs once, when the kernel has the bytes.
func TestAfterFlushRunsAfterTheWrite(t *testing.T) {
	h := &lineHandler{}
	g := startGroup(t, h, 1)
	c := dialGroup(t, g)
	testsupport.WaitFor(t, "the connection to open", func() bool { opened, _ := h.counts(); return opened == 1 })
	l := g.Loops()[0]

	type seen struct{ buffered, calls int }
	result := make(chan seen, 2)
	calls := 0
	l.Post(func() {
		conn := l.Conns()[0]
		conn.Queue([]byte("pushed\n"))
		l.AfterFlush(func() {
			calls++
			result <- seen{conn.Buffered(), calls}
		})
		if calls != 0 {
			t.Error("AfterFlush ran its function before the flush")
		}
	})
	select {
	case r := <-result:
		if r.buffered != 0 || r.calls != 1 {
			t.Fatalf("after the flush: %d bytes still queued, call %d; want 0 and 1", r.buffered, r.calls)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("AfterFlush's function did not run")
	}
	got := make([]byte, len("pushed\n"))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "pushed\n" {
		t.Fatalf("read %q, %v", got, err)
	}
	// A later wake-up and flush does not run it again.
	ran := make(chan struct{})
	l.Post(func() { close(ran) })
	<-ran
	done := make(chan int)
	l.Post(func() { done <- calls })
	if n := <-done; n != 1 {
		t.Fatalf("AfterFlush's function ran %d times, want once", n)
	}
}

// TestTasksPending counts the tasks a busy loop has not taken yet.
func TestTasksPending(t *testing.T) {
	g := startGroup(t, &lineHandler{}, 1)
	l := g.Loops()[0]
	release, running := make(chan struct{}), make(chan struct{})
	l.Post(func() { close(running); <-release })
	<-running // the loop holds this task: what is posted now waits
	for range 3 {
		l.Post(func() {})
	}
	if n := l.TasksPending(); n != 3 {
		t.Fatalf("TasksPending = %d with the loop busy, want 3", n)
	}
	close(release)
	testsupport.WaitFor(t, "the loop to take its tasks", func() bool { return l.TasksPending() == 0 })
}
