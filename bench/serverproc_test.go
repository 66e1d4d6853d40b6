package bench

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"
)

// A server command whose address another process already holds would be
// measured in that process's place: Run refuses before starting it.
func TestRunRefusesAnAddressTakenBeforeTheServerStarts(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = Run(ctx, Config{Scenario: "connect", URLs: []string{"ws://" + ln.Addr().String() + "/ws"},
		Conns: 1, ServerCmd: []string{"sleep", "5"}})
	if err == nil || !strings.Contains(err.Error(), "another process holds it") {
		t.Fatalf("Run against a taken address: %v, want the address refused", err)
	}
}
