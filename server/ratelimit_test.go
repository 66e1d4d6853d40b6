package server

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
	"time"

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

// readUntilClose reads frames until the server's close frame and returns
// the text answers before it and the close code and reason.
func readUntilClose(t *testing.T, c *rawConn) (answers []string, pongs int, code int, reason string) {
	t.Helper()
	for {
		op, p := c.readFrame(t)
		switch op {
		case 0x8:
			return answers, pongs, int(binary.BigEndian.Uint16(p)), string(p[2:])
		case 0xA:
			pongs++
		default:
			answers = append(answers, string(p))
		}
	}
}

// TestSubChargedPerTopic: a sub of N topics costs N tokens of the command
// rate limit, charged before any topic is answered.
func TestSubChargedPerTopic(t *testing.T) {
	s := startServer(t, Config{Loops: 1, CommandRate: 1, CommandBurst: 10})
	c := dialRaw(t, s)
	c.upgrade(t, "/ws")
	c.writeFrame(t, 0x81, []byte(`{"op":"sub","topics":["a","b","c","d","e","f"]}`))
	for range 6 {
		if _, p := c.readFrame(t); !strings.HasPrefix(string(p), `{"op":"subscribed"`) {
			t.Fatalf("answer %s, want subscribed", p)
		}
	}
	// 4 tokens left (at 1 a second, maybe 5): 6 more topics are over the rate.
	c.writeFrame(t, 0x81, []byte(`{"op":"sub","topics":["g","h","i","j","k","l"]}`))
	if _, p := c.readFrame(t); string(p) != `{"op":"error","error":"rate limited"}` {
		t.Fatalf("answer %s, want rate limited", p)
	}
	if got := testutil.ToFloat64(s.metrics.rateLimited); got != 1 {
		t.Errorf("rate limited %v, want 1", got)
	}
}

// TestHugeSubOneAnswer: a sub naming more topics than the bucket holds,
// the flooder's 1 MiB {"op":"sub","topics":["a","a",...]}, is answered with
// one error, not a subscribed per name; the same again closes 1008.
func TestHugeSubOneAnswer(t *testing.T) {
	s := startServer(t, Config{Loops: 1, MaxCommand: 1 << 20}) // over -max-command it would be closed 1009 at its header
	c := dialRaw(t, s)
	c.upgrade(t, "/ws")
	huge := []byte(`{"op":"sub","topics":["a"` + strings.Repeat(`,"a"`, 1<<16) + `]}`) // 256 KiB: 16 tokens
	flood := append(protoFrame(0x81, huge), protoFrame(0x81, huge)...)
	go c.Write(flood) // the server closes before it reads it all
	answers, _, code, reason := readUntilClose(t, c)
	if len(answers) != 1 || !strings.Contains(answers[0], `more than -command-burst allows in one command (200)`) {
		t.Fatalf("answers before the close: %d, first %.200s; want one error", len(answers), answers)
	}
	if code != 1008 || reason != closeReasonRateLimit {
		t.Fatalf("closed %d %q, want 1008 %q", code, reason, closeReasonRateLimit)
	}
	// The second may be refused for its bytes or, if it took the loop long
	// enough to read for the bucket to refill its bytes' tokens, for its
	// topics again.
	if got := testutil.ToFloat64(s.metrics.overBurst); got < 1 || got > 2 {
		t.Errorf("over burst %v, want 1 or 2", got)
	}
}

// TestMessageChargedPerBytes: a message costs a token per started
// -command-bytes, before it is parsed.
func TestMessageChargedPerBytes(t *testing.T) {
	s := startServer(t, Config{Loops: 1, CommandRate: 1, CommandBurst: 10, CommandBytes: 1024})
	c := dialRaw(t, s)
	c.upgrade(t, "/ws")
	big := []byte(`{"op":"x","pad":"` + strings.Repeat("p", 4000) + `"}`) // 4 tokens
	for range 3 {
		c.writeFrame(t, 0x81, big)
	}
	var answers []string
	for range 3 {
		_, p := c.readFrame(t)
		answers = append(answers, string(p))
	}
	if !strings.Contains(answers[0], "unknown op") || !strings.Contains(answers[1], "unknown op") || answers[2] != `{"op":"error","error":"rate limited"}` {
		t.Fatalf("answers %q: want two unknown ops, then rate limited", answers)
	}
	// Larger than the bucket: one error that says why.
	c.writeFrame(t, 0x81, []byte(`{"op":"x","pad":"`+strings.Repeat("p", 11000)+`"}`))
	if _, p := c.readFrame(t); !strings.Contains(string(p), "more than -command-burst (10)") {
		t.Fatalf("answer %s, want the over-burst error", p)
	}
}

// TestPingFloodClosed: pings cost a token each; a ping over the rate is not
// answered, and a flood of them closes the connection 1008.
func TestPingFloodClosed(t *testing.T) {
	const burst = 5
	s := startServer(t, Config{Loops: 1, CommandRate: 1, CommandBurst: burst})
	c := dialRaw(t, s)
	c.upgrade(t, "/ws")
	ping := protoFrame(0x89, []byte("p"))
	if _, err := c.Write(bytes.Repeat(ping, burst+3*rateLimitStrikes)); err != nil {
		t.Fatal(err)
	}
	answers, pongs, code, reason := readUntilClose(t, c)
	if code != 1008 || reason != closeReasonRateLimit || len(answers) != 0 {
		t.Fatalf("closed %d %q after %q, want 1008 %q", code, reason, answers, closeReasonRateLimit)
	}
	if pongs < 1 || pongs > burst {
		t.Errorf("%d pongs, want 1 to %d", pongs, burst)
	}
	if got := testutil.ToFloat64(s.metrics.controlRateLimited); got < rateLimitStrikes {
		t.Errorf("control frames refused %v, want at least %d", got, rateLimitStrikes)
	}
}

// TestHugeSubRepeatedSlowlyIsClosed: a sub of too many topics sent again
// once the bucket has refilled is parsed a second time at most: its charge
// does not forgive the strike of the first refusal, so the second closes.
func TestHugeSubRepeatedSlowlyIsClosed(t *testing.T) {
	s := startServer(t, Config{Loops: 1, CommandRate: 1000, CommandBurst: 50, MaxCommand: 1 << 20})
	c := dialRaw(t, s)
	c.upgrade(t, "/ws")
	huge := protoFrame(0x81, []byte(`{"op":"sub","topics":["a"`+strings.Repeat(`,"a"`, 1<<16)+`]}`)) // 256 KiB: 16 tokens
	var answers []string
	for range 3 {
		if _, err := c.Write(huge); err != nil {
			break // closed
		}
		op, p := c.readFrame(t)
		if op == 0x8 {
			if code := binary.BigEndian.Uint16(p); code != 1008 || string(p[2:]) != closeReasonRateLimit {
				t.Fatalf("closed %d %q, want 1008 %q", code, p[2:], closeReasonRateLimit)
			}
			break
		}
		answers = append(answers, string(p))
		time.Sleep(200 * time.Millisecond) // the bucket (50 at 1000/s) refills
	}
	if len(answers) != 1 {
		t.Fatalf("%d answers before the close, want one error: %.300q", len(answers), answers)
	}
	if got := testutil.ToFloat64(s.metrics.overBurst); got != 2 {
		t.Errorf("over burst %v, want 2", got)
	}
}
