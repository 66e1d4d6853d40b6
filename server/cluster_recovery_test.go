package server

// Tests of recovery in cluster mode (v1.1, issue 11): the stream is the
// history, with a real nats-server and real sockets.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/wspush/wspush/internal/testsupport"
	"github.com/wspush/wspush/pubsub"
)

// startClusterNode starts one node on the NATS server at natsURL with cfg
// and waits until it is healthy.
func startClusterNode(t *testing.T, natsURL string, cfg Config) *Server {
	t.Helper()
	cfg.Broker = natsURL
	s := startServer(t, cfg)
	testsupport.WaitFor(t, "node healthy", func() bool { code, _ := health(t, s); return code == http.StatusOK })
	return s
}

// sinceQuery is the ?topics=&since= of a listen-only resume of one topic.
func sinceQuery(topic, epoch string, seq uint64) string {
	since := fmt.Sprintf(`{%q:{"epoch":%q,"seq":%d}}`, topic, epoch, seq)
	return "/ws?topics=" + url.QueryEscape(topic) + "&since=" + url.QueryEscape(since)
}

// collect reads pushes of topic from c until one has seq last, failing on
// anything else.
func collect(t *testing.T, c *websocket.Conn, topic string, last uint64) []uint64 {
	t.Helper()
	var seqs []uint64
	for len(seqs) == 0 || seqs[len(seqs)-1] < last {
		p := readPush(t, c)
		if p.Topic != topic {
			t.Fatalf("push of %q, want %q", p.Topic, topic)
		}
		seqs = append(seqs, p.Seq)
	}
	return seqs
}

// TestClusterRecoveryAfterNodeChange: three nodes and a real nats-server; a
// client connected to node A is moved to node B (A is stopped) and recovers
// every message published meanwhile, while more are published during its
// replay: every seq once, in order, under the stream's epoch, the same on
// every node. Both forms: the listen-only ?since= and the sub command.
func TestClusterRecoveryAfterNodeChange(t *testing.T) {
	ns := testsupport.StartNATS(t, -1, t.TempDir())
	for _, form := range []string{"query", "command"} {
		t.Run(form, func(t *testing.T) {
			nodes := startNodes(t, ns.ClientURL(), 3)
			a, b, c := nodes[0], nodes[1], nodes[2]
			topic := "move-" + form

			ca := dial(t, a, "/ws?topics="+topic)
			sub := readAnswer(t, ca)
			if sub.Op != "subscribed" || !pubsub.ValidEpoch(sub.Epoch) {
				t.Fatalf("first answer %+v", sub)
			}
			var seqs []uint64
			for i := range 3 {
				seq, epoch := publishSeq(t, c, topic, fmt.Sprint(i))
				if epoch != sub.Epoch {
					t.Fatalf("publish answered epoch %q, the subscribed answer %q: not the stream's", epoch, sub.Epoch)
				}
				seqs = append(seqs, seq)
			}
			got := collect(t, ca, topic, seqs[2])
			pos := got[len(got)-1]

			a.Close() // node A goes away with the client's connection
			var missed []uint64
			for i := range 20 {
				seq, _ := publishSeq(t, c, topic, fmt.Sprint(100+i))
				missed = append(missed, seq)
			}

			// More publishes race with the replay, from node C and B.
			var mu sync.Mutex
			var racing []uint64
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 20 {
					s := []*Server{b, c}[i%2]
					res, err := s.Publish(context.Background(), topic, []byte(fmt.Sprint(200+i)))
					if err != nil {
						t.Errorf("racing publish: %v", err)
						return
					}
					mu.Lock()
					racing = append(racing, res.Seq)
					mu.Unlock()
				}
			}()
			var cb *websocket.Conn
			var ans answer
			if form == "query" {
				cb = dial(t, b, sinceQuery(topic, sub.Epoch, pos))
				ans = readAnswer(t, cb)
			} else {
				cb = dial(t, b, "/ws")
				ans = resubscribe(t, cb, topic, sub.Epoch, pos)
			}
			if ans.Op != "subscribed" || ans.Recovered == nil || !*ans.Recovered || ans.Seq != pos || ans.Epoch != sub.Epoch {
				t.Fatalf("resume on node B: %+v, want recovered at %d in %q", ans, pos, sub.Epoch)
			}
			wg.Wait()
			want := append(slices.Clone(missed), racing...)
			slices.Sort(want)
			if got := collect(t, cb, topic, want[len(want)-1]); !slices.Equal(got, want) {
				t.Fatalf("node B replayed and pushed %v\nwant every seq after %d once, in order: %v", got, pos, want)
			}
			// And live from then on, nothing twice.
			end, _ := publishSeq(t, c, topic, `"end"`)
			if p := readPush(t, cb); p.Seq != end {
				t.Fatalf("after the replay: push %d, want %d", p.Seq, end)
			}
			if v := metricLabelled(t, b, `wspush_recoveries_total{result="recovered"}`); v != 1 {
				t.Errorf("node B recovered %v, want 1", v)
			}
			if v := metricValue(t, b, "wspush_messages_replayed_total"); v < float64(len(missed)) {
				t.Errorf("node B replayed %v pushes, want at least %d", v, len(missed))
			}
		})
	}
}

