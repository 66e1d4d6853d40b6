package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/sys/unix"

	"github.com/wspush/wspush/internal/testsupport"
	"github.com/wspush/wspush/pubsub"
)

func TestSubscribeByQueryThenPublish(t *testing.T) { eachTransport(t, testSubscribeByQueryThenPublish) }

func testSubscribeByQueryThenPublish(t *testing.T, tr transport) {
	s := startServer(t, tr.config(t, Config{}))
	c := dial(t, s, "/ws?topics=a,b%2Cc")
	for _, topic := range []string{"a", "b", "c"} {
		m := testsupport.ReadJSON(t, c)
		if m["op"] != "subscribed" || m["topic"] != topic || m["seq"] != 0.0 {
			t.Fatalf("got %v, want subscribed %s seq 0", m, topic)
		}
	}
	code, res := publish(t, s, "b", `{"hello":"world"}`)
	if code != http.StatusOK || res["topic"] != "b" || res["seq"] != 1.0 || res["subscribers"] != 1.0 {
		t.Fatalf("publish answered %d %v", code, res)
	}
	m := testsupport.ReadJSON(t, c)
	if m["topic"] != "b" || m["seq"] != 1.0 || fmt.Sprint(m["data"]) != "map[hello:world]" || len(m) != 3 {
		t.Fatalf("push %v", m)
	}
}

func TestSubscriptionIsActiveBeforeThe101(t *testing.T) {
	eachTransport(t, testSubscriptionIsActiveBeforeThe101)
}

func testSubscriptionIsActiveBeforeThe101(t *testing.T, tr transport) {
	// A client that only listens: the publish that follows the handshake at
	// once, before the client reads anything, must reach it.
	s := startServer(t, tr.config(t, Config{}))
	raw := dialRaw(t, s)
	raw.upgrade(t, "/ws?topics=early")
	if code, res := publish(t, s, "early", `1`); code != 200 || res["subscribers"] != 1.0 {
		t.Fatalf("publish answered %d %v", code, res)
	}
	_, p := raw.readFrame(t)
	if !epochAnswer.Match(p) || !strings.HasPrefix(string(p), `{"op":"subscribed","topic":"early","seq":0,"epoch":"`) {
		t.Fatalf("first frame %s", p)
	}
	_, p = raw.readFrame(t)
	if string(p) != `{"topic":"early","seq":1,"data":1}` {
		t.Fatalf("push %s", p)
	}
}

func TestCommands(t *testing.T) { eachTransport(t, testCommands) }

func testCommands(t *testing.T, tr transport) {
	s := startServer(t, tr.config(t, Config{MaxSubs: 2}))
	c := dial(t, s, "/ws")
	tests := []struct {
		send string
		want []string // answers, in order
	}{
		{`{"op":"sub","topics":["x","y"]}`, []string{
			`map[epoch:E op:subscribed seq:0 topic:x]`, `map[epoch:E op:subscribed seq:0 topic:y]`}},
		{`{"op":"sub","topics":["x"]}`, []string{`map[epoch:E op:subscribed seq:0 topic:x]`}},
		{`{"op":"sub","topics":["z"]}`, []string{`map[error:cannot subscribe to "z": at most 2 topics per connection op:error]`}},
		{`{"op":"unsub","topics":["y","never"]}`, []string{
			`map[op:unsubscribed topic:y]`, `map[op:unsubscribed topic:never]`}},
		{`{"op":"sub","topics":["bad topic"]}`, []string{`prefix:map[error:invalid topic name "bad topic"`}},
		{`{"op":"sub"}`, []string{`prefix:map[error:"sub" needs "topics"`}},
		{`{"op":"dance"}`, []string{`map[error:unknown op "dance" op:error]`}},
		{`{"topics":["x"]}`, []string{`map[error:missing "op" op:error]`}},
		{`not json`, []string{`prefix:map[error:malformed command`}},
		{`{"op":"pub","topic":"x","data":1}`, []string{`map[error:publishing from clients is disabled on this server op:error]`}},
	}
	for _, tt := range tests {
		sendJSON(t, c, tt.send)
		for _, want := range tt.want {
			m := testsupport.ReadJSON(t, c)
			if e, ok := m["epoch"].(string); ok && pubsub.ValidEpoch(e) {
				m["epoch"] = "E" // every subscribed answer names a valid epoch (v1.1)
			}
			got := fmt.Sprint(m)
			if p, ok := strings.CutPrefix(want, "prefix:"); ok && strings.HasPrefix(got, p) || got == want {
				continue
			}
			t.Fatalf("after %s got %s, want %s", tt.send, got, want)
		}
	}
	// Binary is answered, and the connection stays open.
	ctx := context.Background()
	c.Write(ctx, websocket.MessageBinary, []byte{1, 2})
	if m := testsupport.ReadJSON(t, c); m["op"] != "error" {
		t.Fatalf("binary message answered %v", m)
	}
	publish(t, s, "x", `"still here"`)
	if m := testsupport.ReadJSON(t, c); m["data"] != "still here" {
		t.Fatalf("push after errors: %v", m)
	}
}

