package client

import (
	"github.com/wspush/wspush/internal/testsupport"

	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestServerRestart(t *testing.T) {
	s1 := startServer(t, "127.0.0.1:0", serverOpts{})
	addr := s1.Addr().String()
	var r recorder
	c := dial(t, wsURL(s1), r.options()...)
	if err := c.Subscribe(ctxT(t), "t", r.handler); err != nil {
		t.Fatal(err)
	}
	publish(t, s1, "t", "1")
	r.waitMessages(t, 1)

	if err := s1.Shutdown(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	testsupport.WaitFor(t, "the disconnect", func() bool { return len(r.disconnects()) > 0 })
	var ce *CloseError
	if err := r.disconnects()[0]; !errors.As(err, &ce) || ce.Code != CloseGoingAway {
		t.Fatalf("disconnect reason %v, want close 1001", err)
	}

	s2 := startServer(t, addr, serverOpts{})
	testsupport.WaitFor(t, "the resubscription", func() bool { return len(r.recoveriesOf("t")) == 1 })
	rc := r.recoveriesOf("t")[0]
	// A restarted in-memory server lost the stream: with v1 there is no
	// epoch to resume from, with v1.1 the epoch changed. Either way the
	// application must be told to reload.
	if rc.Recovered || rc.Previous.Seq != 1 {
		t.Fatalf("recovery %+v, want unrecovered from seq 1", rc)
	}
	if ans := publish(t, s2, "t", "2"); ans["subscribers"] != 1.0 {
		t.Fatalf("the new server has no subscriber: %v", ans)
	}
	checkData(t, r.waitMessages(t, 2)[1:], "2")
	if n := r.connectCount(); n != 2 {
		t.Fatalf("connect handler called %d times, want 2 (Dial and the reconnect)", n)
	}
}

func TestForcedDisconnect(t *testing.T) {
	s := startServer(t, "127.0.0.1:0", serverOpts{})
	p := testsupport.StartDelayProxy(t, s.Addr().String())
	var r recorder
	c := dial(t, proxyURL(p), r.options()...)
	if err := c.Subscribe(ctxT(t), "f", r.handler); err != nil {
		t.Fatal(err)
	}
	publish(t, s, "f", "1")
	r.waitMessages(t, 1)

	p.SetDown(true) // the server side of the connection goes away
	testsupport.WaitFor(t, "the disconnect", func() bool { return len(r.disconnects()) > 0 })
	if err := r.disconnects()[0]; !errors.Is(err, ErrConnectionLost) {
		t.Fatalf("disconnect reason %v, want ErrConnectionLost", err)
	}
	// It keeps trying while the path is down.
	testsupport.WaitFor(t, "failed reconnect attempts", func() bool { return len(r.disconnects()) >= 4 })
	for _, err := range r.disconnects()[1:] {
		if !strings.Contains(err.Error(), "reconnect") {
			t.Fatalf("attempt reported %v", err)
		}
	}
	p.SetDown(false)
	testsupport.WaitFor(t, "the resubscription", func() bool { return len(r.recoveriesOf("f")) == 1 })
	if rc := r.recoveriesOf("f")[0]; rc.Previous.Seq != 1 {
		t.Fatalf("recovery %+v, want it from seq 1", rc)
	}
	// The answer behind the Recovery came after the server subscribed us.
	publish(t, s, "f", "2")
	msgs := r.waitMessages(t, 2)
	if string(msgs[len(msgs)-1].Data) != "2" {
		t.Fatalf("messages %v", msgs)
	}
	if c.Err() != nil {
		t.Fatalf("Err() = %v while running", c.Err())
	}
}

func TestPublishQueueIsBounded(t *testing.T) {
	s := startServer(t, "127.0.0.1:0", serverOpts{})
	p := testsupport.StartDelayProxy(t, s.Addr().String())
	raw := rawSubscriber(t, s, "q")
	const limit = 1000
	c := dial(t, proxyURL(p), WithMaxBuffered(limit))
	p.SetDown(true)
	testsupport.WaitFor(t, "the disconnect", func() bool { return !c.Connected() })

	body := json.RawMessage(`"` + strings.Repeat("x", 280) + `"`)
	frame := len(`{"op":"pub","topic":"q","data":}`) + len(body)
	fits := limit / frame
	results := make(chan error, fits)
	for i := range fits {
		go func() { results <- c.Publish(context.Background(), "q", body) }()
		testsupport.WaitFor(t, "the publish to be queued", func() bool { return c.Buffered() == (i+1)*frame })
	}
	err := c.Publish(ctxT(t), "q", body)
	if !errors.Is(err, ErrBufferFull) {
		t.Fatalf("publish past the bound: %v, want ErrBufferFull", err)
	}
	if c.Buffered() != fits*frame {
		t.Fatalf("Buffered() = %d after a refused publish, want %d", c.Buffered(), fits*frame)
	}

	// A queued publish whose context ends is withdrawn.
	ctx, cancel := context.WithCancel(context.Background())
	small := make(chan error, 1)
	go func() { small <- c.Publish(ctx, "q", json.RawMessage(`0`)) }()
	testsupport.WaitFor(t, "the small publish to be queued", func() bool { return c.Buffered() > fits*frame })
	cancel()
	if err := <-small; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled publish: %v", err)
	}
	if c.Buffered() != fits*frame {
		t.Fatalf("Buffered() = %d after the withdrawal, want %d", c.Buffered(), fits*frame)
	}

	p.SetDown(false) // what was queued is sent once connected again
	for range fits {
		if err := <-results; err != nil {
			t.Fatalf("queued publish: %v", err)
		}
	}
	for i := range fits {
		if m := testsupport.ReadJSON(t, raw); m["seq"] != float64(i+1) {
			t.Fatalf("independent subscriber got %v", m)
		}
	}
	if c.Buffered() != 0 {
		t.Fatalf("Buffered() = %d after everything was sent", c.Buffered())
	}
}

func TestSlowConsumerIsDroppedAndReconnects(t *testing.T) {
	s := startServer(t, "127.0.0.1:0", serverOpts{maxBuffered: 64 << 10, sendBuffer: 16 << 10})
	var r recorder
	block := make(chan struct{})
	blocked := make(chan struct{}, 1)
	c := dial(t, wsURL(s), append(r.options(), WithReadLimit(1<<20))...)
	err := c.Subscribe(ctxT(t), "slow", func(m Message) {
		if string(m.Data) != `"done"` {
			select {
			case blocked <- struct{}{}:
				<-block // a handler that blocks: the client stops reading
			default:
			}
		}
		r.handler(m)
	})
	if err != nil {
		t.Fatal(err)
	}
	data := `"` + strings.Repeat("x", 32<<10) + `"`
	publish(t, s, "slow", data)
	<-blocked
	// The read goroutine is stuck in the handler: the socket fills, then the
	// server's queue, and the server drops the connection.
	for i := 0; s.Conns() > 0; i++ {
		if i > 2000 {
			t.Fatal("not dropped after 64 MiB of pushes")
		}
		publish(t, s, "slow", data)
	}
	close(block)
	testsupport.WaitFor(t, "the disconnect", func() bool { return len(r.disconnects()) > 0 })
	err = r.disconnects()[0]
	var ce *CloseError
	// The server tries one close frame 1013 without blocking; behind a full
	// socket it cannot be written, and the client sees the TCP close.
	if !(errors.As(err, &ce) && ce.Code == CloseSlowConsumer) && !errors.Is(err, ErrConnectionLost) {
		t.Fatalf("disconnect reason %v, want close 1013 or a lost connection", err)
	}
	testsupport.WaitFor(t, "the resubscription", func() bool { return len(r.recoveriesOf("slow")) == 1 })
	publish(t, s, "slow", `"done"`)
	testsupport.WaitFor(t, "a push after the reconnect", func() bool {
		msgs := r.messages()
		return len(msgs) > 0 && string(msgs[len(msgs)-1].Data) == `"done"`
	})
}
