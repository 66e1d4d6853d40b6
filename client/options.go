package client

import (
	"context"
	"log/slog"
	"net/http"
	"time"
)

// TokenSource returns the token (a JWT) the client presents. It is called
// before every connection attempt, before the current token's exp to refresh
// it on the open connection, and after a close 4001. ctx bounds the call.
// For a refresh it must return a token whose exp is later than the current
// one's; otherwise, or when it fails, the refresh is retried at shorter and
// shorter intervals until exp, and after the server's close 4001 the client
// reconnects with whatever the source returns next.
type TokenSource func(ctx context.Context) (string, error)

// Option configures a Client in Dial. A duration or size of zero or less
// keeps its default.
type Option func(*config)

// config is what the options set; see the With functions for the meaning of
// each field and its default.
type config struct {
	token           TokenSource
	staticToken     bool // WithToken: nothing to refresh to
	tokenInQuery    bool
	header          http.Header
	httpClient      *http.Client
	minBackoff      time.Duration
	maxBackoff      time.Duration
	dialTimeout     time.Duration
	writeTimeout    time.Duration
	refreshBefore   time.Duration
	maxBuffered     int
	readLimit       int64
	reconnect       bool
	afterDisconnect bool

	onConnect    func()
	onDisconnect func(error)
	onRecovery   func(Recovery)
	onError      func(error)
	logger       *slog.Logger
}

// withDefaults replaces the settings left at zero or below by the defaults.
func (c config) withDefaults() config {
	d := defaults()
	fix := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	fix(&c.minBackoff, d.minBackoff)
	fix(&c.maxBackoff, d.maxBackoff)
	c.maxBackoff = max(c.maxBackoff, c.minBackoff)
	fix(&c.dialTimeout, d.dialTimeout)
	fix(&c.writeTimeout, d.writeTimeout)
	fix(&c.refreshBefore, d.refreshBefore)
	if c.maxBuffered <= 0 {
		c.maxBuffered = d.maxBuffered
	}
	if c.readLimit <= 0 {
		c.readLimit = d.readLimit
	}
	return c
}

func defaults() config {
	return config{
		minBackoff:    500 * time.Millisecond,
		maxBackoff:    30 * time.Second,
		dialTimeout:   10 * time.Second,
		writeTimeout:  10 * time.Second,
		refreshBefore: 30 * time.Second,
		maxBuffered:   1 << 20,
		readLimit:     4 << 20,
		reconnect:     true,
	}
}

// WithToken presents a fixed token. It cannot be refreshed: when it expires
// the server closes the connection (4001) and reconnecting with it fails.
// Use WithTokenSource for tokens that expire.
func WithToken(token string) Option {
	return func(c *config) {
		c.token = func(context.Context) (string, error) { return token, nil }
		c.staticToken = true
	}
}

// WithTokenSource fetches the token before each connection attempt and
// whenever it must be refreshed (see TokenSource). The token's exp claim,
// read from the JWT payload without verifying it, schedules the refresh.
func WithTokenSource(src TokenSource) Option {
	return func(c *config) { c.token, c.staticToken = src, false }
}

// WithTokenInQuery sends the token as the URL's token parameter instead of
// an "Authorization: Bearer" header. The header is the default: query strings
// end up in proxies' access logs.
func WithTokenInQuery() Option {
	return func(c *config) { c.tokenInQuery = true }
}

// WithHeader adds request headers to every handshake.
func WithHeader(h http.Header) Option {
	return func(c *config) { c.header = h.Clone() }
}

// WithHTTPClient sets the HTTP client of the handshake (TLS settings, a
// proxy). Its Timeout must be zero; WithDialTimeout bounds the handshake.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *config) { c.httpClient = hc }
}

// WithBackoff sets the reconnect waits: before attempt n (from 0) the Client
// waits a random duration in [0, min(max, min·2ⁿ)) ("full jitter", so a
// fleet of clients does not reconnect in step). Defaults 500ms and 30s; a
// value of zero or less keeps its default, and max is at least min.
func WithBackoff(min, max time.Duration) Option {
	return func(c *config) {
		c.minBackoff, c.maxBackoff = min, max
	}
}

// WithDialTimeout bounds one connection attempt (TCP, TLS, handshake).
// Default 10s.
func WithDialTimeout(d time.Duration) Option {
	return func(c *config) { c.dialTimeout = d }
}

// WithWriteTimeout bounds the write of one frame; a write that takes longer
// ends the connection. Default 10s.
func WithWriteTimeout(d time.Duration) Option {
	return func(c *config) { c.writeTimeout = d }
}

// WithRefreshBefore sets how long before the token's exp the Client refreshes
// it: at most d, and at most a third of the token's remaining lifetime, so
// short-lived tokens are refreshed too. Default 30s.
func WithRefreshBefore(d time.Duration) Option {
	return func(c *config) { c.refreshBefore = d }
}

// WithMaxBuffered bounds the bytes of publishes queued and not yet written
// (the client's bufferedAmount). Default 1 MiB.
func WithMaxBuffered(n int) Option {
	return func(c *config) { c.maxBuffered = n }
}

// WithReadLimit sets the largest message the Client accepts; a larger one
// ends the connection (close 1009). Default 4 MiB, above the server's
// default -max-message of 1 MiB plus the push's envelope.
func WithReadLimit(n int64) Option {
	return func(c *config) { c.readLimit = n }
}

// WithoutReconnect makes the Client end when its connection ends: Done is
// closed and Err says why.
func WithoutReconnect() Option {
	return func(c *config) { c.reconnect = false }
}

// WithReconnectAfterDisconnect makes the Client reconnect also after close
// 4002, when the server API disconnected its user. By default it does not:
// someone meant this connection to end.
func WithReconnectAfterDisconnect() Option {
	return func(c *config) { c.afterDisconnect = true }
}

// WithConnectHandler calls fn each time a connection is established, the
// first one (in Dial) included, once the resubscription of the held topics
// is queued on it. It runs on the goroutine that dialed.
func WithConnectHandler(fn func()) Option {
	return func(c *config) { c.onConnect = fn }
}

// WithDisconnectHandler calls fn with the reason each time a connection ends
// (a *CloseError when the server sent a close frame), and with each failed
// reconnect attempt's error. It runs on the supervising goroutine.
func WithDisconnectHandler(fn func(error)) Option {
	return func(c *config) { c.onDisconnect = fn }
}

// WithRecoveryHandler calls fn with the outcome of every resubscription
// after a reconnect, one per topic (see Recovery). It runs on the read
// goroutine, before any push the server sends after the answer.
func WithRecoveryHandler(fn func(Recovery)) Option {
	return func(c *config) { c.onRecovery = fn }
}

// WithErrorHandler calls fn with errors no call returns: a *ServerError
// answering a Publish or a token refresh, a *ServerUnsubscribeError, a
// resubscription the server refused, a token source that failed before a
// refresh. It runs on the read or the supervising goroutine.
func WithErrorHandler(fn func(error)) Option {
	return func(c *config) { c.onError = fn }
}

// WithLogger logs connection changes at Info and dropped frames at Debug.
// The default discards them.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) { c.logger = l }
}
