package pubsub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/wspush/wspush/frames"
	"github.com/wspush/wspush/internal/testsupport"
)

// recorder is a Subscriber that keeps what it is pushed.
type recorder struct{ got []frames.Prepared }

func (r *recorder) Push(p *Push) { r.got = append(r.got, p.Frame) }

func newTestHub(loops int) *Hub {
	execs := make([]Executor, loops)
	for i := range execs {
		execs[i] = testsupport.Inline{}
	}
	return NewHub(execs, nil)
}

func TestPublishReachesSubscribersOnEveryLoop(t *testing.T) {
	h := newTestHub(3)
	subs := []*recorder{{}, {}, {}, {}}
	for i, s := range subs {
		if _, seq, err := h.Subscribe(i%3, s, "news"); err != nil || seq != 0 {
			t.Fatalf("subscribe: seq %d, err %v", seq, err)
		}
	}
	for want := uint64(1); want <= 3; want++ {
		res, err := h.Publish(context.Background(), "news", []byte(`{"n":1}`))
		if err != nil {
			t.Fatal(err)
		}
		if res.Seq != want || res.Subscribers != len(subs) {
			t.Fatalf("publish %d: got %+v", want, res)
		}
	}
	for i, s := range subs {
		if len(s.got) != 3 {
			t.Fatalf("subscriber %d got %d pushes, want 3", i, len(s.got))
		}
		// The frame is shared, not copied per subscriber.
		if &s.got[0][0] != &subs[0].got[0][0] {
			t.Fatalf("subscriber %d got its own copy of the frame", i)
		}
	}
}

