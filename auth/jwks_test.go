package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/wspush/wspush/internal/testsupport"
)

// pollTimeout bounds every wait for background work; tests poll for the
// state they want and fail only when it has not come by then.
const pollTimeout = 15 * time.Second

// jwksServer is a real HTTP JWKS endpoint on loopback whose key set the
// test switches. While gate is closed-off (holding a channel), requests
// wait on it, so a test can hold a fetch in flight.
type jwksServer struct {
	*httptest.Server
	body     atomic.Pointer[[]byte]
	status   atomic.Int32
	requests atomic.Int64
	gate     atomic.Pointer[chan struct{}]
}

type jwksKey struct {
	kid string
	alg string // "" leaves the JWK without alg
	pub crypto.PublicKey
}

func newJWKSServer(t *testing.T, keys ...jwksKey) *jwksServer {
	t.Helper()
	s := &jwksServer{}
	s.status.Store(http.StatusOK)
	s.serve(t, keys...)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		if g := s.gate.Load(); g != nil {
			select {
			case <-*g:
			case <-r.Context().Done():
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(int(s.status.Load()))
		w.Write(*s.body.Load())
	}))
	t.Cleanup(s.Close)
	return s
}

// serve switches the key set the endpoint serves.
func (s *jwksServer) serve(t *testing.T, keys ...jwksKey) {
	t.Helper()
	set := jwk.NewSet()
	for _, k := range keys {
		key, err := jwk.Import(k.pub)
		if err != nil {
			t.Fatal(err)
		}
		if err := key.Set(jwk.KeyIDKey, k.kid); err != nil {
			t.Fatal(err)
		}
		if k.alg != "" {
			if err := key.Set(jwk.AlgorithmKey, k.alg); err != nil {
				t.Fatal(err)
			}
		}
		if err := set.AddKey(key); err != nil {
			t.Fatal(err)
		}
	}
	body, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	s.serveRaw(body)
}

func (s *jwksServer) serveRaw(body []byte) { s.body.Store(&body) }

// waitFor polls cond until it holds or pollTimeout passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(pollTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, pollTimeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func waitReady(t *testing.T, v *Verifier) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), pollTimeout)
	defer cancel()
	if err := v.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
}

func newECKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// jwksConfig is a JWKS config whose unknown-kid refreshes are not delayed
// and whose scheduled refreshes do not happen during the test.
func jwksConfig(url string) Config {
	return Config{JWKSURL: url, JWKSUnknownKIDRefresh: time.Millisecond, JWKSMinRefresh: time.Hour}
}

// TestJWKSVerify: an endpoint serving two keys (RSA and EC); tokens pick
// theirs by kid, and each key accepts only its algorithms.
func TestJWKSVerify(t *testing.T) {
	k := newTestKeys(t)
	other := newECKey(t)
	srv := newJWKSServer(t,
		jwksKey{"rsa-1", "RS256", &k.rsa.PublicKey},
		jwksKey{"ec-1", "", &k.ec256.PublicKey},
	)
	v := newVerifier(t, jwksConfig(srv.URL))
	waitReady(t, v)
	if st := v.JWKSStatus(); st.Keys != 2 || st.Fetches < 1 || st.Fetched.IsZero() {
		t.Fatalf("status %+v", st)
	}
	c := claims("42")
	accepted := []struct {
		name  string
		token string
	}{
		{"RSA key", testsupport.Mint(t, jwt.SigningMethodRS256, k.rsa, "rsa-1", c)},
		{"EC key", testsupport.Mint(t, jwt.SigningMethodES256, k.ec256, "ec-1", c)},
	}
	for _, tt := range accepted {
		if got, err := v.Verify(tt.token); err != nil || got.Subject != "42" {
			t.Errorf("%s: %v, %v", tt.name, got, err)
		}
	}
	refused := []struct {
		name  string
		token string
		want  Reason
	}{
		{"EC kid, other EC key", testsupport.Mint(t, jwt.SigningMethodES256, other, "ec-1", c), ReasonBadSignature},
		{"RSA kid, ES256", testsupport.Mint(t, jwt.SigningMethodES256, k.ec256, "rsa-1", c), ReasonBadAlgorithm},
		{"RSA key limited to RS256, PS256", testsupport.Mint(t, jwt.SigningMethodPS256, k.rsa, "rsa-1", c), ReasonBadAlgorithm},
		{"HS256 with the RSA key's PEM", testsupport.Mint(t, jwt.SigningMethodHS256, pemOf(t, &k.rsa.PublicKey), "rsa-1", c), ReasonBadAlgorithm},
		{"alg none", testsupport.Mint(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "ec-1", c), ReasonBadAlgorithm},
		{"no kid", testsupport.Mint(t, jwt.SigningMethodES256, k.ec256, "", c), ReasonUnknownKey},
		{"unknown kid", testsupport.Mint(t, jwt.SigningMethodES256, k.ec256, "nope", c), ReasonUnknownKey},
		{"expired", testsupport.Mint(t, jwt.SigningMethodES256, k.ec256, "ec-1", testsupport.WithClaims(c, "exp", testNow.Add(-time.Hour).Unix())), ReasonExpired},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			_, err := v.Verify(tt.token)
			checkRefusal(t, err, tt.want, tt.token)
		})
	}
}

