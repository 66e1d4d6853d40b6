package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"time"
)

// Config describes one scenario run against one target.
type Config struct {
	Scenario string   // "connect", "fanout", "slow", "churn" or "curve"
	Label    string   // target name in reports (compare uses "A" and "B")
	URLs     []string // ws://host:port/ws; connections spread round robin
	Admin    string   // http://host:port of the admin API
	Src      []string // source IPv4 addresses, connections spread round robin

	Conns    int           // connections (churn: in flight at most)
	Rate     float64       // connections (churn: cycles) per second; 0: as fast as possible
	Duration time.Duration // bounds the ramp, publishing and churn; draining adds at most Drain

	Topics     int     // fanout: subscriber i listens to topic i mod Topics
	Messages   int     // fanout: messages per topic
	Size       int     // fanout: bytes of each published JSON value
	PubRate    float64 // fanout: messages per second over all topics; 0: as fast as accepted
	Publishers int     // fanout, curve: concurrent HTTP publishers
	Batch      int     // fanout, inbox: messages per POST /publish/batch; <= 1: one POST /publish each

	Steps        []float64     // curve: offered deliveries per second, ascending
	StepDuration time.Duration // curve: publishing window of each step
	KneeP99      time.Duration // curve: a step passes with p99 below this and nothing lost
	StopAfter    int           // curve: end the sweep after this many overloaded steps (not drained or deliveries missing); 0: never

	Slow       float64 // slow: fraction of subscribers that stop reading
	SlowRcvBuf int     // slow: SO_RCVBUF of slow subscribers

	Loops            int           // epoll loops per process
	Procs            int           // worker processes; <= 1: in-process
	ServerPID        int           // server process for /proc figures; 0: none
	HandshakeTimeout time.Duration // per connection
	Insecure         bool          // wss://: do not verify the server's certificate (self-signed test certificates)
	Drain            time.Duration // fanout: wait for the last deliveries at most this long
	Hold             time.Duration // connect: hold the connections this long before measuring

	// ServerCmd, if set, is a server command line started fresh for the
	// run (and stopped after it); ServerPID becomes its pid.
	ServerCmd []string
	// ServerLog receives the output of ServerCmd (nil: discarded).
	ServerLog io.Writer

	// NewWorker starts a worker process; required when Procs > 1.
	NewWorker func() (Worker, error)
	// OnProgress, if set, is called about every 250 ms.
	OnProgress func(Status)
	Log        *slog.Logger
}

// Status is a progress report.
type Status struct {
	Label    string
	Phase    string // "ramp", "publish", "drain", "churn", "hold"
	Done     int64
	Total    int64
	Elapsed  time.Duration
	Open     int64
	Failed   int64
	Delivers int64
}

