package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wspush/wspush/netpoll"
	"github.com/wspush/wspush/pubsub"
	"github.com/wspush/wspush/pubsub/natsbroker"
)

// Server is a running wspush node.
type Server struct {
	cfg    Config
	log    *slog.Logger
	group  *netpoll.Group
	loops  []*loopServer // indexed by loop ID
	hub    *pubsub.Hub
	broker pubsub.Broker
	nats   *natsbroker.Broker // the cluster broker with -broker, else nil
	done   chan struct{}      // closed when the server stops: ends the client publishers and the recovery workers

	recoveries     chan recoveryRead // cluster recoveries' reads of the stream, for the workers (clusterrecovery.go)
	recoverySkips  atomic.Uint64     // reads the workers skipped: their connection had closed
	recoveryShares atomic.Uint64     // reads answered by another worker's request (recoveryshare.go)
	readShare      readShare         // stream reads in flight and just done, by key (recoveryshare.go)
	recent         *recentKeys       // a single node's Idempotency-Keys (idempotency.go); nil with a cluster broker
	origins        originPolicy      // who may open a WebSocket from a browser page (origin.go)

	admin   *http.Server
	adminLn net.Listener
	metrics *metrics
	limits  *limitMetrics
	auth    *serverAuth   // tokens and permissions (auth.go)
	nodeID  string        // names this node in control messages (adminapi.go)
	tls     *serverTLS    // nil: plain TCP
	proxy   *serverProxy  // nil: no PROXY protocol
	batch   *batchMetrics // of the batch endpoints (batch.go)

	open         atomic.Int64 // upgraded connections
	peers        *peerTable   // TCP connections per peer address, for -max-conns-per-ip (peerlimit.go)
	buffered     bufferedScan // the last bufferedAmount scan, shared by scrapes (metrics.go)
	shuttingDown atomic.Bool
	sweepDone    chan struct{} // closed to stop the history sweeper (history.go); nil without one
	epoch        time.Time     // the zero of the sessions' monotonic clock (clock.go)
}

// The bounds of -read-buffer: below 4 KiB a loop spends a syscall on every
// few frames of a busy connection; above 16 MiB one connection's turn would
// hold its loop for milliseconds, which the budget exists to prevent.
const (
	minReadBuffer = 4 << 10
	maxReadBuffer = 16 << 20
)

