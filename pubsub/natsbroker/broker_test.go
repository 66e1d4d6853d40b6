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

// recorder is a subscriber that keeps the pushes it gets.
type recorder chan []byte

func (r recorder) Push(p *pubsub.Push) {
	_, n, _ := frames.ParseHeader(p.Frame)
	r <- []byte(p.Frame[n:])
}

// node is a Broker with a one-loop Hub.
func newNode(t *testing.T, url string) (*Broker, *pubsub.Hub) {
	t.Helper()
	b, err := New(Config{URLs: url, Storage: jetstream.MemoryStorage, Logger: testsupport.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	hub := pubsub.NewHub([]pubsub.Executor{testsupport.Inline{}}, b.SetInterest)
	b.Attach(hub)
	deadline := time.Now().Add(5 * time.Second)
	for b.Healthy() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("broker not healthy: %v", b.Healthy())
		}
		time.Sleep(5 * time.Millisecond)
	}
	return b, hub
}

func TestPublishReachesOtherNode(t *testing.T) {
	ns := testsupport.StartNATS(t, -1, t.TempDir())
	a, hubA := newNode(t, ns.ClientURL())
	b, _ := newNode(t, ns.ClientURL())

	rec := make(recorder, 10)
	if _, _, err := hubA.Subscribe(0, rec, "room.1"); err != nil {
		t.Fatal(err)
	}
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
		case got := <-rec:
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

// TestEnsureStreamKeepsOperatorSettings: an operator's limits survive a
// reconnect; the republish rule wspush depends on is put back.
func TestEnsureStreamKeepsOperatorSettings(t *testing.T) {
	ns := testsupport.StartNATS(t, -1, t.TempDir())
	b, _ := newNode(t, ns.ClientURL())
	ctx := context.Background()
	stream, err := b.js.Stream(ctx, "WSPUSH")
	if err != nil {
		t.Fatal(err)
	}
	cfg := stream.CachedInfo().Config
	if cfg.MaxAge != time.Hour || cfg.RePublish == nil || cfg.RePublish.Destination != "wspush.out.>" {
		t.Fatalf("created stream config %+v", cfg)
	}
	cfg.MaxAge, cfg.RePublish = 2*time.Hour, nil
	if _, err := b.js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if err := b.ensureStream(); err != nil {
		t.Fatal(err)
	}
	stream, err = b.js.Stream(ctx, "WSPUSH")
	if err != nil {
		t.Fatal(err)
	}
	if cfg := stream.CachedInfo().Config; cfg.MaxAge != 2*time.Hour || cfg.RePublish == nil || cfg.RePublish.Source != "wspush.in.>" {
		t.Fatalf("after ensureStream: MaxAge %v, RePublish %+v; want 2h kept and the rule back", cfg.MaxAge, cfg.RePublish)
	}
}
