// Package netpoll runs wspush's event loops: a fixed set of goroutines, each
// waiting on its own Linux epoll instance, that accept, read and write every
// connection without a goroutine per connection. It is Linux only (epoll,
// eventfd, timerfd, accept4): its files are built for linux, and a build for
// any other system stops at one undefined name that says so.
//
// # Ownership
//
// A Conn belongs to the Loop that accepted it, for its whole life. Its state
// (input tail, output queue, timer) is touched only on that loop's goroutine,
// from inside the Handler callbacks or from tasks posted with Loop.Post. Other
// goroutines never call Conn methods; they hand work to the owning loop with
// Post, which queues the task and wakes the loop through an eventfd.
//
// # One loop iteration
//
// There is no "for { epoll_wait }" here: easygo's goroutine runs that loop
// and calls the callback registered for each ready descriptor, in the order
// the kernel reports them. One iteration:
//
//	events := epoll_wait(epfd, -1)       // no timeout: the timerfd is the clock
//	for each ready descriptor, in the kernel's order:
//		eventfd  -> Loop.onWake:   run the tasks posted so far, in order
//		timerfd  -> Loop.onTick:   advance the wheel: Handler.Timer per deadline passed
//		listener -> Loop.onAccept: accept4 up to 256: Handler.Open for each
//		socket   -> Conn.onEvent:  read until EAGAIN: Handler.Read per read;
//		                           on EPOLLOUT, write what the kernel refused before
//		and at the end of that callback, Loop.flushDirty: one writev per
//		connection that queued output during it
//
// So output is flushed at the end of every callback, not once per iteration
// (easygo has no end-of-batch hook): the pushes of all the tasks one onWake
// runs leave together, one writev per subscriber. A long flush (a sweep of
// thousands of subscribers) yields its P and runs the tasks posted meanwhile
// every 32 writes, so publishers are not held off the CPU and their pushes
// join the sweep under way (flushDirty). Handler callbacks
// run inside a panic boundary (see Handler).
//
// # Memory
//
// Reads land in one buffer per loop. Only the unconsumed tail of a partial
// unit (a frame or a handshake) is copied into a per-connection buffer from the
// loop's size-classed pool, and it goes back as soon as it is consumed (a
// small tail is copied back in front of the loop's buffer for the next read,
// so the read still takes up to a whole buffer). Output
// is queued as references to immutable byte slices (shared prepared frames),
// never copied; the queue itself comes from a per-loop free list. An idle
// connection therefore holds no buffers at all.
//
// # Epoll
//
// The epoll wrapper is github.com/mailru/easygo/netpoll, imported as epoll
// (it shares this package's name): one Epoll per loop, whose goroutine
// invokes our callbacks. Sockets are registered edge-triggered for input and
// output once, so no epoll_ctl is needed when a queue fills or drains.
// Everything easygo lacks (accept4, writev, eventfd, timerfd, SO_REUSEPORT) is
// called through golang.org/x/sys/unix at the call site.
package netpoll
