package bench

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// Result is everything one scenario run measured. Zero figures were not measured.
type Result struct {
	Scenario     string    `json:"scenario"`
	Label        string    `json:"label,omitempty"`
	URLs         []string  `json:"urls"`
	Started      time.Time `json:"started"`
	Elapsed      float64   `json:"elapsed_s"`
	Procs        int       `json:"procs"`
	Conns        int       `json:"conns_requested"`
	Topics       int       `json:"topics,omitempty"`
	Messages     int       `json:"messages_per_topic,omitempty"`
	Size         int       `json:"size,omitempty"`
	SlowFraction float64   `json:"slow_fraction,omitempty"`
	Batch        int       `json:"batch,omitempty"`                 // messages per POST /publish/batch
	PubRate      float64   `json:"offered_publish_per_s,omitempty"` // paced publishing; 0: as fast as accepted

	Dialed           int            `json:"dialed"`
	Connected        int            `json:"connected"`
	ConnectErrors    map[string]int `json:"connect_errors,omitempty"`
	Handshake        *Latency       `json:"handshake,omitempty"`
	RampSeconds      float64        `json:"ramp_s,omitempty"`
	HandshakesPerSec float64        `json:"handshakes_per_s,omitempty"`
	Closes           map[string]int `json:"server_closes,omitempty"` // connections the server ended, by kind

	Published        int            `json:"published,omitempty"`
	PublishErrors    map[string]int `json:"publish_errors,omitempty"`
	PublishPerSec    float64        `json:"publish_per_s,omitempty"`
	Publish          *Latency       `json:"publish_rtt,omitempty"`
	ServerQueued     int64          `json:"server_queued,omitempty"` // sum of "subscribers" in the publish answers
	Deliveries       int64          `json:"deliveries,omitempty"`
	Expected         int64          `json:"expected,omitempty"`
	Lost             int64          `json:"lost"`
	OutOfOrder       int64          `json:"out_of_order"`
	Foreign          int64          `json:"foreign,omitempty"`
	DeliverySeconds  float64        `json:"delivery_s,omitempty"`
	DeliveriesPerSec float64        `json:"deliveries_per_s,omitempty"`
	Latency          *Latency       `json:"latency,omitempty"`

	SlowConns   int            `json:"slow_conns,omitempty"`
	SlowDropped int            `json:"slow_dropped,omitempty"`
	SlowCloses  map[string]int `json:"slow_closes,omitempty"`
	Baseline    *Result        `json:"baseline_phase,omitempty"` // slow: the same fanout without slow subscribers

	Cycles       int64          `json:"cycles,omitempty"`
	CyclesPerSec float64        `json:"cycles_per_s,omitempty"`
	CycleErrors  map[string]int `json:"cycle_errors,omitempty"`
	Cycle        *Latency       `json:"cycle,omitempty"`

	Curve *Curve `json:"curve,omitempty"`

	Server   *ServerStats `json:"server,omitempty"`
	Timeline []Sample     `json:"timeline"`

	firstDial, lastOpen, lastDelivery int64
}

// Sample is one point of the timeline.
type Sample struct {
	T                float64 `json:"t_s"`
	Open             int64   `json:"open"`
	Deliveries       int64   `json:"deliveries"`
	DeliveriesPerSec float64 `json:"deliveries_per_s"`
	Published        int64   `json:"published"`
	Cycles           int64   `json:"cycles,omitempty"`
	CyclesPerSec     float64 `json:"cycles_per_s,omitempty"`
	RSS              int64   `json:"server_rss_bytes,omitempty"`
	CPUSeconds       float64 `json:"server_cpu_s,omitempty"`
	ServerCPU        float64 `json:"server_cpu_cores,omitempty"`
}

// ServerStats are the server's figures (with a pid and/or an admin /metrics).
type ServerStats struct {
	Before   ServerSample `json:"before"`
	Ramp     ServerSample `json:"after_ramp"`
	PubStart ServerSample `json:"publish_start,omitzero"`
	End      ServerSample `json:"end"`

	RSSPerConn     float64 `json:"rss_per_conn_bytes,omitempty"`
	HeapPerConn    float64 `json:"heap_per_conn_bytes,omitempty"`
	NonHeapPerConn float64 `json:"non_heap_rss_per_conn_bytes,omitempty"`
	PeakRSS        int64   `json:"peak_rss_bytes,omitempty"`
	CPUSeconds     float64 `json:"cpu_s,omitempty"`                  // whole run
	CPUPerMDeliv   float64 `json:"cpu_s_per_m_deliveries,omitempty"` // publish to drained
	RSSDrift       int64   `json:"rss_drift_bytes,omitempty"`        // churn: end minus before
	ConnDrift      float64 `json:"connections_drift,omitempty"`      // churn: wspush_connections end minus before
	GoroutineDrift float64 `json:"goroutines_drift,omitempty"`       // churn
	SlowDropped    float64 `json:"slow_dropped_metric,omitempty"`    // wspush_slow_consumers_dropped_total during the run
}

