package deploy

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/wspush/wspush/server"
)

// targetLabels are attached by Prometheus to every scraped series (the
// scrape target's), so they are not in /metrics.
var targetLabels = map[string]bool{"job": true, "instance": true}

// histogramSuffixes are the series names a histogram family exposes beside
// its own name.
var histogramSuffixes = []string{"_bucket", "_sum", "_count"}

// scrape holds the metric families of one /metrics answer.
type scrape map[string]*dto.MetricFamily

// series resolves a series name to its family and the labels its series
// carry: name_bucket of a histogram carries le, a summary carries quantile.
func (s scrape) series(name string) (*dto.MetricFamily, map[string][]string, bool) {
	if f, ok := s[name]; ok && f.GetType() != dto.MetricType_HISTOGRAM {
		return f, s.labels(f, f.GetType() == dto.MetricType_SUMMARY, false), true
	}
	for _, suffix := range histogramSuffixes {
		base, ok := strings.CutSuffix(name, suffix)
		if !ok {
			continue
		}
		f, ok := s[base]
		if ok && (f.GetType() == dto.MetricType_HISTOGRAM || f.GetType() == dto.MetricType_SUMMARY) {
			return f, s.labels(f, false, suffix == "_bucket" && f.GetType() == dto.MetricType_HISTOGRAM), true
		}
	}
	return nil, nil, false
}

// labels lists the values each label takes in a family's series.
func (s scrape) labels(f *dto.MetricFamily, quantiles, buckets bool) map[string][]string {
	ls := map[string][]string{}
	for _, m := range f.GetMetric() {
		for _, lp := range m.GetLabel() {
			ls[lp.GetName()] = append(ls[lp.GetName()], lp.GetValue())
		}
		if quantiles {
			for _, q := range m.GetSummary().GetQuantile() {
				ls["quantile"] = append(ls["quantile"], strconv.FormatFloat(q.GetQuantile(), 'g', -1, 64))
			}
		}
		if buckets {
			for _, b := range m.GetHistogram().GetBucket() {
				ls["le"] = append(ls["le"], strconv.FormatFloat(b.GetUpperBound(), 'g', -1, 64))
			}
			ls["le"] = append(ls["le"], "+Inf")
		}
	}
	return ls
}

// check reports what is wrong with one selector against the scrape: an
// unknown metric, a label its series do not have, or an exact label value
// none of them take (values with Grafana variables are not checked).
func (s scrape) check(sel selector) error {
	_, labels, ok := s.series(sel.name)
	if !ok {
		return fmt.Errorf("metric %s is not in /metrics", sel.name)
	}
	for _, m := range sel.matchers {
		if targetLabels[m.label] {
			continue
		}
		values, ok := labels[m.label]
		if !ok {
			return fmt.Errorf("%s has no label %s", sel.name, m.label)
		}
		if m.op != "=" || strings.Contains(m.value, "$") {
			continue
		}
		if !containsValue(values, m.value, m.label == "le" || m.label == "quantile") {
			return fmt.Errorf("%s{%s=%q}: no such series (values: %s)", sel.name, m.label, m.value, strings.Join(values, ", "))
		}
	}
	return nil
}

// containsValue compares numerically for le and quantile, which Prometheus
// may print as 65536 or 6.5536e+04.
func containsValue(values []string, v string, numeric bool) bool {
	want, err := strconv.ParseFloat(v, 64)
	for _, have := range values {
		if have == v {
			return true
		}
		if f, e := strconv.ParseFloat(have, 64); numeric && err == nil && e == nil && f == want {
			return true
		}
	}
	return false
}

