package server

import (
	"log/slog"
	"runtime"
	"time"

	"github.com/wspush/wspush/internal/defaults"
	"github.com/wspush/wspush/pubsub"
)

// Config is everything a Server is told at start. The zero value of a field
// means its default (see Defaults).
type Config struct {
	Listen           string        // public address: WebSocket, demo page, client script
	Admin            string        // admin address: publish, metrics, health, pprof; "" disables it; loopback by default (docs/security.md)
	Loops            int           // event loops
	MaxConns         int           // WebSocket connections; over it handshakes get 503
	MaxMessage       int           // bytes of a client message (and of a published body)
	MaxHeader        int           // bytes of a handshake request
	MaxBuffered      int           // bufferedAmount past which a connection is a slow consumer
	MaxSubs          int           // topics one connection may hold
	MaxInFlight      int           // publishes the loops hand out at once; more wait
	SendBuffer       int           // SO_SNDBUF of accepted sockets; 0 keeps the kernel's default
	HandshakeTimeout time.Duration // to receive the whole handshake request
	PingInterval     time.Duration // silence after which the server pings
	IdleTimeout      time.Duration // silence after which the server closes
	CloseTimeout     time.Duration // wait for the peer's close frame after sending ours
	ShutdownTimeout  time.Duration // graceful shutdown budget
	AllowedOrigins   []string      // Origin values accepted besides the same origin (origin.go); "*" accepts all
	Subprotocols     []string      // Sec-WebSocket-Protocol values the server selects
	Echo             bool          // serve GET /echo
	ClientPublish    bool          // allow the "pub" command
	Compression      bool          // negotiate permessage-deflate (RFC 7692) with clients that offer it
	PublishToken     string        // the admin token: bearer token every admin endpoint but /healthz requires (adminauth.go)
	Broker           string        // comma-separated NATS URLs of the cluster broker; "" keeps publishes on this node (docs/cluster.md)
	Logger           *slog.Logger

	// Safe defaults and per-peer limits (issue 10, docs/security.md).
	Pprof         bool          // mount /debug/pprof/ on the admin port (never its cmdline)
	MetricsPublic bool          // serve /metrics without the admin token
	AdminTimeout  time.Duration // an admin request's whole read (header and body) and a keep-alive's idle wait; writes get twice it
	MaxConnsPerIP int           // TCP connections from one peer address, upgraded or not; over it 429
	CommandRate   int           // commands a connection may send per second, on average (token bucket)
	CommandBurst  int           // commands a connection may send at once (the bucket's size)

	// Cluster stream limits and retried publishes (docs/cluster.md).
	BrokerMaxBytes    int64         // bytes the cluster stream holds; past it the oldest messages go
	BrokerMaxAge      time.Duration // how long the cluster stream keeps a message
	IdempotencyWindow time.Duration // how long an Idempotency-Key is remembered (the stream's duplicate window in cluster mode)
	IdempotencyKeys   int           // Idempotency-Keys a single node remembers; past it the oldest are forgotten
	BrokerIngestBytes int64         // bytes of cluster messages the loops may hold at once; past it the ingest goroutine waits
}

// Defaults returns the configuration `wspush` runs with when given no flags:
// every flag of cmd/wspush takes its default from here, and New fills a zero
// (or negative) field of its Config with the value here.
func Defaults() Config {
	return Config{
		Listen:           ":8080",
		Admin:            "127.0.0.1:8081",
		Loops:            runtime.GOMAXPROCS(0),
		MaxConns:         1_000_000,
		MaxMessage:       1 << 20,
		MaxHeader:        8 << 10,
		MaxBuffered:      1 << 20,
		MaxSubs:          100,
		MaxInFlight:      pubsub.MaxInFlight,
		SendBuffer:       0, // the kernel's default (tcp_wmem autotuning)
		HandshakeTimeout: 10 * time.Second,
		PingInterval:     25 * time.Second,
		IdleTimeout:      60 * time.Second,
		CloseTimeout:     3 * time.Second,
		ShutdownTimeout:  10 * time.Second,
		Logger:           slog.Default(),

		AdminTimeout:  10 * time.Second,
		MaxConnsPerIP: 1000,
		CommandRate:   100,
		CommandBurst:  200,

		// Cluster stream limits and retried publishes.
		BrokerMaxBytes:    1 << 30,
		BrokerMaxAge:      time.Hour,
		IdempotencyWindow: 2 * time.Minute,
		IdempotencyKeys:   100_000,
		BrokerIngestBytes: pubsub.DefaultMaxIngestBytes,
	}
}

// withDefaults fills the unset fields of c from Defaults: zero (or negative)
// numbers and durations and a nil Logger (internal/defaults). Strings, lists
// and switches are taken as given: their zero value means something (Admin ""
// turns the admin API off).
func (c Config) withDefaults() Config {
	defaults.Fill(&c, Defaults())
	return c
}
