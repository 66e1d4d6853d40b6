package server

import (
	"encoding/binary"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wspush/wspush/internal/testsupport"
)

// TestPublishInvalidUTF8Refused: a publish that is not valid UTF-8 would be
// a text frame every compliant subscriber must fail on: it is answered 400
// and never pushed, and takes no sequence number.
func TestPublishInvalidUTF8Refused(t *testing.T) {
	s := startServer(t, Config{})
	sub := dial(t, s, "/ws?topics=news")
	testsupport.ReadJSON(t, sub)
	for _, body := range []string{"\"\xff\"", "\xff", `{"a":"ok` + "\xc0\xaf" + `"}`, "\"\xed\xa0\x80\""} {
		code, res := publish(t, s, "news", body)
		if code != http.StatusBadRequest || !strings.Contains(fmt.Sprint(res["error"]), "UTF-8") {
			t.Errorf("publish %q: %d %v, want 400 naming UTF-8", body, code, res)
		}
	}
	if code, _ := publish(t, s, "news", `"é ✓"`); code != 200 {
		t.Fatalf("valid UTF-8 publish: %d", code)
	}
	if m := testsupport.ReadJSON(t, sub); m["seq"] != 1.0 || m["data"] != "é ✓" {
		t.Fatalf("first push %v, want the valid one with seq 1", m)
	}
}

// TestCloseCodeAnswer: the answer to a client's close echoes its code only
// when a server may send that code (RFC 6455 section 7.4.1): 1010 is for
// clients alone and is answered 1000; codes no one may send fail with 1002.
func TestCloseCodeAnswer(t *testing.T) {
	s := startServer(t, Config{Loops: 1})
	for _, tc := range []struct{ got, want uint16 }{
		{1000, 1000}, {1001, 1001}, {1003, 1003}, {1008, 1008}, {1011, 1011}, {4000, 4000},
		{1010, 1000},
		{1005, 1002}, {1006, 1002}, {1015, 1002}, {999, 1002}, {1016, 1002}, {2999, 1002}, {5000, 1002},
	} {
		c := dialRaw(t, s)
		c.upgrade(t, "/ws")
		c.writeFrame(t, 0x88, protoClose(tc.got, ""))
		if code := c.closeCode(t); code != int(tc.want) {
			t.Errorf("close %d answered %d, want %d", tc.got, code, tc.want)
		}
	}
}

// TestSlowConsumerCloseFrameIsWhole: a slow consumer dropped while the
// kernel's send buffer is full still gets, once it reads, every frame it
// was sent whole and then the close 1013: the close frame is queued behind
// what is on the wire instead of written past it (or not at all).
func TestSlowConsumerCloseFrameIsWhole(t *testing.T) {
	const maxBuffered = 64 << 10
	s := startServer(t, Config{Loops: 1, MaxBuffered: maxBuffered, SendBuffer: 8 << 10, CloseTimeout: 10 * time.Second})
	slow := dialRaw(t, s)
	slow.Conn.(interface{ SetReadBuffer(int) error }).SetReadBuffer(4 << 10)
	slow.upgrade(t, "/ws?topics=firehose")
	payload := `"` + strings.Repeat("x", 4000) + `"`
	for i := 1; testutil.ToFloat64(s.metrics.slowDropped) == 0; i++ {
		if i > 2000 {
			t.Fatalf("no slow consumer dropped after %d pushes", i)
		}
		publish(t, s, "firehose", payload)
	}
	// Dropped: its subscription is gone at once.
	if _, res := publish(t, s, "firehose", `1`); res["subscribers"] != 0.0 {
		t.Fatalf("after the drop the topic has %v subscribers", res["subscribers"])
	}
	// Now read: whole frames (the subscribed answer, pushes), then the close.
	pushes := 0
	for {
		op, p := slow.readFrame(t) // fails the test on a truncated frame
		if op == 0x8 {
			if code := binary.BigEndian.Uint16(p); code != 1013 || string(p[2:]) != closeReasonSlow {
				t.Fatalf("closed with %d %q, want 1013 %q", code, p[2:], closeReasonSlow)
			}
			break
		}
		if op != 0x1 {
			t.Fatalf("frame %#x before the close", op)
		}
		pushes++
	}
	hsExpectEOF(t, slow)
	t.Logf("%d frames, then the close 1013", pushes)
}

// TestTopicsQueryStopsAtMaxSubs: ?topics= is refused at the first distinct
// topic past -max-subs, before the names after it are even checked; repeats
// of a topic cost nothing.
func TestTopicsQueryStopsAtMaxSubs(t *testing.T) {
	s := startServer(t, Config{Loops: 1, MaxSubs: 3})
	resp, body, _ := hsExchange(t, s, hsWS("/ws?topics=a,b,c,d,bad%20topic"))
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "at most 3") {
		t.Fatalf("four topics then an invalid one: %d %q, want 400 saying at most 3", resp.StatusCode, body)
	}
	c := dialRaw(t, s)
	c.upgrade(t, "/ws?topics="+strings.Repeat("a,", 2000)+"b,"+strings.Repeat("b,a,", 500))
	for _, want := range []string{"a", "b"} {
		// (v1.1) the answer carries the topic's epoch.
		if op, p := c.readFrame(t); op != 0x1 || !strings.HasPrefix(string(p), fmt.Sprintf(`{"op":"subscribed","topic":%q,"seq":0,"epoch":"`, want)) || !epochAnswer.Match(p) {
			t.Fatalf("got %#x %s, want subscribed %s", op, p, want)
		}
	}
}

// BenchmarkHandshakeManyTopics: a handshake whose ?topics= holds 1,500
// distinct names (what an 8 KiB request holds) against -max-subs 100.
func BenchmarkHandshakeManyTopics(b *testing.B) {
	ls := fuzzLoopServer()
	ls.srv.cfg.MaxHeader = 16 << 10
	ls.srv.cfg.MaxSubs = 100
	ls.up.ReadBufferSize = 16 << 10
	var names []string
	for i := range 1500 {
		names = append(names, fmt.Sprintf("t%d", i))
	}
	req := []byte(hsWS("/ws?topics=" + strings.Join(names, ",")))
	b.ReportAllocs()
	for b.Loop() {
		if r := ls.parseHandshake(req); r.status != http.StatusBadRequest {
			b.Fatalf("status %d", r.status)
		}
	}
}
