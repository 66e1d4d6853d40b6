//go:build linux

package netpoll

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wspush/wspush/internal/testsupport"
)

// sizedHandler reads units of a 4-byte big-endian length and that many
// bytes, declaring the unit's whole size as need as soon as the length is
// known (what frames.Decoder does with a frame header). Each unit is answered
// with reply bytes. read counts the input bytes handed to Read.
type sizedHandler struct {
	reply int
	read  atomic.Int64
}

func (h *sizedHandler) Open(c *Conn) {}

func (h *sizedHandler) Read(c *Conn, b []byte) (int, int) {
	used := 0
	for {
		rest := b[used:]
		if len(rest) < 4 {
			return used, 4
		}
		n := 4 + int(binary.BigEndian.Uint32(rest))
		if len(rest) < n {
			return used, n
		}
		used += n
		h.read.Add(int64(n))
		if h.reply > 0 {
			c.Queue(make([]byte, h.reply))
		}
	}
}

func (h *sizedHandler) Timer(c *Conn, now time.Time) {}
func (h *sizedHandler) Close(c *Conn, err error)     {}

// tailCap is the capacity of the tail buffers of g's connections.
func tailCap(g *Group) int {
	n := 0
	g.Each(func(l *Loop) {
		for _, c := range l.Conns() {
			n += cap(c.tail())
		}
	})
	return n
}

func TestTailGrowsWithTheBytesThatArrive(t *testing.T) {
	g := startGroup(t, &sizedHandler{}, 1)
	c := dialGroup(t, g)
	// A header declaring 1 MiB, and 10 bytes of it.
	unit := binary.BigEndian.AppendUint32(nil, 1<<20)
	c.Write(append(unit, make([]byte, 10)...))
	testsupport.WaitFor(t, "the partial unit to be kept", func() bool { return tailCap(g) > 0 })
	if got := tailCap(g); got > 4<<10 {
		t.Fatalf("a 14-byte partial unit declaring 1 MiB holds a %d-byte buffer", got)
	}
	// 300 KiB more: the buffer follows what arrived (at most twice it).
	c.Write(make([]byte, 300<<10))
	testsupport.WaitFor(t, "the tail to grow", func() bool { return tailCap(g) >= 300<<10 })
	if got := tailCap(g); got > 2*(300<<10+14)+minTail {
		t.Fatalf("300 KiB received hold a %d-byte buffer", got)
	}
	// All but 3 bytes (more than 1 MiB): the buffer is the unit's size, not
	// the next power of two.
	c.Write(make([]byte, 1<<20-13-300<<10))
	testsupport.WaitFor(t, "the tail to grow", func() bool { return tailCap(g) >= 1<<20 })
	if got := tailCap(g); got > 1<<20+4 {
		t.Fatalf("a unit of %d bytes gathered in a %d-byte buffer", 1<<20+4, got)
	}
	// The rest completes the unit and the buffer goes back.
	c.Write(make([]byte, 3))
	testsupport.WaitFor(t, "the unit to complete", func() bool { return tailCap(g) == 0 })
}

