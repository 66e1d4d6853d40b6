package client

import (
	"github.com/wspush/wspush/internal/testsupport"

	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestSubscribeReceivesPushesInOrder(t *testing.T) {
	s := startServer(t, "127.0.0.1:0", serverOpts{})
	c := dial(t, wsURL(s))
	var a, b recorder
	if err := c.Subscribe(ctxT(t), "a", a.handler); err != nil {
		t.Fatal(err)
	}
	if err := c.Subscribe(ctxT(t), "b", b.handler); err != nil {
		t.Fatal(err)
	}
	var wantA, wantB []string
	for i := range 50 {
		publish(t, s, "a", fmt.Sprint(i))
		wantA = append(wantA, fmt.Sprint(i))
		if i%5 == 0 {
			publish(t, s, "b", fmt.Sprintf(`{"n":%d}`, i))
			wantB = append(wantB, fmt.Sprintf(`{"n":%d}`, i))
		}
	}
	checkData(t, a.waitMessages(t, len(wantA)), wantA...)
	checkData(t, b.waitMessages(t, len(wantB)), wantB...)
	for _, m := range a.messages() {
		if m.Topic != "a" {
			t.Fatalf("handler of a got %+v", m)
		}
	}
	if pos, ok := c.Position("a"); !ok || pos.Seq != 50 {
		t.Fatalf("position of a %+v %v, want seq 50", pos, ok)
	}
	if err := c.Subscribe(ctxT(t), "a", a.handler); !errors.Is(err, ErrAlreadySubscribed) {
		t.Fatalf("second Subscribe: %v, want ErrAlreadySubscribed", err)
	}
	if got := fmt.Sprint(c.Topics()); got != "[a b]" {
		t.Fatalf("Topics() = %s", got)
	}
}

func TestUnsubscribe(t *testing.T) {
	s := startServer(t, "127.0.0.1:0", serverOpts{})
	c := dial(t, wsURL(s))
	var r recorder
	if err := c.Subscribe(ctxT(t), "u", r.handler); err != nil {
		t.Fatal(err)
	}
	publish(t, s, "u", "1")
	r.waitMessages(t, 1)
	if err := c.Unsubscribe(ctxT(t), "u"); err != nil {
		t.Fatal(err)
	}
	// The server confirmed the unsub: a publish now reaches nobody.
	if ans := publish(t, s, "u", "2"); ans["subscribers"] != 0.0 {
		t.Fatalf("publish after unsubscribe answered %v", ans)
	}
	if _, held := c.Position("u"); held || len(c.Topics()) != 0 {
		t.Fatalf("topic still held: %v", c.Topics())
	}
	if err := c.Unsubscribe(ctxT(t), "never"); err != nil {
		t.Fatalf("unsubscribe of a topic not held: %v", err)
	}
	// Subscribing again works and starts from the server's position.
	if err := c.Subscribe(ctxT(t), "u", r.handler); err != nil {
		t.Fatal(err)
	}
	publish(t, s, "u", "3")
	// A topic without subscribers is forgotten (v1): seq starts again at 1.
	if got := r.waitMessages(t, 2); len(got) != 2 || string(got[1].Data) != "3" {
		t.Fatalf("messages %v, want 1 then 3", got)
	}
}

func TestSubscribeRefusedByServer(t *testing.T) {
	s := startServer(t, "127.0.0.1:0", serverOpts{maxSubs: 1})
	c := dial(t, wsURL(s))
	var r recorder
	if err := c.Subscribe(ctxT(t), "one", r.handler); err != nil {
		t.Fatal(err)
	}
	err := c.Subscribe(ctxT(t), "two", r.handler)
	var se *ServerError
	if !errors.As(err, &se) || se.Op != "sub" || se.Topic != "two" {
		t.Fatalf("Subscribe over -max-subs: %v, want a ServerError for sub two", err)
	}
	if got := fmt.Sprint(c.Topics()); got != "[one]" {
		t.Fatalf("Topics() = %s", got)
	}
}

func TestSubscribeAndPublishValidateLocally(t *testing.T) {
	s := startServer(t, "127.0.0.1:0", serverOpts{})
	c := dial(t, wsURL(s))
	tests := []struct {
		name  string
		call  func() error
		error error
	}{
		{"empty topic", func() error { return c.Subscribe(ctxT(t), "", func(Message) {}) }, ErrInvalidTopic},
		{"space", func() error { return c.Subscribe(ctxT(t), "a b", func(Message) {}) }, ErrInvalidTopic},
		{"too long", func() error { return c.Subscribe(ctxT(t), strings.Repeat("x", 201), func(Message) {}) }, ErrInvalidTopic},
		{"publish bad topic", func() error { return c.Publish(ctxT(t), "a\x00", json.RawMessage(`1`)) }, ErrInvalidTopic},
		{"publish bad JSON", func() error { return c.Publish(ctxT(t), "a", json.RawMessage(`{`)) }, ErrInvalidData},
		{"publish nothing", func() error { return c.Publish(ctxT(t), "a", nil) }, ErrInvalidData},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); !errors.Is(err, tt.error) {
				t.Fatalf("got %v, want %v", err, tt.error)
			}
		})
	}
}

