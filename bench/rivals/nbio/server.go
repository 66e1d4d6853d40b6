package main

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/lesismal/nbio/nbhttp/websocket"
)

// server owns the topic table and the counters /metrics shows.
type server struct {
	cfg      config
	log      *slog.Logger
	upgrader *websocket.Upgrader

	mu     sync.Mutex // guards topics and every client's topics
	topics map[string]*topic

	conns, handshakes, published, delivered atomic.Int64
}

// topic is one topic's subscribers and last seq; mu (taken after
// server.mu, never before) orders its publishes.
type topic struct {
	mu   sync.Mutex
	seq  int64
	subs map[*client]struct{}
}

// client is one connection's subscriptions and its socket. Until the 101
// is written (conn is nil) pushes wait in pending: the query's topics are
// subscribed before the handshake answer, as docs/protocol.md says.
type client struct {
	topics map[string]struct{} // guarded by server.mu

	mu      sync.Mutex
	conn    *websocket.Conn
	pending [][]byte
}

func newServer(cfg config, log *slog.Logger) *server {
	s := &server{cfg: cfg, log: log, topics: map[string]*topic{}}
	u := websocket.NewUpgrader()
	u.KeepaliveTime = cfg.keepalive
	u.MessageLengthLimit = cfg.maxMessage
	u.OnMessage(s.onMessage)
	u.OnClose(func(c *websocket.Conn, err error) {
		cl, ok := c.Session().(*client)
		if !ok {
			return // the handshake failed before the session was set
		}
		s.conns.Add(-1)
		// not here: nbio may close a connection inside a publisher's
		// write, which holds the topic's lock
		go s.unsubscribeAll(cl)
	})
	s.upgrader = u
	return s
}

// push writes msg to the client, or queues it until the 101 is written.
func (c *client) push(msg []byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == nil {
		c.pending = append(c.pending, msg)
		return true
	}
	return c.conn.WriteMessage(websocket.TextMessage, msg) == nil
}

func validTopic(t string) bool {
	if len(t) == 0 || len(t) > 200 {
		return false
	}
	for i := 0; i < len(t); i++ {
		if t[i] < 0x21 || t[i] > 0x7e {
			return false
		}
	}
	return true
}

// serveWS upgrades /ws?topics=a,b: it subscribes the topics, writes the
// 101, then one subscribed answer per topic and what was pushed meanwhile.
func (s *server) serveWS(w http.ResponseWriter, r *http.Request) {
	var names []string
	for _, t := range strings.Split(r.URL.Query().Get("topics"), ",") {
		if t != "" {
			names = append(names, t)
		}
	}
	if len(names) > s.cfg.maxSubs {
		http.Error(w, "too many topics", http.StatusBadRequest)
		return
	}
	for _, t := range names {
		if !validTopic(t) {
			http.Error(w, "invalid topic", http.StatusBadRequest)
			return
		}
	}
	c := &client{topics: map[string]struct{}{}}
	answers := s.subscribe(c, names)
	conn, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		s.unsubscribeAll(c)
		return
	}
	conn.SetSession(c)
	s.conns.Add(1)
	s.handshakes.Add(1)
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, b := range answers {
		_ = conn.WriteMessage(websocket.TextMessage, b)
	}
	for _, b := range c.pending {
		_ = conn.WriteMessage(websocket.TextMessage, b)
	}
	c.pending, c.conn = nil, conn
}

type command struct {
	Op     string          `json:"op"`
	Topics []string        `json:"topics"`
	Topic  string          `json:"topic"`
	Data   json.RawMessage `json:"data"`
}

