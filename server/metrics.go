package server

import (
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/wspush/wspush/netpoll"
)

// metrics are the server's Prometheus collectors. Counters on the hot path
// live in the loops and the Hub as atomics and are read at scrape time.
type metrics struct {
	reg                *prometheus.Registry
	handshakes         prometheus.Counter
	handshakeFailures  *prometheus.CounterVec
	slowDropped        prometheus.Counter
	rateLimited        prometheus.Counter // commands refused by the rate limit (ratelimit.go)
	rateLimitCloses    prometheus.Counter // connections closed 1008 for it
	overBurst          prometheus.Counter // messages refused for costing more than the whole bucket
	controlRateLimited prometheus.Counter // pings and pongs over the rate (not answered)

	pushLatency prometheus.Histogram // (v1.1) loadmetrics.go

	// (v1.1) resubscribes from a position, and the pushes they replayed.
	recovered, unrecovered prometheus.Counter
	replayed               prometheus.Counter
	missedClosed           prometheus.Counter // (v1.1, cluster) connections closed with 4003 (clusterrecovery.go)
}

func newMetrics(s *Server) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		handshakes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wspush_handshakes_total", Help: "Successful WebSocket upgrades.",
		}),
		handshakeFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wspush_handshake_failures_total", Help: "Failed or refused handshakes and plain HTTP errors, by reason.",
		}, []string{"reason"}),
		slowDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wspush_slow_consumers_dropped_total", Help: "Connections dropped for holding more than -max-buffered bytes.",
		}),
		rateLimited: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wspush_commands_rate_limited_total", Help: "Commands refused (answered \"rate limited\") for exceeding -command-rate / -command-burst.",
		}),
		rateLimitCloses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wspush_rate_limit_closes_total", Help: "Connections closed with 1008 for staying over -command-rate.",
		}),
		overBurst: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wspush_commands_over_burst_total", Help: "Messages refused for costing more tokens (topics, -command-bytes) than -command-burst holds.",
		}),
		controlRateLimited: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wspush_control_frames_rate_limited_total", Help: "Pings and pongs over -command-rate (a ping so refused is not answered).",
		}),
	}
	for _, r := range handshakeFailureReasons {
		m.handshakeFailures.WithLabelValues(string(r))
	}
	m.registerHistory(s)
	s.limits = newLimitMetrics(s, m.reg)
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	counter := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f)
	}
	sumLoops := func(f func(l *netpoll.Loop) uint64) func() float64 {
		return func() float64 {
			var n uint64
			for _, l := range s.group.Loops() {
				n += f(l)
			}
			return float64(n)
		}
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.handshakes, m.handshakeFailures, m.slowDropped, m.rateLimited, m.rateLimitCloses, m.overBurst, m.controlRateLimited, s.auth.refusals,
		gauge("wspush_peer_addresses", "Peer addresses with at least one open TCP connection (-max-conns-per-ip counts per address).",
			func() float64 { return float64(s.peers.addresses()) }),
		gauge("wspush_connections", "Open WebSocket connections.", func() float64 { return float64(s.open.Load()) }),
		gauge("wspush_topics", "Topics known: with a subscriber, or (single node) kept for -history-ttl after their last subscriber or publish.", func() float64 { return float64(s.hub.Stats().Topics) }),
		gauge("wspush_subscriptions", "Subscriptions: (connection, topic) pairs.", func() float64 { return float64(s.hub.Stats().Subscriptions) }),
		counter("wspush_messages_published_total", "Messages published.", func() float64 {
			n := s.hub.Stats().Published
			if s.nats != nil {
				n += s.nats.Stats().Published
			}
			return float64(n)
		}),
		counter("wspush_messages_delivered_total", "Pushes queued to connections.", func() float64 { return float64(s.hub.Stats().Delivered) }),
		counter("wspush_bytes_written_total", "Bytes the kernel accepted from the loops.", sumLoops(func(l *netpoll.Loop) uint64 { return l.Stats.BytesWritten.Load() })),
		counter("wspush_accept_errors_total", "accept4 failures (EMFILE...).", sumLoops(func(l *netpoll.Loop) uint64 { return l.Stats.AcceptErrors.Load() })),
		bufferedCollector{s},
	)
	if s.nats != nil {
		m.reg.MustRegister(
			gauge("wspush_broker_connected", "1 while connected to the cluster broker (NATS), else 0.", func() float64 {
				if s.nats.Stats().Connected {
					return 1
				}
				return 0
			}),
			counter("wspush_broker_reconnects_total", "Reconnections to the cluster broker.", func() float64 { return float64(s.nats.Stats().Reconnects) }),
			counter("wspush_broker_publish_failures_total", "Publishes the cluster broker did not accept (answered 503).", func() float64 { return float64(s.nats.Stats().PublishFailures) }),
		)
	}
	m.registerLoad(s)
	m.reg.MustRegister(clusterCollectors(s)...)
	m.missedClosed = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "wspush_missed_closes_total",
		Help: "(v1.1, cluster) Connections closed with 4003 because pushes of one of their topics never reached this node: their clients resubscribe from their positions.",
	})
	if s.nats != nil {
		m.reg.MustRegister(m.missedClosed)
	}
	for _, l := range s.group.Loops() {
		id := strconv.Itoa(l.ID())
		m.reg.MustRegister(
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "wspush_loop_wakeups_total", Help: "Event-loop wake-ups by tasks from other goroutines.",
				ConstLabels: prometheus.Labels{"loop": id},
			}, func() float64 { return float64(l.Stats.Wakeups.Load()) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "wspush_loop_events_total", Help: "Epoll events handled by the loop.",
				ConstLabels: prometheus.Labels{"loop": id},
			}, func() float64 { return float64(l.Stats.Events.Load()) }),
		)
	}
	return m
}

