package server

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wspush/wspush/internal/testsupport"
	"github.com/wspush/wspush/pubsub/natsbroker"
)

// slowClusterNode is a node whose NATS connection goes through a
// DelayProxy, healthy, with the proxy's delay still 0.
func slowClusterNode(t *testing.T, cfg Config) (*Server, *testsupport.DelayProxy) {
	t.Helper()
	ns := testsupport.StartNATS(t, -1, t.TempDir())
	proxy := testsupport.StartDelayProxy(t, ns.Addr().String())
	cfg.Broker = "nats://" + proxy.Addr()
	s := startServer(t, cfg)
	testsupport.WaitFor(t, "node healthy", func() bool { code, _ := health(t, s); return code == http.StatusOK })
	return s, proxy
}

// readTimed reads one JSON message and the time it arrived.
func readTimed(t *testing.T, c *websocket.Conn) (map[string]any, time.Time) {
	t.Helper()
	m := testsupport.ReadJSON(t, c)
	return m, time.Now()
}

// TestClusterSlowInterestDoesNotDelayOthers: with every byte to and from
// NATS held 300 ms, a client's subscription to a topic new to the node is
// answered once NATS has the interest, at the stream's position of the
// topic, while another client's subscription to a topic already in place
// on the node is answered at once.
func TestClusterSlowInterestDoesNotDelayOthers(t *testing.T) {
	s, proxy := slowClusterNode(t, Config{})
	subscribeTo(t, s, "warm")
	clusterPublish(t, s, "cold", `1`)
	coldLast := clusterPublish(t, s, "cold", `2`) // stored, no subscriber anywhere

	const delay = 300 * time.Millisecond
	proxy.SetDelay(delay)
	b := dial(t, s, "/ws")
	c := dial(t, s, "/ws")
	start := time.Now()
	sendJSON(t, b, `{"op":"sub","topics":["cold"]}`)
	sendJSON(t, c, `{"op":"sub","topics":["warm"]}`)
	mc, atC := readTimed(t, c)
	mb, atB := readTimed(t, b)
	if mc["op"] != "subscribed" || mc["topic"] != "warm" || mb["op"] != "subscribed" || mb["topic"] != "cold" {
		t.Fatalf("answers %v and %v", mc, mb)
	}
	t.Logf("NATS %v each way: the topic in place answered after %v, the new topic after %v", delay, atC.Sub(start), atB.Sub(start))
	if !atC.Before(atB) {
		t.Errorf("the subscription to a topic in place (%v) waited for the new topic's (%v)", atC.Sub(start), atB.Sub(start))
	}
	if d := atB.Sub(start); d < 2*delay {
		t.Errorf("the new topic was answered after %v, before NATS could have the interest (a round trip is %v)", d, 2*delay)
	}
	if seq := uint64(mb["seq"].(float64)); seq != coldLast {
		t.Errorf("subscribed to cold at %d, want the stream's last seq of the topic, %d", seq, coldLast)
	}
	proxy.SetDelay(0)
	next := clusterPublish(t, s, "cold", `3`)
	if p := readPush(t, b); p.Seq != next || string(p.Data) != `3` {
		t.Fatalf("cold subscriber got %+v, want 3 at seq %d", p, next)
	}
}

// TestClusterDeferredAnswersInOrder: answers stay in the order of the
// commands while one waits for the cluster, and a ?topics= handshake with a
// topic new to the node gets its 101 once the interest is in place, so a
// publish right after the answers reaches it.
func TestClusterDeferredAnswersInOrder(t *testing.T) {
	s, proxy := slowClusterNode(t, Config{})
	subscribeTo(t, s, "warm")
	proxy.SetDelay(100 * time.Millisecond)

	c := dial(t, s, "/ws")
	sendJSON(t, c, `{"op":"sub","topics":["warm","new1","warm2","new1"]}`)
	sendJSON(t, c, `{"op":"unsub","topics":["warm"]}`)
	sendJSON(t, c, `{"op":"nope"}`)
	for i, want := range []struct{ op, topic string }{
		{"subscribed", "warm"}, {"subscribed", "new1"}, {"subscribed", "warm2"}, {"subscribed", "new1"},
		{"unsubscribed", "warm"}, {"error", ""},
	} {
		m := testsupport.ReadJSON(t, c)
		if m["op"] != want.op || (want.topic != "" && m["topic"] != want.topic) {
			t.Fatalf("answer %d: %v, want %s %s", i, m, want.op, want.topic)
		}
	}

	l := dial(t, s, "/ws?topics=warm,new2")
	for _, want := range []string{"warm", "new2"} {
		if m := testsupport.ReadJSON(t, l); m["op"] != "subscribed" || m["topic"] != want {
			t.Fatalf("handshake answers: %v, want subscribed %s", m, want)
		}
	}
	proxy.SetDelay(0)
	seq := clusterPublish(t, s, "new2", `"hi"`)
	if p := readPush(t, l); p.Seq != seq || p.Topic != "new2" {
		t.Fatalf("listener got %+v, want new2 seq %d", p, seq)
	}
}

