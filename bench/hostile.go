package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"
	"github.com/gobwas/ws"
	"golang.org/x/sys/unix"
)

// HostileConfig is the hostile scenario (issue 10): peers attacking a
// running server's memory while one well-behaved subscriber measures its
// push latency, publishing through the admin API at a fixed rate.
type HostileConfig struct {
	URL       string        // the server's WebSocket URL, ws://host:port/ws
	Admin     string        // its admin base URL, for publishing and /metrics
	ServerPID int           // for RSS from /proc; 0: not measured
	Src       []string      // source addresses of the hostile peers, round robin
	Headers   int           // peers that send one frame header declaring 1 MiB, then nothing
	Floods    int           // peers that never read and flood 1 MiB {"op":"sub"} messages
	Pings     int           // peers that never read and flood 125-byte pings
	Duration  time.Duration // of the measurement, from the moment every peer is connected
	PubRate   float64       // publishes per second to the subscriber
	LiveHeap  bool          // also sample the heap in use after a forced GC (needs the server's -pprof)
	Timeline  bool          // keep every push's send time and latency (HostileResult.Timeline)
	// AttackOnly runs the hostile peers alone for Duration, without the
	// subscriber: a second wsbench process (with no hostile peers) then
	// measures, so that the attackers' goroutines do not share the
	// subscriber's Go scheduler and a stall in the client is not charged to
	// the server.
	AttackOnly bool
	// Ready, when set, is called once the hostile peers are connected,
	// before the measurement starts.
	Ready func()
	Log   func(format string, args ...any)
}

// HostileResult is what the run measured.
type HostileResult struct {
	Hostile   int          `json:"hostile_conns"`
	Connected int          `json:"connected"` // hostile peers that got their 101
	Before    ServerSample `json:"before"`
	Peak      ServerSample `json:"peak"` // the largest heap and RSS seen during the run
	After     ServerSample `json:"after"`
	// The heap in use right after a forced GC (LiveHeap): what the server
	// really holds, without the garbage a plain sample catches.
	LiveBefore float64  `json:"live_heap_before,omitempty"`
	LivePeak   float64  `json:"live_heap_peak,omitempty"`
	LiveAfter  float64  `json:"live_heap_after,omitempty"`
	Latency    *Latency `json:"latency"`   // the well-behaved subscriber's pushes
	Over10ms   int64    `json:"over_10ms"` // of them, pushes over 10 ms
	Over50ms   int64    `json:"over_50ms"` // and over 50 ms
	// Server is the server's push latency histogram over the measurement:
	// the server's share of Latency (nil if /metrics did not answer).
	Server       *ServerLatency     `json:"server_push_latency,omitempty"`
	Lost         int64              `json:"lost"`          // publishes it never got
	FloodDropped int                `json:"flood_dropped"` // command flooders the server closed
	FloodMaxDrop float64            `json:"flood_max_drop_s"`
	PingDropped  int                `json:"ping_dropped"`
	HeaderClosed int                `json:"header_closed"`
	Metrics      map[string]float64 `json:"metrics"` // the server's counters of the limits, at the end
	// Timeline is every push received, in order: ms from the start of the
	// measurement to its publish, and its latency in ms (Timeline set).
	Timeline [][2]float64 `json:"timeline,omitempty"`
}

// hostileMetrics are the counters the result reports.
var hostileMetrics = []string{
	"wspush_slow_consumers_dropped_total", "wspush_pending_refused_total", "wspush_message_timeouts_total",
	"wspush_handshake_failures_total", "wspush_connections", "wspush_rate_limit_closes_total",
	"wspush_commands_over_burst_total", "wspush_control_frames_rate_limited_total",
}