// TestClusterRecoveryUnrecoverable: positions the stream cannot serve are
// answered recovered:false at the live position, with live pushes only:
// another epoch, a position whose message the per-topic limit
// (-history-size) dropped, a position past the topic's last.
func TestClusterRecoveryUnrecoverable(t *testing.T) {
	ns := testsupport.StartNATS(t, -1, t.TempDir())
	s := startClusterNode(t, ns.ClientURL(), Config{HistorySize: 3})
	var seqs []uint64
	var epoch string
	for i := range 6 {
		var seq uint64
		seq, epoch = publishSeq(t, s, "u", fmt.Sprint(i))
		seqs = append(seqs, seq)
	}
	last := seqs[5]
	kept := func(back int) func() uint64 { return func() uint64 { return seqs[len(seqs)-back] } }
	for _, tt := range []struct {
		name      string
		epoch     string
		seq       func() uint64
		recovered bool
	}{
		{"other epoch", "other", kept(2), false},
		{"dropped by -history-size", epoch, kept(5), false},
		{"past the last", epoch, func() uint64 { return last + 100 }, false},
		{"oldest kept", epoch, kept(3), true},
		{"at the last", epoch, kept(1), true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			from := tt.seq()
			c := dial(t, s, "/ws")
			a := resubscribe(t, c, "u", tt.epoch, from)
			if *a.Recovered != tt.recovered || a.Epoch != epoch {
				t.Fatalf("answer %+v from %d, want recovered %v in epoch %q", a, from, tt.recovered, epoch)
			}
			if !tt.recovered && a.Seq != last {
				t.Fatalf("unrecovered at %d, want the live position %d", a.Seq, last)
			}
			var want []uint64
			if tt.recovered {
				for _, seq := range seqs {
					if seq > from {
						want = append(want, seq)
					}
				}
			}
			next, _ := publishSeq(t, s, "u", `"next"`)
			seqs, last = append(seqs, next), next
			want = append(want, next)
			if got := collect(t, c, "u", next); !slices.Equal(got, want) {
				t.Fatalf("pushes %v, want %v", got, want)
			}
		})
	}
}

