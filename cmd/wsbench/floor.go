package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"time"

	"github.com/wspush/wspush/bench"
)

// runFloor is "wsbench floor": the syscall floor alone.
func runFloor(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("wsbench floor", flag.ContinueOnError)
	var cfg bench.FloorConfig
	var rates, src, jsonOut string
	fs.IntVar(&cfg.Conns, "conns", 10000, "sockets written to (readers in a child process)")
	fs.IntVar(&cfg.Size, "size", 128, "payload bytes of the prebuilt frame")
	fs.StringVar(&rates, "rates", "5", "sweeps (messages) per second, one phase each, comma separated; 0: back to back")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "length of each phase")
	fs.StringVar(&src, "src", "", "source IPv4 addresses of the readers' connections, e.g. 127.0.0.2-127.0.0.60")
	fs.IntVar(&cfg.Loops, "loops", 2, "reader epoll loops in the child")
	fs.IntVar(&cfg.Writers, "writers", 1, "writer threads, each writing its share of the sockets (a server's loops)")
	fs.StringVar(&jsonOut, "json", "", "write the figures as JSON to this file")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	for _, r := range bench.SplitList(rates) {
		v, err := strconv.ParseFloat(r, 64)
		if err != nil || v < 0 {
			return fmt.Errorf("-rates: %q is not a rate", r)
		}
		cfg.Rates = append(cfg.Rates, v)
	}
	if src != "" {
		s, err := bench.ParseSrcRange(src)
		if err != nil {
			return err
		}
		cfg.Src = s
	}
	cfg.NewReader = newFloorReader
	r, err := bench.RunFloor(ctx, cfg)
	if err != nil {
		return err
	}
	r.WriteTable(os.Stdout)
	return write(&flags{jsonOut: jsonOut}, r, nil)
}

// runSparse is "wsbench sparse": the floor and a server's paced fanout, side by side.
func runSparse(ctx context.Context, args []string, log *slog.Logger) error {
	f, err := parse("sparse", args)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	cfg := f.cfg
	cfg.Scenario = "fanout"
	if cfg.PubRate <= 0 {
		cfg.PubRate = 5
	}
	cfg.Log = log
	cfg.ServerCmd = bench.SplitCommand(f.serverCmd)
	if f.verbose {
		cfg.ServerLog = os.Stderr
	}
	cfg.NewWorker = newWorker
	sc := bench.SparseConfig{Fanout: cfg, Floor: bench.FloorConfig{Loops: cfg.Loops, NewReader: newFloorReader}, Rounds: f.rounds, Target: f.target}
	r, err := bench.RunSparse(ctx, sc)
	if err != nil {
		return err
	}
	r.WriteTable(os.Stdout)
	return write(f, r, nil)
}

// runInbox is "wsbench inbox": one subscriber per topic fed through POST
// /publish/batch, then (with -single-messages) through single publishes.
func runInbox(ctx context.Context, args []string, log *slog.Logger) error {
	f, err := parse("inbox", args)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	cfg := f.cfg
	cfg.Log = log
	cfg.ServerCmd = bench.SplitCommand(f.serverCmd)
	if f.verbose {
		cfg.ServerLog = os.Stderr
	}
	cfg.NewWorker = newWorker
	single := cfg
	single.Messages, single.PubRate = f.singleMessages, 0
	r, err := bench.RunInbox(ctx, bench.InboxConfig{Batched: cfg, Single: single})
	if err != nil {
		return err
	}
	r.WriteTable(os.Stdout)
	return write(f, r, nil)
}

// newFloorReader re-executes this binary as the floor's reader child.
func newFloorReader() (*exec.Cmd, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find executable: %w", err)
	}
	cmd := exec.Command(exe, "floor-reader")
	cmd.Stderr = os.Stderr
	return cmd, nil
}
