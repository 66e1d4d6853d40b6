package natsbroker

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/wspush/wspush/internal/testsupport"
	"github.com/wspush/wspush/pubsub"
)

// natsSubs counts the NATS server's subscriptions to topic's republished
// messages.
func natsSubs(t testing.TB, ns *natsserver.Server, topic string) int {
	t.Helper()
	return testsupport.NATSSubs(t, ns, outPrefix+Subject(topic))
}

// slowNode is a node whose NATS connection goes through a DelayProxy; the
// flush timeout is long, so a slow round trip is waited for, not cut short.
func slowNode(t *testing.T, ns *natsserver.Server) (node, *testsupport.DelayProxy) {
	t.Helper()
	proxy := testsupport.StartDelayProxy(t, ns.Addr().String())
	n := newNodeWith(t, Config{URLs: "nats://" + proxy.Addr(), FlushTimeout: 30 * time.Second})
	return n, proxy
}

// TestSlowInterestDoesNotHoldTheHub: while a new topic's interest waits on
// a slow NATS round trip (a TCP forwarder holding every byte for 400 ms),
// subscribing to a topic already in place, unsubscribing, publishing and
// ingesting all go on at once, and the new topic's subscriber is answered
// when the round trip is done, at the stream's position.
func TestSlowInterestDoesNotHoldTheHub(t *testing.T) {
	ns := testsupport.StartNATS(t, -1, t.TempDir())
	n, proxy := slowNode(t, ns)
	warm := newRecorder()
	n.subscribe(t, warm, "warm")

	const delay = 400 * time.Millisecond
	proxy.SetDelay(delay)
	cold := newRecorder()
	start := time.Now()
	_, _, waiting := n.subscribeAsync(t, cold, "cold")
	if !waiting {
		t.Fatal("a new topic's subscription is not pending")
	}
	// Meanwhile, on the loop and off it: none of these waits for NATS.
	var warmSub time.Duration
	warm2 := newRecorder()
	t0 := time.Now()
	top, _, waiting := n.subscribeAsync(t, warm2, "warm")
	warmSub = time.Since(t0)
	if waiting {
		t.Fatal("a subscription to a topic in place is pending")
	}
	n.unsubscribe(warm2, top)
	t0 = time.Now()
	if _, err := n.hub.Publish(context.Background(), "local", []byte(`1`)); err != nil {
		t.Fatal(err)
	}
	n.hub.Ingest("warm", 1<<40, []byte(`"ingested"`))
	others := time.Since(t0)
	select {
	case got := <-warm.pushes:
		if want := fmt.Sprintf(`"seq":%d,`, uint64(1<<40)); !contains(got, want) {
			t.Fatalf("warm got %s, want the ingested message", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("an ingest for a topic in place waited for the pending one")
	}
	select {
	case seq := <-cold.subscribed:
		t.Fatalf("cold confirmed at %d after %v, before the round trip (%v each way) could be done", seq, time.Since(start), delay)
	default:
	}
	var seq uint64
	select {
	case seq = <-cold.subscribed:
	case <-time.After(10 * time.Second):
		t.Fatal("cold never confirmed")
	}
	pending := time.Since(start)
	t.Logf("NATS delay %v each way: new topic pending %v; meanwhile a subscribe to a topic in place took %v, a publish and an ingest %v",
		delay, pending, warmSub, others)
	if pending < 2*delay {
		t.Errorf("cold confirmed after %v: less than one round trip through the proxy", pending)
	}
	if n := natsSubs(t, ns, "cold"); n != 1 {
		t.Fatalf("confirmed, but NATS holds %d subscriptions for cold", n)
	}
	proxy.SetDelay(0)
	res, err := n.Publish(context.Background(), "cold", []byte(`"after"`))
	if err != nil {
		t.Fatal(err)
	}
	if res.Seq <= seq {
		t.Fatalf("publish after the answer has seq %d, not above the answer's %d", res.Seq, seq)
	}
	select {
	case got := <-cold.pushes:
		if !contains(got, fmt.Sprintf(`"seq":%d,`, res.Seq)) {
			t.Fatalf("cold got %s, want seq %d", got, res.Seq)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a publish after the answer did not arrive")
	}
}

func contains(b []byte, s string) bool { return bytes.Contains(b, []byte(s)) }

// TestSubscribedAtStreamPosition: a topic new to the node, published to
// before, is answered with the stream's last seq of that topic, not 0: every
// push after the answer is above it, and none of the earlier ones comes.
func TestSubscribedAtStreamPosition(t *testing.T) {
	ns := testsupport.StartNATS(t, -1, t.TempDir())
	a := newNode(t, ns.ClientURL())
	ctx := context.Background()
	var last uint64
	for i := range 3 {
		res, err := a.Publish(ctx, "old", []byte(fmt.Sprint(i)))
		if err != nil {
			t.Fatal(err)
		}
		last = res.Seq
	}
	if _, err := a.Publish(ctx, "other", []byte(`0`)); err != nil { // a later seq of another topic
		t.Fatal(err)
	}
	rec := newRecorder()
	_, seq := a.subscribe(t, rec, "old")
	if seq != last {
		t.Fatalf("subscribed at %d, want the stream's last seq of the topic %d", seq, last)
	}
	res, err := a.Publish(ctx, "old", []byte(`"new"`))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-rec.pushes:
		if !contains(got, fmt.Sprintf(`"seq":%d,`, res.Seq)) {
			t.Fatalf("got %s, want only the new publish, seq %d", got, res.Seq)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("publish not delivered")
	}
}

// TestUnsubscribeWhilePending: a subscriber that leaves before its
// subscription is confirmed is never told; a topic that goes idle and
// active again while the first change is still on its way ends subscribed
// once, and its new subscriber is confirmed and gets pushes; the last
// subscriber leaving removes the NATS subscription.
func TestUnsubscribeWhilePending(t *testing.T) {
	ns := testsupport.StartNATS(t, -1, t.TempDir())
	n, proxy := slowNode(t, ns)
	proxy.SetDelay(200 * time.Millisecond)

	first := newRecorder()
	top, _, waiting := n.subscribeAsync(t, first, "x")
	if !waiting {
		t.Fatal("not pending")
	}
	n.unsubscribe(first, top) // idle again before NATS answered
	second := newRecorder()
	top2, _, waiting := n.subscribeAsync(t, second, "x") // and active again
	if !waiting {
		t.Fatal("the topic active again is not pending")
	}
	select {
	case <-second.subscribed:
	case <-time.After(10 * time.Second):
		t.Fatal("the second subscriber was never confirmed")
	}
	proxy.SetDelay(0)
	testsupport.WaitFor(t, "one NATS subscription for x", func() bool { return natsSubs(t, ns, "x") == 1 })
	res, err := n.Publish(context.Background(), "x", []byte(`1`))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-second.pushes:
		if !contains(got, fmt.Sprintf(`"seq":%d,`, res.Seq)) {
			t.Fatalf("got %s", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no push for the second subscriber")
	}
	select {
	case seq := <-first.subscribed:
		t.Fatalf("the subscriber that left was told Subscribed (%d)", seq)
	case got := <-first.pushes:
		t.Fatalf("the subscriber that left got %s", got)
	default:
	}
	n.unsubscribe(second, top2)
	testsupport.WaitFor(t, "x's NATS subscription to go", func() bool { return natsSubs(t, ns, "x") == 0 })
}

// TestInterestChurn: loops subscribe and unsubscribe a few topics at random
// while the interest changes are on their way (-race checks the loop-owned
// state). At the end every remaining subscriber is confirmed, NATS holds a
// subscription exactly for the topics with subscribers, and a publish
// reaches exactly the remaining subscribers.
func TestInterestChurn(t *testing.T) {
	ns := testsupport.StartNATS(t, -1, t.TempDir())
	proxy := testsupport.StartDelayProxy(t, ns.Addr().String())
	proxy.SetDelay(2 * time.Millisecond)
	b, err := New(Config{URLs: "nats://" + proxy.Addr(), Logger: testsupport.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	const nLoops, nTopics = 3, 4
	loops := make([]*testsupport.Serial, nLoops)
	execs := make([]pubsub.Executor, nLoops)
	for i := range loops {
		loops[i] = testsupport.NewSerial(t)
		execs[i] = loops[i]
	}
	hub := pubsub.NewHub(execs, b.SetInterest)
	b.Attach(hub)
	testsupport.WaitFor(t, "healthy", func() bool { return b.Healthy() == nil })

	type held struct {
		r   *recorder
		top *pubsub.Topic
	}
	subs := make([]map[string][]held, nLoops) // loop-owned: touched in Do only
	var wg sync.WaitGroup
	for i := range nLoops {
		subs[i] = map[string][]held{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			for range 300 {
				topic := fmt.Sprintf("c%d", rng.IntN(nTopics))
				loops[i].Do(func() {
					if hs := subs[i][topic]; len(hs) > 0 && rng.IntN(2) == 0 {
						h := hs[len(hs)-1]
						subs[i][topic] = hs[:len(hs)-1]
						hub.Unsubscribe(i, h.r, h.top)
						return
					}
					r := newRecorder()
					top, _, err := hub.Subscribe(i, r, topic)
					if err != nil {
						panic(err)
					}
					subs[i][topic] = append(subs[i][topic], held{r, top})
				})
				if rng.IntN(20) == 0 {
					time.Sleep(time.Millisecond) // let some changes reach NATS in between
				}
			}
		}()
	}
	wg.Wait()
	proxy.SetDelay(0)
	want := map[string]int{}
	for i := range nLoops {
		loops[i].Do(func() {
			for topic, hs := range subs[i] {
				want[topic] += len(hs)
			}
		})
	}
	for topic := range nTopics {
		name := fmt.Sprintf("c%d", topic)
		wantSubs := min(want[name], 1)
		testsupport.WaitFor(t, fmt.Sprintf("%s: %d NATS subscriptions", name, wantSubs), func() bool { return natsSubs(t, ns, name) == wantSubs })
	}
	// Every remaining subscriber is confirmed (or was in place at once).
	for i := range nLoops {
		for topic, hs := range subs[i] {
			for _, h := range hs {
				testsupport.WaitFor(t, "confirmation of "+topic, func() bool {
					w := true
					loops[i].Do(func() { w = h.top.Waiting(i, h.r) })
					return !w
				})
			}
		}
	}
	for topic := range nTopics {
		name := fmt.Sprintf("c%d", topic)
		res, err := b.Publish(context.Background(), name, []byte(`"last"`))
		if err != nil {
			t.Fatal(err)
		}
		for i := range nLoops {
			for _, h := range subs[i][name] {
				got := lastPush(t, h.r)
				if !contains(got, fmt.Sprintf(`"seq":%d,`, res.Seq)) {
					t.Fatalf("%s: last push %s, want seq %d", name, got, res.Seq)
				}
			}
		}
	}
	t.Logf("remaining subscribers per topic: %v", want)
}

// lastPush waits for a push of `"last"` and returns it, skipping earlier
// pushes.
func lastPush(t *testing.T, r *recorder) []byte {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case got := <-r.pushes:
			if contains(got, `"data":"last"`) {
				return got
			}
		case <-deadline:
			t.Fatal("the last publish did not arrive")
			return nil
		}
	}
}

// TestIngestBackpressure: with the loop stalled, the ingest goroutine waits
// at the Hub's ingest window instead of queueing tasks without limit; the
// ingest channel fills and nats.go drops the rest, which Stats.Dropped
// counts. Once the loop runs again the held messages are delivered.
func TestIngestBackpressure(t *testing.T) {
	ns := testsupport.StartNATS(t, -1, t.TempDir())
	const buffer, inFlight, published = 8, 2, 200
	n := newNodeWith(t, Config{URLs: ns.ClientURL(), Buffer: buffer})
	n.hub.SetMaxIngestBytes(150) // two messages of 1-2 digits on "flood": 70-71 bytes each with the overhead
	rec := newRecorder()
	n.subscribe(t, rec, "flood")
	release := n.loop.Hold()
	ctx := context.Background()
	for i := range published {
		if _, err := n.Publish(ctx, "flood", []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	testsupport.WaitFor(t, "drops to be counted", func() bool {
		st := n.Stats()
		// Held: inFlight tasks, the message the ingest goroutine waits
		// with, and the channel.
		return st.Dropped+uint64(inFlight+1+buffer) == published
	})
	if q := n.loop.MaxQueued(); q > inFlight {
		t.Errorf("%d tasks queued on the stalled loop, over the window's %d", q, inFlight)
	}
	release()
	dropped := n.Stats().Dropped
	got := 0
	testsupport.WaitFor(t, "the held messages", func() bool {
		for {
			select {
			case <-rec.pushes:
				got++
				continue
			default:
			}
			return uint64(got)+dropped == published
		}
	})
	t.Logf("%d published with the loop stalled: %d delivered, %d dropped by nats.go", published, got, dropped)
}
