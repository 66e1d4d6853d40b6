package server

import (
	"context"
	"sync/atomic"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"

	"github.com/wspush/wspush/frames"
	"github.com/wspush/wspush/netpoll"
	"github.com/wspush/wspush/pubsub"
)

// loopServer is the server's side of one event loop: everything the loop's
// connections share, owned by that loop's goroutine (the publishes channel
// excepted, which the loop's publisher goroutine reads). Server.loops holds
// one per loop, indexed by loop ID; a session reaches its own through
// session.ls.
//
// What it holds: the handshake machinery (a ws.Upgrader whose hooks write into
// the handshake in progress; a loop runs one handshake at a time, start to
// finish, so one set serves all its connections), the (de)compressor of the
// loop's compressed connections, and, with a cluster broker, the queue of the
// loop's client publishes.
type loopServer struct {
	srv  *Server
	loop *netpoll.Loop
	up   ws.Upgrader
	io   handshakeIO
	ext  wsflate.Extension // permessage-deflate negotiation of the handshake in progress

	// Compression for the loop's connections that negotiated it: messages
	// are compressed on their own, so one (de)compressor serves them all.
	inflater frames.Inflater
	deflater frames.Deflater

	// publishes feeds publishClients with a cluster broker; nil otherwise.
	publishes chan clientPublish

	// Bytes of unfinished client messages on this loop, and their bound
	// (limits.go). Written by the loop only; atomic for the metrics scrape.
	pending    atomic.Int64
	maxPending int

	// plain is the scratch the loop's TLS connections decrypt into
	// (server/tls.go); nil until one does.
	plain []byte

	// The handshake in progress.
	topics    []string
	reason    failureReason       // set by the hook that rejects
	seen      map[string]struct{} // the distinct ?topics= so far
	host      []byte              // its Host header
	origin    []byte              // its Origin header, when hasOrigin
	hasOrigin bool
	since     map[string]pubsub.Position // (v1.1) ?since=, nil without
	qTopics   []string                   // its ?topics= values (splitQuery)
	qSince    []string                   // its ?since= values (splitQuery)

	// The scratch of the answers to commands (session.reply): encoded,
	// framed, and queued as copies.
	replyJSON  []byte
	replyFrame []byte

	// replay is the scratch of the resubscribes from a position (since.go):
	// filled and queued in one loop turn, then cleared.
	replay []pubsub.HistoryMessage

	auth authLoop // the handshake's token and the loop's user index (auth.go)

	// ping is the latest ping of the connection being read, answered before
	// its read ends (limits.go).
	ping latestPing
}

func newLoopServer(s *Server, l *netpoll.Loop) *loopServer {
	ls := &loopServer{srv: s, loop: l, seen: make(map[string]struct{}), maxPending: pendingShare(s.cfg)}
	protocols := make(map[string]bool)
	for _, p := range s.cfg.Subprotocols {
		protocols[p] = true
	}
	ls.up = ws.Upgrader{
		ReadBufferSize:  s.cfg.MaxHeader,
		WriteBufferSize: 512,
		Protocol:        func(p []byte) bool { return protocols[string(p)] },
		OnRequest:       ls.onRequest,
		OnHost:          ls.onHost,
		OnHeader:        ls.onHeader,
		OnBeforeUpgrade: ls.onBeforeUpgrade,
	}
	if s.cfg.Compression {
		// No context takeover either way: one compressed push frame serves
		// every subscriber, and no connection keeps a window between messages.
		ls.ext.Parameters = wsflate.Parameters{ServerNoContextTakeover: true, ClientNoContextTakeover: true}
		ls.up.Negotiate = ls.ext.Negotiate
	}
	return ls
}

// clientPublishQueue is how many client publishes one loop may have waiting
// for the cluster broker; past it a "pub" is answered with an error.
const clientPublishQueue = 1024

// clientPublish is a client's "pub" on its way to a cluster broker.
type clientPublish struct {
	s     *session
	topic string
	data  []byte // unmarshalled: not the loop's read buffer
}

// publishClients runs a loop's client publishes through a broker that waits
// on the network, in order, and answers failures on the loop. One goroutine
// per loop, for the server's life.
func (ls *loopServer) publishClients(done <-chan struct{}) {
	for {
		select {
		case <-done:
			return
		case p := <-ls.publishes:
			if _, err := ls.srv.Publish(context.Background(), p.topic, p.data); err != nil {
				ls.loop.Post(func() {
					if p.s.state == stateOpen {
						p.s.reply(errorReply(err.Error()))
					}
				})
			}
		}
	}
}
