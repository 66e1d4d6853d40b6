package bench

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// The curve scenario: after the ramp, publish open-loop (openLoop) at each
// offered rate in turn, wait for the step's deliveries to arrive, and record
// per step the latency from each message's due time, what was delivered and
// what the server and the client spent. Subscribers tag nothing: the step
// index travels in the payload ("s"), so a late delivery is still charged to
// the step that offered it.

// Curve is the result of the curve scenario.
type Curve struct {
	Subscribers int         `json:"subscribers"`
	KneeP99     float64     `json:"knee_p99_ms"` // the p99 bound of a passing step
	Knee        float64     `json:"knee_per_s"`  // highest offered rate of the passing run from the lowest step; 0: none passed
	Steps       []CurveStep `json:"steps"`
}

// CurveStep is one offered rate.
type CurveStep struct {
	Offered         float64        `json:"offered_per_s"`  // deliveries per second offered
	MsgRate         float64        `json:"messages_per_s"` // publishes per second, all topics together
	Seconds         float64        `json:"seconds"`        // publishing window
	Scheduled       int            `json:"scheduled"`      // messages due in the window
	Published       int            `json:"published"`      // answered 200
	Unsent          int            `json:"unsent,omitempty"`
	PublishErrors   map[string]int `json:"publish_errors,omitempty"`
	OfferedDeliv    int64          `json:"offered_deliveries"`
	Delivered       int64          `json:"delivered"`
	Lost            int64          `json:"lost"`            // offered minus delivered: refused, unsent or never arrived
	DeliveredPerSec float64        `json:"delivered_per_s"` // deliveries that arrived during the window, per second
	Drained         bool           `json:"drained"`         // everything arrived within -drain after the last answer
	DrainSeconds    float64        `json:"drain_s"`
	Latency         *Latency       `json:"latency,omitempty"`     // from each message's due time
	SendLag         *Latency       `json:"send_lag,omitempty"`    // due time to the request being sent
	PublishRTT      *Latency       `json:"publish_rtt,omitempty"` // request to answer
	MaxBusy         int            `json:"max_busy_publishers"`
	ServerCPUPerM   float64        `json:"server_cpu_s_per_m_deliveries,omitempty"`
	ServerCores     float64        `json:"server_cpu_cores,omitempty"`
	ClientCores     float64        `json:"client_cpu_cores,omitempty"` // this process (workers not included)
	Pass            bool           `json:"pass"`
}

// maxCurveSteps bounds the per-step statistics a subscriber loop keeps.
const maxCurveSteps = 64

// StepRecv is what subscribers received of one step's messages.
type StepRecv struct {
	Deliveries int64 `json:"deliveries"`
	Latency    Hist  `json:"latency"`
}

// ParseRates parses "10k,25k,1M,2.5e5" into ascending rates.
func ParseRates(s string) ([]float64, error) {
	var out []float64
	for _, p := range SplitList(s) {
		mult := 1.0
		switch p[len(p)-1] {
		case 'k', 'K':
			mult, p = 1e3, p[:len(p)-1]
		case 'm', 'M':
			mult, p = 1e6, p[:len(p)-1]
		}
		v, err := strconv.ParseFloat(p, 64)
		if err != nil || v*mult <= 0 {
			return nil, fmt.Errorf("rate %q: not a number", p)
		}
		out = append(out, v*mult)
	}
	if len(out) > maxCurveSteps {
		return nil, fmt.Errorf("%d rates: at most %d", len(out), maxCurveSteps)
	}
	sort.Float64s(out)
	return out, nil
}

// DefaultCurveSteps are the offered rates of the curve, deliveries/s.
func DefaultCurveSteps() []float64 {
	return []float64{10e3, 25e3, 50e3, 100e3, 200e3, 300e3, 500e3, 1e6}
}

// curveRun runs the steps of one curve against the open subscribers.
type curveRun struct {
	cfg     *Config
	topics  []string
	workers []Worker
	pid     int
	subs    int // open subscribers after the ramp
	onPhase func(phase string, total int64)
}

func (cr *curveRun) deliveries() int64 {
	var n int64
	for _, w := range cr.workers {
		n += w.Progress().Deliveries
	}
	return n
}

