package server

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/sys/unix"

	"github.com/wspush/wspush/internal/bufpool"
	"github.com/wspush/wspush/internal/testsupport"
	"github.com/wspush/wspush/netpoll"
)

// maskedFrame is a client frame (FIN, opcode op) with a zero mask: its
// payload goes on the wire as is, so a large flood costs the test no work.
func maskedFrame(op byte, payload []byte) []byte {
	f := []byte{0x80 | op}
	switch n := len(payload); {
	case n < 126:
		f = append(f, 0x80|byte(n))
	case n < 1<<16:
		f = append(f, 0x80|126, byte(n>>8), byte(n))
	default:
		f = append(f, 0x80|127)
		f = binary.BigEndian.AppendUint64(f, uint64(n))
	}
	f = append(f, 0, 0, 0, 0)
	return append(f, payload...)
}

// dialNonReader opens a raw upgraded connection that will never read: a
// small receive buffer, so the kernel absorbs little of what it is sent.
func dialNonReader(t *testing.T, s *Server) *rawConn {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var err error
		c.Control(func(fd uintptr) { err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<10) })
		return err
	}}
	c, err := d.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	rc := &rawConn{Conn: c, r: bufio.NewReader(c)}
	rc.upgrade(t, "/ws")
	return rc
}

// maxQueued is the largest bufferedAmount among the open connections.
func maxQueued(s *Server) int {
	n := 0
	s.group.Each(func(l *netpoll.Loop) {
		for _, c := range l.Conns() {
			n = max(n, c.Buffered())
		}
	})
	return n
}

// roundTrip checks that a well-behaved client still gets its push.
func roundTrip(t *testing.T, s *Server, topic string) {
	t.Helper()
	c := dial(t, s, "/ws?topics="+topic)
	testsupport.ReadJSON(t, c) // subscribed
	if status, _ := publish(t, s, topic, `"hello"`); status != 200 {
		t.Fatalf("publish: %d", status)
	}
	if m := testsupport.ReadJSON(t, c); m["data"] != "hello" {
		t.Fatalf("push: %v", m)
	}
	c.Close(websocket.StatusNormalClosure, "")
}

// TestNonReadingFloodsAreBounded: peers that never read and flood commands
// or pings make the server queue answers; every byte queued counts toward
// bufferedAmount, so each is dropped (1013, or 1008 over the command rate) or held back by TCP (its input
// left unread), never queued past -max-buffered, and a well-behaved client
// is served meanwhile.
func TestNonReadingFloodsAreBounded(t *testing.T) {
	const maxBuffered = 256 << 10
	// The floods are of 1 MiB messages; 256 KiB ones amplify the
	// same and keep the test fast under -race.
	sub := `{"op":"sub","topics":["a"` + strings.Repeat(`,"a"`, (256<<10-30)/4) + `]}`
	unknown := `{"op":"` + strings.Repeat("<", 256<<10-20) + `"}`
	cases := []struct {
		name    string
		frame   []byte
		dropped bool // must end dropped; else dropped or held
	}{
		{"sub flood", maskedFrame(0x1, []byte(sub)), true},
		{"unknown op of <", maskedFrame(0x1, []byte(unknown)), false},
		{"ping flood", maskedFrame(0x9, []byte("p")), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := startServer(t, Config{Loops: 1, MaxBuffered: maxBuffered, SendBuffer: 16 << 10, MaxMessage: 2 << 20, MaxCommand: 2 << 20})
			c := dialNonReader(t, s)
			flood := bytes.Repeat(tc.frame, max(1, (4<<20)/len(tc.frame)))
			var stalled atomic.Bool
			go func() {
				for sent := 0; ; sent += len(flood) {
					if sent >= 16<<20 {
						stalled.Store(true) // the server took it all, within the bound
						return
					}
					c.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
					if _, err := c.Write(flood); err != nil {
						var ne net.Error
						if errors.As(err, &ne) && ne.Timeout() {
							stalled.Store(true) // the server stopped reading
							return
						}
						return // dropped
					}
				}
			}()
			dropped := func() bool {
				// 1013 past -max-buffered, or 1008 over the command rate (a
				// sub pays per topic: the flood's first one is refused whole).
				return testutil.ToFloat64(s.metrics.slowDropped)+testutil.ToFloat64(s.metrics.rateLimitCloses) > 0
			}
			deadline := time.Now().Add(4 * time.Second)
			for !dropped() && !(stalled.Load() && !tc.dropped) {
				if q := maxQueued(s); q > maxBuffered {
					t.Fatalf("%d bytes queued for a peer that does not read, over -max-buffered %d", q, maxBuffered)
				}
				if time.Now().After(deadline) {
					t.Fatalf("neither dropped nor held back after 4 s (stalled %v)", stalled.Load())
				}
				time.Sleep(5 * time.Millisecond)
			}
			if q := maxQueued(s); q > maxBuffered {
				t.Fatalf("%d bytes queued", q)
			}
			roundTrip(t, s, "good")
		})
	}
}