// TestClusterIdempotencyKey: two POSTs with the same Idempotency-Key store
// one message and answer the same seq, the second with "duplicate":true;
// subscribers get one push; a malformed key is answered 400.
func TestClusterIdempotencyKey(t *testing.T) {
	ns := testsupport.StartNATS(t, -1, t.TempDir())
	s := startNodes(t, ns.ClientURL(), 1)[0]
	sub := subscribeTo(t, s, "pay")
	const key = "9f1c2d7e-retry"
	code1, m1 := publish(t, s, "pay", `{"amount":5}`, "Idempotency-Key", key)
	code2, m2 := publish(t, s, "pay", `{"amount":5}`, "Idempotency-Key", key)
	if code1 != http.StatusOK || code2 != http.StatusOK || m1["seq"] != m2["seq"] || m1["duplicate"] != nil || m2["duplicate"] != true {
		t.Fatalf("answers %d %v and %d %v; want 200 twice, the same seq, the second a duplicate", code1, m1, code2, m2)
	}
	if code, m := publish(t, s, "pay", `1`, "Idempotency-Key", "has space"); code != http.StatusBadRequest {
		t.Fatalf("malformed key: %d %v, want 400", code, m)
	}
	end := clusterPublish(t, s, "pay", `"end"`)
	expectPushes(t, sub, "subscriber", 0, `{"amount":5}`, `"end"`)

	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	stream, err := js.Stream(context.Background(), "WSPUSH")
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(context.Background(), jetstream.WithSubjectFilter("wspush.in."+natsbroker.Subject("pay")))
	if err != nil {
		t.Fatal(err)
	}
	if n := info.State.Subjects["wspush.in.pay"]; n != 2 || info.State.LastSeq != end {
		t.Fatalf("the stream holds %d messages of pay (last seq %d), want 2: the retry stored once", n, info.State.LastSeq)
	}
	if v := metricValue(t, s, "wspush_publish_duplicates_total"); v != 1 {
		t.Errorf("wspush_publish_duplicates_total = %v, want 1", v)
	}
}

