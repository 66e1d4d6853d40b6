package bench

import (
	"crypto/tls"
	"errors"
	"net"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/gobwas/ws"
	"golang.org/x/sys/unix"

	"github.com/wspush/wspush/internal/looptls"
)

// The epoll client: a few loops, each one goroutine owning an epoll instance
// and every connection registered on it. Nothing about a Conn is touched
// outside its loop goroutine; other goroutines talk to a loop by posting
// closures (loop.post), which wakes it through an eventfd.

type connState uint8

const (
	stConnecting connState = iota
	stHandshaking
	stOpen
	stClosed
)

// dialSpec describes one connection to open.
type dialSpec struct {
	id     int
	dst    unix.SockaddrInet4
	src    *[4]byte
	host   string // Host header
	path   string // request target, query included
	rcvbuf int
	slow   bool
	topic  int
	churn  bool
	tls    *tls.Config // wss://: the client configuration; nil for ws://
}

// Conn is one client connection, owned by its loop goroutine.
type Conn struct {
	l       *loop
	fd      int
	spec    dialSpec
	state   connState
	started int64 // dial time, unix nanoseconds
	opened  int64 // handshake done, unix nanoseconds
	accept  string
	in      []byte
	out     []byte
	frag    []byte
	fragOp  ws.OpCode
	paused  bool
	closing bool // we sent a close frame

	// wss://: the TLS connection driven by the loop (client_tls.go); out
	// then holds plaintext, encrypted into tout at flush.
	tls  *looptls.Conn
	tout []byte

	// fanout bookkeeping
	firstSeq, lastSeq int64
	recv, ooo, gaps   int64
	endKind           string // why the connection ended ("" while open)
	endedAt           int64
}

func (c *Conn) openedAt() bool { return c.opened != 0 }

// handler receives connection events on the connection's loop goroutine.
type handler interface {
	opened(c *Conn, now int64)
	message(c *Conn, msg []byte, now int64)
	ended(c *Conn, kind string, now int64) // kind: "" when we closed it ourselves
}

type loop struct {
	id      int
	epfd    int
	efd     int
	h       handler
	hsTO    time.Duration
	conns   map[int]*Conn
	pending int // connections not open yet
	buf     []byte
	st      *loopStats
	tlsPool *looptls.Pool // wss:// handshakes (client_tls.go); nil until the first
	pbuf    []byte        // wss:// plaintext scratch

	mu       sync.Mutex
	cmds     []func()
	stopping bool
	done     chan struct{}
}

func newLoop(id int, h handler, st *loopStats, hsTimeout time.Duration) (*loop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, wrapSys("epoll_create1", err)
	}
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return nil, wrapSys("eventfd", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(efd)}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, efd, &ev); err != nil {
		unix.Close(epfd)
		unix.Close(efd)
		return nil, wrapSys("epoll_ctl", err)
	}
	return &loop{
		id: id, epfd: epfd, efd: efd, h: h, hsTO: hsTimeout, st: st,
		conns: make(map[int]*Conn), buf: make([]byte, 256<<10), done: make(chan struct{}),
	}, nil
}

// post runs f on the loop goroutine.
func (l *loop) post(f func()) {
	l.mu.Lock()
	wake := len(l.cmds) == 0
	l.cmds = append(l.cmds, f)
	l.mu.Unlock()
	if wake {
		var one = [8]byte{1}
		_, _ = unix.Write(l.efd, one[:])
	}
}

// stop closes every connection and ends the loop; it returns when the loop is done.
func (l *loop) stop() {
	l.post(func() {
		now := time.Now().UnixNano()
		for _, c := range l.conns {
			if c.state == stOpen && !c.closing {
				c.out = appendFrame(c.out, ws.OpClose, ws.NewCloseFrameBody(ws.StatusNormalClosure, ""))
				l.flush(c, now)
			}
			l.end(c, "", now)
		}
		l.stopping = true
	})
	<-l.done
}

func (l *loop) run() {
	defer close(l.done)
	defer unix.Close(l.epfd)
	defer unix.Close(l.efd)
	events := make([]unix.EpollEvent, 512)
	lastScan := time.Now().UnixNano()
	for {
		n, err := unix.EpollWait(l.epfd, events, 100)
		if err != nil && !errors.Is(err, unix.EINTR) {
			l.st.addErr("epoll_wait", 1)
			return
		}
		now := time.Now().UnixNano()
		for i := 0; i < n; i++ {
			ev := &events[i]
			fd := int(ev.Fd)
			if fd == l.efd {
				var b [8]byte
				_, _ = unix.Read(l.efd, b[:])
				l.runCmds()
				continue
			}
			if c := l.conns[fd]; c != nil {
				l.event(c, ev.Events, now)
			}
		}
		l.runCmds() // commands posted while the eventfd was already signalled
		if l.stopping {
			return
		}
		if l.pending > 0 && now-lastScan > int64(200*time.Millisecond) {
			lastScan = now
			for _, c := range l.conns {
				if c.state < stOpen && now-c.started > int64(l.hsTO) {
					l.end(c, "timeout", now)
				}
			}
		}
	}
}

