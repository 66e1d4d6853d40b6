package server

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/wspush/wspush/internal/testsupport"
	"github.com/wspush/wspush/pubsub/natsbroker"
)

// startNodes starts n wspush nodes sharing the NATS server at url and waits
// until each reports itself healthy.
func startNodes(t *testing.T, url string, n int) []*Server {
	t.Helper()
	nodes := make([]*Server, n)
	for i := range nodes {
		nodes[i] = startServer(t, Config{Broker: url, ClientPublish: true})
	}
	for i, s := range nodes {
		testsupport.WaitFor(t, fmt.Sprintf("node %d healthy", i), func() bool { code, _ := health(t, s); return code == http.StatusOK })
	}
	return nodes
}

func health(t testing.TB, s *Server) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(s.adminURL("/healthz"))
	if err != nil {
		t.Fatalf("healthz: %v", err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatalf("healthz answer: %v", err)
	}
	return resp.StatusCode, m
}

// metricValue reads one unlabelled series from s's /metrics.
func metricValue(t testing.TB, s *Server, name string) float64 {
	t.Helper()
	resp, err := http.Get(s.adminURL("/metrics"))
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric %s: %v", name, err)
			}
			return f
		}
	}
	t.Fatalf("metric %s not found", name)
	return 0
}

// natsSubs counts the subscriptions the NATS server holds for topic's
// republished messages: one per node with local subscribers.
func natsSubs(t testing.TB, ns *natsserver.Server, topic string) int {
	t.Helper()
	return testsupport.NATSSubs(t, ns, "wspush.out."+natsbroker.Subject(topic))
}

// subscribeTo dials s with ?topics=topic and reads the "subscribed" answer.
func subscribeTo(t *testing.T, s *Server, topic string) *websocket.Conn {
	t.Helper()
	c := dial(t, s, "/ws?topics="+url.QueryEscape(topic))
	if m := testsupport.ReadJSON(t, c); m["op"] != "subscribed" || m["topic"] != topic {
		t.Fatalf("first message %v, want subscribed to %q", m, topic)
	}
	return c
}

// clusterPublish publishes over s's admin API and returns the seq, failing
// the test on anything but 200.
func clusterPublish(t *testing.T, s *Server, topic, body string) uint64 {
	t.Helper()
	code, m := publish(t, s, url.QueryEscape(topic), body)
	if code != http.StatusOK {
		t.Fatalf("publish %s to %q: %d %v", body, topic, code, m)
	}
	return uint64(m["seq"].(float64))
}

// push is a push envelope as a client reads it.
type push struct {
	Topic string          `json:"topic"`
	Seq   uint64          `json:"seq"`
	Data  json.RawMessage `json:"data"`
}

func readPush(t *testing.T, c *websocket.Conn) push {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, b, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("read push: %v", err)
	}
	var p push
	if err := json.Unmarshal(b, &p); err != nil || p.Seq == 0 {
		t.Fatalf("message %q is not a push (%v)", b, err)
	}
	return p
}

// expectPushes reads len(want) pushes from c and checks their data, in order,
// and that seq strictly increases from after.
func expectPushes(t *testing.T, c *websocket.Conn, who string, after uint64, want ...string) uint64 {
	t.Helper()
	last := after
	for _, w := range want {
		p := readPush(t, c)
		if string(p.Data) != w {
			t.Fatalf("%s: got push %s (seq %d), want %s", who, p.Data, p.Seq, w)
		}
		if p.Seq <= last {
			t.Fatalf("%s: push %s has seq %d after %d", who, p.Data, p.Seq, last)
		}
		last = p.Seq
	}
	return last
}

