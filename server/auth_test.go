package server

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wspush/wspush/auth"
	"github.com/wspush/wspush/internal/testsupport"
)

// testSecret is the HMAC secret of the auth tests' servers.
var testSecret = []byte("server-auth-test-secret-0123456789abcdef")

const (
	testAudience = "wspush"
	testIssuer   = "https://backend.test"
)

// writeFile writes data to a new file in the test's directory.
func writeFile(t testing.TB, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// tokenClaims are the claims of a valid token for sub, living ttl, with
// the test audience and issuer; kv adds or replaces claims (a nil value
// removes one).
func tokenClaims(sub string, ttl time.Duration, kv ...any) jwt.MapClaims {
	now := time.Now()
	return testsupport.WithClaims(jwt.MapClaims{"sub": sub, "iat": now.Unix(), "exp": now.Add(ttl).Unix(), "aud": testAudience, "iss": testIssuer}, kv...)
}

// hs mints an HS256 token with the test secret.
func hs(t testing.TB, c jwt.Claims) string {
	return testsupport.Mint(t, jwt.SigningMethodHS256, testSecret, "", c)
}

// startAuthServer starts a server with the HMAC test secret, audience and
// issuer over cfg, logging at debug level into the returned buffer.
func startAuthServer(t testing.TB, cfg Config) (*Server, *logBuffer) {
	t.Helper()
	if cfg.AuthHMACSecretFile == "" && cfg.AuthPublicKeyFile == "" && cfg.AuthJWKSURL == "" {
		cfg.AuthHMACSecretFile = writeFile(t, "hmac.key", append(bytes.Clone(testSecret), '\n'))
	}
	if cfg.AuthAudience == "" {
		cfg.AuthAudience = testAudience
	}
	if cfg.AuthIssuer == "" {
		cfg.AuthIssuer = testIssuer
	}
	logs := &logBuffer{}
	cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return startServer(t, cfg), logs
}

// authAnswer is a handshake's answer: status, Content-Type and the
// "error" of a JSON body.
type authAnswer struct {
	status int
	ctype  string
	error  string
}

// authHandshake sends a WebSocket handshake for target with extra header
// lines and reads the answer.
func authHandshake(t *testing.T, s *Server, target string, extra ...string) authAnswer {
	t.Helper()
	resp, body, _ := hsExchange(t, s, hsWS(target, extra...))
	a := authAnswer{status: resp.StatusCode, ctype: resp.Header.Get("Content-Type")}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		var m map[string]string
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatalf("%s answered %d with %q: not JSON: %v", target, resp.StatusCode, body, err)
		}
		a.error = m["error"]
	}
	return a
}

func refusals(s *Server, r auth.Reason) float64 {
	return testutil.ToFloat64(s.auth.refusals.WithLabelValues(string(r)))
}

// ecKey is an ES256 key pair with its public key as a PEM file.
type ecKey struct {
	priv    *ecdsa.PrivateKey
	pemFile string
	pemData []byte
}

func newECKey(t testing.TB) ecKey {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	data := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	return ecKey{priv: priv, pemData: data, pemFile: writeFile(t, "ec.pem", data)}
}