// RunHostile connects the hostile peers, measures, and closes them.
func RunHostile(ctx context.Context, cfg HostileConfig) (*HostileResult, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("url: %w", err)
	}
	obs := &observer{pid: cfg.ServerPID, admin: cfg.Admin, client: &http.Client{Timeout: 5 * time.Second}}
	r := &HostileResult{Hostile: cfg.Headers + cfg.Floods + cfg.Pings}
	r.Before = obs.sample(ctx)
	live := func() float64 {
		if !cfg.LiveHeap {
			return 0
		}
		v, err := obs.liveHeap(ctx)
		if err != nil && cfg.Log != nil {
			cfg.Log("live heap: %v", err)
		}
		return v
	}
	r.LiveBefore = live()

	// The well-behaved subscriber.
	topic := fmt.Sprintf("hostile.probe.%d", time.Now().UnixNano())
	var sub *websocket.Conn
	if !cfg.AttackOnly {
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		sub, _, err = websocket.Dial(dctx, cfg.URL+"?topics="+topic, nil)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("subscriber: %w", err)
		}
		defer sub.CloseNow()
		if _, _, err := sub.Read(ctx); err != nil { // subscribed
			return nil, fmt.Errorf("subscriber: %w", err)
		}
	}

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	peers := make([]*hostilePeer, 0, r.Hostile)
	var connected atomic.Int64
	kinds := []struct {
		n    int
		kind hostileKind
	}{{cfg.Headers, headerOnly}, {cfg.Floods, subFlood}, {cfg.Pings, pingFlood}}
	for _, k := range kinds {
		for i := 0; i < k.n; i++ {
			p := &hostilePeer{kind: k.kind}
			if len(cfg.Src) > 0 {
				p.src = cfg.Src[len(peers)%len(cfg.Src)]
			}
			peers = append(peers, p)
		}
	}
	for _, p := range peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.run(runCtx, u.Host, u.RequestURI(), &connected)
		}()
	}
	// Measure from the moment the peers are in (or 10 s, whichever first).
	deadline := time.Now().Add(10 * time.Second)
	for connected.Load() < int64(len(peers)) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	r.Connected = int(connected.Load())
	if cfg.Log != nil {
		cfg.Log("hostile peers connected: %d of %d", r.Connected, len(peers))
	}
	if cfg.Ready != nil {
		cfg.Ready()
	}
	if cfg.AttackOnly {
		return r.holdAttack(ctx, cfg, obs, live, stop, &wg, peers)
	}
	serverBefore, serr := obs.pushLatency(ctx)
	if serr != nil && cfg.Log != nil {
		cfg.Log("server push latency: %v", serr)
	}

	hist := newHist()
	var received atomic.Int64
	start := time.Now().UnixNano()
	var timeline [][2]float64 // the reader's until readerDone
	readerDone := make(chan struct{})
	var over10, over50 atomic.Int64
	go func() {
		defer close(readerDone)
		for {
			_, b, err := sub.Read(runCtx)
			if err != nil {
				return
			}
			if t, ok := payloadTime(b); ok {
				now := time.Now().UnixNano()
				recordUS(hist, now-t)
				received.Add(1)
				if d := time.Duration(now - t); d > 50*time.Millisecond {
					over10.Add(1)
					over50.Add(1)
				} else if d > 10*time.Millisecond {
					over10.Add(1)
				}
				if cfg.Timeline {
					timeline = append(timeline, [2]float64{float64(t-start) / 1e6, float64(now-t) / 1e6})
				}
			}
		}
	}()
	r.Peak = r.Before
	published := int64(0)
	client := &http.Client{Timeout: 5 * time.Second}
	tick := time.NewTicker(time.Duration(float64(time.Second) / cfg.PubRate))
	defer tick.Stop()
	sampleAt := time.Now()
	end := time.Now().Add(cfg.Duration)
	var payload []byte
	for time.Now().Before(end) {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-tick.C:
		}
		payload = makePayload(payload, time.Now().UnixNano(), 64)
		resp, err := client.Post(cfg.Admin+"/publish?topic="+topic, "application/json", bytes.NewReader(payload))
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				published++
			}
		}
		if time.Since(sampleAt) > 500*time.Millisecond {
			sampleAt = time.Now()
			s := obs.sample(ctx)
			r.Peak.HeapInuse = max(r.Peak.HeapInuse, s.HeapInuse)
			r.Peak.RSS = max(r.Peak.RSS, s.RSS)
			r.LivePeak = max(r.LivePeak, live())
		}
	}
	time.Sleep(200 * time.Millisecond) // the last pushes
	if serverBefore != nil {
		if after, err := obs.pushLatency(ctx); err == nil {
			r.Server = serverLatency(serverBefore, after)
		}
	}
	r.finish(ctx, obs, live)
	stop()
	<-readerDone
	r.Latency = summarize(hist)
	r.Over10ms, r.Over50ms = over10.Load(), over50.Load()
	r.Lost = published - received.Load()
	r.Timeline = timeline
	wg.Wait()
	r.countDrops(peers)
	return r, nil
}