// TestUnknownOpIsNotEchoedWhole: the error answer quotes a bounded prefix of
// the op, not 6 bytes of JSON escape per byte sent.
func TestUnknownOpIsNotEchoedWhole(t *testing.T) {
	s := startServer(t, Config{MaxCommand: 1 << 20})
	c := dial(t, s, "/ws")
	sendJSON(t, c, `{"op":"`+strings.Repeat("<", 100<<10)+`"}`)
	m := testsupport.ReadJSON(t, c)
	if e, _ := m["error"].(string); m["op"] != "error" || len(e) > 200 || !strings.HasPrefix(e, "unknown op") {
		t.Fatalf("answer %.200v (%d bytes of error)", m, len(e))
	}
}

// TestPendingBytesAreBounded: unfinished messages count against the loop's
// share of -max-pending-bytes; the connection that would go over it is
// closed with 1009 and the others complete their messages.
func TestPendingBytesAreBounded(t *testing.T) {
	const maxMessage = 64 << 10
	s := startServer(t, Config{Loops: 1, Echo: true, MaxMessage: maxMessage, MaxPendingBytes: 4*(maxMessage-freeHold) + 1000})
	payload := bytes.Repeat([]byte("x"), maxMessage-100)
	frame := maskedFrame(0x1, payload)
	var peers []*rawConn
	for i := 0; i < 4; i++ {
		p := dialRaw(t, s)
		p.upgrade(t, "/echo")
		p.Write(frame[:len(frame)-10]) // all but the last 10 bytes
		peers = append(peers, p)
	}
	testsupport.WaitFor(t, "the partial messages to be held", func() bool { return s.loops[0].pending.Load() >= 4*int64(len(frame)-10-freeHold) })
	// A small partial frame is not refused though the budget is full.
	small := dialRaw(t, s)
	small.upgrade(t, "/echo")
	ping := maskedFrame(0x9, []byte("still here"))
	small.Write(ping[:5])
	over := dialRaw(t, s)
	over.upgrade(t, "/echo")
	over.Write(frame[:len(frame)-10])
	if code := over.closeCode(t); code != 1009 {
		t.Fatalf("the connection over -max-pending-bytes closed with %d, want 1009", code)
	}
	if n := testutil.ToFloat64(s.limits.pendingRefused); n != 1 {
		t.Fatalf("wspush_pending_refused_total = %v", n)
	}
	small.Write(ping[5:])
	if op, p := small.readFrame(t); op != 0xA || string(p) != "still here" {
		t.Fatalf("the small partial frame's peer got %#x %q, want its pong", op, p)
	}
	for i, p := range peers {
		p.Write(frame[len(frame)-10:])
		p.SetReadDeadline(time.Now().Add(5 * time.Second))
		head := make([]byte, 4)
		if _, err := p.r.Read(head[:1]); err != nil {
			t.Fatalf("peer %d: %v", i, err)
		}
	}
	testsupport.WaitFor(t, "the pending bytes to be released", func() bool { return s.loops[0].pending.Load() == 0 })
}

// TestSlowMessageIsClosed: a message that does not complete within
// -message-timeout closes its connection with 1008, even while its bytes
// keep trickling in (which keeps the idle timeout away).
func TestSlowMessageIsClosed(t *testing.T) {
	s := startServer(t, Config{Loops: 1, Echo: true, MessageTimeout: 300 * time.Millisecond})
	frame := maskedFrame(0x1, bytes.Repeat([]byte("x"), 1000))
	slow := dialRaw(t, s)
	slow.upgrade(t, "/echo")
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for i := 0; i < len(frame); i++ {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			if _, err := slow.Write(frame[i : i+1]); err != nil {
				return
			}
		}
	}()
	// A message that completes in time is answered, and the connection
	// stays.
	fine := dialRaw(t, s)
	fine.upgrade(t, "/echo")
	fine.Write(frame[:500])
	time.Sleep(100 * time.Millisecond)
	fine.Write(frame[500:])
	if op, p := fine.readFrame(t); op != 0x1 || len(p) != 1000 {
		t.Fatalf("echo: %#x, %d bytes", op, len(p))
	}
	if code := slow.closeCode(t); code != 1008 {
		t.Fatalf("the slow message closed with %d, want 1008", code)
	}
	if n := testutil.ToFloat64(s.limits.messageTimeouts); n != 1 {
		t.Fatalf("wspush_message_timeouts_total = %v", n)
	}
}

