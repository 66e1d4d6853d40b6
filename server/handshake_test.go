package server

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wspush/wspush/internal/testsupport"
)

// The key of RFC 6455 section 1.3 and the accept value it calls for.
const (
	hsKey    = "dGhlIHNhbXBsZSBub25jZQ=="
	hsAccept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
)

// hsReq builds a request: the request line from method, target and proto,
// then the header lines of a valid WebSocket handshake except those named in
// drop, then extra lines ("Name: value").
func hsReq(method, target, proto string, drop []string, extra ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s\r\n", method, target, proto)
	for _, h := range [][2]string{
		{"Host", "test"},
		{"Upgrade", "websocket"},
		{"Connection", "Upgrade"},
		{"Sec-WebSocket-Key", hsKey},
		{"Sec-WebSocket-Version", "13"},
	} {
		dropped := false
		for _, d := range drop {
			dropped = dropped || strings.EqualFold(d, h[0])
		}
		if !dropped {
			fmt.Fprintf(&b, "%s: %s\r\n", h[0], h[1])
		}
	}
	for _, e := range extra {
		b.WriteString(e + "\r\n")
	}
	b.WriteString("\r\n")
	return b.String()
}

// hsWS is a valid handshake for target with extra header lines.
func hsWS(target string, extra ...string) string {
	return hsReq("GET", target, "HTTP/1.1", nil, extra...)
}

// hsExchange sends raw on a new connection and reads the answer's head and
// body. The connection is returned positioned after the answer.
func hsExchange(t *testing.T, s *Server, raw string) (*http.Response, []byte, *rawConn) {
	t.Helper()
	c := dialRaw(t, s)
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatalf("write request: %v", err)
	}
	resp, body := hsReadResponse(t, c, strings.HasPrefix(raw, "HEAD "))
	return resp, body, c
}

// hsReadResponse reads one HTTP response and, unless it is a 101, its body.
func hsReadResponse(t *testing.T, c *rawConn, head bool) (*http.Response, []byte) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	req := &http.Request{Method: http.MethodGet}
	if head {
		req.Method = http.MethodHead
	}
	resp, err := http.ReadResponse(c.r, req)
	if err != nil {
		t.Fatalf("read HTTP response: %v", err)
	}
	var body []byte
	if resp.StatusCode != http.StatusSwitchingProtocols {
		if body, err = io.ReadAll(resp.Body); err != nil {
			t.Fatalf("read HTTP response body: %v", err)
		}
	}
	return resp, body
}

// hsExpectEOF asserts that the server ends the connection (its FIN) with
// nothing more to read.
func hsExpectEOF(t testing.TB, c *rawConn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c.r)
	if err != nil {
		t.Fatalf("after the answer: %v, want EOF", err)
	}
	if len(b) > 0 {
		t.Fatalf("after the answer: %d more bytes (%q), want EOF", len(b), b[:min(len(b), 64)])
	}
}

func TestHandshakeHTTP(t *testing.T) { eachTransport(t, testHandshakeHTTP) }

