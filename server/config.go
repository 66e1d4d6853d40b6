package server

import (
	"log/slog"
	"time"
)

// Config is everything a Server is told at start. The zero value of a field
// means its default (see Defaults).
type Config struct {
	Listen           string        // public address: WebSocket, demo page, client script
	Admin            string        // admin address: publish, metrics, health, pprof; "" disables it
	Loops            int           // event loops
	MaxConns         int           // WebSocket connections; over it handshakes get 503
	MaxMessage       int           // bytes of a client message (and of a published body)
	MaxHeader        int           // bytes of a handshake request
	MaxBuffered      int           // bufferedAmount past which a connection is a slow consumer
	MaxSubs          int           // topics one connection may hold
	MaxInFlight      int           // publishes the loops hand out at once; more wait (pubsub.MaxInFlight)
	SendBuffer       int           // SO_SNDBUF of accepted sockets; 0 keeps the kernel's default
	HandshakeTimeout time.Duration // to receive the whole handshake request
	PingInterval     time.Duration // silence after which the server pings
	IdleTimeout      time.Duration // silence after which the server closes
	CloseTimeout     time.Duration // wait for the peer's close frame after sending ours
	ShutdownTimeout  time.Duration // graceful shutdown budget
	AllowedOrigins   []string      // Origin values accepted; empty accepts all
	Subprotocols     []string      // Sec-WebSocket-Protocol values the server selects
	Echo             bool          // serve GET /echo
	ClientPublish    bool          // allow the "pub" command
	Compression      bool          // negotiate permessage-deflate (RFC 7692) with clients that offer it
	PublishToken     string        // bearer token required by POST /publish
	Broker           string        // comma-separated NATS URLs of the cluster broker; "" keeps publishes on this node (docs/cluster.md)
	Logger           *slog.Logger
}

// Defaults returns the configuration `wspush` runs with when given no flags.
func Defaults() Config {
	return Config{
		Listen:           ":8080",
		Admin:            ":8081",
		MaxConns:         1_000_000,
		MaxMessage:       1 << 20,
		MaxHeader:        8 << 10,
		MaxBuffered:      1 << 20,
		MaxSubs:          100,
		HandshakeTimeout: 10 * time.Second,
		PingInterval:     25 * time.Second,
		IdleTimeout:      60 * time.Second,
		CloseTimeout:     3 * time.Second,
		ShutdownTimeout:  10 * time.Second,
	}
}

func (c Config) withDefaults() Config {
	d := Defaults()
	set := func(v *int, def int) {
		if *v <= 0 {
			*v = def
		}
	}
	setDur := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	set(&c.Loops, 1)
	set(&c.MaxConns, d.MaxConns)
	set(&c.MaxMessage, d.MaxMessage)
	set(&c.MaxHeader, d.MaxHeader)
	set(&c.MaxBuffered, d.MaxBuffered)
	set(&c.MaxSubs, d.MaxSubs)
	setDur(&c.HandshakeTimeout, d.HandshakeTimeout)
	setDur(&c.PingInterval, d.PingInterval)
	setDur(&c.IdleTimeout, d.IdleTimeout)
	setDur(&c.CloseTimeout, d.CloseTimeout)
	setDur(&c.ShutdownTimeout, d.ShutdownTimeout)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}
