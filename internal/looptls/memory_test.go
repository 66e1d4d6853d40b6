package looptls

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"reflect"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/wspush/wspush/internal/testsupport"
	"github.com/wspush/wspush/netpoll"
)

// idleChildEnv makes the re-executed test binary hold idle clients for the
// memory measurement: "addr mode src" where mode is tls or plain and src the
// source address (127.0.0.0/8) its connections come from. Clients live in
// another process so their memory and descriptors are not counted against
// the server.
const idleChildEnv = "LOOPTLS_IDLE_CLIENTS"

// heapProfileEnv names a file for a heap profile taken at the full count,
// to see where the bytes per connection go (go tool pprof -sample_index=inuse_space).
const heapProfileEnv = "LOOPTLS_HEAP_PROFILE"

// idleConnsEnv overrides the number of connections BenchmarkIdleMemory holds.
const idleConnsEnv = "LOOPTLS_IDLE_CONNS"

// The exchange every idle connection has had: a request the size of a
// WebSocket upgrade and an answer the size of its 101.
var (
	idleRequest = []byte("GET /ws?topics=news HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nOrigin: https://localhost\r\n\r\n")
	idleResponse = []byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n")
	endOfHead = []byte("\r\n\r\n")
)

func TestMain(m *testing.M) {
	testsupport.ChildMain(idleChildEnv, idleClients)
	os.Exit(m.Run())
}

// idleClients is the child's Holder for spec "addr mode src": each
// connection has had a TLS handshake if asked, the request and the whole
// answer. No goroutine stays per connection.
func idleClients(spec string) (testsupport.Holder, error) {
	f := strings.Fields(spec)
	if len(f) != 3 {
		return nil, fmt.Errorf("want \"addr mode src\", got %q", spec)
	}
	addr, useTLS, src := f[0], f[1] == "tls", net.ParseIP(f[2])
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: src}, Timeout: 30 * time.Second}
	cfg := &tls.Config{InsecureSkipVerify: true, NextProtos: []string{ALPNHTTP11}}
	dial := func() (net.Conn, error) {
		nc, err := d.Dial("tcp", addr)
		if err != nil {
			return nil, err
		}
		c := nc
		if useTLS {
			c = tls.Client(nc, cfg)
		}
		c.SetDeadline(time.Now().Add(30 * time.Second))
		if _, err := c.Write(idleRequest); err != nil {
			nc.Close()
			return nil, err
		}
		if _, err := io.ReadFull(c, make([]byte, len(idleResponse))); err != nil {
			nc.Close()
			return nil, fmt.Errorf("reading the answer: %w", err)
		}
		c.SetDeadline(time.Time{})
		return c, nil
	}
	var held []net.Conn
	return func(want int) (int, error) {
		var mu sync.Mutex
		var wg sync.WaitGroup
		var firstErr error
		todo := make(chan struct{}, want)
		for range want - len(held) {
			todo <- struct{}{}
		}
		close(todo)
		for range 32 { // dialers; below the server's handshake slots
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range todo {
					c, err := dial()
					mu.Lock()
					if err != nil && firstErr == nil {
						firstErr = err
					}
					if err == nil {
						held = append(held, c)
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		return len(held), firstErr
	}, nil
}

// idleServer is one of the servers compared: it counts the connections
// that have answered the request.
type idleServer interface {
	addr() string
	ready() int64
	close()
}

// loopTLS is the design of this package: netpoll loops, a Pool for the
// handshakes, Conns driven by the loops.
type loopTLS struct {
	g       *netpoll.Group
	cfg     *tls.Config
	pool    *Pool
	n       atomic.Int64
	refused atomic.Int64
}

type loopTLSConn struct {
	h        *loopTLS
	nc       *netpoll.Conn
	tc       *Conn
	plain    []byte
	answered bool
}

func newLoopTLS(tb testing.TB, cfg *tls.Config) *loopTLS {
	s := &loopTLS{cfg: cfg, pool: NewPool(64, time.Minute)}
	s.g = startLoops(tb, s)
	return s
}

// startLoops starts two netpoll loops serving h on a loopback port; the
// server that owns them closes them.
func startLoops(tb testing.TB, h netpoll.Handler) *netpoll.Group {
	g, err := netpoll.Listen(netpoll.Config{Addr: "127.0.0.1:0", Loops: 2, Handler: h})
	if err != nil {
		tb.Fatal(err)
	}
	if err := g.Start(); err != nil {
		tb.Fatal(err)
	}
	return g
}

func (s *loopTLS) addr() string { return s.g.Addr().String() }
func (s *loopTLS) ready() int64 { return s.n.Load() }
func (s *loopTLS) close()       { s.g.Close() }
func (s *loopTLS) Open(c *netpoll.Conn) {
	if !s.pool.TryAcquire(nil) { // the clients dial fewer at once than there are slots
		s.refused.Add(1)
		c.Close(nil)
		return
	}
	lc := &loopTLSConn{h: s, nc: c}
	lc.tc = Server(s.cfg, c.Loop().Post, lc, nil, nil)
	c.Data = lc
	s.pool.Start(lc.tc)
}

func (s *loopTLS) Read(c *netpoll.Conn, b []byte) (int, int) {
	lc := c.Data.(*loopTLSConn)
	var err error
	lc.plain, err = lc.tc.Read(lc.plain, b)
	lc.nc.Queue(lc.tc.Output())
	lc.serve(err)
	return len(b), 0
}

func (s *loopTLS) Timer(*netpoll.Conn, time.Time) {}

func (s *loopTLS) Close(c *netpoll.Conn, err error) {
	if lc, ok := c.Data.(*loopTLSConn); ok {
		lc.tc.Close()
	}
}

func (lc *loopTLSConn) TLSOutput(c *Conn) { lc.nc.Queue(c.Output()) }

func (lc *loopTLSConn) TLSHandshakeDone(c *Conn, err error) {
	if err == nil {
		lc.plain, err = c.Read(lc.plain, nil)
	}
	lc.nc.Queue(c.Output())
	lc.serve(err)
}

func (lc *loopTLSConn) serve(err error) {
	if err != nil {
		lc.nc.Close(err)
		return
	}
	if !lc.answered && bytes.Contains(lc.plain, endOfHead) {
		lc.answered = true
		lc.plain = nil
		lc.tc.Write(idleResponse)
		lc.nc.Queue(lc.tc.Output())
		lc.h.n.Add(1)
	}
}

// loopPlain is the same exchange without TLS: what the loops cost alone.
type loopPlain struct {
	g *netpoll.Group
	n atomic.Int64
}

func newLoopPlain(tb testing.TB) *loopPlain {
	s := &loopPlain{}
	s.g = startLoops(tb, s)
	return s
}

func (s *loopPlain) addr() string                   { return s.g.Addr().String() }
func (s *loopPlain) ready() int64                   { return s.n.Load() }
func (s *loopPlain) close()                         { s.g.Close() }
func (s *loopPlain) Open(*netpoll.Conn)             {}
func (s *loopPlain) Timer(*netpoll.Conn, time.Time) {}
func (s *loopPlain) Close(*netpoll.Conn, error)     {}
func (s *loopPlain) Read(c *netpoll.Conn, b []byte) (int, int) {
	if !bytes.Contains(b, endOfHead) {
		return 0, 0
	}
	c.Queue(idleResponse)
	s.n.Add(1)
	return len(b), 0
}

// goroutineTLS is the conventional server: a goroutine per connection
// blocked in tls.Conn.Read, with a 512-byte read buffer and nothing else (a
// lower bound for any goroutine-per-connection design; bench/baseline adds
// net/http, bufio and a writer goroutine).
type goroutineTLS struct {
	ln net.Listener
	n  atomic.Int64
}

func newGoroutineTLS(tb testing.TB, cfg *tls.Config) *goroutineTLS {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s := &goroutineTLS{ln: ln}
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go s.serve(tls.Server(nc, cfg))
		}
	}()
	return s
}