func (c *Config) defaults() error {
	switch c.Scenario {
	case "connect", "fanout", "slow", "churn", "curve", "inbox":
	default:
		return fmt.Errorf("unknown scenario %q", c.Scenario)
	}
	if len(c.URLs) == 0 {
		return errors.New("no -url")
	}
	if c.Scenario != "connect" && c.Scenario != "churn" && c.Admin == "" {
		return errors.New("no -admin to publish to")
	}
	if c.Conns <= 0 {
		c.Conns = 100
	}
	if c.Duration <= 0 {
		c.Duration = 30 * time.Second
	}
	if c.Topics <= 0 {
		c.Topics = 1
	}
	if c.Messages <= 0 {
		c.Messages = 100
	}
	if c.Size <= 0 {
		c.Size = 128
	}
	if c.Publishers <= 0 {
		c.Publishers = 4
	}
	switch {
	case c.Scenario != "slow":
		c.Slow = 0
	case c.Slow <= 0:
		c.Slow = 0.1
	}
	if c.SlowRcvBuf <= 0 {
		c.SlowRcvBuf = 4096
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = 10 * time.Second
	}
	if c.Drain <= 0 {
		c.Drain = 5 * time.Second
	}
	if c.Hold <= 0 {
		c.Hold = time.Second
	}
	if len(c.Steps) == 0 {
		c.Steps = DefaultCurveSteps()
	}
	if len(c.Steps) > maxCurveSteps {
		return fmt.Errorf("%d curve steps: at most %d", len(c.Steps), maxCurveSteps)
	}
	if c.StepDuration <= 0 {
		c.StepDuration = 5 * time.Second
	}
	if c.KneeP99 <= 0 {
		c.KneeP99 = 150 * time.Millisecond
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Procs > 1 && c.NewWorker == nil {
		return errors.New("Procs > 1 needs NewWorker")
	}
	return nil
}

// Run runs one scenario against one target. For "slow" it runs a baseline
// phase without slow subscribers first and returns it in Result.Baseline.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	if len(cfg.ServerCmd) > 0 {
		p, err := startServer(ctx, cfg.ServerCmd, serverAddrs(&cfg), &cfg)
		if err != nil {
			return nil, err
		}
		defer p.stop()
		cfg.ServerPID = p.pid()
		sleepCtx(ctx, 200*time.Millisecond) // let it settle before the "before" sample
		if p.exited() {
			// its /proc figures would be zeros and whoever answers on
			// the address would be measured in its place
			return nil, fmt.Errorf("server %q exited right after starting: %s (-v shows its output)", cfg.ServerCmd[0], p.cmd.ProcessState)
		}
	}
	if cfg.Scenario == "inbox" {
		// one subscriber per topic: a fanout over Conns topics (inbox.go)
		cfg.Topics = cfg.Conns
		r, err := runOnce(ctx, cfg, "fanout")
		if r != nil {
			r.Scenario = "inbox"
		}
		return r, err
	}
	if cfg.Scenario != "slow" {
		return runOnce(ctx, cfg, cfg.Scenario)
	}
	base := cfg
	base.Slow = 0
	b, err := runOnce(ctx, base, "fanout")
	if err != nil {
		return nil, fmt.Errorf("slow, baseline phase: %w", err)
	}
	r, err := runOnce(ctx, cfg, "fanout")
	if err != nil {
		return nil, fmt.Errorf("slow, slow phase: %w", err)
	}
	r.Scenario = "slow"
	r.Baseline = b
	// one timeline for both phases
	off := r.Started.Sub(b.Started).Seconds()
	tl := append([]Sample(nil), b.Timeline...)
	for _, s := range r.Timeline {
		s.T += off
		tl = append(tl, s)
	}
	r.Timeline = tl
	return r, nil
}

