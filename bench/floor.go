package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os/exec"
	"runtime"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/gobwas/ws"
	"golang.org/x/sys/unix"
)

// The syscall floor: what one write(2) per delivery costs on this machine,
// the yardstick for a sparse fan-out. This process accepts Conns loopback
// connections from a reader child (ServeFloorReader) and, per "message",
// writes one prebuilt server frame to every socket, one write(2) each (a
// sweep), paced at each rate in turn. The writes run on one goroutine locked
// to its OS thread (Writers > 1: the sockets split over that many, each on
// its own thread, a sweep ending when the last is done, as a server's loops
// share a fan-out); nothing else in the process is busy meanwhile, so the
// process's CPU (getrusage RUSAGE_SELF) is the cost of the writes plus the Go
// runtime's share, like a server's; the threads' own CPU is reported too.

// FloorConfig describes a floor run.
type FloorConfig struct {
	Conns    int           // sockets
	Size     int           // payload bytes of the frame
	Rates    []float64     // sweeps per second, one phase each; 0: back to back
	Duration time.Duration // per phase
	Src      []string      // source addresses of the readers' connections
	Loops    int           // reader loops in the child
	Writers  int           // writer threads, each with its share of the sockets; 0 means 1
	// NewReader returns the reader child's command (it must run ServeFloorReader).
	NewReader func() (*exec.Cmd, error)
}

// FloorResult is what a floor run measured.
type FloorResult struct {
	Conns        int         `json:"conns"`
	Writers      int         `json:"writers"`
	FrameBytes   int         `json:"frame_bytes"`
	Written      int64       `json:"written_bytes"`
	Read         int64       `json:"read_bytes"` // by the readers: equal to Written when every byte arrived
	Steps        []FloorStep `json:"steps"`
	ConnectError string      `json:"connect_errors,omitempty"`
}

// FloorStep is one paced phase.
type FloorStep struct {
	Rate          float64  `json:"sweeps_per_s"` // 0: back to back
	Sweeps        int      `json:"sweeps"`
	Writes        int64    `json:"writes"`
	Short         int64    `json:"short_writes"` // EAGAIN or partial: the socket buffer was full
	Seconds       float64  `json:"seconds"`
	WritesPerSec  float64  `json:"writes_per_s"`
	CPUSeconds    float64  `json:"process_cpu_s"`
	ThreadCPU     float64  `json:"thread_cpu_s"` // the writer threads' together
	CPUPerMWrites float64  `json:"process_cpu_s_per_m_writes"`
	ThreadPerM    float64  `json:"thread_cpu_s_per_m_writes"`
	Sweep         *Latency `json:"sweep"` // time one sweep of Conns writes takes
}

const floorListenBacklog = 4096

// serverFrame is one unmasked text frame carrying a size-byte JSON value.
func serverFrame(size int) []byte {
	payload := makePayload(nil, 0, size)
	var w sliceWriter
	// ws.WriteHeader never fails on a valid header and an in-memory writer.
	_ = ws.WriteHeader(&w, ws.Header{Fin: true, OpCode: ws.OpText, Length: int64(len(payload))})
	return append(w.b, payload...)
}

// RunFloor runs the floor benchmark.
func RunFloor(ctx context.Context, cfg FloorConfig) (*FloorResult, error) {
	if cfg.Conns <= 0 || cfg.NewReader == nil {
		return nil, errors.New("floor: needs Conns and NewReader")
	}
	if cfg.Size <= 0 {
		cfg.Size = 128
	}
	if len(cfg.Rates) == 0 {
		cfg.Rates = []float64{5}
	}
	if cfg.Duration <= 0 {
		cfg.Duration = 10 * time.Second
	}
	hard := time.Duration(len(cfg.Rates))*(cfg.Duration+time.Second) + 60*time.Second
	ctx, cancel := context.WithTimeout(ctx, hard)
	defer cancel()

	lfd, addr, err := listenLoopback()
	if err != nil {
		return nil, err
	}
	defer unix.Close(lfd)
	cmd, err := cfg.NewReader()
	if err != nil {
		return nil, fmt.Errorf("floor reader: %w", err)
	}
	rc, err := startReader(cmd)
	if err != nil {
		return nil, err
	}
	defer rc.close()
	if err := rc.enc.Encode(readerIn{Start: &ReaderSpec{Addr: addr, Conns: cfg.Conns, Src: cfg.Src, Loops: cfg.Loops}}); err != nil {
		return nil, fmt.Errorf("floor reader start: %w", err)
	}
	fds, acceptErr := acceptN(ctx, lfd, cfg.Conns, rc)
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	ready, err := rc.ready(ctx)
	if err != nil {
		return nil, err
	}
	res := &FloorResult{Conns: len(fds), Writers: min(max(cfg.Writers, 1), len(fds))} // no writer without a socket
	if len(ready.Errors) > 0 || acceptErr != nil {
		res.ConnectError = fmtCounts(ready.Errors)
		if acceptErr != nil {
			res.ConnectError += "; accept: " + acceptErr.Error()
		}
	}
	if len(fds) == 0 {
		return nil, fmt.Errorf("floor: no connection (%s)", res.ConnectError)
	}
	frame := serverFrame(cfg.Size)
	res.FrameBytes = len(frame)
	sleepCtx(ctx, 200*time.Millisecond) // let the connections settle

	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		for _, rate := range cfg.Rates {
			if ctx.Err() != nil {
				return
			}
			st, written := writePhase(ctx, split(fds, res.Writers), frame, rate, cfg.Duration)
			res.Written += written
			res.Steps = append(res.Steps, st)
		}
	}()
	<-done
	read, err := rc.finish(ctx, res.Written)
	if err != nil {
		return nil, err
	}
	res.Read = read
	return res, nil
}

