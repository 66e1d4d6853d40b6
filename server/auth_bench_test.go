package server

import (
	"bytes"
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wspush/wspush/internal/testsupport"
	"github.com/wspush/wspush/netpoll"
)

// BenchmarkIdleConnMemoryAuth is BenchmarkIdleConnMemory with auth on:
// every connection presents an HS256 token whose claims it keeps.
//
//	go test -run '^$' -bench IdleConnMemoryAuth -benchtime 1x ./server/
func BenchmarkIdleConnMemoryAuth(b *testing.B) {
	key := writeFile(b, "hmac.key", testSecret)
	tok := hs(b, tokenClaims("bench", 24*time.Hour, "aud", nil, "iss", nil, "topics", []string{"news.*", "ticker"}))
	for i := 0; i < b.N; i++ {
		measureIdleConns(b, transports[0], Config{AuthHMACSecretFile: key}, "token="+tok)
	}
}

// BenchmarkHandshake measures WebSocket handshakes over loopback, one at a
// time from one client (dial, request, read the 101, close), with auth off
// and with HS256 and ES256 tokens in the query. It is the cost of the
// handshake path, token verification included, not a capacity figure: the
// client, the server's loops and the closes share the machine.
//
//	go test -run '^$' -bench 'Handshake$' -benchtime 3s -count 3 ./server/
func BenchmarkHandshake(b *testing.B) {
	ec := newECKey(b)
	claims := tokenClaims("bench", 24*time.Hour, "topics", []string{"news.*"})
	cases := []struct {
		name  string
		cfg   Config
		token string
	}{
		{"auth=off", Config{}, ""},
		{"auth=HS256", Config{AuthHMACSecretFile: writeFile(b, "hmac.key", testSecret), AuthAudience: testAudience, AuthIssuer: testIssuer}, hs(b, claims)},
		{"auth=ES256", Config{AuthPublicKeyFile: ec.pemFile, AuthAudience: testAudience, AuthIssuer: testIssuer}, testsupport.Mint(b, jwt.SigningMethodES256, ec.priv, "", claims)},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			s := startServer(b, tc.cfg)
			target := "/ws?topics=news.a"
			if tc.token != "" {
				target += "&token=" + tc.token
			}
			req := []byte(hsWS(target))
			buf := make([]byte, 1024)
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				// Source addresses 127.0.0.2 and up: the closed connections'
				// TIME_WAIT would otherwise use up one address's ports.
				d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, byte(i/250%250), byte(2+i%250))}}
				c, err := d.Dial("tcp", s.Addr().String())
				if err != nil {
					b.Fatal(err)
				}
				if _, err := c.Write(req); err != nil {
					b.Fatal(err)
				}
				n, err := c.Read(buf) // the 101 and the subscribed answer arrive together or first
				if err != nil || !bytes.HasPrefix(buf[:n], []byte("HTTP/1.1 101")) {
					b.Fatalf("handshake: %v %q", err, buf[:n])
				}
				c.Close()
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "handshakes/s")
		})
	}
}

// BenchmarkFanOutAuth publishes to one topic with 2,000 subscribers on
// loopback sockets, with auth off and on (every subscriber holding HS256
// claims), and reports the wall time per delivery until the kernel has
// taken every push (bufferedAmount 0 on every connection). The push path
// does not look at the claims; this measures that it stays so.
//
//	go test -run '^$' -bench FanOutAuth -benchtime 200x -count 6 ./server/
func BenchmarkFanOutAuth(b *testing.B) {
	const subscribers = 2000
	key := writeFile(b, "hmac.key", testSecret)
	tok := hs(b, tokenClaims("bench", 24*time.Hour, "aud", nil, "iss", nil, "topics", []string{"f", "news.*"}))
	data := []byte(`"` + strings.Repeat("x", 126) + `"`)
	for _, tc := range []struct {
		name, query string
		cfg         Config
	}{
		{"auth=off", "", Config{}},
		{"auth=on", "&token=" + tok, Config{AuthHMACSecretFile: key}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			tc.cfg.PingInterval, tc.cfg.IdleTimeout = time.Hour, 2*time.Hour
			s := startServer(b, tc.cfg)
			req := []byte(hsWS("/ws?topics=f" + tc.query))
			for i := 0; i < subscribers; i++ {
				d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 1, byte(2+i%250))}}
				c, err := d.Dial("tcp", s.Addr().String())
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { c.Close() })
				if _, err := c.Write(req); err != nil {
					b.Fatal(err)
				}
				go io.Copy(io.Discard, c)
			}
			testsupport.WaitFor(b, "the subscribers", func() bool { return s.hub.Stats().Subscriptions == subscribers })
			flushed := func() bool {
				n := 0
				s.group.Each(func(l *netpoll.Loop) {
					for _, c := range l.Conns() {
						n += c.Buffered()
					}
				})
				return n == 0
			}
			ctx := context.Background()
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				if _, err := s.hub.Publish(ctx, "f", data); err != nil {
					b.Fatal(err)
				}
			}
			want := uint64(b.N * subscribers)
			for s.hub.Stats().Delivered < want || !flushed() {
				time.Sleep(time.Millisecond)
			}
			b.ReportMetric(float64(time.Since(start).Nanoseconds())/float64(want), "ns/delivery")
		})
	}
}
