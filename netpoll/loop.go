//go:build linux

package netpoll

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	epoll "github.com/mailru/easygo/netpoll"
	"golang.org/x/sys/unix"

	"github.com/wspush/wspush/internal/bufpool"
)

// Handler is the protocol spoken on the loops. Every method is called on the
// goroutine of the loop that owns the connection, never concurrently for one
// loop, so a Handler needs no locks for per-connection state. A method must
// not block: the loop's other connections wait for it.
//
// A method that panics takes down only its connection: the panic is
// recovered at the callback, logged with its stack and counted in
// Stats.Panics, the connection is closed (Close gets an error wrapping
// ErrHandlerPanic) and the loop goes on with its other connections. Tasks
// posted with Loop.Post have no such boundary: a panicking task crashes the
// process, as in any goroutine.
type Handler interface {
	// Open is called once, right after the connection is accepted.
	Open(c *Conn)
	// Read is called with the bytes received and not yet consumed, oldest
	// first. It returns how many it consumed; the rest is kept and handed back,
	// followed by what arrives next, on the next call. When need is larger
	// than the unconsumed rest it is the total size of the unfinished unit, so
	// the tail buffer is sized once. b is valid only during the call.
	Read(c *Conn, b []byte) (consumed, need int)
	// Timer is called when the deadline set with Conn.SetTimer has passed.
	Timer(c *Conn, now time.Time)
	// Close is called once when the connection is gone, with the reason (nil
	// when the Handler closed it without one, io.EOF when the peer did).
	Close(c *Conn, err error)
}

// Group is a set of loops, each with its own SO_REUSEPORT listener on one
// address. Listen refuses a port another process holds (checkPortFree, under
// lockPort so that two processes starting at once cannot both pass it):
// SO_REUSEPORT is for this group's loops only.
type Group struct {
	loops []*Loop
	addr  *net.TCPAddr
}

// Listen opens the listeners and starts the loops; Start begins accepting.
func Listen(cfg Config) (*Group, error) {
	cfg = cfg.withDefaults()
	addr, err := net.ResolveTCPAddr("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen address %q: %w", cfg.Addr, err)
	}
	unlock, err := lockPort(addr.Port)
	if err != nil {
		return nil, err
	}
	defer unlock() // every loop's listener is bound by then: the next starter's check sees them
	if err := checkPortFree(addr); err != nil {
		return nil, err
	}
	g := &Group{}
	for i := 0; i < cfg.Loops; i++ {
		lfd, err := listenReusePort(addr, cfg.Backlog, cfg.SendBuffer)
		if err != nil {
			g.Close()
			return nil, err
		}
		if i == 0 {
			// Later listeners must share the port the kernel picked for port 0.
			if addr, err = boundAddr(lfd); err != nil {
				unix.Close(lfd)
				g.Close()
				return nil, err
			}
			g.addr = addr
		}
		l, err := newLoop(i, lfd, cfg)
		if err != nil {
			unix.Close(lfd)
			g.Close()
			return nil, err
		}
		g.loops = append(g.loops, l)
	}
	return g, nil
}

// Start begins accepting connections. Until then the listeners queue them in
// their backlog: whatever the Handler needs can be set up after Listen.
func (g *Group) Start() error {
	for _, l := range g.loops {
		// Level-triggered: a backlog left by a bounded accept batch wakes us
		// again. Set before the Add: the loop may see its first accept at once.
		l.accepting, l.listening = true, true
		if err := l.ep.Add(l.lfd, epoll.EPOLLIN, l.onAccept); err != nil {
			return fmt.Errorf("epoll_ctl listener: %w", err)
		}
	}
	return nil
}

// Addr is the address the group listens on.
func (g *Group) Addr() *net.TCPAddr { return g.addr }

// Loops returns the loops, indexed by Loop.ID.
func (g *Group) Loops() []*Loop { return g.loops }

