package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gobwas/ws"

	"github.com/wspush/wspush/auth"
	"github.com/wspush/wspush/pubsub"
	"github.com/wspush/wspush/web"
)

// handshakeIO feeds the Upgrader the request bytes gathered by the loop and
// collects its response, which the loop then queues on the socket.
type handshakeIO struct {
	r bytes.Reader
	w []byte
}

func (h *handshakeIO) Read(p []byte) (int, error)  { return h.r.Read(p) }
func (h *handshakeIO) Write(p []byte) (int, error) { h.w = append(h.w, p...); return len(p), nil }

func (ls *loopServer) reject(reason failureReason, status int, msg string) error {
	ls.reason = reason
	return ws.RejectConnectionError(ws.RejectionStatus(status), ws.RejectionReason(msg))
}

// onRequest takes the subscriptions from ?topics=a,b,c. It stops at the
// first topic past -max-subs: a query of thousands of names costs one map
// lookup per name up to there, and the names after it are not even checked.
func (ls *loopServer) onRequest(uri []byte) error {
	ls.authRequest(uri)
	i := bytes.IndexByte(uri, '?')
	if i < 0 {
		return nil
	}
	topics, since, err := ls.splitQuery(uri[i+1:])
	if err != nil {
		return ls.reject(reasonBadRequest, http.StatusBadRequest, "malformed query: "+err.Error())
	}
	clear(ls.seen)
	max := ls.srv.cfg.MaxSubs
	for _, v := range topics {
		for t := range strings.SplitSeq(v, ",") {
			if _, dup := ls.seen[t]; t == "" || dup {
				continue
			}
			if len(ls.topics) == max {
				return ls.reject(reasonBadTopic, http.StatusBadRequest,
					fmt.Sprintf("more than %d topics requested, at most %d allowed", max, max))
			}
			if err := pubsub.CheckTopic(t); err != nil {
				return ls.reject(reasonBadTopic, http.StatusBadRequest, err.Error())
			}
			ls.seen[t] = struct{}{}
			ls.topics = append(ls.topics, t)
		}
	}
	return ls.querySince(since)
}

// splitQuery is url.ParseQuery's "topics" and "since" values of query, in
// the loop's scratch (valid until its next handshake). A query without
// escapes or semicolons (the common one) is split in place: each of those
// values is one string, and nothing else of the query (a token, say) is
// copied, where url.ParseQuery allocated the whole query, a map and a slice
// per key, garbage right after the handshake. Any other query goes through
// url.ParseQuery itself, errors included.
func (ls *loopServer) splitQuery(query []byte) (topics, since []string, err error) {
	ls.qTopics, ls.qSince = ls.qTopics[:0], ls.qSince[:0]
	if bytes.ContainsAny(query, "%+;") {
		q, err := url.ParseQuery(string(query))
		if err != nil {
			return nil, nil, err
		}
		return q[queryTopics], q[querySince], nil
	}
	for len(query) > 0 {
		var pair []byte
		pair, query, _ = bytes.Cut(query, []byte("&"))
		key, value, _ := bytes.Cut(pair, []byte("="))
		switch string(key) {
		case queryTopics:
			ls.qTopics = append(ls.qTopics, string(value))
		case querySince:
			ls.qSince = append(ls.qSince, string(value))
		}
	}
	return ls.qTopics, ls.qSince, nil
}

// The query parameters of an upgrade that splitQuery returns.
const (
	queryTopics = "topics"
	querySince  = "since" // v1.1
)

func (ls *loopServer) onHost(host []byte) error {
	ls.host = append(ls.host[:0], host...)
	return nil
}

func (ls *loopServer) onHeader(key, value []byte) error {
	if string(key) == "Origin" {
		ls.origin = append(ls.origin[:0], value...)
		ls.hasOrigin = true
	}
	return ls.authHeader(key, value)
}

func (ls *loopServer) onBeforeUpgrade() (ws.HandshakeHeader, error) {
	var origin []byte
	if ls.hasOrigin {
		origin = ls.origin
	}
	switch {
	case ls.srv.shuttingDown.Load():
		return nil, ls.reject(reasonShutdown, http.StatusServiceUnavailable, msgShuttingDown)
	case !ls.srv.origins.allows(origin, ls.host):
		return nil, ls.reject(reasonOrigin, http.StatusForbidden, "origin not allowed")
	case ls.srv.open.Load() >= int64(ls.srv.cfg.MaxConns):
		return nil, ls.reject(reasonMaxConns, http.StatusServiceUnavailable, msgTooManyConns)
	}
	return nil, ls.authorize()
}

