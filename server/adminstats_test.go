package server

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/wspush/wspush/internal/testsupport"
)

// getStats GETs /admin/stats (with the query) and decodes it; header is
// name, value pairs.
func getStats(t testing.TB, s *Server, query string, header ...string) (int, adminStats) {
	t.Helper()
	resp := adminRequest(t, s, http.MethodGet, "/admin/stats"+query, header...)
	defer resp.Body.Close()
	var st adminStats
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
			t.Fatalf("stats answer: %v", err)
		}
	}
	return resp.StatusCode, st
}

// TestAdminStats: behind the admin token, the snapshot follows connections,
// subscriptions, publishes and deliveries; the loops add up; the top topics
// are ranked.
func TestAdminStats(t *testing.T) {
	const token = "stats-token"
	s := startServer(t, Config{PublishToken: token})
	auth := []string{"Authorization", "Bearer " + token}

	for _, h := range [][]string{nil, {"Authorization", "Bearer wrong"}, {"Authorization", token}} {
		if code, _ := getStats(t, s, "", h...); code != http.StatusUnauthorized {
			t.Errorf("GET /admin/stats with %q: %d, want 401", h, code)
		}
	}
	code, st := getStats(t, s, "", auth...)
	if code != http.StatusOK || st.Status != "ok" || st.Connections != 0 || len(st.Loops) != 2 || st.Broker.Mode != "local" {
		t.Fatalf("idle server: %d %+v", code, st)
	}

	for _, q := range []string{"?topics=a,b", "?topics=a", "?topics=a,c", "?topics=b"} {
		dial(t, s, "/ws"+q)
	}
	testsupport.WaitFor(t, "4 connections in the stats", func() bool { _, st = getStats(t, s, "", auth...); return st.Connections == 4 })
	if st.Topics != 3 || st.Subscriptions != 6 {
		t.Errorf("topics %d, subscriptions %d; want 3, 6", st.Topics, st.Subscriptions)
	}
	var inLoops int64
	for i, l := range st.Loops {
		if l.Loop != i {
			t.Errorf("loops[%d] is loop %d", i, l.Loop)
		}
		inLoops += l.Connections
	}
	if inLoops != 4 {
		t.Errorf("the loops hold %d connections, want 4: %+v", inLoops, st.Loops)
	}

	if code, m := publish(t, s, "a", `{"x":1}`, auth[0], auth[1], "Content-Type", "application/json"); code != http.StatusOK {
		t.Fatalf("publish: %d %v", code, m)
	}
	testsupport.WaitFor(t, "the deliveries in the stats", func() bool { _, st = getStats(t, s, "", auth...); return st.Delivered == 3 })
	if st.Published != 1 {
		t.Errorf("published_total %d, want 1", st.Published)
	}
	testsupport.WaitFor(t, "the push latency", func() bool { _, st = getStats(t, s, "", auth...); return st.PushLatency.Count == 1 })
	if lb := st.PushLatency; len(lb.Le) != len(pushLatencyBuckets) || len(lb.Counts) != len(lb.Le) ||
		lb.Counts[len(lb.Counts)-1] > 1 || lb.Sum <= 0 {
		t.Errorf("push latency after one message: %+v", lb)
	}

	// The top topics are walked at most every topTopicsEvery: wait for a
	// walk that has seen every subscription.
	testsupport.WaitFor(t, "the top topics", func() bool {
		_, st = getStats(t, s, "?top=2", auth...)
		return st.TopTopics.Of == 3
	})
	want := `[{a 3} {b 2}]`
	if got := fmt.Sprint(st.TopTopics.Topics); got != want || st.TopTopics.Walked != 3 {
		t.Errorf("top 2: %s (walked %d of %d), want %s", got, st.TopTopics.Walked, st.TopTopics.Of, want)
	}
	if _, st = getStats(t, s, "?top=0", auth...); len(st.TopTopics.Topics) != 0 {
		t.Errorf("top 0: %v", st.TopTopics.Topics)
	}

	for _, q := range []string{"?top=-1", "?top=101", "?top=ten"} {
		if code, _ := getStats(t, s, q, auth...); code != http.StatusBadRequest {
			t.Errorf("GET /admin/stats%s: %d, want 400", q, code)
		}
	}
	req, _ := http.NewRequest(http.MethodPost, s.adminURL("/admin/stats"), nil)
	req.Header.Set(auth[0], auth[1])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /admin/stats: %d, want 405", resp.StatusCode)
	}
}

// TestAdminStatsCluster: in cluster mode the stats say so, and say degraded
// with the reason while NATS is gone.
func TestAdminStatsCluster(t *testing.T) {
	ns := testsupport.StartNATS(t, -1, t.TempDir())
	s := startNodes(t, ns.ClientURL(), 1)[0]
	_, st := getStats(t, s, "")
	if st.Status != "ok" || st.Broker.Mode != "nats" || st.Broker.Connected == nil || !*st.Broker.Connected {
		t.Fatalf("cluster node: status %q, broker %+v", st.Status, st.Broker)
	}
	ns.Shutdown()
	ns.WaitForShutdown()
	testsupport.WaitFor(t, "degraded in the stats", func() bool {
		_, st = getStats(t, s, "")
		return st.Status == "degraded" && st.Broker.Connected != nil && !*st.Broker.Connected && st.Broker.Error != ""
	})
}

// TestAdminPage: the page's files are served on the admin port, without the
// token (a browser's navigation cannot send it) and with a policy that keeps
// the page to its own scripts; the public port does not serve them.
func TestAdminPage(t *testing.T) {
	s := startServer(t, Config{PublishToken: "page-token"})
	tests := []struct {
		path, contentType string
		code              int
	}{
		{"/admin/", "text/html", http.StatusOK},
		{"/admin/admin.js", "text/javascript", http.StatusOK},
		{"/admin/admin.css", "text/css", http.StatusOK},
		{"/admin/missing.js", "", http.StatusNotFound},
	}
	for _, tc := range tests {
		resp, err := http.Get(s.adminURL(tc.path))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code || !strings.HasPrefix(resp.Header.Get("Content-Type"), tc.contentType) {
			t.Errorf("GET %s: %d %q, want %d %s", tc.path, resp.StatusCode, resp.Header.Get("Content-Type"), tc.code, tc.contentType)
			continue
		}
		if tc.code != http.StatusOK {
			continue
		}
		if csp := resp.Header.Get("Content-Security-Policy"); csp != adminPageCSP {
			t.Errorf("GET %s: Content-Security-Policy %q", tc.path, csp)
		}
		if tc.path == "/admin/" && !strings.Contains(string(body), `<script src="admin.js"`) {
			t.Errorf("GET /admin/ is not the admin page: %.200s", body)
		}
	}
	resp, err := http.Post(s.adminURL("/admin/"), "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /admin/: %d, want 405", resp.StatusCode)
	}
	resp, err = http.Get("http://" + s.Addr().String() + "/admin/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /admin/ on the public port: %d, want 404", resp.StatusCode)
	}
}