func TestUnsubscribeStopsPushes(t *testing.T) { eachTransport(t, testUnsubscribeStopsPushes) }

func testUnsubscribeStopsPushes(t *testing.T, tr transport) {
	s := startServer(t, tr.config(t, Config{}))
	c := dial(t, s, "/ws?topics=a,b")
	testsupport.ReadJSON(t, c)
	testsupport.ReadJSON(t, c)
	sendJSON(t, c, `{"op":"unsub","topics":["a"]}`)
	testsupport.ReadJSON(t, c)
	if _, res := publish(t, s, "a", `1`); res["subscribers"] != 0.0 {
		t.Fatalf("publish to an unsubscribed topic reached %v", res["subscribers"])
	}
	publish(t, s, "b", `2`)
	if m := testsupport.ReadJSON(t, c); m["topic"] != "b" {
		t.Fatalf("got %v, want the push on b only", m)
	}
}

func TestClientPublish(t *testing.T) {
	s := startServer(t, Config{ClientPublish: true})
	sub := dial(t, s, "/ws?topics=room")
	pub := dial(t, s, "/ws")
	testsupport.ReadJSON(t, sub)
	sendJSON(t, pub, `{"op":"pub","topic":"room","data":{"msg":"hi"}}`)
	if m := testsupport.ReadJSON(t, sub); m["seq"] != 1.0 || fmt.Sprint(m["data"]) != "map[msg:hi]" {
		t.Fatalf("push %v", m)
	}
	sendJSON(t, pub, `{"op":"pub","topic":"room"}`)
	if m := testsupport.ReadJSON(t, pub); m["op"] != "error" {
		t.Fatalf("pub without data answered %v", m)
	}
	sendJSON(t, pub, `{"op":"pub","topic":"no space","data":1}`)
	if m := testsupport.ReadJSON(t, pub); m["op"] != "error" {
		t.Fatalf("pub to a bad topic answered %v", m)
	}
}

func TestSeqStrictlyIncreasingUnderConcurrentPublishers(t *testing.T) {
	s := startServer(t, Config{Loops: 2})
	const subs, publishers, each = 4, 4, 100
	conns := make([]*websocket.Conn, subs)
	for i := range conns {
		conns[i] = dial(t, s, "/ws?topics=seq")
		testsupport.ReadJSON(t, conns[i])
	}
	var wg sync.WaitGroup
	for p := 0; p < publishers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if code, _ := publish(t, s, "seq", fmt.Sprint(i)); code != 200 {
					t.Errorf("publish answered %d", code)
					return
				}
			}
		}()
	}
	wg.Wait()
	for i, c := range conns {
		for want := 1.0; want <= publishers*each; want++ {
			if m := testsupport.ReadJSON(t, c); m["seq"] != want {
				t.Fatalf("subscriber %d: got seq %v, want %v", i, m["seq"], want)
			}
		}
	}
}

