package client

// Tests of protocol v1.1 (issues 11 and 12) against the running wspush. Each
// skips, with what it needs, only while the server's answers lack the v1.1
// fields (or its Config the auth settings), and runs by itself once the
// server speaks v1.1.

import (
	"github.com/wspush/wspush/internal/testsupport"

	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wspush/wspush/server"
)

// requireEpoch skips the test when the server's subscribed answer for topic
// carried no epoch: a v1 server.
func requireEpoch(t *testing.T, c *Client, topic string) Position {
	t.Helper()
	pos, ok := c.Position(topic)
	if !ok {
		t.Fatalf("topic %q not held", topic)
	}
	if pos.Epoch == "" {
		t.Skip("needs server v1.1: \"epoch\" in the subscribed answer (issue 11)")
	}
	return pos
}

func TestRecoveryAfterForcedDisconnect(t *testing.T) {
	s := startServer(t, "127.0.0.1:0", serverOpts{})
	p := testsupport.StartDelayProxy(t, s.Addr().String())
	var r recorder
	c := dial(t, proxyURL(p), r.options()...)
	if err := c.Subscribe(ctxT(t), "r", r.handler); err != nil {
		t.Fatal(err)
	}
	epoch := requireEpoch(t, c, "r").Epoch
	var want []string
	for i := 1; i <= 3; i++ {
		publish(t, s, "r", fmt.Sprint(i))
		want = append(want, fmt.Sprint(i))
	}
	r.waitMessages(t, 3)

	p.SetDown(true)
	testsupport.WaitFor(t, "the disconnect", func() bool { return len(r.disconnects()) > 0 })
	testsupport.WaitFor(t, "the server to drop the subscriber", func() bool { return s.Conns() == 0 })
	for i := 4; i <= 23; i++ { // published while the client is away
		publish(t, s, "r", fmt.Sprint(i))
		want = append(want, fmt.Sprint(i))
	}
	p.SetDown(false)
	for i := 24; i <= 40; i++ { // racing the reconnect and the replay
		publish(t, s, "r", fmt.Sprint(i))
		want = append(want, fmt.Sprint(i))
	}
	testsupport.WaitFor(t, "the resubscription", func() bool { return len(r.recoveriesOf("r")) == 1 })
	rc := r.recoveriesOf("r")[0]
	if !rc.Recovered || rc.Previous != (Position{Epoch: epoch, Seq: 3}) || rc.Position.Epoch != epoch {
		t.Fatalf("recovery %+v, want recovered from %s/3", rc, epoch)
	}
	// Nothing missing, nothing twice, nothing out of order.
	checkData(t, r.waitMessages(t, len(want)), want...)
}

func TestRestartChangesTheEpoch(t *testing.T) {
	s1 := startServer(t, "127.0.0.1:0", serverOpts{})
	addr := s1.Addr().String()
	var r recorder
	c := dial(t, wsURL(s1), r.options()...)
	if err := c.Subscribe(ctxT(t), "e", r.handler); err != nil {
		t.Fatal(err)
	}
	epoch := requireEpoch(t, c, "e").Epoch
	s1.Close()
	startServer(t, addr, serverOpts{})
	testsupport.WaitFor(t, "the resubscription", func() bool { return len(r.recoveriesOf("e")) == 1 })
	rc := r.recoveriesOf("e")[0]
	if rc.Recovered || rc.Previous.Epoch != epoch || rc.Position.Epoch == epoch || rc.Position.Epoch == "" {
		t.Fatalf("recovery %+v after a restart, want unrecovered with a new epoch", rc)
	}
}

