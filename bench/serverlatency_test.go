package bench

import (
	"fmt"
	"strings"
	"testing"
)

// exposition is the histogram as the server's /metrics prints it (other
// series around it are skipped).
const exposition = `# HELP wspush_push_latency_seconds Time from a message being sequenced ...
# TYPE wspush_push_latency_seconds histogram
wspush_push_latency_seconds_bucket{le="0.001"} %d
wspush_push_latency_seconds_bucket{le="0.01"} %d
wspush_push_latency_seconds_bucket{le="0.05"} %d
wspush_push_latency_seconds_bucket{le="+Inf"} %d
wspush_push_latency_seconds_sum 1.5
wspush_push_latency_seconds_count %d
wspush_connections 3
`

func buckets(t *testing.T, le1, le10, le50, inf int) []latencyBucket {
	t.Helper()
	got, err := parseLatencyBuckets(strings.NewReader(fmt.Sprintf(exposition, le1, le10, le50, inf, inf)))
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// TestServerLatencyDelta: the run's share is after minus before, its
// quantiles bucket bounds, and a p99 past the last finite bucket is -1.
func TestServerLatencyDelta(t *testing.T) {
	before := buckets(t, 500, 500, 500, 500)
	if len(before) != 4 {
		t.Fatalf("parsed %d buckets, want 4", len(before))
	}
	// 100 pushes in the run: 90 within 1 ms, 5 more within 10 ms, 4 more within 50 ms, 1 beyond.
	s := serverLatency(before, buckets(t, 590, 595, 599, 600))
	want := ServerLatency{Count: 100, P50LeMs: 1, P99LeMs: 50, Over10ms: 5, Over50ms: 1}
	if *s != want {
		t.Fatalf("got %+v, want %+v", *s, want)
	}
	s = serverLatency(before, buckets(t, 590, 595, 597, 600))
	if s.P99LeMs != -1 || s.Over50ms != 3 {
		t.Fatalf("p99 past the last bucket: got %+v, want p99 -1 and 3 over 50 ms", *s)
	}
	if _, err := parseLatencyBuckets(strings.NewReader("wspush_connections 3\n")); err == nil {
		t.Fatal("no histogram: want an error")
	}
}
