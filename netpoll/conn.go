//go:build linux

package netpoll

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"time"

	epoll "github.com/mailru/easygo/netpoll"
	"golang.org/x/sys/unix"

	"github.com/wspush/wspush/internal/bufpool"
)

// Conn is one accepted TCP connection. It is owned by its Loop: call its
// methods only from that loop's goroutine (inside Handler callbacks or tasks
// posted to the loop).
//
// Every idle connection holds one: it is kept at 80 bytes, a size class
// (TestConnSizeClass), by keeping what only a connection with output needs
// in outq, the unconsumed input of one with a unit still arriving in inq,
// and the small fields together.
type Conn struct {
	fd   int32 // -1 once closed
	idx  int32 // position in loop.conns
	loop *Loop
	in   *inq  // unconsumed input; nil when none
	out  *outq // queued output; nil when none

	dirty      bool // in loop.dirty, waiting for the end-of-callback flush
	reading    bool // inside Handler.Read: tail must stay put
	closeWrite bool // shut down the sending side once the queue has drained
	blocked    bool // the last write met a full send buffer: wait for EPOLLOUT
	rdhup      bool // the peer shut down its side
	paused     bool // input left unread while the queue is over the loop's PauseReadAt
	noRead     bool // StopReading was called

	tnext, tprev *Conn // timer wheel links
	tdue         int64 // tick of the deadline; 0 when none

	// Data is the Handler's per-connection state.
	Data any
}

// inq holds a connection's unconsumed input (tail, never empty) while it
// has some: the partial unit a read left, in a buffer of the loop's pool.
// Loops keep the holders they hand out (getin, putin), as they keep outqs.
type inq struct {
	tail []byte
}

// outq is a connection's output: references to immutable buffers, sent in
// order. bufs[head][off:] is the next byte to go.
type outq struct {
	bufs   [][]byte
	head   int
	off    int
	queued int // bytes not yet written: the connection's bufferedAmount

	// copied holds what QueueCopy copied, at most maxCopiedKept bytes. It
	// is emptied only when the queue goes back to the loop (putq),
	// everything in it written or dropped, and its room is kept with the
	// queue: the copies of the next connections' handshake answers go
	// there, and leave no garbage behind.
	copied []byte
}

// Loop is the loop that owns c.
func (c *Conn) Loop() *Loop { return c.loop }

// Fd is the socket, or -1 once the connection is closed.
func (c *Conn) Fd() int { return int(c.fd) }

// Closed reports whether the connection has been closed.
func (c *Conn) Closed() bool { return c.fd < 0 }

// Buffered is the connection's bufferedAmount: bytes queued by Queue and not
// yet accepted by the kernel.
func (c *Conn) Buffered() int {
	if c.out == nil {
		return 0
	}
	return c.out.queued
}

// Queue queues b, by reference, to be sent after everything queued before
// it. It is not an io.Writer: b is not copied, so the caller must not modify
// b afterwards (shared prepared frames are immutable, which is what lets one
// frame serve every subscriber). Queued bytes are written when the current
// callback ends, in one writev with everything else queued for c.
func (c *Conn) Queue(b []byte) {
	if c.fd < 0 || len(b) == 0 {
		return
	}
	l := c.loop
	if c.out == nil {
		c.out = l.getq()
	}
	c.out.bufs = append(c.out.bufs, b)
	c.out.queued += len(b)
	if !c.dirty {
		c.dirty = true
		l.dirty = append(l.dirty, c)
	}
}

// QueueCopy queues a copy of b, for bytes the caller reuses at once (a
// loop's scratch). The copy goes into a buffer the loop keeps with the
// connection's output queue and reuses for other connections once it is
// written, so a small answer costs no allocation; Queue, by reference, is for
// what is shared or kept anyway (prepared frames).
func (c *Conn) QueueCopy(b []byte) {
	if c.fd < 0 || len(b) == 0 {
		return
	}
	if c.out == nil {
		c.out = c.loop.getq()
	}
	q := c.out
	if len(q.copied)+len(b) > maxCopiedKept {
		// The room is emptied only when the queue drains (putq): a queue
		// that never does (a slow reader still sending commands) would
		// keep every answer it was ever given, written or not. Past the
		// room a copy is its own allocation, freed once written.
		c.Queue(bytes.Clone(b))
		return
	}
	// A reallocation leaves the earlier copies where they were, queued
	// by reference: the old array lives until they are written.
	start := len(q.copied)
	q.copied = append(q.copied, b...)
	c.Queue(q.copied[start:len(q.copied):len(q.copied)])
}

