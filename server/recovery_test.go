package server

// Tests of topic history and recovery (v1.1, issue 11) on a single node.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/wspush/wspush/internal/testsupport"
	"github.com/wspush/wspush/pubsub"
)

// epochAnswer matches a subscribed answer carrying an epoch.
var epochAnswer = regexp.MustCompile(`"epoch":"[A-Za-z0-9_-]{1,32}"`)

// answer is a subscribed answer as a client reads it.
type answer struct {
	Op        string `json:"op"`
	Topic     string `json:"topic"`
	Seq       uint64 `json:"seq"`
	Epoch     string `json:"epoch"`
	Recovered *bool  `json:"recovered"`
	Error     string `json:"error"`
}

func readAnswer(t testing.TB, c *websocket.Conn) answer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, b, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	var a answer
	if err := json.Unmarshal(b, &a); err != nil || a.Op == "" {
		t.Fatalf("message %q is not an answer (%v)", b, err)
	}
	return a
}

// resubscribe sends a sub from (epoch, seq) and reads its answer.
func resubscribe(t testing.TB, c *websocket.Conn, topic, epoch string, seq uint64) answer {
	t.Helper()
	sendJSON(t, c, fmt.Sprintf(`{"op":"sub","topics":[%q],"since":{%q:{"epoch":%q,"seq":%d}}}`, topic, topic, epoch, seq))
	a := readAnswer(t, c)
	if a.Op != "subscribed" || a.Topic != topic || a.Recovered == nil {
		t.Fatalf("resubscribe to %q answered %+v", topic, a)
	}
	return a
}

// publishSeq publishes over the admin API and returns the seq and epoch.
func publishSeq(t testing.TB, s *Server, topic, body string) (uint64, string) {
	t.Helper()
	code, m := publish(t, s, url.QueryEscape(topic), body)
	if code != http.StatusOK {
		t.Fatalf("publish %s to %q: %d %v", body, topic, code, m)
	}
	e, _ := m["epoch"].(string)
	return uint64(m["seq"].(float64)), e
}

func TestPublishWithoutSubscribersIsKept(t *testing.T) {
	s := startServer(t, Config{})
	seq, epoch := publishSeq(t, s, "k", `"first"`)
	if seq != 1 || !pubsub.ValidEpoch(epoch) {
		t.Fatalf("publish without subscribers: seq %d epoch %q, want 1 and an epoch", seq, epoch)
	}
	c := dial(t, s, "/ws")
	sendJSON(t, c, `{"op":"sub","topics":["k"]}`)
	if a := readAnswer(t, c); a.Seq != 1 || a.Epoch != epoch || a.Recovered != nil {
		t.Fatalf("subscribed %+v, want seq 1 in %s without recovered", a, epoch)
	}
	c2 := dial(t, s, "/ws")
	if a := resubscribe(t, c2, "k", epoch, 0); !*a.Recovered || a.Seq != 0 || a.Epoch != epoch {
		t.Fatalf("resubscribe from 0: %+v", a)
	}
	if p := readPush(t, c2); p.Seq != 1 || string(p.Data) != `"first"` {
		t.Fatalf("replay %+v", p)
	}
}