// TestJWKSSkipsUnusableKeys: symmetric keys, keys without kid and keys for
// encryption are not used; the others are.
func TestJWKSSkipsUnusableKeys(t *testing.T) {
	k := newTestKeys(t)
	good, err := jwk.Import(&k.ec256.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	good.Set(jwk.KeyIDKey, "good")
	enc, _ := jwk.Import(&k.ec384.PublicKey)
	enc.Set(jwk.KeyIDKey, "enc")
	enc.Set(jwk.KeyUsageKey, "enc")
	noKID, _ := jwk.Import(&k.rsa.PublicKey)
	ed, _ := jwk.Import(k.ed.Public())
	ed.Set(jwk.KeyIDKey, "ed")
	oct, _ := jwk.Import(k.secret)
	oct.Set(jwk.KeyIDKey, "oct")
	set := jwk.NewSet()
	for _, key := range []jwk.Key{good, enc, noKID, ed, oct} {
		if err := set.AddKey(key); err != nil {
			t.Fatal(err)
		}
	}
	body, _ := json.Marshal(set)
	srv := newJWKSServer(t)
	srv.serveRaw(body)
	v := newVerifier(t, jwksConfig(srv.URL))
	waitReady(t, v)
	if st := v.JWKSStatus(); st.Keys != 2 {
		t.Fatalf("status %+v, want 2 usable keys", st)
	}
	// The oct key's secret must not verify HS256 tokens.
	tok := testsupport.Mint(t, jwt.SigningMethodHS256, k.secret, "oct", claims("42"))
	_, err = v.Verify(tok)
	checkRefusal(t, err, ReasonBadAlgorithm, tok)
	if _, err := v.Verify(testsupport.Mint(t, jwt.SigningMethodES256, k.ec256, "good", claims("42"))); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(testsupport.Mint(t, jwt.SigningMethodEdDSA, k.ed, "ed", claims("42"))); err != nil {
		t.Fatal(err)
	}
	tok = testsupport.Mint(t, jwt.SigningMethodES384, k.ec384, "enc", claims("42"))
	_, err = v.Verify(tok)
	checkRefusal(t, err, ReasonUnknownKey, tok)
}

// TestJWKSConcurrentRotation: event loops verify in parallel while the set
// is refetched under them (run with -race).
func TestJWKSConcurrentRotation(t *testing.T) {
	a, b := newECKey(t), newECKey(t)
	srv := newJWKSServer(t, jwksKey{"a", "ES256", &a.PublicKey})
	v := newVerifier(t, jwksConfig(srv.URL))
	waitReady(t, v)
	tokA := testsupport.Mint(t, jwt.SigningMethodES256, a, "a", claims("42"))
	tokB := testsupport.Mint(t, jwt.SigningMethodES256, b, "b", claims("42"))
	srv.serve(t, jwksKey{"a", "ES256", &a.PublicKey}, jwksKey{"b", "ES256", &b.PublicKey})
	done := make(chan error, 4)
	for range 4 {
		go func() {
			deadline := time.Now().Add(pollTimeout)
			for time.Now().Before(deadline) {
				if _, err := v.Verify(tokA); err != nil {
					done <- err
					return
				}
				_, err := v.Verify(tokB)
				if err == nil {
					done <- nil
					return
				}
				if ReasonOf(err) != ReasonUnknownKey {
					done <- err
					return
				}
			}
			done <- fmt.Errorf("key b not accepted within %s", pollTimeout)
		}()
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

// TestJWKSRotation: the endpoint switches to a new key set. A token with a
// new kid is refused at once, without waiting for the fetch it triggers
// (held in flight here), and accepted once that fetch is in; the key that
// left the set is refused from then on.
func TestJWKSRotation(t *testing.T) {
	old1, old2, next := newECKey(t), newECKey(t), newECKey(t)
	srv := newJWKSServer(t, jwksKey{"k1", "ES256", &old1.PublicKey}, jwksKey{"k2", "ES256", &old2.PublicKey})
	v := newVerifier(t, jwksConfig(srv.URL))
	waitReady(t, v)
	c := claims("42")
	tok1 := testsupport.Mint(t, jwt.SigningMethodES256, old1, "k1", c)
	tok2 := testsupport.Mint(t, jwt.SigningMethodES256, old2, "k2", c)
	tok3 := testsupport.Mint(t, jwt.SigningMethodES256, next, "k3", c)
	for _, tok := range []string{tok1, tok2} {
		if _, err := v.Verify(tok); err != nil {
			t.Fatal(err)
		}
	}

	// Rotate, and hold the next fetch in the handler.
	srv.serve(t, jwksKey{"k2", "ES256", &old2.PublicKey}, jwksKey{"k3", "ES256", &next.PublicKey})
	gate := make(chan struct{})
	srv.gate.Store(&gate)
	before := srv.requests.Load()
	_, err := v.Verify(tok3)
	checkRefusal(t, err, ReasonUnknownKey, tok3)
	waitFor(t, "the refresh asked for by the unknown kid reaches the endpoint", func() bool {
		return srv.requests.Load() > before
	})
	// The fetch is stuck in the handler: Verify must still answer at once.
	for range 3 {
		_, err := v.Verify(tok3)
		checkRefusal(t, err, ReasonUnknownKey, tok3)
		if _, err := v.Verify(tok1); err != nil {
			t.Fatalf("old key while the refresh is in flight: %v", err)
		}
	}
	srv.gate.Store(nil)
	close(gate)

	waitFor(t, "the new key is accepted", func() bool {
		_, err := v.Verify(tok3)
		return err == nil
	})
	if _, err := v.Verify(tok2); err != nil {
		t.Fatalf("key kept across the rotation: %v", err)
	}
	_, err = v.Verify(tok1)
	checkRefusal(t, err, ReasonUnknownKey, tok1)
}

// TestJWKSScheduledRefresh: without any unknown kid, the set is refetched
// on schedule, so a key removed from the endpoint stops being accepted.
func TestJWKSScheduledRefresh(t *testing.T) {
	a, b := newECKey(t), newECKey(t)
	srv := newJWKSServer(t, jwksKey{"a", "ES256", &a.PublicKey}, jwksKey{"b", "ES256", &b.PublicKey})
	cfg := jwksConfig(srv.URL)
	cfg.JWKSMinRefresh = time.Second // the scheduler works in whole seconds
	cfg.JWKSUnknownKIDRefresh = time.Hour
	v := newVerifier(t, cfg)
	waitReady(t, v)
	tokA := testsupport.Mint(t, jwt.SigningMethodES256, a, "a", claims("42"))
	if _, err := v.Verify(tokA); err != nil {
		t.Fatal(err)
	}
	srv.serve(t, jwksKey{"b", "ES256", &b.PublicKey})
	waitFor(t, "the removed key is refused after a scheduled refresh", func() bool {
		_, err := v.Verify(tokA)
		return ReasonOf(err) == ReasonUnknownKey
	})
}

// TestJWKSUnknownKIDRateLimit: tokens with made-up kids cause at most one
// fetch per JWKSUnknownKIDRefresh, however many arrive.
func TestJWKSUnknownKIDRateLimit(t *testing.T) {
	k := newECKey(t)
	srv := newJWKSServer(t, jwksKey{"k", "ES256", &k.PublicKey})
	cfg := jwksConfig(srv.URL)
	cfg.JWKSUnknownKIDRefresh = time.Hour
	v := newVerifier(t, cfg)
	waitReady(t, v)
	first := srv.requests.Load()
	tok := func(i int) string {
		return testsupport.Mint(t, jwt.SigningMethodES256, k, fmt.Sprintf("made-up-%d", i), claims("42"))
	}
	if _, err := v.Verify(tok(0)); ReasonOf(err) != ReasonUnknownKey {
		t.Fatal(err)
	}
	waitFor(t, "the first unknown kid triggers a fetch", func() bool { return srv.requests.Load() == first+1 })
	waitFor(t, "that fetch is stored", func() bool { return v.JWKSStatus().Fetches >= 2 })
	for i := 1; i <= 200; i++ {
		if _, err := v.Verify(tok(i)); ReasonOf(err) != ReasonUnknownKey {
			t.Fatal(err)
		}
	}
	// Absence can only be checked for a while: any extra fetch within this
	// bound fails the test; a correct rate limit never does.
	deadline := time.Now().Add(300 * time.Millisecond)
	for time.Now().Before(deadline) {
		if n := srv.requests.Load(); n != first+1 {
			t.Fatalf("%d fetches after 200 unknown kids, want 1", n-first)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestJWKSFailures: an endpoint down at startup refuses tokens with
// unknown_key until it is up; a broken set later keeps the previous keys.
func TestJWKSFailures(t *testing.T) {
	k := newECKey(t)
	srv := newJWKSServer(t, jwksKey{"k", "ES256", &k.PublicKey})
	srv.status.Store(http.StatusServiceUnavailable)
	v := newVerifier(t, jwksConfig(srv.URL))
	tok := testsupport.Mint(t, jwt.SigningMethodES256, k, "k", claims("42"))
	_, err := v.Verify(tok)
	checkRefusal(t, err, ReasonUnknownKey, tok)
	waitFor(t, "a failed fetch is counted", func() bool { return v.JWKSStatus().Failures > 0 })
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	if err := v.WaitReady(ctx); err == nil {
		t.Fatal("ready without a set")
	}
	cancel()

	srv.status.Store(http.StatusOK)
	waitFor(t, "accepted once the endpoint is up", func() bool {
		_, err := v.Verify(tok)
		return err == nil
	})

	for _, broken := range [][]byte{[]byte("not json"), []byte(`{"keys":[]}`)} {
		failures := v.JWKSStatus().Failures
		srv.serveRaw(broken)
		v.Verify(testsupport.Mint(t, jwt.SigningMethodES256, k, "other", claims("42"))) // asks for a refresh
		waitFor(t, "the broken set is refused", func() bool { return v.JWKSStatus().Failures > failures })
		if _, err := v.Verify(tok); err != nil {
			t.Fatalf("previous keys not kept after %q: %v", broken, err)
		}
	}
}

// TestJWKSClose: Close stops the background work, is idempotent, and
// Verify keeps answering from the last set.
func TestJWKSClose(t *testing.T) {
	k := newECKey(t)
	srv := newJWKSServer(t, jwksKey{"k", "ES256", &k.PublicKey})
	cfg := jwksConfig(srv.URL)
	cfg.Now = fixedNow
	v, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	waitReady(t, v)
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(testsupport.Mint(t, jwt.SigningMethodES256, k, "k", claims("42"))); err != nil {
		t.Fatalf("after Close: %v", err)
	}
	// Unknown kids after Close still answer at once; nothing fetches.
	for i := range 3 {
		tok := testsupport.Mint(t, jwt.SigningMethodES256, k, fmt.Sprint("x", i), claims("42"))
		_, err := v.Verify(tok)
		checkRefusal(t, err, ReasonUnknownKey, tok)
	}
}