// Each runs fn on every loop's goroutine and waits until all have run it. A
// loop that has stopped is skipped. It must not be called from a loop's
// goroutine (a Handler callback or a task), which would wait for itself
// forever: there it panics saying so. A loop posts to the others with
// Loop.Post instead.
func (g *Group) Each(fn func(l *Loop)) {
	g.notOnLoop("Each")
	var wg sync.WaitGroup
	for _, l := range g.loops {
		wg.Add(1)
		if !l.post(func() {
			defer wg.Done()
			fn(l)
		}) {
			wg.Done()
		}
	}
	wg.Wait()
}

// notOnLoop panics when the calling goroutine is one of g's loops: what
// called it would wait for that loop, which is busy running the caller.
func (g *Group) notOnLoop(method string) {
	id := goid()
	for _, l := range g.loops {
		if l.goid.Load() == id {
			panic(fmt.Sprintf("netpoll: Group.%s called on loop %d's goroutine would wait for that loop forever; post to other loops with Loop.Post", method, l.id))
		}
	}
}

// StopAccepting closes the listeners; established connections are untouched.
// Like Each, it must not be called from a loop.
func (g *Group) StopAccepting() {
	g.Each(func(l *Loop) { l.closeListener() })
}

// Close stops the loops and closes every connection (Handler.Close is called
// for each, on the calling goroutine, once the loops have stopped). Like
// Each, it waits for the loops and panics when called from one of them.
func (g *Group) Close() {
	g.notOnLoop("Close")
	for _, l := range g.loops {
		l.stop()
	}
}

// Stats are a loop's counters, readable from any goroutine.
type Stats struct {
	Wakeups       atomic.Uint64 // wake-ups by Post from other goroutines
	Events        atomic.Uint64 // epoll events handled
	Accepted      atomic.Uint64 // connections accepted
	AcceptErrors  atomic.Uint64 // accept4 failures other than EAGAIN (EMFILE...)
	BytesWritten  atomic.Uint64 // bytes the kernel accepted
	Conns         atomic.Int64  // open connections
	Panics        atomic.Uint64 // Handler callbacks that panicked (see Handler)
	Tasks         atomic.Int64  // tasks posted and not yet taken by the loop
	ListenPauses  atomic.Uint64 // ticks the listener was not polled: out of descriptors, none to shed with
	DeferredReads atomic.Uint64 // reads put off to a later turn: the connection had used its turn's budget (maxReads)
	PoolIdle      atomic.Int64  // bytes the buffer pool keeps for reuse, as of the last tick
}

// Loop is one event loop: an epoll instance, the goroutine easygo runs for it,
// and everything owned by that goroutine.
type Loop struct {
	id  int
	h   Handler
	ep  *epoll.Epoll
	log *slog.Logger

	// Owned by the loop goroutine.
	rbuf     []byte
	pool     *bufpool.Pool
	iov      []unix.Iovec
	conns    []*Conn
	dirty    []*Conn
	after    []func() // run once after the next flushDirty (AfterFlush)
	sweeping bool     // flushDirty after onWake's tasks: it may take the tasks posted meanwhile
	freeq    freeList[outq]
	freein   freeList[inq]
	wheel    *wheel
	fire     func(*Conn)
	now      time.Time
	lfd      int  // listener, -1 once closed
	spare    int  // reserved descriptor given up to shed a connection on EMFILE
	lpaused  bool // the listener is out of the epoll set until the next tick (see shed)
	pauseAt  int  // Config.PauseReadAt
	tfd      int  // timerfd driving the wheel
	tbuf     [8]byte
	efdRead  [8]byte
	peer     unix.RawSockaddrAny // the address accept4 returned last (AcceptedPeer)
	peerLen  uint32
	opening  *Conn // the connection in Handler.Open, whose address peer holds

	gate         AcceptGate // nil: accept whatever arrives
	acceptPaused bool       // the listener is out of epoll (PauseAccept)
	listening    bool       // the listener is in the epoll set (pollListener)
	accepting    bool       // Group.Start has run: the listener may be polled

	// Shared with posting goroutines.
	efd     int // eventfd that wakes the loop for tasks
	efdOne  [8]byte
	mu      sync.Mutex
	stopped bool // set once the loop is gone: Post drops tasks
	tasks   []func()
	running []func()
	room    sync.Cond // signalled when the loop takes its tasks, for WaitRoom
	waiters int       // goroutines in WaitRoom
	// maxTasks is Config.MaxTasks: HasRoom and WaitRoom's bound.
	maxTasks int64
	goid     atomic.Uint64 // the loop goroutine's id once it has run a callback (0 before), for Group.notOnLoop

	Stats Stats
}