// TestClusterHistory: GET /history reads the stream in cluster mode.
func TestClusterHistory(t *testing.T) {
	ns := testsupport.StartNATS(t, -1, t.TempDir())
	nodes := startNodes(t, ns.ClientURL(), 2)
	var seqs []uint64
	var epoch string
	for i := range 5 {
		var seq uint64
		seq, epoch = publishSeq(t, nodes[i%2], "h", fmt.Sprintf(`{"n":%d}`, i))
		publishSeq(t, nodes[0], "other", `0`) // gaps in h's seqs
		seqs = append(seqs, seq)
	}
	for _, tt := range []struct {
		query     string
		recovered bool
		seqs      []uint64
	}{
		{fmt.Sprintf("topic=h&since=%d", seqs[1]), true, seqs[2:]},
		{fmt.Sprintf("topic=h&since=%d&limit=2", seqs[0]), true, seqs[1:3]},
		{"topic=h", true, seqs}, // nothing ever dropped from this stream
		{fmt.Sprintf("topic=h&since=%d&epoch=%s", seqs[3], epoch), true, seqs[4:]},
		{fmt.Sprintf("topic=h&since=%d&epoch=other", seqs[3]), false, nil},
		{fmt.Sprintf("topic=h&since=%d", seqs[4]+1), false, nil}, // another topic's seq
	} {
		for _, s := range nodes {
			code, h := getHistory(t, s, tt.query)
			if code != http.StatusOK || h.Topic != "h" || h.Epoch != epoch || h.Seq != seqs[4] || h.Recovered != tt.recovered || len(h.Messages) != len(tt.seqs) {
				t.Fatalf("%s: %d %+v, want recovered %v with %v in epoch %q", tt.query, code, h, tt.recovered, tt.seqs, epoch)
			}
			for i, m := range h.Messages {
				if m.Seq != tt.seqs[i] || string(m.Data) != fmt.Sprintf(`{"n":%d}`, slices.Index(seqs, m.Seq)) {
					t.Fatalf("%s: message %d is %d %s", tt.query, i, m.Seq, m.Data)
				}
			}
		}
	}
	if code, h := getHistory(t, nodes[0], "topic="); code != http.StatusBadRequest || h.Error == "" {
		t.Fatalf("empty topic: %d %+v", code, h)
	}
}

// TestClusterRecoveryAfterNATSOutage: node A is cut off from NATS while
// node B publishes. When A is back, its subscribers of the topic that
// missed messages are closed with 4003 (never a silent gap), and the client
// resubscribing from its position recovers every missed message; a topic
// that missed nothing keeps its subscribers.
func TestClusterRecoveryAfterNATSOutage(t *testing.T) {
	ns := testsupport.StartNATS(t, -1, t.TempDir())
	proxy := testsupport.StartDelayProxy(t, ns.Addr().String())
	a := startClusterNode(t, "nats://"+proxy.Addr(), Config{})
	b := startClusterNode(t, ns.ClientURL(), Config{})

	ca := dial(t, a, "/ws?topics=out")
	sub := readAnswer(t, ca)
	quiet := dial(t, a, "/ws?topics=quiet")
	readAnswer(t, quiet)
	first, _ := publishSeq(t, b, "out", `1`)
	if p := readPush(t, ca); p.Seq != first {
		t.Fatalf("push %d, want %d", p.Seq, first)
	}

	proxy.SetDown(true)
	testsupport.WaitFor(t, "node A cut off", func() bool { code, _ := health(t, a); return code != http.StatusOK })
	var missed []uint64
	for i := range 5 {
		seq, _ := publishSeq(t, b, "out", fmt.Sprint(10+i))
		missed = append(missed, seq)
	}
	proxy.SetDown(false)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, msg, err := ca.Read(ctx)
	if status := websocket.CloseStatus(err); int(status) != int(closeMissed) {
		t.Fatalf("node A's subscriber of a topic that missed messages: read %q, %v; want close %d", msg, err, closeMissed)
	}
	testsupport.WaitFor(t, "node A healthy again", func() bool { code, _ := health(t, a); return code == http.StatusOK })

	// The client resumes from its position, on node A again.
	cr := dial(t, a, sinceQuery("out", sub.Epoch, first))
	if ans := readAnswer(t, cr); ans.Recovered == nil || !*ans.Recovered || ans.Seq != first {
		t.Fatalf("resume after the outage: %+v, want recovered at %d", ans, first)
	}
	if got := collect(t, cr, "out", missed[4]); !slices.Equal(got, missed) {
		t.Fatalf("replayed %v, want %v", got, missed)
	}
	// The quiet topic missed nothing: its subscriber is still there.
	seq, _ := publishSeq(t, b, "quiet", `"still"`)
	if p := readPush(t, quiet); p.Seq != seq {
		t.Fatalf("quiet topic: push %d, want %d", p.Seq, seq)
	}
	if v := metricValue(t, a, "wspush_missed_closes_total"); v != 1 {
		t.Errorf("wspush_missed_closes_total = %v, want 1", v)
	}
	if v := metricValue(t, a, "wspush_broker_gaps_total"); v < 1 {
		t.Errorf("wspush_broker_gaps_total = %v, want >= 1", v)
	}
}

