package bench

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
	"golang.org/x/sys/unix"

	"github.com/wspush/wspush/internal/looptls"
)

// WorkerSpec tells a worker (in-process or a child process) which
// connections to open. Connection i of the worker has the global index
// Offset+i; the global index picks its URL, source address, topic and
// whether it is a slow subscriber, so work splits evenly over workers.
type WorkerSpec struct {
	Scenario         string        `json:"scenario"` // "connect", "fanout", "churn" or "curve"
	URLs             []string      `json:"urls"`
	Src              []string      `json:"src,omitempty"`
	Conns            int           `json:"conns"` // churn: connections in flight at most
	Offset           int           `json:"offset"`
	Rate             float64       `json:"rate"` // connections (churn: cycles) per second; 0: as fast as possible
	Topics           []string      `json:"topics,omitempty"`
	Slow             float64       `json:"slow,omitempty"`
	SlowRcvBuf       int           `json:"slow_rcvbuf,omitempty"`
	Loops            int           `json:"loops"`
	HandshakeTimeout time.Duration `json:"handshake_timeout"`
	MaxPending       int           `json:"max_pending"`
	Insecure         bool          `json:"insecure,omitempty"` // wss://: do not verify the server's certificate
	Until            time.Time     `json:"until"`              // stop dialing (churn: starting cycles) at this time
}

// FinishSpec ends a worker's run.
type FinishSpec struct {
	// Ranges holds, per topic, the first and last sequence number published
	// during the run (from the publish answers).
	Ranges map[string][2]int64 `json:"ranges,omitempty"`
	// Drain bounds the wait for fast subscribers to receive everything.
	Drain time.Duration `json:"drain"`
	// SlowDrain bounds the time slow subscribers read again at the end
	// (to find out which ones the server dropped).
	SlowDrain time.Duration `json:"slow_drain"`
}

// Progress is a worker's running totals.
type Progress struct {
	Opened     int64 `json:"opened"`
	Failed     int64 `json:"failed"`
	Open       int64 `json:"open"`
	Deliveries int64 `json:"deliveries"`
	Cycles     int64 `json:"cycles"`
}

// WorkerResult is everything a worker measured.
type WorkerResult struct {
	Dialed        int            `json:"dialed"`
	Opened        int            `json:"opened"`
	ConnectErrors map[string]int `json:"connect_errors,omitempty"`
	Closes        map[string]int `json:"closes,omitempty"` // fast connections ended by the server, by kind
	Handshake     Hist           `json:"handshake"`
	FirstDial     int64          `json:"first_dial"`
	LastOpen      int64          `json:"last_open"`

	Latency       Hist  `json:"latency"`
	Deliveries    int64 `json:"deliveries"`
	Expected      int64 `json:"expected"`
	Lost          int64 `json:"lost"`
	OutOfOrder    int64 `json:"out_of_order"`
	Foreign       int64 `json:"foreign"`
	FirstDelivery int64 `json:"first_delivery"`
	LastDelivery  int64 `json:"last_delivery"`

	SlowConns   int            `json:"slow_conns"`
	SlowDropped int            `json:"slow_dropped"`
	SlowCloses  map[string]int `json:"slow_closes,omitempty"`

	Cycles      int64          `json:"cycles"`
	CycleErrors map[string]int `json:"cycle_errors,omitempty"`
	Cycle       Hist           `json:"cycle"`

	Steps []StepRecv `json:"steps,omitempty"` // curve: per step
}

// Worker runs the client side of a scenario.
type Worker interface {
	// Start begins dialing.
	Start(spec WorkerSpec) error
	// Progress returns running totals; safe from any goroutine.
	Progress() Progress
	// Ready is closed when dialing is over (every connection open or
	// failed); for churn, when the churn is over.
	Ready() <-chan struct{}
	// Finish waits for deliveries as told, closes every connection and
	// returns the measurements.
	Finish(ctx context.Context, fs FinishSpec) (*WorkerResult, error)
	// Close releases everything (after Finish, or to abort).
	Close() error
}

// Agent is the in-process Worker: a few epoll loops and one dialing goroutine.
type Agent struct {
	spec    WorkerSpec
	targets []target
	src     [][4]byte
	loops   []*loop
	stats   []*loopStats
	ready   chan struct{}
	cancel  context.CancelFunc
	dialed  atomic.Int64
	// slowDeliv counts pushes read by slow subscribers (during the final drain).
	slowDeliv atomic.Int64
	// churn: connections in flight
	inflight atomic.Int64
	stopOnce sync.Once
}

type target struct {
	addr unix.SockaddrInet4
	host string
	path string
	tls  *tls.Config // wss://; nil for ws://
}

// Agent is a Worker.
var _ Worker = (*Agent)(nil)