// newPool returns a loop's buffer pool: up to 64 buffers a class, and at most
// idle bytes in all (Config.PoolIdle, already defaulted).
func newPool(idle int) *bufpool.Pool {
	p := bufpool.New(64)
	p.LimitIdle(idle)
	return p
}

func newLoop(id, lfd int, cfg Config) (*Loop, error) {
	l := &Loop{
		id:       id,
		h:        cfg.Handler,
		log:      cfg.Logger.With("loop", id),
		rbuf:     make([]byte, cfg.ReadBuffer),
		pool:     newPool(cfg.PoolIdle),
		iov:      make([]unix.Iovec, 0, maxIovecs),
		wheel:    newWheel(cfg.Tick, 1024),
		lfd:      lfd,
		pauseAt:  cfg.PauseReadAt,
		maxTasks: int64(cfg.MaxTasks),
		efd:      -1,
		tfd:      -1,
		gate:     cfg.AcceptGate,
		spare:    -1,
	}
	l.fire = func(c *Conn) { c.timer(l.now) }
	l.room.L = &l.mu
	l.efdOne[0] = 1 // eventfd adds the 8-byte host-endian counter; 1 on little endian
	var err error
	l.spare = openSpare()
	if l.efd, err = unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC); err != nil {
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	if l.tfd, err = unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC); err != nil {
		l.closeFds()
		return nil, fmt.Errorf("timerfd_create: %w", err)
	}
	tick := unix.NsecToTimespec(int64(cfg.Tick))
	if err := unix.TimerfdSettime(l.tfd, 0, &unix.ItimerSpec{Interval: tick, Value: tick}, nil); err != nil {
		l.closeFds()
		return nil, fmt.Errorf("timerfd_settime: %w", err)
	}
	if l.ep, err = epoll.EpollCreate(&epoll.EpollConfig{OnWaitError: func(err error) {
		l.log.Error("epoll_wait failed", "err", err)
	}}); err != nil {
		l.closeFds()
		return nil, fmt.Errorf("epoll: %w", err)
	}
	// Level-triggered: an unread eventfd or timerfd keeps waking us.
	err = errors.Join(
		l.ep.Add(l.efd, epoll.EPOLLIN, l.onWake),
		l.ep.Add(l.tfd, epoll.EPOLLIN, l.onTick),
	)
	if err != nil {
		l.ep.Close()
		l.closeFds()
		return nil, fmt.Errorf("epoll_ctl: %w", err)
	}
	return l, nil
}

// epollClosed is the event easygo passes to every callback when its Epoll is
// closed (its unexported _EPOLLCLOSED).
const epollClosed = 0x20

// maxIovecs is IOV_MAX on Linux: the most buffers one writev takes.
const maxIovecs = 1024

// noteGoroutine records, on the loop's first callback, which goroutine the
// loop runs on (easygo runs each Epoll's callbacks on one goroutine), for
// Group.notOnLoop. After the first, one atomic load per wake-up.
func (l *Loop) noteGoroutine() {
	if l.goid.Load() == 0 {
		l.goid.Store(goid())
	}
}

// ID is the loop's index in its Group.
func (l *Loop) ID() int { return l.id }

// Pool is the loop's buffer pool. Loop goroutine only.
func (l *Loop) Pool() *bufpool.Pool { return l.pool }

// Conns returns the open connections. Loop goroutine only; the slice changes
// as connections come and go.
func (l *Loop) Conns() []*Conn { return l.conns }

// Post queues fn to run on the loop's goroutine and wakes the loop. Tasks run
// in the order they were posted; once the loop has stopped they are dropped.
// Safe from any goroutine.
func (l *Loop) Post(fn func()) { l.post(fn) }

