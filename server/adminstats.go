package server

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/wspush/wspush/pubsub"
)

// adminStats is the answer of GET /admin/stats (v1.1): a snapshot of the
// node for the admin page, which polls it and draws rates from the counters'
// differences. Counters are totals since the process started, named as
// their Prometheus metrics are.
type adminStats struct {
	Time          time.Time      `json:"time"`
	Uptime        float64        `json:"uptime_seconds"`
	Status        string         `json:"status"` // ok, degraded (cluster broker down) or shutting_down, as /healthz
	Connections   int64          `json:"connections"`
	Topics        int            `json:"topics"`
	Subscriptions int64          `json:"subscriptions"`
	Published     uint64         `json:"published_total"`
	Delivered     uint64         `json:"delivered_total"`
	SlowDropped   uint64         `json:"slow_consumers_dropped_total"`
	PushLatency   latencyBuckets `json:"push_latency"`
	Loops         []loopLoad     `json:"loops"`
	Broker        brokerState    `json:"broker"`
	TopTopics     topTopicsState `json:"top_topics"`
}

// latencyBuckets is the push latency histogram (wspush_push_latency_seconds)
// as counts since the start: Counts[i] messages took at most Le[i] seconds,
// Count took any time. A reader takes quantiles over an interval from the
// differences of two snapshots.
type latencyBuckets struct {
	Le     []float64 `json:"le"`
	Counts []uint64  `json:"counts"`
	Count  uint64    `json:"count"`
	Sum    float64   `json:"sum_seconds"`
}

// readLatency copies the histogram's buckets.
func readLatency(h interface{ Write(*dto.Metric) error }) latencyBuckets {
	var m dto.Metric
	if h.Write(&m) != nil {
		return latencyBuckets{}
	}
	hg := m.GetHistogram()
	lb := latencyBuckets{Count: hg.GetSampleCount(), Sum: hg.GetSampleSum()}
	for _, b := range hg.GetBucket() {
		lb.Le = append(lb.Le, b.GetUpperBound())
		lb.Counts = append(lb.Counts, b.GetCumulativeCount())
	}
	return lb
}

// loopLoad is one event loop's share of the work.
type loopLoad struct {
	Loop         int    `json:"loop"`
	Connections  int64  `json:"connections"` // TCP connections it owns, upgraded or not
	Wakeups      uint64 `json:"wakeups_total"`
	Events       uint64 `json:"events_total"`
	TasksPending int    `json:"tasks_pending"`
}

// brokerState is where publishes go: "local" (this node's Hub) or "nats"
// (the cluster broker, with its connection's state).
type brokerState struct {
	Mode            string `json:"mode"`
	Connected       *bool  `json:"connected,omitempty"` // nats only: connected to the NATS server
	Error           string `json:"error,omitempty"`     // why the cluster broker is degraded
	Published       uint64 `json:"published_total"`
	Reconnects      uint64 `json:"reconnects_total"`
	PublishFailures uint64 `json:"publish_failures_total"`
}

// topTopicsState is the topics with the most subscribers on this node, as
// of At. The walk of the topic table holds the Hub's lock (publishes and
// subscribes wait), so it is made at most every topTopicsEvery, or 200 times
// as long as the last walk took if that is longer (the lock held at most
// 0.5% of the time), whatever the number of pages polling; and it looks at
// no more than topTopicsMaxWalk topics (Walked < Of: the best of a sample).
type topTopicsState struct {
	At     time.Time           `json:"at"`
	Topics []pubsub.TopicCount `json:"topics"`
	Walked int                 `json:"walked"`
	Of     int                 `json:"of"`
}

const (
	topTopicsEvery   = 2 * time.Second
	topTopicsMax     = 100     // the most ?top= may ask for
	topTopicsDefault = 10      // without ?top=
	topTopicsMaxWalk = 100_000 // 2 ms of the Hub's lock (BenchmarkTopTopics100k; 5-17 ms on a loaded machine)
)

// adminStatsHandler serves GET /admin/stats?top=N; startAdmin puts it
// behind the admin token (adminAuth).
func (s *Server) adminStatsHandler() http.Handler {
	start := time.Now()
	var (
		mu   sync.Mutex // guards top and next: one walk at a time, shared by the requests that wait for it
		top  topTopicsState
		next time.Time // when the next walk may be made
	)
	topTopics := func(n int) topTopicsState {
		mu.Lock()
		defer mu.Unlock()
		if now := time.Now(); !now.Before(next) {
			list, walked, of := s.hub.TopTopics(topTopicsMax, topTopicsMaxWalk)
			took := time.Since(now)
			top = topTopicsState{At: now.UTC(), Topics: list, Walked: walked, Of: of}
			next = now.Add(max(topTopicsEvery, 200*took))
		}
		t := top
		t.Topics = t.Topics[:min(n, len(t.Topics))]
		return t
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeJSONError(w, http.StatusMethodNotAllowed, "use GET")
			return
		}
		n := topTopicsDefault
		if q := r.URL.Query().Get("top"); q != "" {
			v, err := strconv.Atoi(q)
			if err != nil || v < 0 || v > topTopicsMax {
				writeJSONError(w, http.StatusBadRequest, "top must be a number from 0 to "+strconv.Itoa(topTopicsMax))
				return
			}
			n = v
		}
		st := s.adminSnapshot(start)
		st.TopTopics = topTopics(n)
		w.Header().Set("Cache-Control", "no-store")
		writeJSON(w, http.StatusOK, st)
	})
}

// adminSnapshot reads the counters; no loop is asked to run anything.
func (s *Server) adminSnapshot(start time.Time) adminStats {
	hs := s.hub.Stats()
	st := adminStats{
		Time:          time.Now().UTC(),
		Uptime:        time.Since(start).Seconds(),
		Status:        "ok",
		Connections:   s.open.Load(),
		Topics:        hs.Topics,
		Subscriptions: hs.Subscriptions,
		Published:     hs.Published,
		Delivered:     hs.Delivered,
		SlowDropped:   counterValue(s.metrics.slowDropped),
		PushLatency:   readLatency(s.metrics.pushLatency),
		Broker:        brokerState{Mode: "local"},
	}
	for _, l := range s.group.Loops() {
		st.Loops = append(st.Loops, loopLoad{
			Loop:         l.ID(),
			Connections:  l.Stats.Conns.Load(),
			Wakeups:      l.Stats.Wakeups.Load(),
			Events:       l.Stats.Events.Load(),
			TasksPending: l.TasksPending(),
		})
	}
	if s.nats != nil {
		ns := s.nats.Stats()
		st.Published += ns.Published
		st.Broker = brokerState{Mode: "nats", Connected: &ns.Connected, Published: ns.Published,
			Reconnects: ns.Reconnects, PublishFailures: ns.PublishFailures}
		if err := s.nats.Healthy(); err != nil {
			st.Status, st.Broker.Error = "degraded", err.Error()
		}
	}
	if s.shuttingDown.Load() {
		st.Status = "shutting_down"
	}
	return st
}

// counterValue reads a Prometheus counter the server increments.
func counterValue(c interface{ Write(*dto.Metric) error }) uint64 {
	var m dto.Metric
	if c.Write(&m) != nil {
		return 0
	}
	return uint64(m.GetCounter().GetValue())
}
