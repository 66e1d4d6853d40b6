package client

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/wspush/wspush/internal/testsupport"
)

// peer is a WebSocket server on loopback (coder/websocket) that plays a
// script of the wire protocol: for what the running wspush cannot do yet
// (v1.1 epochs, refresh, close codes 4001/4002) and for checking the exact
// frames the client sends. Tests of behaviour against wspush itself use
// startServer.
type peer struct {
	srv   *httptest.Server
	conns atomic.Int32
	mu    sync.Mutex
	auth  []string // Authorization header of each handshake
	query []string // token query parameter of each handshake
}

// startPeer serves script for every connection, n counting them from 1.
func startPeer(t testing.TB, script func(n int, c *websocket.Conn)) *peer {
	t.Helper()
	p := &peer{}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.auth = append(p.auth, r.Header.Get("Authorization"))
		p.query = append(p.query, r.URL.Query().Get("token"))
		p.mu.Unlock()
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		script(int(p.conns.Add(1)), c)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *peer) url() string { return "ws" + strings.TrimPrefix(p.srv.URL, "http") + "/ws" }

// expect reads one frame and fails the test (from the peer's goroutine, so
// with Errorf) unless it is exactly want.
func expect(t testing.TB, c *websocket.Conn, want string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, b, err := c.Read(ctx)
	if err != nil {
		t.Errorf("peer read: %v (want %s)", err, want)
		return false
	}
	if string(b) != want {
		t.Errorf("peer got %s, want %s", b, want)
		return false
	}
	return true
}

func send(c *websocket.Conn, frame string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c.Write(ctx, websocket.MessageText, []byte(frame))
}

// untilClosed reads until the client closes and returns its close code.
func untilClosed(c *websocket.Conn) websocket.StatusCode {
	for {
		if _, _, err := c.Read(context.Background()); err != nil {
			return websocket.CloseStatus(err)
		}
	}
}

