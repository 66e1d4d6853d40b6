package server

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// clusterCollectors are the metrics of the cluster broker's state and of
// retried publishes (docs/cluster.md): the broker's only with -broker, the
// Idempotency-Key cache's only without.
func clusterCollectors(s *Server) []prometheus.Collector {
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	counter := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f)
	}
	const duplicatesHelp = "POST /publish with an Idempotency-Key already published within -idempotency-window: answered with the first seq, not published again."
	if s.nats == nil {
		return []prometheus.Collector{
			counter("wspush_publish_duplicates_total", duplicatesHelp, func() float64 { return float64(s.recent.duplicates.Load()) }),
			gauge("wspush_idempotency_keys", "Idempotency-Keys remembered by this node (at most -idempotency-keys).", func() float64 { return float64(s.recent.len()) }),
		}
	}
	return []prometheus.Collector{
		gauge("wspush_broker_up", "1 while connected to the cluster broker with its stream ready (publishes accepted), else 0.", func() float64 {
			if s.nats.Stats().Up {
				return 1
			}
			return 0
		}),
		gauge("wspush_broker_ingest_bytes", "Bytes of cluster messages the event loops hold now (at most -broker-ingest-bytes).", func() float64 {
			return float64(s.hub.IngestBytes())
		}),
		counter("wspush_broker_dropped_total", "Cluster messages for this node dropped by the NATS client because the ingest buffer was full (the event loops were behind).", func() float64 {
			return float64(s.nats.Stats().Dropped)
		}),
		counter("wspush_publish_duplicates_total", duplicatesHelp, func() float64 { return float64(s.nats.Stats().Duplicates) }),
		gauge("wspush_recovery_reads_queued", "(v1.1) Cluster recoveries' stream reads waiting for a recovery worker (-recovery-workers); at -recovery-queue a resume is answered recovered:false.", func() float64 {
			return float64(len(s.recoveries))
		}),
		counter("wspush_recovery_reads_skipped_total", "(v1.1) Cluster recoveries' stream reads skipped by the workers because their connection had closed (or the topic was unsubscribed) while they waited.", func() float64 {
			return float64(s.recoverySkips.Load())
		}),
		counter("wspush_recovery_reads_shared_total", fmt.Sprintf("(v1.1) Cluster recoveries' stream reads answered by another's request for the same topic and position (in flight, or done within %v): no NATS round trip of their own.", readShareTTL), func() float64 {
			return float64(s.recoveryShares.Load())
		}),
		counter("wspush_broker_gaps_total", "(v1.1) Times messages of a topic did not reach this node (an outage, a dropped message, a replaced stream): its subscribers here were closed with 4003 to resubscribe from their position.", func() float64 {
			return float64(s.hub.Stats().Gaps)
		}),
	}
}