func testHandshakeHTTP(t *testing.T, tr transport) {
	const maxHeader = 2048
	s := startServer(t, tr.config(t, Config{
		Loops:          2,
		Echo:           true,
		MaxHeader:      maxHeader,
		MaxSubs:        3,
		AllowedOrigins: []string{"https://good.example"},
		Subprotocols:   []string{"wspush.v1"},
	}))
	pad := func(n int) string { return "X-Pad: " + strings.Repeat("p", n) }
	long := strings.Repeat("t", 201)
	// A request of exactly maxHeader bytes, and one byte more.
	base := len(hsWS("/ws", pad(0)))
	exact := hsWS("/ws", pad(maxHeader-base))
	over := hsWS("/ws", pad(maxHeader-base+1))
	if len(exact) != maxHeader || len(over) != maxHeader+1 {
		t.Fatalf("bad test: request sizes %d, %d", len(exact), len(over))
	}

	cases := []struct {
		name   string
		req    string
		status int
		header map[string]string // expected header values ("" for absent)
		body   string            // a substring the body must hold
	}{
		// Plain HTTP.
		{name: "demo page", req: "GET / HTTP/1.1\r\nHost: test\r\n\r\n", status: 200,
			header: map[string]string{"Content-Type": "text/html; charset=utf-8"}, body: "<"},
		{name: "client script", req: "GET /wspush.js HTTP/1.1\r\nHost: test\r\n\r\n", status: 200,
			header: map[string]string{"Content-Type": "text/javascript; charset=utf-8"}, body: "WebSocket"},
		{name: "HEAD demo page", req: "HEAD / HTTP/1.1\r\nHost: test\r\n\r\n", status: 200,
			header: map[string]string{"Content-Type": "text/html; charset=utf-8"}},
		{name: "unknown path", req: "GET /nope HTTP/1.1\r\nHost: test\r\n\r\n", status: 404, body: "not found"},
		{name: "HEAD unknown path", req: "HEAD /nope HTTP/1.1\r\nHost: test\r\n\r\n", status: 404}, // no body follows
		{name: "HEAD /ws", req: hsReq("HEAD", "/ws", "HTTP/1.1", nil), status: 405},
		{name: "unknown path with upgrade", req: hsWS("/nope"), status: 404},
		{name: "POST demo page", req: "POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 0\r\n\r\n", status: 405,
			header: map[string]string{"Allow": "GET, HEAD"}},
		{name: "malformed request line", req: "GET /ws\r\nHost: test\r\n\r\n", status: 400},
		{name: "no HTTP version", req: "GET /ws FOO/1.1\r\nHost: test\r\n\r\n", status: 400},
		// The Upgrader cannot parse this version; the server still answers.
		{name: "unparsable HTTP version", req: hsReq("GET", "/ws", "HTTP/1.1x", nil), status: 400},

		// WebSocket endpoints.
		{name: "valid", req: hsWS("/ws"), status: 101,
			header: map[string]string{"Upgrade": "websocket", "Sec-Websocket-Accept": hsAccept, "Sec-Websocket-Protocol": ""}},
		{name: "echo", req: hsWS("/echo"), status: 101, header: map[string]string{"Sec-Websocket-Accept": hsAccept}},
		{name: "header names and values in other cases", req: "GET /ws HTTP/1.1\r\nhost: test\r\nUPGRADE: WebSocket\r\n" +
			"connection: upgrade\r\nsec-websocket-key: " + hsKey + "\r\nSEC-WEBSOCKET-VERSION: 13\r\n\r\n", status: 101,
			header: map[string]string{"Sec-Websocket-Accept": hsAccept}},
		{name: "request line in lower case", req: strings.ToLower(hsWS("/ws")[:16]) + hsWS("/ws")[16:], status: 400},
		{name: "method in lower case", req: hsReq("get", "/ws", "HTTP/1.1", nil), status: 405},
		{name: "POST /ws", req: hsReq("POST", "/ws", "HTTP/1.1", nil), status: 405,
			header: map[string]string{"Allow": "GET"}},
		{name: "PUT /echo", req: hsReq("PUT", "/echo", "HTTP/1.1", nil), status: 405},
		{name: "GET /ws without Upgrade", req: "GET /ws HTTP/1.1\r\nHost: test\r\n\r\n", status: 426,
			header: map[string]string{"Sec-Websocket-Version": "13"}},
		{name: "Upgrade: h2c", req: hsReq("GET", "/ws", "HTTP/1.1", []string{"Upgrade"}, "Upgrade: h2c"), status: 400},
		{name: "Sec-WebSocket-Version 8", req: hsReq("GET", "/ws", "HTTP/1.1", []string{"Sec-WebSocket-Version"},
			"Sec-WebSocket-Version: 8"), status: 426, header: map[string]string{"Sec-Websocket-Version": "13"}},
		{name: "Sec-WebSocket-Version 14", req: hsReq("GET", "/ws", "HTTP/1.1", []string{"Sec-WebSocket-Version"},
			"Sec-WebSocket-Version: 14"), status: 426, header: map[string]string{"Sec-Websocket-Version": "13"}},
		{name: "no Sec-WebSocket-Version", req: hsReq("GET", "/ws", "HTTP/1.1", []string{"Sec-WebSocket-Version"}), status: 400},
		{name: "no Sec-WebSocket-Key", req: hsReq("GET", "/ws", "HTTP/1.1", []string{"Sec-WebSocket-Key"}), status: 400},
		{name: "short Sec-WebSocket-Key", req: hsReq("GET", "/ws", "HTTP/1.1", []string{"Sec-WebSocket-Key"},
			"Sec-WebSocket-Key: c2hvcnQ="), status: 400},
		{name: "no Host", req: hsReq("GET", "/ws", "HTTP/1.1", []string{"Host"}), status: 400},
		{name: "no Connection", req: hsReq("GET", "/ws", "HTTP/1.1", []string{"Connection"}), status: 400},
		{name: "Connection: keep-alive, Upgrade", req: hsReq("GET", "/ws", "HTTP/1.1", []string{"Connection"},
			"Connection: keep-alive, Upgrade"), status: 101},
		{name: "header line without colon", req: hsWS("/ws", "Garbage"), status: 400},
		{name: "HTTP/1.0", req: hsReq("GET", "/ws", "HTTP/1.0", nil), status: 505},
		{name: "HTTP/2.0", req: hsReq("GET", "/ws", "HTTP/2.0", nil), status: 505},
		{name: "header of MaxHeader bytes", req: exact, status: 101},
		{name: "header over MaxHeader", req: over, status: 431},
		{name: "header far over MaxHeader", req: hsWS("/ws", pad(4*maxHeader)), status: 431},

		// ?topics=
		{name: "topics", req: hsWS("/ws?topics=a,b,c"), status: 101},
		{name: "topics repeated", req: hsWS("/ws?topics=a,b&topics=b,c,a"), status: 101},
		{name: "topic with a space", req: hsWS("/ws?topics=a,b%20c"), status: 400, body: "topic"},
		{name: "topic with a plus (a space)", req: hsWS("/ws?topics=b+c"), status: 400},
		{name: "topic of 201 bytes", req: hsWS("/ws?topics=" + long), status: 400, body: "200"},
		{name: "topic with a control byte", req: hsWS("/ws?topics=a%01"), status: 400},
		{name: "more topics than MaxSubs", req: hsWS("/ws?topics=a,b,c,d"), status: 400, body: "at most 3"},
		{name: "malformed query", req: hsWS("/ws?topics=%zz"), status: 400},

		// Origin.
		{name: "allowed Origin", req: hsWS("/ws", "Origin: https://good.example"), status: 101},
		{name: "other Origin", req: hsWS("/ws", "Origin: https://evil.example"), status: 403},
		{name: "Origin in other case", req: hsWS("/ws", "origin: https://evil.example"), status: 403},
		{name: "no Origin", req: hsWS("/ws"), status: 101},

		// Sec-WebSocket-Protocol.
		{name: "subprotocol offered second", req: hsWS("/ws", "Sec-WebSocket-Protocol: foo, wspush.v1"), status: 101,
			header: map[string]string{"Sec-Websocket-Protocol": "wspush.v1"}},
		{name: "subprotocol offered alone", req: hsWS("/ws", "Sec-WebSocket-Protocol: wspush.v1"), status: 101,
			header: map[string]string{"Sec-Websocket-Protocol": "wspush.v1"}},
		{name: "no known subprotocol", req: hsWS("/ws", "Sec-WebSocket-Protocol: foo"), status: 101,
			header: map[string]string{"Sec-Websocket-Protocol": ""}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body, c := hsExchange(t, s, tc.req)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d (%q), want %d", resp.StatusCode, body, tc.status)
			}
			for k, want := range tc.header {
				if got := resp.Header.Get(k); got != want {
					t.Errorf("%s: %q, want %q", k, got, want)
				}
			}
			if !strings.Contains(string(body), tc.body) {
				t.Errorf("body %q does not contain %q", body, tc.body)
			}
			if tc.status == http.StatusSwitchingProtocols {
				// The connection is a WebSocket now: a ping is answered.
				c.writeFrame(t, 0x89, []byte("hs"))
				for {
					op, p := c.readFrame(t)
					if op == 0x1 && strings.Contains(string(p), `"subscribed"`) {
						continue // the answers to ?topics=
					}
					if op != 0xA || string(p) != "hs" {
						t.Fatalf("got frame %#x %q, want the pong", op, p)
					}
					break
				}
				return
			}
			if tc.status == http.StatusOK && resp.ContentLength <= 0 {
				t.Errorf("Content-Length %d", resp.ContentLength)
			}
			hsExpectEOF(t, c)
		})
	}
}