// TestClusterListenOnlyOrder: a listen-only resume of several topics on a
// cluster node answers as a single node does: every subscribed answer in
// the order of topics (recovered or not), then the replays in that order,
// then live pushes.
func TestClusterListenOnlyOrder(t *testing.T) {
	ns := testsupport.StartNATS(t, -1, t.TempDir())
	nodes := startNodes(t, ns.ClientURL(), 2)
	a, b := nodes[0], nodes[1]
	first := map[string]uint64{}
	var epoch string
	for _, topic := range []string{"x", "y", "z"} {
		first[topic], epoch = publishSeq(t, a, topic, `0`)
	}
	missed := map[string][]uint64{}
	for i := range 3 {
		for _, topic := range []string{"x", "z"} {
			seq, _ := publishSeq(t, a, topic, fmt.Sprint(i+1))
			missed[topic] = append(missed[topic], seq)
		}
	}
	since := fmt.Sprintf(`{"x":{"epoch":%q,"seq":%d},"z":{"epoch":%q,"seq":%d}}`, epoch, first["x"], epoch, first["z"])
	c := dial(t, b, "/ws?topics=x,y,z&since="+url.QueryEscape(since))
	for _, want := range []struct {
		topic     string
		recovered *bool
		seq       uint64
	}{{"x", ptr(true), first["x"]}, {"y", nil, first["y"]}, {"z", ptr(true), first["z"]}} {
		ans := readAnswer(t, c)
		if ans.Op != "subscribed" || ans.Topic != want.topic || ans.Seq != want.seq || (ans.Recovered == nil) != (want.recovered == nil) ||
			(want.recovered != nil && *ans.Recovered != *want.recovered) || ans.Epoch != epoch {
			t.Fatalf("answer %+v, want %s at %d (recovered %v)", ans, want.topic, want.seq, want.recovered)
		}
	}
	for _, topic := range []string{"x", "z"} {
		if got := collect(t, c, topic, missed[topic][2]); !slices.Equal(got, missed[topic]) {
			t.Fatalf("replay of %s: %v, want %v", topic, got, missed[topic])
		}
	}
	live, _ := publishSeq(t, a, "y", `"live"`)
	if p := readPush(t, c); p.Topic != "y" || p.Seq != live {
		t.Fatalf("live push %+v, want y %d", p, live)
	}

	// The sub command answers each topic in order, each recovered answer
	// followed at once by its replay; a command sent meanwhile waits.
	cmd := dial(t, b, "/ws")
	sendJSON(t, cmd, `{"op":"sub","topics":["x","y","z"],"since":`+since+`}`)
	sendJSON(t, cmd, `{"op":"unsub","topics":["y"]}`)
	expect := func(topic string, recovered *bool, seq uint64) {
		t.Helper()
		ans := readAnswer(t, cmd)
		if ans.Op != "subscribed" || ans.Topic != topic || ans.Seq != seq || (ans.Recovered == nil) != (recovered == nil) {
			t.Fatalf("answer %+v, want %s at %d (recovered %v)", ans, topic, seq, recovered)
		}
	}
	expect("x", ptr(true), first["x"])
	if got := collect(t, cmd, "x", missed["x"][2]); !slices.Equal(got, missed["x"]) {
		t.Fatalf("command replay of x: %v, want %v", got, missed["x"])
	}
	expect("y", nil, live)
	expect("z", ptr(true), first["z"])
	if got := collect(t, cmd, "z", missed["z"][2]); !slices.Equal(got, missed["z"]) {
		t.Fatalf("command replay of z: %v, want %v", got, missed["z"])
	}
	if ans := readAnswer(t, cmd); ans.Op != "unsubscribed" || ans.Topic != "y" {
		t.Fatalf("the held command's answer: %+v", ans)
	}
}