// TestClientPublishRefusedWhenALoopIsFull: a client publish never queues
// past -max-loop-tasks; it is answered with an error and counted.
func TestClientPublishRefusedWhenALoopIsFull(t *testing.T) {
	s := startServer(t, Config{Loops: 2, ClientPublish: true, MaxLoopTasks: 4})
	c := dial(t, s, "/ws")
	// The loop the client is not on is blocked, its queue full.
	other := -1
	s.group.Each(func(l *netpoll.Loop) {
		if len(l.Conns()) == 0 {
			other = l.ID()
		}
	})
	if other < 0 {
		t.Fatal("no loop without the client")
	}
	l := s.group.Loops()[other]
	release := make(chan struct{})
	running := make(chan struct{})
	l.Post(func() { close(running); <-release })
	<-running
	for i := 0; i < 4; i++ {
		l.Post(func() {})
	}
	sendJSON(t, c, `{"op":"pub","topic":"t","data":1}`)
	m := testsupport.ReadJSON(t, c)
	if e, _ := m["error"].(string); m["op"] != "error" || !strings.Contains(e, "busy") {
		t.Fatalf("answer %v, want a busy error", m)
	}
	if n := testutil.ToFloat64(s.limits.publishRefused); n != 1 {
		t.Fatalf("wspush_loop_tasks_refused_total = %v", n)
	}
	close(release)
	testsupport.WaitFor(t, "the loop to take its tasks", l.HasRoom)
	sub := dial(t, s, "/ws?topics=t")
	testsupport.ReadJSON(t, sub)
	sendJSON(t, c, `{"op":"pub","topic":"t","data":2}`)
	if m := testsupport.ReadJSON(t, sub); m["data"] != float64(2) {
		t.Fatalf("push after the loop caught up: %v", m)
	}
}

// TestSecondServerOnTheSamePortFails: the loops of one server share their
// port (SO_REUSEPORT); another server on it fails to start.
func TestSecondServerOnTheSamePortFails(t *testing.T) {
	s := startServer(t, Config{Loops: 2})
	_, err := New(Config{Listen: s.Addr().String(), Admin: "", Loops: 2})
	if err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("a second server on %s: %v, want address already in use", s.Addr(), err)
	}
	roundTrip(t, s, "still")
}

func TestTopicListDecodesAsItGoes(t *testing.T) {
	tests := []struct {
		in   string
		want []string
		err  bool
	}{
		{`["a","b"]`, []string{"a", "b"}, false},
		{` [ "a" , "b\u0063" ] `, []string{"a", "bc"}, false},
		{`[]`, nil, false},
		{`null`, nil, false},
		{`["a",1]`, nil, true},
		{`"a"`, nil, true},
		{`[["a"]]`, nil, true},
		{`{"a":1}`, nil, true},
	}
	for _, tt := range tests {
		var cmd command
		err := json.Unmarshal([]byte(`{"op":"sub","topics":`+tt.in+`}`), &cmd)
		if (err != nil) != tt.err {
			t.Errorf("%s: error %v, want error %v", tt.in, err, tt.err)
			continue
		}
		var got []string
		for name := range cmd.Topics.all() {
			got = append(got, name)
		}
		if strings.Join(got, ",") != strings.Join(tt.want, ",") || cmd.Topics.empty() != (len(tt.want) == 0) {
			t.Errorf("%s: got %q", tt.in, got)
		}
	}
}

// TestDrainingPeerIsNotReadAtLineRate: after the server's last word (here a
// 1002), a peer that keeps sending has a bounded amount of it read and
// dropped; the rest stays in the kernel until -close-timeout.
func TestDrainingPeerIsNotReadAtLineRate(t *testing.T) {
	s := startServer(t, Config{Loops: 1, CloseTimeout: 10 * time.Second})
	c := dialRaw(t, s)
	c.upgrade(t, "/ws")
	c.Write([]byte("\x81\x01x")) // unmasked: 1002
	if code := c.closeCode(t); code != 1002 {
		t.Fatalf("closed with %d, want 1002", code)
	}
	writeUntilNotRead(t, c, make([]byte, 1<<20), 256<<20)
}