// NewAgent returns an in-process worker.
func NewAgent() *Agent { return &Agent{ready: make(chan struct{})} }

func parseTarget(raw string, insecure bool) (target, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return target{}, fmt.Errorf("parse url %q: %w", raw, err)
	}
	if u.Scheme != "ws" && u.Scheme != "wss" {
		return target{}, fmt.Errorf("url %q: only ws:// and wss:// are supported", raw)
	}
	ta, err := net.ResolveTCPAddr("tcp4", u.Host)
	if err != nil {
		return target{}, fmt.Errorf("resolve %q: %w", u.Host, err)
	}
	ip := ta.IP.To4()
	if ip == nil {
		return target{}, fmt.Errorf("%q: not an IPv4 address", u.Host)
	}
	t := target{host: u.Host, path: u.RequestURI()}
	if u.Scheme == "wss" {
		// No session cache: every connection pays a full handshake, which is
		// what the connect figures are for.
		t.tls = &tls.Config{ServerName: u.Hostname(), InsecureSkipVerify: insecure,
			MinVersion: tls.VersionTLS12, NextProtos: []string{looptls.ALPNHTTP11}}
	}
	copy(t.addr.Addr[:], ip)
	t.addr.Port = ta.Port
	return t, nil
}

// ParseSrcRange parses "127.0.0.2-127.0.0.60", a single address or a
// comma-separated list of both into addresses.
func ParseSrcRange(s string) ([]string, error) {
	var out []string
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := netip.ParseAddr(lo)
		if err != nil || !a.Is4() {
			return nil, fmt.Errorf("source address %q: not IPv4", lo)
		}
		b := a
		if isRange {
			if b, err = netip.ParseAddr(hi); err != nil || !b.Is4() {
				return nil, fmt.Errorf("source address %q: not IPv4", hi)
			}
		}
		if b.Less(a) {
			return nil, fmt.Errorf("source range %q: end before start", part)
		}
		for x := a; ; x = x.Next() {
			out = append(out, x.String())
			if x == b || len(out) > 1<<16 {
				break
			}
		}
	}
	return out, nil
}

func isSlow(g int, f float64) bool {
	return f > 0 && math.Floor(float64(g+1)*f) > math.Floor(float64(g)*f)
}

// Start implements Worker.
func (a *Agent) Start(spec WorkerSpec) error {
	if len(spec.URLs) == 0 {
		return errors.New("no url")
	}
	for _, u := range spec.URLs {
		t, err := parseTarget(u, spec.Insecure)
		if err != nil {
			return err
		}
		a.targets = append(a.targets, t)
	}
	for _, s := range spec.Src {
		ad, err := netip.ParseAddr(s)
		if err != nil || !ad.Is4() {
			return fmt.Errorf("source address %q: not IPv4", s)
		}
		a.src = append(a.src, ad.As4())
	}
	if spec.Loops <= 0 {
		spec.Loops = min(2, runtime.NumCPU())
	}
	if spec.HandshakeTimeout <= 0 {
		spec.HandshakeTimeout = 10 * time.Second
	}
	if spec.MaxPending <= 0 {
		spec.MaxPending = 1000
	}
	a.spec = spec
	for i := 0; i < spec.Loops; i++ {
		st := newLoopStats()
		l, err := newLoop(i, a, st, spec.HandshakeTimeout)
		if err != nil {
			a.Close()
			return fmt.Errorf("start loop: %w", err)
		}
		a.loops = append(a.loops, l)
		a.stats = append(a.stats, st)
		go l.run()
	}
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	if spec.Scenario == "churn" {
		go a.churn(ctx)
	} else {
		go a.ramp(ctx)
	}
	return nil
}

func (a *Agent) dialSpec(i int) dialSpec {
	g := a.spec.Offset + i
	t := a.targets[g%len(a.targets)]
	d := dialSpec{id: g, dst: t.addr, host: t.host, path: t.path, topic: -1, tls: t.tls}
	if len(a.src) > 0 {
		d.src = &a.src[g%len(a.src)]
	}
	if n := len(a.spec.Topics); n > 0 {
		d.topic = g % n
		sep := "?"
		if strings.Contains(d.path, "?") {
			sep = "&"
		}
		d.path += sep + "topics=" + url.QueryEscape(a.spec.Topics[d.topic])
	}
	if a.spec.Scenario == "fanout" && isSlow(g, a.spec.Slow) {
		d.slow = true
		d.rcvbuf = a.spec.SlowRcvBuf
	}
	d.churn = a.spec.Scenario == "churn"
	return d
}

func (a *Agent) pending() int64 {
	var p int64
	for _, s := range a.stats {
		p += s.opened.Load() + s.failed.Load()
	}
	return a.dialed.Load() - p
}

