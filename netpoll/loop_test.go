//go:build linux

package netpoll

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// lineHandler is a tiny protocol for the tests: newline-terminated lines are
// echoed back upper-cased; "close" closes, "big" answers with a large body.
type lineHandler struct {
	mu     sync.Mutex
	opened int
	closed int
	needs  []int // the need hints returned, to check tail sizing
}

func (h *lineHandler) Open(c *Conn) {
	h.mu.Lock()
	h.opened++
	h.mu.Unlock()
}

func (h *lineHandler) Read(c *Conn, b []byte) (int, int) {
	used := 0
	for {
		i := bytes.IndexByte(b[used:], '\n')
		if i < 0 {
			return used, 0
		}
		line := b[used : used+i]
		used += i + 1
		switch string(line) {
		case "close":
			c.Close(nil)
			return used, 0
		case "panic":
			panic("the handler failed")
		case "big":
			c.Queue(bytes.Repeat([]byte("x"), 8<<20))
			c.Queue([]byte("\n"))
		default:
			c.Queue(bytes.ToUpper(append(line[:len(line):len(line)], '\n')))
		}
	}
}

func (h *lineHandler) Timer(c *Conn, now time.Time) { c.Close(nil) }

func (h *lineHandler) Close(c *Conn, err error) {
	h.mu.Lock()
	h.closed++
	h.mu.Unlock()
}

func (h *lineHandler) counts() (int, int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.opened, h.closed
}

func startGroup(t testing.TB, h Handler, loops int) *Group {
	t.Helper()
	return startGroupConfig(t, Config{Addr: "127.0.0.1:0", Loops: loops, Handler: h, Tick: 5 * time.Millisecond})
}

// startGroupConfig is startGroup with the whole Config.
func startGroupConfig(t testing.TB, cfg Config) *Group {
	t.Helper()
	g, err := Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	return g
}

func dialGroup(t testing.TB, g *Group) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", g.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}

func TestPartialUnitsAreKeptAcrossReads(t *testing.T) {
	h := &lineHandler{}
	g := startGroup(t, h, 2)
	c := dialGroup(t, g)
	// One line split over many writes, and many lines in one write.
	for _, part := range []string{"he", "l", "lo\nwor", "ld\n", "a\nb\nc\n"} {
		c.Write([]byte(part))
		time.Sleep(2 * time.Millisecond) // separate segments, so the loop sees partial lines
	}
	want := "HELLO\nWORLD\nA\nB\nC\n"
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != want {
		t.Fatalf("got %q, %v; want %q", got, err, want)
	}
}

func TestLargeWriteWaitsForEPOLLOUT(t *testing.T) {
	// 8 MiB is more than the kernel takes at once: the rest stays queued and
	// leaves on EPOLLOUT as the client reads; Buffered shows the backlog.
	h := &lineHandler{}
	g := startGroup(t, h, 1)
	c := dialGroup(t, g)
	c.Write([]byte("big\nafter\n"))
	got, err := io.ReadAll(io.LimitReader(c, int64(8<<20+1+len("AFTER\n"))))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 8<<20+1+6 || !bytes.HasSuffix(got, []byte("\nAFTER\n")) {
		t.Fatalf("got %d bytes ending %q", len(got), got[len(got)-10:])
	}
}

func TestPostRunsInOrderOnTheLoop(t *testing.T) {
	g := startGroup(t, &lineHandler{}, 2)
	l := g.Loops()[1]
	var got []int
	done := make(chan struct{})
	for i := 0; i < 1000; i++ {
		l.Post(func() { got = append(got, i) }) // only the loop touches got
	}
	l.Post(func() { close(done) })
	<-done
	for i, v := range got {
		if v != i {
			t.Fatalf("task %d ran as %d", v, i)
		}
	}
	if len(got) != 1000 || l.Stats.Wakeups.Load() == 0 {
		t.Fatalf("%d tasks ran, %d wake-ups", len(got), l.Stats.Wakeups.Load())
	}
}