func (s *ServerStats) derive(r *Result, kind string) {
	for _, t := range r.Timeline {
		s.PeakRSS = max(s.PeakRSS, t.RSS)
	}
	s.PeakRSS = max(s.PeakRSS, s.Before.RSS, s.Ramp.RSS, s.End.RSS)
	if s.End.CPUSeconds > 0 {
		s.CPUSeconds = s.End.CPUSeconds - s.Before.CPUSeconds
	}
	if kind != "churn" && r.Connected > 0 {
		n := float64(r.Connected)
		if s.Ramp.RSS > 0 {
			s.RSSPerConn = float64(s.Ramp.RSS-s.Before.RSS) / n
		}
		if s.Ramp.HeapInuse >= 0 && s.Before.HeapInuse >= 0 {
			s.HeapPerConn = (s.Ramp.HeapInuse - s.Before.HeapInuse) / n
			if s.Ramp.RSS > 0 {
				s.NonHeapPerConn = s.RSSPerConn - s.HeapPerConn
			}
		}
	}
	if kind == "fanout" && r.Deliveries > 0 && s.End.CPUSeconds > 0 {
		s.CPUPerMDeliv = (s.End.CPUSeconds - s.PubStart.CPUSeconds) / (float64(r.Deliveries) / 1e6)
	}
	if kind == "churn" {
		if s.End.RSS > 0 {
			s.RSSDrift = s.End.RSS - s.Before.RSS
		}
		if s.End.Connections >= 0 && s.Before.Connections >= 0 {
			s.ConnDrift = s.End.Connections - s.Before.Connections
		}
		if s.End.Goroutines >= 0 && s.Before.Goroutines >= 0 {
			s.GoroutineDrift = s.End.Goroutines - s.Before.Goroutines
		}
	}
	if s.End.SlowDropped >= 0 && s.Before.SlowDropped >= 0 {
		s.SlowDropped = s.End.SlowDropped - s.Before.SlowDropped
	}
}

// Figure is one headline number of a result.
type Figure struct {
	Name   string  `json:"name"`
	Value  float64 `json:"value"`
	Unit   string  `json:"unit"`
	Better string  `json:"better"` // "higher" or "lower"
}

// Figures returns the headline numbers compared between targets.
func (r *Result) Figures() []Figure {
	var f []Figure
	add := func(name string, v float64, unit, better string) {
		f = append(f, Figure{name, v, unit, better})
	}
	lat := func(prefix string, l *Latency) {
		if l != nil {
			add(prefix+" p50", l.P50, "ms", "lower")
			add(prefix+" p99", l.P99, "ms", "lower")
			add(prefix+" p99.9", l.P999, "ms", "lower")
		}
	}
	s := r.Server
	switch r.Scenario {
	case "connect":
		add("connected", float64(r.Connected), "", "higher")
		add("handshakes/s", r.HandshakesPerSec, "/s", "higher")
		lat("handshake", r.Handshake)
		if s != nil && s.RSSPerConn > 0 {
			add("server RSS/conn", s.RSSPerConn/1024, "KiB", "lower")
			if s.HeapPerConn != 0 {
				add("server heap/conn", s.HeapPerConn/1024, "KiB", "lower")
				add("server non-heap RSS/conn", s.NonHeapPerConn/1024, "KiB", "lower")
			}
			add("server threads", float64(s.Ramp.Threads), "", "lower")
		}
		if s != nil && s.Ramp.Goroutines >= 0 {
			add("server goroutines", s.Ramp.Goroutines, "", "lower")
		}
		if s != nil && s.CPUSeconds > 0 {
			add("server CPU", s.CPUSeconds, "s", "lower")
		}
	case "fanout", "slow", "inbox":
		add("deliveries/s", r.DeliveriesPerSec, "/s", "higher")
		lat("latency", r.Latency)
		if r.Latency != nil {
			add("latency max", r.Latency.Max, "ms", "lower")
		}
		add("lost", float64(r.Lost), "", "lower")
		if s != nil && s.CPUPerMDeliv > 0 {
			add("server CPU/M deliveries", s.CPUPerMDeliv, "s", "lower")
		}
		if s != nil && s.PeakRSS > 0 {
			add("server peak RSS", float64(s.PeakRSS)/(1<<20), "MiB", "lower")
		}
		if r.Scenario == "slow" {
			add("slow dropped", float64(r.SlowDropped), "", "higher")
			if b := r.Baseline; b != nil && b.Latency != nil && r.Latency != nil && b.Latency.P99 > 0 {
				add("fast p99 slow/none", r.Latency.P99/b.Latency.P99, "x", "lower")
			}
		}
	case "curve":
		if c := r.Curve; c != nil {
			add("knee", c.Knee, "/s", "higher")
			for _, st := range c.Steps {
				at := " @ " + fmtShort(st.Offered) + "/s"
				if st.Latency != nil {
					add("p50"+at, st.Latency.P50, "ms", "lower")
					add("p99"+at, st.Latency.P99, "ms", "lower")
				}
				add("delivered/s"+at, st.DeliveredPerSec, "/s", "higher")
				add("lost"+at, float64(st.Lost), "", "lower")
				if st.ServerCPUPerM > 0 {
					add("server CPU/M"+at, st.ServerCPUPerM, "s", "lower")
				}
			}
		}
	case "churn":
		add("cycles/s", r.CyclesPerSec, "/s", "higher")
		lat("cycle", r.Cycle)
		add("errors", float64(sum(r.ConnectErrors)+sum(r.CycleErrors)), "", "lower")
		if s != nil && s.End.RSS > 0 {
			add("server RSS drift", float64(s.RSSDrift)/(1<<20), "MiB", "lower")
		}
		if s != nil && s.End.Connections >= 0 {
			add("server connections drift", s.ConnDrift, "", "lower")
		}
	}
	return f
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func fmtCounts(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s=%d", k, m[k])
	}
	return b.String()
}

