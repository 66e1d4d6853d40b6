package testsupport

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// DelayProxy is a TCP forwarder on loopback that holds every chunk of bytes,
// in both directions, for a delay before passing it on, in order: a slow
// network path (a far NATS server) made of real sockets. The delay can be
// changed while connections are open; it applies to bytes read from then on.
// With no delay it is a plain forwarder a test can cut (Cut, SetDown): a
// dropped network path between a client and a server.
type DelayProxy struct {
	ln     net.Listener
	target string
	delay  atomic.Int64 // nanoseconds

	mu    sync.Mutex
	down  bool
	conns []net.Conn
	wg    sync.WaitGroup
}

// StartDelayProxy forwards a loopback port to target and closes it, with
// every connection through it, when the test ends.
func StartDelayProxy(t testing.TB, target string) *DelayProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &DelayProxy{ln: ln, target: target}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.Close)
	return p
}

// Addr is the proxy's address, host:port.
func (p *DelayProxy) Addr() string { return p.ln.Addr().String() }

// SetDelay sets how long each chunk is held.
func (p *DelayProxy) SetDelay(d time.Duration) { p.delay.Store(int64(d)) }

// Close stops accepting and cuts every connection.
func (p *DelayProxy) Close() {
	p.ln.Close()
	p.Cut()
	p.wg.Wait()
}

// Cut closes every connection through the proxy, both sides: to each end
// the other goes away.
func (p *DelayProxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// SetDown cuts every connection and refuses new ones (true), or accepts
// them again (false).
func (p *DelayProxy) SetDown(down bool) {
	p.mu.Lock()
	p.down = down
	p.mu.Unlock()
	if down {
		p.Cut()
	}
}

func (p *DelayProxy) accept() {
	defer p.wg.Done()
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down := p.down
		p.mu.Unlock()
		if down {
			in.Close()
			continue
		}
		out, err := net.Dial("tcp", p.target)
		if err != nil {
			in.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, in, out)
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pump(in, out)
		go p.pump(out, in)
	}
}

// chunk is bytes read at a time, due at due.
type chunk struct {
	b   []byte
	due time.Time
}

// pump copies src to dst, each chunk delayed from when it was read; a
// writer goroutine keeps reading from blocking on the delay.
func (p *DelayProxy) pump(src, dst net.Conn) {
	defer p.wg.Done()
	q := make(chan chunk, 4096)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for c := range q {
			time.Sleep(time.Until(c.due))
			if _, err := dst.Write(c.b); err != nil {
				src.Close()
				for range q {
				}
				return
			}
		}
		dst.Close()
	}()
	for {
		buf := make([]byte, 32<<10)
		n, err := src.Read(buf)
		if n > 0 {
			q <- chunk{b: buf[:n], due: time.Now().Add(time.Duration(p.delay.Load()))}
		}
		if err != nil {
			if err != io.EOF {
				dst.Close()
			}
			close(q)
			<-done
			return
		}
	}
}
