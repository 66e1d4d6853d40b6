package natsbroker

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wspush/wspush/frames"
	"github.com/wspush/wspush/internal/testsupport"
	"github.com/wspush/wspush/pubsub"
)

// recorder is a subscriber that keeps the pushes it gets and the positions
// its pending subscriptions are confirmed at.
type recorder struct {
	pushes     chan []byte
	subscribed chan uint64
	missed     chan string // topics it was told it missed messages of (pubsub.Misser)
}

func newRecorder() *recorder {
	return &recorder{pushes: make(chan []byte, 1000), subscribed: make(chan uint64, 100), missed: make(chan string, 100)}
}

func (r *recorder) Missed(t *pubsub.Topic) { r.missed <- t.Name() }

func (r *recorder) Push(p *pubsub.Push) {
	_, n, _ := frames.ParseHeader(p.Frame)
	r.pushes <- []byte(p.Frame[n:])
}

func (r *recorder) Subscribed(_ *pubsub.Topic, seq uint64) { r.subscribed <- seq }

// node is a Broker with a Hub of one loop, a Serial executor.
type node struct {
	*Broker
	hub  *pubsub.Hub
	loop *testsupport.Serial
}

// subscribe subscribes r to topic on the node's loop and waits for the
// subscription to be in place, returning its position.
func (n node) subscribe(t *testing.T, r *recorder, topic string) (*pubsub.Topic, uint64) {
	t.Helper()
	top, seq, waiting := n.subscribeAsync(t, r, topic)
	if !waiting {
		return top, seq
	}
	select {
	case seq = <-r.subscribed:
		return top, seq
	case <-time.After(5 * time.Second):
		t.Fatalf("subscription to %q not confirmed", topic)
		return nil, 0
	}
}

// subscribeAsync subscribes r to topic on the node's loop and returns at
// once, saying whether the subscription is pending.
func (n node) subscribeAsync(t *testing.T, r *recorder, topic string) (top *pubsub.Topic, seq uint64, waiting bool) {
	t.Helper()
	var err error
	n.loop.Do(func() {
		top, seq, err = n.hub.Subscribe(0, r, topic)
		if err == nil {
			waiting = top.Waiting(0, r)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return top, seq, waiting
}

func (n node) unsubscribe(r *recorder, top *pubsub.Topic) {
	n.loop.Do(func() { n.hub.Unsubscribe(0, r, top) })
}

func newNode(t *testing.T, url string) node {
	return newNodeWith(t, Config{URLs: url})
}

// newNodeWith starts a node with cfg (memory storage, the tests' logger)
// and waits until it is healthy.
func newNodeWith(t *testing.T, cfg Config) node {
	t.Helper()
	cfg.Storage = jetstream.MemoryStorage
	cfg.Logger = testsupport.Logger()
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	loop := testsupport.NewSerial(t)
	hub := pubsub.NewHub([]pubsub.Executor{loop}, b.SetInterest)
	b.Attach(hub)
	deadline := time.Now().Add(5 * time.Second)
	for b.Healthy() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("broker not healthy: %v", b.Healthy())
		}
		time.Sleep(5 * time.Millisecond)
	}
	return node{b, hub, loop}
}

func TestPublishReachesOtherNode(t *testing.T) {
	ns := testsupport.StartNATS(t, -1, t.TempDir())
	a := newNode(t, ns.ClientURL())
	b := newNode(t, ns.ClientURL())

	rec := newRecorder()
	a.subscribe(t, rec, "room.1")
	var last uint64
	for i := range 3 {
		res, err := b.Publish(context.Background(), "room.1", []byte(`{"n":1}`))
		if err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		if res.Seq <= last {
			t.Fatalf("publish %d: seq %d after %d", i, res.Seq, last)
		}
		last = res.Seq
		select {
		case got := <-rec.pushes:
			var env struct {
				Topic string
				Seq   uint64
			}
			if err := json.Unmarshal(got, &env); err != nil || env.Topic != "room.1" || env.Seq != res.Seq {
				t.Fatalf("push %q (%v), want topic room.1 seq %d", got, err, res.Seq)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("publish %d not delivered", i)
		}
	}
	if st := a.Stats(); !st.Connected || st.Published != 0 {
		t.Errorf("node A stats %+v", st)
	}
	if st := b.Stats(); st.Published != 3 {
		t.Errorf("node B stats %+v, want 3 published", st)
	}
}

func TestPublishErrors(t *testing.T) {
	// A port nobody listens on: the broker keeps trying in the background.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "nats://" + ln.Addr().String()
	ln.Close()
	b, err := New(Config{URLs: url, Logger: testsupport.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	b.Attach(pubsub.NewHub([]pubsub.Executor{testsupport.Inline{}}, b.SetInterest))

	if err := b.Healthy(); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Healthy() = %v, want ErrUnavailable", err)
	}
	for _, tc := range []struct {
		topic, data string
		want        error
	}{
		{"", `1`, pubsub.ErrTopicName},
		{"a b", `1`, pubsub.ErrTopicName},
		{"a", `{`, pubsub.ErrInvalidJSON},
		{"a", `1`, ErrUnavailable},
	} {
		start := time.Now()
		_, err := b.Publish(context.Background(), tc.topic, []byte(tc.data))
		if !errors.Is(err, tc.want) {
			t.Errorf("Publish(%q, %s) = %v, want %v", tc.topic, tc.data, err, tc.want)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("Publish(%q, %s) took %v: it should fail at once", tc.topic, tc.data, d)
		}
	}
	if st := b.Stats(); st.Connected || st.PublishFailures != 1 {
		t.Errorf("stats %+v, want disconnected with 1 publish failure", st)
	}
}

func TestBackoff(t *testing.T) {
	b := &Broker{cfg: Config{ReconnectWait: 100 * time.Millisecond, MaxReconnectWait: time.Second}}
	for _, tc := range []struct {
		attempt  int
		min, max time.Duration
	}{
		{1, 100 * time.Millisecond, 150 * time.Millisecond},
		{2, 200 * time.Millisecond, 300 * time.Millisecond},
		{4, 800 * time.Millisecond, 1200 * time.Millisecond},
		{5, time.Second, 1500 * time.Millisecond},
		{1000, time.Second, 1500 * time.Millisecond},
	} {
		for range 20 {
			if d := b.backoff(tc.attempt); d < tc.min || d > tc.max {
				t.Errorf("backoff(%d) = %v, want %v..%v", tc.attempt, d, tc.min, tc.max)
			}
		}
	}
}