// run returns the steps (receiving side not filled in yet).
func (cr *curveRun) run(ctx context.Context) []CurveStep {
	cfg := cr.cfg
	pub := &openLoop{admin: cfg.Admin, topics: cr.topics, size: cfg.Size, workers: cfg.Publishers,
		client: newHTTPClient(cfg.Publishers)}
	defer pub.client.CloseIdleConnections()
	pub.prepare()
	perMsg := float64(cr.subs) / float64(len(cr.topics)) // deliveries one publish offers
	srv := observer{pid: cr.pid}
	var steps []CurveStep
	overloaded := 0
	for k, rate := range cfg.Steps {
		if ctx.Err() != nil || perMsg <= 0 {
			break
		}
		st := CurveStep{Offered: rate, MsgRate: rate / perMsg}
		n := stepMessages(st.MsgRate, cfg.StepDuration)
		st.Seconds = float64(n) / st.MsgRate
		window := time.Duration(st.Seconds * float64(time.Second))
		cr.onPhase(fmt.Sprintf("step %d/%d", k+1, len(cfg.Steps)), int64(float64(n)*perMsg))
		s0, c0 := srv.sample(ctx), selfCPU()
		base := cr.deliveries()
		start := time.Now()
		done := make(chan stepTally, 1)
		go func() { done <- pub.run(ctx, k, start, st.MsgRate, window, start.Add(window+cfg.Drain)) }()
		sleepCtx(ctx, time.Until(start.Add(window)))
		inWindow := cr.deliveries() - base
		t := <-done
		st.Scheduled, st.Published, st.Unsent, st.MaxBusy = t.scheduled, t.ok, t.unsent, t.maxBusy
		if len(t.errs) > 0 {
			st.PublishErrors = t.errs
		}
		st.SendLag, st.PublishRTT = noCurve(summarize(t.lag)), noCurve(summarize(t.rtt))
		// Offered to every subscriber open after the ramp: one the server
		// dropped on the way still counts, its missing deliveries are lost.
		st.OfferedDeliv = int64(float64(t.scheduled)*perMsg + 0.5)
		st.DeliveredPerSec = float64(inWindow) / st.Seconds
		answered := time.Now()
		want := base + t.subs
		waitProgress(ctx, cfg.Drain, time.Second, cr.deliveries, want)
		st.Drained = cr.deliveries() >= want
		st.DrainSeconds = time.Since(answered).Seconds()
		s1, c1 := srv.sample(ctx), selfCPU()
		wall := time.Since(start).Seconds()
		if s1.CPUSeconds > 0 {
			st.ServerCores = (s1.CPUSeconds - s0.CPUSeconds) / wall
		}
		st.ClientCores = (c1 - c0) / wall
		if d := cr.deliveries() - base; d > 0 && s1.CPUSeconds > 0 {
			st.ServerCPUPerM = (s1.CPUSeconds - s0.CPUSeconds) / (float64(d) / 1e6)
		}
		steps = append(steps, st)
		// Overloaded: the backlog was still arriving, or deliveries went
		// missing (a server that drops slow consumers loses subscribers for
		// every later step too).
		if !st.Drained || cr.deliveries()-base < st.OfferedDeliv {
			overloaded++
			if cfg.StopAfter > 0 && overloaded >= cfg.StopAfter {
				break
			}
		}
		sleepCtx(ctx, 200*time.Millisecond) // a gap between steps on the timeline
	}
	return steps
}

// finishCurve fills in the receiving side of the steps and the knee.
func finishCurve(c *Curve, recv []StepRecv, results []*WorkerResult) {
	for _, r := range results {
		for k, s := range r.Steps {
			for len(recv) <= k {
				recv = append(recv, StepRecv{})
			}
			recv[k].Deliveries += s.Deliveries
			mergeHist(&recv[k].Latency.H, s.Latency.H)
		}
	}
	for k := range c.Steps {
		st := &c.Steps[k]
		if k < len(recv) {
			st.Delivered = recv[k].Deliveries
			st.Latency = noCurve(summarize(recv[k].Latency.H))
		}
		st.Lost = max(0, st.OfferedDeliv-st.Delivered)
		st.Pass = st.Lost == 0 && st.Latency != nil && st.Latency.P99 < c.KneeP99
	}
	c.Knee = knee(c.Steps)
}

// knee is the highest offered rate of the run of passing steps that starts
// at the lowest one; 0 when the lowest step fails.
func knee(steps []CurveStep) float64 {
	k := 0.0
	for _, s := range steps {
		if !s.Pass {
			break
		}
		k = s.Offered
	}
	return k
}

// SplitList splits a comma-separated flag value into its items, spaces
// trimmed and empty items dropped: wsbench's list flags (-url, -rates).
func SplitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func noCurve(l *Latency) *Latency {
	if l != nil {
		l.Curve = nil
	}
	return l
}

// selfCPU returns this process's user+system CPU seconds.
func selfCPU() float64 {
	var ru unix.Rusage
	if unix.Getrusage(unix.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return tvSeconds(ru.Utime) + tvSeconds(ru.Stime)
}

func tvSeconds(t unix.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }

// waitProgress polls get until it reaches want, stops moving for stall, or timeout passes.
func waitProgress(ctx context.Context, timeout, stall time.Duration, get func() int64, want int64) {
	deadline := time.Now().Add(timeout)
	last, lastMove := get(), time.Now()
	for time.Now().Before(deadline) && ctx.Err() == nil {
		v := get()
		if v >= want {
			return
		}
		if v != last {
			last, lastMove = v, time.Now()
		} else if time.Since(lastMove) > stall {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}