// TestAuthHandshakeRefusals: each bad token is refused at the handshake
// with its 401 {"error":"<reason>"} (403 for a topic the token does not
// allow), in JSON, counted by reason; good tokens in the query or a Bearer
// header are upgraded; no token reaches the logs.
func TestAuthHandshakeRefusals(t *testing.T) {
	s, logs := startAuthServer(t, Config{})
	ec := newECKey(t)
	topics := []string{"news.*", "ticker"}
	good := hs(t, tokenClaims("42", time.Hour, "topics", topics))
	var tokens []string
	tok := func(v string) string { tokens = append(tokens, v); return v }
	tests := []struct {
		name   string
		target string
		header []string
		status int
		reason auth.Reason
	}{
		{"no token", "/ws", nil, 401, auth.ReasonMissing},
		{"not a JWT", "/ws?token=" + tok("abc.def"), nil, 401, auth.ReasonMalformed},
		{"bad signature", "/ws?token=" + tok(testsupport.Mint(t, jwt.SigningMethodHS256, []byte("another-secret-0123456789abcdefghij"), "", tokenClaims("42", time.Hour))), nil, 401, auth.ReasonBadSignature},
		{"alg none", "/ws?token=" + tok(testsupport.Mint(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "", tokenClaims("42", time.Hour))), nil, 401, auth.ReasonBadAlgorithm},
		{"ES256 without a public key", "/ws?token=" + tok(testsupport.Mint(t, jwt.SigningMethodES256, ec.priv, "", tokenClaims("42", time.Hour))), nil, 401, auth.ReasonBadAlgorithm},
		{"expired", "/ws?token=" + tok(hs(t, tokenClaims("42", -time.Minute))), nil, 401, auth.ReasonExpired},
		{"not yet valid", "/ws?token=" + tok(hs(t, tokenClaims("42", time.Hour, "nbf", time.Now().Add(time.Minute).Unix()))), nil, 401, auth.ReasonNotYetValid},
		{"issued in the future", "/ws?token=" + tok(hs(t, tokenClaims("42", time.Hour, "iat", time.Now().Add(time.Minute).Unix()))), nil, 401, auth.ReasonNotYetValid},
		{"wrong audience", "/ws?token=" + tok(hs(t, tokenClaims("42", time.Hour, "aud", "other"))), nil, 401, auth.ReasonBadAudience},
		{"wrong issuer", "/ws?token=" + tok(hs(t, tokenClaims("42", time.Hour, "iss", "https://evil.test"))), nil, 401, auth.ReasonBadIssuer},
		{"no sub", "/ws?token=" + tok(hs(t, tokenClaims("42", time.Hour, "sub", nil))), nil, 401, auth.ReasonMissingClaim},
		{"no exp", "/ws?token=" + tok(hs(t, tokenClaims("42", time.Hour, "exp", nil))), nil, 401, auth.ReasonMissingClaim},
		{"bad pattern", "/ws?token=" + tok(hs(t, tokenClaims("42", time.Hour, "topics", []string{"a*b"}))), nil, 401, auth.ReasonBadClaim},
		{"both query and header", "/ws?token=" + tok(good), []string{"Authorization: Bearer " + good}, 401, auth.ReasonMalformed},
		{"empty bearer", "/ws", []string{"Authorization: Bearer "}, 401, auth.ReasonMalformed},
		{"topic not allowed", "/ws?topics=news.a,secret&token=" + tok(good), nil, 403, auth.ReasonForbidden},
		{"personal topic of another user", "/ws?topics=inbox%237&token=" + tok(good), nil, 403, auth.ReasonNotOwner},
		{"good token in the query", "/ws?topics=news.a,ticker,inbox%2342&token=" + tok(good), nil, 101, ""},
		{"good token in a Bearer header", "/ws?topics=news.sport.uk", []string{"Authorization: Bearer " + tok(good)}, 101, ""},
		{"another scheme is ignored", "/ws?token=" + tok(good), []string{"Authorization: Basic dXNlcjpwYXNz"}, 101, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := refusals(s, tt.reason)
			a := authHandshake(t, s, tt.target, tt.header...)
			if a.status != tt.status || a.error != string(tt.reason) {
				t.Fatalf("answered %d %q, want %d %q", a.status, a.error, tt.status, tt.reason)
			}
			if tt.status == 101 {
				return
			}
			if a.ctype != "application/json" {
				t.Fatalf("Content-Type %q, want application/json", a.ctype)
			}
			if got := refusals(s, tt.reason); got != before+1 {
				t.Fatalf("wspush_auth_refusals_total{reason=%q} went from %v to %v", tt.reason, before, got)
			}
		})
	}
	out := logs.String()
	if !strings.Contains(out, "handshake refused by auth") {
		t.Fatal("the debug log has no refusal: the check below would prove nothing")
	}
	for _, tk := range tokens {
		for _, part := range strings.Split(tk, ".") {
			if len(part) > 8 && strings.Contains(out, part) {
				t.Fatalf("a token segment %q is in the logs", part)
			}
		}
	}
}

