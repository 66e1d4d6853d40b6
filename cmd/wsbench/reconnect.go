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

// runReconnect is `wsbench reconnect`: the reconnect storm of issue 11
// (bench/reconnect.go).
//
//	wsbench reconnect -url ws://127.0.0.1:8080/ws -admin http://127.0.0.1:8081 -conns 10000 -topics 100 -messages 50 -server-pid PID
func runReconnect(ctx context.Context, args []string) error {
	var cfg bench.ReconnectConfig
	fs := flag.NewFlagSet("wsbench reconnect", flag.ContinueOnError)
	fs.StringVar(&cfg.URL, "url", "ws://127.0.0.1:8080/ws", "WebSocket URL")
	fs.StringVar(&cfg.Admin, "admin", "http://127.0.0.1:8081", "admin API base URL")
	fs.IntVar(&cfg.Conns, "conns", 10000, "clients")
	fs.IntVar(&cfg.Topics, "topics", 100, "topics; client i listens to topic i mod topics")
	fs.IntVar(&cfg.Messages, "messages", 50, "messages published per topic while the clients are away (how far back they resume)")
	fs.IntVar(&cfg.Size, "size", 128, "bytes of each published JSON value")
	fs.IntVar(&cfg.Concurrency, "concurrency", 500, "handshakes in flight at once")
	fs.IntVar(&cfg.ServerPID, "server-pid", 0, "server process id, for the server CPU of the storm")
	fs.DurationVar(&cfg.Timeout, "timeout", 5*time.Minute, "bound on the whole run")
	jsonOut := fs.String("json", "", "write the result as JSON to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	res, err := bench.RunReconnect(ctx, cfg)
	if err != nil {
		return err
	}
	fmt.Printf("reconnect: %d clients on %d topics, %d messages back\n", res.Conns, res.Topics, res.Messages)
	fmt.Printf("  recovered %d, unrecovered %d, failed %d; pushes replayed %d\n", res.Recovered, res.Unrecovered, res.Failed, res.Replayed)
	fmt.Printf("  first connect %v, publish %v, storm %v\n", res.Connect.Round(time.Millisecond), res.Publish.Round(time.Millisecond), res.Storm.Round(time.Millisecond))
	if cfg.ServerPID > 0 {
		fmt.Printf("  server CPU during the storm %.2f s (%.1f µs per client)\n", res.ServerCPUSeconds, res.ServerCPUSeconds*1e6/float64(res.Conns))
	}
	if res.FirstError != "" {
		fmt.Printf("  first error: %s\n", res.FirstError)
	}
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(res, "", "  ")
		if err := os.WriteFile(*jsonOut, b, 0o644); err != nil {
			return err
		}
	}
	if res.Recovered != res.Conns {
		return fmt.Errorf("%d of %d clients recovered", res.Recovered, res.Conns)
	}
	return nil
}
