package server

import (
	"bufio"
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/wspush/wspush/pubsub"
	"github.com/wspush/wspush/web"
)

// fuzzLoopServer is a loop's server-side state on a server that is never
// started: parseHandshake reads only its configuration and counters.
func fuzzLoopServer() *loopServer {
	cfg := Config{
		MaxHeader:      1024,
		MaxSubs:        3,
		Echo:           true,
		AllowedOrigins: []string{"https://good.example"},
		Subprotocols:   []string{"wspush.v1", "chat"},
		Logger:         slog.New(slog.DiscardHandler),
	}.withDefaults()
	origins, _ := newOriginPolicy(cfg.AllowedOrigins)
	s := &Server{cfg: cfg, log: cfg.Logger, origins: origins, peers: newPeerTable(cfg.MaxConnsPerIP)}
	return newLoopServer(s, nil)
}

// FuzzHandshake feeds arbitrary bytes to the handshake path, whole and then
// cut into the pieces cuts describes (as they would arrive in reads), and
// checks that it never panics, that it waits only for a request that is not
// whole yet, and that every answer is a well-formed 101, a 200 for a file,
// or an HTTP error.
func FuzzHandshake(f *testing.F) {
	for _, seed := range []string{
		hsWS("/ws"),
		hsWS("/echo?topics=a,b", "Origin: https://good.example", "Sec-WebSocket-Protocol: foo, chat"),
		"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET / HTTP/1.1\r\n\r\n",
		"HEAD /wspush.js HTTP/1.1\r\n\r\n",
		hsReq("GET", "/ws", "HTTP/1.1x", nil),
	} {
		f.Add([]byte(seed), []byte{})
		f.Add([]byte(seed), []byte{0, 3, 17})
	}
	ls := fuzzLoopServer()
	cfg := &ls.srv.cfg
	f.Fuzz(func(t *testing.T, req, cuts []byte) {
		whole := ls.parseHandshake(slices.Clone(req))
		fuzzCheck(t, cfg, req, whole)

		// Delivered in pieces, the request gets the same answer.
		var buf []byte
		var got handshakeResult
		for i, off := 0, 0; off < len(req); i++ {
			k := len(req) - off
			if len(cuts) > 0 {
				k = min(k, int(cuts[i%len(cuts)])+1)
			}
			buf = append(buf, req[off:off+k]...)
			off += k
			if got = ls.parseHandshake(buf); got.status != 0 {
				break
			}
		}
		if got.status != whole.status || got.reason != whole.reason {
			t.Fatalf("in pieces: %d %q; whole: %d %q", got.status, got.reason, whole.status, whole.reason)
		}
		if got.status != http.StatusRequestHeaderFieldsTooLarge && got.n != whole.n {
			t.Fatalf("in pieces %d bytes consumed, whole %d", got.n, whole.n)
		}
	})
}

func fuzzCheck(t *testing.T, cfg *Config, req []byte, r handshakeResult) {
	t.Helper()
	if r.status == 0 {
		// Waiting (for the rest, or for the handshake timeout's 408) is only
		// right for a request that is not whole and may still fit.
		if bytes.Contains(req, headerEnd) || len(req) > cfg.MaxHeader {
			t.Fatalf("no answer to a whole or too large request (%d bytes)", len(req))
		}
		if r.n != 0 || r.resp != nil {
			t.Fatalf("waiting, yet %d bytes consumed and %q answered", r.n, r.resp)
		}
		return
	}
	if r.n <= 0 || r.n > len(req) {
		t.Fatalf("%d bytes consumed of %d", r.n, len(req))
	}
	if r.status != http.StatusRequestHeaderFieldsTooLarge && !bytes.HasSuffix(req[:r.n], headerEnd) {
		t.Fatalf("consumed %d bytes, not up to the end of the header", r.n)
	}
	method, _, _ := requestLine(req)
	head := string(method) == http.MethodHead
	// What goes on the wire: the head, then the file of a 200 to GET.
	wire := append(slices.Clone(r.resp), r.body...)
	br := bufio.NewReader(bytes.NewReader(wire))
	resp, err := http.ReadResponse(br, &http.Request{Method: map[bool]string{true: "HEAD", false: "GET"}[head]})
	if err != nil {
		t.Fatalf("answer %q: %v", r.resp, err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("answer %q: body: %v", r.resp, err)
	}
	if rest, _ := io.ReadAll(br); len(rest) > 0 {
		t.Fatalf("answer %q: %d bytes after the response", r.resp, len(rest))
	}
	if resp.StatusCode != r.status {
		t.Fatalf("answer %q has status %d, result says %d", r.resp, resp.StatusCode, r.status)
	}
	switch {
	case r.status == http.StatusSwitchingProtocols:
		if r.reason != "" {
			t.Fatalf("101 with failure reason %q", r.reason)
		}
		if !bytes.HasPrefix(req, []byte("GET /ws")) && !bytes.HasPrefix(req, []byte("GET /echo")) {
			t.Fatalf("101 to %q", req[:min(len(req), 20)])
		}
		if !strings.EqualFold(resp.Header.Get("Upgrade"), "websocket") || len(resp.Header.Get("Sec-WebSocket-Accept")) != 28 {
			t.Fatalf("101 without Upgrade or Sec-WebSocket-Accept: %q", r.resp)
		}
		if p := resp.Header.Get("Sec-WebSocket-Protocol"); p != "" && !slices.Contains(cfg.Subprotocols, p) {
			t.Fatalf("selected subprotocol %q", p)
		}
		if len(r.topics) > cfg.MaxSubs {
			t.Fatalf("%d topics, at most %d allowed", len(r.topics), cfg.MaxSubs)
		}
		for i, tp := range r.topics {
			if err := pubsub.CheckTopic(tp); err != nil || slices.Contains(r.topics[:i], tp) {
				t.Fatalf("topics %q: %q is invalid or repeated", r.topics, tp)
			}
		}
		if len(body) > 0 {
			t.Fatalf("101 with a body")
		}
	case r.status == http.StatusOK:
		path, _, _ := strings.Cut(strings.Fields(string(req))[1], "?")
		file, _, ok := web.File(path)
		if !ok || r.reason != "" {
			t.Fatalf("200 to %q", req[:min(len(req), 40)])
		}
		if resp.ContentLength != int64(len(file)) || head != (r.body == nil) || !head && !bytes.Equal(body, file) {
			t.Fatalf("200 with Content-Length %d, a body of %d bytes, for a file of %d", resp.ContentLength, len(body), len(file))
		}
	case r.status >= 400 && r.status < 600:
		if !slices.Contains(handshakeFailureReasons, r.reason) {
			t.Fatalf("status %d with reason %q", r.status, r.reason)
		}
		if r.body != nil {
			t.Fatalf("error with a file body")
		}
	default:
		t.Fatalf("status %d: %q", r.status, r.resp)
	}
}
