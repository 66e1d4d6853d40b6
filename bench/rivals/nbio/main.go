// Command nbio is a rival for wspush's benchmarks: a WebSocket push server on
// github.com/lesismal/nbio (nbhttp + nbhttp/websocket), written the way
// nbio's own examples write one, speaking enough of wspush's wire contract v1
// (docs/protocol.md) for wsbench's connect, fanout and curve scenarios.
//
// It is its own Go module so that wspush's go.mod never gains nbio; build it
// from this directory (bench/rivals.sh does).
//
// Concurrency: nbio's pollers (-npoller epoll goroutines) read and write the
// sockets; the handshake handler and OnMessage run on nbio's task pool. One
// mutex guards the topic table; each topic has its own mutex, held while a
// publish writes to its subscribers so that seq order holds per subscriber.
// A write never blocks: nbio buffers what the socket does not take and
// closes a connection whose buffer passes -max-write-buffer (its
// slow-consumer policy).
//
// Usage:
//
//	nbio -listen 127.0.0.1:8080 -admin 127.0.0.1:8081 [-npoller 2] [-max-write-buffer 262144]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/lesismal/nbio/nbhttp"
)

type config struct {
	npoller        int
	maxLoad        int
	maxWriteBuffer int
	maxSubs        int
	maxMessage     int
	keepalive      time.Duration
	clientPublish  bool
}

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "WebSocket address (nbhttp engine)")
	admin := flag.String("admin", "127.0.0.1:8081", "admin address (POST /publish, /metrics, /healthz; net/http)")
	var cfg config
	flag.IntVar(&cfg.npoller, "npoller", runtime.NumCPU(), "nbio poller (epoll) goroutines")
	flag.IntVar(&cfg.maxLoad, "max-load", 1_000_000, "nbio MaxLoad: connections accepted at most")
	flag.IntVar(&cfg.maxWriteBuffer, "max-write-buffer", 256<<10, "bytes nbio buffers per connection beyond what the socket takes before it closes it (slow consumer); 0: no limit")
	flag.IntVar(&cfg.maxSubs, "max-subs", 64, "topics per connection")
	flag.IntVar(&cfg.maxMessage, "max-message", 64<<10, "largest message accepted, bytes")
	flag.DurationVar(&cfg.keepalive, "keepalive", 120*time.Second, "nbio KeepaliveTime: a connection silent this long is closed")
	flag.BoolVar(&cfg.clientPublish, "client-publish", false, `accept {"op":"pub"} from clients`)
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(*listen, *admin, cfg, log); err != nil {
		log.Error("nbio rival", "err", err)
		os.Exit(1)
	}
}

func run(listen, admin string, cfg config, log *slog.Logger) error {
	s := newServer(cfg, log)
	mux := &http.ServeMux{}
	mux.HandleFunc("/ws", s.serveWS)
	engine := nbhttp.NewEngine(nbhttp.Config{
		Network:                 "tcp",
		Addrs:                   []string{listen},
		MaxLoad:                 cfg.maxLoad,
		NPoller:                 cfg.npoller,
		MaxWriteBufferSize:      cfg.maxWriteBuffer,
		ReleaseWebsocketPayload: true,
		Handler:                 mux,
	})
	s.upgrader.Engine = engine
	if err := engine.Start(); err != nil {
		return fmt.Errorf("start nbhttp engine: %w", err)
	}
	al, err := net.Listen("tcp", admin)
	if err != nil {
		engine.Stop()
		return fmt.Errorf("listen admin: %w", err)
	}
	log.Info("nbio rival listening", "ws", listen, "admin", al.Addr().String())
	adm := &http.Server{Handler: s.adminMux(), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- adm.Serve(al) }()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	select {
	case err = <-errc:
	case <-sig:
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = adm.Shutdown(ctx)
	_ = engine.Shutdown(ctx)
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}