var headerEnd = []byte("\r\n\r\n")

// handshakeResult is the answer to one request, as parseHandshake decides it.
type handshakeResult struct {
	n       int                        // bytes of input consumed: 0 while the request is incomplete
	status  int                        // 101, 200 (a static file) or an HTTP error status
	reason  failureReason              // "" for 101 and 200
	resp    []byte                     // the response head; for an error, with its body; a 101's is the loop's scratch, valid until its next handshake
	body    []byte                     // the file a 200 to GET carries: embedded and immutable
	echo    bool                       // an upgrade of /echo
	deflate bool                       // the upgrade negotiated permessage-deflate
	topics  []string                   // the ?topics= of an upgrade; the loop's scratch, valid until its next handshake
	since   map[string]pubsub.Position // (v1.1) the ?since= of an upgrade, nil without
	claims  *auth.Claims               // what the upgrade's token allows; nil with auth off
	err     error                      // why the Upgrader refused, for the debug log
}

// handshake parses the HTTP request at the start of b, once it is whole, and
// answers it: an upgrade to WebSocket, a static file, or an HTTP error. It
// returns the bytes it consumed (0 while the request is incomplete).
func (s *session) handshake(b []byte) int {
	r := s.ls().parseHandshake(b)
	switch {
	case r.status == 0:
		return 0
	case s.overIP:
		s.refuse(reasonMaxConnsPerIP, http.StatusTooManyRequests, msgTooManyFromIP, "")
		return r.n
	}
	switch r.status {
	case http.StatusSwitchingProtocols:
		s.echo = r.echo
		if !s.echo {
			s.dec.MaxMessage = s.srv.maxCommand() // a command, not an echoed message
		}
		s.deflate = r.deflate
		s.dec.Deflate = r.deflate
		if s.admit(r.claims) {
			s.upgrade(r)
		}
	case http.StatusOK:
		s.send(r.resp)
		s.send(r.body) // embedded and immutable: queued by reference
		s.drain()
	default:
		s.refused(r)
	}
	return r.n
}

// parseHandshake decides the answer to the request at the start of b without
// any I/O: it reads the server's configuration and its shutdown and
// connection count, and uses the loop's Upgrader. The session carries the
// decision out.
func (ls *loopServer) parseHandshake(b []byte) handshakeResult {
	r := ls.answer(b)
	if r.status >= 400 {
		if method, _, ok := requestLine(b); ok && string(method) == http.MethodHead {
			// The answer to HEAD has the header of the answer to GET and no
			// content (RFC 9110 section 9.3.2), errors included.
			r.resp = r.resp[:bytes.Index(r.resp, headerEnd)+len(headerEnd)]
		}
	}
	return r
}

// answer is parseHandshake before the HEAD rule.
func (ls *loopServer) answer(b []byte) handshakeResult {
	cfg := &ls.srv.cfg
	end := bytes.Index(b, headerEnd)
	if end < 0 || end+len(headerEnd) > cfg.MaxHeader {
		if len(b) > cfg.MaxHeader {
			return refusal(len(b), reasonHeaderTooLarge, http.StatusRequestHeaderFieldsTooLarge, "request header too large", "")
		}
		return handshakeResult{}
	}
	req := b[:end+len(headerEnd)]
	n := len(req)
	method, target, ok := requestLine(req)
	if !ok {
		return refusal(n, reasonBadRequest, http.StatusBadRequest, msgMalformedRequestLine, "")
	}
	path, _, _ := bytes.Cut(target, []byte("?"))
	echo := false
	switch {
	case string(path) == "/ws":
	case string(path) == "/echo" && cfg.Echo:
		echo = true
	default:
		return fileResult(n, string(method), string(path))
	}
	if string(method) != http.MethodGet {
		return refusal(n, reasonMethod, http.StatusMethodNotAllowed, "WebSocket handshakes use GET", "Allow: GET\r\n")
	}
	if !hasHeader(req, "Upgrade") {
		return refusal(n, reasonNotUpgrade, http.StatusUpgradeRequired, "this is a WebSocket endpoint",
			"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n")
	}
	r := ls.runUpgrader(req)
	r.n, r.echo = n, echo
	return r
}