// jwt builds an unsigned-looking JWT with the given exp: the client reads
// exp without verifying, as the server does the verifying.
func jwt(exp time.Time, id string) string {
	enc := base64.RawURLEncoding.EncodeToString
	payload := fmt.Sprintf(`{"sub":"u","exp":%d,"jti":%q}`, exp.Unix(), id)
	return enc([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc([]byte(payload)) + ".c2ln"
}

func TestResubscribeSendsSinceAndReportsRecovery(t *testing.T) {
	tests := []struct {
		name      string
		answer    string // the first subscribed answer
		wantSub   string // the sub on the reconnect
		reanswer  string
		recovered bool
	}{
		{
			name:      "v1.1 recovered",
			answer:    `{"op":"subscribed","topic":"a","seq":10,"epoch":"E1"}`,
			wantSub:   `{"op":"sub","topics":["a"],"since":{"a":{"epoch":"E1","seq":12}}}`,
			reanswer:  `{"op":"subscribed","topic":"a","seq":12,"epoch":"E1","recovered":true}`,
			recovered: true,
		},
		{
			name:     "v1.1 unrecovered",
			answer:   `{"op":"subscribed","topic":"a","seq":10,"epoch":"E1"}`,
			wantSub:  `{"op":"sub","topics":["a"],"since":{"a":{"epoch":"E1","seq":12}}}`,
			reanswer: `{"op":"subscribed","topic":"a","seq":40,"epoch":"E2","recovered":false}`,
		},
		{
			name:     "v1 server: no epoch, no since",
			answer:   `{"op":"subscribed","topic":"a","seq":10}`,
			wantSub:  `{"op":"sub","topics":["a"]}`,
			reanswer: `{"op":"subscribed","topic":"a","seq":12}`, // another subscriber kept the topic
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := startPeer(t, func(n int, c *websocket.Conn) {
				switch n {
				case 1:
					if expect(t, c, `{"op":"sub","topics":["a"]}`) {
						send(c, tt.answer)
						send(c, `{"topic":"a","seq":11,"data":11}`)
						send(c, `{"topic":"a","seq":12,"data":12}`)
					}
					c.Close(websocket.StatusGoingAway, "restart")
				case 2:
					if expect(t, c, tt.wantSub) {
						send(c, tt.reanswer)
						send(c, fmt.Sprintf(`{"topic":"a","seq":%d,"data":"dup"}`, answerSeq(tt.reanswer))) // at the answer's seq: never delivered
						send(c, `{"topic":"a","seq":50,"data":50}`)
					}
					untilClosed(c)
				}
			})
			var r recorder
			c := dial(t, p.url(), r.options()...)
			if err := c.Subscribe(ctxT(t), "a", r.handler); err != nil {
				t.Fatal(err)
			}
			msgs := r.waitMessages(t, 3)
			checkData(t, msgs, "11", "12", "50")
			recs := r.recoveriesOf("a")
			if len(recs) != 1 || recs[0].Recovered != tt.recovered || recs[0].Previous.Seq != 12 {
				t.Fatalf("recoveries %+v, want one with Recovered %v from seq 12", recs, tt.recovered)
			}
			if want := recs[0].Position.Epoch; msgs[2].Epoch != want {
				t.Fatalf("push epoch %q, want the answer's %q", msgs[2].Epoch, want)
			}
		})
	}
}

func TestCloseCodes(t *testing.T) {
	tests := []struct {
		name      string
		code      websocket.StatusCode
		opts      []Option
		reconnect bool
	}{
		{"going away", CloseGoingAway, nil, true},
		{"slow consumer", CloseSlowConsumer, nil, true},
		{"token expired", CloseTokenExpired, nil, true},
		{"disconnected by the server API", CloseDisconnected, nil, false},
		{"disconnected, reconnect configured", CloseDisconnected, []Option{WithReconnectAfterDisconnect()}, true},
		{"going away without reconnect", CloseGoingAway, []Option{WithoutReconnect()}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := startPeer(t, func(n int, c *websocket.Conn) {
				if n == 1 {
					c.Close(tt.code, "scripted")
					return
				}
				untilClosed(c)
			})
			var tokens atomic.Int32
			src := func(context.Context) (string, error) {
				return fmt.Sprintf("tok%d", tokens.Add(1)), nil
			}
			var r recorder
			c := dial(t, p.url(), append(append(r.options(), WithTokenSource(src)), tt.opts...)...)
			testsupport.WaitFor(t, "the disconnect", func() bool { return len(r.disconnects()) > 0 })
			var ce *CloseError
			if err := r.disconnects()[0]; !errors.As(err, &ce) || ce.Code != int(tt.code) || ce.Reason != "scripted" {
				t.Fatalf("disconnect reason %v, want close %d", err, tt.code)
			}
			if tt.reconnect {
				testsupport.WaitFor(t, "the reconnect", func() bool { return c.Connected() && p.conns.Load() == 2 })
				if got := p.auth[1]; got != "Bearer tok2" {
					t.Fatalf("reconnect presented %q, want a fresh token", got)
				}
				return
			}
			select {
			case <-c.Done():
			case <-time.After(10 * time.Second):
				t.Fatal("client did not end")
			}
			if err := c.Err(); !errors.As(err, &ce) || ce.Code != int(tt.code) {
				t.Fatalf("Err() = %v", err)
			}
			if err := c.Subscribe(ctxT(t), "x", func(Message) {}); !errors.Is(err, ErrClosed) {
				t.Fatalf("Subscribe on an ended client: %v", err)
			}
			if n := p.conns.Load(); n != 1 {
				t.Fatalf("%d connections, want no reconnect", n)
			}
		})
	}
}

func TestCloseSendsNormalClosure(t *testing.T) {
	got := make(chan websocket.StatusCode, 1)
	p := startPeer(t, func(n int, c *websocket.Conn) { got <- untilClosed(c) })
	c := dial(t, p.url())
	done := make(chan error, 1)
	go func() { done <- c.Subscribe(context.Background(), "never-answered", func(Message) {}) }()
	testsupport.WaitFor(t, "the topic to be held", func() bool { return len(c.Topics()) == 1 })
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if code := <-got; code != websocket.StatusNormalClosure {
		t.Fatalf("peer saw close %d, want 1000", code)
	}
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("waiting Subscribe: %v, want ErrClosed", err)
	}
	select {
	case <-c.Done():
	default:
		t.Fatal("Done not closed after Close returned")
	}
	if !errors.Is(c.Err(), ErrClosed) || c.Publish(ctxT(t), "a", json.RawMessage(`1`)) != ErrClosed {
		t.Fatalf("after Close: Err %v", c.Err())
	}
	c.Close() // twice is fine
}

