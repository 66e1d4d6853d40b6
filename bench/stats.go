package bench

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"sync/atomic"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Latencies are recorded in microseconds, 1 µs to 5 minutes, 3 significant digits.
const histMax = int64(300e6)

func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(1, histMax, 3) }

func recordUS(h *hdrhistogram.Histogram, ns int64) {
	us := ns / 1000
	if us < 1 {
		us = 1
	}
	if us > histMax {
		us = histMax
	}
	_ = h.RecordValue(us)
}

// Hist is a histogram that travels as JSON (compressed HdrHistogram V2
// encoding) so worker processes can hand theirs to the parent.
type Hist struct{ H *hdrhistogram.Histogram }

func (h Hist) MarshalJSON() ([]byte, error) {
	if h.H == nil {
		return []byte("null"), nil
	}
	b, err := h.H.Encode(hdrhistogram.V2CompressedEncodingCookieBase)
	if err != nil {
		return nil, fmt.Errorf("encode histogram: %w", err)
	}
	return json.Marshal(string(b))
}

func (h *Hist) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		h.H = nil
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	hh, err := hdrhistogram.Decode([]byte(s))
	if err != nil {
		return fmt.Errorf("decode histogram: %w", err)
	}
	h.H = hh
	return nil
}

func mergeHist(dst **hdrhistogram.Histogram, src *hdrhistogram.Histogram) {
	if src == nil {
		return
	}
	if *dst == nil {
		*dst = newHist()
	}
	(*dst).Merge(src)
}

// Latency is a summary of a latency histogram, in milliseconds.
type Latency struct {
	Count int64   `json:"count"`
	Mean  float64 `json:"mean_ms"`
	Min   float64 `json:"min_ms"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p999_ms"`
	Max   float64 `json:"max_ms"`
	// Curve is the percentile curve (percentile, ms) for plots.
	Curve [][2]float64 `json:"curve,omitempty"`
}

func summarize(h *hdrhistogram.Histogram) *Latency {
	if h == nil || h.TotalCount() == 0 {
		return nil
	}
	ms := func(v int64) float64 { return float64(v) / 1000 }
	l := &Latency{
		Count: h.TotalCount(), Mean: h.Mean() / 1000, Min: ms(h.Min()),
		P50: ms(h.ValueAtQuantile(50)), P90: ms(h.ValueAtQuantile(90)), P99: ms(h.ValueAtQuantile(99)),
		P999: ms(h.ValueAtQuantile(99.9)), Max: ms(h.Max()),
	}
	// Points evenly spaced on a log scale of 1/(1-p), up to 99.999 %.
	for i := 0; i <= 50; i++ {
		p := 100 * (1 - math.Pow(10, -float64(i)/10))
		v := h.ValueAtQuantile(p)
		if i == 0 {
			v = h.Min()
		}
		l.Curve = append(l.Curve, [2]float64{round(p, 4), ms(v)})
	}
	l.Curve = append(l.Curve, [2]float64{100, ms(h.Max())})
	return l
}

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}

// loopStats is what one client loop measured. The atomics are read by the
// progress monitor; everything else belongs to the loop goroutine until the
// loop has stopped.
type loopStats struct {
	opened, failed, open, deliveries atomic.Int64
	cycles                           atomic.Int64

	hs, lat, cycle *hdrhistogram.Histogram
	errs           map[string]int // connect failures by kind
	closes         map[string]int // open fast connections that ended, by kind
	slowCloses     map[string]int // open slow connections that ended, by kind
	cycleErrs      map[string]int // churn cycles that failed after the handshake
	foreign        int64          // pushes for a topic the connection did not ask for
	conns          []*Conn        // open(ed) connections, fanout and connect only
	steps          []*StepRecv    // curve: what arrived of each step's messages
	firstDial      int64
	lastOpen       int64
	firstDelivery  int64
	lastDelivery   int64
}

func newLoopStats() *loopStats {
	return &loopStats{hs: newHist(), lat: newHist(), cycle: newHist(), errs: map[string]int{}, closes: map[string]int{}, slowCloses: map[string]int{}, cycleErrs: map[string]int{}}
}

// step returns the statistics of curve step k (< maxCurveSteps).
func (s *loopStats) step(k int) *StepRecv {
	for len(s.steps) <= k {
		s.steps = append(s.steps, &StepRecv{Latency: Hist{H: newHist()}})
	}
	return s.steps[k]
}

func (s *loopStats) addErr(kind string, n int) { s.errs[kind] += n }

func addCounts(dst map[string]int, src map[string]int) map[string]int {
	if len(src) == 0 {
		return dst
	}
	if dst == nil {
		dst = map[string]int{}
	}
	for k, v := range src {
		dst[k] += v
	}
	return dst
}

func minNZ(a, b int64) int64 {
	if a == 0 || (b != 0 && b < a) {
		return b
	}
	return a
}

// median returns the median of v (0 for none).
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