// startCluster starts a NATS server with JetStream on a free loopback port
// and a wspush node using it as its broker, so the cluster-only metrics are
// registered too.
func startCluster(t *testing.T) *server.Server {
	t.Helper()
	ns, err := natsserver.NewServer(&natsserver.Options{
		ServerName: "deploy-test", Host: "127.0.0.1", Port: -1,
		JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	t.Cleanup(ns.Shutdown)
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS server not ready")
	}
	s, err := server.New(server.Config{
		Listen: "127.0.0.1:0", Admin: "127.0.0.1:0", Loops: 2, Broker: ns.ClientURL(),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatalf("start wspush: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

func scrapeMetrics(t *testing.T, url string) scrape {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("scrape: parse: %v", err)
	}
	return fams
}

// TestReferencedMetricsExist scrapes a live wspush node (cluster mode, so
// the broker metrics exist) and checks every selector of the dashboard and
// the alert rules against it: metric names, label names and exact values.
// A metric renamed in server/metrics.go, or one the files name before the
// server has it, fails here.
func TestReferencedMetricsExist(t *testing.T) {
	s := startCluster(t)
	sc := scrapeMetrics(t, "http://"+s.AdminAddr()+"/metrics")

	exprs := readDashboard(t).queries(t)
	for _, g := range readRules(t).Groups {
		for _, r := range g.Rules {
			exprs["alert "+r.Alert] = r.Expr
		}
	}
	names := make([]string, 0, len(exprs))
	for n := range exprs {
		names = append(names, n)
	}
	sort.Strings(names)
	checked := 0
	for _, n := range names {
		sels, err := selectors(exprs[n])
		if err != nil {
			t.Errorf("%s: %v", n, err)
			continue
		}
		if len(sels) == 0 {
			t.Errorf("%s: no metric in %q", n, exprs[n])
		}
		for _, sel := range sels {
			checked++
			if err := sc.check(sel); err != nil {
				t.Errorf("%s: %v", n, err)
			}
		}
	}
	t.Logf("%d selectors in %d queries checked against %d metric families", checked, len(exprs), len(sc))
}

// TestScrapeCheck shows the check failing on what it must catch, against
// the same live scrape.
func TestScrapeCheck(t *testing.T) {
	s := startCluster(t)
	sc := scrapeMetrics(t, "http://"+s.AdminAddr()+"/metrics")
	tests := []struct {
		sel    selector
		wantOK bool
	}{
		{selector{name: "wspush_connections"}, true},
		{selector{name: "wspush_connections", matchers: []matcher{{"job", "=~", "$job"}, {"instance", "=", "a:1"}}}, true},
		{selector{name: "wspush_buffered_amount_bytes_bucket", matchers: []matcher{{"le", "=", "65536"}}}, true},
		{selector{name: "wspush_buffered_amount_bytes_count"}, true},
		{selector{name: "wspush_buffered_amount_bytes_sum"}, true},
		{selector{name: "wspush_handshake_failures_total", matchers: []matcher{{"reason", "=", "max_conns"}}}, true},
		{selector{name: "wspush_broker_connected"}, true},
		{selector{name: "go_gc_duration_seconds", matchers: []matcher{{"quantile", "=", "0.75"}}}, true},
		{selector{name: "process_open_fds"}, true},
		{selector{name: "wspush_push_latency_seconds_bucket", matchers: []matcher{{"le", "=", "0.1"}}}, true},
		{selector{name: "wspush_loop_connections", matchers: []matcher{{"loop", "=", "1"}}}, true},
		{selector{name: "wspush_loop_tasks_pending", matchers: []matcher{{"loop", "=", "0"}}}, true},
		{selector{name: "wspush_loop_connections", matchers: []matcher{{"loop", "=", "2"}}}, false}, // the node has 2 loops
		{selector{name: "wspush_push_latency_seconds_bucket", matchers: []matcher{{"le", "=", "0.2"}}}, false},
		{selector{name: "wspush_push_latency_seconds"}, false},  // a histogram: only _bucket, _sum, _count
		{selector{name: "wspush_buffered_amount_bytes"}, false}, // a histogram has no series of its own name
		{selector{name: "wspush_connections_bucket"}, false},
		{selector{name: "wspush_buffered_amount_bytes_bucket", matchers: []matcher{{"le", "=", "65535"}}}, false},
		{selector{name: "wspush_handshake_failures_total", matchers: []matcher{{"reason", "=", "max_conn"}}}, false},
		{selector{name: "wspush_handshake_failures_total", matchers: []matcher{{"reasons", "=~", ".*"}}}, false},
		{selector{name: "wspush_connections", matchers: []matcher{{"le", "=", "1"}}}, false},
	}
	for _, tc := range tests {
		err := sc.check(tc.sel)
		if (err == nil) != tc.wantOK {
			t.Errorf("check(%+v) = %v, want ok %v", tc.sel, err, tc.wantOK)
		}
	}
}
