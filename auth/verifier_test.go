package auth

import (
	"crypto/x509"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wspush/wspush/internal/testsupport"
)

// TestVerifyAccepts signs with every supported algorithm and checks the
// claims that come out.
func TestVerifyAccepts(t *testing.T) {
	k := newTestKeys(t)
	hmacV := newVerifier(t, Config{HMACSecret: k.secret})
	rsaV := newVerifier(t, Config{PublicKey: &k.rsa.PublicKey})
	ec256V := newVerifier(t, Config{PublicKey: &k.ec256.PublicKey})
	ec384V := newVerifier(t, Config{PublicKey: &k.ec384.PublicKey})
	edV := newVerifier(t, Config{PublicKey: k.ed.Public()})
	c := testsupport.WithClaims(claims("42"), "topics", []string{"news.*", "ticker"}, "publish", []string{"chat.*"})
	tests := []struct {
		name string
		v    *Verifier
		m    jwt.SigningMethod
		key  any
	}{
		{"HS256", hmacV, jwt.SigningMethodHS256, k.secret},
		{"HS384", hmacV, jwt.SigningMethodHS384, k.secret},
		{"HS512", hmacV, jwt.SigningMethodHS512, k.secret},
		{"RS256", rsaV, jwt.SigningMethodRS256, k.rsa},
		{"RS384", rsaV, jwt.SigningMethodRS384, k.rsa},
		{"RS512", rsaV, jwt.SigningMethodRS512, k.rsa},
		{"PS256", rsaV, jwt.SigningMethodPS256, k.rsa},
		{"ES256", ec256V, jwt.SigningMethodES256, k.ec256},
		{"ES384", ec384V, jwt.SigningMethodES384, k.ec384},
		{"EdDSA", edV, jwt.SigningMethodEdDSA, k.ed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.v.Verify(testsupport.Mint(t, tt.m, tt.key, "", c))
			if err != nil {
				t.Fatal(err)
			}
			if got.Subject != "42" || got.Anonymous {
				t.Fatalf("subject %q anonymous %v", got.Subject, got.Anonymous)
			}
			if !got.ExpiresAt.Equal(testNow.Add(time.Hour)) || !got.IssuedAt.Equal(testNow.Add(-time.Minute)) {
				t.Fatalf("exp %v iat %v", got.ExpiresAt, got.IssuedAt)
			}
			if got.CheckSubscribe("news.sport") != nil || got.CheckSubscribe("ticker") != nil ||
				got.CheckSubscribe("weather") == nil || got.CheckPublish("chat.1") != nil || got.CheckPublish("news.a") == nil {
				t.Fatalf("patterns: subscribe %v publish %v", got.Subscribe(), got.Publish())
			}
		})
	}
}