func (l *loop) runCmds() {
	for {
		l.mu.Lock()
		cmds := l.cmds
		l.cmds = nil
		l.mu.Unlock()
		if len(cmds) == 0 {
			return
		}
		for _, f := range cmds {
			f()
		}
	}
}

// dial opens a connection (on the loop goroutine).
func (l *loop) dial(d dialSpec) *Conn {
	now := time.Now().UnixNano()
	c := &Conn{l: l, fd: -1, spec: d, started: now}
	l.pending++
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		l.end(c, errKind(err), now)
		return c
	}
	c.fd = fd
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	if d.rcvbuf > 0 {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, d.rcvbuf)
	}
	if d.src != nil {
		// Pick the port at connect time so (src, port) pairs are shared across destinations.
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
		if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: *d.src}); err != nil {
			l.end(c, "bind_"+errKind(err), now)
			return c
		}
	}
	err = unix.Connect(fd, &d.dst)
	if err != nil && !errors.Is(err, unix.EINPROGRESS) {
		l.end(c, errKind(err), now)
		return c
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET, Fd: int32(fd)}
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		l.end(c, "epoll_"+errKind(err), now)
		return c
	}
	l.conns[fd] = c
	return c
}

func (l *loop) event(c *Conn, ev uint32, now int64) {
	if c.state == stConnecting {
		if ev&(unix.EPOLLOUT|unix.EPOLLERR|unix.EPOLLHUP) == 0 {
			return
		}
		if e, err := unix.GetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_ERROR); err != nil || e != 0 {
			if err == nil {
				err = syscall.Errno(e)
			}
			l.end(c, errKind(err), now)
			return
		}
		c.state = stHandshaking
		if c.spec.tls != nil {
			l.startTLS(c) // the upgrade request follows the TLS handshake
			return
		}
		host := c.spec.host
		c.out, c.accept = appendHandshake(c.out, host, c.spec.path)
		l.flush(c, now)
		if c.state == stClosed {
			return
		}
	}
	if ev&unix.EPOLLOUT != 0 && (len(c.out) > 0 || len(c.tout) > 0) {
		l.flush(c, now)
		if c.state == stClosed {
			return
		}
	}
	if ev&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 && !c.paused {
		l.read(c, ev&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0, now)
	}
}

// read drains the socket (edge-triggered) and processes what arrived.
func (l *loop) read(c *Conn, hup bool, now int64) {
	for c.state != stClosed && !c.paused {
		n, err := unix.Read(c.fd, l.buf)
		if n > 0 {
			data := l.buf[:n]
			if c.tls != nil {
				var ok bool
				if data, ok = l.decrypt(c, data, now); !ok {
					return
				}
			}
			if len(c.in) > 0 {
				c.in = append(c.in, data...)
				data = c.in
			}
			used := l.process(c, data, now)
			if c.state == stClosed {
				return
			}
			rest := data[used:]
			if len(rest) == 0 {
				c.in = c.in[:0]
				if cap(c.in) > 64<<10 {
					c.in = nil
				}
			} else if len(c.in) > 0 {
				c.in = c.in[:copy(c.in, rest)]
			} else {
				c.in = append(c.in, rest...)
			}
			if n < len(l.buf) && !hup {
				return // short read: the socket is drained, the next byte brings a new edge
			}
			continue
		}
		switch {
		case n == 0 && err == nil:
			kind := "eof"
			if c.state < stOpen {
				kind = "eof_handshake"
			}
			l.end(c, kind, now)
			return
		case errors.Is(err, unix.EAGAIN):
			return
		case errors.Is(err, unix.EINTR):
			continue
		default:
			l.end(c, errKind(err), now)
			return
		}
	}
}

