package auth

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// tokenClaims is the JSON form of the claims wspush reads.
type tokenClaims struct {
	jwt.RegisteredClaims
	Topics  []string `json:"topics,omitempty"`
	Publish []string `json:"publish,omitempty"`
}

// Verifier checks connection tokens. It is built once at startup, shared by
// every event loop and safe for concurrent use; it owns the background
// goroutines of its JWKS, which Close stops.
//
// Which key verifies a token: an HS256/384/512 token needs the HMAC secret;
// any other token with a kid is looked up in the JWKS when one is
// configured, and otherwise verified with the PEM public key. Each key
// accepts only its own algorithms (RS*/PS* for RSA, ES256/384/512 by curve,
// EdDSA for Ed25519), so "alg":"none" and HS256 signed with the bytes of a
// public key are refused with ReasonBadAlgorithm.
type Verifier struct {
	cfg       Config
	parser    *jwt.Parser
	hmac      any       // the HMAC secret as a []byte, boxed once: nil when none
	pem       verifyKey // zero when no PEM key is configured
	jwks      *jwksSource
	anonymous *Claims // nil when anonymous connections are refused
	grants    grantsTable

	closeOnce sync.Once
	closeErr  error
}

// New builds a Verifier and, with a JWKS URL, starts fetching it in the
// background (WaitReady waits for the first set).
func New(cfg Config) (*Verifier, error) {
	if err := cfg.check(); err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	cfg = cfg.withDefaults()
	v := &Verifier{cfg: cfg}
	if len(cfg.HMACSecret) > 0 {
		v.hmac = bytes.Clone(cfg.HMACSecret) // the caller may reuse its slice
	}
	if cfg.PublicKey != nil {
		algs, _ := publicKeyAlgs(cfg.PublicKey) // checked above
		v.pem = verifyKey{key: cfg.PublicKey, algs: algs}
	}
	if len(cfg.AnonymousTopics) > 0 {
		p, err := CompilePatterns(append([]string(nil), cfg.AnonymousTopics...))
		if err != nil {
			return nil, fmt.Errorf("auth: anonymous topics: %w", err)
		}
		v.anonymous = &Claims{Anonymous: true, grants: &grants{subscribe: p}}
	}
	opts := []jwt.ParserOption{
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(cfg.Leeway),
		jwt.WithTimeFunc(cfg.Now),
		jwt.WithStrictDecoding(),
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	v.parser = jwt.NewParser(opts...)
	if cfg.JWKSURL != "" {
		s, err := startJWKS(&cfg)
		if err != nil {
			return nil, fmt.Errorf("auth: %w", err)
		}
		v.jwks = s
	}
	return v, nil
}

// Verify checks a token and returns what it allows. It does no I/O and
// never blocks: a kid missing from the JWKS is refused at once with
// ReasonUnknownKey while a refresh is fetched in the background. An empty
// token is ReasonMissing; use Anonymous for connections without one.
// Every error is an *Error.
func (v *Verifier) Verify(token string) (*Claims, error) {
	if token == "" {
		return nil, refuse(ReasonMissing, "no token")
	}
	var tc tokenClaims
	_, err := v.parser.ParseWithClaims(token, &tc, v.keyFor)
	if err != nil {
		return nil, v.refusal(err, &tc)
	}
	if tc.Subject == "" {
		return nil, refuse(ReasonMissingClaim, "the token has no sub")
	}
	c := &Claims{Subject: tc.Subject, ExpiresAt: tc.ExpiresAt.Time}
	if tc.IssuedAt != nil {
		c.IssuedAt = tc.IssuedAt.Time
	}
	var g grants
	if g.subscribe, err = CompilePatterns(tc.Topics); err != nil {
		return nil, refuse(ReasonBadClaim, "topics: "+err.Error())
	}
	if g.publish, err = CompilePatterns(tc.Publish); err != nil {
		return nil, refuse(ReasonBadClaim, "publish: "+err.Error())
	}
	c.grants = v.grants.share(g)
	return c, nil
}

// Anonymous returns the claims of a connection without a token: the
// anonymous topics patterns and no publish rights. It is a ReasonMissing
// refusal when anonymous connections are not allowed. The claims are
// shared by every anonymous connection.
func (v *Verifier) Anonymous() (*Claims, error) {
	if v.anonymous == nil {
		return nil, refuse(ReasonMissing, "a token is required")
	}
	return v.anonymous, nil
}

// keyFor is golang-jwt's Keyfunc: it picks the key for the token's alg and
// kid, refusing every algorithm the configured keys do not have.
func (v *Verifier) keyFor(t *jwt.Token) (any, error) {
	name := t.Method.Alg()
	alg := algOf(name)
	if alg == 0 {
		return nil, refuse(ReasonBadAlgorithm, "alg "+quoteAlg(name)+" is not accepted")
	}
	if alg&algsHMAC != 0 {
		if v.hmac == nil {
			return nil, refuse(ReasonBadAlgorithm, "alg "+name+" needs an HMAC secret, none is configured")
		}
		return v.hmac, nil
	}
	kid, _ := t.Header["kid"].(string)
	var k verifyKey
	switch {
	case v.jwks != nil && kid != "":
		var e *Error
		if k, e = v.jwks.lookup(kid); e != nil {
			return nil, e
		}
	case v.pem.key != nil:
		k = v.pem
	case v.jwks != nil:
		return nil, refuse(ReasonUnknownKey, "the token has no kid to pick a JWKS key with")
	default:
		return nil, refuse(ReasonBadAlgorithm, "alg "+name+" needs a public key, none is configured")
	}
	if k.algs&alg == 0 {
		return nil, refuse(ReasonBadAlgorithm, "alg "+name+" does not fit the key")
	}
	return k.key, nil
}

// quoteAlg names an alg for a message, bounded: the header is the client's.
func quoteAlg(name string) string {
	const maxShown = 16
	if len(name) > maxShown {
		name = name[:maxShown] + "..."
	}
	return fmt.Sprintf("%q", name)
}

// refusal maps a golang-jwt error to a refusal. Messages are ours, never
// the library's, so nothing of the token leaks into logs.
func (v *Verifier) refusal(err error, tc *tokenClaims) error {
	var e *Error
	switch {
	case errors.As(err, &e):
		return e
	case errors.Is(err, jwt.ErrTokenMalformed):
		return refuse(ReasonMalformed, "not a JWT: three base64url segments with a JSON header and claims of the expected types")
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		// Raised for a missing or unknown alg before keyFor is called.
		return refuse(ReasonBadAlgorithm, "the alg header is missing or unknown")
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return refuse(ReasonBadSignature, "the signature does not verify")
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return v.missingClaim(tc)
	case errors.Is(err, jwt.ErrTokenExpired):
		return refuse(ReasonExpired, "the token expired at "+formatTime(tc.ExpiresAt))
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return refuse(ReasonNotYetValid, "the token is valid from "+formatTime(tc.NotBefore))
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return refuse(ReasonNotYetValid, "the token is issued in the future, at "+formatTime(tc.IssuedAt))
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return refuse(ReasonBadAudience, "aud does not name this server's audience")
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return refuse(ReasonBadIssuer, "iss is not this server's issuer")
	}
	return refuse(ReasonMalformed, "the token's claims are invalid")
}

// missingClaim names the required claim a token lacks. A missing aud or
// iss is reported like a wrong one: either way the token is not meant for
// this server.
func (v *Verifier) missingClaim(tc *tokenClaims) error {
	switch {
	case tc.ExpiresAt == nil:
		return refuse(ReasonMissingClaim, "the token has no exp")
	case v.cfg.Audience != "" && len(tc.Audience) == 0:
		return refuse(ReasonBadAudience, "the token has no aud")
	case v.cfg.Issuer != "" && tc.Issuer == "":
		return refuse(ReasonBadIssuer, "the token has no iss")
	}
	return refuse(ReasonMissingClaim, "the token lacks a required claim")
}

func formatTime(d *jwt.NumericDate) string {
	if d == nil {
		return "?"
	}
	return d.UTC().Format(time.RFC3339)
}

// WaitReady waits until the JWKS has been fetched once, for a server that
// would rather not accept connections before; it returns at once without
// a JWKS.
func (v *Verifier) WaitReady(ctx context.Context) error {
	if v.jwks == nil {
		return nil
	}
	if err := v.jwks.res.Ready(ctx); err != nil {
		return fmt.Errorf("auth: JWKS %s not fetched yet: %w", v.cfg.JWKSURL, err)
	}
	return nil
}

// JWKSStatus describes the JWKS in use; the zero value without a JWKS.
func (v *Verifier) JWKSStatus() JWKSStatus {
	if v.jwks == nil {
		return JWKSStatus{}
	}
	return v.jwks.status()
}

// Close stops the background JWKS work and waits for it. Verify keeps
// working afterwards with the keys last fetched. Close is idempotent.
func (v *Verifier) Close() error {
	v.closeOnce.Do(func() {
		if v.jwks != nil {
			v.closeErr = v.jwks.close()
		}
	})
	return v.closeErr
}