// TestVerifyRefusals covers every refusal of a token.
func TestVerifyRefusals(t *testing.T) {
	k := newTestKeys(t)
	hmacV := newVerifier(t, Config{HMACSecret: k.secret, Audience: "wspush", Issuer: "https://backend.example"})
	rsaV := newVerifier(t, Config{PublicKey: &k.rsa.PublicKey})
	ecV := newVerifier(t, Config{PublicKey: &k.ec256.PublicKey})
	edV := newVerifier(t, Config{PublicKey: k.ed.Public()})
	// Both a secret and a public key: HS256 is checked with the secret only.
	bothV := newVerifier(t, Config{HMACSecret: k.secret, PublicKey: &k.rsa.PublicKey})

	good := testsupport.WithClaims(claims("42"), "aud", "wspush", "iss", "https://backend.example")
	otherSecret := []byte(strings.Repeat("other-secret-", 4))
	rsaPEM := pemOf(t, &k.rsa.PublicKey)
	ecPEM := pemOf(t, &k.ec256.PublicKey)
	edPEM := pemOf(t, k.ed.Public())
	rsaDER := x509.MarshalPKCS1PublicKey(&k.rsa.PublicKey)
	none := testsupport.Mint(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "", good)
	valid := testsupport.Mint(t, jwt.SigningMethodHS256, k.secret, "", good)
	parts := strings.Split(valid, ".")

	tests := []struct {
		name  string
		v     *Verifier
		token string
		want  Reason
	}{
		{"empty", hmacV, "", ReasonMissing},
		{"not a JWT", hmacV, "hello", ReasonMalformed},
		{"two segments", hmacV, parts[0] + "." + parts[1], ReasonMalformed},
		{"bad base64 claims", hmacV, parts[0] + ".!!!." + parts[2], ReasonMalformed},
		{"sub not a string", hmacV, testsupport.Mint(t, jwt.SigningMethodHS256, k.secret, "", testsupport.WithClaims(good, "sub", 42)), ReasonMalformed},
		{"topics not an array", hmacV, testsupport.Mint(t, jwt.SigningMethodHS256, k.secret, "", testsupport.WithClaims(good, "topics", "a")), ReasonMalformed},
		{"bad signature", hmacV, testsupport.Mint(t, jwt.SigningMethodHS256, otherSecret, "", good), ReasonBadSignature},
		{"tampered claims", hmacV, parts[0] + "." + strings.Split(testsupport.Mint(t, jwt.SigningMethodHS256, otherSecret, "", testsupport.WithClaims(good, "sub", "1")), ".")[1] + "." + parts[2], ReasonBadSignature},
		{"bad RSA signature", rsaV, testsupport.Mint(t, jwt.SigningMethodRS256, newTestKeys(t).rsa, "", good), ReasonBadSignature},
		{"alg none to HMAC", hmacV, none, ReasonBadAlgorithm},
		{"alg none to RSA", rsaV, none, ReasonBadAlgorithm},
		{"unknown alg", hmacV, fakeAlg(t, "XS256", parts), ReasonBadAlgorithm},
		{"HS256 with RSA PEM as secret", rsaV, testsupport.Mint(t, jwt.SigningMethodHS256, rsaPEM, "", good), ReasonBadAlgorithm},
		{"HS256 with RSA DER as secret", rsaV, testsupport.Mint(t, jwt.SigningMethodHS256, rsaDER, "", good), ReasonBadAlgorithm},
		{"HS256 with EC PEM as secret", ecV, testsupport.Mint(t, jwt.SigningMethodHS256, ecPEM, "", good), ReasonBadAlgorithm},
		{"HS256 with Ed25519 PEM as secret", edV, testsupport.Mint(t, jwt.SigningMethodHS256, edPEM, "", good), ReasonBadAlgorithm},
		{"HS256 with RSA PEM, secret also set", bothV, testsupport.Mint(t, jwt.SigningMethodHS256, rsaPEM, "", good), ReasonBadSignature},
		{"RS256 to HMAC only", hmacV, testsupport.Mint(t, jwt.SigningMethodRS256, k.rsa, "", good), ReasonBadAlgorithm},
		{"ES256 to RSA key", rsaV, testsupport.Mint(t, jwt.SigningMethodES256, k.ec256, "", good), ReasonBadAlgorithm},
		{"ES384 to P-256 key", ecV, testsupport.Mint(t, jwt.SigningMethodES384, k.ec384, "", good), ReasonBadAlgorithm},
		{"EdDSA to EC key", ecV, testsupport.Mint(t, jwt.SigningMethodEdDSA, k.ed, "", good), ReasonBadAlgorithm},
		{"expired", hmacV, testsupport.Mint(t, jwt.SigningMethodHS256, k.secret, "", testsupport.WithClaims(good, "exp", testNow.Add(-time.Second).Unix())), ReasonExpired},
		{"not yet valid", hmacV, testsupport.Mint(t, jwt.SigningMethodHS256, k.secret, "", testsupport.WithClaims(good, "nbf", testNow.Add(time.Minute).Unix())), ReasonNotYetValid},
		{"issued in the future", hmacV, testsupport.Mint(t, jwt.SigningMethodHS256, k.secret, "", testsupport.WithClaims(good, "iat", testNow.Add(time.Minute).Unix())), ReasonNotYetValid},
		{"wrong audience", hmacV, testsupport.Mint(t, jwt.SigningMethodHS256, k.secret, "", testsupport.WithClaims(good, "aud", "other")), ReasonBadAudience},
		{"no audience", hmacV, testsupport.Mint(t, jwt.SigningMethodHS256, k.secret, "", testsupport.WithClaims(good, "aud", nil)), ReasonBadAudience},
		{"no issuer", hmacV, testsupport.Mint(t, jwt.SigningMethodHS256, k.secret, "", testsupport.WithClaims(good, "iss", nil)), ReasonBadIssuer},
		{"expired and wrong audience", hmacV, testsupport.Mint(t, jwt.SigningMethodHS256, k.secret, "", testsupport.WithClaims(good, "aud", "x", "exp", testNow.Add(-time.Hour).Unix())), ReasonExpired},
		{"expired and bad signature", hmacV, testsupport.Mint(t, jwt.SigningMethodHS256, otherSecret, "", testsupport.WithClaims(good, "exp", testNow.Add(-time.Hour).Unix())), ReasonBadSignature},
		{"wrong issuer", hmacV, testsupport.Mint(t, jwt.SigningMethodHS256, k.secret, "", testsupport.WithClaims(good, "iss", "https://evil.example")), ReasonBadIssuer},
		{"missing sub", hmacV, testsupport.Mint(t, jwt.SigningMethodHS256, k.secret, "", testsupport.WithClaims(good, "sub", nil)), ReasonMissingClaim},
		{"empty sub", hmacV, testsupport.Mint(t, jwt.SigningMethodHS256, k.secret, "", testsupport.WithClaims(good, "sub", "")), ReasonMissingClaim},
		{"missing exp", hmacV, testsupport.Mint(t, jwt.SigningMethodHS256, k.secret, "", testsupport.WithClaims(good, "exp", nil)), ReasonMissingClaim},
		{"star inside a topics pattern", hmacV, testsupport.Mint(t, jwt.SigningMethodHS256, k.secret, "", testsupport.WithClaims(good, "topics", []string{"news.*.uk"})), ReasonBadClaim},
		{"empty publish pattern", hmacV, testsupport.Mint(t, jwt.SigningMethodHS256, k.secret, "", testsupport.WithClaims(good, "publish", []string{""})), ReasonBadClaim},
		{"JWKS kid without a JWKS", rsaV, testsupport.Mint(t, jwt.SigningMethodHS256, k.secret, "k1", good), ReasonBadAlgorithm},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := tt.v.Verify(tt.token)
			if c != nil {
				t.Fatalf("claims %+v returned with a refusal", c)
			}
			checkRefusal(t, err, tt.want, tt.token)
		})
	}
	// The good token itself is accepted, so the refusals above are about
	// what each case changed.
	if _, err := hmacV.Verify(valid); err != nil {
		t.Fatal(err)
	}
}