// post is Post reporting whether fn will run.
func (l *Loop) post(fn func()) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		return false
	}
	wake := len(l.tasks) == 0
	l.tasks = append(l.tasks, fn)
	l.Stats.Tasks.Store(int64(len(l.tasks)))
	if wake {
		// Only the first task of a batch writes; the loop drains the eventfd
		// before taking the batch, so no wake-up is lost. The write is under
		// the lock: stop closes the eventfd only after setting stopped under
		// it, so a post never writes to a number that is already closed (and
		// may belong to another file).
		unix.Write(l.efd, l.efdOne[:])
	}
	return true
}

// HasRoom reports whether the loop has fewer than Config.MaxTasks tasks
// waiting. Callers on a loop that must not wait (a client's publish) refuse
// work when it is false. Safe from any goroutine; one atomic load.
func (l *Loop) HasRoom() bool { return l.maxTasks <= 0 || l.Stats.Tasks.Load() < l.maxTasks }

// WaitRoom waits until the loop has fewer than Config.MaxTasks tasks waiting,
// and reports false if the loop has stopped. It is for goroutines that are
// not loops (a cluster ingest): a loop calling it could wait for itself. The
// bound is soft: several goroutines let through at once may each post.
func (l *Loop) WaitRoom() bool {
	if l.HasRoom() {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for int64(len(l.tasks)) >= l.maxTasks && !l.stopped {
		l.waiters++
		l.room.Wait()
		l.waiters--
	}
	return !l.stopped
}

func (l *Loop) onWake(ev epoll.EpollEvent) {
	if ev == epollClosed {
		l.runTasks() // tasks posted before the stop still run
		return
	}
	l.noteGoroutine()
	l.Stats.Events.Add(1)
	l.Stats.Wakeups.Add(1)
	unix.Read(l.efd, l.efdRead[:])
	l.runTasks()
	l.sweeping = true
	l.flushDirty()
	l.sweeping = false
}

func (l *Loop) runTasks() {
	l.mu.Lock()
	l.tasks, l.running = l.running[:0], l.tasks
	l.Stats.Tasks.Store(0)
	if l.waiters > 0 {
		l.room.Broadcast()
	}
	l.mu.Unlock()
	for i, fn := range l.running {
		fn()
		l.running[i] = nil
	}
}

func (l *Loop) onTick(ev epoll.EpollEvent) {
	if ev == epollClosed {
		return
	}
	l.noteGoroutine()
	l.Stats.Events.Add(1)
	unix.Read(l.tfd, l.tbuf[:])
	if l.spare < 0 {
		l.spare = openSpare() // lost to another file at a shed: take it back when one is free
	}
	if l.lpaused {
		l.lpaused = false
		l.pollListener()
	}
	l.Stats.PoolIdle.Store(int64(l.pool.Idle()))
	l.now = time.Now()
	l.wheel.advance(l.now, l.fire)
	l.flushDirty()
}

func (l *Loop) onAccept(ev epoll.EpollEvent) {
	if ev == epollClosed || l.lfd < 0 {
		return
	}
	l.noteGoroutine()
	l.Stats.Events.Add(1)
	// The listener is level-triggered: taking a bounded batch lets the
	// loop's connections have their turn under a connection storm.
	for i := 0; i < 256; i++ {
		if l.gate != nil && !l.gate.Admit(l) {
			l.PauseAccept()
			return
		}
		l.peer.Addr.Family = unix.AF_UNSPEC
		l.peerLen = unix.SizeofSockaddrAny
		r, _, errno := unix.Syscall6(unix.SYS_ACCEPT4, uintptr(l.lfd), uintptr(unsafe.Pointer(&l.peer)),
			uintptr(unsafe.Pointer(&l.peerLen)), unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0, 0)
		if errno != 0 && l.gate != nil {
			l.gate.Unadmit(l)
		}
		switch errno {
		case 0:
			l.open(int(r))
		case unix.EAGAIN:
			return
		case unix.EINTR, unix.ECONNABORTED:
		case unix.EMFILE, unix.ENFILE:
			l.Stats.AcceptErrors.Add(1)
			l.shed()
			return
		default:
			l.Stats.AcceptErrors.Add(1)
			l.log.Warn("accept4 failed", "err", errno)
			return
		}
	}
}

// shed is the answer to running out of descriptors: give up the spare one,
// accept the waiting connection and close it at once (the client sees a reset
// rather than hanging in the backlog), then take the spare back. A spare lost
// to another file (its number taken between close and re-open) is re-taken
// at the next EMFILE. When there is no spare to give up, the waiting
// connection cannot be taken off the backlog, and the level-triggered
// listener would wake the loop again at once, forever: the listener leaves
// the epoll set until the next tick (onTick puts it back).
func (l *Loop) shed() {
	if l.spare < 0 {
		l.spare = openSpare()
	}
	if l.spare < 0 {
		l.pauseListener()
		return
	}
	unix.Close(l.spare)
	r, _, errno := unix.Syscall6(unix.SYS_ACCEPT4, uintptr(l.lfd), 0, 0, unix.SOCK_CLOEXEC, 0, 0)
	if errno == 0 {
		unix.Close(int(r))
	}
	l.spare = openSpare()
	l.log.Warn("out of file descriptors: refused a connection", "accept_errors", l.Stats.AcceptErrors.Load())
	if errno != 0 {
		l.pauseListener() // the freed descriptor did not let us take it: wait a tick
	}
}

// openSpare opens the reserved descriptor, -1 when none is left.
func openSpare() int {
	fd, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1
	}
	return fd
}