// TestClusterPublishReachesEveryNode publishes from each node, through the
// admin API, a client's pub and Server.Publish, and checks that every
// subscriber on every node gets each message once, in one increasing
// sequence.
func TestClusterPublishReachesEveryNode(t *testing.T) {
	ns := testsupport.StartNATS(t, -1, t.TempDir())
	nodes := startNodes(t, ns.ClientURL(), 3)
	a, b, c := nodes[0], nodes[1], nodes[2]

	subs := map[string]*websocket.Conn{
		"A1": subscribeTo(t, a, "news"),
		"A2": subscribeTo(t, a, "news"), // a second subscriber on A: still one NATS subscription
		"C":  subscribeTo(t, c, "news"),
	}
	if n := natsSubs(t, ns, "news"); n != 2 {
		t.Fatalf("NATS holds %d subscriptions for news, want 2 (nodes A and C)", n)
	}

	var seqs []uint64
	seqs = append(seqs, clusterPublish(t, b, "news", `{"n":1}`))
	seqs = append(seqs, clusterPublish(t, a, "news", `{"n":2}`))
	res, err := c.Publish(context.Background(), "news", []byte(`{"n":3}`))
	if err != nil {
		t.Fatalf("Server.Publish: %v", err)
	}
	seqs = append(seqs, res.Seq)
	for i := 1; i < len(seqs); i++ {
		if seqs[i] <= seqs[i-1] {
			t.Fatalf("publish seqs %v are not increasing", seqs)
		}
	}
	pub := dial(t, b, "/ws")
	sendJSON(t, pub, `{"op":"pub","topic":"news","data":{"n":4}}`)

	for who, conn := range subs {
		last := expectPushes(t, conn, who, 0, `{"n":1}`, `{"n":2}`, `{"n":3}`, `{"n":4}`)
		if last <= seqs[2] {
			t.Errorf("%s: client pub got seq %d, not after %d", who, last, seqs[2])
		}
	}
	// No duplicates: the next push each subscriber reads is a new one.
	end := clusterPublish(t, c, "news", `"end"`)
	for who, conn := range subs {
		if p := readPush(t, conn); p.Seq != end || string(p.Data) != `"end"` {
			t.Errorf("%s: got %s seq %d, want \"end\" seq %d", who, p.Data, p.Seq, end)
		}
	}
	if v := metricValue(t, b, "wspush_messages_published_total"); v < 2 {
		t.Errorf("node B wspush_messages_published_total = %v, want >= 2", v)
	}
}

// TestClusterInterestFollowsSubscriptions checks that a node holds one NATS
// subscription per topic with local subscribers, from the "subscribed"
// answer on, and drops it with the last subscriber.
func TestClusterInterestFollowsSubscriptions(t *testing.T) {
	ns := testsupport.StartNATS(t, -1, t.TempDir())
	nodes := startNodes(t, ns.ClientURL(), 2)
	a, b := nodes[0], nodes[1]

	for _, topic := range []string{"plain", "a.b*>c%20", `x.>`} {
		t.Run(topic, func(t *testing.T) {
			if n := natsSubs(t, ns, topic); n != 0 {
				t.Fatalf("%d subscriptions before any subscriber", n)
			}
			a1 := subscribeTo(t, a, topic)
			// Checked at once: the subscription is flushed before the answer.
			if n := natsSubs(t, ns, topic); n != 1 {
				t.Fatalf("after the first subscriber: %d subscriptions, want 1", n)
			}
			a2 := dial(t, a, "/ws")
			sub, _ := json.Marshal(map[string]any{"op": "sub", "topics": []string{topic}})
			sendJSON(t, a2, string(sub))
			testsupport.ReadJSON(t, a2)
			b1 := subscribeTo(t, b, topic)
			if n := natsSubs(t, ns, topic); n != 2 {
				t.Fatalf("after subscribers on both nodes: %d subscriptions, want 2", n)
			}
			// A publish right after the answers reaches every subscriber.
			seq := clusterPublish(t, b, topic, `"hi"`)
			for who, c := range map[string]*websocket.Conn{"a1": a1, "a2": a2, "b1": b1} {
				if p := readPush(t, c); p.Seq != seq || p.Topic != topic {
					t.Fatalf("%s: got %+v, want topic %q seq %d", who, p, topic, seq)
				}
			}

			unsub, _ := json.Marshal(map[string]any{"op": "unsub", "topics": []string{topic}})
			sendJSON(t, a2, string(unsub))
			testsupport.ReadJSON(t, a2)
			if n := natsSubs(t, ns, topic); n != 2 {
				t.Fatalf("after one of two subscribers on A left: %d subscriptions, want 2", n)
			}
			a1.CloseNow()
			testsupport.WaitFor(t, "A's subscription to go", func() bool { return natsSubs(t, ns, topic) == 1 })
			b1.CloseNow()
			testsupport.WaitFor(t, "B's subscription to go", func() bool { return natsSubs(t, ns, topic) == 0 })
		})
	}
}