// TestClusterReplayPastMaxBuffered: a replay from the stream that would take
// the connection past -max-buffered is answered recovered:false at the live
// position, as on a single node; a shorter one is replayed.
func TestClusterReplayPastMaxBuffered(t *testing.T) {
	ns := testsupport.StartNATS(t, -1, t.TempDir())
	s := startClusterNode(t, ns.ClientURL(), Config{MaxBuffered: 4096})
	value := `"` + strings.Repeat("v", 400) + `"`
	var seqs []uint64
	var epoch string
	for range 20 {
		var seq uint64
		seq, epoch = publishSeq(t, s, "big", value)
		seqs = append(seqs, seq)
	}
	c := dial(t, s, "/ws")
	if a := resubscribe(t, c, "big", epoch, seqs[0]); *a.Recovered || a.Seq != seqs[19] {
		t.Fatalf("19 pushes of 400 B past -max-buffered 4096: %+v, want unrecovered at %d", a, seqs[19])
	}
	c2 := dial(t, s, "/ws")
	if a := resubscribe(t, c2, "big", epoch, seqs[16]); !*a.Recovered {
		t.Fatalf("3 pushes back: %+v, want recovered", a)
	}
	if got := collect(t, c2, "big", seqs[19]); !slices.Equal(got, seqs[17:]) {
		t.Fatalf("replay %v, want %v", got, seqs[17:])
	}
}

// TestClusterHistoryLimits: GET /history with a limit far above what the
// stream can hold of a topic answers what there is, at the cost of those
// messages only: the limit must not size anything up front (a direct get
// batch of 2^40 answers once sized a channel for them and panicked).
func TestClusterHistoryLimits(t *testing.T) {
	ns := testsupport.StartNATS(t, -1, t.TempDir())
	s := startClusterNode(t, ns.ClientURL(), Config{})
	var seqs []uint64
	for i := range 3 {
		seq, _ := publishSeq(t, s, "big", fmt.Sprint(i))
		seqs = append(seqs, seq)
	}
	for _, query := range []string{
		"topic=big&limit=1099511627776",
		fmt.Sprintf("topic=big&since=%d&limit=1099511627776", seqs[0]),
	} {
		code, h := getHistory(t, s, query)
		if code != http.StatusOK || !h.Recovered || len(h.Messages) == 0 || h.Messages[len(h.Messages)-1].Seq != seqs[2] {
			t.Fatalf("%s: %d %+v, want every message up to %d", query, code, h, seqs[2])
		}
	}
	// limit=0 gives the position only (docs/protocol.md), from 0 as from a seq.
	for _, query := range []string{"topic=big&limit=0", fmt.Sprintf("topic=big&since=%d&limit=0", seqs[0])} {
		code, h := getHistory(t, s, query)
		if code != http.StatusOK || !h.Recovered || len(h.Messages) != 0 || h.Seq != seqs[2] {
			t.Fatalf("%s: %d %+v, want the position %d only", query, code, h, seqs[2])
		}
	}
}

// TestClusterUnsubscribeWhilePending: the server API unsubscribes a
// connection from the topic whose answer it is waiting for (pending on the
// cluster's interest, with or without a recovery behind it). That topic is
// answered nothing more, and the commands the connection sent meanwhile are
// answered: they once waited forever for a confirmation that never came.
func TestClusterUnsubscribeWhilePending(t *testing.T) {
	const adminToken = "admin-secret"
	ns := testsupport.StartNATS(t, -1, t.TempDir())
	proxy := testsupport.StartDelayProxy(t, ns.Addr().String())
	s, _ := startAuthServer(t, Config{Broker: "nats://" + proxy.Addr(), PublishToken: adminToken})
	testsupport.WaitFor(t, "node healthy", func() bool { code, _ := health(t, s); return code == http.StatusOK })
	bearer := []string{"Authorization", "Bearer " + adminToken}
	for i, sub := range []string{
		`{"op":"sub","topics":["%s"]}`,
		`{"op":"sub","topics":["%s"],"since":{"%[1]s":{"epoch":"E","seq":1}}}`,
	} {
		topic := fmt.Sprint("pending", i)
		proxy.SetDelay(time.Second) // the interest's round trip: the topic stays pending meanwhile
		c := dialToken(t, s, hs(t, tokenClaims("7", time.Hour, "topics", []string{"*"})), "")
		sendJSON(t, c, fmt.Sprintf(sub, topic))
		sendJSON(t, c, `{"op":"nope"}`) // held behind the pending answer
		testsupport.WaitFor(t, "subscribed on the node", func() bool { return s.hub.Stats().Subscriptions == 1 })
		// 503 too: telling the other nodes waits for the slow NATS.
		if code, m := adminDo(t, s, http.MethodPost, "/unsubscribe?user=7&topic="+topic, bearer...); m["unsubscribed"] != 1.0 {
			t.Fatalf("/unsubscribe: %d %v", code, m)
		}
		expectReply(t, c, map[string]any{"op": "unsubscribed", "topic": topic})
		proxy.SetDelay(0)
		expectReply(t, c, map[string]any{"op": "error"}) // the held command
		c.CloseNow()
		testsupport.WaitFor(t, "connection gone", func() bool { return s.hub.Stats().Subscriptions == 0 })
	}
}