func TestCloseFreesEverything(t *testing.T) {
	h := &lineHandler{}
	g := startGroup(t, h, 2)
	open := func() int64 {
		var n int64
		for _, l := range g.Loops() {
			n += l.Stats.Conns.Load()
		}
		return n
	}
	a, b, c := dialGroup(t, g), dialGroup(t, g), dialGroup(t, g)
	a.Write([]byte("half a line")) // leaves a tail buffer behind
	b.Write([]byte("close\n"))     // the handler closes
	c.Close()                      // the peer closes
	if _, err := b.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("read after the server closed: %v, want EOF", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for open() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections open, want 1", open())
		}
		time.Sleep(time.Millisecond)
	}
	// The half line may still be on its way when b and c are gone.
	for kept := false; !kept; time.Sleep(2 * time.Millisecond) {
		var tail atomic.Bool
		g.Each(func(l *Loop) {
			for _, conn := range l.Conns() {
				if conn.in != nil {
					tail.Store(true)
				}
			}
		})
		if kept = tail.Load(); !kept && time.Now().After(deadline) {
			t.Fatal("the half line's tail was dropped")
		}
	}
	a.Close()
	for open() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections open, want 0", open())
		}
		time.Sleep(time.Millisecond)
	}
	if opened, closed := h.counts(); opened != 3 || closed != 3 {
		t.Fatalf("opened %d, closed %d", opened, closed)
	}
}

func TestTimerClosesConnection(t *testing.T) {
	h := &timerHandler{lineHandler: &lineHandler{}}
	g := startGroup(t, h, 1)
	start := time.Now() // before the accept that sets the deadline
	c := dialGroup(t, g)
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("read: %v, want EOF from the timer's close", err)
	}
	if time.Since(start) < 50*time.Millisecond {
		t.Fatalf("closed after %v, before its 50ms deadline", time.Since(start))
	}
}

// timerHandler sets a 50ms deadline on open; lineHandler.Timer closes.
type timerHandler struct{ *lineHandler }

func (h *timerHandler) Open(c *Conn) {
	h.lineHandler.Open(c)
	c.SetTimer(time.Now().Add(50 * time.Millisecond))
}

func TestEachAfterCloseDoesNotWait(t *testing.T) {
	g, err := Listen(Config{Addr: "127.0.0.1:0", Loops: 2, Handler: &lineHandler{}})
	if err != nil {
		t.Fatal(err)
	}
	g.Start()
	g.Close()
	ran := 0
	g.Each(func(*Loop) { ran++ }) // must return: the loops are gone
	if ran != 0 {
		t.Fatalf("ran on %d stopped loops", ran)
	}
}

func TestPanickingCallbackClosesOnlyItsConnection(t *testing.T) {
	h := &panicHandler{lineHandler: &lineHandler{}}
	g := startGroup(t, h, 1) // one loop: the bystander shares it
	bystander, victim := dialGroup(t, g), dialGroup(t, g)
	victim.Write([]byte("panic\n"))
	if _, err := victim.Read(make([]byte, 1)); err == nil {
		t.Fatal("read from the panicking connection succeeded, want it closed")
	}
	bystander.Write([]byte("still here\n"))
	got := make([]byte, len("STILL HERE\n"))
	if _, err := io.ReadFull(bystander, got); err != nil || string(got) != "STILL HERE\n" {
		t.Fatalf("the other connection got %q, %v", got, err)
	}
	l := g.Loops()[0]
	if n := l.Stats.Panics.Load(); n != 1 {
		t.Fatalf("Stats.Panics %d, want 1", n)
	}
	g.Each(func(*Loop) {}) // Handler.Close has run by now: it runs on the loop before the task
	if err := h.closeErr(); !errors.Is(err, ErrHandlerPanic) {
		t.Fatalf("Handler.Close got %v, want ErrHandlerPanic", err)
	}
}

// panicHandler records the error its connections were closed with.
type panicHandler struct {
	*lineHandler
	mu   sync.Mutex
	errs []error
}

func (h *panicHandler) Close(c *Conn, err error) {
	h.lineHandler.Close(c, err)
	h.mu.Lock()
	h.errs = append(h.errs, err)
	h.mu.Unlock()
}

func (h *panicHandler) closeErr() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return errors.Join(h.errs...)
}

func TestEachAndCloseFromALoopPanic(t *testing.T) {
	g := startGroup(t, &lineHandler{}, 2)
	for _, call := range []struct {
		name string
		fn   func()
	}{
		{"Each", func() { g.Each(func(*Loop) {}) }},
		{"Close", g.Close},
	} {
		got := make(chan any, 1)
		g.Loops()[1].Post(func() {
			defer func() { got <- recover() }()
			call.fn()
		})
		select {
		case v := <-got:
			if msg, _ := v.(string); !strings.Contains(msg, "Group."+call.name) || !strings.Contains(msg, "loop 1") {
				t.Fatalf("%s on a loop: recovered %v, want a panic naming Group.%s and loop 1", call.name, v, call.name)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s on a loop hung", call.name)
		}
	}
}
