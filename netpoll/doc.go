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
// # Memory
//
// Reads land in one buffer per loop. Only the unconsumed tail of a partial
// unit (a frame or a handshake) is copied into a per-connection buffer from the
// loop's size-classed pool, and it goes back as soon as it is consumed. Output
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
