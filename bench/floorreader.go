package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// The floor benchmark's readers run in a child process so that the writer
// process does nothing but write: the child dials Conns TCP connections to
// the writer's listener and reads and discards everything, one epoll loop
// goroutine per share of the sockets. Protocol (JSON lines): the parent
// sends {"start":spec}; the child answers {"ready":...} once dialing is
// over; the parent sends {"finish":...}; the child waits for the expected
// bytes (or a stall), answers {"result":...} and exits. A closed stdin
// aborts it.

// ReaderSpec tells the reader child what to dial.
type ReaderSpec struct {
	Addr  string   `json:"addr"` // the writer's listener, ip:port
	Conns int      `json:"conns"`
	Src   []string `json:"src,omitempty"` // source addresses, round robin
	Loops int      `json:"loops"`
}

type readerIn struct {
	Start  *ReaderSpec   `json:"start,omitempty"`
	Finish *readerFinish `json:"finish,omitempty"`
}

type readerFinish struct {
	Expected int64         `json:"expected"` // bytes written
	Timeout  time.Duration `json:"timeout"`
}

type readerReady struct {
	Connected int            `json:"connected"`
	Errors    map[string]int `json:"errors,omitempty"`
}

type readerResult struct {
	Bytes int64 `json:"bytes"`
}

type readerOut struct {
	Ready  *readerReady  `json:"ready,omitempty"`
	Result *readerResult `json:"result,omitempty"`
	Error  string        `json:"error,omitempty"`
}

// ServeFloorReader runs the reader child on its stdin and stdout.
func ServeFloorReader(ctx context.Context, r io.Reader, w io.Writer) error {
	dec := json.NewDecoder(bufio.NewReader(r))
	enc := json.NewEncoder(w)
	var in readerIn
	if err := dec.Decode(&in); err != nil || in.Start == nil {
		return fmt.Errorf("floor reader: read start: %w", errors.Join(err, errors.New("no start")))
	}
	rd, err := newFloorReaders(*in.Start)
	if err != nil {
		_ = enc.Encode(readerOut{Error: err.Error()})
		return err
	}
	defer rd.close()
	if err := enc.Encode(readerOut{Ready: &readerReady{Connected: rd.connected, Errors: rd.errs}}); err != nil {
		return fmt.Errorf("floor reader: write: %w", err)
	}
	if err := dec.Decode(&in); err != nil || in.Finish == nil {
		return fmt.Errorf("floor reader: read finish: %w", errors.Join(err, errors.New("no finish")))
	}
	waitProgress(ctx, in.Finish.Timeout, 500*time.Millisecond, rd.bytes, in.Finish.Expected)
	return enc.Encode(readerOut{Result: &readerResult{Bytes: rd.bytes()}})
}

// floorReaders are the reader loops of the child.
type floorReaders struct {
	loops     []*readLoop
	connected int
	errs      map[string]int
	wg        sync.WaitGroup
}

// readLoop is one epoll instance and the sockets registered on it; only its
// goroutine touches them after dialing.
type readLoop struct {
	epfd  int
	efd   int // eventfd that ends the loop
	fds   []int
	total atomic.Int64
}

func newFloorReaders(spec ReaderSpec) (*floorReaders, error) {
	ap, err := netip.ParseAddrPort(spec.Addr)
	if err != nil || !ap.Addr().Is4() {
		return nil, fmt.Errorf("floor reader: address %q: not ip4:port", spec.Addr)
	}
	dst := unix.SockaddrInet4{Addr: ap.Addr().As4(), Port: int(ap.Port())}
	var src [][4]byte
	for _, s := range spec.Src {
		a, err := netip.ParseAddr(s)
		if err != nil || !a.Is4() {
			return nil, fmt.Errorf("floor reader: source %q: not IPv4", s)
		}
		src = append(src, a.As4())
	}
	rd := &floorReaders{errs: map[string]int{}}
	for i := 0; i < max(1, spec.Loops); i++ {
		l := &readLoop{epfd: -1, efd: -1}
		rd.loops = append(rd.loops, l)
		if l.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
			rd.close()
			return nil, wrapSys("epoll_create1", err)
		}
		if l.efd, err = unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC); err != nil {
			rd.close()
			return nil, wrapSys("eventfd", err)
		}
		ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(l.efd)}
		if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, l.efd, &ev); err != nil {
			rd.close()
			return nil, wrapSys("epoll_ctl", err)
		}
	}
	// Blocking connects one after the other: on loopback 10,000 take well
	// under a second, and the writer accepts them as they come.
	for i := 0; i < spec.Conns; i++ {
		fd, err := dialBlocking(&dst, src, i)
		if err != nil {
			rd.errs[errKind(err)]++
			continue
		}
		l := rd.loops[i%len(rd.loops)]
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLET, Fd: int32(fd)}
		if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
			unix.Close(fd)
			rd.errs["epoll_"+errKind(err)]++
			continue
		}
		l.fds = append(l.fds, fd)
		rd.connected++
	}
	for _, l := range rd.loops {
		rd.wg.Add(1)
		go func() { defer rd.wg.Done(); l.run() }()
	}
	return rd, nil
}

func dialBlocking(dst *unix.SockaddrInet4, src [][4]byte, i int) (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	if len(src) > 0 {
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
		if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: src[i%len(src)]}); err != nil {
			unix.Close(fd)
			return -1, err
		}
	}
	if err := unix.Connect(fd, dst); err != nil {
		unix.Close(fd)
		return -1, err
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

func (l *readLoop) run() {
	events := make([]unix.EpollEvent, 256)
	buf := make([]byte, 64<<10)
	for {
		n, err := unix.EpollWait(l.epfd, events, -1)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return
		}
		for i := 0; i < n; i++ {
			fd := int(events[i].Fd)
			if fd == l.efd {
				return
			}
			for {
				m, err := unix.Read(fd, buf)
				if m > 0 {
					l.total.Add(int64(m))
					continue
				}
				if m == 0 || !errors.Is(err, unix.EINTR) {
					break // EAGAIN (drained), EOF or an error: the writer owns the connection's fate
				}
			}
		}
	}
}

func (rd *floorReaders) bytes() int64 {
	var n int64
	for _, l := range rd.loops {
		n += l.total.Load()
	}
	return n
}

func (rd *floorReaders) close() {
	for _, l := range rd.loops {
		if l.efd >= 0 {
			one := [8]byte{1}
			_, _ = unix.Write(l.efd, one[:])
		}
	}
	rd.wg.Wait()
	for _, l := range rd.loops {
		for _, fd := range l.fds {
			unix.Close(fd)
		}
		if l.epfd >= 0 {
			unix.Close(l.epfd)
		}
		if l.efd >= 0 {
			unix.Close(l.efd)
		}
	}
}
