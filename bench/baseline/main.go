// Command baseline is the yardstick for wspush: a deliberately conventional
// WebSocket push server speaking the same wire contract (docs/protocol.md),
// written the way a typical Go team writes it first.
//
// Concurrency: net/http serves each connection on its own goroutine, which
// after the upgrade becomes the connection's reader; a second goroutine per
// connection writes, fed by a buffered channel. One mutex guards the topic
// table, the subscriptions and the per-topic sequence numbers; publishing
// enqueues to every subscriber's channel under that mutex without blocking. A
// subscriber whose channel is full is dropped (its slow-consumer policy).
//
// Usage:
//
//	baseline -listen :8080 -admin 127.0.0.1:8081 [-queue 256] [-sndbuf 0] [-client-publish]
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

type config struct {
	queue         int
	sndbuf        int
	maxSubs       int
	maxMessage    int64
	ping          time.Duration
	writeTimeout  time.Duration
	clientPublish bool
	tlsCert       string
	tlsKey        string
}

func main() {
	listen := flag.String("listen", ":8080", "WebSocket address")
	admin := flag.String("admin", "127.0.0.1:8081", "admin address (POST /publish, /metrics, /healthz); loopback by default, as wspush")
	var cfg config
	flag.IntVar(&cfg.queue, "queue", 256, "messages queued per connection before it is dropped as a slow consumer")
	flag.IntVar(&cfg.sndbuf, "sndbuf", 0, "SO_SNDBUF of connections, bytes; 0: kernel autotuning")
	flag.IntVar(&cfg.maxSubs, "max-subs", 64, "topics per connection")
	flag.Int64Var(&cfg.maxMessage, "max-message", 64<<10, "largest message accepted, bytes")
	flag.DurationVar(&cfg.ping, "ping", 25*time.Second, "ping interval")
	flag.DurationVar(&cfg.writeTimeout, "write-timeout", 10*time.Second, "write deadline per flush")
	flag.BoolVar(&cfg.clientPublish, "client-publish", false, `accept {"op":"pub"} from clients`)
	flag.StringVar(&cfg.tlsCert, "tls-cert", "", "PEM certificate: with -tls-key, serve wss:// (crypto/tls on the connection's goroutine)")
	flag.StringVar(&cfg.tlsKey, "tls-key", "", "PEM private key of -tls-cert")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(*listen, *admin, cfg, log); err != nil {
		log.Error("baseline", "err", err)
		os.Exit(1)
	}
}

