package web

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/golang-jwt/jwt/v5"

	"github.com/wspush/wspush/internal/browsertest"
)

// tokenBackend is the page's backend: it serves the test page and mints
// short-lived HS256 tokens at /token, or answers 503 while failing is set.
type tokenBackend struct {
	*httptest.Server
	secret  []byte
	ttl     time.Duration
	failing atomic.Bool
	minted  atomic.Int32
}

func newTokenBackend(t *testing.T, secret []byte, ttl time.Duration, page func() string) *tokenBackend {
	b := &tokenBackend{secret: secret, ttl: ttl}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/":
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprint(w, page())
		case "/token":
			w.Header().Set("Cache-Control", "no-store")
			if b.failing.Load() {
				http.Error(w, "identity provider down", http.StatusServiceUnavailable)
				return
			}
			now := time.Now()
			tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
				"sub": "browser-user", "iat": now.Unix(), "exp": now.Add(b.ttl).Unix(), "topics": []string{"auth.*"},
			}).SignedString(b.secret)
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			b.minted.Add(1)
			fmt.Fprint(w, tok)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(b.Close)
	return b
}

// authPage loads wspush.js from the server and connects with getToken, a
// fetch of the backend's /token; it records every event in window.events
// and the pushes of auth.t in window.pushes.
const authPage = `<!doctype html><title>wspush auth</title>
<p id="state"></p><ul id="log"></ul>
<script src="http://%[1]s/wspush.js"></script>
<script>
window.events = [];
window.pushes = [];
const client = new WSPush("ws://%[1]s/ws", {
  minDelay: 100, maxDelay: 500,
  getToken: () => fetch("/token").then(r => { if (!r.ok) throw new Error("token: HTTP " + r.status); return r.text(); }),
});
for (const e of ["open", "close", "refreshed", "denied", "error", "subscribed", "unsubscribed"]) {
  client.on(e, d => {
    const rec = Object.assign({ event: e }, d);
    window.events.push(rec);
    const li = document.createElement("li");
    li.textContent = JSON.stringify(rec);
    document.getElementById("log").append(li);
  });
}
client.on("state", d => { document.getElementById("state").textContent = d.state; });
client.subscribe("auth.t", data => window.pushes.push(data));
client.subscribe("secret.x");
</script>`

// count is a page expression: the number of recorded events of a kind
// (and, when code is not 0, of that close code).
func count(event string, code int) string {
	if code != 0 {
		return fmt.Sprintf(`window.events.filter(e => e.event === %q && e.code === %d).length`, event, code)
	}
	return fmt.Sprintf(`window.events.filter(e => e.event === %q).length`, event)
}

// TestBrowserTokenRefreshAndExpiry: a page whose tokens live 3 s keeps its
// subscription across two refreshes on the open connection; when the token
// source fails, the server closes with 4001 at exp and the page reconnects
// with a new token and resubscribes. A topic the token does not allow is a
// denied event.
func TestBrowserTokenRefreshAndExpiry(t *testing.T) {
	secret := []byte("browser-test-secret-0123456789abcdef")
	keyFile := filepath.Join(t.TempDir(), "hmac.key")
	if err := os.WriteFile(keyFile, secret, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := browsertest.New(t)
	var srv *server
	backend := newTokenBackend(t, secret, 3*time.Second, func() string { return fmt.Sprintf(authPage, srv.addr) })
	// The page comes from the backend's origin, not the server's.
	srv = startServer(t, serverBinary(t), "-auth-hmac-secret-file", keyFile, "-allowed-origins", backend.URL)

	browsertest.Do(t, ctx, chromedp.Navigate(backend.URL+"/"))
	waitFor(t, ctx, "the subscription", `window.events.some(e => e.event === "subscribed" && e.topic === "auth.t")`)
	waitFor(t, ctx, "the refused topic", `window.events.some(e => e.event === "denied" && e.topic === "secret.x" && e.reason === "forbidden")`)

	// Two refreshes on the open connection: no close, pushes still arrive.
	waitFor(t, ctx, "two refreshes", count("refreshed", 0)+" >= 2")
	if n := browsertest.Eval[int](t, ctx, count("close", 0)); n != 0 {
		t.Fatalf("%d closes across the refreshes, want 0", n)
	}
	if n := srv.publish("auth.t", "after two refreshes"); n != 1 {
		t.Fatalf("publish reached %d subscribers, want 1", n)
	}
	waitFor(t, ctx, "the push after the refreshes", `window.pushes.includes("after two refreshes")`)

	// The token source fails: no refresh, so the server closes with 4001 at
	// exp; once it works again the page reconnects with a new token.
	backend.failing.Store(true)
	waitFor(t, ctx, "the expiry close 4001", count("close", 4001)+" === 1")
	backend.failing.Store(false)
	waitFor(t, ctx, "the reconnect", count("open", 0)+" === 2")
	waitFor(t, ctx, "the resubscription", `window.events.filter(e => e.event === "subscribed" && e.topic === "auth.t").length === 2`)
	if n := srv.publish("auth.t", "after the expiry"); n != 1 {
		t.Fatalf("publish after the reconnect reached %d subscribers, want 1", n)
	}
	waitFor(t, ctx, "the push after the reconnect", `window.pushes.includes("after the expiry")`)
	if n := browsertest.Eval[int](t, ctx, count("close", 0)); n != 1 {
		t.Fatalf("%d closes, want only the 4001", n)
	}
}
