// Package bench is the library behind wsbench, the load generator for
// wspush: an epoll-driven WebSocket client, the scenarios (connect, fanout,
// slow, churn, curve, compare), their statistics and the text, JSON and HTML
// reports. It speaks the contract of docs/protocol.md with its own small
// client codec (masked frames out, unmasked frames in); it does not use the
// server's packages. Besides the scenarios it has the latency curve
// (open-loop publishing over offered rates: curve.go, openloop.go), the
// syscall floor (one write(2) per delivery to sockets read by a child
// process: floor.go, floorreader.go) and sparse, which runs the floor and a
// server's paced fan-out side by side (sparse.go).
//
// Concurrency: a worker (Agent) runs a few event loops, each a goroutine
// owning one epoll instance and every connection registered on it; no other
// goroutine touches a connection. Other goroutines reach a loop by posting
// closures to it (woken through an eventfd). One goroutine per worker dials
// at the requested rate. Loop statistics are plain fields owned by their
// loop, except a few atomics read by the progress monitor; they are merged
// only after the loops have stopped. Publishing uses a small fixed pool of
// HTTP goroutines (the curve: a dispatcher goroutine feeding such a pool).
// The floor's writes run on one goroutine locked to its OS thread. With
// Config.Procs > 1 the connections are split over worker processes that
// speak JSON lines on stdin/stdout (ServeWorker, NewProcessWorker);
// histograms travel in HdrHistogram's compressed encoding and are merged by
// the parent. There is no package-level mutable state.
package bench