func (s *goroutineTLS) serve(c *tls.Conn) {
	defer c.Close()
	buf := make([]byte, 512)
	var req []byte
	for !bytes.Contains(req, endOfHead) {
		n, err := c.Read(buf)
		if err != nil {
			return
		}
		req = append(req, buf[:n]...)
	}
	if _, err := c.Write(idleResponse); err != nil {
		return
	}
	s.n.Add(1)
	for {
		if _, err := c.Read(buf); err != nil {
			return
		}
	}
}

func (s *goroutineTLS) addr() string { return s.ln.Addr().String() }
func (s *goroutineTLS) ready() int64 { return s.n.Load() }
func (s *goroutineTLS) close()       { s.ln.Close() }

// BenchmarkIdleMemory measures what an idle connection costs the server at
// 10,000 connections (LOOPTLS_IDLE_CONNS to change), each after a handshake
// and one request and answer, for this package's design, the same loops
// without TLS, and a goroutine-per-connection crypto/tls server. Go heap
// (after two GCs) and RSS (after debug.FreeOSMemory) per connection,
// against the server before any connection, and as the slope over the
// second half.
//
//	go test -run '^$' -bench IdleMemory -benchtime 1x ./internal/looptls/
func BenchmarkIdleMemory(b *testing.B) {
	n := 10000
	if v := os.Getenv(idleConnsEnv); v != "" {
		n, _ = strconv.Atoi(v)
	}
	cert := newTestCert(b, time.Now().Add(time.Hour))
	cases := []struct {
		name  string
		tls   bool
		src   string
		start func() idleServer
	}{
		{"loop-tls", true, "127.0.1.2", func() idleServer { return newLoopTLS(b, serverConfig(cert)) }},
		{"loop-plain", false, "127.0.2.2", func() idleServer { return newLoopPlain(b) }},
		{"goroutine-tls", true, "127.0.3.2", func() idleServer { return newGoroutineTLS(b, serverConfig(cert)) }},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			for range b.N {
				measureIdle(b, n, c.tls, c.src, c.start)
			}
		})
	}
}