// TestClusterJoinReadsOneAtATime: a listen-only resume of several topics
// reads them from the stream one after the other, each within what is left
// of -max-buffered, so that one handshake holds at most about -max-buffered
// of replay, not -max-buffered per topic (-max-subs times as much): with one
// recovery worker and a slow NATS, its reads never queue behind each other.
func TestClusterJoinReadsOneAtATime(t *testing.T) {
	ns := testsupport.StartNATS(t, -1, t.TempDir())
	proxy := testsupport.StartDelayProxy(t, ns.Addr().String())
	s := startClusterNode(t, "nats://"+proxy.Addr(), Config{RecoveryWorkers: 1})
	topics := []string{"j0", "j1", "j2", "j3"}
	since := map[string]any{}
	var last []uint64
	for _, topic := range topics {
		first, epoch := publishSeq(t, s, topic, `1`)
		seq, _ := publishSeq(t, s, topic, `2`)
		since[topic] = map[string]any{"epoch": epoch, "seq": first}
		last = append(last, seq)
	}
	sinceJSON, _ := json.Marshal(since)
	proxy.SetDelay(150 * time.Millisecond)
	c := dial(t, s, "/ws?topics="+strings.Join(topics, ",")+"&since="+url.QueryEscape(string(sinceJSON)))
	queued := 0.0
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		queued = max(queued, metricValue(t, s, "wspush_recovery_reads_queued"))
	}
	for _, topic := range topics {
		if a := readAnswer(t, c); a.Topic != topic || a.Recovered == nil || !*a.Recovered {
			t.Fatalf("answer %+v, want %s recovered", a, topic)
		}
	}
	for i, topic := range topics {
		if got := collect(t, c, topic, last[i]); !slices.Equal(got, last[i:i+1]) {
			t.Fatalf("%s replayed %v, want [%d]", topic, got, last[i])
		}
	}
	if queued > 0 {
		t.Fatalf("up to %v of the handshake's reads waited for the worker at once, want one read at a time", queued)
	}
}

// TestClusterPublishInvalidUTF8: POST /publish of JSON holding a byte that
// is not UTF-8 is refused with 400 on a cluster node, as on a single node.
// Stored, it was dropped by every node's ingest, so the topic's next
// message looked like it followed a gap and closed its subscribers (4003).
func TestClusterPublishInvalidUTF8(t *testing.T) {
	ns := testsupport.StartNATS(t, -1, t.TempDir())
	s := startClusterNode(t, ns.ClientURL(), Config{})
	c := dial(t, s, "/ws?topics=u")
	readAnswer(t, c)
	if code, m := publish(t, s, "u", "\"\xff\""); code != http.StatusBadRequest {
		t.Fatalf("publish of invalid UTF-8: %d %v, want 400", code, m)
	}
	seq, _ := publishSeq(t, s, "u", `"fine"`)
	if p := readPush(t, c); p.Seq != seq {
		t.Fatalf("push %+v, want seq %d", p, seq)
	}
}