func runID() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// runOnce runs one phase; kind is the worker scenario.
func runOnce(ctx context.Context, cfg Config, kind string) (*Result, error) {
	hard := cfg.Duration + cfg.Drain + cfg.HandshakeTimeout + 15*time.Second
	if kind == "curve" {
		// each step publishes for StepDuration, sends until Drain after it, drains at most Drain
		hard += time.Duration(len(cfg.Steps)) * (cfg.StepDuration + 2*cfg.Drain + time.Second)
	}
	ctx, cancel := context.WithTimeout(ctx, hard)
	defer cancel()
	start := time.Now()
	until := start.Add(cfg.Duration)
	id := runID()
	var topics []string
	if kind != "connect" {
		for i := 0; i < cfg.Topics; i++ {
			topics = append(topics, "b"+id+"-"+strconv.Itoa(i))
		}
	}
	obs := &observer{pid: cfg.ServerPID, admin: cfg.Admin, client: newHTTPClient(2)}
	res := &Result{Scenario: kind, Label: cfg.Label, URLs: cfg.URLs, Started: start, Conns: cfg.Conns,
		Topics: len(topics), Messages: cfg.Messages, Size: cfg.Size, SlowFraction: cfg.Slow, Procs: max(1, cfg.Procs),
		Batch: cfg.Batch, PubRate: cfg.PubRate}
	obs.warm(ctx)
	srv := &ServerStats{Before: obs.sample(ctx)}

	// workers
	n := max(1, cfg.Procs)
	workers := make([]Worker, 0, n)
	defer func() {
		for _, w := range workers {
			w.Close()
		}
	}()
	for i := 0; i < n; i++ {
		var w Worker
		if n == 1 {
			w = NewAgent()
		} else {
			var err error
			if w, err = cfg.NewWorker(); err != nil {
				return nil, fmt.Errorf("worker %d: %w", i, err)
			}
		}
		workers = append(workers, w)
	}
	off := 0
	for i, w := range workers {
		share := cfg.Conns / n
		if i < cfg.Conns%n {
			share++
		}
		spec := WorkerSpec{Scenario: kind, URLs: cfg.URLs, Src: cfg.Src, Conns: share, Offset: off,
			Rate: cfg.Rate / float64(n), Topics: topics, Slow: cfg.Slow, SlowRcvBuf: cfg.SlowRcvBuf,
			Loops: cfg.Loops, HandshakeTimeout: cfg.HandshakeTimeout, Until: until, Insecure: cfg.Insecure}
		off += share
		if kind == "churn" {
			spec.Offset = i * 1_000_000_000 / n // distinct topic and source spread per worker
			spec.Topics = topics
		}
		if kind == "curve" {
			spec.Scenario = "curve"
		}
		if err := w.Start(spec); err != nil {
			return nil, fmt.Errorf("start worker %d: %w", i, err)
		}
	}

	// monitor: timeline and progress
	var phaseMu sync.Mutex
	phase, total := "ramp", int64(cfg.Conns)
	if kind == "churn" {
		phase, total = "churn", int64(cfg.Duration/time.Millisecond)
	}
	setPhase := func(p string, t int64) { phaseMu.Lock(); phase, total = p, t; phaseMu.Unlock() }
	var pub *publisher
	var pubMu sync.Mutex
	monDone := make(chan struct{})
	monStop := make(chan struct{})
	go func() {
		defer close(monDone)
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		var prev Sample
		for {
			var p Progress
			for _, w := range workers {
				q := w.Progress()
				p.Opened += q.Opened
				p.Failed += q.Failed
				p.Open += q.Open
				p.Deliveries += q.Deliveries
				p.Cycles += q.Cycles
			}
			s := Sample{T: time.Since(start).Seconds(), Open: p.Open, Deliveries: p.Deliveries, Cycles: p.Cycles}
			pubMu.Lock()
			if pub != nil {
				s.Published = pub.sent.Load()
			}
			pubMu.Unlock()
			if cfg.ServerPID > 0 {
				o := observer{pid: cfg.ServerPID}
				ss := o.sample(ctx)
				s.RSS, s.CPUSeconds = ss.RSS, ss.CPUSeconds
			}
			if len(res.Timeline) > 0 {
				dt := s.T - prev.T
				if dt > 0 {
					s.DeliveriesPerSec = float64(s.Deliveries-prev.Deliveries) / dt
					s.CyclesPerSec = float64(s.Cycles-prev.Cycles) / dt
					if s.CPUSeconds > 0 {
						s.ServerCPU = (s.CPUSeconds - prev.CPUSeconds) / dt
					}
				}
			}
			res.Timeline = append(res.Timeline, s)
			prev = s
			if cfg.OnProgress != nil {
				phaseMu.Lock()
				st := Status{Label: cfg.Label, Phase: phase, Total: total, Elapsed: time.Since(start),
					Open: p.Open, Failed: p.Failed, Delivers: p.Deliveries}
				phaseMu.Unlock()
				switch st.Phase {
				case "ramp":
					st.Done = p.Opened + p.Failed
				case "publish":
					st.Done = s.Published
				case "drain":
					st.Done = p.Deliveries
				default:
					st.Done = int64(time.Since(start) / time.Millisecond)
				}
				cfg.OnProgress(st)
			}
			select {
			case <-monStop:
				return
			case <-tick.C:
			}
		}
	}()
	stopMonitor := func() {
		select {
		case <-monStop:
		default:
			close(monStop)
		}
		<-monDone
	}
	defer stopMonitor()

	for _, w := range workers {
		select {
		case <-w.Ready():
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for the ramp: %w", ctx.Err())
		}
	}
	rampEnd := time.Now()
	srv.Ramp = obs.sample(ctx)

	fs := FinishSpec{}
	var tally pubTally
	var pubStart, pubEnd time.Time
	var curve *Curve
	switch kind {
	case "connect":
		setPhase("hold", int64(cfg.Hold/time.Millisecond))
		sleepCtx(ctx, min(cfg.Hold, max(0, time.Until(until))+time.Second))
		srv.Ramp = obs.sample(ctx)
	case "fanout":
		p := &publisher{admin: cfg.Admin, topics: topics, total: cfg.Messages * len(topics), size: cfg.Size,
			rate: cfg.PubRate, workers: cfg.Publishers, batch: cfg.Batch, until: until, client: newHTTPClient(cfg.Publishers)}
		pubMu.Lock()
		pub = p
		pubMu.Unlock()
		setPhase("publish", int64(p.total))
		srv.PubStart = obs.sample(ctx)
		pubStart = time.Now()
		tally = p.run(ctx)
		pubEnd = time.Now()
		fs.Ranges = tally.ranges
		fs.Drain = cfg.Drain
		fs.SlowDrain = 2 * time.Second
		var exp int64
		for i := 0; i < cfg.Conns; i++ {
			if !isSlow(i, cfg.Slow) {
				exp += rangeLen(tally.ranges[topics[i%len(topics)]])
			}
		}
		setPhase("drain", exp)
	case "curve":
		var open int64
		for _, w := range workers {
			open += w.Progress().Open
		}
		cr := &curveRun{cfg: &cfg, topics: topics, workers: workers, pid: cfg.ServerPID, subs: int(open), onPhase: setPhase}
		srv.PubStart = obs.sample(ctx)
		curve = &Curve{Subscribers: int(open), KneeP99: float64(cfg.KneeP99) / float64(time.Millisecond), Steps: cr.run(ctx)}
	case "churn":
		setPhase("settle", 1000)
		sleepCtx(ctx, time.Second)
	}
	results := make([]*WorkerResult, len(workers))
	errs := make([]error, len(workers))
	var wg sync.WaitGroup
	for i, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = w.Finish(ctx, fs)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("finish: %w", err)
	}
	srv.End = obs.sample(ctx)
	stopMonitor()
	res.Elapsed = time.Since(start).Seconds()

	// merge
	var hs, lat, cyc Hist
	for _, r := range results {
		res.Dialed += r.Dialed
		res.Connected += r.Opened
		res.ConnectErrors = addCounts(res.ConnectErrors, r.ConnectErrors)
		res.Closes = addCounts(res.Closes, r.Closes)
		res.SlowCloses = addCounts(res.SlowCloses, r.SlowCloses)
		res.CycleErrors = addCounts(res.CycleErrors, r.CycleErrors)
		mergeHist(&hs.H, r.Handshake.H)
		mergeHist(&lat.H, r.Latency.H)
		mergeHist(&cyc.H, r.Cycle.H)
		res.Deliveries += r.Deliveries
		res.Expected += r.Expected
		res.Lost += r.Lost
		res.OutOfOrder += r.OutOfOrder
		res.Foreign += r.Foreign
		res.SlowConns += r.SlowConns
		res.SlowDropped += r.SlowDropped
		res.Cycles += r.Cycles
		res.firstDial = minNZ(res.firstDial, r.FirstDial)
		res.lastOpen = max(res.lastOpen, r.LastOpen)
		res.lastDelivery = max(res.lastDelivery, r.LastDelivery)
	}
	res.Handshake = summarize(hs.H)
	res.Latency = summarize(lat.H)
	res.Cycle = summarize(cyc.H)
	if kind == "churn" {
		res.Connected = 0
		res.CyclesPerSec = float64(res.Cycles) / max(rampEnd.Sub(start).Seconds(), 1e-9)
	} else if res.lastOpen > res.firstDial && res.Connected > 0 {
		res.RampSeconds = float64(res.lastOpen-res.firstDial) / 1e9
		res.HandshakesPerSec = float64(res.Connected) / res.RampSeconds
	}
	if kind == "fanout" {
		res.Published = tally.ok
		res.PublishErrors = tally.errs
		res.ServerQueued = tally.queued
		res.Publish = summarize(tally.lat)
		if d := pubEnd.Sub(pubStart).Seconds(); d > 0 {
			res.PublishPerSec = float64(tally.ok) / d
		}
		if res.lastDelivery > pubStart.UnixNano() {
			res.DeliverySeconds = float64(res.lastDelivery-pubStart.UnixNano()) / 1e9
			res.DeliveriesPerSec = float64(res.Deliveries) / res.DeliverySeconds
		}
	}
	if curve != nil {
		finishCurve(curve, nil, results)
		res.Curve = curve
		for _, s := range curve.Steps {
			res.Published += s.Published
			res.PublishErrors = addCounts(res.PublishErrors, s.PublishErrors)
		}
	}
	srv.derive(res, kind)
	if cfg.ServerPID > 0 || cfg.Admin != "" {
		res.Server = srv
	}
	return res, nil
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
