package bench

import (
	"context"
	"testing"
	"time"

	"github.com/wspush/wspush/internal/testsupport"
	wspush "github.com/wspush/wspush/server"
)

// TestReconnectScenario runs the reconnect scenario small against an
// in-process wspush (the baseline server has no history): every client
// recovers exactly the missed pushes.
func TestReconnectScenario(t *testing.T) {
	s, err := wspush.New(wspush.Config{Listen: "127.0.0.1:0", Admin: "127.0.0.1:0", Loops: 2, Logger: testsupport.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	res, err := RunReconnect(context.Background(), ReconnectConfig{
		URL: "ws://" + s.Addr().String() + "/ws", Admin: "http://" + s.AdminAddr(),
		Conns: 200, Topics: 7, Messages: 10, Concurrency: 50, Timeout: time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Recovered != 200 || res.Unrecovered != 0 || res.Failed != 0 || res.Replayed != 200*10 {
		t.Fatalf("result %+v, want all 200 recovered with 10 pushes each", res)
	}
	// Past the history (-history-size 100 by default) nobody recovers.
	res, err = RunReconnect(context.Background(), ReconnectConfig{
		URL: "ws://" + s.Addr().String() + "/ws", Admin: "http://" + s.AdminAddr(),
		Conns: 20, Topics: 2, Messages: 101, Concurrency: 20, Timeout: time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Recovered != 0 || res.Unrecovered != 20 {
		t.Fatalf("result %+v, want all 20 unrecovered", res)
	}
}
