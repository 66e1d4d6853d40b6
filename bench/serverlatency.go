package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// pushLatencyMetric is the server's push latency histogram: from a message
// being sequenced to the writev of the last loop with subscribers of it, one
// observation per message (docs/protocol.md, metrics).
const pushLatencyMetric = "wspush_push_latency_seconds"

// latencyBucket is one cumulative bucket of a Prometheus histogram.
type latencyBucket struct {
	le    float64 // seconds; +Inf for the last
	count float64
}

// ServerLatency is the server's own view of the pushes of a run: the
// difference of its push latency histogram between the start and the end.
// With the probe's topic the only one published to, it is the server's side
// of the subscriber's latency: what the client measures on top of it was
// spent in the publisher's HTTP round trip, the kernel or the client process.
// Quantiles are bucket upper bounds (the histogram has no finer resolution);
// -1 past the last finite bucket (2.5 s).
type ServerLatency struct {
	Count    float64 `json:"count"`
	P50LeMs  float64 `json:"p50_le_ms"`
	P99LeMs  float64 `json:"p99_le_ms"`
	Over10ms float64 `json:"over_10ms"`
	Over50ms float64 `json:"over_50ms"`
}

// pushLatency reads the push latency histogram's cumulative buckets from
// /metrics.
func (o *observer) pushLatency(ctx context.Context) (buckets []latencyBucket, err error) {
	err = o.scrape(ctx, func(r io.Reader) error {
		buckets, err = parseLatencyBuckets(r)
		return err
	})
	return buckets, err
}

// parseLatencyBuckets picks the lines `wspush_push_latency_seconds_bucket{le="X"} N`
// out of a text exposition, in their order (ascending le).
func parseLatencyBuckets(r io.Reader) ([]latencyBucket, error) {
	const prefix = pushLatencyMetric + `_bucket{le="`
	var out []latencyBucket
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), prefix)
		if !ok {
			continue
		}
		le, rest, ok := strings.Cut(rest, `"}`)
		if !ok {
			continue
		}
		l, err := strconv.ParseFloat(le, 64) // "+Inf" parses as +Inf
		if err != nil {
			return nil, fmt.Errorf("bucket le %q: %w", le, err)
		}
		n, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
		if err != nil {
			return nil, fmt.Errorf("bucket %q count: %w", le, err)
		}
		out = append(out, latencyBucket{le: l, count: n})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no %s in /metrics", pushLatencyMetric)
	}
	return out, nil
}

// serverLatency is the run's share of the histogram: after minus before.
func serverLatency(before, after []latencyBucket) *ServerLatency {
	if len(before) != len(after) || len(after) == 0 {
		return nil
	}
	d := make([]latencyBucket, len(after))
	for i := range after {
		d[i] = latencyBucket{le: after[i].le, count: after[i].count - before[i].count}
	}
	total := d[len(d)-1].count
	s := &ServerLatency{Count: total}
	if total == 0 {
		return s
	}
	quantile := func(q float64) float64 {
		for _, b := range d {
			if b.count >= q*total {
				if math.IsInf(b.le, 1) {
					return -1
				}
				return b.le * 1000
			}
		}
		return -1
	}
	over := func(seconds float64) float64 {
		for _, b := range d {
			if b.le >= seconds {
				return total - b.count
			}
		}
		return 0
	}
	s.P50LeMs, s.P99LeMs = quantile(0.50), quantile(0.99)
	s.Over10ms, s.Over50ms = over(0.010), over(0.050)
	return s
}