func TestPushFrameEnvelope(t *testing.T) {
	tests := []struct {
		topic string
		seq   uint64
		data  string
	}{
		{"a", 1, `{"x":1}`},
		{`we"ird\topic`, 18446744073709551615, `[1,"two",null]`},
		{"t", 10, `"s"`},
	}
	for _, tt := range tests {
		f := PushFrame(tt.topic, tt.seq, []byte(tt.data))
		h, n, err := frames.ParseHeader(f)
		if err != nil || int(h.Length) != len(f)-n {
			t.Fatalf("frame header %+v, %v; frame is %d bytes", h, err, len(f))
		}
		payload := f[n:]
		var env struct {
			Topic string          `json:"topic"`
			Seq   uint64          `json:"seq"`
			Data  json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(payload, &env); err != nil {
			t.Fatalf("%s: envelope %q is not JSON: %v", tt.topic, payload, err)
		}
		if env.Topic != tt.topic || env.Seq != tt.seq || string(env.Data) != tt.data {
			t.Fatalf("envelope %q decodes to %+v", payload, env)
		}
		if !h.Fin || h.OpCode != ws.OpText || h.Masked {
			t.Fatalf("header %+v, want a final unmasked text frame", h)
		}
	}
}

func TestPublishIsBoundedByTheLoops(t *testing.T) {
	// A loop that runs nothing: after MaxInFlight publishes the next one
	// waits, and gives up with its context; running the loop frees the slots.
	var queued []func()
	h := NewHub([]Executor{postFunc(func(fn func()) { queued = append(queued, fn) })}, nil)
	h.Subscribe(0, &recorder{}, "w")
	for i := 0; i < MaxInFlight; i++ {
		if _, err := h.Publish(context.Background(), "w", []byte(`1`)); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := h.Publish(ctx, "w", []byte(`1`)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("publish past the bound: %v, want to wait until the deadline", err)
	}
	for _, fn := range queued {
		fn()
	}
	if res, err := h.Publish(context.Background(), "w", []byte(`1`)); err != nil || res.Seq != MaxInFlight+1 {
		t.Fatalf("publish after the loop caught up: %+v, %v", res, err)
	}
	// Publishes that reach no loop give their slot back at once.
	for i := 0; i < 2*MaxInFlight; i++ {
		h.Publish(context.Background(), "nobody", []byte(`1`))
		h.Publish(context.Background(), "bad topic", []byte(`1`))
	}
}

func TestPublishValidates(t *testing.T) {
	h := newTestHub(1)
	for _, tt := range []struct{ topic, data string }{
		{"", `1`}, {"has space", `1`}, {string(make([]byte, 201)), `1`}, {"ok", `{bad`}, {"ok", ``},
	} {
		if _, err := h.Publish(context.Background(), tt.topic, []byte(tt.data)); err == nil {
			t.Errorf("publish %q %q: no error", tt.topic, tt.data)
		}
	}
	res, err := h.Publish(context.Background(), "nobody", []byte(`1`))
	if err != nil || res.Seq != 0 || res.Subscribers != 0 {
		t.Fatalf("publish without subscribers: %+v, %v", res, err)
	}
}

func TestLateSubscriberSkipsEarlierSeq(t *testing.T) {
	// A publish posted before a subscribe ran must not reach the new
	// subscriber: its subscribed seq already counts it.
	var queued []func()
	h := NewHub([]Executor{postFunc(func(fn func()) { queued = append(queued, fn) })}, nil)
	early := &recorder{}
	h.Subscribe(0, early, "t")
	h.Enqueue("t", []byte(`1`)) // seq 1, queued on the loop, not yet run
	late := &recorder{}
	_, seq, _ := h.Subscribe(0, late, "t")
	if seq != 1 {
		t.Fatalf("late subscriber told seq %d, want 1", seq)
	}
	for _, fn := range queued {
		fn()
	}
	if len(early.got) != 1 || len(late.got) != 0 {
		t.Fatalf("early got %d, late got %d; want 1 and 0", len(early.got), len(late.got))
	}
}

func TestPositionOfAHeldSubscription(t *testing.T) {
	// Asked again while a publish is still on its way to the loop, a
	// subscriber's position is below that publish: it is yet to arrive.
	var queued []func()
	h := NewHub([]Executor{postFunc(func(fn func()) { queued = append(queued, fn) })}, nil)
	r := &recorder{}
	top, _, _ := h.Subscribe(0, r, "t")
	h.Enqueue("t", []byte(`1`))
	h.Enqueue("t", []byte(`2`))
	queued[0]() // seq 1 handed out; seq 2 still queued
	if pos := top.Position(0, r); pos != 1 {
		t.Fatalf("position %d, want 1: seq 2 is still to come", pos)
	}
	queued[1]()
	late := &recorder{}
	h.Enqueue("t", []byte(`3`)) // queued, not run
	h.Subscribe(0, late, "t")   // subscribes at seq 3: 3 is not for it
	if pos := top.Position(0, late); pos != 3 {
		t.Fatalf("late subscriber's position %d, want 3", pos)
	}
}

type postFunc func(func())

func (p postFunc) Post(fn func()) { p(fn) }

// taskQueue is an Executor whose tasks wait until the test runs them: a
// loop whose turns the test drives.
type taskQueue struct{ tasks []func() }

func (q *taskQueue) Post(fn func()) { q.tasks = append(q.tasks, fn) }

// run runs the queued tasks in order, and those they post, until none is
// left.
func (q *taskQueue) run() {
	for len(q.tasks) > 0 {
		fn := q.tasks[0]
		q.tasks = q.tasks[1:]
		fn()
	}
}

func TestTopicForgottenWithLastSubscriber(t *testing.T) {
	var interest []string
	h := NewHub([]Executor{testsupport.Inline{}, testsupport.Inline{}}, func(topic string, on bool) {
		interest = append(interest, fmt.Sprintf("%s %v", topic, on))
	})
	a, b := &recorder{}, &recorder{}
	ta, _, _ := h.Subscribe(0, a, "x")
	tb, _, _ := h.Subscribe(1, b, "x")
	h.Publish(context.Background(), "x", []byte(`1`))
	h.Unsubscribe(0, a, ta)
	if st := h.Stats(); st.Topics != 1 || st.Subscriptions != 1 {
		t.Fatalf("after one unsubscribe: %+v", st)
	}
	h.Unsubscribe(1, b, tb)
	if st := h.Stats(); st.Topics != 0 || st.Subscriptions != 0 {
		t.Fatalf("after the last unsubscribe: %+v", st)
	}
	if fmt.Sprint(interest) != "[x true x false]" {
		t.Fatalf("interest calls %v", interest)
	}
	_, seq, _ := h.Subscribe(0, a, "x")
	if seq != 0 {
		t.Fatalf("a forgotten topic starts again at 0, got %d", seq)
	}
}

func TestConcurrentPublishersKeepSeqOrder(t *testing.T) {
	var mu sync.Mutex
	h := NewHub([]Executor{postFunc(func(fn func()) { mu.Lock(); fn(); mu.Unlock() })}, nil)
	r := &recorder{}
	h.Subscribe(0, r, "t")
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 250; i++ {
				h.Publish(context.Background(), "t", []byte(`0`))
			}
		}()
	}
	wg.Wait()
	if len(r.got) != 1000 {
		t.Fatalf("got %d pushes, want 1000", len(r.got))
	}
	for i, f := range r.got {
		var env struct{ Seq int }
		json.Unmarshal(f[2:], &env)
		if env.Seq != i+1 {
			t.Fatalf("push %d has seq %d", i, env.Seq)
		}
	}
}

