// Command wsbench load-tests wspush (or any server speaking
// docs/protocol.md): connect, fanout, slow, churn, curve and compare
// scenarios, the syscall floor (floor) and the floor against a server's
// paced fan-out (sparse),
// from one process driving up to ~19,900 connections over epoll, or from
// several worker processes (-procs, re-executing itself as "wsbench worker").
//
// Concurrency: main parses flags and runs one scenario at a time through the
// bench package; the progress callback runs on bench's monitor goroutine and
// only writes to stdout.
//
// Usage:
//
//	wsbench connect -url ws://127.0.0.1:8080/ws -conns 15000 -rate 5000 -src 127.0.0.2-127.0.0.60 -server-pid PID -admin http://127.0.0.1:8081
//	wsbench fanout  -url ... -admin ... -conns 10000 -topics 1 -messages 200 -size 128
//	wsbench slow    -url ... -admin ... -conns 2000 -messages 2000 -slow 0.1
//	wsbench churn   -url ... -conns 200 -rate 500 -duration 10s
//	wsbench curve   -url ... -admin ... -conns 10000 -steps 10k,50k,100k,200k -step-duration 5s -svg curve.svg
//	wsbench floor   -conns 10000 -size 128 -rates 5,0 -duration 10s -src 127.0.0.2-127.0.0.60
//	wsbench sparse  -server-cmd "bin/wspush ..." -url ... -admin ... -conns 10000 -pub-rate 5 -messages 60 -rounds 2
//	wsbench reconnect -url ... -admin ... -conns 10000 -topics 100 -messages 50 -server-pid PID
//	wsbench hostile -url ... -admin ... -server-pid PID -headers 600 -floods 200 -pings 200
//	wsbench inbox   -server-cmd "bin/wspush ..." -url ... -admin ... -conns 10000 -batch 100 -pub-rate 200000 -messages 100 -single-messages 3
//	wsbench compare -scenario fanout -a-url ... -a-admin ... -a-pid ... -b-url ... -b-admin ... -b-pid ... -rounds 3
//	wsbench compare -scenario connect -a-cmd "bin/wspush -listen 127.0.0.1:27180 -admin 127.0.0.1:27181" -a-url ... -a-admin ... -b-cmd ... (fresh servers every run)
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/wspush/wspush/bench"
)

const usage = `usage: wsbench <connect|fanout|slow|churn|curve|compare|floor|sparse|reconnect|hostile|inbox> [flags]
       wsbench <scenario> -h   for the flags
`

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch cmd := os.Args[1]; cmd {
	case "worker":
		err = bench.ServeWorker(ctx, os.Stdin, os.Stdout)
	case "floor-reader":
		err = bench.ServeFloorReader(ctx, os.Stdin, os.Stdout)
	case "floor":
		err = runFloor(ctx, os.Args[2:])
	case "sparse":
		err = runSparse(ctx, os.Args[2:], log)
	case "inbox":
		err = runInbox(ctx, os.Args[2:], log)
	case "connect", "fanout", "slow", "churn", "curve", "compare":
		err = run(ctx, cmd, os.Args[2:], log)
	case "reconnect":
		err = runReconnect(ctx, os.Args[2:])
	case "hostile":
		err = runHostile(ctx, os.Args[2:])
	case "-h", "-help", "--help", "help":
		fmt.Fprint(os.Stdout, usage)
	default:
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	if err != nil {
		log.Error("wsbench", "err", err)
		os.Exit(1)
	}
}

type flags struct {
	cfg                         bench.Config
	url, src                    string
	jsonOut, report, svg        string
	steps                       string
	aName, bName                string
	target                      float64
	scenario                    string
	aURL, aAdmin, bURL, bAdmin  string
	serverCmd, aCmd, bCmd       string
	aPID, bPID, rounds, perProc int
	singleMessages              int
	verbose, noProgress         bool
}