func (m *metrics) handshakeFailed(reason failureReason) {
	m.handshakeFailures.WithLabelValues(string(reason)).Inc()
}

// bufferedCollector reports the distribution of bufferedAmount over the open
// connections at scrape time. Sampling at scrape time keeps the delivery path
// free of histogram updates.
type bufferedCollector struct{ s *Server }

var bufferedDesc = prometheus.NewDesc("wspush_buffered_amount_bytes",
	"bufferedAmount (bytes queued, not yet taken by the kernel) of the open connections, sampled at scrape time, at most once per 5 s.", nil, nil)

var bufferedBuckets = []float64{0, 1 << 10, 4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20, 4 << 20}

func (b bufferedCollector) Describe(ch chan<- *prometheus.Desc) { ch <- bufferedDesc }

func (b bufferedCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- b.s.buffered.histogram(b.s.scanBuffered)
}

// scanBuffered walks every loop's connections for the bufferedAmount
// histogram: one task per loop, each costing a pass over its connections.
func (s *Server) scanBuffered() prometheus.Metric {
	loops := s.group.Loops()
	counts := make([][]uint64, len(loops))
	sums := make([]float64, len(counts))
	conns := make([]int, len(counts))
	s.group.Each(func(l *netpoll.Loop) {
		c := make([]uint64, len(bufferedBuckets))
		for _, conn := range l.Conns() {
			v := float64(conn.Buffered())
			sums[l.ID()] += v
			for i, ub := range bufferedBuckets {
				if v <= ub {
					c[i]++
				}
			}
		}
		counts[l.ID()] = c
		conns[l.ID()] = len(l.Conns())
	})
	var total uint64
	var sum float64
	cum := make(map[float64]uint64, len(bufferedBuckets))
	for i, c := range counts {
		sum += sums[i]
		total += uint64(conns[i])
		for j, ub := range bufferedBuckets {
			cum[ub] += c[j]
		}
	}
	return prometheus.MustNewConstHistogram(bufferedDesc, total, sum, cum)
}

// bufferedScanEvery is how old a bufferedAmount histogram may be before a
// scrape walks the connections again: however often /metrics is fetched, the
// loops walk their connections at most once per period.
const bufferedScanEvery = 5 * time.Second

// bufferedScan is the last bufferedAmount histogram and when it was taken,
// shared by all scrapes.
type bufferedScan struct {
	mu   sync.Mutex // held across a scan: concurrent scrapes wait for one walk
	at   time.Time
	last prometheus.Metric
}

// histogram returns the last histogram, taking a new one with scan when it
// is older than bufferedScanEvery.
func (b *bufferedScan) histogram(scan func() prometheus.Metric) prometheus.Metric {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.last == nil || time.Since(b.at) >= bufferedScanEvery {
		b.last, b.at = scan(), time.Now()
	}
	return b.last
}