// TestRecoveryRacingPublishes: clients that drop their connection and
// resubscribe from their position while many publishers keep publishing
// get every message exactly once, in seq order, with the data it was
// published with.
func TestRecoveryRacingPublishes(t *testing.T) {
	s := startServer(t, Config{Loops: 2, HistorySize: 100000})
	const publishers, perPublisher, clients, reconnects = 8, 300, 6, 4
	const total = publishers * perPublisher
	var mu sync.Mutex
	sent := make(map[uint64]string) // seq -> data, from the publish answers
	first := dial(t, s, "/ws?topics=race")
	epoch := readAnswer(t, first).Epoch

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var pubs sync.WaitGroup
	for p := 0; p < publishers; p++ {
		pubs.Add(1)
		go func() {
			defer pubs.Done()
			for i := 0; i < perPublisher; i++ {
				data := fmt.Sprintf(`"%d-%d"`, p, i)
				res, err := s.Publish(ctx, "race", []byte(data))
				if err != nil || res.Epoch != epoch {
					t.Errorf("publish: %+v, %v", res, err)
					return
				}
				mu.Lock()
				sent[res.Seq] = data
				mu.Unlock()
			}
		}()
	}
	var readers sync.WaitGroup
	got := make([][]push, clients)
	for k := 0; k < clients; k++ {
		readers.Add(1)
		go func() {
			defer readers.Done()
			const chunk = total / (reconnects + 1)
			var pos uint64
			for {
				// (Re)connect, resume from pos, read a chunk, drop the
				// connection: while the publishers race on.
				c := dialQuiet(s)
				if c == nil {
					t.Errorf("client %d: dial failed", k)
					return
				}
				if resubscribeQuiet(t, c, epoch, pos) != pos {
					c.CloseNow()
					return
				}
				for n := 0; n < chunk && pos < total; n++ {
					p, err := readPushQuiet(c)
					if err != nil {
						t.Errorf("client %d: %v", k, err)
						c.CloseNow()
						return
					}
					got[k] = append(got[k], p)
					pos = p.Seq
				}
				c.CloseNow()
				if pos >= total {
					return
				}
			}
		}()
	}
	pubs.Wait()
	readers.Wait()
	if t.Failed() {
		return
	}
	for k, pushes := range got {
		if len(pushes) != total {
			t.Fatalf("client %d got %d pushes, want %d", k, len(pushes), total)
		}
		for i, p := range pushes {
			if p.Seq != uint64(i+1) || string(p.Data) != sent[p.Seq] {
				t.Fatalf("client %d push %d: seq %d %s, want seq %d %s", k, i, p.Seq, p.Data, i+1, sent[uint64(i+1)])
			}
		}
	}
	if n := metricLabelled(t, s, `wspush_recoveries_total{result="recovered"}`); n < clients*(reconnects+1) {
		t.Fatalf("recoveries counted %v, want at least %d", n, clients*(reconnects+1))
	}
}

// resubscribeQuiet is resubscribe from a goroutine: it reports and returns
// a position that cannot be where the caller is when the answer is wrong.
func resubscribeQuiet(t *testing.T, c *websocket.Conn, epoch string, seq uint64) uint64 {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := fmt.Sprintf(`{"op":"sub","topics":["race"],"since":{"race":{"epoch":%q,"seq":%d}}}`, epoch, seq)
	if err := c.Write(ctx, websocket.MessageText, []byte(cmd)); err != nil {
		t.Errorf("resubscribe: %v", err)
		return seq + 1
	}
	_, b, err := c.Read(ctx)
	var a answer
	if err == nil {
		err = json.Unmarshal(b, &a)
	}
	if err != nil || a.Op != "subscribed" || a.Recovered == nil || !*a.Recovered || a.Seq != seq || a.Epoch != epoch {
		t.Errorf("resubscribe from %d answered %s (%v)", seq, b, err)
		return seq + 1
	}
	return seq
}

func readPushQuiet(c *websocket.Conn) (push, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, b, err := c.Read(ctx)
	if err != nil {
		return push{}, err
	}
	var p push
	if err := json.Unmarshal(b, &p); err != nil || p.Seq == 0 {
		return push{}, fmt.Errorf("message %q is not a push (%v)", b, err)
	}
	return p, nil
}

// metricLabelled reads one series, name with its labels, from /metrics.
func metricLabelled(t testing.TB, s *Server, series string) float64 {
	t.Helper()
	resp, err := http.Get(s.adminURL("/metrics"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			var f float64
			fmt.Sscan(v, &f)
			return f
		}
	}
	t.Fatalf("series %s not in /metrics", series)
	return 0
}