// counter is a Subscriber that only counts, like a connection queueing a
// reference.
type counter struct{ n int }

func (c *counter) Push(*Push) { c.n++ }

func TestDeflatedPushIsSharedAndDecodes(t *testing.T) {
	h := newTestHub(1)
	r := &pushRecorder{}
	h.Subscribe(0, r, "z")
	data := `{"text":"` + strings.Repeat("all work and no play ", 20) + `"}`
	h.Publish(context.Background(), "z", []byte(data))
	p := r.pushes[0]
	d1, d2 := p.Deflated(), p.Deflated()
	if &d1[0] != &d2[0] {
		t.Fatal("the compressed frame was made twice")
	}
	hd, n, err := frames.ParseHeader(d1)
	if err != nil || hd.Rsv == 0 || len(d1) >= len(p.Frame) {
		t.Fatalf("compressed frame header %+v (%v), %d bytes against %d plain", hd, err, len(d1), len(p.Frame))
	}
	var f frames.Inflater
	plain, err := f.Inflate(nil, d1[n:], 0)
	_, pn, _ := frames.ParseHeader(p.Frame)
	if err != nil || string(plain) != string(p.Frame[pn:]) {
		t.Fatalf("inflated %q, %v", plain, err)
	}
}

type pushRecorder struct{ pushes []*Push }

func (r *pushRecorder) Push(p *Push) { r.pushes = append(r.pushes, p) }

// fanOut10k subscribes 10,000 subscribers to "bench" on h's loop 0 and
// times b.N calls of publish, given the call's index (from 0) and a message
// of about 100 bytes, reporting the time per delivery: the part the fan-out
// benchmarks share.
func fanOut10k(b *testing.B, h *Hub, publish func(i int, data []byte)) {
	subs := make([]counter, 10000)
	for i := range subs {
		h.Subscribe(0, &subs[i], "bench")
	}
	data := []byte(`{"t":1700000000000,"p":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}`)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		publish(i, data)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/10000, "ns/delivery")
}

// BenchmarkFanOut10k publishes one message to 10,000 subscribers on one
// loop. allocs/op is per message: the frame and the loop task, nothing per
// subscriber.
func BenchmarkFanOut10k(b *testing.B) {
	h := newTestHub(1)
	fanOut10k(b, h, func(i int, data []byte) { h.Publish(context.Background(), "bench", data) })
}