func (a *Agent) dial(i int) {
	d := a.dialSpec(i)
	l := a.loops[i%len(a.loops)]
	a.dialed.Add(1)
	l.post(func() { l.dial(d) })
}

// ramp dials spec.Conns connections at spec.Rate, then waits for the
// handshakes and closes a.ready.
func (a *Agent) ramp(ctx context.Context) {
	defer close(a.ready)
	start := time.Now()
	n := a.spec.Conns
	for i := 0; i < n; {
		if ctx.Err() != nil || (!a.spec.Until.IsZero() && time.Now().After(a.spec.Until)) {
			break
		}
		due := n
		if a.spec.Rate > 0 {
			due = min(n, int(time.Since(start).Seconds()*a.spec.Rate)+1)
		}
		batch := min(due-i, a.spec.MaxPending-int(a.pending()), 256)
		if batch <= 0 {
			time.Sleep(time.Millisecond)
			continue
		}
		for j := 0; j < batch; j++ {
			a.dial(i)
			i++
		}
	}
	deadline := time.Now().Add(a.spec.HandshakeTimeout + time.Second)
	for a.pending() > 0 && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
}

// churn runs connect/subscribe/close cycles until spec.Until.
func (a *Agent) churn(ctx context.Context) {
	defer close(a.ready)
	start := time.Now()
	maxIn := int64(max(1, a.spec.Conns))
	for i := 0; ctx.Err() == nil && time.Now().Before(a.spec.Until); {
		due := i + 64
		if a.spec.Rate > 0 {
			due = int(time.Since(start).Seconds()*a.spec.Rate) + 1
		}
		if i >= due || a.inflight.Load() >= maxIn {
			time.Sleep(time.Millisecond)
			continue
		}
		a.inflight.Add(1)
		a.dial(i)
		i++
	}
	deadline := time.Now().Add(a.spec.HandshakeTimeout + 2*time.Second)
	for a.inflight.Load() > 0 && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
}

// Ready implements Worker.
func (a *Agent) Ready() <-chan struct{} { return a.ready }

// Progress implements Worker.
func (a *Agent) Progress() Progress {
	var p Progress
	for _, s := range a.stats {
		p.Opened += s.opened.Load()
		p.Failed += s.failed.Load()
		p.Open += s.open.Load()
		p.Deliveries += s.deliveries.Load()
		p.Cycles += s.cycles.Load()
	}
	return p
}

// handler implementation; these run on the connection's loop goroutine.

func (a *Agent) opened(c *Conn, now int64) {
	st := c.l.st
	recordUS(st.hs, now-c.started)
	st.firstDial = minNZ(st.firstDial, c.started)
	st.lastOpen = max(st.lastOpen, now)
	switch {
	case c.spec.churn:
		// subscribe to one more topic by command, close once it is answered
		cmd := `{"op":"sub","topics":["` + a.spec.Topics[c.spec.topic] + `-2"]}`
		c.l.send(c, ws.OpText, []byte(cmd), now)
		return
	case c.spec.slow:
		c.paused = true
	}
	st.conns = append(st.conns, c)
}

func (a *Agent) message(c *Conn, msg []byte, now int64) {
	st := c.l.st
	m, err := parseMessage(msg)
	if err != nil {
		st.closes["bad_json"]++
		return
	}
	if c.spec.churn {
		if string(m.op) == "subscribed" {
			c.l.send(c, ws.OpClose, ws.NewCloseFrameBody(ws.StatusNormalClosure, ""), now)
		}
		return
	}
	if m.op != nil || m.data == nil {
		return // command answers
	}
	if c.spec.topic < 0 || string(m.topic) != a.spec.Topics[c.spec.topic] {
		st.foreign++
		return
	}
	switch {
	case m.seq <= c.lastSeq:
		c.ooo++
		return
	case c.lastSeq == 0:
		c.firstSeq = m.seq
	case m.seq > c.lastSeq+1:
		c.gaps += m.seq - c.lastSeq - 1
	}
	c.lastSeq = m.seq
	c.recv++
	if c.spec.slow {
		a.slowDeliv.Add(1)
		return
	}
	st.deliveries.Add(1)
	st.firstDelivery = minNZ(st.firstDelivery, now)
	st.lastDelivery = now
	t, ok := payloadTime(m.data)
	if !ok {
		return
	}
	if a.spec.Scenario != "curve" {
		recordUS(st.lat, now-t)
		return
	}
	if k, ok := payloadStep(m.data); ok && k < maxCurveSteps {
		s := st.step(k)
		s.Deliveries++
		recordUS(s.Latency.H, now-t)
	}
}