// TestClusterRecoverySkipsClosedConnections: with one recovery worker and a
// slow NATS, the queued stream reads of clients that closed while they
// waited are skipped (wspush_recovery_reads_skipped_total), not run for
// nobody; the client that stayed is recovered.
func TestClusterRecoverySkipsClosedConnections(t *testing.T) {
	ns := testsupport.StartNATS(t, -1, t.TempDir())
	proxy := testsupport.StartDelayProxy(t, ns.Addr().String())
	s := startClusterNode(t, "nats://"+proxy.Addr(), Config{RecoveryWorkers: 1})
	first, epoch := publishSeq(t, s, "r", `1`)
	last, _ := publishSeq(t, s, "r", `2`)
	subscribeTo(t, s, "r") // the interest is in place: the resumes below only read
	resume := fmt.Sprintf(`{"op":"sub","topics":["r"],"since":{"r":{"epoch":%q,"seq":%d}}}`, epoch, first)

	// Every byte to and from NATS held 1 s: the first read takes the worker
	// for 2 s, while the others queue behind it and their clients leave.
	proxy.SetDelay(time.Second)
	stays := dial(t, s, "/ws")
	sendJSON(t, stays, resume)
	const leaving = 4
	for i := range leaving {
		c := dial(t, s, "/ws")
		sendJSON(t, c, resume)
		testsupport.WaitFor(t, "the read queued", func() bool {
			return metricValue(t, s, "wspush_recovery_reads_queued") >= float64(i+1)
		})
		c.CloseNow()
	}
	if a := readAnswer(t, stays); a.Topic != "r" || a.Recovered == nil || !*a.Recovered {
		t.Fatalf("answer %+v, want r recovered", a)
	}
	if got := collect(t, stays, "r", last); !slices.Equal(got, []uint64{last}) {
		t.Fatalf("replayed %v, want [%d]", got, last)
	}
	testsupport.WaitFor(t, "the closed clients' reads skipped", func() bool {
		return metricValue(t, s, "wspush_recovery_reads_skipped_total") == leaving
	})
}

// TestClusterRecoveryQueueFull: with one recovery worker busy on a slow NATS
// and -recovery-queue 1 taken, a third resume is answered recovered:false at
// once, at the topic's live position, and gets the next live push; the two
// that found room are recovered.
func TestClusterRecoveryQueueFull(t *testing.T) {
	ns := testsupport.StartNATS(t, -1, t.TempDir())
	proxy := testsupport.StartDelayProxy(t, ns.Addr().String())
	s := startClusterNode(t, "nats://"+proxy.Addr(), Config{RecoveryWorkers: 1, RecoveryQueue: 1})
	first, epoch := publishSeq(t, s, "q", `1`)
	last, _ := publishSeq(t, s, "q", `2`)
	subscribeTo(t, s, "q") // the interest is in place: the resumes below only read
	resume := fmt.Sprintf(`{"op":"sub","topics":["q"],"since":{"q":{"epoch":%q,"seq":%d}}}`, epoch, first)

	const delay = 600 * time.Millisecond // a read takes the worker for 1.2 s
	proxy.SetDelay(delay)
	var roomy []*websocket.Conn
	for i := range 2 { // the first read takes the worker, the second the queue's one place
		c := dial(t, s, "/ws")
		sendJSON(t, c, resume)
		testsupport.WaitFor(t, "the read taken or queued", func() bool {
			return i == 0 || metricValue(t, s, "wspush_recovery_reads_queued") == 1
		})
		if i == 0 {
			time.Sleep(150 * time.Millisecond) // the idle worker takes it off the queue at once
		}
		roomy = append(roomy, c)
	}
	full := dial(t, s, "/ws")
	start := time.Now()
	sendJSON(t, full, resume)
	a := readAnswer(t, full)
	if a.Topic != "q" || a.Recovered == nil || *a.Recovered {
		t.Fatalf("answer %+v, want q recovered:false", a)
	}
	if d := time.Since(start); d >= 2*delay {
		t.Errorf("the refused resume was answered after %v, want at once (a NATS round trip is %v)", d, 2*delay)
	}
	if a.Seq != last {
		t.Errorf("refused resume at %d, want the live position %d", a.Seq, last)
	}
	for i, c := range roomy {
		if a := readAnswer(t, c); a.Topic != "q" || a.Recovered == nil || !*a.Recovered {
			t.Fatalf("resume %d: answer %+v, want q recovered", i, a)
		}
		if got := collect(t, c, "q", last); !slices.Equal(got, []uint64{last}) {
			t.Fatalf("resume %d replayed %v, want [%d]", i, got, last)
		}
	}
	proxy.SetDelay(0)
	next, _ := publishSeq(t, s, "q", `3`)
	for i, c := range append(roomy, full) {
		if p := readPush(t, c); p.Seq != next {
			t.Fatalf("client %d got %+v, want the live push %d", i, p, next)
		}
	}
}