func parse(cmd string, args []string) (*flags, error) {
	f := &flags{}
	fs := flag.NewFlagSet("wsbench "+cmd, flag.ContinueOnError)
	c := &f.cfg
	fs.StringVar(&f.url, "url", "ws://127.0.0.1:8080/ws", "WebSocket URL(s), ws:// or wss://, comma separated: connections spread round robin")
	fs.StringVar(&c.Admin, "admin", "", "admin base URL for publishing and /metrics, e.g. http://127.0.0.1:8081")
	fs.StringVar(&f.src, "src", "", "source IPv4 addresses, e.g. 127.0.0.2-127.0.0.60 (bound before connect)")
	fs.IntVar(&c.Conns, "conns", 1000, "connections (churn: connections in flight at most)")
	fs.Float64Var(&c.Rate, "rate", 0, "connections per second (churn: cycles per second); 0: as fast as possible")
	fs.DurationVar(&c.Duration, "duration", 60*time.Second, "bound of the ramp + publishing (churn: of the churn; slow: per phase)")
	fs.IntVar(&c.Topics, "topics", 1, "topics; subscriber i listens to topic i mod topics")
	fs.IntVar(&c.Messages, "messages", 100, "messages published per topic")
	fs.IntVar(&c.Size, "size", 128, "bytes of each published JSON value")
	fs.Float64Var(&c.PubRate, "pub-rate", 0, "messages per second over all topics; 0: as fast as accepted")
	fs.IntVar(&c.Publishers, "publishers", 4, "concurrent HTTP publishers, one keep-alive connection each (curve: 32)")
	fs.StringVar(&f.steps, "steps", "10k,25k,50k,100k,200k,300k,500k,1M", "curve: offered deliveries per second, one step each (k, M suffixes)")
	fs.DurationVar(&c.StepDuration, "step-duration", 5*time.Second, "curve: publishing window of each step")
	fs.DurationVar(&c.KneeP99, "knee-p99", 150*time.Millisecond, "curve: a step passes when its p99 is below this and nothing is lost")
	fs.IntVar(&c.StopAfter, "stop-after", 1, "curve: end the sweep after this many overloaded steps (deliveries missing -drain after the last answer); 0: run every step")
	fs.StringVar(&f.svg, "svg", "", "curve: write the curve picture alone (SVG) to this file")
	fs.Float64Var(&c.Slow, "slow", 0.1, "slow: fraction of subscribers that stop reading")
	fs.IntVar(&c.SlowRcvBuf, "slow-rcvbuf", 4096, "slow: SO_RCVBUF of slow subscribers")
	fs.IntVar(&c.Loops, "loops", 2, "epoll loops per process")
	fs.IntVar(&c.Procs, "procs", 0, "worker processes; 0: one per 19000 connections")
	fs.IntVar(&f.perProc, "conns-per-proc", 19000, "with -procs 0: connections per worker process")
	fs.IntVar(&c.ServerPID, "server-pid", 0, "server pid for RSS, CPU and threads from /proc")
	fs.StringVar(&f.serverCmd, "server-cmd", "", "start this server command line fresh for the run (split on spaces) and measure it")
	fs.BoolVar(&c.Insecure, "insecure", false, "wss://: do not verify the server's certificate (self-signed test certificates)")
	fs.DurationVar(&c.HandshakeTimeout, "handshake-timeout", 10*time.Second, "connect + upgrade timeout per connection")
	fs.DurationVar(&c.Drain, "drain", 5*time.Second, "fanout: wait at most this long for the last deliveries")
	fs.DurationVar(&c.Hold, "hold", time.Second, "connect: hold the connections this long before measuring the server")
	fs.StringVar(&f.jsonOut, "json", "", "write every figure as JSON to this file")
	fs.StringVar(&f.report, "report", "", "write an HTML report (inline SVG charts) to this file")
	fs.BoolVar(&f.verbose, "v", false, "log progress to stderr")
	fs.BoolVar(&f.noProgress, "no-progress", false, "no progress bar")
	if cmd == "sparse" {
		fs.IntVar(&f.rounds, "rounds", 2, "rounds; each runs the floor, then the server")
		fs.Float64Var(&f.target, "target", 1.1, "the ratio (server / floor) both figures must stay within")
	}
	if cmd == "inbox" {
		fs.IntVar(&c.Batch, "batch", 100, "messages per POST /publish/batch")
		fs.IntVar(&f.singleMessages, "single-messages", 0, "then the same inboxes with this many messages per topic, one POST /publish each, as fast as accepted (server CPU per publish beside the batches); 0: skip")
	}
	if cmd == "compare" {
		fs.StringVar(&f.scenario, "scenario", "fanout", "scenario to compare: connect, fanout, slow, churn or curve")
		fs.StringVar(&f.aURL, "a-url", "", "target A WebSocket URL(s)")
		fs.StringVar(&f.aAdmin, "a-admin", "", "target A admin URL")
		fs.IntVar(&f.aPID, "a-pid", 0, "target A server pid")
		fs.StringVar(&f.aCmd, "a-cmd", "", "target A server command line, started fresh for every run")
		fs.StringVar(&f.bURL, "b-url", "", "target B WebSocket URL(s)")
		fs.StringVar(&f.bAdmin, "b-admin", "", "target B admin URL")
		fs.IntVar(&f.bPID, "b-pid", 0, "target B server pid")
		fs.StringVar(&f.bCmd, "b-cmd", "", "target B server command line, started fresh for every run")
		fs.IntVar(&f.rounds, "rounds", 3, "rounds; each runs A then B")
		fs.StringVar(&f.aName, "a-name", "A", "target A name in reports")
		fs.StringVar(&f.bName, "b-name", "B", "target B name in reports")
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	c.Scenario = cmd
	scenario := cmd
	if cmd == "compare" {
		scenario = f.scenario
	}
	set := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	if scenario == "curve" && !set["publishers"] {
		c.Publishers = 32
	}
	steps, err := bench.ParseRates(f.steps)
	if err != nil {
		return nil, fmt.Errorf("-steps: %w", err)
	}
	c.Steps = steps
	c.URLs = bench.SplitList(f.url)
	if f.src != "" {
		src, err := bench.ParseSrcRange(f.src)
		if err != nil {
			return nil, err
		}
		c.Src = src
	}
	if c.Procs <= 0 {
		c.Procs = (c.Conns + f.perProc - 1) / max(1, f.perProc)
		if cmd == "churn" {
			c.Procs = 1
		}
	}
	return f, nil
}

func run(ctx context.Context, cmd string, args []string, log *slog.Logger) error {
	f, err := parse(cmd, args)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	cfg := f.cfg
	if f.verbose {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	cfg.Log = log
	cfg.ServerCmd = bench.SplitCommand(f.serverCmd)
	if f.verbose {
		cfg.ServerLog = os.Stderr
	}
	cfg.NewWorker = newWorker
	bar := newProgress(os.Stdout, !f.noProgress)
	cfg.OnProgress = bar.update
	if cmd != "compare" {
		r, err := bench.Run(ctx, cfg)
		bar.clear()
		if err != nil {
			return err
		}
		r.WriteTable(os.Stdout)
		if err := writeSVG(f, r); err != nil {
			return err
		}
		return write(f, r, func(w io.Writer) error { return bench.WriteHTML(w, "wsbench "+cmd, r) })
	}
	if f.aURL == "" || f.bURL == "" {
		return errors.New("compare needs -a-url and -b-url")
	}
	a, b := cfg, cfg
	a.Scenario, b.Scenario = f.scenario, f.scenario
	a.URLs, a.Admin, a.ServerPID = bench.SplitList(f.aURL), f.aAdmin, f.aPID
	b.URLs, b.Admin, b.ServerPID = bench.SplitList(f.bURL), f.bAdmin, f.bPID
	a.ServerCmd, b.ServerCmd = bench.SplitCommand(f.aCmd), bench.SplitCommand(f.bCmd)
	a.Label, b.Label = f.aName, f.bName
	c, err := bench.Compare(ctx, a, b, f.rounds)
	bar.clear()
	if err != nil {
		return err
	}
	c.WriteTable(os.Stdout)
	if err := writeSVG(f, append(append([]*bench.Result(nil), c.A...), c.B...)...); err != nil {
		return err
	}
	return write(f, c, func(w io.Writer) error { return c.WriteHTML(w, "wsbench compare "+f.scenario) })
}

func write(f *flags, v any, html func(io.Writer) error) error {
	if f.jsonOut != "" {
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return fmt.Errorf("json: %w", err)
		}
		if err := os.WriteFile(f.jsonOut, b, 0o644); err != nil {
			return fmt.Errorf("write json: %w", err)
		}
	}
	if f.report != "" && html != nil {
		out, err := os.Create(f.report)
		if err != nil {
			return fmt.Errorf("report: %w", err)
		}
		if err := html(out); err != nil {
			out.Close()
			return fmt.Errorf("report: %w", err)
		}
		if err := out.Close(); err != nil {
			return fmt.Errorf("report: %w", err)
		}
	}
	return nil
}

// writeSVG writes the curve picture if -svg asks for it.
func writeSVG(f *flags, rs ...*bench.Result) error {
	if f.svg == "" {
		return nil
	}
	out, err := os.Create(f.svg)
	if err != nil {
		return fmt.Errorf("svg: %w", err)
	}
	if err := bench.WriteCurveSVG(out, rs...); err != nil {
		out.Close()
		return fmt.Errorf("svg: %w", err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("svg: %w", err)
	}
	return nil
}

// newWorker re-executes this binary as a worker process.
func newWorker() (bench.Worker, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find executable: %w", err)
	}
	cmd := exec.Command(exe, "worker")
	cmd.Stderr = os.Stderr
	return bench.NewProcessWorker(cmd)
}

// progress draws a one-line bar when stdout is a terminal.
type progress struct {
	w  io.Writer
	on bool
}

func newProgress(f *os.File, want bool) *progress {
	st, err := f.Stat()
	return &progress{w: f, on: want && err == nil && st.Mode()&os.ModeCharDevice != 0}
}

func (p *progress) update(s bench.Status) {
	if !p.on {
		return
	}
	const width = 30
	frac := 0.0
	if s.Total > 0 {
		frac = min(1, float64(s.Done)/float64(s.Total))
	}
	n := int(frac * width)
	fmt.Fprintf(p.w, "\r\033[K%s %-7s [%s%s] %3.0f%%  open %d  failed %d  deliveries %d  %.1fs",
		s.Label, s.Phase, strings.Repeat("=", n), strings.Repeat(" ", width-n), frac*100, s.Open, s.Failed, s.Delivers, s.Elapsed.Seconds())
}

func (p *progress) clear() {
	if p.on {
		fmt.Fprint(p.w, "\r\033[K")
	}
}