// split cuts fds into n shares of nearly equal size.
func split(fds []int, n int) [][]int {
	n = min(n, len(fds))
	shares := make([][]int, n)
	for i := range shares {
		shares[i] = fds[i*len(fds)/n : (i+1)*len(fds)/n]
	}
	return shares
}

// writePhase sweeps every share of sockets with frame at rate sweeps/s (0:
// back to back) for d. The first share is written on the calling goroutine,
// which runs on a locked OS thread; each other share by a sweeper on its own.
func writePhase(ctx context.Context, shares [][]int, frame []byte, rate float64, d time.Duration) (FloorStep, int64) {
	st := FloorStep{Rate: rate}
	h := newHist()
	n := math.MaxInt
	if rate > 0 {
		n = stepMessages(rate, d)
	}
	others := make([]*sweeper, len(shares)-1)
	for i := range others {
		others[i] = startSweeper(shares[i+1], frame)
	}
	own := &sweeper{fds: shares[0], frame: frame}
	p0, t0 := selfCPU(), threadCPU()
	start := time.Now()
	end := start.Add(d)
	for i := 0; i < n && ctx.Err() == nil; i++ {
		if rate > 0 {
			time.Sleep(time.Until(start.Add(time.Duration(float64(i) / rate * float64(time.Second)))))
		} else if !time.Now().Before(end) {
			break
		}
		s := time.Now()
		for _, o := range others {
			o.next <- struct{}{}
		}
		own.sweep()
		for _, o := range others {
			<-o.swept
		}
		recordUS(h, time.Since(s).Nanoseconds())
		st.Sweeps++
	}
	st.Seconds = time.Since(start).Seconds()
	st.CPUSeconds, st.ThreadCPU = selfCPU()-p0, threadCPU()-t0
	st.Writes, st.Short = own.writes, own.short
	written := own.written
	for _, o := range others {
		close(o.next)
		st.ThreadCPU += <-o.cpu
		st.Writes, st.Short, written = st.Writes+o.writes, st.Short+o.short, written+o.written
	}
	if st.Writes > 0 {
		st.CPUPerMWrites = st.CPUSeconds / (float64(st.Writes) / 1e6)
		st.ThreadPerM = st.ThreadCPU / (float64(st.Writes) / 1e6)
		st.WritesPerSec = float64(st.Writes) / st.Seconds
	}
	st.Sweep = noCurve(summarize(h))
	return st, written
}

// sweeper writes frame once to each of its sockets per sweep. A started
// sweeper (startSweeper) runs on its own locked OS thread: a value on next
// starts a sweep, swept answers its end, and closing next ends it, its
// thread's CPU since the start then sent on cpu. Its counters are read once
// cpu has answered.
type sweeper struct {
	fds     []int
	frame   []byte
	next    chan struct{}
	swept   chan struct{}
	cpu     chan float64
	writes  int64
	short   int64 // EAGAIN or partial: the socket buffer was full
	written int64
}

func startSweeper(fds []int, frame []byte) *sweeper {
	w := &sweeper{fds: fds, frame: frame, next: make(chan struct{}), swept: make(chan struct{}), cpu: make(chan float64, 1)}
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		t0 := threadCPU()
		for range w.next {
			w.sweep()
			w.swept <- struct{}{}
		}
		w.cpu <- threadCPU() - t0
	}()
	return w
}

// sweep writes the frame to every socket once, one write(2) each.
func (w *sweeper) sweep() {
	for _, fd := range w.fds {
		m, _ := unix.Write(fd, w.frame)
		w.writes++
		if m > 0 {
			w.written += int64(m)
		}
		if m != len(w.frame) {
			w.short++
		}
	}
}

// threadCPU returns the calling thread's user+system CPU seconds.
func threadCPU() float64 {
	var ru unix.Rusage
	if unix.Getrusage(unix.RUSAGE_THREAD, &ru) != nil {
		return 0
	}
	return tvSeconds(ru.Utime) + tvSeconds(ru.Stime)
}