func TestPublishFromClient(t *testing.T) {
	s := startServer(t, "127.0.0.1:0", serverOpts{})
	raw := rawSubscriber(t, s, "p")
	c := dial(t, wsURL(s))
	var own recorder
	if err := c.Subscribe(ctxT(t), "p", own.handler); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if err := c.Publish(ctxT(t), "p", json.RawMessage(fmt.Sprintf(`{"i":%d}`, i))); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 10 {
		m := testsupport.ReadJSON(t, raw)
		if m["topic"] != "p" || m["seq"] != float64(i+1) || fmt.Sprint(m["data"]) != fmt.Sprintf("map[i:%d]", i) {
			t.Fatalf("independent subscriber got %v at %d", m, i)
		}
	}
	// A publisher subscribed to the topic receives its own pushes.
	if got := own.waitMessages(t, 10); string(got[9].Data) != `{"i":9}` {
		t.Fatalf("own pushes %v", got)
	}
	if c.Buffered() != 0 {
		t.Fatalf("Buffered() = %d after every publish returned", c.Buffered())
	}
}

func TestPublishRefusalReachesErrorHandler(t *testing.T) {
	s := startServer(t, "127.0.0.1:0", serverOpts{noClientPublish: true})
	var r recorder
	c := dial(t, wsURL(s), r.options()...)
	if err := c.Publish(ctxT(t), "p", json.RawMessage(`1`)); err != nil {
		t.Fatal(err) // written: the server answers asynchronously
	}
	// The answer is attributed to the pub, and a sub after it still works.
	var sub recorder
	if err := c.Subscribe(ctxT(t), "q", sub.handler); err != nil {
		t.Fatalf("subscribe after a refused publish: %v", err)
	}
	testsupport.WaitFor(t, "the refusal", func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return len(r.errs) > 0
	})
	var se *ServerError
	if !errors.As(r.errs[0], &se) || se.Op != "pub" || se.Topic != "p" {
		t.Fatalf("error handler got %v, want a ServerError for pub p", r.errs[0])
	}
}

func TestSubscribeWhileDisconnectedWaitsForTheNextConnection(t *testing.T) {
	s := startServer(t, "127.0.0.1:0", serverOpts{})
	p := testsupport.StartDelayProxy(t, s.Addr().String())
	var r recorder
	c := dial(t, proxyURL(p), r.options()...)
	p.SetDown(true)
	testsupport.WaitFor(t, "the disconnect", func() bool { return !c.Connected() })
	done := make(chan error, 1)
	go func() { done <- c.Subscribe(context.Background(), "later", r.handler) }()
	testsupport.WaitFor(t, "the topic to be held", func() bool { return len(c.Topics()) == 1 })
	p.SetDown(false)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	publish(t, s, "later", `"x"`)
	checkData(t, r.waitMessages(t, 1), `"x"`)
	if n := len(r.recoveriesOf("later")); n != 0 {
		t.Fatalf("a first subscription reported %d recoveries", n)
	}
}

func TestSubscribeContextEnds(t *testing.T) {
	s := startServer(t, "127.0.0.1:0", serverOpts{})
	p := testsupport.StartDelayProxy(t, s.Addr().String())
	c := dial(t, proxyURL(p))
	p.SetDown(true)
	testsupport.WaitFor(t, "the disconnect", func() bool { return !c.Connected() })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Subscribe(ctx, "x", func(Message) {}) }()
	testsupport.WaitFor(t, "the topic to be held", func() bool { return len(c.Topics()) == 1 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Subscribe: %v, want context.Canceled", err)
	}
	if len(c.Topics()) != 0 {
		t.Fatalf("topics %v held after a cancelled Subscribe", c.Topics())
	}
}

func TestCloseStopsEveryGoroutine(t *testing.T) {
	s := startServer(t, "127.0.0.1:0", serverOpts{})
	p := testsupport.StartDelayProxy(t, s.Addr().String())
	before := runtime.NumGoroutine()
	var r recorder
	c, err := Dial(ctxT(t), proxyURL(p), append(r.options(), WithBackoff(time.Millisecond, 10*time.Millisecond))...)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Subscribe(ctxT(t), "g", func(Message) {}); err != nil {
		t.Fatal(err)
	}
	p.Cut() // one reconnect, so the goroutines of two connections are counted
	testsupport.WaitFor(t, "the resubscription", func() bool { return len(r.recoveriesOf("g")) == 1 })
	c.Close()
	p.Cut()
	testsupport.WaitFor(t, "the client's goroutines to end", func() bool { return runtime.NumGoroutine() <= before })
}
