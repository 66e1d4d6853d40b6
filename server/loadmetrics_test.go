package server

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/coder/websocket"

	"github.com/wspush/wspush/internal/testsupport"
	"github.com/wspush/wspush/netpoll"
)

// TestLoopConnectionsMetric: the per-loop gauges add up to the connections
// and follow a disconnect; every loop has its tasks-pending gauge.
func TestLoopConnectionsMetric(t *testing.T) {
	s := startServer(t, Config{})
	perLoop := func() (sum float64) {
		for i := range s.group.Loops() {
			sum += metricValue(t, s, fmt.Sprintf(`wspush_loop_connections{loop="%d"}`, i))
			if v := metricValue(t, s, fmt.Sprintf(`wspush_loop_tasks_pending{loop="%d"}`, i)); v < 0 {
				t.Fatalf("loop %d: %v tasks pending", i, v)
			}
		}
		return sum
	}
	conns := make([]*websocket.Conn, 5)
	for i := range conns {
		conns[i] = dial(t, s, "/ws")
	}
	testsupport.WaitFor(t, "5 connections over the loops", func() bool { return perLoop() == 5 })
	conns[0].CloseNow()
	conns[1].CloseNow()
	testsupport.WaitFor(t, "3 connections over the loops", func() bool { return perLoop() == 3 })
}

// TestPushLatencyHistogram: one observation per message that reached
// subscribers, however many loops and subscribers it reached; none for a
// message nobody had subscribed to.
func TestPushLatencyHistogram(t *testing.T) {
	s := startServer(t, Config{Loops: 2})
	// Subscribers on both loops: the kernel spreads connections over the
	// loops' listeners by their address, so dial until both have some.
	var subs []*websocket.Conn
	for len(subs) < 40 {
		subs = append(subs, dial(t, s, "/ws?topics=lat"))
		testsupport.ReadJSON(t, subs[len(subs)-1]) // subscribed
		if s.group.Loops()[0].Stats.Conns.Load() > 0 && s.group.Loops()[1].Stats.Conns.Load() > 0 {
			break
		}
	}
	if len(subs) == 40 {
		t.Fatal("40 connections all landed on one loop") // 1 in 2^39 with two listeners
	}
	const messages = 5
	for i := range messages {
		if code, m := publish(t, s, "lat", fmt.Sprint(i), "Content-Type", "application/json"); code != http.StatusOK {
			t.Fatalf("publish: %d %v", code, m)
		}
	}
	publish(t, s, "nobody", `1`, "Content-Type", "application/json")
	for _, c := range subs {
		for range messages {
			testsupport.ReadJSON(t, c)
		}
	}
	// Every push has been read; the observation follows the writev on the
	// loop: a task posted to each loop now runs after it.
	s.group.Each(func(*netpoll.Loop) {})
	if n := metricValue(t, s, "wspush_push_latency_seconds_count"); n != messages {
		t.Fatalf("%v latency observations for %d messages to %d subscribers on 2 loops, want %d", n, messages, len(subs), messages)
	}
	if sum := metricValue(t, s, "wspush_push_latency_seconds_sum"); sum <= 0 || sum > 10*messages {
		t.Errorf("latency sum %vs for %d messages", sum, messages)
	}
}
