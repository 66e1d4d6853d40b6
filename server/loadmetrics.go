package server

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// pushLatencyBuckets span a push's time inside the server: tens of
// microseconds on an idle node, milliseconds under a burst, the alert's
// 100 ms (deploy/prometheus/alerts.yml) and beyond.
var pushLatencyBuckets = []float64{
	.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5,
}

// registerLoad registers the load metrics (v1.1): per loop, the connections
// it owns and the tasks waiting for it; and the push latency histogram, fed
// by the Hub once per message (pubsub/latency.go). It is called from
// newMetrics, before the loops accept: no message is in flight when the Hub
// is told to measure.
func (m *metrics) registerLoad(s *Server) {
	m.pushLatency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "wspush_push_latency_seconds",
		Help:    "Time from a message being sequenced to the writev of the last loop with subscribers of it, one observation per message.",
		Buckets: pushLatencyBuckets,
	})
	latency := m.pushLatency
	m.reg.MustRegister(latency)
	s.hub.SetPushLatency(func(d time.Duration) { latency.Observe(d.Seconds()) })
	for _, l := range s.group.Loops() {
		labels := prometheus.Labels{"loop": strconv.Itoa(l.ID())}
		m.reg.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "wspush_loop_connections", Help: "TCP connections the loop owns, upgraded or not.",
				ConstLabels: labels,
			}, func() float64 { return float64(l.Stats.Conns.Load()) }),
		) // wspush_loop_tasks_pending is registered with the task bound (limits.go)
	}
}