func TestRecoveryAnswers(t *testing.T) {
	ttl := 300 * time.Millisecond
	tests := []struct {
		name string
		cfg  Config
		// setup publishes and returns the position to resume from, the
		// recovered flag wanted and the seqs of the replay wanted.
		setup func(t *testing.T, s *Server, epoch string) (from uint64, recovered bool, replay []uint64)
	}{
		{"within the history", Config{HistorySize: 10}, func(t *testing.T, s *Server, epoch string) (uint64, bool, []uint64) {
			publishN(t, s, "r", 5)
			return 2, true, []uint64{3, 4, 5}
		}},
		{"at the last seq", Config{HistorySize: 10}, func(t *testing.T, s *Server, epoch string) (uint64, bool, []uint64) {
			publishN(t, s, "r", 5)
			return 5, true, nil
		}},
		{"evicted by size", Config{HistorySize: 3}, func(t *testing.T, s *Server, epoch string) (uint64, bool, []uint64) {
			publishN(t, s, "r", 5) // 3..5 held
			return 1, false, nil
		}},
		{"oldest kept by size", Config{HistorySize: 3}, func(t *testing.T, s *Server, epoch string) (uint64, bool, []uint64) {
			publishN(t, s, "r", 5)
			return 2, true, []uint64{3, 4, 5}
		}},
		{"past the last seq", Config{}, func(t *testing.T, s *Server, epoch string) (uint64, bool, []uint64) {
			publishN(t, s, "r", 2)
			return 3, false, nil
		}},
		{"expired by ttl", Config{HistoryTTL: ttl}, func(t *testing.T, s *Server, epoch string) (uint64, bool, []uint64) {
			publishN(t, s, "r", 2)
			testsupport.WaitFor(t, "the messages to expire", func() bool { return s.hub.HistoryStats().Evicted[pubsub.EvictedTTL] == 2 })
			return 1, false, nil
		}},
		{"evicted by bytes", Config{HistoryMaxBytes: 3 * (1000 + 200)}, func(t *testing.T, s *Server, epoch string) (uint64, bool, []uint64) {
			big := `"` + strings.Repeat("b", 1000) + `"`
			publishSeq(t, s, "r", big)
			publishSeq(t, s, "other", big) // another topic's message takes the budget too
			publishSeq(t, s, "r", big)
			publishSeq(t, s, "other", big) // past the budget: r's first (the oldest of all) goes
			if st := s.hub.HistoryStats(); st.Evicted[pubsub.EvictedBytes] != 1 {
				t.Fatalf("history %+v, want one eviction by bytes", st)
			}
			return 0, false, nil
		}},
		{"kept within bytes", Config{HistoryMaxBytes: 3 * (1000 + 200)}, func(t *testing.T, s *Server, epoch string) (uint64, bool, []uint64) {
			big := `"` + strings.Repeat("b", 1000) + `"`
			for i := 0; i < 4; i++ {
				publishSeq(t, s, "r", big)
			}
			return 2, true, []uint64{3, 4}
		}},
		{"positions only", Config{HistoryOff: true}, func(t *testing.T, s *Server, epoch string) (uint64, bool, []uint64) {
			publishN(t, s, "r", 3)
			return 2, false, nil
		}},
		{"positions only, at the last", Config{HistoryOff: true}, func(t *testing.T, s *Server, epoch string) (uint64, bool, []uint64) {
			publishN(t, s, "r", 3)
			return 3, true, nil
		}},
		{"replay past max-buffered", Config{MaxBuffered: 3000}, func(t *testing.T, s *Server, epoch string) (uint64, bool, []uint64) {
			for i := 0; i < 4; i++ {
				publishSeq(t, s, "r", `"`+strings.Repeat("m", 1000)+`"`)
			}
			return 0, false, nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startServer(t, tt.cfg)
			holder := dial(t, s, "/ws?topics=r") // keeps the topic (and its epoch) alive
			epoch := readAnswer(t, holder).Epoch
			from, recovered, replay := tt.setup(t, s, epoch)
			c := dial(t, s, "/ws")
			a := resubscribe(t, c, "r", epoch, from)
			want := from
			if !recovered {
				want, _ = lastSeq(t, s, "r")
			}
			if *a.Recovered != recovered || a.Seq != want || a.Epoch != epoch {
				t.Fatalf("from %d: answered %+v, want recovered %v at seq %d of %s", from, a, recovered, want, epoch)
			}
			for _, w := range replay {
				if p := readPush(t, c); p.Seq != w {
					t.Fatalf("replay: seq %d, want %d", p.Seq, w)
				}
			}
			// Then live pushes only: the next one is last+1.
			next, _ := publishSeq(t, s, "r", `"live"`)
			if p := readPush(t, c); p.Seq != next || string(p.Data) != `"live"` {
				t.Fatalf("after the replay got %+v, want the live seq %d", p, next)
			}
		})
	}
}