// TestAuthAlgorithmConfusion: with only an ES256 public key configured, an
// HS256 token "signed" with the bytes of that public key is refused, and a
// real ES256 token is accepted.
func TestAuthAlgorithmConfusion(t *testing.T) {
	ec := newECKey(t)
	s, _ := startAuthServer(t, Config{AuthPublicKeyFile: ec.pemFile})
	forged := testsupport.Mint(t, jwt.SigningMethodHS256, ec.pemData, "", tokenClaims("42", time.Hour))
	if a := authHandshake(t, s, "/ws?token="+forged); a.status != 401 || a.error != string(auth.ReasonBadAlgorithm) {
		t.Fatalf("HS256 signed with the public key: %d %q, want 401 bad_algorithm", a.status, a.error)
	}
	real := testsupport.Mint(t, jwt.SigningMethodES256, ec.priv, "", tokenClaims("42", time.Hour))
	if a := authHandshake(t, s, "/ws?token="+real); a.status != 101 {
		t.Fatalf("ES256 token: %d %q, want 101", a.status, a.error)
	}
}

// TestAuthBadKeyFileFailsStart: a bad key file stops New with an error
// naming the flag.
func TestAuthBadKeyFileFailsStart(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"missing secret file", Config{AuthHMACSecretFile: filepath.Join(t.TempDir(), "none")}, "-auth-hmac-secret-file"},
		{"short secret", Config{AuthHMACSecretFile: writeFile(t, "short", []byte("too short"))}, "-auth-hmac-secret-file"},
		{"not a PEM", Config{AuthPublicKeyFile: writeFile(t, "bad.pem", []byte("hello"))}, "-auth-public-key-file"},
		{"anonymous topics without a key", Config{AuthAnonymousTopics: []string{"a"}}, "need a key"},
		{"per-user limit without auth", Config{MaxConnsPerUser: 2}, "needs auth"},
		{"relative JWKS URL", Config{AuthJWKSURL: "/keys"}, "JWKS URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Listen, tt.cfg.Admin = "127.0.0.1:0", ""
			s, err := New(tt.cfg)
			if err == nil {
				s.Close()
				t.Fatal("New succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not name %q", err, tt.want)
			}
		})
	}
}

// dialToken opens a WebSocket with the token in the query.
func dialToken(t testing.TB, s *Server, token, query string) *websocket.Conn {
	t.Helper()
	return dial(t, s, "/ws?token="+url.QueryEscape(token)+query)
}

// expectReply reads one message and checks its fields.
func expectReply(t testing.TB, c *websocket.Conn, want map[string]any) map[string]any {
	t.Helper()
	m := testsupport.ReadJSON(t, c)
	for k, v := range want {
		if m[k] != v {
			t.Fatalf("got %v, want %v", m, want)
		}
	}
	return m
}