// runUpgrader runs the Upgrader over a whole request.
func (ls *loopServer) runUpgrader(req []byte) handshakeResult {
	ls.io.r.Reset(req)
	ls.io.w = ls.io.w[:0]
	ls.topics = ls.topics[:0]
	ls.since = nil
	ls.reason = ""
	ls.host, ls.origin, ls.hasOrigin = ls.host[:0], ls.origin[:0], false
	ls.auth.reset()
	ls.ext.Reset()
	_, err := ls.up.Upgrade(&ls.io)
	if err == nil {
		// The 101 stays in the loop's scratch: the session queues a copy
		// (sendCopy) that leaves no garbage behind, where a clone per
		// upgrade was most of what a connection storm left to collect.
		_, deflate := ls.ext.Accepted()
		return handshakeResult{status: http.StatusSwitchingProtocols, resp: ls.io.w, topics: ls.topics, since: ls.since, deflate: deflate, claims: ls.auth.claims}
	}
	resp := bytes.Clone(ls.io.w)
	r := handshakeResult{status: http.StatusInternalServerError, reason: ls.reason, resp: resp, err: err}
	if r.reason == "" {
		r.reason = reasonBadRequest
	}
	var rej *ws.ConnectionRejectedError
	if errors.As(err, &rej) && rej.StatusCode() != 0 {
		r.status = rej.StatusCode()
	}
	if ls.auth.resp != nil {
		r.resp = ls.auth.resp // {"error":"<reason>"}, application/json
	}
	if len(resp) == 0 {
		// The Upgrader returns without an answer when it cannot parse the
		// request line (an HTTP version such as "HTTP/1.1x" that requestLine
		// lets through): the client is still owed one.
		r.status = http.StatusBadRequest
		r.resp = httpError(r.status, msgMalformedRequestLine, "")
	}
	return r
}

// upgrade opens the WebSocket the Upgrader accepted: the ?topics= are
// subscribed before the 101 goes out.
func (s *session) upgrade(r handshakeResult) {
	// The Upgrader's hook checked -max-conns; taking the slot here makes it
	// exact when handshakes on several loops race for the last one.
	if s.srv.open.Add(1) > int64(s.srv.cfg.MaxConns) {
		s.srv.open.Add(-1)
		s.refuse(reasonMaxConns, http.StatusServiceUnavailable, msgTooManyConns, "")
		return
	}
	s.upgraded = true
	s.srv.metrics.handshakes.Inc()
	if s.srv.log.Enabled(context.Background(), slog.LevelDebug) {
		s.srv.log.Debug("websocket opened", "client", s.clientAddr(), "topics", len(r.topics))
	}
	if r.since != nil && s.srv.nats == nil {
		// Subscribed before the 101 leaves, answered right after it; the
		// replay (v1.1 ?since=) follows the answers (since.go).
		s.state = stateOpen
		s.upgradeSince(r)
		s.startKeepalive()
		return
	}
	// Subscribed before the 101 leaves, answered right after it; in cluster
	// mode both wait for the topics new to the node (pending.go).
	pending := 0
	if len(r.topics) > 1 {
		// One array of the right size, not the 1, 2, 4... of appends.
		s.topics = make([]*pubsub.Topic, 0, len(r.topics))
	}
	for _, t := range r.topics {
		if _, _, waiting := s.add(t); waiting {
			pending++
		}
	}
	if pending > 0 {
		s.state = stateJoining
		// r.resp, r.topics and r.since are the loop's scratch: kept as copies.
		s.pending().join = &joinState{resp: bytes.Clone(r.resp), topics: slices.Clone(r.topics), since: maps.Clone(r.since), waiting: pending}
		return
	}
	s.open(r.resp, r.topics, r.since)
}

// startKeepalive starts an opened connection's idle clock: it has just been
// heard from, and is pinged after -ping-interval of silence.
func (s *session) startKeepalive() {
	now := time.Now()
	s.lastRead = s.srv.mono(now)
	s.setOpenTimer(now.Add(s.srv.cfg.PingInterval))
}