func publishN(t *testing.T, s *Server, topic string, n int) {
	t.Helper()
	for i := 1; i <= n; i++ {
		publishSeq(t, s, topic, fmt.Sprint(i))
	}
}

// lastSeq reads the topic's position from GET /history.
func lastSeq(t testing.TB, s *Server, topic string) (uint64, string) {
	t.Helper()
	code, h := getHistory(t, s, "topic="+topic+"&limit=0")
	if code != http.StatusOK {
		t.Fatalf("history answered %d %+v", code, h)
	}
	return h.Seq, h.Epoch
}

func TestForgottenTopicStartsANewEpoch(t *testing.T) {
	s := startServer(t, Config{HistoryTTL: 100 * time.Millisecond})
	_, old := publishSeq(t, s, "gone", `1`)
	testsupport.WaitFor(t, "the sweeper to forget the topic", func() bool { return s.hub.Stats().Topics == 0 })
	c := dial(t, s, "/ws")
	a := resubscribe(t, c, "gone", old, 1)
	if *a.Recovered || a.Seq != 0 || a.Epoch == old || !pubsub.ValidEpoch(a.Epoch) {
		t.Fatalf("resubscribe to a forgotten topic: %+v, want unrecovered at 0 in a new epoch", a)
	}
}

func TestRestartChangesTheEpoch(t *testing.T) {
	s1 := startServer(t, Config{})
	_, epoch := publishSeq(t, s1, "e", `1`)
	addr := s1.Addr().String()
	s1.Close()
	s2 := startServer(t, Config{Listen: addr})
	c := dial(t, s2, "/ws")
	a := resubscribe(t, c, "e", epoch, 1)
	if *a.Recovered || a.Epoch == epoch || a.Seq != 0 {
		t.Fatalf("after a restart: %+v, want unrecovered in a new epoch", a)
	}
}

func TestRecoveryQueryForm(t *testing.T) {
	s := startServer(t, Config{})
	holder := dial(t, s, "/ws?topics=a,b")
	ea, eb := readAnswer(t, holder).Epoch, readAnswer(t, holder).Epoch
	publishN(t, s, "a", 3)
	publishN(t, s, "b", 2)
	since := fmt.Sprintf(`{"a":{"epoch":%q,"seq":1},"c":{"epoch":"old","seq":7}}`, ea)
	c := dial(t, s, "/ws?topics=a,b,c&since="+url.QueryEscape(since))
	// The answers, in order, then the replay.
	if a := readAnswer(t, c); a.Topic != "a" || a.Recovered == nil || !*a.Recovered || a.Seq != 1 || a.Epoch != ea {
		t.Fatalf("answer for a: %+v", a)
	}
	if a := readAnswer(t, c); a.Topic != "b" || a.Recovered != nil || a.Seq != 2 || a.Epoch != eb {
		t.Fatalf("answer for b (not in since): %+v", a)
	}
	if a := readAnswer(t, c); a.Topic != "c" || a.Recovered == nil || *a.Recovered || a.Seq != 0 {
		t.Fatalf("answer for c (another epoch): %+v", a)
	}
	for _, w := range []uint64{2, 3} {
		if p := readPush(t, c); p.Topic != "a" || p.Seq != w {
			t.Fatalf("replay %+v, want a/%d", p, w)
		}
	}
}