// pauseListener takes the listener out of the epoll set until the next tick.
func (l *Loop) pauseListener() {
	if l.lpaused || l.lfd < 0 {
		return
	}
	l.Stats.ListenPauses.Add(1)
	l.lpaused = true
	l.pollListener()
}

// open registers an accepted socket, which already has TCP_NODELAY and
// SO_SNDBUF: it inherits them from the listener (setAcceptedOptions).
func (l *Loop) open(fd int) {
	c := &Conn{fd: int32(fd), idx: int32(len(l.conns)), loop: l}
	// Edge-triggered for both directions: registered once, never modified.
	if err := l.ep.Add(fd, epoll.EPOLLIN|epoll.EPOLLOUT|epoll.EPOLLRDHUP|epoll.EPOLLET, c.onEvent); err != nil {
		unix.Close(fd)
		if l.gate != nil {
			l.gate.Unadmit(l)
		}
		l.log.Warn("epoll add failed", "err", err)
		return
	}
	l.conns = append(l.conns, c)
	l.Stats.Accepted.Add(1)
	l.Stats.Conns.Add(1)
	l.opening = c // AcceptedPeer: l.peer is c's
	c.open()
	l.opening = nil
	l.flushDirty()
}

// flushDirty writes out every connection that had output queued during the
// current callback: pushes queued for one connection leave in one writev.
//
// A sweep of thousands of connections (one message to 10,000 subscribers)
// takes tens of milliseconds of loopback writes. Every sweepCheck writes it
// runs the tasks posted meanwhile (the next messages' fan-out): their pushes
// join the queues of the connections not written yet, which then send both
// in one writev, and the connections already written are dirty again and
// written at the end of this sweep. A message arriving mid-sweep so waits
// for the rest of one sweep, not for a whole sweep and then its own, and the
// publishers waiting for the loop (Hub's in-flight tokens) are answered
// sooner. A connection's output keeps its order: tasks only append. Tasks
// are taken only by the flush after onWake's tasks (not in the middle of an
// accept batch or a connection's event), and only during the sweep the
// flush began with: under a steady
// stream of messages a flush would otherwise never end, and the loop would
// never get back to epoll for EPOLLOUT (blocked connections), reads and
// accepts.
func (l *Loop) flushDirty() {
	sweep := len(l.dirty)
	for i := 0; i < len(l.dirty); i++ { // runTasks may append to l.dirty
		c := l.dirty[i]
		l.dirty[i] = nil
		c.dirty = false
		if c.fd >= 0 && !c.blocked { // a blocked one is flushed on EPOLLOUT: no futile writev
			c.flush()
		}
		if i%sweepCheck != sweepCheck-1 {
			continue
		}
		// The raw writes never give up the loop's P: without this a sweep
		// would hold it until the runtime preempts it (10 ms), and the
		// goroutines that publish (HTTP handlers) would wait for that.
		runtime.Gosched()
		if l.sweeping && i < sweep && l.Stats.Tasks.Load() > 0 {
			l.sweeping = false // a task cannot start another take
			l.runTasks()
			l.sweeping = true
		}
	}
	l.dirty = l.dirty[:0]
	if len(l.after) > 0 {
		l.runAfter()
	}
}

