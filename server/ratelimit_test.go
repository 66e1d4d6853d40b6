package server

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestCommandRateLimit: a client over its command rate gets "rate limited"
// errors instead of answers, and, sending on, close 1008 "rate limit".
func TestCommandRateLimit(t *testing.T) {
	const burst = 5
	s := startServer(t, Config{Loops: 1, CommandRate: 1, CommandBurst: burst})
	c := dialRaw(t, s)
	c.upgrade(t, "/ws")
	// One write: the commands arrive together, far faster than 1 a second.
	var flood bytes.Buffer
	for i := range burst + 3*rateLimitStrikes {
		flood.Write(protoFrame(0x81, fmt.Appendf(nil, `{"op":"sub","topics":["t%d"]}`, i)))
	}
	if _, err := c.Write(flood.Bytes()); err != nil {
		t.Fatal(err)
	}
	subscribed, limited := 0, 0
	for {
		op, p := c.readFrame(t)
		if op == 0x8 {
			if code := binary.BigEndian.Uint16(p); code != 1008 || string(p[2:]) != closeReasonRateLimit {
				t.Fatalf("closed with %d %q, want 1008 %q", code, p[2:], closeReasonRateLimit)
			}
			break
		}
		switch string(p) {
		case `{"op":"error","error":"rate limited"}`:
			limited++
		default:
			subscribed++
		}
	}
	// At 1 a second the bucket refills at most once or twice in between,
	// however slowly a loaded machine reads the flood.
	if subscribed < burst || subscribed > burst+2 || limited < rateLimitStrikes-2 {
		t.Fatalf("%d answered and %d refused before the close; want the burst of %d, then about %d refusals", subscribed, limited, burst, rateLimitStrikes)
	}
	if n := testutil.ToFloat64(s.metrics.rateLimitCloses); n != 1 {
		t.Errorf("rate limit closes %v, want 1", n)
	}
	if n := testutil.ToFloat64(s.metrics.rateLimited); int(n) != limited+1 {
		t.Errorf("rate limited %v, want %d", n, limited+1)
	}
}
