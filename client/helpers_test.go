package client

import (
	"github.com/wspush/wspush/internal/testsupport"

	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/wspush/wspush/server"
)

// serverOpts is what tests vary in the server's configuration. startServer
// alone turns it into a server.Config, so a change of the server's Config
// is made in one place.
type serverOpts struct {
	maxSubs         int
	maxBuffered     int
	sendBuffer      int
	noClientPublish bool
	authKeyFile     string // HS256 secret file (issue 12's -auth-hmac-secret-file): turns auth on
}

// startServer starts a real wspush server on loopback: listen "127.0.0.1:0"
// for a port picked by the kernel, or a fixed address to restart a server on
// the port of a stopped one.
func startServer(t testing.TB, listen string, o serverOpts) *server.Server {
	t.Helper()
	level := slog.LevelWarn
	if os.Getenv("WSPUSH_TEST_DEBUG") != "" {
		level = slog.LevelDebug
	}
	cfg := server.Config{
		Listen:             listen,
		Admin:              "127.0.0.1:0",
		Loops:              2,
		ClientPublish:      !o.noClientPublish,
		MaxSubs:            o.maxSubs,
		MaxBuffered:        o.maxBuffered,
		SendBuffer:         o.sendBuffer,
		AuthHMACSecretFile: o.authKeyFile,
		Logger:             slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})),
	}
	var s *server.Server
	var err error
	// A port just released may be refused for a moment by the kernel.
	testsupport.WaitFor(t, "the server to listen on "+listen, func() bool {
		s, err = server.New(cfg)
		return err == nil
	})
	t.Cleanup(s.Close)
	return s
}

func wsURL(s *server.Server) string { return "ws://" + s.Addr().String() + "/ws" }

// publish POSTs body to topic on the admin API and returns the answer; it
// fails the test unless the server took the message.
func publish(t testing.TB, s *server.Server, topic, body string) map[string]any {
	t.Helper()
	status, m := testsupport.Publish(t, s.AdminAddr(), topic, body)
	if status != http.StatusOK {
		t.Fatalf("publish answered %d %v", status, m)
	}
	return m
}

// dial connects a Client with test-sized backoff, closed when the test ends.
func dial(t testing.TB, url string, opts ...Option) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	opts = append([]Option{WithBackoff(5*time.Millisecond, 100*time.Millisecond)}, opts...)
	c, err := Dial(ctx, url, opts...)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// recorder collects what a Client's handlers report, for tests to poll.
type recorder struct {
	mu         sync.Mutex
	msgs       []Message
	recoveries []Recovery
	disconnect []error
	errs       []error
	connects   int
}

func (r *recorder) handler(m Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, m)
}

func (r *recorder) options() []Option {
	return []Option{
		WithRecoveryHandler(func(rc Recovery) { r.mu.Lock(); r.recoveries = append(r.recoveries, rc); r.mu.Unlock() }),
		WithDisconnectHandler(func(err error) { r.mu.Lock(); r.disconnect = append(r.disconnect, err); r.mu.Unlock() }),
		WithErrorHandler(func(err error) { r.mu.Lock(); r.errs = append(r.errs, err); r.mu.Unlock() }),
		WithConnectHandler(func() { r.mu.Lock(); r.connects++; r.mu.Unlock() }),
	}
}

func (r *recorder) messages() []Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Message(nil), r.msgs...)
}

func (r *recorder) recoveriesOf(topic string) []Recovery {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Recovery
	for _, rc := range r.recoveries {
		if rc.Topic == topic {
			out = append(out, rc)
		}
	}
	return out
}

func (r *recorder) disconnects() []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]error(nil), r.disconnect...)
}

func (r *recorder) connectCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.connects
}

// waitMessages waits until n messages arrived and returns them.
func (r *recorder) waitMessages(t testing.TB, n int) []Message {
	t.Helper()
	testsupport.WaitFor(t, fmt.Sprintf("%d messages", n), func() bool { return len(r.messages()) >= n })
	return r.messages()
}

// checkSeqs fails unless msgs are exactly the given data values, in order,
// with strictly increasing seqs.
func checkData(t testing.TB, msgs []Message, want ...string) {
	t.Helper()
	if len(msgs) != len(want) {
		t.Fatalf("got %d messages %v, want %d", len(msgs), msgs, len(want))
	}
	for i, m := range msgs {
		if string(m.Data) != want[i] {
			t.Fatalf("message %d data %s, want %s (all: %v)", i, m.Data, want[i], msgs)
		}
		if i > 0 && m.Seq <= msgs[i-1].Seq {
			t.Fatalf("message %d seq %d after %d", i, m.Seq, msgs[i-1].Seq)
		}
	}
}

// rawSubscriber is an independent WebSocket client (coder/websocket on the
// raw protocol) subscribed to topic: it sees what the server delivers
// without going through this package.
func rawSubscriber(t testing.TB, s *server.Server, topic string) *websocket.Conn {
	t.Helper()
	ctx := ctxT(t)
	c, _, err := websocket.Dial(ctx, wsURL(s)+"?topics="+topic, nil)
	if err != nil {
		t.Fatalf("raw dial: %v", err)
	}
	t.Cleanup(func() { c.CloseNow() })
	if m := testsupport.ReadJSON(t, c); m["op"] != "subscribed" {
		t.Fatalf("raw subscriber got %v", m)
	}
	return c
}

// proxyURL is the WebSocket URL of the server behind p.
func proxyURL(p *testsupport.DelayProxy) string { return "ws://" + p.Addr() + "/ws" }
