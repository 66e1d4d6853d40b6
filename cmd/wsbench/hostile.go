package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/wspush/wspush/bench"
)

// runHostile is `wsbench hostile`: the memory attacks of issue 10 against a
// running server, with a well-behaved subscriber measuring its latency
// (bench.RunHostile). -baseline first runs the subscriber alone for the
// same duration, for the p99 ratio. -attack-only runs the hostile peers
// alone, for a second wsbench process with no peers to measure from outside
// the attackers' process (docs/benchmarks.md).
func runHostile(ctx context.Context, args []string) error {
	var cfg bench.HostileConfig
	var src, jsonOut, readyFile string
	var baseline bool
	fs := flag.NewFlagSet("wsbench hostile", flag.ContinueOnError)
	fs.StringVar(&cfg.URL, "url", "ws://127.0.0.1:8080/ws", "the server's WebSocket URL")
	fs.StringVar(&cfg.Admin, "admin", "http://127.0.0.1:8081", "the server's admin base URL (publish, /metrics)")
	fs.IntVar(&cfg.ServerPID, "server-pid", 0, "server pid for RSS from /proc")
	fs.StringVar(&src, "src", "127.0.0.2-127.0.0.21", "source IPv4 addresses of the hostile peers")
	fs.IntVar(&cfg.Headers, "headers", 600, "peers sending one frame header declaring 1 MiB, then nothing")
	fs.IntVar(&cfg.Floods, "floods", 200, `peers that never read and flood 1 MiB {"op":"sub"} messages`)
	fs.IntVar(&cfg.Pings, "pings", 200, "peers that never read and flood 125-byte pings")
	fs.DurationVar(&cfg.Duration, "duration", 15*time.Second, "measurement time (each run)")
	fs.Float64Var(&cfg.PubRate, "pub-rate", 100, "publishes per second to the well-behaved subscriber")
	fs.BoolVar(&cfg.LiveHeap, "live-heap", false, "also sample the server's heap after a forced GC, every 500 ms (needs the server's -pprof)")
	fs.BoolVar(&cfg.Timeline, "timeline", false, "keep every push's publish time and latency in the JSON output (where in the run the tail is)")
	fs.BoolVar(&cfg.AttackOnly, "attack-only", false, "run the hostile peers alone for -duration, no subscriber (measure from another wsbench hostile process with no peers)")
	fs.StringVar(&readyFile, "ready-file", "", "create this file once the hostile peers are connected (to start a measuring process then)")
	fs.BoolVar(&baseline, "baseline", true, "first run the subscriber without hostile peers, for the p99 ratio")
	fs.StringVar(&jsonOut, "json", "", "write the results as JSON to this file")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return nil
		}
		return err
	}
	var err error
	if cfg.Src, err = bench.ParseSrcRange(src); err != nil {
		return err
	}
	cfg.Log = func(format string, a ...any) { fmt.Fprintf(os.Stderr, format+"\n", a...) }
	if readyFile != "" {
		cfg.Ready = func() {
			if err := os.WriteFile(readyFile, nil, 0o644); err != nil {
				cfg.Log("ready file: %v", err)
			}
		}
	}
	if cfg.AttackOnly {
		baseline = false
	}
	out := map[string]*bench.HostileResult{}
	if baseline {
		b := cfg
		b.Headers, b.Floods, b.Pings = 0, 0, 0
		r, err := bench.RunHostile(ctx, b)
		if err != nil {
			return fmt.Errorf("baseline: %w", err)
		}
		fmt.Println("== baseline: the subscriber alone")
		r.WriteTable(os.Stdout)
		out["baseline"] = r
	}
	r, err := bench.RunHostile(ctx, cfg)
	if err != nil {
		return err
	}
	fmt.Println("== hostile")
	r.WriteTable(os.Stdout)
	out["hostile"] = r
	if b := out["baseline"]; b != nil && b.Latency != nil && r.Latency != nil && b.Latency.P99 > 0 {
		fmt.Printf("p99 ratio (hostile / baseline): %.2f\n", r.Latency.P99/b.Latency.P99)
	}
	if jsonOut != "" {
		j, err := json.MarshalIndent(out, "", "  ")
		if err != nil {
			return err
		}
		return os.WriteFile(jsonOut, j, 0o644)
	}
	return nil
}