func TestSinceValidation(t *testing.T) {
	s := startServer(t, Config{})
	bad := []struct{ since, want string }{
		{`[]`, `"since" must be an object`},
		{`{"x":{"epoch":"E","seq":1}}`, `"since" names "x", which is not in "topics"`},
		{`{"a":{"seq":1}}`, `"since" of "a" needs "epoch": a string`},
		{`{"a":{"epoch":7,"seq":1}}`, `"since" of "a" needs "epoch": a string`},
		{`{"a":{"epoch":"bad epoch","seq":1}}`, `"since" of "a": invalid epoch "bad epoch"`},
		{`{"a":{"epoch":"` + strings.Repeat("e", 33) + `","seq":1}}`, `"since" of "a": invalid epoch: longer than 32`},
		{`{"a":{"epoch":"E"}}`, `"since" of "a" needs "seq": an integer`},
		{`{"a":{"epoch":"E","seq":-1}}`, `"since" of "a" needs "seq": an integer`},
		{`{"a":{"epoch":"E","seq":1.5}}`, `"since" of "a" needs "seq": an integer`},
		{`{"a":{"epoch":"E","seq":"12"}}`, `"since" of "a" needs "seq": an integer`},
		{`{"a":{"epoch":"E","seq":18446744073709551616}}`, `"since" of "a" needs "seq": an integer`},
		{`{"a":"E"}`, `"since" of "a" must be {"epoch":"E","seq":N}`},
	}
	c := dial(t, s, "/ws")
	for _, tt := range bad {
		sendJSON(t, c, `{"op":"sub","topics":["a"],"since":`+tt.since+`}`)
		if a := readAnswer(t, c); a.Op != "error" || !strings.Contains(a.Error, tt.want) {
			t.Errorf("since %s answered %+v, want an error with %q", tt.since, a, tt.want)
		}
		// The same in the query form: 400 with the same words.
		raw := dialRaw(t, s)
		fmt.Fprintf(raw, "GET /ws?topics=a&since=%s HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", url.QueryEscape(tt.since))
		raw.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(raw.r, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), tt.want) {
			t.Errorf("?since=%s answered %d %q, want 400 with %q", tt.since, resp.StatusCode, body, tt.want)
		}
	}
	// Nothing was subscribed by a rejected command.
	if st := s.hub.Stats(); st.Subscriptions != 0 {
		t.Fatalf("%d subscriptions after rejected commands", st.Subscriptions)
	}
}

func TestResubscribeAHeldTopic(t *testing.T) {
	s := startServer(t, Config{})
	c := dial(t, s, "/ws?topics=h")
	epoch := readAnswer(t, c).Epoch
	publishN(t, s, "h", 2)
	readPush(t, c)
	readPush(t, c)
	if a := resubscribe(t, c, "h", epoch, 2); !*a.Recovered || a.Seq != 2 {
		t.Fatalf("resubscribe where the connection stands: %+v", a)
	}
	if a := resubscribe(t, c, "h", epoch, 1); *a.Recovered || a.Seq != 2 {
		t.Fatalf("resubscribe behind where the connection stands: %+v, want unrecovered at 2", a)
	}
}

// TestClusterResubscribeOtherEpoch: a cluster resume from another epoch is
// answered recovered:false at the stream's position, in the stream's epoch.
func TestClusterResubscribeOtherEpoch(t *testing.T) {
	ns := testsupport.StartNATS(t, -1, t.TempDir())
	nodes := startNodes(t, ns.ClientURL(), 1)
	c := subscribeTo(t, nodes[0], "cl")
	seq := clusterPublish(t, nodes[0], "cl", `1`)
	readPush(t, c)
	c2 := dial(t, nodes[0], "/ws")
	a := resubscribe(t, c2, "cl", "anyepoch", seq-1)
	if *a.Recovered || a.Seq != seq || !pubsub.ValidEpoch(a.Epoch) {
		t.Fatalf("cluster resubscribe: %+v, want unrecovered at the stream's seq %d", a, seq)
	}
}