// TestAuthCommandRefusals: a sub the token does not allow is answered
// {"op":"error","error":"<reason>","topic":"<topic>"} for that topic while
// the others are subscribed; a pub likewise.
func TestAuthCommandRefusals(t *testing.T) {
	s, _ := startAuthServer(t, Config{ClientPublish: true})
	tok := hs(t, tokenClaims("42", time.Hour, "topics", []string{"news.*", "chat.*"}, "publish", []string{"chat.*"}))
	c := dialToken(t, s, tok, "")
	before := refusals(s, auth.ReasonForbidden)
	sendJSON(t, c, `{"op":"sub","topics":["news.a","secret","inbox#42","inbox#7","chat.x"]}`)
	expectReply(t, c, map[string]any{"op": "subscribed", "topic": "news.a"})
	expectReply(t, c, map[string]any{"op": "error", "error": "forbidden", "topic": "secret"})
	expectReply(t, c, map[string]any{"op": "subscribed", "topic": "inbox#42"})
	expectReply(t, c, map[string]any{"op": "error", "error": "not_owner", "topic": "inbox#7"})
	expectReply(t, c, map[string]any{"op": "subscribed", "topic": "chat.x"})
	if got := refusals(s, auth.ReasonForbidden); got != before+1 {
		t.Fatalf("forbidden refusals %v, want %v", got, before+1)
	}
	// A resume from a position is checked like any subscription.
	sendJSON(t, c, `{"op":"sub","topics":["secret","news.b"],"since":{"secret":{"epoch":"x","seq":0},"news.b":{"epoch":"x","seq":0}}}`)
	expectReply(t, c, map[string]any{"op": "error", "error": "forbidden", "topic": "secret"})
	expectReply(t, c, map[string]any{"op": "subscribed", "topic": "news.b"})
	if got := refusals(s, auth.ReasonForbidden); got != before+2 {
		t.Fatalf("forbidden refusals %v, want %v", got, before+2)
	}

	sendJSON(t, c, `{"op":"pub","topic":"news.a","data":1}`)
	expectReply(t, c, map[string]any{"op": "error", "error": "forbidden", "topic": "news.a"})
	sendJSON(t, c, `{"op":"pub","topic":"inbox#42","data":1}`) // own, but no publish pattern
	expectReply(t, c, map[string]any{"op": "error", "error": "forbidden", "topic": "inbox#42"})
	sendJSON(t, c, `{"op":"pub","topic":"chat.x","data":"hi"}`)
	if m := testsupport.ReadJSON(t, c); m["topic"] != "chat.x" || m["data"] != "hi" {
		t.Fatalf("got %v, want the push of the allowed pub", m)
	}
	// Backends publish to personal topics like to any other.
	if code, _ := publish(t, s, "inbox%2342", `"for 42"`); code != 200 {
		t.Fatalf("admin publish: %d", code)
	}
	if m := testsupport.ReadJSON(t, c); m["topic"] != "inbox#42" || m["data"] != "for 42" {
		t.Fatalf("got %v, want the personal push", m)
	}
}

// TestAuthAnonymous: without a token a connection is refused unless
// -auth-anonymous-topics lists what it may subscribe to.
func TestAuthAnonymous(t *testing.T) {
	s, _ := startAuthServer(t, Config{AuthAnonymousTopics: []string{"public.*"}})
	if a := authHandshake(t, s, "/ws?topics=private"); a.status != 403 || a.error != "forbidden" {
		t.Fatalf("anonymous ?topics=private: %d %q, want 403 forbidden", a.status, a.error)
	}
	if a := authHandshake(t, s, "/ws?token=bad"); a.status != 401 || a.error != "malformed" {
		t.Fatalf("a bad token is not downgraded to anonymous: %d %q", a.status, a.error)
	}
	c := dial(t, s, "/ws?topics=public.ticker")
	expectReply(t, c, map[string]any{"op": "subscribed", "topic": "public.ticker"})
	sendJSON(t, c, `{"op":"sub","topics":["private","inbox#"]}`)
	expectReply(t, c, map[string]any{"op": "error", "error": "forbidden", "topic": "private"})
	expectReply(t, c, map[string]any{"op": "error", "error": "not_owner", "topic": "inbox#"})
	sendJSON(t, c, `{"op":"refresh","token":"`+hs(t, tokenClaims("42", time.Hour))+`"}`)
	expectReply(t, c, map[string]any{"op": "error", "error": "sub_mismatch"})
}

