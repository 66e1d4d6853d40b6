package pubsub

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func newHistoryHub(t testing.TB, loops int, cfg HistoryConfig) *Hub {
	t.Helper()
	h := newTestHub(loops)
	if err := h.SetHistory(cfg); err != nil {
		t.Fatal(err)
	}
	return h
}

func publishT(t testing.TB, h *Hub, topic, data string) Published {
	t.Helper()
	res, err := h.Publish(context.Background(), topic, []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestTopicsOutliveTheirSubscribers(t *testing.T) {
	h := newHistoryHub(t, 2, DefaultHistoryConfig())
	first := publishT(t, h, "t", `1`) // nobody subscribed
	if first.Seq != 1 || !ValidEpoch(first.Epoch) || first.Subscribers != 0 {
		t.Fatalf("publish without subscribers answered %+v, want seq 1 with an epoch", first)
	}
	var r recorder
	top, seq, _ := h.Subscribe(1, &r, "t")
	if seq != 1 || top.Epoch() != first.Epoch {
		t.Fatalf("subscribed at %d/%s, want 1/%s", seq, top.Epoch(), first.Epoch)
	}
	h.Unsubscribe(1, &r, top)
	if res := publishT(t, h, "t", `2`); res.Seq != 2 || res.Epoch != first.Epoch {
		t.Fatalf("publish after the last unsubscribe answered %+v, want seq 2 in the same epoch", res)
	}
	if got := h.HistoryStats().Messages; got != 2 {
		t.Fatalf("history holds %d messages, want 2", got)
	}
}

func TestResume(t *testing.T) {
	// Every case starts from topic t at seq 8 holding 4..8 (1..3 evicted by
	// size) in epoch E.
	const epoch = "E"
	tests := []struct {
		name      string
		from      Position
		recovered bool
		want      Position
		replay    []uint64
	}{
		{"held", Position{epoch, 5}, true, Position{epoch, 5}, []uint64{6, 7, 8}},
		{"oldest held", Position{epoch, 3}, true, Position{epoch, 3}, []uint64{4, 5, 6, 7, 8}},
		{"at the last", Position{epoch, 8}, true, Position{epoch, 8}, nil},
		{"evicted", Position{epoch, 2}, false, Position{epoch, 8}, nil},
		{"past the last", Position{epoch, 9}, false, Position{epoch, 8}, nil},
		{"other epoch", Position{"old", 5}, false, Position{epoch, 8}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHistoryHub(t, 1, HistoryConfig{Size: 5, TTL: time.Hour, MaxBytes: 1 << 20})
			h.mu.Lock()
			top := h.newTopic("t")
			top.epoch = epoch
			top.hist, _ = h.store.NewHistory(epoch, 0, time.Now())
			h.mu.Unlock()
			for i := 1; i <= 8; i++ {
				publishT(t, h, "t", fmt.Sprint(i))
			}
			var r recorder
			res, err := h.Resume(0, &r, "t", tt.from, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer h.Unsubscribe(0, &r, res.Topic)
			if res.Recovered != tt.recovered || res.Position != tt.want {
				t.Fatalf("resume from %+v: %+v, want recovered %v at %+v", tt.from, res, tt.recovered, tt.want)
			}
			var seqs []uint64
			for _, m := range res.Replay {
				seqs = append(seqs, m.Seq)
				if d := string(PushData(m.Push.Frame, "t", m.Seq)); d != fmt.Sprint(m.Seq) {
					t.Fatalf("message %d holds %q", m.Seq, d)
				}
			}
			if fmt.Sprint(seqs) != fmt.Sprint(tt.replay) {
				t.Fatalf("replay %v, want %v", seqs, tt.replay)
			}
			// Registered at the last seq: the next publish reaches it once.
			publishT(t, h, "t", `0`)
			if len(r.got) != 1 {
				t.Fatalf("got %d live pushes, want 1", len(r.got))
			}
		})
	}
}

func TestResumeWithoutHistory(t *testing.T) {
	h := newTestHub(1) // a cluster node: no local history
	var a, b recorder
	top, _, _ := h.Subscribe(0, &a, "t")
	publishT(t, h, "t", `1`)
	res, err := h.Resume(0, &b, "t", Position{top.Epoch(), 0}, nil)
	if err != nil || res.Recovered || res.Position != (Position{top.Epoch(), 1}) {
		t.Fatalf("resume without a history: %+v, %v; want unrecovered at %s/1", res, err, top.Epoch())
	}
}

func TestSweepForgetsIdleTopics(t *testing.T) {
	h := newHistoryHub(t, 1, HistoryConfig{Size: 10, TTL: time.Minute, MaxBytes: 1 << 20})
	old := publishT(t, h, "idle", `1`)
	var r recorder
	top, _, _ := h.Subscribe(0, &r, "held")
	publishT(t, h, "held", `1`)

	if n := h.Sweep(time.Now()); n != 0 {
		t.Fatalf("swept %d topics within the TTL", n)
	}
	later := time.Now().Add(time.Minute + time.Second)
	if n := h.Sweep(later); n != 1 {
		t.Fatalf("swept %d topics past the TTL, want 1 (the one without subscribers)", n)
	}
	if st := h.HistoryStats(); st.Topics != 1 || st.Messages != 0 {
		t.Fatalf("history after the sweep: %+v, want 1 topic, no message", st)
	}
	res := publishT(t, h, "idle", `2`)
	if res.Seq != 1 || res.Epoch == old.Epoch {
		t.Fatalf("publish to a forgotten topic: %+v, want seq 1 in a new epoch (old %s)", res, old.Epoch)
	}
	if res := publishT(t, h, "held", `2`); res.Seq != 2 || res.Epoch != top.Epoch() {
		t.Fatalf("a subscribed topic was forgotten: %+v", res)
	}
}

func TestPublishToADeadTopicGoesToTheNewStream(t *testing.T) {
	h := newHistoryHub(t, 1, HistoryConfig{Size: 10, TTL: time.Minute, MaxBytes: 1 << 20})
	publishT(t, h, "t", `1`)
	h.mu.Lock()
	stale := h.topics["t"]
	h.mu.Unlock()
	// A publisher that looked the topic up before Sweep forgot it.
	stale.mu.Lock()
	done := make(chan Published)
	go func() { done <- publishT(t, h, "t", `2`) }()
	time.Sleep(10 * time.Millisecond) // let the publisher wait on the lock (not needed for correctness)
	stale.dead = true
	h.mu.Lock()
	delete(h.topics, "t")
	h.mu.Unlock()
	stale.hist.Close()
	stale.mu.Unlock()
	res := <-done
	if res.Seq != 1 || res.Epoch == stale.epoch {
		t.Fatalf("publish racing the sweep: %+v, want seq 1 of a new stream", res)
	}
	got, err := h.ReadHistory("t", Position{}, 10)
	if err != nil || !got.Recovered || len(got.Messages) != 1 || string(PushData(got.Messages[0].Push.Frame, "t", 1)) != `2` {
		t.Fatalf("history of the new stream: %+v, %v", got, err)
	}
}

func TestReadHistory(t *testing.T) {
	h := newHistoryHub(t, 1, HistoryConfig{Size: 3, TTL: time.Hour, MaxBytes: 1 << 20})
	for i := 1; i <= 5; i++ {
		publishT(t, h, "t", fmt.Sprintf(`{"n":%d}`, i))
	}
	epoch := h.topics["t"].epoch
	tests := []struct {
		from      Position
		limit     int
		recovered bool
		seqs      string
	}{
		{Position{"", 2}, 10, true, "[3 4 5]"},
		{Position{"", 3}, 1, true, "[4]"},
		{Position{"", 1}, 10, false, "[3 4 5]"},
		{Position{epoch, 4}, 10, true, "[5]"},
		{Position{"other", 4}, 10, false, "[]"},
		{Position{"", 5}, 10, true, "[]"},
	}
	for _, tt := range tests {
		got, err := h.ReadHistory("t", tt.from, tt.limit)
		if err != nil {
			t.Fatal(err)
		}
		seqs := []uint64{}
		for _, m := range got.Messages {
			seqs = append(seqs, m.Seq)
		}
		if got.Recovered != tt.recovered || fmt.Sprint(seqs) != tt.seqs || got.Position != (Position{epoch, 5}) {
			t.Errorf("from %+v limit %d: recovered %v %v at %+v, want %v %s at %s/5", tt.from, tt.limit, got.Recovered, seqs, got.Position, tt.recovered, tt.seqs, epoch)
		}
	}
}

func TestPushData(t *testing.T) {
	long := `"` + strings.Repeat("y", 70000) + `"` // a 64-bit frame length
	for _, topic := range []string{"a", `q"uo\te`, `,"data":`} {
		for _, seq := range []uint64{0, 1, 9, 10, 12345678901234567890} {
			for _, data := range []string{`1`, `"}"`, `{"data":{"x":[1,2]}}`, `null`, long} {
				f := PushFrame(topic, seq, []byte(data))
				if got := string(PushData(f, topic, seq)); got != data {
					t.Fatalf("PushData(%q, %d) = %.40q, want %.40q", topic, seq, got, data)
				}
			}
		}
	}
}

// BenchmarkFanOut10kHistory is BenchmarkFanOut10k with the default history
// (-history-size 100): the figure to compare with it.
func BenchmarkFanOut10kHistory(b *testing.B) {
	h := newTestHub(1)
	h.SetHistory(DefaultHistoryConfig())
	fanOut10k(b, h, func(i int, data []byte) { h.Publish(context.Background(), "bench", data) })
}

// BenchmarkPublishHistory is one publish to one subscriber on one loop,
// without a history and with the default one: what the history adds per
// message (the append under the store's lock and a clock reading).
func BenchmarkPublishHistory(b *testing.B) {
	data := []byte(`{"t":1700000000000,"p":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}`)
	for _, tc := range []struct {
		name string
		cfg  *HistoryConfig
	}{{"off", nil}, {"size_100", &HistoryConfig{Size: 100, TTL: DefaultHistoryTTL, MaxBytes: DefaultHistoryMaxBytes}}} {
		b.Run(tc.name, func(b *testing.B) {
			h := newTestHub(1)
			if tc.cfg != nil {
				h.SetHistory(*tc.cfg)
			}
			var c counter
			h.Subscribe(0, &c, "bench")
			b.ReportAllocs()
			for b.Loop() {
				h.Publish(context.Background(), "bench", data)
			}
		})
	}
}

func TestMaxTopics(t *testing.T) {
	h := newHistoryHub(t, 1, DefaultHistoryConfig())
	h.SetMaxTopics(2)
	publishT(t, h, "a", `1`)
	publishT(t, h, "b", `1`)
	if res := publishT(t, h, "c", `1`); res.Seq != 0 || res.Epoch != "" {
		t.Fatalf("publish past the topic bound: %+v, want not kept (seq 0)", res)
	}
	if res := publishT(t, h, "a", `2`); res.Seq != 2 {
		t.Fatalf("publish to a known topic past the bound: %+v", res)
	}
	if _, err := h.ReadHistory("c", Position{}, 1); !errors.Is(err, ErrTooManyTopics) {
		t.Fatalf("ReadHistory of a new topic past the bound: %v", err)
	}
	var r recorder
	if _, seq, err := h.Subscribe(0, &r, "c"); err != nil || seq != 0 {
		t.Fatalf("subscribe past the bound: %d, %v; subscribing always makes the topic", seq, err)
	}
	if res := publishT(t, h, "c", `2`); res.Seq != 1 || res.Subscribers != 1 {
		t.Fatalf("publish to the subscribed topic: %+v", res)
	}
	if n := h.Stats().Unkept; n != 1 {
		t.Fatalf("Unkept = %d, want 1", n)
	}
}

func TestSweepForgetsATopicItsLastSubscriberLeft(t *testing.T) {
	h := newHistoryHub(t, 1, HistoryConfig{Size: 10, TTL: time.Minute, MaxBytes: 1 << 20})
	var r recorder
	top, _, _ := h.Subscribe(0, &r, "t")
	publishT(t, h, "t", `1`)
	later := time.Now().Add(time.Minute + time.Second)
	if n := h.Sweep(later); n != 0 {
		t.Fatalf("swept %d subscribed topics", n)
	}
	h.Unsubscribe(0, &r, top)
	if n := h.Sweep(time.Now()); n != 0 {
		t.Fatalf("swept %d topics within the TTL of their last publish", n)
	}
	if n := h.Sweep(later); n != 1 || h.Stats().Topics != 0 {
		t.Fatalf("swept %d, %d topics left; want the unsubscribed topic forgotten", n, h.Stats().Topics)
	}
	h.mu.Lock()
	left := len(h.idle)
	h.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d topics left in the idle set", left)
	}
}