// TestHandshakeTopicsSubscribed checks what ?topics= did: one "subscribed"
// answer per distinct topic, in order, right after the 101.
func TestHandshakeTopicsSubscribed(t *testing.T) {
	s := startServer(t, Config{Loops: 1, MaxSubs: 3})
	c := dialRaw(t, s)
	c.upgrade(t, "/ws?topics=a,b&topics=b,c,a")
	for _, want := range []string{"a", "b", "c"} {
		op, p := c.readFrame(t)
		if w := fmt.Sprintf(`^\{"op":"subscribed","topic":%q,"seq":0,"epoch":"[A-Za-z0-9_-]{12}"\}$`, want); op != 0x1 || !regexp.MustCompile(w).Match(p) {
			t.Fatalf("got %#x %s, want %s", op, p, w)
		}
	}
}

// TestHandshakeMaxConns: past MaxConns a handshake gets 503, and a slot is
// given back when its connection closes.
func TestHandshakeMaxConns(t *testing.T) {
	s := startServer(t, Config{Loops: 2, MaxConns: 1})
	first := dialRaw(t, s)
	first.upgrade(t, "/ws")
	resp, body, c := hsExchange(t, s, hsWS("/ws"))
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("second handshake: %d (%q), want 503", resp.StatusCode, body)
	}
	hsExpectEOF(t, c)
	// Plain HTTP is not a WebSocket connection: still served.
	if resp, _, _ := hsExchange(t, s, "GET / HTTP/1.1\r\nHost: test\r\n\r\n"); resp.StatusCode != http.StatusOK {
		t.Fatalf("GET / at MaxConns: %d, want 200", resp.StatusCode)
	}
	first.Close()
	testsupport.WaitFor(t, "the first connection to be gone", func() bool { return s.Conns() == 0 })
	third := dialRaw(t, s)
	third.upgrade(t, "/ws")
	if n := s.Conns(); n != 1 {
		t.Fatalf("Conns() = %d, want 1", n)
	}
}