// finish takes the server's state at the end of a run: its last sample,
// folded into the peaks, and the metrics the report lists.
func (r *HostileResult) finish(ctx context.Context, obs *observer, live func() float64) {
	r.After = obs.sample(ctx)
	r.LiveAfter = live()
	r.LivePeak = max(r.LivePeak, r.LiveAfter)
	r.Peak.HeapInuse = max(r.Peak.HeapInuse, r.After.HeapInuse)
	r.Peak.RSS = max(r.Peak.RSS, r.After.RSS)
	if m, err := obs.metrics(ctx); err == nil {
		r.Metrics = make(map[string]float64)
		for _, name := range hostileMetrics {
			r.Metrics[name] = m[name]
		}
	}
}

// holdAttack is RunHostile's AttackOnly run: the peers attack for
// cfg.Duration (another process measures), sampling the server as the
// subscriber's run does.
func (r *HostileResult) holdAttack(ctx context.Context, cfg HostileConfig, obs *observer, live func() float64,
	stop context.CancelFunc, wg *sync.WaitGroup, peers []*hostilePeer) (*HostileResult, error) {
	r.Peak = r.Before
	end := time.Now().Add(cfg.Duration)
	for time.Now().Before(end) {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
		s := obs.sample(ctx)
		r.Peak.HeapInuse = max(r.Peak.HeapInuse, s.HeapInuse)
		r.Peak.RSS = max(r.Peak.RSS, s.RSS)
		r.LivePeak = max(r.LivePeak, live())
	}
	r.finish(ctx, obs, live)
	stop()
	wg.Wait()
	r.countDrops(peers)
	return r, nil
}

// countDrops counts the peers the server ended, by kind.
func (r *HostileResult) countDrops(peers []*hostilePeer) {
	for _, p := range peers {
		switch {
		case p.kind == subFlood && p.dropped > 0:
			r.FloodDropped++
			r.FloodMaxDrop = max(r.FloodMaxDrop, p.dropped.Seconds())
		case p.kind == pingFlood && p.dropped > 0:
			r.PingDropped++
		case p.kind == headerOnly && p.dropped > 0:
			r.HeaderClosed++
		}
	}
}

// WriteTable prints the result.
func (r *HostileResult) WriteTable(w io.Writer) {
	mib := func(v float64) string { return fmt.Sprintf("%.1f MiB", v/(1<<20)) }
	fmt.Fprintf(w, "hostile peers        %d (%d connected)\n", r.Hostile, r.Connected)
	fmt.Fprintf(w, "heap in use          before %s  peak %s  after %s  (rise %s)\n",
		mib(r.Before.HeapInuse), mib(r.Peak.HeapInuse), mib(r.After.HeapInuse), mib(r.Peak.HeapInuse-r.Before.HeapInuse))
	if r.LiveBefore > 0 {
		fmt.Fprintf(w, "heap after GC        before %s  peak %s  after %s  (rise %s)\n",
			mib(r.LiveBefore), mib(r.LivePeak), mib(r.LiveAfter), mib(r.LivePeak-r.LiveBefore))
	}
	if r.Before.RSS > 0 {
		fmt.Fprintf(w, "RSS                  before %s  peak %s  after %s\n",
			mib(float64(r.Before.RSS)), mib(float64(r.Peak.RSS)), mib(float64(r.After.RSS)))
	}
	if r.Before.RSS > 0 {
		fmt.Fprintf(w, "server CPU           %.1f s over the run\n", r.After.CPUSeconds-r.Before.CPUSeconds)
	}
	if l := r.Latency; l != nil {
		fmt.Fprintf(w, "subscriber latency   n=%d p50 %.2f ms  p99 %.2f ms  max %.2f ms  lost %d  over 10 ms %d  over 50 ms %d\n",
			l.Count, l.P50, l.P99, l.Max, r.Lost, r.Over10ms, r.Over50ms)
	}
	if s := r.Server; s != nil {
		fmt.Fprintf(w, "server push latency  n=%.0f p50 <= %g ms  p99 <= %g ms  over 10 ms %.0f  over 50 ms %.0f\n",
			s.Count, s.P50LeMs, s.P99LeMs, s.Over10ms, s.Over50ms)
	}
	fmt.Fprintf(w, "command flooders     %d dropped, the last after %.2f s\n", r.FloodDropped, r.FloodMaxDrop)
	fmt.Fprintf(w, "ping flooders        %d dropped\n", r.PingDropped)
	fmt.Fprintf(w, "header-only peers    %d closed by the server\n", r.HeaderClosed)
	for _, name := range hostileMetrics {
		if v, ok := r.Metrics[name]; ok {
			fmt.Fprintf(w, "%-36s %.0f\n", name, v)
		}
	}
}