// historyBody is GET /history's answer.
type historyBody struct {
	Topic     string `json:"topic"`
	Epoch     string `json:"epoch"`
	Seq       uint64 `json:"seq"`
	Recovered bool   `json:"recovered"`
	Messages  []struct {
		Seq  uint64          `json:"seq"`
		Data json.RawMessage `json:"data"`
	} `json:"messages"`
	Error string `json:"error"`
}

func getHistory(t testing.TB, s *Server, query string, header ...string) (int, historyBody) {
	t.Helper()
	resp := adminRequest(t, s, http.MethodGet, "/history?"+query, header...)
	defer resp.Body.Close()
	var h historyBody
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		t.Fatalf("history answer: %v", err)
	}
	return resp.StatusCode, h
}

func TestAdminHistory(t *testing.T) {
	s := startServer(t, Config{HistorySize: 4, PublishToken: "sekret"})
	auth := []string{"Authorization", "Bearer sekret"}
	values := []string{`{"a":{"data":"}"}}`, `"quote \" and } brace"`, `[1,2,3]`, `null`, `12.5`, `true`}
	var epoch string
	for _, v := range values {
		code, m := publish(t, s, "h", v, auth...)
		if code != http.StatusOK {
			t.Fatalf("publish %s: %d %v", v, code, m)
		}
		epoch = m["epoch"].(string)
	}
	// seqs 3..6 held.
	tests := []struct {
		query     string
		recovered bool
		seqs      []uint64
	}{
		{"topic=h&since=2", true, []uint64{3, 4, 5, 6}},
		{"topic=h&since=3&limit=2", true, []uint64{4, 5}},
		{"topic=h", false, []uint64{3, 4, 5, 6}},
		{"topic=h&since=1&limit=100", false, []uint64{3, 4, 5, 6}},
		{"topic=h&since=6", true, nil},
		{"topic=h&since=7", false, nil},
		{"topic=h&since=4&epoch=" + epoch, true, []uint64{5, 6}},
		{"topic=h&since=4&epoch=other", false, nil},
	}
	for _, tt := range tests {
		code, h := getHistory(t, s, tt.query, auth...)
		if code != http.StatusOK || h.Topic != "h" || h.Epoch != epoch || h.Seq != 6 || h.Recovered != tt.recovered || len(h.Messages) != len(tt.seqs) {
			t.Fatalf("%s: %d %+v, want recovered %v with %v", tt.query, code, h, tt.recovered, tt.seqs)
		}
		for i, m := range h.Messages {
			if m.Seq != tt.seqs[i] || string(m.Data) != values[m.Seq-1] {
				t.Fatalf("%s: message %d is %d %s, want %d %s", tt.query, i, m.Seq, m.Data, tt.seqs[i], values[tt.seqs[i]-1])
			}
		}
	}
	for _, tt := range []struct {
		query  string
		header []string
		code   int
	}{
		{"topic=h", nil, http.StatusUnauthorized},
		{"topic=h", []string{"Authorization", "Bearer wrong"}, http.StatusUnauthorized},
		{"topic=", auth, http.StatusBadRequest},
		{"topic=h&since=-1", auth, http.StatusBadRequest},
		{"topic=h&since=x", auth, http.StatusBadRequest},
		{"topic=h&limit=-1", auth, http.StatusBadRequest},
		{"topic=h&epoch=bad!", auth, http.StatusBadRequest},
	} {
		if code, h := getHistory(t, s, tt.query, tt.header...); code != tt.code || h.Error == "" {
			t.Errorf("%s: %d %+v, want %d with an error", tt.query, code, h, tt.code)
		}
	}
	// An unknown topic gets a position a later resume recovers from.
	code, h := getHistory(t, s, "topic=fresh", auth...)
	if code != http.StatusOK || h.Seq != 0 || !h.Recovered || !pubsub.ValidEpoch(h.Epoch) || h.Messages == nil {
		t.Fatalf("unknown topic: %d %+v", code, h)
	}
}