// TestHandshakeTimeout: a request that does not arrive whole within
// HandshakeTimeout gets 408, then the connection ends.
func TestHandshakeTimeout(t *testing.T) { eachTransport(t, testHandshakeTimeout) }

func testHandshakeTimeout(t *testing.T, tr transport) {
	timeout := 200 * time.Millisecond
	if tr.tls {
		timeout = 2 * time.Second // the TLS handshake, under -race on a loaded machine, must fit in it too
	}
	s := startServer(t, tr.config(t, Config{Loops: 1, HandshakeTimeout: timeout, CloseTimeout: 300 * time.Millisecond}))
	for _, partial := range []string{"", "GET /ws HTTP/1.1\r\nHost: test\r\n"} {
		t.Run(fmt.Sprintf("%d bytes", len(partial)), func(t *testing.T) {
			c := dialRaw(t, s)
			io.WriteString(c, partial)
			resp, body := hsReadResponse(t, c, false)
			if resp.StatusCode != http.StatusRequestTimeout {
				t.Fatalf("status %d (%q), want 408", resp.StatusCode, body)
			}
			hsExpectEOF(t, c)
			// The server closes its socket too, even with the client still
			// holding its end.
			testsupport.WaitFor(t, "the server to close the socket", func() bool { return s.tcpConns() == 0 })
		})
	}
}

