package server

import (
	"log/slog"
	"runtime"
	"time"

	"github.com/wspush/wspush/internal/bufpool"
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
	MaxMessage       int           // bytes of a published body, and of a client message on /echo
	MaxCommand       int           // bytes of a client message on /ws (a command), at most MaxMessage (v1.1)
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
	CommandBytes  int           // a message costs one token per started CommandBytes; a sub or unsub one per topic (ratelimit.go)

	// Topic history and recovery (v1.1, issue 11), on a single node; a
	// cluster node's history is the stream (docs/cluster.md).
	HistorySize     int           // messages kept per topic
	HistoryOff      bool          // keep no message, only positions (-history-size 0: a zero HistorySize means the default)
	HistoryTTL      time.Duration // a message's life; a topic without subscribers is forgotten this long after its last publish
	HistoryMaxBytes int64         // what the history of all topics may hold (frame + 96 bytes per message)
	MaxTopics       int           // topics past which a publish to a topic without subscribers is not kept (v1 behaviour)

	// What one client can make the server hold (limits.go, docs/security.md).
	MaxPendingBytes int           // bytes of unfinished client messages all connections may hold together, split evenly over the loops
	MessageTimeout  time.Duration // a client message must complete within it once started
	MaxLoopTasks    int           // tasks (pushes, client publishes) one loop may have waiting
	ReadBuffer      int           // bytes of each loop's read buffer: the most one connection is read per loop turn
	PoolIdle        int           // bytes of buffers each loop keeps for reuse (tails, reassembled messages)

	// Authorization (issue 12, docs/auth.md). Any key turns auth on.
	AuthHMACSecretFile  string        // HS256/384/512 secret file
	AuthPublicKeyFile   string        // PEM public key file (RSA, ECDSA, Ed25519)
	AuthJWKSURL         string        // JWKS endpoint, keys by kid, fetched in the background
	AuthAudience        string        // required aud, "" checks none
	AuthIssuer          string        // required iss, "" checks none
	AuthAnonymousTopics []string      // patterns connections without a token may subscribe to; empty refuses them
	AuthLeeway          time.Duration // clock skew tolerated on exp, nbf and iat
	MaxConnsPerUser     int           // connections one sub may hold on this node; 0: no limit

	// Native TLS on the public port (server/tls.go).
	TLSCert           string        // PEM certificate chain; with TLSKey, the public port speaks TLS
	TLSKey            string        // PEM private key of TLSCert
	TLSHandshakes     int           // TLS handshakes running at once; more connections wait in the accept backlog
	TLSReloadInterval time.Duration // how often the certificate files are checked for a change

	// The PROXY protocol on the public port (server/proxy.go).
	ProxyProtocol bool   // every connection starts with a PROXY v1 or v2 header
	ProxyTrusted  string // comma-separated CIDRs of the balancers allowed to send it; others are refused

	// Cluster stream limits and retried publishes (docs/cluster.md).
	BrokerMaxBytes    int64         // bytes the cluster stream holds; past it the oldest messages go
	BrokerMaxAge      time.Duration // how long the cluster stream keeps a message
	IdempotencyWindow time.Duration // how long an Idempotency-Key is remembered (the stream's duplicate window in cluster mode)
	IdempotencyKeys   int           // Idempotency-Keys a single node remembers; past it the oldest are forgotten
	BrokerIngestBytes int64         // bytes of cluster messages the loops may hold at once; past it the ingest goroutine waits
	RecoveryWorkers   int           // (v1.1) cluster recoveries reading the stream at once (clusterrecovery.go)
	RecoveryQueue     int           // (v1.1) cluster recovery reads waiting for a worker; past it a resume is answered recovered:false
	// Batch publishing (v1.1): POST /publish/batch and POST /broadcast.
	MaxBatchBytes int // bytes of a batch or broadcast body (413 over it)
	MaxBatchItems int // items of a batch, topics of a broadcast (413 over it)
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
		MaxCommand:       64 << 10,
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
		HistorySize:      pubsub.DefaultHistorySize,
		HistoryTTL:       pubsub.DefaultHistoryTTL,
		HistoryMaxBytes:  pubsub.DefaultHistoryMaxBytes,
		MaxTopics:        1_000_000,
		Logger:           slog.Default(),

		AdminTimeout:  10 * time.Second,
		MaxConnsPerIP: 1000,
		CommandRate:   100,
		CommandBurst:  200,
		CommandBytes:  16 << 10,

		MaxPendingBytes:   8 << 20,
		MessageTimeout:    30 * time.Second,
		MaxLoopTasks:      1024,
		ReadBuffer:        64 << 10,
		PoolIdle:          bufpool.DefaultMaxIdle,
		TLSHandshakes:     128 * runtime.GOMAXPROCS(0),
		TLSReloadInterval: 10 * time.Second,
		// Cluster stream limits and retried publishes.
		BrokerMaxBytes:    1 << 30,
		BrokerMaxAge:      time.Hour,
		IdempotencyWindow: 2 * time.Minute,
		IdempotencyKeys:   100_000,
		BrokerIngestBytes: pubsub.DefaultMaxIngestBytes,
		RecoveryWorkers:   16,
		RecoveryQueue:     4096,
		MaxBatchBytes:     4 << 20,
		MaxBatchItems:     1000,
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