func fmtLat(l *Latency) string {
	if l == nil {
		return "-"
	}
	return fmt.Sprintf("p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  (n=%d)",
		fmtMS(l.P50), fmtMS(l.P90), fmtMS(l.P99), fmtMS(l.P999), fmtMS(l.Max), l.Count)
}

func fmtMS(v float64) string {
	switch {
	case v >= 1000:
		return fmt.Sprintf("%.2fs", v/1000)
	case v >= 10:
		return fmt.Sprintf("%.1fms", v)
	default:
		return fmt.Sprintf("%.3fms", v)
	}
}

func fmtBytes(v float64) string {
	switch {
	case v >= 1<<30 || v <= -(1<<30):
		return fmt.Sprintf("%.2f GiB", v/(1<<30))
	case v >= 1<<20 || v <= -(1<<20):
		return fmt.Sprintf("%.1f MiB", v/(1<<20))
	case v >= 1<<10 || v <= -(1<<10):
		return fmt.Sprintf("%.1f KiB", v/(1<<10))
	}
	return fmt.Sprintf("%.0f B", v)
}

// WriteTable writes a readable summary of r.
func (r *Result) WriteTable(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, format string, a ...any) { fmt.Fprintf(tw, "  %s\t"+format+"\n", append([]any{k}, a...)...) }
	title := r.Scenario
	if r.Label != "" {
		title += " [" + r.Label + "]"
	}
	fmt.Fprintf(tw, "%s  %s  (%.1fs, %d proc)\n", title, strings.Join(r.URLs, ","), r.Elapsed, r.Procs)
	if r.Baseline != nil {
		fmt.Fprintf(tw, "  -- phase 1: no slow subscribers --\n")
		r.Baseline.rows(row)
		fmt.Fprintf(tw, "  -- phase 2: %.0f%% slow subscribers --\n", r.SlowFraction*100)
	}
	r.rows(row)
	tw.Flush()
}

func (r *Result) curveRows(row func(k, format string, a ...any)) {
	row("connections", "%d of %d (%d dialed), connect errors: %s", r.Connected, r.Conns, r.Dialed, fmtCounts(r.ConnectErrors))
	if len(r.Closes) > 0 {
		row("closed by server", "%s", fmtCounts(r.Closes))
	}
	c := r.Curve
	if c == nil {
		return
	}
	row("subscribers", "%d on %d topics, %d B values; latency from each message's due time", c.Subscribers, r.Topics, r.Size)
	for _, s := range c.Steps {
		verdict := "FAIL"
		if s.Pass {
			verdict = "pass"
		}
		srv := ""
		if s.ServerCPUPerM > 0 {
			srv = fmt.Sprintf("  server %.2f cores, %.2fs CPU/M", s.ServerCores, s.ServerCPUPerM)
		}
		lag := "-"
		if s.SendLag != nil {
			lag = fmtMS(s.SendLag.P99)
		}
		p50, p99, mx := "-", "-", "-"
		if l := s.Latency; l != nil {
			p50, p99, mx = fmtMS(l.P50), fmtMS(l.P99), fmtMS(l.Max)
		}
		row("offered "+fmtShort(s.Offered)+"/s", "%.1f msg/s x %.1fs: p50 %s p99 %s max %s  delivered %s/s  lost %d of %d  send lag p99 %s (%d busy)  client %.2f cores%s  %s",
			s.MsgRate, s.Seconds, p50, p99, mx, fmtShort(s.DeliveredPerSec), s.Lost, s.OfferedDeliv, lag, s.MaxBusy, s.ClientCores, srv, verdict)
		if len(s.PublishErrors) > 0 || s.Unsent > 0 {
			row("", "publish errors: %s, unsent %d", fmtCounts(s.PublishErrors), s.Unsent)
		}
	}
	if c.Knee > 0 {
		row("knee", "%s deliveries/s (p99 < %s, nothing lost)", fmtShort(c.Knee), fmtMS(c.KneeP99))
	} else {
		row("knee", "none: the lowest step failed (p99 < %s, nothing lost)", fmtMS(c.KneeP99))
	}
}