// writeUntilNotRead writes chunk to c again and again until a write stalls
// for 300 ms (the server stopped reading), failing when more than limit
// bytes went through first.
func writeUntilNotRead(t *testing.T, c *rawConn, chunk []byte, limit int) {
	t.Helper()
	sent := 0
	for {
		c.SetWriteDeadline(time.Now().Add(300 * time.Millisecond))
		n, err := c.Write(chunk)
		sent += n
		if err != nil {
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				t.Fatalf("write: %v", err)
			}
			return // the server stopped reading
		}
		if sent > limit {
			t.Fatalf("the server read %d bytes after its close frame", sent)
		}
	}
}

// TestLargeMessagesLeaveNoLargeBuffers: the buffers a peer's large messages
// took (its input's tail, the decoder's) are not kept by the loop once they
// are done: a loop's pool keeps at most -pool-idle bytes, in buffers of at
// most bufpool.MaxKept, however large the messages it served; the
// wspush_buffer_pool_idle_bytes gauge (Stats.PoolIdle) follows it.
func TestLargeMessagesLeaveNoLargeBuffers(t *testing.T) {
	for _, tc := range []struct {
		name     string
		poolIdle int
		want     int // the most the pool may keep
	}{
		{"default", 0, bufpool.DefaultMaxIdle},
		{"pool-idle=96KiB", 96 << 10, 96 << 10},
		// The last message's tail (its 40 KiB take the 64 KiB class, when
		// it arrives in two reads) does not fit: with the default it is kept.
		{"pool-idle=32KiB", 32 << 10, 32 << 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startServer(t, Config{Loops: 1, MaxMessage: 2 << 20, MaxCommand: 2 << 20, PoolIdle: tc.poolIdle})
			c := dialRaw(t, s)
			c.upgrade(t, "/ws")
			for _, size := range []int{1 << 20, 1<<20 + 1000, 600 << 10, 40 << 10} {
				msg := []byte(`{"op":"x","pad":"` + strings.Repeat("p", size) + `"}`)
				// Written in pieces, so the tail grows through the classes.
				f := maskedFrame(0x1, msg)
				for off := 0; off < len(f); off += 100 << 10 {
					if _, err := c.Write(f[off:min(off+100<<10, len(f))]); err != nil {
						t.Fatal(err)
					}
					time.Sleep(time.Millisecond)
				}
				if _, p := c.readFrame(t); !strings.Contains(string(p), "unknown op") {
					t.Fatalf("answer %.100s, want unknown op", p)
				}
			}
			var idle int
			s.group.Each(func(l *netpoll.Loop) {
				if idle = l.Pool().Idle(); idle > tc.want {
					t.Errorf("loop %d keeps %d bytes of buffers, want at most %d", l.ID(), idle, tc.want)
				}
			})
			l := s.group.Loops()[0]
			testsupport.WaitFor(t, "the pool gauge after a tick", func() bool { return l.Stats.PoolIdle.Load() == int64(idle) })
		})
	}
}

// TestClosingPeerIsNotReadAtLineRate: after the server's close frame (here
// 1008 for pings over the rate) and before the peer's, a peer that sends on
// valid frames has a bounded amount of them read and dropped, as a draining
// peer does; each was parsed until -close-timeout (a ping flooder's input,
// docs/benchmarks.md).
func TestClosingPeerIsNotReadAtLineRate(t *testing.T) {
	s := startServer(t, Config{Loops: 1, CommandRate: 1, CommandBurst: 5, CloseTimeout: 10 * time.Second})
	c := dialRaw(t, s)
	c.upgrade(t, "/ws")
	ping := maskedFrame(0x9, []byte("p"))
	if _, err := c.Write(bytes.Repeat(ping, 5+2*rateLimitStrikes)); err != nil {
		t.Fatal(err)
	}
	if code := c.closeCode(t); code != 1008 {
		t.Fatalf("closed with %d, want 1008", code)
	}
	writeUntilNotRead(t, c, bytes.Repeat(maskedFrame(0x9, make([]byte, 125)), (1<<20)/131), 64<<20)
}

// TestReadBufferBounds: -read-buffer outside 4 KiB..16 MiB is refused at
// start, with the flag's name.
func TestReadBufferBounds(t *testing.T) {
	for _, n := range []int{minReadBuffer - 1, maxReadBuffer + 1} {
		s, err := New(Config{Listen: "127.0.0.1:0", Admin: "", ReadBuffer: n})
		if err == nil {
			s.Close()
			t.Fatalf("-read-buffer %d accepted", n)
		}
		if !strings.Contains(err.Error(), "-read-buffer") {
			t.Errorf("-read-buffer %d: error %q does not name the flag", n, err)
		}
	}
}