func run(listen, admin string, cfg config, log *slog.Logger) error {
	s := newServer(cfg, log)
	pl, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	al, err := net.Listen("tcp", admin)
	if err != nil {
		pl.Close()
		return fmt.Errorf("listen admin: %w", err)
	}
	log.Info("baseline listening", "ws", pl.Addr().String(), "admin", al.Addr().String())
	pub := &http.Server{Handler: s.publicMux(), ReadHeaderTimeout: 10 * time.Second}
	adm := &http.Server{Handler: s.adminMux(), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 2)
	go func() {
		if cfg.tlsCert != "" {
			errc <- pub.ServeTLS(pl, cfg.tlsCert, cfg.tlsKey)
			return
		}
		errc <- pub.Serve(pl)
	}()
	go func() { errc <- adm.Serve(al) }()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	select {
	case err = <-errc:
	case <-sig:
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = pub.Shutdown(ctx) // hijacked connections are not tracked: they die with the process
	_ = adm.Shutdown(ctx)
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

type server struct {
	cfg config
	log *slog.Logger

	mu     sync.Mutex
	topics map[string]*topic

	conns, handshakes, published, delivered, dropped atomic.Int64
}

type topic struct {
	seq  int64
	subs map[*client]struct{}
}

type outMsg struct {
	op   ws.OpCode
	data []byte
}

type client struct {
	conn     net.Conn
	send     chan outMsg
	topics   map[string]struct{} // guarded by server.mu
	once     sync.Once
	done     chan struct{}
	dropping atomic.Bool
}

func newServer(cfg config, log *slog.Logger) *server {
	return &server{cfg: cfg, log: log, topics: map[string]*topic{}}
}

func (s *server) publicMux() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", s.serveWS)
	return mux
}

func (s *server) adminMux() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/publish", s.servePublish)
	mux.HandleFunc("/metrics", s.serveMetrics)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	return mux
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

func (s *server) serveWS(w http.ResponseWriter, r *http.Request) {
	var names []string
	if q := r.URL.Query().Get("topics"); q != "" {
		names = strings.Split(q, ",")
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
	c := &client{send: make(chan outMsg, s.cfg.queue), topics: map[string]struct{}{}, done: make(chan struct{})}
	// Subscribe before the 101 so a listening client misses nothing.
	s.subscribe(c, names, false)
	conn, rw, _, err := ws.UpgradeHTTP(r, w)
	if err != nil {
		s.unsubscribeAll(c)
		return
	}
	if tc, ok := conn.(*net.TCPConn); ok && s.cfg.sndbuf > 0 {
		_ = tc.SetWriteBuffer(s.cfg.sndbuf)
	}
	c.conn = conn
	s.conns.Add(1)
	s.handshakes.Add(1)
	go s.writeLoop(c)
	s.readLoop(c, rw.Reader)
	s.drop(c)
	s.conns.Add(-1)
}

// readLoop reads client frames until the connection fails or closes.
func (s *server) readLoop(c *client, br *bufio.Reader) {
	control := func(h ws.Header, r io.Reader) error {
		p, err := io.ReadAll(r)
		if err != nil {
			return err
		}
		switch h.OpCode {
		case ws.OpPing:
			s.enqueue(c, outMsg{op: ws.OpPong, data: p})
		case ws.OpClose:
			code := ws.StatusNormalClosure
			if len(p) >= 2 {
				code = ws.StatusCode(int(p[0])<<8 | int(p[1]))
			}
			s.enqueue(c, outMsg{op: ws.OpClose, data: ws.NewCloseFrameBody(code, "")})
			return io.EOF
		}
		return nil
	}
	rd := &wsutil.Reader{Source: br, State: ws.StateServerSide, CheckUTF8: true, MaxFrameSize: s.cfg.maxMessage, OnIntermediate: control}
	for {
		h, err := rd.NextFrame()
		if err != nil {
			return
		}
		if h.OpCode.IsControl() {
			if err := control(h, rd); err != nil {
				// let the writer flush the close answer before the socket goes
				select {
				case <-c.done:
				case <-time.After(time.Second):
				}
				return
			}
			continue
		}
		data, err := io.ReadAll(rd)
		if err != nil {
			return
		}
		if h.OpCode != ws.OpText {
			s.answerError(c, "binary messages are not accepted")
			continue
		}
		s.command(c, data)
	}
}

// writeLoop writes queued messages, flushing when the queue is empty.
func (s *server) writeLoop(c *client) {
	defer s.drop(c)
	bw := bufio.NewWriterSize(c.conn, 4096)
	ping := time.NewTicker(s.cfg.ping)
	defer ping.Stop()
	write := func(m outMsg) error {
		_ = c.conn.SetWriteDeadline(time.Now().Add(s.cfg.writeTimeout))
		if err := wsutil.WriteServerMessage(bw, m.op, m.data); err != nil {
			return err
		}
		if m.op == ws.OpClose {
			_ = bw.Flush()
			return io.EOF
		}
		return nil
	}
	for {
		select {
		case m := <-c.send:
			if write(m) != nil {
				return
			}
			for n := len(c.send); n > 0; n-- {
				if write(<-c.send) != nil {
					return
				}
			}
			if bw.Flush() != nil {
				return
			}
		case <-ping.C:
			if write(outMsg{op: ws.OpPing}) != nil || bw.Flush() != nil {
				return
			}
		case <-c.done:
			return
		}
	}
}

// enqueue queues m without blocking; a full queue drops the connection.
func (s *server) enqueue(c *client, m outMsg) bool {
	select {
	case c.send <- m:
		return true
	default:
		if c.dropping.CompareAndSwap(false, true) {
			go s.slow(c) // not here: the caller may hold s.mu
		}
		return false
	}
}

func (s *server) slow(c *client) {
	if s.drop(c) {
		s.dropped.Add(1)
	}
}

// drop closes the connection and forgets its subscriptions; it reports
// whether this call did it.
func (s *server) drop(c *client) bool {
	did := false
	c.once.Do(func() {
		did = true
		close(c.done)
		if c.conn != nil {
			c.conn.Close()
		}
		s.unsubscribeAll(c)
	})
	return did
}

type command struct {
	Op     string          `json:"op"`
	Topics []string        `json:"topics"`
	Topic  string          `json:"topic"`
	Data   json.RawMessage `json:"data"`
}

func (s *server) command(c *client, data []byte) {
	var cmd command
	if err := json.Unmarshal(data, &cmd); err != nil {
		s.answerError(c, "malformed JSON")
		return
	}
	switch cmd.Op {
	case "sub":
		s.subscribe(c, cmd.Topics, true)
	case "unsub":
		s.unsubscribe(c, cmd.Topics)
	case "pub":
		switch {
		case !s.cfg.clientPublish:
			s.answerError(c, "publishing is disabled")
		case !validTopic(cmd.Topic):
			s.answerError(c, "invalid topic")
		case len(cmd.Data) == 0:
			s.answerError(c, "pub without data")
		default:
			s.publish(cmd.Topic, cmd.Data)
		}
	default:
		s.answerError(c, "unknown op")
	}
}

func (s *server) answerError(c *client, reason string) {
	b, _ := json.Marshal(map[string]string{"op": "error", "error": reason})
	s.enqueue(c, outMsg{op: ws.OpText, data: b})
}

func (s *server) subscribe(c *client, names []string, answer bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, name := range names {
		if !validTopic(name) {
			s.answerErrorLocked(c, answer, "invalid topic")
			continue
		}
		t := s.topics[name]
		if _, held := c.topics[name]; !held && len(c.topics) >= s.cfg.maxSubs {
			s.answerErrorLocked(c, answer, "too many subscriptions")
			continue
		}
		if t == nil {
			t = &topic{subs: map[*client]struct{}{}}
			s.topics[name] = t
		}
		t.subs[c] = struct{}{}
		c.topics[name] = struct{}{}
		if answer {
			b, _ := json.Marshal(struct {
				Op    string `json:"op"`
				Topic string `json:"topic"`
				Seq   int64  `json:"seq"`
			}{"subscribed", name, t.seq})
			s.enqueue(c, outMsg{op: ws.OpText, data: b})
		}
	}
}

func (s *server) answerErrorLocked(c *client, answer bool, reason string) {
	if answer {
		b, _ := json.Marshal(map[string]string{"op": "error", "error": reason})
		s.enqueue(c, outMsg{op: ws.OpText, data: b})
	}
}

func (s *server) unsubscribe(c *client, names []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, name := range names {
		s.removeLocked(c, name)
		b, _ := json.Marshal(map[string]string{"op": "unsubscribed", "topic": name})
		s.enqueue(c, outMsg{op: ws.OpText, data: b})
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
	if t := s.topics[name]; t != nil {
		delete(t.subs, c)
		if len(t.subs) == 0 {
			delete(s.topics, name) // forgotten: its seq starts again at 1
		}
	}
}

// publish sends data to the topic's subscribers and returns the message's
// sequence number and how many connections it was queued to.
func (s *server) publish(name string, data json.RawMessage) (int64, int) {
	s.published.Add(1)
	q, _ := json.Marshal(name)
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.topics[name]
	if t == nil {
		return 1, 0 // nobody listens: the topic is forgotten right away
	}
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
		if s.enqueue(c, outMsg{op: ws.OpText, data: msg}) {
			n++
		}
	}
	s.delivered.Add(int64(n))
	return t.seq, n
}

func (s *server) servePublish(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "POST only"})
		return
	}
	name := r.URL.Query().Get("topic")
	if !validTopic(name) {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid topic"})
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, s.cfg.maxMessage+1))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "read body: " + err.Error()})
		return
	}
	if int64(len(body)) > s.cfg.maxMessage {
		writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"error": "body too large"})
		return
	}
	if !json.Valid(body) {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid JSON"})
		return
	}
	seq, n := s.publish(name, json.RawMessage(body))
	writeJSON(w, http.StatusOK, struct {
		Topic       string `json:"topic"`
		Seq         int64  `json:"seq"`
		Subscribers int    `json:"subscribers"`
	}{name, seq, n})
}

