package server

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestOriginPolicy: by default a page may open a WebSocket only on its own
// origin (Origin's host:port equal to Host, any scheme, any case); programs
// that send no Origin always may; -allowed-origins widens it and * opens it.
func TestOriginPolicy(t *testing.T) {
	cases := []struct {
		allowed []string
		host    string
		origin  string // "" sends none
		want    int
	}{
		// The default: same origin.
		{nil, "test", "", 101},
		{nil, "test", "http://test", 101},
		{nil, "test", "https://test", 101},
		{nil, "Test", "HTTP://TEST", 101},
		{nil, "test:8080", "http://test:8080", 101},
		{nil, "test:8080", "http://test", 403},
		{nil, "test", "http://test:8080", 403},
		{nil, "test", "http://evil.example", 403},
		{nil, "test", "http://test.evil.example", 403},
		{nil, "test", "null", 403},
		{nil, "test", "http://test/path", 403},
		// Exact origins, host:port with any scheme, subdomain patterns.
		{[]string{"https://app.example.com"}, "test", "https://app.example.com", 101},
		{[]string{"https://app.example.com"}, "test", "http://app.example.com", 403},
		{[]string{"https://app.example.com"}, "test", "https://app.example.com:8443", 403},
		{[]string{"https://app.example.com"}, "test", "http://test", 101},
		{[]string{"app.example.com:8443"}, "test", "http://app.example.com:8443", 101},
		{[]string{"*.example.com"}, "test", "https://a.example.com", 101},
		{[]string{"*.example.com"}, "test", "https://a.b.example.com", 101},
		{[]string{"*.example.com"}, "test", "https://example.com", 403},
		{[]string{"*.example.com"}, "test", "https://evilexample.com", 403},
		{[]string{"*.example.com"}, "test", "https://a.example.com:8443", 403},
		{[]string{"https://*.example.com"}, "test", "http://a.example.com", 403},
		// Open to every page.
		{[]string{"*"}, "test", "http://evil.example", 101},
		{[]string{"*"}, "test", "null", 101},
	}
	servers := map[string]*Server{}
	for _, tc := range cases {
		key := ""
		for _, a := range tc.allowed {
			key += a + ","
		}
		s := servers[key]
		if s == nil {
			s = startServer(t, Config{Loops: 1, AllowedOrigins: tc.allowed})
			servers[key] = s
		}
		req := "GET /ws HTTP/1.1\r\nHost: " + tc.host + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Key: " + hsKey + "\r\nSec-WebSocket-Version: 13\r\n"
		if tc.origin != "" {
			req += "Origin: " + tc.origin + "\r\n"
		}
		resp, body, _ := hsExchange(t, s, req+"\r\n")
		if resp.StatusCode != tc.want {
			t.Errorf("allowed %q, Host %q, Origin %q: %d %q, want %d", tc.allowed, tc.host, tc.origin, resp.StatusCode, body, tc.want)
		}
	}
}

// TestOriginPolicyIndependentClient: the same check seen by coder/websocket
// acting as a page of another site, and as the server's own page.
func TestOriginPolicyIndependentClient(t *testing.T) {
	s := startServer(t, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for origin, want := range map[string]int{
		"http://evil.example":         http.StatusForbidden,
		"http://" + s.Addr().String(): http.StatusSwitchingProtocols,
	} {
		c, resp, err := websocket.Dial(ctx, s.wsURL("/ws"), &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {origin}}})
		if resp == nil || resp.StatusCode != want {
			t.Errorf("Origin %s: %v (%v), want %d", origin, resp, err, want)
		}
		if c != nil {
			c.CloseNow()
		}
	}
}

func TestOriginPolicyRejectsBadEntries(t *testing.T) {
	for _, e := range []string{"", "*.", "https://", "http://a/b", "a*.example.com", "https://a.example.com?x"} {
		if _, err := newOriginPolicy([]string{e}); err == nil {
			t.Errorf("entry %q accepted", e)
		}
	}
}