// New starts a server: its event loops listen on cfg.Listen and its admin API
// on cfg.Admin.
func New(cfg Config) (*Server, error) {
	cfg = cfg.withDefaults()
	if cfg.ReadBuffer < minReadBuffer || cfg.ReadBuffer > maxReadBuffer {
		return nil, fmt.Errorf("-read-buffer %d: want %d to %d bytes", cfg.ReadBuffer, minReadBuffer, maxReadBuffer)
	}
	s := &Server{cfg: cfg, log: cfg.Logger, epoch: time.Now()}
	origins, err := newOriginPolicy(cfg.AllowedOrigins)
	if err != nil {
		return nil, err
	}
	if s.auth, err = newServerAuth(cfg); err != nil {
		return nil, err
	}
	s.origins = origins
	s.log.Info("WebSocket origin policy", "policy", s.origins.String(), "allowed_origins", cfg.AllowedOrigins)
	s.peers = newPeerTable(cfg.MaxConnsPerIP)

	if cfg.ProxyProtocol {
		p, err := newServerProxy(cfg)
		if err != nil {
			return nil, err
		}
		s.proxy = p
	}
	var gate netpoll.AcceptGate
	if cfg.TLSCert != "" || cfg.TLSKey != "" {
		t, err := newServerTLS(cfg)
		if err != nil {
			return nil, err
		}
		s.tls, gate = t, t
	}
	group, err := netpoll.Listen(netpoll.Config{
		Addr:       cfg.Listen,
		Loops:      cfg.Loops,
		Handler:    handler{s},
		SendBuffer: cfg.SendBuffer,
		// Over 1/16 of -max-buffered a connection is not read: a peer that
		// does not read what it is sent is held back by TCP (limits.go).
		PauseReadAt: cfg.MaxBuffered / pauseReadDivisor,
		MaxTasks:    cfg.MaxLoopTasks,
		ReadBuffer:  cfg.ReadBuffer,
		PoolIdle:    cfg.PoolIdle,
		Tick:        tickFor(cfg),
		Logger:      s.log,
		AcceptGate:  gate,
	})
	if err != nil {
		s.auth.close()
		s.stopTLS()
		return nil, fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	s.group = group
	execs := make([]pubsub.Executor, len(group.Loops()))
	for i, l := range group.Loops() {
		execs[i] = l
		s.loops = append(s.loops, newLoopServer(s, l))
	}
	var interest func(topic string, active bool)
	if cfg.Broker != "" {
		s.nats, err = natsbroker.New(natsbroker.Config{
			URLs: cfg.Broker, Name: "wspush " + group.Addr().String(), Logger: s.log,
			MaxBytes: cfg.BrokerMaxBytes, MaxAge: cfg.streamMaxAge(), MaxPerTopic: cfg.streamPerTopic(), DedupWindow: cfg.IdempotencyWindow,
		})
		if err != nil {
			group.Close()
			s.auth.close()
			return nil, err
		}
		interest = s.nats.SetInterest
	} else {
		s.recent = newRecentKeys(cfg.IdempotencyKeys, cfg.IdempotencyWindow)
	}
	s.hub = pubsub.NewHub(execs, interest)
	s.hub.SetMaxInFlight(cfg.MaxInFlight)
	if err := s.startHistory(); err != nil {
		group.Close()
		return nil, err
	}
	s.hub.SetMaxIngestBytes(cfg.BrokerIngestBytes)
	s.broker = s.hub
	if s.nats != nil {
		s.nats.Attach(s.hub)
		s.broker = s.nats
		s.done = make(chan struct{})
		for _, ls := range s.loops {
			ls.publishes = make(chan clientPublish, clientPublishQueue)
			go ls.publishClients(s.done)
		}
		s.startRecoveryWorkers(s.done)
	}
	s.metrics = newMetrics(s)
	s.metrics.registerTLSMetrics(s)
	if s.proxy != nil {
		s.metrics.reg.MustRegister(s.proxy.failures)
	}
	if cfg.Admin != "" {
		if err := s.startAdmin(); err != nil {
			s.Close()
			return nil, err
		}
	}
	if err := group.Start(); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.startControl(); err != nil {
		s.Close()
		return nil, err
	}
	s.log.Info("wspush listening", "addr", group.Addr().String(), "admin", s.AdminAddr(), "loops", len(s.loops), "tls", s.tls != nil)
	return s, nil
}

// tickFor picks the timer wheel resolution: fine enough for the shortest
// timeout, never so fine that idle loops wake often.
func tickFor(cfg Config) time.Duration {
	d := min(cfg.HandshakeTimeout, cfg.PingInterval, cfg.CloseTimeout) / 4
	return max(5*time.Millisecond, min(d, 100*time.Millisecond))
}

// Addr is the public address.
func (s *Server) Addr() *net.TCPAddr { return s.group.Addr() }

// AdminAddr is the admin API's address, "" when it is off.
func (s *Server) AdminAddr() string {
	if s.adminLn == nil {
		return ""
	}
	return s.adminLn.Addr().String()
}

// Hub is the server's topic table: an embedding program may publish through
// it. With a cluster broker (Config.Broker) publish with Server.Publish
// instead: Hub.Publish reaches this node's subscribers only.
func (s *Server) Hub() *pubsub.Hub { return s.hub }

// Registry is the server's Prometheus registry.
func (s *Server) Registry() *prometheus.Registry { return s.metrics.reg }

// Conns is the number of upgraded connections.
func (s *Server) Conns() int { return int(s.open.Load()) }

// Publish publishes data, a JSON value, to topic through the server's broker.
func (s *Server) Publish(ctx context.Context, topic string, data []byte) (pubsub.Published, error) {
	if s.shuttingDown.Load() {
		return pubsub.Published{}, ErrShuttingDown
	}
	return s.broker.Publish(ctx, topic, data)
}

// ErrShuttingDown is returned by Publish once Shutdown has begun.
var ErrShuttingDown = errors.New("server is shutting down")

// Shutdown stops accepting, sends close 1001 to every client, waits for them
// to close (or for ctx), then closes what is left and the admin API.
func (s *Server) Shutdown(ctx context.Context) error {
	if !s.shuttingDown.CompareAndSwap(false, true) {
		return nil
	}
	s.group.StopAccepting()
	s.group.Each(func(l *netpoll.Loop) {
		// Closing removes connections from l.Conns: walk a copy.
		for _, c := range append([]*netpoll.Conn(nil), l.Conns()...) {
			c.Data.(*session).goAway()
		}
	})
	var err error
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for s.tcpConns() > 0 && err == nil {
		select {
		case <-ctx.Done():
			err = fmt.Errorf("shutdown: %d connections left: %w", s.tcpConns(), ctx.Err())
		case <-tick.C:
		}
	}
	s.group.Close()
	s.stopBroker()
	s.stopHistory()
	s.auth.close()
	s.stopTLS()
	if s.admin != nil {
		actx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		s.admin.Shutdown(actx)
	}
	return err
}

// Close stops everything at once, without the close handshake.
func (s *Server) Close() {
	s.shuttingDown.Store(true)
	s.group.Close()
	s.stopBroker()
	s.stopHistory()
	s.auth.close()
	s.stopTLS()
	if s.admin != nil {
		s.admin.Close()
	}
}

// tcpConns counts accepted sockets not yet closed, upgraded or not.
func (s *Server) tcpConns() int64 {
	var n int64
	for _, l := range s.group.Loops() {
		n += l.Stats.Conns.Load()
	}
	return n
}

func (s *Server) stopBroker() {
	if s.nats == nil {
		return
	}
	select {
	case <-s.done:
	default:
		close(s.done)
	}
	s.nats.Close()
}