// TestAuthRefresh: a refresh with a token of the same sub is answered
// refreshed with its exp; subscriptions it no longer allows end with
// unsubscribed; the connection outlives the first token's exp; refused
// refreshes leave the connection as it was.
func TestAuthRefresh(t *testing.T) {
	s, _ := startAuthServer(t, Config{})
	first := tokenClaims("42", 2*time.Second, "topics", []string{"a", "b"})
	c := dialToken(t, s, hs(t, first), "&topics=a,b")
	expectReply(t, c, map[string]any{"op": "subscribed", "topic": "a"})
	expectReply(t, c, map[string]any{"op": "subscribed", "topic": "b"})

	sendJSON(t, c, `{"op":"refresh","token":"`+hs(t, tokenClaims("7", time.Hour, "topics", []string{"a", "b"}))+`"}`)
	expectReply(t, c, map[string]any{"op": "error", "error": "sub_mismatch"})
	sendJSON(t, c, `{"op":"refresh","token":"`+testsupport.Mint(t, jwt.SigningMethodHS256, []byte("another-secret-0123456789abcdefghij"), "", tokenClaims("42", time.Hour))+`"}`)
	expectReply(t, c, map[string]any{"op": "error", "error": "bad_signature"})
	sendJSON(t, c, `{"op":"refresh","token":"`+hs(t, tokenClaims("42", -time.Second))+`"}`)
	expectReply(t, c, map[string]any{"op": "error", "error": "expired"})

	next := tokenClaims("42", time.Hour, "topics", []string{"a"})
	sendJSON(t, c, `{"op":"refresh","token":"`+hs(t, next)+`"}`)
	expectReply(t, c, map[string]any{"op": "unsubscribed", "topic": "b"})
	expectReply(t, c, map[string]any{"op": "refreshed", "exp": float64(next["exp"].(int64))})

	// Past the first token's exp the connection is still open, on a.
	time.Sleep(time.Until(time.Unix(first["exp"].(int64), 0)) + 500*time.Millisecond)
	publish(t, s, "b", `"gone"`)
	publish(t, s, "a", `"kept"`)
	if m := testsupport.ReadJSON(t, c); m["topic"] != "a" || m["data"] != "kept" {
		t.Fatalf("got %v, want the push on a only", m)
	}
	sendJSON(t, c, `{"op":"sub","topics":["b"]}`)
	expectReply(t, c, map[string]any{"op": "error", "error": "forbidden", "topic": "b"})
}

// TestAuthExpiryCloses4001: at the token's exp without a refresh the server
// closes with 4001 "token expired", before the ping or idle deadlines.
func TestAuthExpiryCloses4001(t *testing.T) {
	s, _ := startAuthServer(t, Config{PingInterval: time.Minute, IdleTimeout: 2 * time.Minute})
	claims := tokenClaims("42", 2*time.Second, "topics", []string{"a"})
	c := dialToken(t, s, hs(t, claims), "&topics=a")
	expectReply(t, c, map[string]any{"op": "subscribed", "topic": "a"})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _, err := c.Read(ctx)
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != 4001 || ce.Reason != "token expired" {
		t.Fatalf("read ended with %v, want close 4001 \"token expired\"", err)
	}
	if exp := time.Unix(claims["exp"].(int64), 0); time.Now().Before(exp) {
		t.Fatalf("closed before exp %v", exp)
	}
	testsupport.WaitFor(t, "the connection to close", func() bool { return s.Conns() == 0 })
}

// jwksServer is a real HTTP JWKS endpoint whose key set the test changes.
type jwksServer struct {
	*httptest.Server
	mu   sync.Mutex
	body []byte
	hits int
}

func newJWKSServer(t *testing.T) *jwksServer {
	j := &jwksServer{}
	j.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		j.mu.Lock()
		defer j.mu.Unlock()
		j.hits++
		w.Header().Set("Content-Type", "application/json")
		w.Write(j.body)
	}))
	t.Cleanup(j.Close)
	return j
}

