package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/gobwas/ws"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wspush/wspush/auth"
	"github.com/wspush/wspush/frames"
)

// The wire words of issue 12 the server matches or sends by hand.
const (
	opRefresh   = "refresh"
	opRefreshed = "refreshed"

	// closeTokenExpired ends a connection whose token's exp passed
	// without a refresh; the client fetches a token and reconnects.
	closeTokenExpired ws.StatusCode = 4001
	// closeDisconnected ends the connections of a user disconnected with
	// POST /disconnect; clients do not reconnect after it.
	closeDisconnected ws.StatusCode = 4002
	// closeMissed ends a cluster connection some of whose pushes never
	// reached its node (clusterrecovery.go); the client reconnects and
	// resubscribes from its positions.
	closeMissed ws.StatusCode = 4003

	closeReasonTokenExpired = "token expired"
	closeReasonDisconnected = "disconnected by the server"
	closeReasonMissed       = "messages missed: resubscribe from your position"

	// authorizationHeader carries "Bearer <JWT>".
	authorizationHeader = "Authorization"

	// errTooManyUserConns is the "error" of the 429 at -max-conns-per-user.
	errTooManyUserConns = "too_many_connections"
)

// serverAuth is the server's authorization: the Verifier (nil with auth
// off), the refusal counter and the per-user connection counts behind
// -max-conns-per-user. It is shared by every loop; only the counts take a
// lock, once per handshake and once per close of a user's connection.
type serverAuth struct {
	v          *auth.Verifier
	leeway     time.Duration
	maxPerUser int
	refusals   *prometheus.CounterVec

	mu      sync.Mutex
	perUser map[string]int // open connections by sub, with -max-conns-per-user only
}

// newServerAuth builds the server's authorization from cfg: it reads the key
// files (a bad one is an error here, at startup) and starts the JWKS fetches.
func newServerAuth(cfg Config) (*serverAuth, error) {
	a := &serverAuth{
		leeway:     cfg.AuthLeeway,
		maxPerUser: cfg.MaxConnsPerUser,
		refusals:   newServerAuthRefusals(),
	}
	if a.maxPerUser > 0 {
		a.perUser = make(map[string]int)
	}
	ac := auth.Config{
		JWKSURL:         cfg.AuthJWKSURL,
		Audience:        cfg.AuthAudience,
		Issuer:          cfg.AuthIssuer,
		Leeway:          cfg.AuthLeeway,
		AnonymousTopics: cfg.AuthAnonymousTopics,
		Logger:          cfg.Logger,
	}
	var err error
	if cfg.AuthHMACSecretFile != "" {
		if ac.HMACSecret, err = auth.LoadHMACSecretFile(cfg.AuthHMACSecretFile); err != nil {
			return nil, fmt.Errorf("-auth-hmac-secret-file: %w", err)
		}
	}
	if cfg.AuthPublicKeyFile != "" {
		if ac.PublicKey, err = auth.LoadPublicKeyFile(cfg.AuthPublicKeyFile); err != nil {
			return nil, fmt.Errorf("-auth-public-key-file: %w", err)
		}
	}
	if !ac.Enabled() {
		if len(cfg.AuthAnonymousTopics) > 0 || cfg.AuthAudience != "" || cfg.AuthIssuer != "" {
			return nil, fmt.Errorf("-auth-anonymous-topics, -auth-audience and -auth-issuer need a key (-auth-hmac-secret-file, -auth-public-key-file or -auth-jwks-url)")
		}
		if cfg.MaxConnsPerUser > 0 {
			return nil, fmt.Errorf("-max-conns-per-user needs auth on: without a token no connection has a user")
		}
		return a, nil
	}
	if a.v, err = auth.New(ac); err != nil {
		return nil, err
	}
	if ac.JWKSURL != "" {
		// Handshakes are refused with unknown_key until the first set is in:
		// give the fetch a moment before accepting any, never forever.
		ctx, cancel := context.WithTimeout(context.Background(), jwksStartWait)
		defer cancel()
		if err := a.v.WaitReady(ctx); err != nil {
			cfg.Logger.Warn("starting without the JWKS: its tokens are refused (unknown_key) until it is fetched", "err", err)
		}
	}
	return a, nil
}

// jwksStartWait bounds the wait for the first JWKS at start.
const jwksStartWait = 5 * time.Second

// newServerAuthRefusals is wspush_auth_refusals_total with every reason's
// series at zero.
func newServerAuthRefusals() *prometheus.CounterVec {
	v := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wspush_auth_refusals_total",
		Help: "Connection tokens and topics refused by authorization (handshakes, sub, pub, refresh), by reason.",
	}, []string{"reason"})
	for _, r := range auth.Reasons() {
		v.WithLabelValues(string(r))
	}
	return v
}

