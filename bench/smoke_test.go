package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"
)

// The smoke tests build bench/baseline, start it on 127.0.0.1:0 ports and
// run every scenario tiny against it through the library, real sockets.

const (
	workerEnv = "WSBENCH_TEST_WORKER"
	readerEnv = "WSBENCH_TEST_FLOOR_READER"
)

func TestMain(m *testing.M) {
	if os.Getenv(workerEnv) == "1" {
		// re-executed as a worker process by the -procs test
		if err := ServeWorker(context.Background(), os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if os.Getenv(readerEnv) == "1" {
		// re-executed as the floor's reader child
		if err := ServeFloorReader(context.Background(), os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

type server struct {
	ws, admin string
	pid       int
}

var listenRE = regexp.MustCompile(`ws=(\S+) admin=(\S+)`)

// startBaseline builds and starts the baseline server; it stops with the test.
func startBaseline(t *testing.T, args ...string) server {
	t.Helper()
	if testing.Short() {
		t.Skip("smoke test builds and runs a server")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "baseline")
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(gobin); err != nil {
		gobin = "go"
	}
	build := exec.Command(gobin, "build", "-o", bin, "./baseline")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build baseline: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, append([]string{"-listen", "127.0.0.1:0", "-admin", "127.0.0.1:0"}, args...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	found := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := listenRE.FindStringSubmatch(sc.Text()); m != nil {
				found <- m
			}
		}
	}()
	select {
	case m := <-found:
		return server{ws: "ws://" + m[1] + "/ws", admin: "http://" + m[2], pid: cmd.Process.Pid}
	case <-time.After(20 * time.Second):
		t.Fatal("baseline did not start")
	}
	return server{}
}

func testWorker() (Worker, error) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), workerEnv+"=1")
	cmd.Stderr = os.Stderr
	return NewProcessWorker(cmd)
}

func TestScenariosAgainstBaseline(t *testing.T) {
	// A queue of 150 of the slow scenario's 300 messages: the slow readers
	// (which never read) still overflow it, while a fast reader starved of
	// CPU for a moment under the whole -race suite does not (64 did, once).
	srv := startBaseline(t, "-queue", "150", "-sndbuf", "16384")
	base := Config{URLs: []string{srv.ws}, Admin: srv.admin, ServerPID: srv.pid, Src: []string{"127.0.0.2", "127.0.0.3"},
		Duration: 5 * time.Second, Drain: 3 * time.Second, Hold: 200 * time.Millisecond, Loops: 2}
	tests := []struct {
		name  string
		cfg   func(c *Config)
		check func(t *testing.T, r *Result)
	}{
		{
			name: "connect",
			cfg:  func(c *Config) { c.Scenario, c.Conns, c.Rate = "connect", 50, 500 },
			check: func(t *testing.T, r *Result) {
				if r.Connected != 50 || len(r.ConnectErrors) != 0 {
					t.Errorf("connected %d, errors %v", r.Connected, r.ConnectErrors)
				}
				if r.Handshake == nil || r.Handshake.P50 <= 0 || r.HandshakesPerSec <= 0 {
					t.Errorf("handshake figures %+v, %v/s", r.Handshake, r.HandshakesPerSec)
				}
				if s := r.Server; s == nil || s.Ramp.RSS <= 0 || s.RSSPerConn == 0 || s.Ramp.Goroutines < 100 || s.Ramp.Threads <= 0 {
					t.Errorf("server figures %+v", s)
				}
			},
		},
		{
			name: "fanout",
			cfg: func(c *Config) {
				c.Scenario, c.Conns, c.Topics, c.Messages, c.Size = "fanout", 50, 2, 20, 128
			},
			check: func(t *testing.T, r *Result) {
				// 2 topics x 20 messages; every subscriber listens to one topic
				if r.Published != 40 || r.Deliveries != 50*20 || r.Expected != 50*20 || r.Lost != 0 || r.OutOfOrder != 0 {
					t.Errorf("published %d deliveries %d expected %d lost %d ooo %d", r.Published, r.Deliveries, r.Expected, r.Lost, r.OutOfOrder)
				}
				if r.Latency == nil || r.Latency.P50 <= 0 || r.Latency.Count != 1000 || r.DeliveriesPerSec <= 0 {
					t.Errorf("latency %+v, %v/s", r.Latency, r.DeliveriesPerSec)
				}
				if r.ServerQueued != 1000 {
					t.Errorf("server queued %d", r.ServerQueued)
				}
				if r.Server == nil || r.Server.CPUSeconds < 0 {
					t.Errorf("server %+v", r.Server)
				}
			},
		},
		{
			name: "fanout two processes",
			cfg: func(c *Config) {
				c.Scenario, c.Conns, c.Messages, c.Procs, c.NewWorker = "fanout", 50, 20, 2, testWorker
			},
			check: func(t *testing.T, r *Result) {
				if r.Procs != 2 || r.Connected != 50 || r.Deliveries != 50*20 || r.Lost != 0 {
					t.Errorf("procs %d connected %d deliveries %d lost %d", r.Procs, r.Connected, r.Deliveries, r.Lost)
				}
				if r.Latency == nil || r.Latency.Count != 1000 || r.Handshake == nil || r.Handshake.Count != 50 {
					t.Errorf("merged histograms: latency %+v handshake %+v", r.Latency, r.Handshake)
				}
			},
		},
		{
			name: "slow",
			cfg: func(c *Config) {
				c.Scenario, c.Conns, c.Messages, c.Size, c.Slow = "slow", 50, 300, 1000, 0.2
			},
			check: func(t *testing.T, r *Result) {
				if r.Baseline == nil || r.Baseline.Deliveries != 50*300 || r.Baseline.Lost != 0 {
					t.Fatalf("baseline phase %+v", r.Baseline)
				}
				if r.SlowConns != 10 || r.Deliveries != 40*300 || r.Lost != 0 {
					t.Errorf("slow conns %d, fast deliveries %d, lost %d", r.SlowConns, r.Deliveries, r.Lost)
				}
				if r.SlowDropped == 0 || r.Server == nil || r.Server.SlowDropped == 0 {
					t.Errorf("slow dropped %d (metric %+v); closes %v", r.SlowDropped, r.Server, r.SlowCloses)
				}
				if r.Latency == nil || r.Baseline.Latency == nil {
					t.Errorf("missing latency")
				}
			},
		},
		{
			name: "churn",
			cfg: func(c *Config) {
				c.Scenario, c.Conns, c.Rate, c.Duration = "churn", 20, 200, time.Second
			},
			check: func(t *testing.T, r *Result) {
				if r.Cycles < 100 || len(r.ConnectErrors)+len(r.CycleErrors) != 0 || r.Cycle == nil {
					t.Errorf("cycles %d (%.0f/s), errors %v %v", r.Cycles, r.CyclesPerSec, r.ConnectErrors, r.CycleErrors)
				}
				if s := r.Server; s == nil || s.ConnDrift != 0 || s.End.Connections != 0 {
					t.Errorf("server after churn %+v", s)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := base
			tt.cfg(&cfg)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			r, err := Run(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			var tbl bytes.Buffer
			r.WriteTable(&tbl)
			t.Log("\n" + tbl.String())
			tt.check(t, r)
			var page bytes.Buffer
			if err := WriteHTML(&page, tt.name, r); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(page.String(), "<svg") {
				t.Errorf("report has no chart")
			}
		})
	}
}

func TestCompareAndReportFile(t *testing.T) {
	srv := startBaseline(t)
	cfg := Config{Scenario: "fanout", URLs: []string{srv.ws}, Admin: srv.admin, ServerPID: srv.pid,
		Conns: 20, Messages: 10, Duration: 5 * time.Second, Drain: 3 * time.Second, Log: slog.New(slog.DiscardHandler)}
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	c, err := Compare(ctx, cfg, cfg, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.A) != 1 || len(c.B) != 1 || len(c.Figures) == 0 {
		t.Fatalf("comparison %+v", c)
	}
	for _, f := range c.Figures {
		if f.Name == "lost" {
			continue
		}
		if f.MedianRatio <= 0 {
			t.Errorf("figure %s: ratio %v", f.Name, f.MedianRatio)
		}
	}
	var tbl bytes.Buffer
	c.WriteTable(&tbl)
	t.Log("\n" + tbl.String())
	path := filepath.Join(t.TempDir(), "report.html")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.WriteHTML(f, "compare"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte("<svg")) || !bytes.Contains(b, []byte("median A/B")) || bytes.Contains(b, []byte("<script")) {
		t.Errorf("report content unexpected (%d bytes)", len(b))
	}
}

func TestCurveAgainstBaseline(t *testing.T) {
	srv := startBaseline(t)
	cfg := Config{Scenario: "curve", URLs: []string{srv.ws}, Admin: srv.admin, ServerPID: srv.pid, Src: []string{"127.0.0.2", "127.0.0.3"},
		Conns: 50, Steps: []float64{100, 250}, StepDuration: time.Second, Drain: 3 * time.Second, Duration: 5 * time.Second, Publishers: 4}
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	r, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var tbl bytes.Buffer
	r.WriteTable(&tbl)
	t.Log("\n" + tbl.String())
	c := r.Curve
	if c == nil || c.Subscribers != 50 || len(c.Steps) != 2 {
		t.Fatalf("curve %+v", c)
	}
	for i, s := range c.Steps {
		// 100/s to 50 subscribers is 2 messages/s: 2 in the 1 s window; 250/s is 5
		want := []int{2, 5}[i]
		if s.Offered != cfg.Steps[i] || s.Scheduled != want || s.Published != want || s.OfferedDeliv != int64(want*50) {
			t.Errorf("step %d: offered %v scheduled %d published %d offered deliveries %d", i, s.Offered, s.Scheduled, s.Published, s.OfferedDeliv)
		}
		if s.Delivered != s.OfferedDeliv || s.Lost != 0 || !s.Drained || s.Latency == nil || s.Latency.Count != s.Delivered {
			t.Errorf("step %d: delivered %d lost %d drained %v latency %+v", i, s.Delivered, s.Lost, s.Drained, s.Latency)
		}
		// server CPU is in 10 ms ticks: this little work may read as 0
		if s.SendLag == nil || s.SendLag.Count != int64(want) || s.ServerCPUPerM < 0 || s.ServerCores < 0 {
			t.Errorf("step %d: send lag %+v, server CPU/M %v", i, s.SendLag, s.ServerCPUPerM)
		}
		if s.Pass != (s.Latency != nil && s.Latency.P99 < c.KneeP99) {
			t.Errorf("step %d: pass %v with p99 %+v", i, s.Pass, s.Latency)
		}
	}
	if c.Knee != knee(c.Steps) {
		t.Errorf("knee %v", c.Knee)
	}
	var page, svg bytes.Buffer
	if err := WriteHTML(&page, "curve", r); err != nil {
		t.Fatal(err)
	}
	if err := WriteCurveSVG(&svg, r); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<svg", "Delivered vs offered", "polyline"} {
		if !strings.Contains(svg.String(), want) || !strings.Contains(page.String(), want) {
			t.Errorf("picture lacks %q", want)
		}
	}
}

// With worker processes the parent learns the open subscribers and the
// deliveries from their progress reports.
func TestCurveTwoProcesses(t *testing.T) {
	srv := startBaseline(t)
	cfg := Config{Scenario: "curve", URLs: []string{srv.ws}, Admin: srv.admin, ServerPID: srv.pid, Src: []string{"127.0.0.2"},
		Conns: 40, Steps: []float64{200}, StepDuration: time.Second, Drain: 3 * time.Second, Duration: 5 * time.Second,
		Procs: 2, NewWorker: testWorker}
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	r, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := r.Curve
	if c == nil || c.Subscribers != 40 || len(c.Steps) != 1 {
		t.Fatalf("curve %+v", c)
	}
	// 200/s to 40 subscribers: 5 messages in the 1 s window
	if s := c.Steps[0]; s.Scheduled != 5 || s.OfferedDeliv != 200 || s.Delivered != 200 || s.Lost != 0 || s.Latency == nil || s.Latency.Count != 200 {
		t.Errorf("step %+v", s)
	}
}