// TestClusterRecoverySharesReads: resumes of one topic from one position
// share a stream read (wspush_recovery_reads_shared_total), each still
// replayed whole; an answer that ends before what the resuming client's
// loop has already handed out (a publish since) is not shared: that resume
// reads anew, and misses nothing and gets nothing twice.
func TestClusterRecoverySharesReads(t *testing.T) {
	ns := testsupport.StartNATS(t, -1, t.TempDir())
	proxy := testsupport.StartDelayProxy(t, ns.Addr().String())
	s := startClusterNode(t, "nats://"+proxy.Addr(), Config{RecoveryWorkers: 1, Loops: 1})
	s.readShare.mu.Lock()
	s.readShare.ttl = time.Minute // the answers stay for the whole test: only freshness decides
	s.readShare.mu.Unlock()
	first, epoch := publishSeq(t, s, "s", `1`)
	second, _ := publishSeq(t, s, "s", `2`)
	warm := subscribeTo(t, s, "s") // the interest is in place: the resumes below only read
	resume := fmt.Sprintf(`{"op":"sub","topics":["s"],"since":{"s":{"epoch":%q,"seq":%d}}}`, epoch, first)

	proxy.SetDelay(100 * time.Millisecond)
	const clients = 5
	var cs []*websocket.Conn
	for range clients {
		c := dial(t, s, "/ws")
		sendJSON(t, c, resume)
		cs = append(cs, c)
	}
	for i, c := range cs {
		if a := readAnswer(t, c); a.Topic != "s" || a.Recovered == nil || !*a.Recovered {
			t.Fatalf("client %d: answer %+v, want s recovered", i, a)
		}
		if got := collect(t, c, "s", second); !slices.Equal(got, []uint64{second}) {
			t.Fatalf("client %d replayed %v, want [%d]", i, got, second)
		}
	}
	if n := metricValue(t, s, "wspush_recovery_reads_shared_total"); n != clients-1 {
		t.Fatalf("%v reads shared, want %d: one request for the %d resumes", n, clients-1, clients)
	}

	// A message is published and reaches the (only) loop: the stored answer
	// ends before it, so the next resume from the same position reads anew.
	proxy.SetDelay(0)
	third, _ := publishSeq(t, s, "s", `3`)
	if p := readPush(t, warm); p.Seq != third {
		t.Fatalf("warm subscriber got %+v, want %d", p, third)
	}
	late := dial(t, s, "/ws")
	sendJSON(t, late, resume)
	if a := readAnswer(t, late); a.Recovered == nil || !*a.Recovered || a.Seq != first {
		t.Fatalf("late resume: answer %+v, want recovered from %d", a, first)
	}
	if got := collect(t, late, "s", third); !slices.Equal(got, []uint64{second, third}) {
		t.Fatalf("late resume replayed %v, want [%d %d]", got, second, third)
	}
	fourth, _ := publishSeq(t, s, "s", `4`)
	if p := readPush(t, late); p.Seq != fourth {
		t.Fatalf("late resume's next push %+v, want %d", p, fourth)
	}
	if n := metricValue(t, s, "wspush_recovery_reads_shared_total"); n != clients-1 {
		t.Fatalf("%v reads shared, want %d: the late resume's answer was too old to share", n, clients-1)
	}
}