func (r *Result) rows(row func(k, format string, a ...any)) {
	if r.Scenario == "curve" {
		r.curveRows(row)
		return
	}
	if r.Scenario != "churn" {
		row("connections", "%d of %d (%d dialed)", r.Connected, r.Conns, r.Dialed)
		if r.HandshakesPerSec > 0 {
			row("handshakes/s", "%.0f (ramp %.2fs)", r.HandshakesPerSec, r.RampSeconds)
		}
		row("handshake latency", "%s", fmtLat(r.Handshake))
	}
	if len(r.ConnectErrors) > 0 || r.Scenario != "churn" {
		row("connect errors", "%s", fmtCounts(r.ConnectErrors))
	}
	if len(r.Closes) > 0 {
		row("closed by server", "%s", fmtCounts(r.Closes))
	}
	switch r.Scenario {
	case "fanout", "slow", "inbox":
		if r.Batch > 1 {
			row("batches", "%d messages per POST /publish/batch", r.Batch)
		}
		row("published", "%d (%.0f/s, %d topics x %d msgs x %d B), errors: %s", r.Published, r.PublishPerSec, r.Topics, r.Messages, r.Size, fmtCounts(r.PublishErrors))
		row("publish round trip", "%s", fmtLat(r.Publish))
		row("deliveries", "%d of %d expected (server queued %d)", r.Deliveries, r.Expected, r.ServerQueued)
		row("deliveries/s", "%.0f (over %.2fs)", r.DeliveriesPerSec, r.DeliverySeconds)
		row("lost / out of order", "%d / %d", r.Lost, r.OutOfOrder)
		row("latency", "%s", fmtLat(r.Latency))
		if r.SlowConns > 0 {
			row("slow subscribers", "%d, dropped by server %d (%s)", r.SlowConns, r.SlowDropped, fmtCounts(r.SlowCloses))
		}
	case "churn":
		row("cycles", "%d (%.0f/s)", r.Cycles, r.CyclesPerSec)
		row("cycle latency", "%s", fmtLat(r.Cycle))
		row("connect errors", "%s", fmtCounts(r.ConnectErrors))
		row("cycle errors", "%s", fmtCounts(r.CycleErrors))
	}
	s := r.Server
	if s == nil {
		return
	}
	if s.Before.RSS > 0 {
		row("server RSS", "before %s, after ramp %s, end %s, peak %s", fmtBytes(float64(s.Before.RSS)), fmtBytes(float64(s.Ramp.RSS)), fmtBytes(float64(s.End.RSS)), fmtBytes(float64(s.PeakRSS)))
		row("server threads", "%d", max(s.Ramp.Threads, s.End.Threads))
		row("server CPU", "%.2fs", s.CPUSeconds)
	}
	if s.RSSPerConn != 0 {
		row("server RSS/conn", "%s", fmtBytes(s.RSSPerConn))
	}
	if s.HeapPerConn != 0 {
		row("server heap/conn", "%s (non-heap RSS/conn %s)", fmtBytes(s.HeapPerConn), fmtBytes(s.NonHeapPerConn))
	}
	if s.Ramp.Goroutines >= 0 {
		row("server goroutines", "%.0f (before %.0f)", s.Ramp.Goroutines, s.Before.Goroutines)
	}
	if s.CPUPerMDeliv > 0 {
		row("server CPU/M deliveries", "%.3fs", s.CPUPerMDeliv)
	}
	if r.Scenario == "slow" && s.End.SlowDropped >= 0 {
		row("slow dropped (metric)", "%.0f", s.SlowDropped)
	}
	if r.Scenario == "churn" {
		row("server drift", "RSS %s, connections %.0f, goroutines %.0f", fmtBytes(float64(s.RSSDrift)), s.ConnDrift, s.GoroutineDrift)
	}
}