func TestAdminPublishErrors(t *testing.T) {
	s := startServer(t, Config{PublishToken: "s3cret", MaxMessage: 64})
	auth := []string{"Authorization", "Bearer s3cret"}
	tests := []struct {
		name, topic, body string
		header            []string
		code              int
	}{
		{"no token", "a", `1`, nil, 401},
		{"wrong token", "a", `1`, []string{"Authorization", "Bearer nope"}, 401},
		{"ok", "a", `1`, auth, 200},
		{"invalid json", "a", `{`, auth, 400},
		{"empty body", "a", ``, auth, 400},
		{"invalid topic", "a%20b", `1`, auth, 400},
		{"missing topic", "", `1`, auth, 400},
		{"too large", "a", `"` + strings.Repeat("x", 100) + `"`, auth, 413},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, res := publish(t, s, tt.topic, tt.body, tt.header...)
			if code != tt.code {
				t.Fatalf("status %d (%v), want %d", code, res, tt.code)
			}
			if code != 200 && res["error"] == nil {
				t.Fatalf("error answer without an error field: %v", res)
			}
		})
	}
	if code := adminGet(t, s, "/publish?topic=a", "s3cret"); code != http.StatusMethodNotAllowed {
		t.Fatalf("GET /publish answered %d", code)
	}
	// The token guards every endpoint but /healthz (TestAdminTokenGuardsEveryEndpoint).
	for path, code := range map[string]int{"/healthz": 200, "/metrics": 200} {
		if got := adminGet(t, s, path, "s3cret"); got != code {
			t.Fatalf("GET %s answered %d, want %d", path, got, code)
		}
	}
}

func TestSlowConsumerIsDroppedAndOthersKeepUp(t *testing.T) {
	eachTransport(t, testSlowConsumerIsDroppedAndOthersKeepUp)
}

func testSlowConsumerIsDroppedAndOthersKeepUp(t *testing.T, tr transport) {
	const maxBuffered = 64 << 10
	s := startServer(t, tr.config(t, Config{Loops: 1, MaxBuffered: maxBuffered, SendBuffer: 8 << 10}))
	fast := dial(t, s, "/ws?topics=firehose")
	testsupport.ReadJSON(t, fast)
	// The slow one never reads, with a small receive window so the kernel
	// cannot hide the backlog.
	slow := dialRaw(t, s)
	slow.tcp.SetReadBuffer(4 << 10)
	slow.upgrade(t, "/ws?topics=firehose")

	payload := `"` + strings.Repeat("x", 4000) + `"`
	received := 0
	for i := 1; testutil.ToFloat64(s.metrics.slowDropped) == 0; i++ {
		if i > 2000 {
			t.Fatalf("no slow consumer dropped after %d pushes of 4 KB (max-buffered %d)", i, maxBuffered)
		}
		publish(t, s, "firehose", payload)
		if m := testsupport.ReadJSON(t, fast); m["seq"] != float64(i) {
			t.Fatalf("fast subscriber got seq %v, want %d", m["seq"], i)
		}
		received++
	}
	testsupport.WaitFor(t, "the slow consumer's socket to close", func() bool { return s.Conns() == 1 })
	// Its subscription is gone too: the next publish reaches only the fast one.
	if _, res := publish(t, s, "firehose", `1`); res["subscribers"] != 1.0 {
		t.Fatalf("after the drop the topic has %v subscribers", res["subscribers"])
	}
	testsupport.ReadJSON(t, fast)
	// Reading the slow socket ends: in whatever was buffered, then EOF or reset.
	slow.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64<<10)
	for {
		if _, err := slow.Read(buf); err != nil {
			if errors.Is(err, unix.ETIMEDOUT) || strings.Contains(err.Error(), "timeout") {
				t.Fatalf("slow consumer's socket still open: %v", err)
			}
			break
		}
	}
	t.Logf("slow consumer dropped after %d pushes", received)
}

func TestPingThenIdleTimeout(t *testing.T) { eachTransport(t, testPingThenIdleTimeout) }

func testPingThenIdleTimeout(t *testing.T, tr transport) {
	s := startServer(t, tr.config(t, Config{PingInterval: 100 * time.Millisecond, IdleTimeout: 400 * time.Millisecond}))
	// A raw client that never answers pings: pinged, then closed with 1001.
	mute := dialRaw(t, s)
	mute.upgrade(t, "/ws")
	if op, _ := mute.readFrame(t); op != 0x9 {
		t.Fatalf("first frame opcode %#x, want a ping", op)
	}
	if code := mute.closeCode(t); code != 1001 {
		t.Fatalf("idle connection closed with %d, want 1001", code)
	}
	// A library client answers pings on its own and so stays open.
	live := dial(t, s, "/ws?topics=alive")
	testsupport.ReadJSON(t, live)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, _, err := live.Read(ctx) // reading is what answers pings
		done <- err
	}()
	time.Sleep(3 * 400 * time.Millisecond) // several ping intervals and idle timeouts pass
	publish(t, s, "alive", `1`)
	if err := <-done; err != nil {
		t.Fatalf("a client that answers pings was closed: %v", err)
	}
}