// StopReading stops reading c for good: what the peer sends from now on stays
// in the kernel, whose window closes, until c is closed. It is for a
// connection whose last word is out while its peer keeps sending: reading and
// dropping that at line rate would cost the loop a syscall per ReadBuffer.
func (c *Conn) StopReading() { c.noRead = true }

// AtBoundary reports whether nothing of the queue's head has been written yet,
// so the byte stream on the wire ends between two Queue calls (between
// frames). Something written now would not split an earlier frame.
func (c *Conn) AtBoundary() bool { return c.out == nil || c.out.off == 0 }

// Discard drops everything queued and not yet written.
func (c *Conn) Discard() {
	if c.out != nil {
		c.loop.putq(c.out)
		c.out = nil
	}
}

// DiscardPending drops everything queued except the unwritten rest of a
// buffer the kernel has taken part of: the byte stream then ends, once that
// rest is out, where the next Queue begins (between frames), so a slow
// consumer can be dropped without a truncated frame on the wire.
func (c *Conn) DiscardPending() {
	q := c.out
	if q == nil || q.off == 0 {
		c.Discard()
		return
	}
	clear(q.bufs[q.head+1:])
	q.bufs = q.bufs[:q.head+1]
	q.queued = len(q.bufs[q.head]) - q.off
}

// CloseWrite shuts down the sending side (a TCP FIN) once everything queued
// has been written. The connection stays open for reading, so the peer's last
// bytes are not answered with a reset, until the peer closes or the Handler
// closes it, typically from its timer.
func (c *Conn) CloseWrite() {
	if c.fd < 0 || c.closeWrite {
		return
	}
	c.closeWrite = true
	if c.out == nil {
		unix.Shutdown(int(c.fd), unix.SHUT_WR)
	}
}

// SetTimer sets the connection's single deadline: Handler.Timer is called
// once it has passed, at the resolution of the loop's tick.
func (c *Conn) SetTimer(at time.Time) {
	if c.fd >= 0 {
		c.loop.wheel.add(c, c.loop.wheel.ticksAt(at))
	}
}

// StopTimer cancels the deadline.
func (c *Conn) StopTimer() { c.loop.wheel.remove(c) }

// Close closes the socket at once, dropping queued output, and calls
// Handler.Close. Closing a closed connection does nothing.
func (c *Conn) Close(err error) {
	if c.fd < 0 {
		return
	}
	l := c.loop
	if l.ep != nil {
		l.ep.Del(int(c.fd))
	}
	unix.Close(int(c.fd))
	c.fd = -1
	l.wheel.remove(c)
	last := len(l.conns) - 1
	l.conns[c.idx] = l.conns[last]
	l.conns[c.idx].idx = c.idx
	l.conns[last] = nil
	l.conns = l.conns[:last]
	c.Discard()
	if !c.reading {
		c.releaseTail()
	}
	l.Stats.Conns.Add(-1)
	defer c.recoverClose()
	l.h.Close(c, err)
}

func (c *Conn) releaseTail() {
	if c.in != nil {
		c.loop.pool.Put(c.in.tail)
		c.loop.putin(c.in)
		c.in = nil
	}
}

// tail is the connection's unconsumed input; nil when none.
func (c *Conn) tail() []byte {
	if c.in == nil {
		return nil
	}
	return c.in.tail
}

func (c *Conn) onEvent(ev epoll.EpollEvent) {
	if ev == epollClosed {
		c.Close(io.ErrClosedPipe)
		return
	}
	l := c.loop
	l.Stats.Events.Add(1)
	if ev&epoll.EPOLLRDHUP != 0 {
		c.rdhup = true
	}
	if ev&(epoll.EPOLLIN|epoll.EPOLLRDHUP|epoll.EPOLLHUP|epoll.EPOLLERR) != 0 {
		c.readAll()
	}
	if ev&epoll.EPOLLOUT != 0 {
		c.blocked = false
		if c.fd >= 0 && c.out != nil && !c.dirty {
			c.flush()
		}
		if c.paused && c.fd >= 0 && c.Buffered() <= l.pauseAt {
			// The queue drained below the mark: read what the edge-triggered
			// EPOLLIN announced while we were not reading.
			c.paused = false
			c.readAll()
		}
	}
	l.flushDirty()
}