// TestClusterPendingBounds: a client that closes while its subscription is
// pending leaves nothing behind; a client that sends more than -max-message
// of commands while one waits for the cluster is closed with 1013.
func TestClusterPendingBounds(t *testing.T) {
	s, proxy := slowClusterNode(t, Config{MaxMessage: 1024})
	proxy.SetDelay(200 * time.Millisecond)

	gone := dial(t, s, "/ws")
	sendJSON(t, gone, `{"op":"sub","topics":["p"]}`)
	gone.CloseNow()

	flood := dial(t, s, "/ws")
	sendJSON(t, flood, `{"op":"sub","topics":["q"]}`)
	cmd := `{"op":"sub","topics":["` + strings.Repeat("a", 200) + `"]}`
	for range 6 { // > 1024 bytes held
		sendJSON(t, flood, cmd)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var err error
	for err == nil {
		_, _, err = flood.Read(ctx) // the answer to q may come first
	}
	if code := websocket.CloseStatus(err); code != websocket.StatusCode(statusTryAgainLater) {
		t.Fatalf("flooding while pending: %v, want close 1013", err)
	}

	proxy.SetDelay(0)
	c := subscribeTo(t, s, "p")
	seq := clusterPublish(t, s, "p", `1`)
	if p := readPush(t, c); p.Seq != seq {
		t.Fatalf("after a pending subscriber left: %+v, want seq %d", p, seq)
	}
	c.CloseNow()
	testsupport.WaitFor(t, "no topics left", func() bool { return s.hub.Stats().Topics == 0 })
}

// TestClusterDisconnectJoining: POST /disconnect reaches a connection whose
// 101 still waits for the cluster's interest in its topic: it gets the 101,
// then the close 4002, as an open connection does (it was skipped before).
func TestClusterDisconnectJoining(t *testing.T) {
	s, proxy := slowClusterNode(t, Config{
		AuthHMACSecretFile: writeFile(t, "hmac.key", testSecret), AuthAudience: testAudience, AuthIssuer: testIssuer,
	})
	// The cluster's interest takes a 2 s round trip: the 101 waits for it.
	proxy.SetDelay(time.Second)
	token := hs(t, tokenClaims("42", time.Hour, "topics", []string{"*"}))
	done := dialAsync(t, s, "/ws?topics=cold&token="+token)
	testsupport.WaitFor(t, "the connection upgraded", func() bool { return s.Conns() == 1 })
	if len(done) > 0 {
		t.Fatal("the 101 came before the disconnect: the connection was not joining")
	}
	// 503 says the other nodes were not told in time over the slow NATS;
	// this node's part is done either way.
	code, m := adminDo(t, s, http.MethodPost, "/disconnect?user=42")
	if code != http.StatusOK && code != http.StatusServiceUnavailable || m["disconnected"] != 1.0 {
		t.Fatalf("/disconnect: %d %v, want 1 disconnected (the joining connection)", code, m)
	}
	d := <-done
	if d.err != nil {
		t.Fatalf("the joining connection's handshake failed: %v, want its 101 and then 4002", d.err)
	}
	defer d.c.CloseNow()
	if code := readClose(t, d.c); code != 4002 {
		t.Fatalf("closed with %d, want 4002", code)
	}
	testsupport.WaitFor(t, "the connection gone", func() bool { return s.Conns() == 0 })
}

// TestClusterUnsubscribeJoining: POST /unsubscribe reaches a connection
// whose 101 still waits for the cluster's interest: the topic leaves its
// handshake, it stops waiting (its 101 comes at once, the other topic
// answered), it is told "unsubscribed", and that topic's pushes do not
// reach it.
func TestClusterUnsubscribeJoining(t *testing.T) {
	s, proxy := slowClusterNode(t, Config{
		AuthHMACSecretFile: writeFile(t, "hmac.key", testSecret), AuthAudience: testAudience, AuthIssuer: testIssuer,
	})
	// "warm" is in place on the node (another user holds it): not waited for.
	warm := dialToken(t, s, hs(t, tokenClaims("7", time.Hour, "topics", []string{"*"})), "&topics=warm")
	expectReply(t, warm, map[string]any{"op": "subscribed", "topic": "warm"})
	proxy.SetDelay(time.Second) // the interest in "cold" takes a 2 s round trip
	token := hs(t, tokenClaims("42", time.Hour, "topics", []string{"*"}))
	done := dialAsync(t, s, "/ws?topics=cold,warm&token="+token)
	testsupport.WaitFor(t, "the connection upgraded", func() bool { return s.Conns() == 2 })
	if len(done) > 0 {
		t.Fatal("the 101 came before the unsubscribe: the connection was not joining")
	}
	start := time.Now()
	code, m := adminDo(t, s, http.MethodPost, "/unsubscribe?user=42&topic=cold")
	if code != http.StatusOK && code != http.StatusServiceUnavailable || m["unsubscribed"] != 1.0 {
		t.Fatalf("/unsubscribe: %d %v, want 1 unsubscribed (the joining connection)", code, m)
	}
	d := <-done
	if d.err != nil {
		t.Fatalf("handshake: %v", d.err)
	}
	defer d.c.CloseNow()
	if wait := time.Since(start); wait > 1500*time.Millisecond {
		t.Errorf("the 101 came %v after the unsubscribe, want at once (nothing left to wait for)", wait)
	}
	for _, want := range []map[string]any{{"op": "subscribed", "topic": "warm"}, {"op": "unsubscribed", "topic": "cold"}} {
		expectReply(t, d.c, want)
	}
	proxy.SetDelay(0)
	clusterPublish(t, s, "cold", `"c"`)
	seq := clusterPublish(t, s, "warm", `"w"`)
	if p := readPush(t, d.c); p.Topic != "warm" || p.Seq != seq {
		t.Fatalf("got %+v, want only the warm push %d", p, seq)
	}
	readPush(t, warm)
}

// dialed is the outcome of dialAsync.
type dialed struct {
	c   *websocket.Conn
	err error
}

// dialAsync dials pathAndQuery on s from another goroutine, for a
// handshake whose 101 is expected to wait (at most 10 s); the outcome
// arrives on the channel.
func dialAsync(t *testing.T, s *Server, pathAndQuery string) <-chan dialed {
	t.Helper()
	done := make(chan dialed, 1)
	opts := dialOptions(t, s, nil)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, _, err := websocket.Dial(ctx, s.wsURL(pathAndQuery), opts)
		done <- dialed{c, err}
	}()
	return done
}