// TestHandshakeByteByByte: a request that arrives one byte per write still
// upgrades.
func TestHandshakeByteByByte(t *testing.T) { eachTransport(t, testHandshakeByteByByte) }

func testHandshakeByteByByte(t *testing.T, tr transport) {
	s := startServer(t, tr.config(t, Config{Loops: 1, Echo: true}))
	c := dialRaw(t, s)
	req := hsWS("/echo?topics=x", "Origin: https://test", "Sec-WebSocket-Protocol: foo")
	for i := range len(req) {
		if _, err := c.Write([]byte{req[i]}); err != nil {
			t.Fatalf("write byte %d: %v", i, err)
		}
	}
	resp, _ := hsReadResponse(t, c, false)
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-Websocket-Accept") != hsAccept {
		t.Fatalf("status %d, accept %q", resp.StatusCode, resp.Header.Get("Sec-Websocket-Accept"))
	}
	if op, p := c.readFrame(t); op != 0x1 || !strings.Contains(string(p), `"subscribed"`) {
		t.Fatalf("got %#x %q, want the subscribed answer", op, p)
	}
	c.writeFrame(t, 0x81, []byte("after"))
	if op, p := c.readFrame(t); op != 0x1 || string(p) != "after" {
		t.Fatalf("got %#x %q, want the echo", op, p)
	}
}

// TestHandshakePipelined: frames that arrive in the same segment as the
// request are processed after the upgrade; bytes after a refused request are
// not.
func TestHandshakePipelined(t *testing.T) { eachTransport(t, testHandshakePipelined) }

func testHandshakePipelined(t *testing.T, tr transport) {
	s := startServer(t, tr.config(t, Config{Loops: 1, Echo: true}))

	t.Run("upgraded", func(t *testing.T) {
		c := dialRaw(t, s)
		var b []byte
		b = append(b, hsWS("/echo")...)
		b = append(b, protoFrame(0x81, []byte("first"))...)
		b = append(b, protoFrame(0x89, []byte("ping"))...)
		b = append(b, protoFrame(0x01, []byte("sec"))...)
		b = append(b, protoFrame(0x80, []byte("ond"))...)
		if _, err := c.Write(b); err != nil {
			t.Fatal(err)
		}
		if status := c.readHTTP(t); status != http.StatusSwitchingProtocols {
			t.Fatalf("status %d, want 101", status)
		}
		for _, want := range []struct {
			op byte
			p  string
		}{{0x1, "first"}, {0xA, "ping"}, {0x1, "second"}} {
			if op, p := c.readFrame(t); op != want.op || string(p) != want.p {
				t.Fatalf("got %#x %q, want %#x %q", op, p, want.op, want.p)
			}
		}
	})

	t.Run("refused", func(t *testing.T) {
		c := dialRaw(t, s)
		b := append([]byte(hsWS("/nope")), protoFrame(0x81, []byte("ignored"))...)
		b = append(b, "GET / HTTP/1.1\r\nHost: test\r\n\r\n"...)
		if _, err := c.Write(b); err != nil {
			t.Fatal(err)
		}
		resp, _ := hsReadResponse(t, c, false)
		if resp.StatusCode != http.StatusNotFound {
			t.Fatalf("status %d, want 404", resp.StatusCode)
		}
		hsExpectEOF(t, c) // one request per connection
	})
}

