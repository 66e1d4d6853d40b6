// Command wspush is the WebSocket push server. See README.md and
// docs/protocol.md; `wspush -h` lists the flags and their environment
// variables.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/wspush/wspush/netpoll"
	"github.com/wspush/wspush/server"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) || errors.Is(err, errVersionPrinted) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "wspush:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	cfg, logLevel, err := parseFlags(args)
	if err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		return fmt.Errorf("-log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	cfg.Logger = log

	limit, err := netpoll.RaiseOpenFiles()
	if err != nil {
		log.Warn("could not raise the open files limit", "err", err)
	}
	log.Info("open files limit", "nofile", limit, "max_connections_by_fd", limit-32)

	// Catch the signals before serving: a SIGTERM that comes as soon as the
	// server answers must shut it down gracefully, not kill it.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	var hup chan os.Signal // SIGHUP reloads the TLS certificate
	if cfg.TLSCert != "" {
		hup = make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
	}
	srv, err := server.New(cfg)
	if err != nil {
		return redactErr(err, cfg)
	}
	if hup != nil {
		go reloadOnHUP(srv, hup, log)
	}
	got := <-sig
	log.Info("shutting down", "signal", got.String(), "connections", srv.Conns())
	ctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		log.Warn("shutdown incomplete", "err", err)
	}
	log.Info("stopped")
	return nil
}