func TestTokenPresentation(t *testing.T) {
	tests := []struct {
		name       string
		opts       []Option
		auth, qery string
	}{
		{"header by default", []Option{WithToken("T1")}, "Bearer T1", ""},
		{"query on request", []Option{WithToken("T1"), WithTokenInQuery()}, "", "T1"},
		{"no token", nil, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := startPeer(t, func(n int, c *websocket.Conn) { untilClosed(c) })
			dial(t, p.url(), tt.opts...)
			p.mu.Lock()
			defer p.mu.Unlock()
			if p.auth[0] != tt.auth || p.query[0] != tt.qery {
				t.Fatalf("handshake had Authorization %q, token %q", p.auth[0], p.query[0])
			}
		})
	}
}

func TestDialFailureCarriesTheStatus(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnauthorized)
		w.Write([]byte(`{"error":"token expired"}`))
	}))
	defer srv.Close()
	_, err := Dial(ctxT(t), "ws"+strings.TrimPrefix(srv.URL, "http")+"/ws?token=SECRET", WithToken("SECRET2"), WithTokenInQuery())
	var he *HandshakeError
	if !errors.As(err, &he) || he.StatusCode != http.StatusUnauthorized || he.Body != `{"error":"token expired"}` {
		t.Fatalf("Dial: %v, want a HandshakeError 401", err)
	}
	if strings.Contains(err.Error(), "SECRET2") {
		t.Fatalf("the token leaked into the error: %v", err)
	}
	// A refused TCP connection: the library's error quotes the URL.
	addr := srv.Listener.Addr().String()
	srv.Close()
	_, err = Dial(ctxT(t), "ws://"+addr+"/ws", WithToken("SECRET3"), WithTokenInQuery())
	if err == nil || errors.As(err, &he) || strings.Contains(err.Error(), "SECRET3") {
		t.Fatalf("Dial of a closed port: %v, want a plain error without the token", err)
	}
}

func TestRefreshOnTheOpenConnection(t *testing.T) {
	var tokens []string
	var mu sync.Mutex
	src := func(context.Context) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		tok := jwt(time.Now().Add(2*time.Second), fmt.Sprint(len(tokens)))
		tokens = append(tokens, tok)
		return tok, nil
	}
	refreshed := make(chan struct{})
	p := startPeer(t, func(n int, c *websocket.Conn) {
		if n > 1 {
			t.Errorf("reconnected: the token should have been refreshed in place")
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, b, err := c.Read(ctx)
		if err != nil {
			t.Errorf("peer read: %v", err)
			return
		}
		mu.Lock()
		want := fmt.Sprintf(`{"op":"refresh","token":%q}`, tokens[len(tokens)-1])
		mu.Unlock()
		if string(b) != want {
			t.Errorf("peer got %s, want %s", b, want)
		}
		send(c, fmt.Sprintf(`{"op":"refreshed","exp":%d}`, time.Now().Add(time.Hour).Unix()))
		close(refreshed)
		untilClosed(c)
	})
	var r recorder
	c := dial(t, p.url(), append(r.options(), WithTokenSource(src))...)
	select {
	case <-refreshed:
	case <-time.After(10 * time.Second):
		t.Fatal("no refresh before exp")
	}
	if !c.Connected() || len(r.disconnects()) != 0 {
		t.Fatalf("connection lost around the refresh: %v", r.disconnects())
	}
}

// answerSeq is the seq of a subscribed answer.
func answerSeq(answer string) uint64 {
	var in inbound
	json.Unmarshal([]byte(answer), &in)
	return in.Seq
}
