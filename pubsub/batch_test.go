package pubsub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/wspush/wspush/frames"
)

// queueLoop is an Executor like a netpoll loop: one goroutine runs the tasks
// in the order posted, after Post has returned.
type queueLoop struct {
	tasks chan func()
	posts atomic.Int64
}

func newQueueLoop(t *testing.T) *queueLoop {
	q := &queueLoop{tasks: make(chan func(), 1<<14)}
	go func() {
		for fn := range q.tasks {
			fn()
		}
	}()
	t.Cleanup(func() { close(q.tasks) })
	return q
}

func (q *queueLoop) Post(fn func()) { q.posts.Add(1); q.tasks <- fn }

// drain waits until every task posted so far has run.
func (q *queueLoop) drain() {
	done := make(chan struct{})
	q.tasks <- func() { close(done) }
	<-done
}

// seqOf decodes a push frame's topic and seq.
func seqOf(t *testing.T, f frames.Prepared) (string, uint64) {
	t.Helper()
	_, n, err := frames.ParseHeader(f)
	if err != nil {
		t.Fatal(err)
	}
	var env struct {
		Topic string
		Seq   uint64
	}
	if err := json.Unmarshal(f[n:], &env); err != nil {
		t.Fatal(err)
	}
	return env.Topic, env.Seq
}

// A batch's messages reach each loop in every topic's sequence order, with
// batches and single publishes of the same topics racing: each subscriber
// sees 1, 2, 3... of its topic, without a gap, and the answers' seqs are
// those pushed.
func TestPublishBatchKeepsSeqOrder(t *testing.T) {
	loops := []*queueLoop{newQueueLoop(t), newQueueLoop(t)}
	h := NewHub([]Executor{loops[0], loops[1]}, nil)
	topics := []string{"a", "b", "c", "d", "e"}
	subs := make(map[string][]*recorder)
	for _, name := range topics {
		for l := range loops {
			r := &recorder{}
			subscribed := make(chan struct{})
			loops[l].Post(func() { h.Subscribe(l, r, name); close(subscribed) })
			<-subscribed
			subs[name] = append(subs[name], r)
		}
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	answered := make(map[string][]uint64)
	note := func(p Published) {
		mu.Lock()
		answered[p.Topic] = append(answered[p.Topic], p.Seq)
		mu.Unlock()
	}
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				if g%2 == 0 {
					p, err := h.Publish(context.Background(), topics[(g+i)%len(topics)], []byte(`1`))
					if err != nil {
						t.Error(err)
						return
					}
					note(p)
					continue
				}
				// Items in an order of their own, a topic twice in one batch.
				items := []BatchItem{{Topic: topics[i%5], Data: []byte(`1`)}, {Topic: topics[(i+3)%5], Data: []byte(`2`)}, {Topic: topics[i%5], Data: []byte(`3`)}, {Topic: topics[(i+1)%5], Data: []byte(`4`)}}
				res := make([]BatchResult, len(items))
				if err := h.PublishBatch(context.Background(), items, res); err != nil {
					t.Error(err)
					return
				}
				for k, r := range res {
					if r.Err != nil || r.Subscribers != 2 || r.Topic != items[k].Topic {
						t.Errorf("item %d: %+v", k, r)
					}
					note(r.Published)
				}
			}
		}()
	}
	wg.Wait()
	for _, l := range loops {
		l.drain()
	}
	for _, name := range topics {
		n := len(answered[name])
		for l, r := range subs[name] {
			if len(r.got) != n {
				t.Fatalf("topic %s loop %d: %d pushes, %d published", name, l, len(r.got), n)
			}
			for i, f := range r.got {
				topic, seq := seqOf(t, f)
				if topic != name || seq != uint64(i+1) {
					t.Fatalf("topic %s loop %d: push %d is %s seq %d", name, l, i, topic, seq)
				}
			}
		}
	}
}

// A batch is one task per loop that has subscribers of any of its topics;
// items are answered one by one, errors included, and a topic without
// subscribers (no history) is answered seq 0.
func TestPublishBatchAnswersAndTasks(t *testing.T) {
	loops := []*queueLoop{newQueueLoop(t), newQueueLoop(t), newQueueLoop(t)}
	h := NewHub([]Executor{loops[0], loops[1], loops[2]}, nil)
	recs := []*recorder{{}, {}}
	for l, r := range recs { // loop 2 has no subscribers
		done := make(chan struct{})
		loops[l].Post(func() {
			for i := 0; i < 50; i++ {
				h.Subscribe(l, r, fmt.Sprintf("inbox.%d", i))
			}
			close(done)
		})
		<-done
	}
	before := []int64{loops[0].posts.Load(), loops[1].posts.Load(), loops[2].posts.Load()}
	var items []BatchItem
	for i := 0; i < 50; i++ {
		items = append(items, BatchItem{Topic: fmt.Sprintf("inbox.%d", i), Data: []byte(fmt.Sprintf(`{"n":%d}`, i))})
	}
	items = append(items, BatchItem{Topic: "bad topic", Data: []byte(`1`)}, BatchItem{Topic: "inbox.1", Data: []byte(`{`)}, BatchItem{Topic: "nobody", Data: []byte(`1`)})
	res := make([]BatchResult, len(items))
	if err := h.PublishBatch(context.Background(), items, res); err != nil {
		t.Fatal(err)
	}
	for l, want := range []int64{1, 1, 0} {
		if got := loops[l].posts.Load() - before[l]; got != want {
			t.Errorf("loop %d got %d tasks for the batch, want %d", l, got, want)
		}
	}
	for i := 0; i < 50; i++ {
		if r := res[i]; r.Err != nil || r.Seq != 1 || r.Subscribers != 2 {
			t.Errorf("item %d: %+v", i, r)
		}
	}
	if !errors.Is(res[50].Err, ErrTopicName) || !errors.Is(res[51].Err, ErrInvalidJSON) {
		t.Errorf("bad items answered %v, %v", res[50].Err, res[51].Err)
	}
	if r := res[52]; r.Err != nil || r.Seq != 0 || r.Subscribers != 0 || r.Topic != "nobody" {
		t.Errorf("topic without subscribers: %+v", r)
	}
	for l, r := range recs {
		loops[l].drain()
		if len(r.got) != 50 {
			t.Fatalf("loop %d subscriber got %d pushes, want 50", l, len(r.got))
		}
		for i, f := range r.got {
			if topic, seq := seqOf(t, f); topic != fmt.Sprintf("inbox.%d", i) || seq != 1 {
				t.Fatalf("push %d: %s seq %d", i, topic, seq)
			}
		}
	}
	if st := h.Stats(); st.Published != 51 || st.Delivered != 100 {
		t.Errorf("stats %+v: want 51 published, 100 delivered", st)
	}
}

// A batch waiting for an in-flight token gives up with its context, and
// publishes nothing.
func TestPublishBatchWaitsForAToken(t *testing.T) {
	h := newTestHub(1)
	h.SetMaxInFlight(1)
	h.inflight <- struct{}{} // the only token, held
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res := make([]BatchResult, 1)
	if err := h.PublishBatch(ctx, []BatchItem{{Topic: "t", Data: []byte(`1`)}}, res); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if st := h.Stats(); st.Published != 0 {
		t.Fatalf("published %d", st.Published)
	}
}