// authServer starts a wspush with HS256 auth on, or skips the test when the
// server has no such setting yet, and returns it with a token minter.
func authServer(t *testing.T, listen string) (*server.Server, func(sub string, ttl time.Duration) string) {
	t.Helper()
	secret := []byte("client-test-secret-0123456789abcdef")
	file := filepath.Join(t.TempDir(), "hmac.key")
	if err := os.WriteFile(file, secret, 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, listen, serverOpts{authKeyFile: file})
	mint := func(sub string, ttl time.Duration) string {
		enc := base64.RawURLEncoding.EncodeToString
		now := time.Now()
		claims, _ := json.Marshal(map[string]any{
			"sub": sub, "iat": now.Unix(), "exp": now.Add(ttl).Unix(),
			"topics": []string{"auth.*"}, "publish": []string{"auth.*"},
		})
		signing := enc([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc(claims)
		mac := hmac.New(sha256.New, secret)
		mac.Write([]byte(signing))
		return signing + "." + enc(mac.Sum(nil))
	}
	return s, mint
}

// skipUnlessRefreshAnswered skips when the server answered a refresh with an
// error: it does not know the op yet.
func skipUnlessRefreshAnswered(t *testing.T, r *recorder) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, err := range r.errs {
		var se *ServerError
		if errors.As(err, &se) && se.Op == "refresh" && strings.Contains(se.Message, "unknown op") {
			t.Skip("needs server v1.1: the refresh op answered with refreshed (issue 12)")
		}
	}
}

func TestRefreshKeepsTheConnection(t *testing.T) {
	s, mint := authServer(t, "127.0.0.1:0")
	var calls atomic.Int32
	var firstExp atomic.Int64
	src := func(context.Context) (string, error) {
		tok := mint("u1", 3*time.Second)
		if calls.Add(1) == 1 {
			exp, _ := tokenExpiry(tok)
			firstExp.Store(exp.Unix())
		}
		return tok, nil
	}
	var r recorder
	c := dial(t, wsURL(s), append(r.options(), WithTokenSource(src))...)
	if err := c.Subscribe(ctxT(t), "auth.t", r.handler); err != nil {
		t.Fatal(err)
	}
	// Two refreshes, and past the first token's exp.
	testsupport.WaitFor(t, "two refreshes", func() bool {
		skipUnlessRefreshAnswered(t, &r)
		return calls.Load() >= 3 && time.Now().Unix() > firstExp.Load()+1
	})
	publish(t, s, "auth.t", `"still here"`)
	checkData(t, r.waitMessages(t, 1), `"still here"`)
	if d := r.disconnects(); len(d) != 0 {
		t.Fatalf("disconnected around the refreshes: %v", d)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.errs) != 0 {
		t.Fatalf("errors: %v", r.errs)
	}
}

func TestTokenExpiryCloses4001AndReconnects(t *testing.T) {
	s, mint := authServer(t, "127.0.0.1:0")
	var failing atomic.Bool // the identity provider is down: no refresh
	src := func(context.Context) (string, error) {
		if failing.Load() {
			return "", errors.New("identity provider unavailable")
		}
		return mint("u2", 2*time.Second), nil
	}
	var r recorder
	c := dial(t, wsURL(s), append(r.options(), WithTokenSource(src))...)
	if err := c.Subscribe(ctxT(t), "auth.x", r.handler); err != nil {
		t.Fatal(err)
	}
	failing.Store(true)
	testsupport.WaitFor(t, "the expiry close", func() bool { return len(r.disconnects()) > 0 })
	failing.Store(false)
	var ce *CloseError
	if err := r.disconnects()[0]; !errors.As(err, &ce) || ce.Code != CloseTokenExpired {
		if errors.Is(err, ErrConnectionLost) {
			t.Skip("needs server v1.1: close 4001 at the token's exp (issue 12)")
		}
		t.Fatalf("disconnect reason %v, want close 4001", err)
	}
	testsupport.WaitFor(t, "the resubscription", func() bool { return len(r.recoveriesOf("auth.x")) == 1 })
	publish(t, s, "auth.x", `"after"`)
	checkData(t, r.waitMessages(t, 1), `"after"`)
}

// adminPost POSTs to the admin API and skips the test when the endpoint does
// not exist yet.
func adminPost(t *testing.T, s *server.Server, pathAndQuery string) map[string]any {
	t.Helper()
	resp, err := http.Post("http://"+s.AdminAddr()+pathAndQuery, "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		t.Skipf("needs server v1.1: POST %s on the admin API (issue 12)", pathAndQuery)
	}
	var m map[string]any
	json.NewDecoder(resp.Body).Decode(&m)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s answered %d %v", pathAndQuery, resp.StatusCode, m)
	}
	return m
}

func TestServerDisconnect4002EndsTheClient(t *testing.T) {
	s, mint := authServer(t, "127.0.0.1:0")
	var r recorder
	c := dial(t, wsURL(s), append(r.options(), WithToken(mint("u3", time.Hour)))...)
	if err := c.Subscribe(ctxT(t), "auth.d", r.handler); err != nil {
		t.Fatal(err)
	}
	if ans := adminPost(t, s, "/disconnect?user=u3"); ans["disconnected"] != 1.0 {
		t.Fatalf("disconnect answered %v", ans)
	}
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the client did not end after 4002")
	}
	var ce *CloseError
	if !errors.As(c.Err(), &ce) || ce.Code != CloseDisconnected {
		t.Fatalf("Err() = %v, want close 4002", c.Err())
	}
}

func TestServerUnsubscribeIsReported(t *testing.T) {
	s, mint := authServer(t, "127.0.0.1:0")
	var r recorder
	var once sync.Once
	gone := make(chan struct{})
	opts := append(r.options(), WithToken(mint("u4", time.Hour)), WithErrorHandler(func(err error) {
		var ue *ServerUnsubscribeError
		if errors.As(err, &ue) && ue.Topic == "auth.u" {
			once.Do(func() { close(gone) })
		}
	}))
	c := dial(t, wsURL(s), opts...)
	if err := c.Subscribe(ctxT(t), "auth.u", r.handler); err != nil {
		t.Fatal(err)
	}
	adminPost(t, s, "/unsubscribe?user=u4&topic=auth.u")
	select {
	case <-gone:
	case <-time.After(10 * time.Second):
		t.Fatal("no ServerUnsubscribeError")
	}
	if len(c.Topics()) != 0 {
		t.Fatalf("topics %v still held", c.Topics())
	}
}
