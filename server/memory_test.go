package server

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wspush/wspush/internal/testsupport"
)

// idleClientsEnv makes the test binary, re-executed, hold idle WebSocket
// clients for the memory measurements: they live in another process, so
// their memory and descriptors are not counted against the server's.
const idleClientsEnv = "WSPUSH_IDLE_CLIENTS_ADDR"

// idleQueryEnv, when set, is the query of the idle clients' requests
// (token=..., topics=...).
const idleQueryEnv = "WSPUSH_IDLE_CLIENTS_QUERY"

// idleClientsTLSEnv, set to 1, makes the idle clients speak TLS (wss://).
const idleClientsTLSEnv = "WSPUSH_IDLE_CLIENTS_TLS"

func TestMain(m *testing.M) {
	testsupport.ChildMain(idleClientsEnv, idleClients)
	os.Exit(m.Run())
}

// idleClients is the child's Holder for a server at addr: WebSocket
// connections, plain descriptors with no Go objects per connection (Go's
// TLS client's when idleClientsTLSEnv is set); source addresses 127.0.0.2
// and up spread the connections over many port ranges.
func idleClients(addr string) (testsupport.Holder, error) {
	host, portStr, _ := strings.Cut(addr, ":")
	port, _ := strconv.Atoi(portStr)
	var dst unix.SockaddrInet4
	dst.Port = port
	copy(dst.Addr[:], []byte{127, 0, 0, 1})
	if host != "127.0.0.1" {
		return nil, fmt.Errorf("want a 127.0.0.1 address, got %s", addr)
	}
	target := "/ws"
	if q := os.Getenv(idleQueryEnv); q != "" {
		target += "?" + q
	}
	req := []byte("GET " + target + " HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	var fds []int
	var conns []net.Conn // the TLS clients, kept alive
	buf := make([]byte, 512)
	return func(want int) (int, error) {
		for len(fds) < want {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return len(fds), fmt.Errorf("socket after %d: %w", len(fds), err)
			}
			src := &unix.SockaddrInet4{Addr: [4]byte{127, 0, byte(len(fds) / 250 / 250), byte(2 + len(fds)/250%250)}}
			if err := unix.Bind(fd, src); err != nil {
				return len(fds), fmt.Errorf("bind: %w", err)
			}
			if err := unix.Connect(fd, &dst); err != nil {
				return len(fds), fmt.Errorf("connect after %d: %w", len(fds), err)
			}
			if os.Getenv(idleClientsTLSEnv) == "1" {
				c, err := upgradeTLS(fd, req)
				if err != nil {
					return len(fds), fmt.Errorf("wss:// after %d: %w", len(fds), err)
				}
				conns = append(conns, c)
				fds = append(fds, fd)
				continue
			}
			if _, err := unix.Write(fd, req); err != nil {
				return len(fds), err
			}
			var resp []byte
			for !bytes.Contains(resp, []byte("\r\n\r\n")) {
				n, err := unix.Read(fd, buf)
				if err != nil || n <= 0 {
					return len(fds), fmt.Errorf("handshake read after %d: %v", len(fds), err)
				}
				resp = append(resp, buf[:n]...)
			}
			if !bytes.HasPrefix(resp, []byte("HTTP/1.1 101")) {
				return len(fds), fmt.Errorf("handshake answered %q", resp)
			}
			fds = append(fds, fd)
		}
		return len(fds), nil
	}, nil
}