func TestGracefulShutdownSends1001(t *testing.T) { eachTransport(t, testGracefulShutdownSends1001) }

func testGracefulShutdownSends1001(t *testing.T, tr transport) {
	s := startServer(t, tr.config(t, Config{}))
	conns := make([]*websocket.Conn, 3)
	for i := range conns {
		conns[i] = dial(t, s, "/ws?topics=t")
		testsupport.ReadJSON(t, conns[i])
	}
	errs := make(chan error, len(conns))
	for _, c := range conns {
		go func() {
			_, _, err := c.Read(context.Background())
			errs <- err
		}()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	for range conns {
		if code := websocket.CloseStatus(<-errs); code != websocket.StatusGoingAway {
			t.Fatalf("client saw close %d, want 1001", code)
		}
	}
	if n := s.tcpConns(); n != 0 {
		t.Fatalf("%d sockets open after shutdown", n)
	}
}

func TestNothingLeftBehindAfterSubscribeChurn(t *testing.T) {
	// Topics outlive their subscribers for the history's TTL (v1.1): a
	// short one lets the sweeper forget them within the test.
	// Each connection names 202 topics in 21 pipelined commands: more than
	// the default -command-burst, which a sub pays per topic (ratelimit.go).
	s := startServer(t, Config{Loops: 2, MaxSubs: 200, HistoryTTL: 50 * time.Millisecond, CommandBurst: 1000})
	base := s.hub.Stats()
	goroutines := runtime.NumGoroutine()
	// 1000 connections x 10 rounds x 10 topics = 100,000 subscribes and as
	// many unsubscribes, pipelined: each round sends both commands, then
	// reads the 20 answers.
	const conns, rounds, perRound = 1000, 10, 10
	var wg sync.WaitGroup
	for g := 0; g < 10; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < conns/10; i++ {
				c := dialQuiet(s)
				if c == nil {
					t.Error("dial failed")
					return
				}
				for r := 0; r < rounds; r++ {
					names := make([]string, perRound)
					for k := range names {
						names[k] = fmt.Sprintf(`"t%d.%d"`, r, k)
					}
					names[0] = `"shared"`
					topics := "[" + strings.Join(names, ",") + "]"
					for _, op := range []string{"sub", "unsub"} {
						if err := c.Write(context.Background(), websocket.MessageText, []byte(`{"op":"`+op+`","topics":`+topics+`}`)); err != nil {
							t.Error(err)
							return
						}
					}
					for k := 0; k < 2*perRound; k++ {
						if _, _, err := c.Read(context.Background()); err != nil {
							t.Error(err)
							return
						}
					}
				}
				// Leave half of them subscribed and let the disconnect clean up.
				if i%2 == 0 {
					c.Write(context.Background(), websocket.MessageText, []byte(`{"op":"sub","topics":["left","over"]}`))
					c.Read(context.Background())
					c.Read(context.Background())
				}
				c.Close(websocket.StatusNormalClosure, "")
			}
		}()
	}
	wg.Wait()
	testsupport.WaitFor(t, "connections to close", func() bool { return s.Conns() == 0 && s.tcpConns() == 0 })
	testsupport.WaitFor(t, "the sweeper to forget the topics", func() bool { return s.hub.Stats().Topics == base.Topics })
	if st := s.hub.Stats(); st.Topics != base.Topics || st.Subscriptions != base.Subscriptions {
		t.Fatalf("after churn: %d topics, %d subscriptions; at start %d, %d", st.Topics, st.Subscriptions, base.Topics, base.Subscriptions)
	}
	testsupport.WaitFor(t, "goroutines to return to their starting count", func() bool {
		return runtime.NumGoroutine() <= goroutines
	})
}

func dialQuiet(s *Server) *websocket.Conn {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, s.wsURL("/ws"), dialOptions(nil, s, nil))
	if err != nil {
		return nil
	}
	return c
}
