package server

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wspush/wspush/internal/testsupport"
)

// TestAdminDefaultAddressIsLoopback: with no -admin the admin API is
// reachable from this machine only.
func TestAdminDefaultAddressIsLoopback(t *testing.T) {
	host, _, err := net.SplitHostPort(Defaults().Admin)
	if err != nil {
		t.Fatal(err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		t.Fatalf("default admin address %q: want a loopback IP", Defaults().Admin)
	}
}

// TestPprofOnlyWithFlag: /debug/pprof/ is not served unless asked, and
// /debug/pprof/cmdline, the process's arguments, never is.
func TestPprofOnlyWithFlag(t *testing.T) {
	off := startServer(t, Config{})
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/cmdline", "/debug/pprof/heap", "/debug/pprof/symbol"} {
		if code := adminGet(t, off, path, ""); code != http.StatusNotFound {
			t.Errorf("without -pprof GET %s answered %d, want 404", path, code)
		}
	}
	on := startServer(t, Config{Pprof: true})
	for path, want := range map[string]int{"/debug/pprof/": 200, "/debug/pprof/heap": 200, "/debug/pprof/cmdline": 404} {
		if code := adminGet(t, on, path, ""); code != want {
			t.Errorf("with -pprof GET %s answered %d, want %d", path, code, want)
		}
	}
}

// TestAdminTokenGuardsEveryEndpoint: with an admin token every admin
// endpoint but /healthz answers 401 without it; /metrics is open with
// -metrics-public only.
func TestAdminTokenGuardsEveryEndpoint(t *testing.T) {
	const token = "t0k-en"
	s := startServer(t, Config{PublishToken: token, Pprof: true})
	pub := startServer(t, Config{PublishToken: token, Pprof: true, MetricsPublic: true})
	tests := []struct {
		srv           *Server
		path          string
		without, with int
	}{
		{s, "/healthz", 200, 200},
		{s, "/metrics", 401, 200},
		{s, "/debug/pprof/", 401, 200},
		{s, "/debug/pprof/heap", 401, 200},
		{s, "/publish?topic=a", 401, 405},
		{pub, "/metrics", 200, 200},
		{pub, "/debug/pprof/", 401, 200},
	}
	for _, tt := range tests {
		if got := adminGet(t, tt.srv, tt.path, ""); got != tt.without {
			t.Errorf("GET %s (metrics public %v) without the token: %d, want %d", tt.path, tt.srv.cfg.MetricsPublic, got, tt.without)
		}
		if got := adminGet(t, tt.srv, tt.path, token); got != tt.with {
			t.Errorf("GET %s (metrics public %v) with the token: %d, want %d", tt.path, tt.srv.cfg.MetricsPublic, got, tt.with)
		}
	}
	if code, _ := publish(t, s, "a", `1`, "Authorization", "bearer "+token); code != 200 {
		t.Errorf("publish with the scheme in lower case: %d", code)
	}
	if code, _ := publish(t, s, "a", `1`, "Authorization", "Basic "+token); code != 401 {
		t.Errorf("publish with the token in another scheme: %d, want 401", code)
	}
}

// TestPublishFromBrowserContextRefused: without a token, a publish must say
// it is JSON: a cross-site form or fetch can send text/plain without a
// preflight, never application/json. Nothing refused is pushed.
func TestPublishFromBrowserContextRefused(t *testing.T) {
	s := startServer(t, Config{})
	sub := dial(t, s, "/ws?topics=news")
	testsupport.ReadJSON(t, sub)
	for _, ctype := range []string{"text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", ""} {
		req, _ := http.NewRequest(http.MethodPost, s.adminURL("/publish?topic=news"), strings.NewReader(`{"forged":true}`))
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnsupportedMediaType || !strings.Contains(string(body), "application/json") {
			t.Errorf("Content-Type %q: %d %s, want 415 naming application/json", ctype, resp.StatusCode, body)
		}
	}
	if code, _ := publish(t, s, "news", `{"n":1}`, "Content-Type", "application/json; charset=utf-8"); code != 200 {
		t.Fatalf("publish with application/json; charset=utf-8: %d", code)
	}
	if m := testsupport.ReadJSON(t, sub); m["seq"] != 1.0 || m["data"].(map[string]any)["n"] != 1.0 {
		t.Fatalf("first push %v: want the JSON publish, seq 1", m)
	}
	// With a token the token is the proof: any Content-Type (v1 backends).
	tok := startServer(t, Config{PublishToken: "k"})
	if code, _ := publish(t, tok, "news", `1`, "Content-Type", "text/plain", "Authorization", "Bearer k"); code != 200 {
		t.Fatalf("publish with the token and text/plain: %d", code)
	}
}