// fakeAlg re-signs nothing: it swaps the header for one with an alg the
// library does not know, keeping the claims and signature.
func fakeAlg(t *testing.T, alg string, parts []string) string {
	t.Helper()
	hdr := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"` + alg + `","typ":"JWT"}`))
	return hdr + "." + parts[1] + "." + parts[2]
}

// TestLeeway: a token expired a little is accepted within the leeway.
func TestLeeway(t *testing.T) {
	k := newTestKeys(t)
	v := newVerifier(t, Config{HMACSecret: k.secret, Leeway: 30 * time.Second})
	tok := testsupport.Mint(t, jwt.SigningMethodHS256, k.secret, "", testsupport.WithClaims(claims("42"), "exp", testNow.Add(-10*time.Second).Unix()))
	if _, err := v.Verify(tok); err != nil {
		t.Fatalf("within leeway: %v", err)
	}
	tok = testsupport.Mint(t, jwt.SigningMethodHS256, k.secret, "", testsupport.WithClaims(claims("42"), "exp", testNow.Add(-time.Minute).Unix()))
	checkRefusal(t, func() error { _, err := v.Verify(tok); return err }(), ReasonExpired, tok)
}

// TestAudienceList: aud may be an array holding the configured audience.
func TestAudienceList(t *testing.T) {
	k := newTestKeys(t)
	v := newVerifier(t, Config{HMACSecret: k.secret, Audience: "wspush"})
	tok := testsupport.Mint(t, jwt.SigningMethodHS256, k.secret, "", testsupport.WithClaims(claims("42"), "aud", []string{"api", "wspush"}))
	if _, err := v.Verify(tok); err != nil {
		t.Fatal(err)
	}
}

// TestAnonymous: without anonymous topics a connection without a token is
// refused; with them it gets those patterns and no publish rights.
func TestAnonymous(t *testing.T) {
	k := newTestKeys(t)
	closed := newVerifier(t, Config{HMACSecret: k.secret})
	if c, err := closed.Anonymous(); c != nil || ReasonOf(err) != ReasonMissing {
		t.Fatalf("anonymous without anonymous topics: %v, %v", c, err)
	}
	open := newVerifier(t, Config{HMACSecret: k.secret, AnonymousTopics: []string{"ticker.*", "status"}})
	c, err := open.Anonymous()
	if err != nil {
		t.Fatal(err)
	}
	if !c.Anonymous || c.Subject != "" || !c.ExpiresAt.IsZero() {
		t.Fatalf("anonymous claims %+v", c)
	}
	tests := []struct {
		topic string
		want  Reason
	}{
		{"ticker.btc", ""},
		{"status", ""},
		{"status.x", ReasonForbidden},
		{"inbox#42", ReasonNotOwner},
		{"inbox#", ReasonNotOwner},
		{"ticker.#", ReasonNotOwner},
	}
	for _, tt := range tests {
		if got := ReasonOf(c.CheckSubscribe(tt.topic)); got != tt.want {
			t.Errorf("subscribe %q: %q, want %q", tt.topic, got, tt.want)
		}
		if ReasonOf(c.CheckPublish(tt.topic)) == "" {
			t.Errorf("anonymous may publish to %q", tt.topic)
		}
	}
	// A token is still verified as a token: a bad one does not fall back
	// to anonymous.
	if _, err := open.Verify("garbage"); ReasonOf(err) != ReasonMalformed {
		t.Fatalf("bad token with anonymous topics: %v", err)
	}
	if _, err := New(Config{AnonymousTopics: []string{"a"}}); err == nil {
		t.Fatal("anonymous topics without a key accepted")
	}
	if _, err := New(Config{HMACSecret: k.secret, AnonymousTopics: []string{"a*b"}}); err == nil {
		t.Fatal("invalid anonymous pattern accepted")
	}
}

// TestNewRefusesBadConfig: keys too weak or URLs not usable fail at startup.
func TestNewRefusesBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no key", Config{}},
		{"short secret", Config{HMACSecret: []byte("short")}},
		{"relative JWKS URL", Config{JWKSURL: "/keys"}},
		{"ftp JWKS URL", Config{JWKSURL: "ftp://host/keys"}},
		{"negative leeway", Config{HMACSecret: []byte(strings.Repeat("x", 32)), Leeway: -time.Second}},
		{"not a public key", Config{PublicKey: "key"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if v, err := New(tt.cfg); err == nil {
				v.Close()
				t.Fatal("accepted")
			}
		})
	}
}