// sweepCheck is how many connections flushDirty writes between two yields
// of its P and looks for tasks posted meanwhile: a Gosched and an atomic
// load per 32 writes (about 0.3 ms of loopback writes here), against a
// message's wait for the rest of a sweep.
const sweepCheck = 32

func (l *Loop) closeListener() {
	if l.lfd < 0 {
		return
	}
	if l.listening {
		l.ep.Del(l.lfd)
		l.listening = false
	}
	unix.Close(l.lfd)
	l.lfd = -1
}

func (l *Loop) stop() {
	if l.ep != nil {
		// Close waits for the loop goroutine to exit, then hands epollClosed
		// to every callback still registered, on this goroutine.
		l.ep.Close()
		l.ep = nil
	}
	// Tasks posted while the loop was stopping run here, the loop being gone;
	// later ones are dropped.
	l.mu.Lock()
	l.stopped = true
	l.room.Broadcast()
	l.mu.Unlock()
	l.runTasks()
	if l.lfd >= 0 {
		unix.Close(l.lfd)
		l.lfd = -1
	}
	l.closeFds()
}

func (l *Loop) closeFds() {
	for _, fd := range []*int{&l.efd, &l.tfd, &l.spare} {
		if *fd >= 0 {
			unix.Close(*fd)
			*fd = -1
		}
	}
}

// getin is an input holder for a connection that keeps a tail.
func (l *Loop) getin() *inq { return l.freein.get() }

// putin takes back a holder whose tail went back to the pool.
func (l *Loop) putin(q *inq) {
	q.tail = nil
	l.freein.put(q)
}

// maxCopiedKept bounds the QueueCopy room a queue keeps in the loop's free
// list: a few handshake answers' worth (a 101 is about 130 bytes).
const maxCopiedKept = 1024

func (l *Loop) getq() *outq { return l.freeq.get() }

func (l *Loop) putq(q *outq) {
	clear(q.bufs)
	q.bufs, q.head, q.off, q.queued = q.bufs[:0], 0, 0, 0
	q.copied = q.copied[:0]
	if cap(q.copied) > maxCopiedKept {
		q.copied = nil // room that grew for a burst of answers is not kept
	}
	if cap(q.bufs) > 4*maxIovecs {
		return // a queue that grew for a burst is not kept
	}
	l.freeq.put(q)
}

// writev is writev(2) over the loop's iovec array, without the allocation
// unix.Writev makes for its own copy.
//
// It and write are raw system calls, without the runtime's
// entersyscall/exitsyscall: the sockets are non-blocking, so a call never
// waits, and a loop sweeping thousands of sockets would otherwise have
// sysmon take its P away during the longer loopback writes and hand it to
// another thread (wake-ups and context switches per sweep, the runtime
// share of the paced path's profile in docs/benchmarks.md).
func (l *Loop) writev(fd int32, iov []unix.Iovec) (int, unix.Errno) {
	n, _, errno := unix.RawSyscall(unix.SYS_WRITEV, uintptr(fd), uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
	return int(n), errno
}

// write is write(2) of one iovec's bytes.
func (l *Loop) write(fd int32, v unix.Iovec) (int, unix.Errno) {
	n, _, errno := unix.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(v.Base)), uintptr(v.Len))
	return int(n), errno
}

// logPanic logs a recovered panic of a Handler callback with its stack.
func (l *Loop) logPanic(callback string, v any) {
	l.Stats.Panics.Add(1)
	l.log.Error("handler panicked: closing its connection; the loop goes on",
		"callback", callback, "panic", v, "stack", string(debug.Stack()))
}