// TestAdminSlowRequestIsCut: a client that sends its body or its header
// slowly, or holds an idle connection, is cut after AdminTimeout instead of
// holding a goroutine for as long as it likes.
func TestAdminSlowRequestIsCut(t *testing.T) {
	s := startServer(t, Config{AdminTimeout: 300 * time.Millisecond})
	for name, send := range map[string]string{
		"body":   "POST /publish?topic=a HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n[1,",
		"header": "POST /publish?topic=a HTTP/1.1\r\nHost: x\r\n",
		"idle":   "",
	} {
		t.Run(name, func(t *testing.T) {
			c, err := net.Dial("tcp", s.AdminAddr())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			io.WriteString(c, send)
			// Never more: the server must end it well before our deadline.
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, err = io.Copy(io.Discard, c)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("the admin server still holds a connection that stalled in its %s", name)
			}
		})
	}
}

// TestMetricsScrapeDoesNotWalkConnections: however often /metrics is
// scraped, the loops walk their connections for the bufferedAmount
// histogram at most once per bufferedScanEvery.
func TestMetricsScrapeDoesNotWalkConnections(t *testing.T) {
	s := startServer(t, Config{Loops: 2, MetricsPublic: true})
	for range 4 {
		testsupport.ReadJSON(t, dial(t, s, "/ws?topics=a"))
	}
	wakeups := func() (n []uint64) {
		for _, l := range s.group.Loops() {
			n = append(n, l.Stats.Wakeups.Load())
		}
		return n
	}
	before := wakeups()
	start := time.Now()
	const scrapes = 30
	var wg sync.WaitGroup
	for range scrapes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if code := adminGet(t, s, "/metrics", ""); code != 200 {
				t.Errorf("/metrics answered %d", code)
			}
		}()
	}
	wg.Wait()
	allowed := uint64(1 + time.Since(start)/bufferedScanEvery)
	for i, n := range wakeups() {
		if woken := n - before[i]; woken > allowed {
			t.Errorf("loop %d woken %d times by %d scrapes in %v, want at most %d", i, woken, scrapes, time.Since(start), allowed)
		}
	}
	// The histogram is still there, with every connection.
	resp, err := http.Get(s.adminURL("/metrics"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Contains(body, []byte("wspush_buffered_amount_bytes_count 4")) {
		t.Errorf("no bufferedAmount histogram of the 4 connections in /metrics")
	}
}

// TestSecretsNeverEchoed: the admin token appears in no log line (debug
// level included), no error answer, no /healthz.
func TestSecretsNeverEchoed(t *testing.T) {
	const token = "Zq8-secret-token"
	var logs logBuffer
	s := startServer(t, Config{PublishToken: token, Pprof: true,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	var answers []string
	for _, h := range [][]string{nil, {"Authorization", "Bearer wrong"}, {"Authorization", "Bearer " + token}} {
		_, m := publish(t, s, "a%20b", `{`, h...)
		answers = append(answers, fmt.Sprint(m))
	}
	for _, path := range []string{"/healthz", "/debug/pprof/cmdline"} {
		resp, err := http.Get(s.adminURL(path))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		answers = append(answers, string(b))
	}
	s.Close()
	for _, a := range append(answers, logs.String()) {
		if strings.Contains(a, token) {
			t.Fatalf("the admin token was echoed: %s", a)
		}
	}
}