// overHighWater reports whether c must not be read now: its queue is over the
// loop's PauseReadAt even after trying to write it. The peer's input then
// stays in the kernel, whose window closes, so TCP pushes back on a sender
// that does not read what it is sent. EPOLLOUT resumes reading (onEvent).
func (c *Conn) overHighWater() bool {
	l := c.loop
	if l.pauseAt <= 0 || c.Buffered() <= l.pauseAt {
		return false
	}
	if !c.blocked {
		c.flush()
	}
	if c.fd >= 0 && c.Buffered() > l.pauseAt {
		c.paused = true
		return true
	}
	return false
}

// readAll reads until the socket is drained, as edge-triggered epoll needs.
func (c *Conn) readAll() {
	l := c.loop
	for reads := 0; c.fd >= 0; reads++ {
		if c.noRead || c.overHighWater() {
			return
		}
		if reads == maxReads {
			c.readLater()
			return
		}
		dst := l.rbuf
		inTail := false // the read goes into the tail's room, not rbuf
		inBuf := 0      // bytes of the tail copied in front of dst in rbuf
		tail := c.tail()
		switch {
		case tail != nil && len(tail) <= len(l.rbuf)/2:
			// A small tail is gathered in rbuf, behind a copy of it: read
			// into the tail's own room (a 512-byte buffer holding part of
			// a ping, say) a flooder's input came 393 bytes a syscall,
			// each a full read that cost the connection its turn, and
			// 200 ping flooders posted ~50,000 reads in front of pushes.
			inBuf = copy(l.rbuf, tail)
			dst = l.rbuf[inBuf:]
		case tail != nil:
			// At most ReadBuffer a read, into a tail too: a turn reads at
			// most maxReads of them, however large the unit being gathered.
			inTail = true
			dst = tail[len(tail):min(cap(tail), len(tail)+len(l.rbuf))]
		}
		n, err := unix.Read(int(c.fd), dst)
		switch {
		case err == unix.EAGAIN:
			return
		case err == unix.EINTR:
			continue
		case err != nil:
			c.Close(err)
			return
		case n == 0:
			c.Close(io.EOF)
			return
		}
		var b []byte
		if inTail {
			b = tail[:len(tail)+n]
			c.in.tail = b
		} else {
			b = l.rbuf[:inBuf+n]
		}
		c.reading = true
		used, need := c.read(b)
		c.reading = false
		if c.fd < 0 {
			c.releaseTail()
			return
		}
		c.keep(b[used:], need)
		// A short read drained the socket; a new edge comes with new data.
		// After RDHUP keep reading to see the EOF, which brings no new edge.
		if n < len(dst) && !c.rdhup {
			return
		}
	}
}

// keep stores the unconsumed rest of the input in the connection's tail
// buffer and returns the buffer when nothing is left. The buffer grows with
// the bytes that actually arrived (the next power of two), never with the
// size a unit declares: a frame header announcing 1 MiB costs what it
// brought, not a 1 MiB buffer. Above exactTail, where the pool keeps nothing,
// it is allocated, and never larger than the unit it gathers (a 1 MiB frame
// once took a 2 MiB buffer). A tail much larger than its content is swapped
// for a smaller one, so a big message once received is not kept for a small
// rest.
func (c *Conn) keep(rest []byte, need int) {
	if len(rest) == 0 {
		c.releaseTail()
		return
	}
	// Room for at least one more byte; the pool's classes and the buffers
	// above them are powers of two, less than twice what arrived.
	size := max(len(rest)+1, minTail)
	if size > exactTail {
		size = 1 << bits.Len(uint(size-1))
	}
	if need > len(rest) {
		size = min(size, need)
	}
	if tail := c.tail(); tail != nil && cap(tail) >= size && cap(tail) <= 4*max(size, minTail) {
		if &rest[0] != &tail[0] { // nothing consumed (a unit still gathering): already in place
			copy(tail[:len(rest)], rest) // rest may be longer than the tail was (gathered in rbuf)
		}
		c.in.tail = tail[:len(rest)]
		return
	}
	var buf []byte
	if size > exactTail {
		buf = make([]byte, 0, size)
	} else {
		buf = c.loop.pool.Get(size)
	}
	buf = append(buf, rest...)
	if c.in == nil {
		c.in = c.loop.getin()
	} else {
		c.loop.pool.Put(c.in.tail)
	}
	c.in.tail = buf
}

// exactTail is the size above which a tail is allocated to its size rather
// than taken from the pool (bufpool.MaxKept: the pool keeps nothing larger).
const exactTail = bufpool.MaxKept