func (a *Agent) ended(c *Conn, kind string, now int64) {
	st := c.l.st
	opened := c.openedAt()
	if c.spec.churn {
		a.inflight.Add(-1)
		switch {
		case !opened:
			st.errs[kind]++
		case c.closing && (kind == "close_1000" || kind == "eof"):
			st.cycles.Add(1)
			recordUS(st.cycle, now-c.started)
		default:
			st.cycleErrs[kind]++
		}
		return
	}
	if !opened {
		st.errs[kind]++
		return
	}
	if kind == "" {
		return
	}
	if c.spec.slow {
		st.slowCloses[kind]++
	} else {
		st.closes[kind]++
	}
}

// Finish implements Worker.
func (a *Agent) Finish(ctx context.Context, fs FinishSpec) (*WorkerResult, error) {
	<-a.ready
	var expected int64
	if a.spec.Scenario == "fanout" && len(fs.Ranges) > 0 {
		// expected deliveries to fast subscribers, counted on the loops
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, l := range a.loops {
			wg.Add(1)
			l.post(func() {
				defer wg.Done()
				var n int64
				for _, c := range l.st.conns {
					if !c.spec.slow && c.spec.topic >= 0 {
						n += rangeLen(fs.Ranges[a.spec.Topics[c.spec.topic]])
					}
				}
				mu.Lock()
				expected += n
				mu.Unlock()
			})
		}
		wg.Wait()
		a.waitFor(ctx, fs.Drain, time.Second, func() int64 { return a.Progress().Deliveries }, expected)
		if a.spec.Slow > 0 && fs.SlowDrain > 0 {
			for _, l := range a.loops {
				l.post(func() {
					for _, c := range l.st.conns {
						if c.spec.slow {
							l.resume(c)
						}
					}
				})
			}
			a.waitFor(ctx, fs.SlowDrain, 300*time.Millisecond, a.slowDeliv.Load, math.MaxInt64)
		}
	}
	a.stop()
	r := &WorkerResult{Dialed: int(a.dialed.Load()), Expected: expected}
	for _, st := range a.stats {
		r.Opened += int(st.opened.Load())
		r.ConnectErrors = addCounts(r.ConnectErrors, st.errs)
		r.Closes = addCounts(r.Closes, st.closes)
		r.SlowCloses = addCounts(r.SlowCloses, st.slowCloses)
		r.CycleErrors = addCounts(r.CycleErrors, st.cycleErrs)
		mergeHist(&r.Handshake.H, st.hs)
		mergeHist(&r.Latency.H, st.lat)
		mergeHist(&r.Cycle.H, st.cycle)
		for k, s := range st.steps {
			for len(r.Steps) <= k {
				r.Steps = append(r.Steps, StepRecv{})
			}
			r.Steps[k].Deliveries += s.Deliveries
			mergeHist(&r.Steps[k].Latency.H, s.Latency.H)
		}
		r.FirstDial = minNZ(r.FirstDial, st.firstDial)
		r.LastOpen = max(r.LastOpen, st.lastOpen)
		r.FirstDelivery = minNZ(r.FirstDelivery, st.firstDelivery)
		r.LastDelivery = max(r.LastDelivery, st.lastDelivery)
		r.Deliveries += st.deliveries.Load()
		r.Cycles += st.cycles.Load()
		r.Foreign += st.foreign
		for _, c := range st.conns {
			if c.spec.slow {
				r.SlowConns++
				if c.endKind != "client" {
					r.SlowDropped++
				}
				continue
			}
			r.OutOfOrder += c.ooo
			if c.spec.topic < 0 {
				continue
			}
			if rg, ok := fs.Ranges[a.spec.Topics[c.spec.topic]]; ok {
				r.Lost += lostOf(c, rg)
			}
		}
	}
	return r, nil
}

func rangeLen(r [2]int64) int64 {
	if r[1] < r[0] || r[0] <= 0 {
		return 0
	}
	return r[1] - r[0] + 1
}

// lostOf counts the sequence numbers of range r that c never received.
func lostOf(c *Conn, r [2]int64) int64 {
	if c.recv == 0 {
		return rangeLen(r)
	}
	lost := c.gaps
	if c.firstSeq > r[0] {
		lost += c.firstSeq - r[0]
	}
	if r[1] > c.lastSeq {
		lost += r[1] - c.lastSeq
	}
	return lost
}

// waitFor polls get until it reaches want, stops moving for stall, or timeout passes.
func (a *Agent) waitFor(ctx context.Context, timeout, stall time.Duration, get func() int64, want int64) {
	waitProgress(ctx, timeout, stall, get, want)
}

func (a *Agent) stop() {
	a.stopOnce.Do(func() {
		if a.cancel != nil {
			a.cancel()
		}
		var wg sync.WaitGroup
		for _, l := range a.loops {
			wg.Add(1)
			go func() { defer wg.Done(); l.stop() }()
		}
		wg.Wait()
	})
}

// Close implements Worker.
func (a *Agent) Close() error {
	a.stop()
	return nil
}