// on reports whether auth is on. A nil serverAuth (a Server not built by
// New, in the handshake fuzz test) is auth off.
func (a *serverAuth) on() bool { return a != nil && a.v != nil }

func (a *serverAuth) close() {
	if a.on() {
		a.v.Close()
	}
}

// refused counts a refusal and returns its reason.
func (a *serverAuth) refused(err error) auth.Reason {
	r := auth.ReasonOf(err)
	if r == "" {
		r = auth.ReasonMalformed
	}
	a.refusals.WithLabelValues(string(r)).Inc()
	return r
}

// acquire takes one of user's -max-conns-per-user slots; false when all are
// taken.
func (a *serverAuth) acquire(user string) bool {
	if a.perUser == nil {
		return true
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.perUser[user] >= a.maxPerUser {
		return false
	}
	a.perUser[user]++
	return true
}

func (a *serverAuth) release(user string) {
	if a.perUser == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.perUser[user]--; a.perUser[user] <= 0 {
		delete(a.perUser, user)
	}
}

// authLoop is one loop's authorization state: the handshake in progress
// (what its hooks found) and the loop's user index, for the server API.
// Owned by the loop's goroutine.
type authLoop struct {
	target string                // the request target, for its token parameter
	header string                // the Authorization header's value, "" when none
	claims *auth.Claims          // what the handshake's token allows, once verified
	resp   []byte                // the JSON refusal a hook decided on, nil when none
	users  map[string][]*session // sub -> the loop's connections of that user
}

// reset forgets the previous handshake's auth state; runUpgrader calls it
// before each handshake, whose hooks may not all run.
func (a *authLoop) reset() {
	a.target, a.header, a.claims, a.resp = "", "", nil, nil
}

// authRequest is onRequest's part: it keeps the request target, where the
// token query parameter is.
func (ls *loopServer) authRequest(uri []byte) {
	if ls.srv.auth.on() {
		ls.auth.target = string(uri) // uri is the Upgrader's buffer
	}
}

// authHeader is onHeader's part: it keeps the Authorization header.
func (ls *loopServer) authHeader(key, value []byte) error {
	if !ls.srv.auth.on() || !bytes.EqualFold(key, []byte(authorizationHeader)) {
		return nil
	}
	if ls.auth.header != "" {
		return ls.authReject(&auth.Error{Reason: auth.ReasonMalformed, Message: "Authorization header given twice"})
	}
	ls.auth.header = string(value)
	return nil
}

// authorize is onBeforeUpgrade's part: the token is verified (or the
// connection taken as anonymous) and every ?topics= topic checked against
// it. It never blocks: JWKS keys are fetched in the background.
func (ls *loopServer) authorize() error {
	a := &ls.auth
	srv := ls.srv
	if !srv.auth.on() {
		return nil
	}
	tok, err := auth.RequestToken(a.target, a.header)
	var claims *auth.Claims
	switch {
	case auth.ReasonOf(err) == auth.ReasonMissing:
		claims, err = srv.auth.v.Anonymous()
	case err == nil:
		claims, err = srv.auth.v.Verify(tok)
	}
	if err != nil {
		return ls.authReject(err)
	}
	for _, t := range ls.topics {
		if err := claims.CheckSubscribe(t); err != nil {
			return ls.authReject(err)
		}
	}
	a.claims = claims
	return nil
}

// authReject refuses the handshake for an auth refusal: 401 or 403 with
// {"error":"<reason>"}.
func (ls *loopServer) authReject(err error) error {
	r := ls.srv.auth.refused(err)
	status := r.Status()
	ls.srv.log.Debug("handshake refused by auth", "reason", r, "err", err) // messages never hold the token
	ls.auth.resp = httpJSONError(status, string(r))
	return ls.reject(reasonAuth, status, string(r))
}

// httpJSONError is an HTTP error response whose body is {"error":code}.
func httpJSONError(status int, code string) []byte {
	body, _ := json.Marshal(map[string]string{"error": code})
	return fmt.Appendf(nil, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"+
		"Content-Length: %d\r\nConnection: close\r\n\r\n%s", status, http.StatusText(status), len(body), body)
}

// admit gives an upgraded connection its claims and user: over
// -max-conns-per-user the handshake is answered 429 instead and admit
// returns false. The user's connection is then in the loop's user index
// until it closes (authClosed).
func (s *session) admit(claims *auth.Claims) bool {
	if claims == nil {
		return true // auth off
	}
	if !claims.Anonymous {
		if !s.srv.auth.acquire(claims.Subject) {
			s.refused(handshakeResult{status: http.StatusTooManyRequests, reason: reasonMaxUserConns,
				resp: httpJSONError(http.StatusTooManyRequests, errTooManyUserConns)})
			return false
		}
		idx := &s.ls().auth.users
		if *idx == nil {
			*idx = make(map[string][]*session)
		}
		(*idx)[claims.Subject] = append((*idx)[claims.Subject], s)
	}
	s.claims = claims
	return true
}

// authClosed takes a closed connection out of its user's slots and the
// loop's user index.
func (s *session) authClosed() {
	c := s.claims
	if c == nil || c.Anonymous {
		return
	}
	s.claims = nil
	s.srv.auth.release(c.Subject)
	idx := s.ls().auth.users
	list := idx[c.Subject]
	for i, o := range list {
		if o == s {
			list[i] = list[len(list)-1]
			list[len(list)-1] = nil
			list = list[:len(list)-1]
			break
		}
	}
	if len(list) == 0 {
		delete(idx, c.Subject)
	} else {
		idx[c.Subject] = list
	}
}

// user is the connection's sub, "" when anonymous or with auth off.
func (s *session) user() string {
	if s.claims == nil {
		return ""
	}
	return s.claims.Subject
}

// expiry is when the connection's token stops being valid (exp plus the
// leeway); zero when it never expires (auth off, anonymous).
func (s *session) expiry() time.Time {
	if s.claims == nil || s.claims.ExpiresAt.IsZero() {
		return time.Time{}
	}
	return s.claims.ExpiresAt.Add(s.srv.auth.leeway)
}

// expired closes the connection with 4001 when its token's expiry has
// passed, and reports whether it did.
func (s *session) expired(now time.Time) bool {
	exp := s.expiry()
	if exp.IsZero() || now.Before(exp) {
		return false
	}
	s.srv.log.Debug("closing connection: token expired", "user", s.user())
	s.closeWith(closeTokenExpired, closeReasonTokenExpired)
	return true
}

// authError answers a refused command for topic with
// {"op":"error","error":"<reason>","topic":"<topic>"}.
func (s *session) authError(err error, topic string) {
	r := s.srv.auth.refused(err)
	s.reply(reply{Op: "error", Error: string(r), Topic: topic})
}

// checkSubscribe asks the connection's claims whether it may subscribe to
// topic; nil with auth off. Called once per subscription, never per push.
func (s *session) checkSubscribe(topic string) error {
	if s.claims == nil {
		return nil
	}
	return s.claims.CheckSubscribe(topic)
}

// checkPublish asks the connection's claims whether it may publish to topic.
func (s *session) checkPublish(topic string) error {
	if s.claims == nil {
		return nil
	}
	return s.claims.CheckPublish(topic)
}

// refreshedReply answers a refresh: the new token's exp in Unix seconds.
type refreshedReply struct {
	Op  string `json:"op"`
	Exp int64  `json:"exp"`
}

// refresh replaces the connection's token: {"op":"refresh","token":...}.
// The new token must verify and name the same sub; subscriptions it no
// longer allows end with "unsubscribed", and the expiry moves to its exp.
// A refused refresh leaves the connection on its current token.
func (s *session) refresh(token string) {
	if !s.srv.auth.on() {
		s.reply(errorReply(`"refresh" needs auth: this server checks no tokens`))
		return
	}
	if s.claims == nil || s.claims.Anonymous {
		s.authError(&auth.Error{Reason: auth.ReasonSubMismatch, Message: "an anonymous connection cannot be refreshed"}, "")
		return
	}
	next, err := s.srv.auth.v.Verify(token)
	if err == nil {
		err = s.claims.CheckRefresh(next)
	}
	if err != nil {
		s.authError(err, "")
		return
	}
	s.claims = next // same sub: the user index and slots are unchanged
	for i := 0; i < len(s.topics); {
		name := s.topics[i].Name()
		if next.CheckSubscribe(name) == nil {
			i++
			continue
		}
		s.unsubscribe(name) // removes s.topics[i]
		s.reply(reply{Op: "unsubscribed", Topic: name})
	}
	b, _ := json.Marshal(refreshedReply{Op: opRefreshed, Exp: next.ExpiresAt.Unix()})
	s.send(frames.AppendFrame(nil, ws.OpText, true, b))
	s.setOpenTimer(s.keepaliveDeadline())
}
