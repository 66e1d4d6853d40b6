package server

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wspush/wspush/pubsub"
)

// registerHistory adds the collectors of the topic history and of recovery
// (v1.1, issue 11). The gauges and eviction counters are the store's,
// read at scrape time; nothing is counted per push.
func (m *metrics) registerHistory(s *Server) {
	recoveries := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wspush_recoveries_total",
		Help: `Topics resubscribed with "since", by outcome: recovered (every missed push replayed) or unrecovered (live pushes only).`,
	}, []string{"result"})
	m.recovered = recoveries.WithLabelValues("recovered")
	m.unrecovered = recoveries.WithLabelValues("unrecovered")
	m.replayed = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "wspush_messages_replayed_total", Help: "Pushes queued from the history by recoveries.",
	})
	hist := func() pubsub.HistoryStats { return s.hub.HistoryStats() }
	evictions := []struct {
		cause string
		index int
	}{{"size", pubsub.EvictedSize}, {"ttl", pubsub.EvictedTTL}, {"bytes", pubsub.EvictedBytes}}
	m.reg.MustRegister(recoveries, m.replayed,
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "wspush_publishes_unkept_total",
			Help: "Publishes to a topic without subscribers not kept (seq 0, no history) because -max-topics topics existed.",
		}, func() float64 { return float64(s.hub.Stats().Unkept) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "wspush_history_messages", Help: "Messages held in the topics' history.",
		}, func() float64 { return float64(hist().Messages) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "wspush_history_bytes", Help: "Bytes the history holds, as counted against -history-max-bytes (frame + 96 per message).",
		}, func() float64 { return float64(hist().Bytes) }),
	)
	for _, e := range evictions {
		m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "wspush_history_evictions_total",
			Help:        "Messages dropped from the history, by cause: size (-history-size), ttl (-history-ttl), bytes (-history-max-bytes).",
			ConstLabels: prometheus.Labels{"cause": e.cause},
		}, func() float64 { return float64(hist().Evicted[e.index]) }))
	}
}

// recovery counts one resubscribe from a position.
func (m *metrics) recovery(recovered bool) {
	if recovered {
		m.recovered.Inc()
	} else {
		m.unrecovered.Inc()
	}
}
