package auth

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/httprc/v3"
	"github.com/lestrrat-go/httprc/v3/errsink"
	"github.com/lestrrat-go/jwx/v3/jwk"
)

// verifyKey is one key of a JWKS, ready for golang-jwt.
type verifyKey struct {
	key  crypto.PublicKey
	algs algSet
}

// keyRing is one fetched JWKS, converted once, in the background, to the
// keys Verify needs: looking a kid up is one map read.
type keyRing struct {
	byKID   map[string]verifyKey
	fetched time.Time
}

// jwksSource keeps the keys of one JWKS URL fresh. It owns an httprc client
// (the fetch-and-schedule engine of jwx's jwk.Cache): a worker goroutine
// fetches the set on a schedule bounded by the min and max refresh
// intervals (following Cache-Control/Expires in between), parses it with
// jwx and stores a keyRing, which lookup reads with one atomic load.
// Unknown kids ask refreshLoop, a goroutine of its own, for an early
// fetch, at most once per unknownGap.
type jwksSource struct {
	url        string
	unknownGap time.Duration
	timeout    time.Duration
	log        *slog.Logger

	ctrl httprc.Controller
	res  *httprc.ResourceBase[*keyRing]

	kick   chan struct{} // capacity 1: a pending early fetch
	cancel context.CancelFunc
	done   chan struct{} // closed when refreshLoop has returned

	fetches  atomic.Uint64 // sets stored
	failures atomic.Uint64 // fetches that kept the previous set
}

// startJWKS registers the URL and starts the background work; the first
// fetch starts at once and New does not wait for it (see WaitReady).
func startJWKS(cfg *Config) (*jwksSource, error) {
	s := &jwksSource{
		url:        cfg.JWKSURL,
		unknownGap: cfg.JWKSUnknownKIDRefresh,
		timeout:    cfg.JWKSFetchTimeout,
		log:        cfg.Logger,
		kick:       make(chan struct{}, 1),
		done:       make(chan struct{}),
	}
	ctx, cancel := context.WithCancel(context.Background())
	client := httprc.NewClient(
		httprc.WithHTTPClient(cfg.JWKSClient),
		httprc.WithWorkers(1),
		httprc.WithErrorSink(errsink.NewFunc(s.fetchFailed)),
	)
	ctrl, err := client.Start(ctx)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("JWKS: %w", err)
	}
	res, err := httprc.NewResource[*keyRing](cfg.JWKSURL, httprc.TransformFunc[*keyRing](s.transform),
		httprc.WithMinInterval(cfg.JWKSMinRefresh), httprc.WithMaxInterval(cfg.JWKSMaxRefresh))
	if err == nil {
		err = ctrl.Add(ctx, res, httprc.WithWaitReady(false))
	}
	if err != nil {
		cancel()
		_ = ctrl.Shutdown(time.Second)
		return nil, fmt.Errorf("JWKS %s: %w", cfg.JWKSURL, err)
	}
	s.ctrl, s.res, s.cancel = ctrl, res, cancel
	go s.refreshLoop(ctx)
	return s, nil
}

// lookup returns the key named kid. Unknown kids ask for an early refresh
// without waiting for it. It never blocks.
func (s *jwksSource) lookup(kid string) (verifyKey, *Error) {
	ring := s.res.Resource()
	if ring == nil {
		s.askRefresh()
		return verifyKey{}, refuse(ReasonUnknownKey, "the JWKS has not been fetched yet")
	}
	k, ok := ring.byKID[kid]
	if !ok {
		s.askRefresh()
		return verifyKey{}, refuse(ReasonUnknownKey, "no key with this kid in the JWKS; a refresh was asked for")
	}
	return k, nil
}

// askRefresh asks refreshLoop for a fetch; a request already pending
// covers this one.
func (s *jwksSource) askRefresh() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// refreshLoop runs the fetches asked for by unknown kids, at most one per
// unknownGap, until the source is closed.
func (s *jwksSource) refreshLoop(ctx context.Context) {
	defer close(s.done)
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.kick:
		}
		if wait := s.unknownGap - time.Since(last); !last.IsZero() && wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		// The fetch below serves every kick received until now.
		select {
		case <-s.kick:
		default:
		}
		last = time.Now()
		fctx, cancel := context.WithTimeout(ctx, s.timeout)
		err := s.ctrl.Refresh(fctx, s.url)
		cancel()
		if err != nil && ctx.Err() == nil {
			s.fetchFailed(ctx, err)
		}
	}
}