// parseFlags reads the configuration from the command line and the
// environment over server.Defaults, which gives every flag its default, and
// returns it with the log level.
func parseFlags(args []string) (server.Config, string, error) {
	cfg := server.Defaults()
	fs := flag.NewFlagSet("wspush", flag.ContinueOnError)
	fs.StringVar(&cfg.Listen, "listen", cfg.Listen, "public `address`: WebSocket /ws, demo page /, client /wspush.js")
	fs.StringVar(&cfg.Admin, "admin", cfg.Admin, "admin API `address`: /publish, /metrics, /healthz, /debug/pprof/ with -pprof (empty: off); loopback by default: set -publish-token before exposing it")
	fs.IntVar(&cfg.Loops, "loops", cfg.Loops, "event loops (the default is GOMAXPROCS: one per core)")
	fs.IntVar(&cfg.MaxConns, "max-conns", cfg.MaxConns, "WebSocket connections; over it handshakes are answered 503")
	fs.IntVar(&cfg.MaxMessage, "max-message", cfg.MaxMessage, "largest publish body and /echo message, in `bytes` (over it: HTTP 413 / close 1009)")
	fs.IntVar(&cfg.MaxCommand, "max-command", cfg.MaxCommand, "largest client message on /ws, in `bytes`, at most -max-message (over it: close 1009)")
	fs.IntVar(&cfg.MaxHeader, "max-header", cfg.MaxHeader, "largest handshake request, in `bytes` (over it: HTTP 431)")
	fs.IntVar(&cfg.MaxBuffered, "max-buffered", cfg.MaxBuffered, "bufferedAmount in `bytes` past which a connection is dropped as a slow consumer (close 1013)")
	fs.IntVar(&cfg.MaxSubs, "max-subs", cfg.MaxSubs, "topics one connection may subscribe to")
	fs.IntVar(&cfg.MaxInFlight, "max-inflight", cfg.MaxInFlight, "publishes the event loops hand out at once, a batch request counting as one on a single node; more wait (a burst shares writevs: higher means less CPU, lower means less latency)")
	fs.IntVar(&cfg.SendBuffer, "sndbuf", cfg.SendBuffer, "SO_SNDBUF of client sockets in `bytes`, bounding the kernel's share of a slow consumer's backlog (0: kernel default, tcp_wmem)")
	fs.DurationVar(&cfg.HandshakeTimeout, "handshake-timeout", cfg.HandshakeTimeout, "time to receive a whole handshake request (slowloris defence)")
	fs.DurationVar(&cfg.PingInterval, "ping-interval", cfg.PingInterval, "silence after which the server pings a client")
	fs.DurationVar(&cfg.IdleTimeout, "idle-timeout", cfg.IdleTimeout, "silence after which the server closes a client (close 1001)")
	fs.DurationVar(&cfg.CloseTimeout, "close-timeout", cfg.CloseTimeout, "wait for the peer's close frame, or its FIN, after the server's last word")
	fs.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", cfg.ShutdownTimeout, "graceful shutdown budget on SIGINT/SIGTERM")
	fs.Var((*listFlag)(&cfg.AllowedOrigins), "allowed-origins", "comma-separated Origin `values` allowed to connect besides the same origin: scheme://host[:port], host[:port], *.domain, or * for any (empty: same origin only)")
	fs.Var((*listFlag)(&cfg.Subprotocols), "subprotocols", "comma-separated Sec-WebSocket-Protocol `values` the server selects")
	fs.BoolVar(&cfg.Echo, "echo", cfg.Echo, "serve GET /echo, a WebSocket echo endpoint (conformance testing)")
	fs.BoolVar(&cfg.ClientPublish, "client-publish", cfg.ClientPublish, `allow clients to publish with {"op":"pub"}`)
	fs.BoolVar(&cfg.Compression, "compression", cfg.Compression, "negotiate permessage-deflate with clients that offer it (pushes are compressed once per message)")
	fs.StringVar(&cfg.PublishToken, "publish-token", cfg.PublishToken, "the admin `token`: Authorization: Bearer token required by every admin endpoint but /healthz (empty: none); prefer -publish-token-file or WSPUSH_PUBLISH_TOKEN")
	fs.StringVar(&cfg.Broker, "broker", cfg.Broker, "cluster broker: comma-separated NATS `URLs` (nats://host:4222,...); empty: this node alone (docs/cluster.md)")
	fs.IntVar(&cfg.HistorySize, "history-size", cfg.HistorySize, "messages of history kept per topic for recovery with \"since\" (0: none, positions only); cluster: the stream's max_msgs_per_subject (at least 1)")
	fs.DurationVar(&cfg.HistoryTTL, "history-ttl", cfg.HistoryTTL, "life of a history message; a topic without subscribers is forgotten (new epoch) this long after its last publish")
	fs.Int64Var(&cfg.HistoryMaxBytes, "history-max-bytes", cfg.HistoryMaxBytes, "`bytes` the history of all topics may hold (frame + 96 per message); past it the oldest messages go first")
	fs.IntVar(&cfg.MaxTopics, "max-topics", cfg.MaxTopics, "topics past which a publish to a topic nobody subscribes is not kept (answered seq 0, as in v1); subscribed topics are always made")
	// What one client can make the server hold (docs/security.md).
	fs.IntVar(&cfg.MaxPendingBytes, "max-pending-bytes", cfg.MaxPendingBytes, "`bytes` of unfinished client messages all connections may hold together, split evenly over the loops (over it: close 1009)")
	fs.DurationVar(&cfg.MessageTimeout, "message-timeout", cfg.MessageTimeout, "time within which a client message must complete once started (over it: close 1008)")
	fs.IntVar(&cfg.ReadBuffer, "read-buffer", cfg.ReadBuffer, "`bytes` of each event loop's read buffer: the most one connection is read per loop turn, so a peer sending without pause cannot hold its loop longer")
	fs.IntVar(&cfg.PoolIdle, "pool-idle", cfg.PoolIdle, "`bytes` of buffers each event loop keeps for reuse (unfinished and reassembled client messages, at most 64 KiB each; never more than about 2.5 MiB in all); more is left to the GC")
	fs.IntVar(&cfg.MaxLoopTasks, "max-loop-tasks", cfg.MaxLoopTasks, "tasks (pushes, client publishes) one event loop may have waiting; past it client publishes are refused and cluster ingest waits")
	// Authorization (issue 12, docs/auth.md): any key flag turns it on.
	fs.StringVar(&cfg.AuthHMACSecretFile, "auth-hmac-secret-file", cfg.AuthHMACSecretFile, "`file` holding the HMAC secret of HS256/384/512 connection tokens (at least 32 bytes; turns auth on)")
	fs.StringVar(&cfg.AuthPublicKeyFile, "auth-public-key-file", cfg.AuthPublicKeyFile, "PEM `file` of the public key of RS*/PS*/ES*/EdDSA connection tokens (turns auth on)")
	fs.StringVar(&cfg.AuthJWKSURL, "auth-jwks-url", cfg.AuthJWKSURL, "JWKS `URL` of the token keys, by kid, fetched in the background (turns auth on)")
	fs.StringVar(&cfg.AuthAudience, "auth-audience", cfg.AuthAudience, "required aud of connection tokens (empty: not checked)")
	fs.StringVar(&cfg.AuthIssuer, "auth-issuer", cfg.AuthIssuer, "required iss of connection tokens (empty: not checked)")
	fs.Var((*listFlag)(&cfg.AuthAnonymousTopics), "auth-anonymous-topics", "comma-separated topic `patterns` connections without a token may subscribe to (empty: they are refused with 401)")
	fs.DurationVar(&cfg.AuthLeeway, "auth-leeway", cfg.AuthLeeway, "clock skew tolerated on a token's exp, nbf and iat")
	fs.IntVar(&cfg.MaxConnsPerUser, "max-conns-per-user", cfg.MaxConnsPerUser, "connections one user (token sub) may hold on this node; over it handshakes are answered 429 (0: no limit)")
	fs.StringVar(&cfg.TLSCert, "tls-cert", cfg.TLSCert, "PEM certificate chain `file`: with -tls-key the public port speaks TLS (wss://, https://); reloaded on SIGHUP and when the files change")
	fs.StringVar(&cfg.TLSKey, "tls-key", cfg.TLSKey, "PEM private key `file` of -tls-cert")
	fs.IntVar(&cfg.TLSHandshakes, "tls-handshakes", cfg.TLSHandshakes, "TLS handshakes running at once (128 per core); more connections wait in the accept backlog")
	fs.DurationVar(&cfg.TLSReloadInterval, "tls-reload-interval", cfg.TLSReloadInterval, "how often the -tls-cert and -tls-key files are checked for a change")
	fs.BoolVar(&cfg.ProxyProtocol, "proxy-protocol", cfg.ProxyProtocol, "every connection on the public port starts with a PROXY protocol v1 or v2 header (HAProxy send-proxy, AWS NLB, nginx proxy_protocol), before TLS; a missing or malformed header closes it")
	fs.StringVar(&cfg.ProxyTrusted, "proxy-trusted", cfg.ProxyTrusted, "comma-separated `CIDRs` of the balancers allowed to send the PROXY header (required with -proxy-protocol); connections from anywhere else are refused")
	// Cluster stream limits and retried publishes (docs/cluster.md).
	fs.Int64Var(&cfg.BrokerMaxBytes, "broker-max-bytes", cfg.BrokerMaxBytes, "`bytes` the cluster stream may hold; past it the oldest messages are dropped (JetStream DiscardOld)")
	fs.DurationVar(&cfg.BrokerMaxAge, "broker-max-age", cfg.BrokerMaxAge, "how long the cluster stream keeps a message (its max_age is the larger of this and -history-ttl)")
	fs.DurationVar(&cfg.IdempotencyWindow, "idempotency-window", cfg.IdempotencyWindow, "how long a POST /publish Idempotency-Key is remembered (cluster: the stream's duplicate window)")
	fs.IntVar(&cfg.RecoveryWorkers, "recovery-workers", cfg.RecoveryWorkers, "cluster: recoveries (since) reading the stream at once")
	fs.IntVar(&cfg.RecoveryQueue, "recovery-queue", cfg.RecoveryQueue, "cluster: recovery reads waiting for a worker; past it a resume is answered recovered:false")
	fs.Int64Var(&cfg.BrokerIngestBytes, "broker-ingest-bytes", cfg.BrokerIngestBytes, "`bytes` of cluster messages the event loops may hold at once; past it the node takes no more from NATS, whose client buffer then drops and counts")
	fs.IntVar(&cfg.IdempotencyKeys, "idempotency-keys", cfg.IdempotencyKeys, "Idempotency-Keys a single node remembers within the window; past it the oldest are forgotten")
	fs.IntVar(&cfg.MaxBatchBytes, "max-batch-bytes", cfg.MaxBatchBytes, "largest body of POST /publish/batch and /broadcast, in `bytes` (over it: HTTP 413)")
	fs.IntVar(&cfg.MaxBatchItems, "max-batch-items", cfg.MaxBatchItems, "most items in one POST /publish/batch, topics in one /broadcast (over it: HTTP 413)")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	showVersion := fs.Bool("version", false, "print the version and exit")

	// Safe defaults and per-peer limits (docs/security.md).
	tokenFile := fs.String("publish-token-file", "", "read the admin token (-publish-token) from this `file`: keeps it off the command line")
	fs.BoolVar(&cfg.Pprof, "pprof", cfg.Pprof, "serve /debug/pprof/ on the admin port, behind the admin token (never /debug/pprof/cmdline)")
	fs.BoolVar(&cfg.MetricsPublic, "metrics-public", cfg.MetricsPublic, "serve /metrics without the admin token")
	fs.DurationVar(&cfg.AdminTimeout, "admin-timeout", cfg.AdminTimeout, "an admin request must arrive whole (header and body) within this; answers get twice it, idle keep-alives are closed after it")
	fs.IntVar(&cfg.MaxConnsPerIP, "max-conns-per-ip", cfg.MaxConnsPerIP, "TCP connections from one peer address, upgraded or not; over it the handshake is answered 429")
	fs.IntVar(&cfg.CommandRate, "command-rate", cfg.CommandRate, "commands per second one connection may send on average (see -command-bytes for what a message costs); over it: \"rate limited\" errors, then close 1008")
	fs.IntVar(&cfg.CommandBurst, "command-burst", cfg.CommandBurst, "commands one connection may send at once, over -command-rate; also the most topics one sub or unsub may name")
	fs.IntVar(&cfg.CommandBytes, "command-bytes", cfg.CommandBytes, "a message costs one command of the rate limit per started `bytes` (a sub or unsub one per topic), pings and pongs one each")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: wspush [flags]\n\nEvery flag can also be set with an environment variable, WSPUSH_ and the flag's\nname in upper case with - as _ (WSPUSH_MAX_BUFFERED=2097152); a flag on the\ncommand line wins.\n\n")
		fs.VisitAll(func(f *flag.Flag) {
			fmt.Fprintf(fs.Output(), "  -%s  (env %s)\n", f.Name, envName(f.Name))
			name, usage := flag.UnquoteUsage(f)
			if name != "" {
				usage = name + ": " + usage
			}
			fmt.Fprintf(fs.Output(), "    \t%s (default %q)\n", usage, f.DefValue)
		})
	}
	if err := fs.Parse(args); err != nil {
		return cfg, "", err
	}
	if *showVersion {
		return cfg, "", printVersion(os.Stdout)
	}
	if err := applyEnv(fs); err != nil {
		return cfg, "", err
	}
	if *tokenFile != "" {
		if cfg.PublishToken != "" {
			return cfg, "", errors.New("-publish-token and -publish-token-file both given: keep one")
		}
		tok, err := readSecretFile(*tokenFile)
		if err != nil {
			return cfg, "", fmt.Errorf("-publish-token-file: %w", err)
		}
		cfg.PublishToken = tok
	}
	if err := historyFlags(&cfg); err != nil {
		return cfg, "", err
	}
	return cfg, *logLevel, nil
}