// open starts the WebSocket of an upgraded connection subscribed to topics:
// the 101, then one "subscribed" answer per topic, at its position now. From
// the first topic named in since (cluster mode only: a single node's resume
// goes through upgradeSince) the answers wait for the stream
// (joinFromStream, clusterjoin.go).
func (s *session) open(resp []byte, topics []string, since map[string]pubsub.Position) {
	s.state = stateOpen
	s.sendCopy(resp)
	loop := s.c.Loop().ID()
	s.startKeepalive()
	for i, name := range topics {
		t := s.topic(name)
		if t == nil {
			return // dropped while answering (limits.go)
		}
		if _, ok := since[name]; ok && s.srv.nats != nil {
			// Recovered from the stream: this answer and those after it
			// wait for the reads (clusterjoin.go).
			s.joinFromStream(topics[i:], since)
			return
		}
		seq := t.Position(loop, s)
		s.reply(reply{Op: "subscribed", Topic: name, Seq: &seq, Epoch: t.Epoch()})
	}
}

// fileResult answers a plain HTTP request on the public port: the demo page
// and the browser client, or an error.
func fileResult(n int, method, path string) handshakeResult {
	body, ctype, ok := web.File(path)
	switch {
	case !ok:
		return refusal(n, reasonNotFound, http.StatusNotFound, "not found", "")
	case method != http.MethodGet && method != http.MethodHead:
		return refusal(n, reasonMethod, http.StatusMethodNotAllowed, "method not allowed", "Allow: GET, HEAD\r\n")
	}
	r := handshakeResult{n: n, status: http.StatusOK}
	r.resp = fmt.Appendf(nil, "HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %d\r\n"+
		"Cache-Control: no-cache\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n", ctype, len(body))
	if method == http.MethodGet {
		r.body = body
	}
	return r
}

// refusal is an HTTP error answer to a request of n bytes.
func refusal(n int, reason failureReason, status int, msg, header string) handshakeResult {
	return handshakeResult{n: n, status: status, reason: reason, resp: httpError(status, msg, header)}
}

// httpError is an HTTP error response with extra header lines and msg as its
// body.
func httpError(status int, msg, header string) []byte {
	body := msg + "\n"
	return fmt.Appendf(nil, "HTTP/1.1 %d %s\r\n%sContent-Type: text/plain; charset=utf-8\r\n"+
		"Content-Length: %d\r\nConnection: close\r\n\r\n%s", status, http.StatusText(status), header, len(body), body)
}

// refuse answers with an HTTP error and closes the connection.
func (s *session) refuse(reason failureReason, status int, msg, header string) {
	s.refused(handshakeResult{status: status, reason: reason, resp: httpError(status, msg, header)})
}

// refused sends an HTTP error answer and closes the connection.
func (s *session) refused(r handshakeResult) {
	if r.reason != "" {
		s.srv.metrics.handshakeFailed(r.reason)
	}
	s.srv.log.Debug("request refused", "reason", r.reason, "status", r.status, "err", r.err)
	s.send(r.resp)
	s.drain()
}

// requestLine splits "METHOD target HTTP/1.x" off the start of req. Method
// and target are req's bytes: no string is made for an upgrade.
func requestLine(req []byte) (method, target []byte, ok bool) {
	line, _, _ := bytes.Cut(req, []byte("\r\n"))
	m, rest, ok1 := bytes.Cut(line, []byte(" "))
	t, proto, ok2 := bytes.Cut(rest, []byte(" "))
	if !ok1 || !ok2 || len(m) == 0 || len(t) == 0 || !bytes.HasPrefix(proto, []byte("HTTP/")) {
		return nil, nil, false
	}
	return m, t, true
}

// hasHeader reports whether the request has a header field named name (any
// case).
func hasHeader(req []byte, name string) bool {
	_, rest, _ := bytes.Cut(req, []byte("\r\n"))
	for len(rest) > 0 {
		var line []byte
		line, rest, _ = bytes.Cut(rest, []byte("\r\n"))
		k, _, ok := bytes.Cut(line, []byte(":"))
		if ok && strings.EqualFold(string(bytes.TrimSpace(k)), name) {
			return true
		}
	}
	return false
}
