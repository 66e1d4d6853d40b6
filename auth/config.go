package auth

import (
	"crypto"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"
)

// Defaults of the JWKS refresh schedule, used where Config leaves a
// duration zero.
const (
	// DefaultJWKSMinRefresh is the least time between two scheduled
	// fetches, whatever the endpoint's Cache-Control says; without
	// Cache-Control or Expires the set is fetched this often.
	DefaultJWKSMinRefresh = 5 * time.Minute
	// DefaultJWKSMaxRefresh is the most time between two scheduled fetches.
	DefaultJWKSMaxRefresh = time.Hour
	// DefaultJWKSUnknownKIDRefresh is the least time between two fetches
	// asked for by tokens with an unknown kid: anyone can send a token
	// with a made-up kid, so they cannot make wspush hammer the endpoint.
	DefaultJWKSUnknownKIDRefresh = 10 * time.Second
	// DefaultJWKSFetchTimeout bounds one fetch of the JWKS.
	DefaultJWKSFetchTimeout = 10 * time.Second
)

// MaxJWKSBytes bounds a JWKS document.
const MaxJWKSBytes = 1 << 20

// Config says which keys sign connection tokens and what else a token
// must satisfy. Any key (HMACSecret, PublicKey, JWKSURL) turns auth on;
// several may be given at once (see Verifier for which one a token uses).
type Config struct {
	// HMACSecret verifies HS256/HS384/HS512 tokens (LoadHMACSecretFile).
	HMACSecret []byte
	// PublicKey verifies RS*/PS* (RSA), ES256/ES384/ES512 (by curve) or
	// EdDSA (Ed25519) tokens (LoadPublicKeyFile).
	PublicKey crypto.PublicKey
	// JWKSURL is fetched in the background; tokens name their key by kid.
	JWKSURL string

	// Audience, when set, must be one of the token's aud values.
	Audience string
	// Issuer, when set, must equal the token's iss.
	Issuer string
	// Leeway is the clock skew tolerated on exp, nbf and iat.
	Leeway time.Duration

	// AnonymousTopics, when not empty, lets connections without a token in,
	// allowed to subscribe to these patterns only and to publish nothing.
	AnonymousTopics []string

	// JWKS refresh schedule; zero durations take the defaults above.
	JWKSMinRefresh        time.Duration
	JWKSMaxRefresh        time.Duration
	JWKSUnknownKIDRefresh time.Duration
	JWKSFetchTimeout      time.Duration
	// JWKSClient fetches the JWKS; nil means a client with
	// JWKSFetchTimeout. A client given here must have a Timeout of its
	// own: scheduled fetches are bounded by nothing else.
	JWKSClient *http.Client

	// Logger receives JWKS fetch failures and skipped keys; nil means
	// slog.Default().
	Logger *slog.Logger
	// Now is the clock tokens are checked against; nil means time.Now.
	Now func() time.Time
}

// Enabled reports whether a key is configured, which turns auth on.
func (c Config) Enabled() bool {
	return len(c.HMACSecret) > 0 || c.PublicKey != nil || c.JWKSURL != ""
}

// check validates c; New calls it.
func (c *Config) check() error {
	if !c.Enabled() {
		if len(c.AnonymousTopics) > 0 {
			return errors.New("anonymous topics are set but no key is: without a key auth is off and every topic is open")
		}
		return errors.New("no key configured (HMAC secret, public key or JWKS URL)")
	}
	if len(c.HMACSecret) > 0 {
		if err := checkHMACSecret(c.HMACSecret); err != nil {
			return err
		}
	}
	if c.PublicKey != nil {
		if _, err := publicKeyAlgs(c.PublicKey); err != nil {
			return fmt.Errorf("public key: %w", err)
		}
	}
	if c.JWKSURL != "" {
		u, err := url.Parse(c.JWKSURL)
		if err != nil {
			return fmt.Errorf("JWKS URL: %w", err)
		}
		if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return fmt.Errorf("JWKS URL %q: must be an absolute http or https URL", c.JWKSURL)
		}
	}
	for _, d := range []time.Duration{c.Leeway, c.JWKSMinRefresh, c.JWKSMaxRefresh, c.JWKSUnknownKIDRefresh, c.JWKSFetchTimeout} {
		if d < 0 {
			return fmt.Errorf("negative duration %s", d)
		}
	}
	return nil
}

// withDefaults returns c with zero values replaced by defaults.
func (c Config) withDefaults() Config {
	if c.JWKSMinRefresh == 0 {
		c.JWKSMinRefresh = DefaultJWKSMinRefresh
	}
	if c.JWKSMaxRefresh == 0 {
		c.JWKSMaxRefresh = DefaultJWKSMaxRefresh
	}
	if c.JWKSMaxRefresh < c.JWKSMinRefresh {
		c.JWKSMaxRefresh = c.JWKSMinRefresh
	}
	if c.JWKSUnknownKIDRefresh == 0 {
		c.JWKSUnknownKIDRefresh = DefaultJWKSUnknownKIDRefresh
	}
	if c.JWKSFetchTimeout == 0 {
		c.JWKSFetchTimeout = DefaultJWKSFetchTimeout
	}
	if c.JWKSClient == nil {
		c.JWKSClient = &http.Client{Timeout: c.JWKSFetchTimeout}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}