func (s *server) serveMetrics(w http.ResponseWriter, r *http.Request) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s.mu.Lock()
	topics, subs := len(s.topics), 0
	for _, t := range s.topics {
		subs += len(t.subs)
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	for _, m := range []struct {
		name, typ string
		v         float64
	}{
		{"wspush_connections", "gauge", float64(s.conns.Load())},
		{"wspush_handshakes_total", "counter", float64(s.handshakes.Load())},
		{"wspush_topics", "gauge", float64(topics)},
		{"wspush_subscriptions", "gauge", float64(subs)},
		{"wspush_messages_published_total", "counter", float64(s.published.Load())},
		{"wspush_messages_delivered_total", "counter", float64(s.delivered.Load())},
		{"wspush_slow_consumers_dropped_total", "counter", float64(s.dropped.Load())},
		{"go_goroutines", "gauge", float64(runtime.NumGoroutine())},
		{"go_memstats_heap_inuse_bytes", "gauge", float64(ms.HeapInuse)},
		{"go_memstats_stack_inuse_bytes", "gauge", float64(ms.StackInuse)},
		{"go_memstats_sys_bytes", "gauge", float64(ms.Sys)},
	} {
		fmt.Fprintf(w, "# TYPE %s %s\n%s %g\n", m.name, m.typ, m.name, m.v)
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
