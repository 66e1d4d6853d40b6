package bench

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/wspush/wspush/internal/testsupport"
	wspush "github.com/wspush/wspush/server"
)

// TestInboxAgainstWspush runs the inbox scenario tiny against a wspush
// started in this process (the baseline has no batch endpoint): 40
// inboxes, 5 messages each in batches of 7 (so the last batch is short),
// paced, then 2 each by single publishes.
func TestInboxAgainstWspush(t *testing.T) {
	if testing.Short() {
		t.Skip("smoke test runs a server")
	}
	s, err := wspush.New(wspush.Config{Listen: "127.0.0.1:0", Admin: "127.0.0.1:0", Loops: 2, Logger: testsupport.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	base := Config{URLs: []string{"ws://" + s.Addr().String() + "/ws"}, Admin: "http://" + s.AdminAddr(), Src: []string{"127.0.0.2", "127.0.0.3"},
		Conns: 40, Duration: 10 * time.Second, Drain: 3 * time.Second, Loops: 2, Publishers: 3}
	batched, single := base, base
	batched.Batch, batched.Messages, batched.PubRate = 7, 5, 400
	single.Messages = 2
	r, err := RunInbox(context.Background(), InboxConfig{Batched: batched, Single: single})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name  string
		r     *Result
		batch int
		msgs  int
	}{{"batched", r.Batched, 7, 5}, {"single", r.Single, 0, 2}} {
		want := 40 * tt.msgs
		if tt.r == nil || tt.r.Scenario != "inbox" || tt.r.Topics != 40 || tt.r.Batch != tt.batch {
			t.Fatalf("%s: result %+v", tt.name, tt.r)
		}
		if tt.r.Published != want || tt.r.Deliveries != int64(want) || tt.r.Expected != int64(want) || tt.r.Lost != 0 || tt.r.OutOfOrder != 0 || len(tt.r.PublishErrors) != 0 {
			t.Errorf("%s: published %d deliveries %d expected %d lost %d ooo %d errors %v, want %d of each",
				tt.name, tt.r.Published, tt.r.Deliveries, tt.r.Expected, tt.r.Lost, tt.r.OutOfOrder, tt.r.PublishErrors, want)
		}
		if tt.r.Latency == nil || tt.r.Latency.P99 <= 0 {
			t.Errorf("%s: no latency", tt.name)
		}
	}
	var out bytes.Buffer
	r.WriteTable(&out)
	for _, want := range []string{"7 (POST /publish/batch)", "1 (POST /publish)", "40 topics x 1"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}