type hostileKind uint8

const (
	headerOnly hostileKind = iota
	subFlood
	pingFlood
)

// hostilePeer is one attacking connection, on its own goroutine: it is
// bounded in number (the scenario's) and spends its time blocked in writes.
type hostilePeer struct {
	kind    hostileKind
	src     string
	dropped time.Duration // when the server ended it, from its first attack byte; 0 if it did not
}

// hostileFrames are built once (bench/codec.go's masked client frames) and
// sent again and again: a mask need not change between frames.
var (
	hostileHeader = binary.BigEndian.AppendUint64([]byte{0x81, 0x80 | 127}, 1<<20) // + the mask below
	hostileSub    = appendFrame(nil, ws.OpText, []byte(`{"op":"sub","topics":["a"`+strings.Repeat(`,"a"`, (1<<20-30)/4)+`]}`))
	hostilePings  = bytes.Repeat(appendFrame(nil, ws.OpPing, bytes.Repeat([]byte("p"), 125)), 512)
)

func (p *hostilePeer) run(ctx context.Context, host, path string, connected *atomic.Int64) {
	d := net.Dialer{Timeout: 10 * time.Second, Control: func(_, _ string, c syscall.RawConn) error {
		if p.kind == headerOnly {
			return nil
		}
		// Non-readers: a small receive window, so the kernel absorbs
		// little of what the server sends.
		var err error
		c.Control(func(fd uintptr) { err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<10) })
		return err
	}}
	if p.src != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(p.src)}
	}
	c, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return
	}
	defer c.Close()
	go func() { <-ctx.Done(); c.Close() }()
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", path, host)
	br := bufio.NewReaderSize(c, 512)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		return
	}
	c.SetReadDeadline(time.Time{})
	connected.Add(1)
	start := time.Now()
	ended := func() {
		if ctx.Err() == nil {
			p.dropped = max(time.Since(start), time.Nanosecond)
		}
	}
	switch p.kind {
	case headerOnly:
		// The header, then nothing: wait for the server to close us.
		if _, err := c.Write(append(hostileHeader[:len(hostileHeader):len(hostileHeader)], 0, 0, 0, 0)); err != nil {
			ended()
			return
		}
		io.Copy(io.Discard, c)
		ended()
	case subFlood, pingFlood:
		// Never read; write until the server ends the connection.
		flood := hostileSub
		if p.kind == pingFlood {
			flood = hostilePings
		}
		for off := 0; ctx.Err() == nil; {
			c.SetWriteDeadline(time.Now().Add(time.Second))
			n, err := c.Write(flood[off:])
			off = (off + n) % len(flood) // a timed-out write goes on where it stopped
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					continue // held back: the server is not reading us
				}
				ended()
				return
			}
		}
	}
}

// liveHeap is the server's heap in use right after a forced GC, read from
// the runtime.MemStats that /debug/pprof/heap?gc=1&debug=1 prints.
func (o *observer) liveHeap(ctx context.Context) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, o.admin+"/debug/pprof/heap?gc=1&debug=1", nil)
	if err != nil {
		return 0, err
	}
	resp, err := o.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET /debug/pprof/heap: %s (start the server with -pprof)", resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "# HeapInuse = "); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	return 0, fmt.Errorf("GET /debug/pprof/heap: no HeapInuse line (%v)", sc.Err())
}