// onMessage runs a client's command (nbio runs it on its task pool, one
// at a time per connection).
func (s *server) onMessage(conn *websocket.Conn, mt websocket.MessageType, data []byte) {
	c, ok := conn.Session().(*client)
	if !ok {
		return
	}
	if mt != websocket.TextMessage {
		c.push(errorAnswer("binary messages are not accepted"))
		return
	}
	var cmd command
	if err := json.Unmarshal(data, &cmd); err != nil {
		c.push(errorAnswer("malformed JSON"))
		return
	}
	switch cmd.Op {
	case "sub":
		for _, b := range s.subscribe(c, cmd.Topics) {
			c.push(b)
		}
	case "unsub":
		s.unsubscribe(c, cmd.Topics)
	case "pub":
		switch {
		case !s.cfg.clientPublish:
			c.push(errorAnswer("publishing is disabled"))
		case !validTopic(cmd.Topic):
			c.push(errorAnswer("invalid topic"))
		case len(cmd.Data) == 0:
			c.push(errorAnswer("pub without data"))
		default:
			s.publish(cmd.Topic, cmd.Data)
		}
	default:
		c.push(errorAnswer("unknown op"))
	}
}

func errorAnswer(reason string) []byte {
	b, _ := json.Marshal(map[string]string{"op": "error", "error": reason})
	return b
}

// subscribe adds c to the topics and returns the answers to send, in order.
func (s *server) subscribe(c *client, names []string) [][]byte {
	var answers [][]byte
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, name := range names {
		if !validTopic(name) {
			answers = append(answers, errorAnswer("invalid topic"))
			continue
		}
		if _, held := c.topics[name]; !held && len(c.topics) >= s.cfg.maxSubs {
			answers = append(answers, errorAnswer("too many subscriptions"))
			continue
		}
		t := s.topics[name]
		if t == nil {
			t = &topic{subs: map[*client]struct{}{}}
			s.topics[name] = t
		}
		t.mu.Lock()
		t.subs[c] = struct{}{}
		seq := t.seq
		t.mu.Unlock()
		c.topics[name] = struct{}{}
		b, _ := json.Marshal(struct {
			Op    string `json:"op"`
			Topic string `json:"topic"`
			Seq   int64  `json:"seq"`
		}{"subscribed", name, seq})
		answers = append(answers, b)
	}
	return answers
}

func (s *server) unsubscribe(c *client, names []string) {
	s.mu.Lock()
	for _, name := range names {
		s.removeLocked(c, name)
	}
	s.mu.Unlock()
	for _, name := range names {
		b, _ := json.Marshal(map[string]string{"op": "unsubscribed", "topic": name})
		c.push(b)
	}
}

func (s *server) unsubscribeAll(c *client) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name := range c.topics {
		s.removeLocked(c, name)
	}
}

func (s *server) removeLocked(c *client, name string) {
	delete(c.topics, name)
	t := s.topics[name]
	if t == nil {
		return
	}
	t.mu.Lock()
	delete(t.subs, c)
	empty := len(t.subs) == 0
	t.mu.Unlock()
	if empty {
		delete(s.topics, name) // forgotten: its seq starts again at 1
	}
}

// publish writes data to the topic's subscribers and returns the message's
// seq and how many connections took it. The topic's lock is held across
// the writes (nbio's writes do not block: what the socket does not take is
// buffered) so two publishes of one topic reach every subscriber in seq order.
func (s *server) publish(name string, data json.RawMessage) (int64, int) {
	s.published.Add(1)
	q, _ := json.Marshal(name)
	s.mu.Lock()
	t := s.topics[name]
	if t == nil {
		s.mu.Unlock()
		return 1, 0 // nobody listens: the topic is forgotten right away
	}
	t.mu.Lock()
	s.mu.Unlock()
	defer t.mu.Unlock()
	t.seq++
	msg := make([]byte, 0, len(q)+len(data)+40)
	msg = append(msg, `{"topic":`...)
	msg = append(msg, q...)
	msg = append(msg, `,"seq":`...)
	msg = strconv.AppendInt(msg, t.seq, 10)
	msg = append(msg, `,"data":`...)
	msg = append(msg, data...)
	msg = append(msg, '}')
	n := 0
	for c := range t.subs {
		if c.push(msg) {
			n++
		}
	}
	s.delivered.Add(int64(n))
	return t.seq, n
}