// envName is the environment variable of a flag: -max-buffered is
// WSPUSH_MAX_BUFFERED.
func envName(flagName string) string {
	return "WSPUSH_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// applyEnv sets every flag not given on the command line from its
// environment variable, when that is set.
func applyEnv(fs *flag.FlagSet) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		v, ok := os.LookupEnv(envName(f.Name))
		if !ok || given[f.Name] || err != nil {
			return
		}
		if e := fs.Set(f.Name, v); e != nil {
			shown := fmt.Sprintf("%q", v)
			if secretFlags[f.Name] {
				shown = redacted
			}
			err = fmt.Errorf("%s=%s: %w", envName(f.Name), shown, e)
		}
	})
	return err
}

// listFlag is a comma-separated list flag; blanks around the values and
// empty values are dropped. Setting it replaces the list.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(s string) error {
	*l = nil
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			*l = append(*l, v)
		}
	}
	return nil
}

// historyFlags checks the history flags and turns -history-size 0 into
// Config.HistoryOff: in a Config a zero size means the default.
func historyFlags(cfg *server.Config) error {
	switch {
	case cfg.HistorySize < 0:
		return fmt.Errorf("-history-size %d: want 0 (off) or more messages per topic", cfg.HistorySize)
	case cfg.HistoryTTL <= 0:
		return fmt.Errorf("-history-ttl %v: want a positive duration", cfg.HistoryTTL)
	case cfg.HistoryMaxBytes <= 0:
		return fmt.Errorf("-history-max-bytes %d: want a positive number", cfg.HistoryMaxBytes)
	}
	cfg.HistoryOff = cfg.HistorySize == 0
	return nil
}