// maxReads is how many reads (of up to ReadBuffer bytes, 64 KiB by default)
// one connection gets per turn: a peer sending without pause must not keep
// its loop from the other connections. Past it the rest is read in a task
// posted to the loop, after the others' events and the tasks posted before
// it (pushes among them). One read: a turn of a loop with 100 peers sending
// at once reads 6.4 MiB, not 25 MiB, before a push queued behind it goes out
// (with 4, the hostile run's first seconds, 200 floods over 2 loops, had a
// push latency p50 of 64-155 ms; with 1, 16-24 ms; docs/benchmarks.md).
const maxReads = 1

// readLater reads c again once the loop has served its other events. The
// task is a method value made per call (16 bytes for a read of up to
// ReadBuffer), not a closure kept in every Conn, idle ones included.
func (c *Conn) readLater() {
	c.loop.Stats.DeferredReads.Add(1)
	c.loop.post(c.readAgain)
}

// readAgain is readLater's task.
func (c *Conn) readAgain() {
	if c.fd >= 0 && !c.paused {
		c.readAll()
	}
}

// minTail is the smallest tail buffer: the pool's smallest class.
const minTail = 512

// flush writes as much of the queue as the kernel takes, in writev calls of up
// to IOV_MAX buffers. What the kernel does not take waits for EPOLLOUT.
func (c *Conn) flush() {
	l := c.loop
	for c.out != nil && c.fd >= 0 {
		q := c.out
		iov := l.iov[:0]
		want := 0
		for i, b := range q.bufs[q.head:] {
			if i == 0 {
				b = b[q.off:]
			}
			iov = append(iov, unix.Iovec{Base: &b[0], Len: uint64(len(b))})
			want += len(b)
			if len(iov) == maxIovecs {
				break
			}
		}
		var n int
		var errno unix.Errno
		if len(iov) == 1 {
			// One frame (the common sparse push): write(2) costs less in the
			// kernel than writev(2) of one iovec (no iovec import, fdget_pos).
			n, errno = l.write(c.fd, iov[0])
		} else {
			n, errno = l.writev(c.fd, iov)
		}
		clear(iov) // do not keep the frames alive from the loop's scratch
		switch errno {
		case 0:
		case unix.EAGAIN:
			c.blocked = true
			return
		case unix.EINTR:
			continue
		default:
			c.Close(errno)
			return
		}
		l.Stats.BytesWritten.Add(uint64(n))
		q.queued -= n
		written := n
		for n > 0 {
			left := len(q.bufs[q.head]) - q.off
			if n < left {
				q.off += n
				break
			}
			n -= left
			q.bufs[q.head] = nil
			q.head++
			q.off = 0
		}
		if q.head == len(q.bufs) {
			l.putq(q)
			c.out = nil
			if c.closeWrite {
				unix.Shutdown(int(c.fd), unix.SHUT_WR)
			}
			return
		}
		if q.head > 64 && 2*q.head > len(q.bufs) {
			// A queue that never drains (a slow reader) must not grow forever.
			k := copy(q.bufs, q.bufs[q.head:])
			clear(q.bufs[k:])
			q.bufs, q.head = q.bufs[:k], 0
		}
		if written < want {
			c.blocked = true // the send buffer is full; EPOLLOUT will call again
			return
		}
	}
}

// The panic boundary. Each Handler callback runs inside one: a panic is
// logged with its stack, counted in Stats.Panics, and closes that connection
// alone (Handler.Close gets an error wrapping ErrHandlerPanic); the loop and
// its other connections go on. A panic in Handler.Close itself is logged: the
// connection is closed already. It costs a deferred call per callback,
// nothing per byte (BenchmarkEchoRoundTrip).

// ErrHandlerPanic is wrapped by the error Handler.Close gets when a callback
// on the connection panicked.
var ErrHandlerPanic = errors.New("netpoll: handler panicked")

func (c *Conn) read(b []byte) (used, need int) {
	defer c.recoverCallback("Read")
	return c.loop.h.Read(c, b)
}

func (c *Conn) open() {
	defer c.recoverCallback("Open")
	c.loop.h.Open(c)
}

func (c *Conn) timer(now time.Time) {
	defer c.recoverCallback("Timer")
	c.loop.h.Timer(c, now)
}

// recoverCallback is deferred around a Handler callback on c.
func (c *Conn) recoverCallback(callback string) {
	v := recover()
	if v == nil {
		return
	}
	c.loop.logPanic(callback, v)
	c.Close(fmt.Errorf("%w in %s: %v", ErrHandlerPanic, callback, v))
}

// recoverClose is deferred around Handler.Close.
func (c *Conn) recoverClose() {
	if v := recover(); v != nil {
		c.loop.logPanic("Close", v)
	}
}