// listenLoopback listens on 127.0.0.1:0 (non-blocking) and returns the fd and its address.
func listenLoopback() (int, string, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, "", wrapSys("socket", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		unix.Close(fd)
		return -1, "", wrapSys("bind", err)
	}
	if err := unix.Listen(fd, floorListenBacklog); err != nil {
		unix.Close(fd)
		return -1, "", wrapSys("listen", err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		unix.Close(fd)
		return -1, "", wrapSys("getsockname", err)
	}
	a := sa.(*unix.SockaddrInet4)
	return fd, fmt.Sprintf("%d.%d.%d.%d:%d", a.Addr[0], a.Addr[1], a.Addr[2], a.Addr[3], a.Port), nil
}

// acceptN accepts until n connections are in, the reader reports it is
// done dialing and nothing is pending, or ctx ends.
func acceptN(ctx context.Context, lfd, n int, rc *readerChild) ([]int, error) {
	fds := make([]int, 0, n)
	for len(fds) < n && ctx.Err() == nil {
		fd, _, err := unix.Accept4(lfd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		if err == nil {
			_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1) // as servers do
			fds = append(fds, fd)
			continue
		}
		if !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EINTR) {
			return fds, wrapSys("accept", err)
		}
		if rc.dialed() {
			// every connect returned; what is not queued now never will be
			if fd, _, err := unix.Accept4(lfd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC); err == nil {
				fds = append(fds, fd)
				continue
			}
			break
		}
		pfd := []unix.PollFd{{Fd: int32(lfd), Events: unix.POLLIN}}
		_, _ = unix.Poll(pfd, 50)
	}
	return fds, ctx.Err()
}

// readerChild is the running reader process.
type readerChild struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	enc    *json.Encoder
	out    chan readerOut
	isDone chan struct{} // closed when the child reports ready (or its output ends)
	rd     readerOut     // the ready message; written before isDone is closed
}

func startReader(cmd *exec.Cmd) (*readerChild, error) {
	stdin, stdout, err := startPiped(cmd, "floor reader")
	if err != nil {
		return nil, err
	}
	rc := &readerChild{cmd: cmd, stdin: stdin, enc: json.NewEncoder(stdin), out: make(chan readerOut, 4), isDone: make(chan struct{})}
	go func() {
		defer close(rc.out)
		dec := json.NewDecoder(bufio.NewReader(stdout))
		readyClosed := false
		for {
			var o readerOut
			if err := dec.Decode(&o); err != nil {
				break
			}
			if o.Ready != nil && !readyClosed {
				rc.rd = o
				readyClosed = true
				close(rc.isDone)
				continue
			}
			rc.out <- o
		}
		if !readyClosed {
			close(rc.isDone)
		}
	}()
	return rc, nil
}

func (rc *readerChild) dialed() bool {
	select {
	case <-rc.isDone:
		return true
	default:
		return false
	}
}

func (rc *readerChild) ready(ctx context.Context) (readerReady, error) {
	select {
	case <-rc.isDone:
	case <-ctx.Done():
		return readerReady{}, fmt.Errorf("floor reader ready: %w", ctx.Err())
	}
	if rc.rd.Ready == nil {
		return readerReady{}, errors.New("floor reader ended before dialing was over")
	}
	return *rc.rd.Ready, nil
}

func (rc *readerChild) finish(ctx context.Context, expected int64) (int64, error) {
	if err := rc.enc.Encode(readerIn{Finish: &readerFinish{Expected: expected, Timeout: 5 * time.Second}}); err != nil {
		return 0, fmt.Errorf("floor reader finish: %w", err)
	}
	for {
		select {
		case o, ok := <-rc.out:
			if !ok {
				return 0, errors.New("floor reader ended without a result")
			}
			if o.Error != "" {
				return 0, errors.New("floor reader: " + o.Error)
			}
			if o.Result != nil {
				return o.Result.Bytes, nil
			}
		case <-ctx.Done():
			return 0, fmt.Errorf("floor reader result: %w", ctx.Err())
		}
	}
}

func (rc *readerChild) close() {
	rc.stdin.Close()
	t := time.AfterFunc(5*time.Second, func() { _ = rc.cmd.Process.Kill() })
	_ = rc.cmd.Wait()
	t.Stop()
}

// WriteTable writes the floor's figures.
func (f *FloorResult) WriteTable(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "floor: one write(2) of a %d B frame per socket per sweep, %d sockets, %d writer thread(s)\n", f.FrameBytes, f.Conns, max(f.Writers, 1))
	if f.ConnectError != "" {
		fmt.Fprintf(tw, "  connect errors\t%s\n", f.ConnectError)
	}
	for _, s := range f.Steps {
		rate := strconv.FormatFloat(s.Rate, 'f', -1, 64) + " sweeps/s"
		if s.Rate == 0 {
			rate = "back to back"
		}
		sw := "-"
		if s.Sweep != nil {
			sw = fmt.Sprintf("p50 %s p99 %s max %s", fmtMS(s.Sweep.P50), fmtMS(s.Sweep.P99), fmtMS(s.Sweep.Max))
		}
		fmt.Fprintf(tw, "  %s\t%d sweeps, %d writes (%s/s), %d short; CPU per M writes: process %.2fs, writer threads %.2fs; sweep %s\n",
			rate, s.Sweeps, s.Writes, fmtShort(s.WritesPerSec), s.Short, s.CPUPerMWrites, s.ThreadPerM, sw)
	}
	fmt.Fprintf(tw, "  bytes\twritten %d, read by the readers %d\n", f.Written, f.Read)
	tw.Flush()
}