// fetchFailed records a failed fetch; the previous set stays in use.
func (s *jwksSource) fetchFailed(_ context.Context, err error) {
	s.failures.Add(1)
	s.log.Warn("auth: JWKS fetch failed, keeping the previous keys", "url", s.url, "err", err)
}

// transform parses a fetched JWKS with jwx and converts its usable keys.
// It runs on the httprc worker, never on an event loop. An error keeps the
// previous set.
func (s *jwksSource) transform(_ context.Context, res *http.Response) (*keyRing, error) {
	body, err := io.ReadAll(io.LimitReader(res.Body, MaxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading the JWKS: %w", err)
	}
	if len(body) > MaxJWKSBytes {
		return nil, fmt.Errorf("JWKS larger than %d bytes", MaxJWKSBytes)
	}
	set, err := jwk.Parse(body)
	if err != nil {
		return nil, fmt.Errorf("parsing the JWKS: %w", err)
	}
	ring := &keyRing{byKID: make(map[string]verifyKey, set.Len()), fetched: time.Now()}
	for i := range set.Len() {
		key, _ := set.Key(i)
		kid, vk, err := convertKey(key)
		if err == nil {
			if _, dup := ring.byKID[kid]; dup {
				err = errors.New("duplicate kid, the first key is kept")
			}
		}
		if err != nil {
			s.log.Warn("auth: JWKS key skipped", "url", s.url, "kid", kid, "err", err)
			continue
		}
		ring.byKID[kid] = vk
	}
	if len(ring.byKID) == 0 {
		return nil, errors.New("the JWKS has no usable signing key")
	}
	s.fetches.Add(1)
	return ring, nil
}

// convertKey turns one JWK into a verification key: a public RSA, ECDSA or
// Ed25519 key with a kid, meant for signatures. Symmetric keys are refused:
// a key published over HTTP is no secret. A key's alg, when present,
// narrows it to that algorithm.
func convertKey(key jwk.Key) (string, verifyKey, error) {
	kid, _ := key.KeyID()
	if kid == "" {
		return "", verifyKey{}, errors.New("no kid")
	}
	if use, ok := key.KeyUsage(); ok && use != "sig" {
		return kid, verifyKey{}, fmt.Errorf("use %q is not sig", use)
	}
	if key.KeyType().String() == "oct" {
		return kid, verifyKey{}, errors.New("symmetric (oct) keys are not accepted from a JWKS")
	}
	pub, err := key.PublicKey()
	if err != nil {
		return kid, verifyKey{}, fmt.Errorf("public key: %w", err)
	}
	var raw any
	if err := jwk.Export(pub, &raw); err != nil {
		return kid, verifyKey{}, fmt.Errorf("export: %w", err)
	}
	algs, err := publicKeyAlgs(raw)
	if err != nil {
		return kid, verifyKey{}, err
	}
	if alg, ok := key.Algorithm(); ok {
		a := algOf(alg.String())
		if a&algs == 0 {
			return kid, verifyKey{}, fmt.Errorf("alg %q does not fit the key type", alg.String())
		}
		algs = a
	}
	return kid, verifyKey{key: raw, algs: algs}, nil
}

// status returns the source's counters and key count.
func (s *jwksSource) status() JWKSStatus {
	st := JWKSStatus{Fetches: s.fetches.Load(), Failures: s.failures.Load()}
	if ring := s.res.Resource(); ring != nil {
		st.Keys = len(ring.byKID)
		st.Fetched = ring.fetched
	}
	return st
}

// close stops the background work and waits for it.
func (s *jwksSource) close() error {
	s.cancel()
	<-s.done
	return s.ctrl.Shutdown(5 * time.Second)
}

// JWKSStatus describes the JWKS in use, for metrics and /healthz.
type JWKSStatus struct {
	Keys     int       // usable keys of the set in use; 0 before the first fetch
	Fetched  time.Time // when the set in use was fetched; zero before
	Fetches  uint64    // sets fetched and stored
	Failures uint64    // fetches that failed and kept the previous set
}