// upgradeTLS runs a TLS handshake (Go's client, no verification: only the
// server's memory is measured) and the WebSocket upgrade over a connected
// socket.
func upgradeTLS(fd int, req []byte) (net.Conn, error) {
	f := os.NewFile(uintptr(fd), "client")
	nc, err := net.FileConn(f) // a dup of fd
	f.Close()                  // one descriptor per connection: the dup's
	if err != nil {
		return nil, err
	}
	c := tls.Client(nc, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
	if _, err := c.Write(req); err != nil {
		return nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		return nil, fmt.Errorf("handshake answered %d", resp.StatusCode)
	}
	return c, nil
}

// BenchmarkIdleConnMemory measures what an idle WebSocket connection costs
// the server: Go heap (runtime.MemStats after a GC) and process RSS, at
// 5,000, 10,000, 15,000 and 19,000 connections held by another process.
// Reported per connection at 10,000 (against the server before any
// connection) and as the slope from 10,000 to 19,000, with what the server
// allocated per connection while they came (alloc-B/conn, allocs/conn).
//
//	go test -run '^$' -bench IdleConnMemory -benchtime 1x ./server/
//
// The tls sub-benchmark holds wss:// connections (Go's TLS 1.3 client), the
// topics one plain connections subscribed to three topics at the handshake.
func BenchmarkIdleConnMemory(b *testing.B) {
	for _, tr := range transports {
		b.Run(map[bool]string{false: "tcp", true: "tls"}[tr.tls], func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				measureIdleConns(b, tr, Config{}, "")
			}
		})
	}
	// Subscribed at the handshake: the topics' entries, and the
	// "subscribed" answers among what the ramp allocates.
	b.Run("topics", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			measureIdleConns(b, transports[0], Config{}, "topics=idle.a,idle.b,idle.c")
		}
	})
}

// measureIdleConns runs the measurement on a server over tr with cfg's
// fields over the idle settings; the clients' requests carry query when it
// is not empty.
func measureIdleConns(b *testing.B, tr transport, cfg Config, query string) {
	cfg.Loops, cfg.HandshakeTimeout, cfg.PingInterval, cfg.IdleTimeout = 2, time.Minute, time.Hour, 2*time.Hour
	s := startServer(b, tr.config(b, cfg))
	child := testsupport.StartChild(b, idleClientsEnv+"="+s.Addr().String(), idleQueryEnv+"="+query,
		fmt.Sprintf("%s=%d", idleClientsTLSEnv, map[bool]int{false: 0, true: 1}[tr.tls]))
	defer child.Stop()
	type sample struct{ conns, heap, rss, scavenged, allocated, mallocs float64 }
	var samples []sample
	for _, n := range []int{0, 5000, 10000, 15000, 19000} {
		if !child.Hold(n) {
			b.Fatalf("idle clients stopped before %d connections", n)
		}
		testsupport.WaitFor(b, "the server to count the connections", func() bool { return s.Conns() == n })
		time.Sleep(200 * time.Millisecond) // let the loops go idle
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		before := float64(testsupport.RSS(b))
		debug.FreeOSMemory() // what the runtime's scavenger returns over time anyway
		samples = append(samples, sample{float64(n), float64(ms.HeapAlloc), before, float64(testsupport.RSS(b)), float64(ms.TotalAlloc), float64(ms.Mallocs)})
		b.Logf("%6d connections: heap %7.1f MiB, RSS %7.1f MiB, %7.1f MiB after FreeOSMemory", n, float64(ms.HeapAlloc)/(1<<20), before/(1<<20), float64(testsupport.RSS(b))/(1<<20))
	}
	at0, at10k, at19k := samples[0], samples[2], samples[4]
	b.ReportMetric((at10k.heap-at0.heap)/at10k.conns, "heap-B/conn@10k")
	b.ReportMetric((at19k.heap-at10k.heap)/(at19k.conns-at10k.conns), "heap-B/conn-slope")
	b.ReportMetric((at10k.rss-at0.rss)/at10k.conns, "rss-B/conn@10k")
	b.ReportMetric((at19k.rss-at10k.rss)/(at19k.conns-at10k.conns), "rss-B/conn-slope")
	b.ReportMetric((at10k.scavenged-at0.scavenged)/at10k.conns, "scavenged-rss-B/conn@10k")
	// What the ramp allocated in all, per connection: above the heap per
	// connection it is garbage, which a connection storm leaves resident
	// until it is collected and the pages returned.
	b.ReportMetric((at10k.allocated-at0.allocated)/at10k.conns, "alloc-B/conn")
	b.ReportMetric((at10k.mallocs-at0.mallocs)/at10k.conns, "allocs/conn")
	b.ReportMetric(float64(runtime.NumGoroutine()), "goroutines@19k")
}