func TestHistoryMetrics(t *testing.T) {
	s := startServer(t, Config{HistorySize: 2})
	publishN(t, s, "m", 3)
	c := dial(t, s, "/ws")
	_, epoch := lastSeq(t, s, "m")
	resubscribe(t, c, "m", epoch, 2)
	resubscribe(t, dial(t, s, "/ws"), "m", epoch, 0)
	for series, want := range map[string]float64{
		"wspush_history_messages":                       2,
		`wspush_history_evictions_total{cause="size"}`:  1,
		`wspush_history_evictions_total{cause="ttl"}`:   0,
		`wspush_history_evictions_total{cause="bytes"}`: 0,
		`wspush_recoveries_total{result="recovered"}`:   1,
		`wspush_recoveries_total{result="unrecovered"}`: 1,
		"wspush_messages_replayed_total":                1,
	} {
		if got := metricLabelled(t, s, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	if got := metricLabelled(t, s, "wspush_history_bytes"); got <= 0 {
		t.Errorf("wspush_history_bytes = %v", got)
	}
}

func TestDropConnectionsKeepsTheHistory(t *testing.T) {
	s := startServer(t, Config{})
	c := dial(t, s, "/ws?topics=d")
	epoch := readAnswer(t, c).Epoch
	if n := s.DropConnections(); n != 1 {
		t.Fatalf("dropped %d connections, want 1", n)
	}
	if _, _, err := c.Read(context.Background()); err == nil {
		t.Fatal("the connection is still open")
	}
	testsupport.WaitFor(t, "the server to drop the subscriber", func() bool { return s.Conns() == 0 })
	publishN(t, s, "d", 2)
	c2 := dial(t, s, "/ws")
	if a := resubscribe(t, c2, "d", epoch, 0); !*a.Recovered {
		t.Fatalf("resubscribe after the drop: %+v", a)
	}
	for _, w := range []uint64{1, 2} {
		if p := readPush(t, c2); p.Seq != w {
			t.Fatalf("replay %+v, want %d", p, w)
		}
	}
}

func TestMaxTopicsBoundsUnsubscribedTopics(t *testing.T) {
	s := startServer(t, Config{MaxTopics: 1})
	if seq, epoch := publishSeq(t, s, "one", `1`); seq != 1 || epoch == "" {
		t.Fatalf("first topic: seq %d epoch %q", seq, epoch)
	}
	if seq, epoch := publishSeq(t, s, "two", `1`); seq != 0 || epoch != "" {
		t.Fatalf("past -max-topics: seq %d epoch %q, want not kept (seq 0, no epoch)", seq, epoch)
	}
	if got := metricLabelled(t, s, "wspush_publishes_unkept_total"); got != 1 {
		t.Fatalf("wspush_publishes_unkept_total = %v, want 1", got)
	}
	if code, h := getHistory(t, s, "topic=three"); code != http.StatusServiceUnavailable || h.Error == "" {
		t.Fatalf("history of a new topic past -max-topics: %d %+v, want 503", code, h)
	}
	c := dial(t, s, "/ws?topics=two") // subscribing always makes the topic
	if a := readAnswer(t, c); a.Op != "subscribed" || a.Epoch == "" {
		t.Fatalf("subscribe past -max-topics: %+v", a)
	}
	if seq, _ := publishSeq(t, s, "two", `2`); seq != 1 {
		t.Fatalf("publish to the subscribed topic: seq %d, want 1", seq)
	}
}