// process handles the bytes in data and returns how many it consumed.
func (l *loop) process(c *Conn, data []byte, now int64) int {
	off := 0
	if c.state == stHandshaking {
		n, err := parseResponse(data, c.accept)
		if errors.Is(err, errIncomplete) {
			return 0
		}
		if err != nil {
			var he *httpStatusError
			kind := "bad_handshake"
			if errors.As(err, &he) {
				kind = "http_" + strconv.Itoa(he.code)
			}
			l.end(c, kind, now)
			return 0
		}
		off = n
		c.state = stOpen
		c.opened = now
		l.pending--
		l.st.open.Add(1)
		l.st.opened.Add(1)
		l.h.opened(c, now)
		if c.state == stClosed || c.paused {
			return off
		}
	}
	for c.state == stOpen && !c.paused {
		h, err := parseHeader(data[off:])
		if errors.Is(err, errIncomplete) {
			return off
		}
		if err != nil {
			l.end(c, "protocol", now)
			return off
		}
		total := h.size + int(h.length)
		if len(data)-off < total {
			return off
		}
		payload := data[off+h.size : off+total]
		off += total
		switch h.op {
		case ws.OpText, ws.OpBinary:
			if c.frag != nil {
				l.end(c, "protocol", now)
				return off
			}
			if h.fin {
				l.h.message(c, payload, now)
			} else {
				c.frag, c.fragOp = append([]byte{}, payload...), h.op
			}
		case ws.OpContinuation:
			if c.frag == nil {
				l.end(c, "protocol", now)
				return off
			}
			c.frag = append(c.frag, payload...)
			if h.fin {
				msg := c.frag
				c.frag = nil
				l.h.message(c, msg, now)
			}
		case ws.OpPing:
			c.out = appendFrame(c.out, ws.OpPong, payload)
			l.flush(c, now)
		case ws.OpPong:
		case ws.OpClose:
			code := 1005
			if len(payload) >= 2 {
				code = int(payload[0])<<8 | int(payload[1])
			}
			if !c.closing {
				c.out = appendFrame(c.out, ws.OpClose, payload[:min(2, len(payload))])
				l.flush(c, now)
			}
			l.end(c, "close_"+strconv.Itoa(code), now)
			return off
		}
	}
	return off
}

// send queues a masked frame and writes what the socket takes.
func (l *loop) send(c *Conn, op ws.OpCode, payload []byte, now int64) {
	if c.state != stOpen || c.closing {
		return
	}
	c.out = appendFrame(c.out, op, payload)
	if op == ws.OpClose {
		c.closing = true
	}
	l.flush(c, now)
}

func (l *loop) flush(c *Conn, now int64) {
	if c.tls != nil {
		l.flushTLS(c, now)
		return
	}
	l.writeOut(c, &c.out, now)
}

// writeOut writes what the socket takes of *out and keeps the rest there.
func (l *loop) writeOut(c *Conn, out *[]byte, now int64) {
	for len(*out) > 0 && c.state != stClosed {
		n, err := unix.Write(c.fd, *out)
		if n > 0 {
			*out = (*out)[:copy(*out, (*out)[n:])]
			continue
		}
		if errors.Is(err, unix.EAGAIN) {
			return
		}
		if errors.Is(err, unix.EINTR) {
			continue
		}
		l.end(c, errKind(err), now)
		return
	}
}

// resume makes a paused connection read again.
func (l *loop) resume(c *Conn) {
	if c.state == stClosed || !c.paused {
		return
	}
	c.paused = false
	now := time.Now().UnixNano()
	if len(c.in) > 0 {
		used := l.process(c, c.in, now)
		if c.state == stClosed {
			return
		}
		c.in = c.in[:copy(c.in, c.in[used:])]
	}
	l.read(c, true, now)
}

// end closes c and reports it. kind is "" when we close it on purpose.
func (l *loop) end(c *Conn, kind string, now int64) {
	if c.state == stClosed {
		return
	}
	wasOpen := c.state == stOpen
	if !wasOpen {
		l.pending--
		if kind == "" {
			kind = "aborted"
		}
		l.st.failed.Add(1)
	} else {
		l.st.open.Add(-1)
	}
	c.state = stClosed
	if c.fd >= 0 {
		delete(l.conns, c.fd)
		unix.Close(c.fd)
		c.fd = -1
	}
	c.in, c.out, c.frag = nil, nil, nil
	if c.tls != nil {
		c.tls.Close()
		c.tls, c.tout = nil, nil
	}
	c.endKind, c.endedAt = kind, now
	if c.endKind == "" {
		c.endKind = "client"
	}
	l.h.ended(c, kind, now)
}

func wrapSys(op string, err error) error { return &net.OpError{Op: op, Err: err} }

// errKind names a socket error for the error tables.
func errKind(err error) string {
	var en syscall.Errno
	if errors.As(err, &en) {
		switch en {
		case unix.ECONNREFUSED:
			return "refused"
		case unix.ECONNRESET:
			return "reset"
		case unix.ETIMEDOUT:
			return "timeout"
		case unix.EADDRNOTAVAIL:
			return "addr_not_avail"
		case unix.EADDRINUSE:
			return "addr_in_use"
		case unix.EMFILE, unix.ENFILE:
			return "too_many_files"
		case unix.EPIPE:
			return "broken_pipe"
		case unix.ENOBUFS, unix.ENOMEM:
			return "no_buffers"
		}
		return "errno_" + strconv.Itoa(int(en))
	}
	return "error"
}