func measureIdle(b *testing.B, n int, useTLS bool, src string, start func() idleServer) {
	type sample struct{ conns, heap, rss, stack float64 }
	read := func(conns int) sample {
		runtime.GC()
		runtime.GC()
		debug.FreeOSMemory()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return sample{float64(conns), float64(ms.HeapAlloc), float64(testsupport.RSS(b)), float64(ms.StackInuse)}
	}
	before := read(0) // before the server exists: its listener and loops count
	s := start()
	defer s.close()
	mode := "plain"
	if useTLS {
		mode = "tls"
	}
	child := testsupport.StartChild(b, idleChildEnv+"="+s.addr()+" "+mode+" "+src)
	defer child.Stop()
	samples := []sample{before}
	for _, k := range []int{n / 2, n} {
		if !child.Hold(k) {
			b.Fatalf("idle clients stopped before %d connections", k)
		}
		testsupport.WaitFor(b, "the server to answer every connection", func() bool { return s.ready() == int64(k) })
		time.Sleep(200 * time.Millisecond) // let handshake goroutines exit
		samples = append(samples, read(k))
		last := samples[len(samples)-1]
		b.Logf("%6d connections: heap %6.1f MiB, RSS %6.1f MiB, stacks %5.1f MiB, goroutines %d", k,
			last.heap/(1<<20), last.rss/(1<<20), last.stack/(1<<20), runtime.NumGoroutine())
	}
	if f := os.Getenv(heapProfileEnv); f != "" {
		writeHeapProfile(b, f)
	}
	if lt, ok := s.(*loopTLS); ok {
		if r := lt.refused.Load(); r > 0 {
			b.Fatalf("%d connections refused a handshake slot", r)
		}
		reportBuffers(b, lt)
	}
	half, full := samples[1], samples[2]
	b.ReportMetric((full.heap-before.heap)/full.conns, "heap-B/conn")
	b.ReportMetric((full.heap-half.heap)/(full.conns-half.conns), "heap-B/conn-slope")
	b.ReportMetric((full.rss-before.rss)/full.conns, "rss-B/conn")
	b.ReportMetric((full.rss-half.rss)/(full.conns-half.conns), "rss-B/conn-slope")
	b.ReportMetric((full.stack-before.stack)/full.conns, "stack-B/conn")
	b.ReportMetric(float64(runtime.NumGoroutine()), "goroutines")
}

// reportBuffers reports the average capacity of crypto/tls's buffers kept
// by the idle Conns, and the sizes of the structs per connection.
func reportBuffers(b *testing.B, s *loopTLS) {
	var conns, raw, hand, send int
	rawSizes := map[int]int{} // capacity: connections
	var mu sync.Mutex         // Each runs on every loop at once
	s.g.Each(func(l *netpoll.Loop) {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range l.Conns() {
			lc, ok := c.Data.(*loopTLSConn)
			if !ok {
				continue
			}
			r, h, sb := tlsBuffers(lc.tc.tc)
			conns, raw, hand, send = conns+1, raw+r, hand+h, send+sb
			rawSizes[r]++
		}
	})
	b.Logf("%d connections inspected; rawInput capacities: %v", conns, rawSizes)
	if conns == 0 {
		return
	}
	b.ReportMetric(float64(raw)/float64(conns), "rawInput-B/conn")
	b.ReportMetric(float64(hand)/float64(conns), "hand-B/conn")
	b.ReportMetric(float64(send)/float64(conns), "sendBuf-B/conn")
	b.Logf("struct sizes: tls.Conn %d, Conn %d, transport %d, netpoll.Conn %d",
		unsafe.Sizeof(tls.Conn{}), unsafe.Sizeof(Conn{}), unsafe.Sizeof(transport{}), unsafe.Sizeof(netpoll.Conn{}))
}

// tlsBuffers reads the capacities of a tls.Conn's rawInput, hand and
// sendBuf (unexported: reflect reads them without modifying anything).
func tlsBuffers(tc *tls.Conn) (rawInput, hand, sendBuf int) {
	v := reflect.ValueOf(tc).Elem()
	return v.FieldByName("rawInput").FieldByName("buf").Cap(),
		v.FieldByName("hand").FieldByName("buf").Cap(),
		v.FieldByName("sendBuf").Cap()
}

func writeHeapProfile(b *testing.B, name string) {
	f, err := os.Create(name)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		b.Fatal(err)
	}
}
