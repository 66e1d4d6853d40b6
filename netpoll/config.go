//go:build linux

package netpoll

import (
	"log/slog"
	"time"

	"github.com/wspush/wspush/internal/bufpool"
	"github.com/wspush/wspush/internal/defaults"
)

// Config describes a group of event loops serving one listening address. The
// zero value of a field means its default (see Defaults).
type Config struct {
	Addr    string  // host:port to listen on; port 0 picks a free one
	Loops   int     // number of event loops
	Handler Handler // the protocol
	// ReadBuffer is the bytes of the per-loop read buffer, and so the most
	// one connection is read per loop turn (maxReads reads of it).
	ReadBuffer int
	// PoolIdle bounds the bytes of buffers a loop's pool keeps for reuse
	// (tails of unfinished messages, reassembled messages); 0 or less means
	// the default (bufpool.DefaultMaxIdle). The pool's own per-class bounds
	// keep about 2.5 MiB at most whatever it is (bufpool).
	PoolIdle   int
	SendBuffer int           // SO_SNDBUF for accepted sockets; 0 keeps the kernel's default
	Tick       time.Duration // timer wheel resolution
	Backlog    int           // listen backlog of each loop's listener
	// PauseReadAt is the bufferedAmount (bytes queued for a connection) past
	// which the loop stops reading that connection until EPOLLOUT drains the
	// queue below it again; 0 reads regardless.
	PauseReadAt int
	// MaxTasks is the task queue length past which Loop.HasRoom is false and
	// Loop.WaitRoom waits; 0 means no bound. Post itself never refuses.
	MaxTasks int
	Logger   *slog.Logger
	// AcceptGate, when set, admits each connection before accept4 (see
	// AcceptGate); nil accepts whatever arrives.
	AcceptGate AcceptGate
}

// Defaults returns the values Listen uses for the fields of a Config left at
// zero. Addr and Handler have none.
func Defaults() Config {
	return Config{
		Loops:      1,
		ReadBuffer: 64 << 10,
		PoolIdle:   bufpool.DefaultMaxIdle,
		Tick:       100 * time.Millisecond,
		Backlog:    4096,
		Logger:     slog.Default(),
	}
}

// withDefaults fills the unset fields of c from Defaults (see
// internal/defaults for what unset means).
func (c Config) withDefaults() Config {
	defaults.Fill(&c, Defaults())
	return c
}