// hsMetricLine matches a sample of wspush_handshake_failures_total.
var hsMetricLine = regexp.MustCompile(`^wspush_handshake_failures_total\{reason="([a-z_]+)"\} (\S+)$`)

// hsScrape reads the handshake counters from GET /metrics on the admin port:
// the failures by reason, and the successes under the key "101".
func hsScrape(t testing.TB, s *Server) map[string]float64 {
	t.Helper()
	resp, err := http.Get(s.adminURL("/metrics"))
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %s", resp.Status)
	}
	m := make(map[string]float64)
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "wspush_handshakes_total "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric line %q: %v", line, err)
			}
			m["101"] = f
		}
		if sm := hsMetricLine.FindStringSubmatch(line); sm != nil {
			f, err := strconv.ParseFloat(sm[2], 64)
			if err != nil {
				t.Fatalf("metric line %q: %v", line, err)
			}
			m[sm[1]] = f
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("scrape: %v", err)
	}
	return m
}

// TestHandshakeFailureMetrics: each kind of refusal increments
// wspush_handshake_failures_total with its reason, and only that.
func TestHandshakeFailureMetrics(t *testing.T) {
	s := startServer(t, Config{
		Loops:            2,
		MaxConns:         1,
		MaxHeader:        1024,
		HandshakeTimeout: 500 * time.Millisecond,
		AllowedOrigins:   []string{"https://good.example"},
	})
	before := hsScrape(t, s)
	for _, r := range handshakeFailureReasons {
		if _, ok := before[string(r)]; !ok {
			t.Errorf("no series for reason %q before any failure", r)
		}
	}

	// One upgrade holds the only connection slot.
	holder := dialRaw(t, s)
	holder.upgrade(t, "/ws")

	requests := []struct {
		reason string
		req    string
		status int
	}{
		{"bad_request", hsReq("GET", "/ws", "HTTP/1.1", []string{"Sec-WebSocket-Key"}), 400},
		{"bad_request", hsReq("GET", "/ws", "HTTP/1.0", nil), 505},
		{"bad_request", "NONSENSE\r\n\r\n", 400},
		{"origin", hsWS("/ws", "Origin: https://evil.example"), 403},
		{"not_found", "GET /nope HTTP/1.1\r\nHost: test\r\n\r\n", 404},
		{"method", hsReq("POST", "/ws", "HTTP/1.1", nil), 405},
		{"not_upgrade", "GET /ws HTTP/1.1\r\nHost: test\r\n\r\n", 426},
		{"header_too_large", hsWS("/ws", "X-Pad: "+strings.Repeat("p", 2000)), 431},
		{"bad_topic", hsWS("/ws?topics=a%20b"), 400},
		{"max_conns", hsWS("/ws"), 503},
	}
	want := make(map[string]float64)
	for k, v := range before {
		want[k] = v
	}
	for _, r := range requests {
		resp, body, _ := hsExchange(t, s, r.req)
		if resp.StatusCode != r.status {
			t.Fatalf("%s: status %d (%q), want %d", r.reason, resp.StatusCode, body, r.status)
		}
		want[r.reason]++
	}
	want["101"]++

	// A peer that leaves before its request is whole.
	quitter := dialRaw(t, s)
	io.WriteString(quitter, "GET /ws HTTP/1.1\r\n")
	quitter.Close()
	want["eof"]++

	// A peer too slow with its request.
	slow := dialRaw(t, s)
	io.WriteString(slow, "GET /ws HTTP/1.1\r\n")
	if resp, _ := hsReadResponse(t, slow, false); resp.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("slow request: status %d, want 408", resp.StatusCode)
	}
	want["timeout"]++

	var got map[string]float64
	deadline := time.Now().Add(10 * time.Second)
	for {
		got = hsScrape(t, s)
		if fmt.Sprint(got) == fmt.Sprint(want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("handshake counters\n got %v\nwant %v", got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