// TestClusterNATSRestart stops NATS mid-stream: the nodes keep their
// clients, report degraded and refuse publishes with 503; once NATS is back
// on the same port with the same store, they reconnect, subscribe again and
// publishes flow, with seq still increasing and nothing delivered twice.
func TestClusterNATSRestart(t *testing.T) {
	store := t.TempDir()
	ns := testsupport.StartNATS(t, -1, store)
	port := ns.Addr().(*net.TCPAddr).Port
	nodes := startNodes(t, ns.ClientURL(), 2)
	a, b := nodes[0], nodes[1]
	ca, cb := subscribeTo(t, a, "news"), subscribeTo(t, b, "news")

	s1 := clusterPublish(t, b, "news", `1`)
	s2 := clusterPublish(t, a, "news", `2`)
	lastA := expectPushes(t, ca, "A", 0, `1`, `2`)
	lastB := expectPushes(t, cb, "B", 0, `1`, `2`)
	if lastA != s2 || lastB != s2 || s2 <= s1 {
		t.Fatalf("seqs: published %d, %d; A got up to %d, B up to %d", s1, s2, lastA, lastB)
	}

	ns.Shutdown()
	ns.WaitForShutdown()
	for i, s := range nodes {
		testsupport.WaitFor(t, fmt.Sprintf("node %d degraded", i), func() bool {
			code, m := health(t, s)
			return code == http.StatusServiceUnavailable && m["status"] == "degraded"
		})
	}
	if code, m := publish(t, a, "news", `3`); code != http.StatusServiceUnavailable || m["error"] == "" {
		t.Fatalf("publish during the outage: %d %v, want 503 with an error", code, m)
	}
	if v := metricValue(t, a, "wspush_broker_connected"); v != 0 {
		t.Errorf("wspush_broker_connected = %v during the outage", v)
	}
	if v := metricValue(t, a, "wspush_broker_up"); v != 0 {
		t.Errorf("wspush_broker_up = %v during the outage", v)
	}
	if v := metricValue(t, a, "wspush_broker_publish_failures_total"); v < 1 {
		t.Errorf("wspush_broker_publish_failures_total = %v after a refused publish", v)
	}
	// Local connections are still served, subscriptions included.
	sendJSON(t, ca, `{"op":"sub","topics":["later"]}`)
	if m := testsupport.ReadJSON(t, ca); m["op"] != "subscribed" {
		t.Fatalf("sub during the outage: %v", m)
	}

	ns = testsupport.StartNATS(t, port, store)
	for i, s := range nodes {
		testsupport.WaitFor(t, fmt.Sprintf("node %d healthy again", i), func() bool { code, _ := health(t, s); return code == http.StatusOK })
	}
	testsupport.WaitFor(t, "interest re-established", func() bool {
		return natsSubs(t, ns, "news") == 2 && natsSubs(t, ns, "later") == 1
	})
	s3 := clusterPublish(t, b, "news", `3`)
	s4 := clusterPublish(t, a, "later", `4`)
	if s3 <= s2 {
		t.Fatalf("seq after the restart %d, not after %d: the stream's state was lost", s3, s2)
	}
	expectPushes(t, ca, "A", s2, `3`)
	expectPushes(t, cb, "B", s2, `3`)
	if p := readPush(t, ca); p.Topic != "later" || p.Seq != s4 {
		t.Fatalf("A: got %+v, want later seq %d", p, s4)
	}
	// Nothing twice: the next news push is the next publish.
	s5 := clusterPublish(t, a, "news", `5`)
	expectPushes(t, ca, "A", s3, `5`)
	expectPushes(t, cb, "B", s3, `5`)
	if s5 <= s4 {
		t.Fatalf("seq %d after %d", s5, s4)
	}
	for _, s := range nodes {
		if v := metricValue(t, s, "wspush_broker_reconnects_total"); v < 1 {
			t.Errorf("wspush_broker_reconnects_total = %v after a restart", v)
		}
		if v := metricValue(t, s, "wspush_broker_connected"); v != 1 {
			t.Errorf("wspush_broker_connected = %v after the restart", v)
		}
		if v := metricValue(t, s, "wspush_broker_up"); v != 1 {
			t.Errorf("wspush_broker_up = %v after the restart", v)
		}
		if v := metricValue(t, s, "wspush_broker_ingest_bytes"); v != 0 {
			t.Errorf("wspush_broker_ingest_bytes = %v with every message delivered", v)
		}
		if v := metricValue(t, s, "wspush_broker_dropped_total"); v != 0 {
			t.Errorf("wspush_broker_dropped_total = %v with no overload", v)
		}
	}
}