func TestConnectionOverHighWaterIsNotRead(t *testing.T) {
	// Each 8-byte unit is answered with 16 bytes; the client sends 256 KiB of
	// units and does not read, so the answers fill the kernel's buffers, the
	// queue grows past PauseReadAt and the loop stops reading: the rest of
	// the client's input waits in the kernel (TCP pushes back) instead of
	// being read and answered into the queue.
	h := &sizedHandler{reply: 16}
	g, err := Listen(Config{Addr: "127.0.0.1:0", Handler: h, PauseReadAt: 16 << 10, SendBuffer: 16 << 10, ReadBuffer: 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	g.Start()
	t.Cleanup(g.Close)
	raw, err := net.Dial("tcp", g.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	unit := binary.BigEndian.AppendUint32(nil, 4)
	unit = append(unit, 1, 2, 3, 4)
	const total = 256 << 10
	go raw.Write(bytes.Repeat(unit, total/8))
	paused := func() (queued int, paused bool) {
		g.Each(func(l *Loop) {
			for _, c := range l.Conns() {
				queued, paused = c.Buffered(), c.paused
			}
		})
		return
	}
	testsupport.WaitFor(t, "the loop to stop reading", func() bool { _, p := paused(); return p })
	// What was read is what fit before the pause: the mark plus one read's
	// answers.
	if queued, _ := paused(); queued > 16<<10+16*(4<<10/8) {
		t.Fatalf("%d bytes queued", queued)
	}
	if read := h.read.Load(); read >= total {
		t.Fatalf("all %d bytes were read while the client read nothing", read)
	}
	// Reading the answers drains the queue and reading resumes: every unit
	// is eventually read.
	go io.Copy(io.Discard, raw)
	testsupport.WaitFor(t, "every unit to be read", func() bool { return h.read.Load() == total })
}

func TestWaitRoomWaitsForTheLoop(t *testing.T) {
	g, err := Listen(Config{Addr: "127.0.0.1:0", Handler: &sizedHandler{}, MaxTasks: 4})
	if err != nil {
		t.Fatal(err)
	}
	g.Start()
	t.Cleanup(g.Close)
	l := g.Loops()[0]
	release := make(chan struct{})
	started := make(chan struct{})
	l.Post(func() { close(started); <-release })
	<-started
	for i := 0; i < 4; i++ {
		l.Post(func() {})
	}
	if l.HasRoom() || l.Stats.Tasks.Load() != 4 {
		t.Fatalf("HasRoom with %d tasks waiting", l.Stats.Tasks.Load())
	}
	waited := make(chan bool)
	go func() { waited <- l.WaitRoom() }()
	select {
	case <-waited:
		t.Fatal("WaitRoom returned while the loop is full")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if !<-waited {
		t.Fatal("WaitRoom reported a stopped loop")
	}
	// A stopped loop ends the wait.
	block := make(chan struct{})
	l.Post(func() { <-block })
	for i := 0; i < 4; i++ {
		l.Post(func() {})
	}
	go func() { waited <- l.WaitRoom() }()
	go func() { time.Sleep(20 * time.Millisecond); close(block) }()
	g.Close()
	<-waited
}

func TestPostDuringCloseNeverWritesAClosedEventfd(t *testing.T) {
	// Run with -race: Post reading the eventfd number while stop closes it
	// is a data race, and a write to a reused number corrupts another file.
	for i := 0; i < 20; i++ {
		g, err := Listen(Config{Addr: "127.0.0.1:0", Handler: &sizedHandler{}, Loops: 2})
		if err != nil {
			t.Fatal(err)
		}
		g.Start()
		var wg sync.WaitGroup
		stop := make(chan struct{})
		for _, l := range g.Loops() {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
						l.Post(func() {})
					}
				}
			}()
		}
		time.Sleep(time.Millisecond)
		g.Close()
		close(stop)
		wg.Wait()
	}
}

func TestSecondListenerOnAHeldPortFails(t *testing.T) {
	g := startGroup(t, &sizedHandler{}, 2) // the loops share the port
	_, err := Listen(Config{Addr: g.Addr().String(), Loops: 2, Handler: &sizedHandler{}})
	if !errors.Is(err, unix.EADDRINUSE) {
		t.Fatalf("a second group on %s: %v, want address already in use", g.Addr(), err)
	}
	// A plain listener of another program holds it too.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if _, err := Listen(Config{Addr: ln.Addr().String(), Handler: &sizedHandler{}}); !errors.Is(err, unix.EADDRINUSE) {
		t.Fatalf("listening beside a plain listener: %v", err)
	}
}

// emfileChild is the environment variable under which the test binary runs
// TestOutOfDescriptorsDoesNotSpin's child part.
const emfileChild = "NETPOLL_EMFILE_CHILD"

func TestOutOfDescriptorsDoesNotSpin(t *testing.T) {
	if os.Getenv(emfileChild) != "" {
		emfileChildMain(t)
		return
	}
	// In a child process: it lowers its own descriptor limit and uses up
	// every descriptor, which would break any test running beside it.
	cmd := exec.Command(os.Args[0], "-test.run=^TestOutOfDescriptorsDoesNotSpin$", "-test.v")
	cmd.Env = append(os.Environ(), emfileChild+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if !bytes.Contains(out, []byte("events=")) {
		t.Fatalf("child did not report:\n%s", out)
	}
	t.Logf("%s", bytes.TrimSpace(out))
}

func emfileChildMain(t *testing.T) {
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: 64, Max: 64}); err != nil {
		t.Fatal(err)
	}
	g, err := Listen(Config{Addr: "127.0.0.1:0", Handler: &sizedHandler{}, Tick: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	l := g.Loops()[0]
	// Clients wait in the backlog (each sent a byte: the listeners defer
	// accepting a connection until its first bytes, deferAcceptSeconds);
	// then every descriptor is taken, and the spare with them: the state
	// after a shed whose spare was taken by another file.
	var clients []net.Conn
	for i := 0; i < 4; i++ {
		c, err := net.Dial("tcp", g.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write([]byte{0}); err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
	}
	unix.Close(l.spare)
	l.spare = -1 // before Start: the loop has not run yet
	var hogs []int
	for {
		fd, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			break
		}
		hogs = append(hogs, fd)
	}
	before := l.Stats.Events.Load()
	g.Start()
	time.Sleep(time.Second)
	events := l.Stats.Events.Load() - before
	pauses := l.Stats.ListenPauses.Load()
	// A spinning loop handles millions of events a second; a paused
	// listener wakes it once a tick (20 ticks here) besides the ticks.
	if events > 200 || pauses == 0 {
		t.Fatalf("%d events and %d listener pauses in 1 s out of descriptors", events, pauses)
	}
	// Descriptors come back: the spare is re-taken and the backlog shed or
	// accepted.
	for _, fd := range hogs {
		unix.Close(fd)
	}
	testsupport.WaitFor(t, "the backlog to be taken", func() bool { return l.Stats.Accepted.Load() > 0 })
	recovered := make(chan int)
	l.Post(func() { recovered <- l.spare })
	if fd := <-recovered; fd < 0 {
		t.Fatal("the spare descriptor was not recovered")
	}
	for _, c := range clients {
		c.Close()
	}
	fmt.Println("events=" + strconv.FormatUint(events, 10) + " pauses=" + strconv.FormatUint(pauses, 10))
}