// serve makes the endpoint serve the public keys of keys, by kid.
func (j *jwksServer) serve(t *testing.T, keys map[string]*ecdsa.PrivateKey) {
	t.Helper()
	set := jwk.NewSet()
	for kid, k := range keys {
		key, err := jwk.Import(&k.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		key.Set(jwk.KeyIDKey, kid)
		set.AddKey(key)
	}
	body, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	j.mu.Lock()
	j.body = body
	j.mu.Unlock()
}

// TestAuthJWKSRotation: the server verifies tokens with the keys of a real
// HTTP JWKS endpoint; after the endpoint adds a second key, a token signed
// with it connects (its unknown kid asks for a refresh in the background),
// and tokens of the first key still do.
func TestAuthJWKSRotation(t *testing.T) {
	k1, k2 := newECKey(t).priv, newECKey(t).priv
	j := newJWKSServer(t)
	j.serve(t, map[string]*ecdsa.PrivateKey{"k1": k1})
	s, _ := startAuthServer(t, Config{AuthJWKSURL: j.URL})
	tok1 := testsupport.Mint(t, jwt.SigningMethodES256, k1, "k1", tokenClaims("42", time.Hour))
	tok2 := testsupport.Mint(t, jwt.SigningMethodES256, k2, "k2", tokenClaims("42", time.Hour))
	connects := func(tok string) func() bool {
		return func() bool { return authHandshake(t, s, "/ws?token="+tok).status == 101 }
	}
	testsupport.WaitFor(t, "the first JWKS fetch", connects(tok1))
	if a := authHandshake(t, s, "/ws?token="+tok2); a.status != 401 || a.error != "unknown_key" {
		t.Fatalf("a token of a key not yet published: %d %q, want 401 unknown_key", a.status, a.error)
	}

	j.serve(t, map[string]*ecdsa.PrivateKey{"k1": k1, "k2": k2})
	// The refusal above spent the early refresh; the next one comes at most
	// auth.DefaultJWKSUnknownKIDRefresh later, asked for by the polls.
	deadline := time.Now().Add(auth.DefaultJWKSUnknownKIDRefresh + 20*time.Second)
	for !connects(tok2)() {
		if time.Now().After(deadline) {
			t.Fatal("the rotated key was never fetched")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if a := authHandshake(t, s, "/ws?token="+tok1); a.status != 101 {
		t.Fatalf("a token of the first key after the rotation: %d %q", a.status, a.error)
	}
	forged := testsupport.Mint(t, jwt.SigningMethodES256, k1, "k2", tokenClaims("42", time.Hour)) // k1's signature, k2's kid
	if a := authHandshake(t, s, "/ws?token="+forged); a.status != 401 || a.error != "bad_signature" {
		t.Fatalf("a token under the wrong kid: %d %q, want 401 bad_signature", a.status, a.error)
	}
}

// TestMaxConnsPerUser: past -max-conns-per-user the handshake is answered
// 429; other users are unaffected; a closed connection frees its slot.
func TestMaxConnsPerUser(t *testing.T) {
	s, _ := startAuthServer(t, Config{MaxConnsPerUser: 2})
	tok42 := hs(t, tokenClaims("42", time.Hour))
	c1 := dialToken(t, s, tok42, "")
	dialToken(t, s, tok42, "")
	a := authHandshake(t, s, "/ws?token="+tok42)
	if a.status != http.StatusTooManyRequests || a.ctype != "application/json" || a.error != errTooManyUserConns {
		t.Fatalf("third connection of user 42: %+v, want 429 JSON", a)
	}
	dialToken(t, s, hs(t, tokenClaims("7", time.Hour)), "")
	c1.Close(websocket.StatusNormalClosure, "")
	testsupport.WaitFor(t, "user 42's slot to free", func() bool { return authHandshake(t, s, "/ws?token="+tok42).status == 101 })
}

// adminDo sends an admin API request and decodes the JSON answer.
func adminDo(t testing.TB, s *Server, method, pathAndQuery string, header ...string) (int, map[string]any) {
	t.Helper()
	resp := adminRequest(t, s, method, pathAndQuery, header...)
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatalf("%s %s: answer not JSON: %v", method, pathAndQuery, err)
	}
	return resp.StatusCode, m
}

// readClose reads until the connection ends and returns its close code.
func readClose(t testing.TB, c *websocket.Conn) websocket.StatusCode {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		if _, _, err := c.Read(ctx); err != nil {
			return websocket.CloseStatus(err)
		}
	}
}

// TestServerAPI: /disconnect, /unsubscribe, /topics and /presence on one
// node, behind the admin token.
func TestServerAPI(t *testing.T) {
	const adminToken = "admin-secret"
	s, _ := startAuthServer(t, Config{PublishToken: adminToken, Loops: 2})
	bearer := []string{"Authorization", "Bearer " + adminToken}
	all := []string{"*"}
	var u42 []*websocket.Conn
	for range 3 { // spread over both loops
		c := dialToken(t, s, hs(t, tokenClaims("42", time.Hour, "topics", all)), "&topics=a,b")
		expectReply(t, c, map[string]any{"topic": "a"})
		expectReply(t, c, map[string]any{"topic": "b"})
		u42 = append(u42, c)
	}
	c7 := dialToken(t, s, hs(t, tokenClaims("7", time.Hour, "topics", all)), "&topics=a,c")
	expectReply(t, c7, map[string]any{"topic": "a"})
	expectReply(t, c7, map[string]any{"topic": "c"})

	for _, p := range []string{"/disconnect?user=42", "/unsubscribe?user=7&topic=a", "/topics", "/presence?topic=a"} {
		method := http.MethodGet
		if strings.HasPrefix(p, "/disconnect") || strings.HasPrefix(p, "/unsubscribe") {
			method = http.MethodPost
		}
		if code, _ := adminDo(t, s, method, p); code != http.StatusUnauthorized {
			t.Fatalf("%s without the admin token: %d, want 401", p, code)
		}
	}

	code, m := adminDo(t, s, http.MethodGet, "/topics", bearer...)
	want := `[{"subscribers":4,"topic":"a"},{"subscribers":3,"topic":"b"},{"subscribers":1,"topic":"c"}]`
	if got, _ := json.Marshal(m["topics"]); code != 200 || string(got) != want || m["count"] != 3.0 {
		t.Fatalf("/topics: %d %v, want %s", code, m, want)
	}
	if _, m = adminDo(t, s, http.MethodGet, "/topics?prefix=b", bearer...); m["count"] != 1.0 {
		t.Fatalf("/topics?prefix=b: %v", m)
	}
	code, m = adminDo(t, s, http.MethodGet, "/presence?topic=a", bearer...)
	if got, _ := json.Marshal(m["users"]); code != 200 || m["count"] != 2.0 || string(got) != `["42","7"]` || m["connections"] != 4.0 {
		t.Fatalf("/presence?topic=a: %d %v", code, m)
	}
	if _, m = adminDo(t, s, http.MethodGet, "/presence?topic=a&limit=1", bearer...); m["count"] != 2.0 || len(m["users"].([]any)) != 1 {
		t.Fatalf("/presence?topic=a&limit=1: %v", m)
	}
	if code, _ = adminDo(t, s, http.MethodGet, "/presence", bearer...); code != http.StatusBadRequest {
		t.Fatalf("/presence without a topic: %d", code)
	}

	code, m = adminDo(t, s, http.MethodPost, "/unsubscribe?user=7&topic=a", bearer...)
	if code != 200 || m["unsubscribed"] != 1.0 {
		t.Fatalf("/unsubscribe: %d %v", code, m)
	}
	expectReply(t, c7, map[string]any{"op": "unsubscribed", "topic": "a"})
	publish(t, s, "a", `"a"`, bearer...)
	publish(t, s, "c", `"c"`, bearer...)
	if m := testsupport.ReadJSON(t, c7); m["topic"] != "c" {
		t.Fatalf("user 7 got %v, want only the push on c", m)
	}

	code, m = adminDo(t, s, http.MethodPost, "/disconnect?user=42", bearer...)
	if code != 200 || m["user"] != "42" || m["disconnected"] != 3.0 {
		t.Fatalf("/disconnect: %d %v", code, m)
	}
	for _, c := range u42 {
		if code := readClose(t, c); code != 4002 {
			t.Fatalf("user 42's connection closed with %d, want 4002", code)
		}
	}
	if _, m = adminDo(t, s, http.MethodPost, "/disconnect?user=42", bearer...); m["disconnected"] != 0.0 {
		t.Fatalf("second /disconnect: %v", m)
	}
	if code, _ = adminDo(t, s, http.MethodGet, "/disconnect?user=42", bearer...); code != http.StatusMethodNotAllowed {
		t.Fatalf("GET /disconnect: %d", code)
	}
	// User 7 is untouched.
	publish(t, s, "c", `"still"`, bearer...)
	if m := testsupport.ReadJSON(t, c7); m["data"] != "still" {
		t.Fatalf("user 7 got %v", m)
	}
	testsupport.WaitFor(t, "user 42's connections to close", func() bool { return s.Conns() == 1 })
	if _, m = adminDo(t, s, http.MethodGet, "/presence?topic=b", bearer...); m["count"] != 0.0 {
		t.Fatalf("/presence?topic=b after the disconnect: %v", m)
	}
}

// TestServerAPICluster: on a 3-node cluster with a real NATS server,
// /disconnect on one node closes the user's connections on every node with
// 4002, and /unsubscribe on one ends the user's subscription on every node;
// other users are untouched.
func TestServerAPICluster(t *testing.T) {
	ns := testsupport.StartNATS(t, -1, t.TempDir())
	var nodes []*Server
	for range 3 {
		s, _ := startAuthServer(t, Config{Broker: ns.ClientURL()})
		nodes = append(nodes, s)
	}
	for i, s := range nodes {
		testsupport.WaitFor(t, fmt.Sprintf("node %d healthy", i), func() bool { code, _ := health(t, s); return code == http.StatusOK })
	}
	all := []string{"*"}
	var u42 []*websocket.Conn
	for _, s := range nodes {
		c := dialToken(t, s, hs(t, tokenClaims("42", time.Hour, "topics", all)), "&topics=a")
		expectReply(t, c, map[string]any{"op": "subscribed", "topic": "a"})
		u42 = append(u42, c)
	}
	var u7 []*websocket.Conn
	for _, s := range nodes {
		c := dialToken(t, s, hs(t, tokenClaims("7", time.Hour, "topics", all)), "&topics=a,b")
		expectReply(t, c, map[string]any{"topic": "a"})
		expectReply(t, c, map[string]any{"topic": "b"})
		u7 = append(u7, c)
	}

	code, m := adminDo(t, nodes[1], http.MethodPost, "/unsubscribe?user=7&topic=a")
	if code != 200 || m["unsubscribed"] != 1.0 {
		t.Fatalf("/unsubscribe on node 1: %d %v, want this node's 1", code, m)
	}
	for i, c := range u7 {
		if m := testsupport.ReadJSON(t, c); m["op"] != "unsubscribed" || m["topic"] != "a" {
			t.Fatalf("user 7 on node %d got %v, want unsubscribed from a", i, m)
		}
	}

	code, m = adminDo(t, nodes[0], http.MethodPost, "/disconnect?user=42")
	if code != 200 || m["user"] != "42" || m["disconnected"] != 1.0 {
		t.Fatalf("/disconnect on node 0: %d %v, want this node's 1", code, m)
	}
	for i, c := range u42 {
		if code := readClose(t, c); code != 4002 {
			t.Fatalf("user 42 on node %d closed with %d, want 4002", i, code)
		}
	}
	// User 7 is still connected everywhere, on b only.
	clusterPublish(t, nodes[2], "a", `"a"`)
	clusterPublish(t, nodes[2], "b", `"b"`)
	for i, c := range u7 {
		if p := readPush(t, c); p.Topic != "b" {
			t.Fatalf("user 7 on node %d got a push on %q, want only b", i, p.Topic)
		}
	}
}
