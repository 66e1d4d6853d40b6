package server

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/wspush/wspush/internal/testsupport"
)

// RFC 6455 conformance of the WebSocket side, on /echo, with a raw client
// that sends exactly the bytes each case calls for.

// protoMask is the masking key of protoFrame: no zero byte, so that an
// unmasked payload cannot pass for a masked one.
var protoMask = [4]byte{0x37, 0xfa, 0x21, 0x3d}

// protoFrame encodes a masked client frame whose first byte is b0 (FIN, RSV,
// opcode), with the shortest length encoding.
func protoFrame(b0 byte, payload []byte) []byte {
	f := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		f = append(f, 0x80|byte(n))
	case n < 1<<16:
		f = append(f, 0x80|126)
		f = binary.BigEndian.AppendUint16(f, uint16(n))
	default:
		f = append(f, 0x80|127)
		f = binary.BigEndian.AppendUint64(f, uint64(n))
	}
	f = append(f, protoMask[:]...)
	for i, b := range payload {
		f = append(f, b^protoMask[i%4])
	}
	return f
}

// protoClose is a close frame payload: code and reason.
func protoClose(code uint16, reason string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, code), reason...)
}

// protoSend writes each chunk with its own write.
func protoSend(t testing.TB, c *rawConn, chunks [][]byte) {
	t.Helper()
	for _, b := range chunks {
		if _, err := c.Write(b); err != nil {
			t.Fatalf("write: %v", err)
		}
	}
}

// protoBytes splits b into chunks of n bytes.
func protoBytes(b []byte, n int) [][]byte {
	var out [][]byte
	for len(b) > n {
		out = append(out, b[:n])
		b = b[n:]
	}
	return append(out, b)
}

// chunks is shorthand for a list of writes.
func chunks(f ...[]byte) [][]byte { return f }

type protoWant struct {
	op byte
	p  string
}

func TestProtocolEcho(t *testing.T) { eachTransport(t, testProtocolEcho) }

func testProtocolEcho(t *testing.T, tr transport) {
	s := startServer(t, tr.config(t, Config{Loops: 2, Echo: true, MaxMessage: 1024}))
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	p125 := strings.Repeat("p", 125)
	full := strings.Repeat("m", 1024)
	unicode := "héllo wörld ✓ 😀"

	cases := []struct {
		name string
		send [][]byte
		want []protoWant
	}{
		{"text", chunks(protoFrame(0x81, []byte("hello"))), []protoWant{{0x1, "hello"}}},
		{"binary", chunks(protoFrame(0x82, all)), []protoWant{{0x2, string(all)}}},
		{"unicode text", chunks(protoFrame(0x81, []byte(unicode))), []protoWant{{0x1, unicode}}},
		{"empty text", chunks(protoFrame(0x81, nil)), []protoWant{{0x1, ""}}},
		{"empty binary", chunks(protoFrame(0x82, nil)), []protoWant{{0x2, ""}}},
		{"empty fragmented text", chunks(protoFrame(0x01, nil), protoFrame(0x00, nil), protoFrame(0x80, nil)),
			[]protoWant{{0x1, ""}}},
		{"fragmented text with a ping between fragments",
			chunks(protoFrame(0x01, []byte("Hel")), protoFrame(0x89, []byte("p1")),
				protoFrame(0x00, []byte("lo, ")), protoFrame(0x80, []byte("world"))),
			[]protoWant{{0xA, "p1"}, {0x1, "Hello, world"}}},
		{"fragmented binary with pings and a pong between fragments",
			chunks(protoFrame(0x02, all[:100]), protoFrame(0x89, []byte("a")), protoFrame(0x8A, []byte("u")),
				protoFrame(0x00, all[100:200]), protoFrame(0x89, []byte("b")), protoFrame(0x80, all[200:])),
			[]protoWant{{0xA, "a"}, {0xA, "b"}, {0x2, string(all)}}},
		{"code point split across fragments",
			chunks(protoFrame(0x01, []byte("x\xe2")), protoFrame(0x00, []byte("\x82")), protoFrame(0x80, []byte("\xacy"))),
			[]protoWant{{0x1, "x€y"}}},
		{"frames in one write", [][]byte{append(protoFrame(0x81, []byte("one")), protoFrame(0x82, []byte("two"))...)},
			[]protoWant{{0x1, "one"}, {0x2, "two"}}},
		{"frame one byte per write", protoBytes(protoFrame(0x81, []byte(unicode)), 1), []protoWant{{0x1, unicode}}},
		{"ping", chunks(protoFrame(0x89, []byte("are you there"))), []protoWant{{0xA, "are you there"}}},
		{"empty ping", chunks(protoFrame(0x89, nil)), []protoWant{{0xA, ""}}},
		{"125-byte ping", chunks(protoFrame(0x89, []byte(p125))), []protoWant{{0xA, p125}}},
		{"unsolicited pong is ignored", chunks(protoFrame(0x8A, []byte("x")), protoFrame(0x81, []byte("after"))),
			[]protoWant{{0x1, "after"}}},
		{"message of MaxMessage bytes", chunks(protoFrame(0x82, []byte(full))), []protoWant{{0x2, full}}},
		{"fragments adding up to MaxMessage",
			chunks(protoFrame(0x01, []byte(full[:500])), protoFrame(0x00, []byte(full[500:1000])), protoFrame(0x80, []byte(full[1000:]))),
			[]protoWant{{0x1, full}}},
		{"MaxMessage applies per message",
			chunks(protoFrame(0x82, []byte(full)), protoFrame(0x02, []byte(full[:1000])), protoFrame(0x80, []byte(full[:24]))),
			[]protoWant{{0x2, full}, {0x2, full}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, s)
			c.upgrade(t, "/echo")
			protoSend(t, c, tc.send)
			for _, w := range tc.want {
				op, p := c.readFrame(t)
				if op != w.op || string(p) != w.p {
					t.Fatalf("got %#x %q, want %#x %q", op, trunc(p), w.op, trunc([]byte(w.p)))
				}
			}
			// Nothing else is queued before the answer to our close.
			c.writeFrame(t, 0x88, protoClose(1000, ""))
			op, p := c.readFrame(t)
			if op != 0x8 || !bytes.Equal(p, protoClose(1000, "")) {
				t.Fatalf("got %#x %q, want the close 1000 answering ours", op, trunc(p))
			}
		})
	}
}

func trunc(p []byte) []byte { return p[:min(len(p), 40)] }

func TestProtocolCloseHandshake(t *testing.T) { eachTransport(t, testProtocolCloseHandshake) }

func testProtocolCloseHandshake(t *testing.T, tr transport) {
	cases := []struct {
		name    string
		payload []byte
		want    []byte // the server's close payload
	}{
		{"1000", protoClose(1000, ""), protoClose(1000, "")},
		{"1000 with a reason", protoClose(1000, "bye ✓"), protoClose(1000, "")},
		{"no payload", nil, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := startServer(t, tr.config(t, Config{Loops: 1, Echo: true, CloseTimeout: 300 * time.Millisecond}))
			c := dialRaw(t, s)
			c.upgrade(t, "/echo")
			c.writeFrame(t, 0x88, tc.payload)
			op, p := c.readFrame(t)
			if op != 0x8 || !bytes.Equal(p, tc.want) {
				t.Fatalf("got %#x %q, want close %q", op, p, tc.want)
			}
			// The server ends TCP first...
			hsExpectEOF(t, c)
			// ...and frees its socket with the client still holding its end.
			// (The socket count drops just before Handler.Close gives back
			// the WebSocket's slot: wait for both.)
			testsupport.WaitFor(t, "the server to close the socket and free its slot", func() bool { return s.tcpConns() == 0 && s.Conns() == 0 })
		})
	}

	// A valid close code other than 1000 is no violation: the answer is a
	// close, with 1000 or the client's code echoed, never an error code.
	s := startServer(t, tr.config(t, Config{Loops: 1, Echo: true}))
	for _, code := range []uint16{1001, 1003, 1007, 1011, 1014, 3000, 4999} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			c := dialRaw(t, s)
			c.upgrade(t, "/echo")
			c.writeFrame(t, 0x88, protoClose(code, "ok"))
			if got := c.closeCode(t); got != 1000 && got != int(code) {
				t.Fatalf("close %d answered with %d", code, got)
			}
			hsExpectEOF(t, c)
		})
	}
}

// protoHeader is a raw frame header: b0, the 7-bit length field (with the
// MASK bit), its extension and a mask key.
func protoHeader(b0, b1 byte, ext ...byte) []byte {
	h := append([]byte{b0, b1}, ext...)
	if b1&0x80 != 0 {
		h = append(h, protoMask[:]...)
	}
	return h
}

func TestProtocolViolations(t *testing.T) { eachTransport(t, testProtocolViolations) }

func testProtocolViolations(t *testing.T, tr transport) {
	s := startServer(t, tr.config(t, Config{Loops: 2, Echo: true, MaxMessage: 1024}))
	type tcase struct {
		name string
		send [][]byte
		code int
		echo []protoWant // answers that come before the close
	}
	cases := []tcase{
		{"unmasked text", chunks([]byte("\x81\x05hello")), 1002, nil},
		{"unmasked empty ping", chunks([]byte("\x89\x00")), 1002, nil},
		{"unmasked after a masked frame", chunks(protoFrame(0x01, []byte("a")), []byte("\x80\x01b")), 1002, nil},
		{"RSV1", chunks(protoFrame(0x81|0x40, []byte("x"))), 1002, nil},
		{"RSV2", chunks(protoFrame(0x81|0x20, []byte("x"))), 1002, nil},
		{"RSV3", chunks(protoFrame(0x81|0x10, []byte("x"))), 1002, nil},
		{"RSV1 on a ping", chunks(protoFrame(0x89|0x40, nil)), 1002, nil},
		{"RSV on a continuation", chunks(protoFrame(0x01, []byte("a")), protoFrame(0x80|0x40, []byte("b"))), 1002, nil},
		{"ping of 126 bytes", chunks(protoFrame(0x89, bytes.Repeat([]byte("p"), 126))), 1002, nil},
		{"pong of 126 bytes", chunks(protoFrame(0x8A, bytes.Repeat([]byte("p"), 126))), 1002, nil},
		{"close of 126 bytes", chunks(protoFrame(0x88, protoClose(1000, strings.Repeat("r", 124)))), 1002, nil},
		{"fragmented ping", chunks(protoFrame(0x09, []byte("p")), protoFrame(0x80, []byte("q"))), 1002, nil},
		{"fragmented close", chunks(protoFrame(0x08, protoClose(1000, ""))), 1002, nil},
		{"continuation without a start", chunks(protoFrame(0x80, []byte("x"))), 1002, nil},
		{"non-final continuation without a start", chunks(protoFrame(0x00, []byte("x"))), 1002, nil},
		{"continuation after a whole message", chunks(protoFrame(0x81, []byte("a")), protoFrame(0x80, []byte("b"))), 1002,
			[]protoWant{{0x1, "a"}}},
		{"violation after a ping", chunks(protoFrame(0x89, []byte("p")), []byte("\x81\x01x")), 1002,
			[]protoWant{{0xA, "p"}}},
		{"text while a fragmented message is open", chunks(protoFrame(0x01, []byte("a")), protoFrame(0x81, []byte("b"))), 1002, nil},
		{"binary while a fragmented message is open", chunks(protoFrame(0x01, []byte("a")), protoFrame(0x02, []byte("b"))), 1002, nil},
		{"invalid UTF-8", chunks(protoFrame(0x81, []byte("ok\xff"))), 1007, nil},
		{"overlong UTF-8", chunks(protoFrame(0x81, []byte("\xc0\xaf"))), 1007, nil},
		{"UTF-16 surrogate", chunks(protoFrame(0x81, []byte("\xed\xa0\x80"))), 1007, nil},
		{"code point above U+10FFFF", chunks(protoFrame(0x81, []byte("\xf4\x90\x80\x80"))), 1007, nil},
		{"text ending inside a code point", chunks(protoFrame(0x81, []byte("ok\xe2\x82"))), 1007, nil},
		{"invalid UTF-8 split across fragments",
			chunks(protoFrame(0x01, []byte("a\xe2")), protoFrame(0x00, []byte("\x82")), protoFrame(0x80, []byte("\x28"))), 1007, nil},
		{"fragmented text ending inside a code point",
			chunks(protoFrame(0x01, []byte("a")), protoFrame(0x80, []byte("\xe2\x82"))), 1007, nil},
		// The first fragment is already invalid: no need for the rest.
		{"invalid UTF-8 in an open fragment", chunks(protoFrame(0x01, []byte("\xff"))), 1007, nil},
		{"close reason not UTF-8", chunks(protoFrame(0x88, protoClose(1000, "\xff\xfe"))), 1007, nil},
		{"close payload of 1 byte", chunks(protoFrame(0x88, []byte{0x03})), 1002, nil},
		{"message over MaxMessage", chunks(protoFrame(0x82, make([]byte, 1025))), 1009, nil},
		{"text over MaxMessage", chunks(protoFrame(0x81, bytes.Repeat([]byte("t"), 1025))), 1009, nil},
		{"fragments over MaxMessage",
			chunks(protoFrame(0x02, make([]byte, 600)), protoFrame(0x80, make([]byte, 600))), 1009, nil},
		{"many fragments over MaxMessage", func() [][]byte {
			f := chunks(protoFrame(0x01, bytes.Repeat([]byte("f"), 100)))
			for range 10 {
				f = append(f, protoFrame(0x00, bytes.Repeat([]byte("f"), 100)))
			}
			return f
		}(), 1009, nil},
		// The length alone condemns it: no payload is sent or awaited.
		{"huge length announced", chunks(protoHeader(0x82, 0x80|127, 0, 0, 1, 0, 0, 0, 0, 0)), 1009, nil},
		{"64-bit length with the MSB set", chunks(protoHeader(0x82, 0x80|127, 0x80, 0, 0, 0, 0, 0, 0, 5)), 1002, nil},
		{"64-bit length of all ones", chunks(protoHeader(0x82, 0x80|127, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)), 1002, nil},
		{"16-bit length under 126", chunks(append(protoHeader(0x82, 0x80|126, 0, 5), 1, 2, 3, 4, 5)), 1002, nil},
		{"64-bit length under 65536", chunks(append(protoHeader(0x82, 0x80|127, 0, 0, 0, 0, 0, 0, 0, 5), 1, 2, 3, 4, 5)), 1002, nil},
	}
	for _, op := range []byte{3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF} {
		cases = append(cases,
			tcase{fmt.Sprintf("reserved opcode %#x", op), chunks(protoFrame(0x80|op, []byte("x"))), 1002, nil},
			tcase{fmt.Sprintf("reserved opcode %#x without FIN", op), chunks(protoFrame(op, nil)), 1002, nil})
	}
	for _, code := range []uint16{0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535} {
		cases = append(cases, tcase{fmt.Sprintf("close code %d", code), chunks(protoFrame(0x88, protoClose(code, ""))), 1002, nil})
	}

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, s)
			c.upgrade(t, "/echo")
			protoSend(t, c, tc.send)
			for _, w := range tc.echo {
				if op, p := c.readFrame(t); op != w.op || string(p) != w.p {
					t.Fatalf("got %#x %q, want %#x %q", op, p, w.op, w.p)
				}
			}
			op, p := c.readFrame(t)
			if op != 0x8 {
				t.Fatalf("got frame %#x %q, want a close %d", op, trunc(p), tc.code)
			}
			if len(p) < 2 {
				t.Fatalf("close without a code, want %d", tc.code)
			}
			if code := int(binary.BigEndian.Uint16(p)); code != tc.code {
				t.Fatalf("close %d (%q), want %d", code, p[2:], tc.code)
			}
			// The rest of the input is not parsed: the server ends TCP.
			hsExpectEOF(t, c)
		})
	}
	// Every one of those sockets is freed, and its slot: the loop counts a
	// socket gone just before the handler frees the slot, so both are
	// waited for (as the other protocol tests do).
	testsupport.WaitFor(t, "all connections to be closed and their slots freed", func() bool { return s.tcpConns() == 0 && s.Conns() == 0 })
}

// TestProtocolIndependentClient runs echoes through coder/websocket, an
// implementation that shares no code with the server.
func TestProtocolIndependentClient(t *testing.T) { eachTransport(t, testProtocolIndependentClient) }

func testProtocolIndependentClient(t *testing.T, tr transport) {
	s := startServer(t, tr.config(t, Config{Loops: 2, Echo: true})) // MaxMessage: 1 MiB
	rng := rand.New(rand.NewPCG(1, 2))
	ctx := func(t *testing.T) context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		t.Cleanup(cancel)
		return ctx
	}
	roundTrip := func(t *testing.T, c *websocket.Conn, ctx context.Context, typ websocket.MessageType, want []byte) {
		t.Helper()
		gotTyp, got, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if gotTyp != typ || !bytes.Equal(got, want) {
			t.Fatalf("echo: %v of %d bytes, want %v of %d bytes (equal: %v)", gotTyp, len(got), typ, len(want), bytes.Equal(got, want))
		}
	}

	t.Run("1 MiB binary", func(t *testing.T) {
		ctx := ctx(t)
		c := dial(t, s, "/echo")
		msg := make([]byte, 1<<20)
		for i := range msg {
			msg[i] = byte(rng.Uint32())
		}
		if err := c.Write(ctx, websocket.MessageBinary, msg); err != nil {
			t.Fatal(err)
		}
		roundTrip(t, c, ctx, websocket.MessageBinary, msg)
	})

	t.Run("1 MiB text", func(t *testing.T) {
		ctx := ctx(t)
		c := dial(t, s, "/echo")
		msg := []byte(strings.Repeat("€uro ", 1<<20/7))
		msg = append(msg, strings.Repeat("x", 1<<20-len(msg))...)
		if err := c.Write(ctx, websocket.MessageText, msg); err != nil {
			t.Fatal(err)
		}
		roundTrip(t, c, ctx, websocket.MessageText, msg)
	})

	t.Run("10000 fragments", func(t *testing.T) {
		ctx := ctx(t)
		c := dial(t, s, "/echo")
		w, err := c.Writer(ctx, websocket.MessageText)
		if err != nil {
			t.Fatal(err)
		}
		var msg []byte
		for i := range 10000 {
			// Every other fragment boundary splits "é" (c3 a9).
			frag := fmt.Appendf(nil, "%05d\xc3", i)
			if i%2 == 1 {
				frag = fmt.Appendf(nil, "\xa9%05d", i)
			}
			if i == 9999 {
				frag = append(frag, "!"...)
			}
			msg = append(msg, frag...)
			if _, err := w.Write(frag); err != nil { // one frame per Write
				t.Fatalf("fragment %d: %v", i, err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		roundTrip(t, c, ctx, websocket.MessageText, msg)
	})

	t.Run("2000 messages in a row", func(t *testing.T) {
		ctx := ctx(t)
		c := dial(t, s, "/echo")
		msg := func(i int) (websocket.MessageType, []byte) {
			b := bytes.Repeat(fmt.Appendf(nil, "%d;", i), i*7%3000/4)
			if i%3 == 0 {
				return websocket.MessageBinary, b
			}
			return websocket.MessageText, b
		}
		errc := make(chan error, 1)
		go func() {
			for i := range 2000 {
				typ, b := msg(i)
				if err := c.Write(ctx, typ, b); err != nil {
					errc <- fmt.Errorf("write %d: %w", i, err)
					return
				}
			}
			errc <- nil
		}()
		for i := range 2000 {
			typ, b := msg(i)
			roundTrip(t, c, ctx, typ, b)
		}
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	})

	t.Run("over MaxMessage", func(t *testing.T) {
		ctx := ctx(t)
		c := dial(t, s, "/echo")
		// Announced in one frame, and reached by fragments.
		if err := c.Write(ctx, websocket.MessageBinary, make([]byte, 1<<20+1)); err != nil {
			t.Fatal(err)
		}
		_, _, err := c.Read(ctx)
		if got := websocket.CloseStatus(err); got != websocket.StatusMessageTooBig {
			t.Fatalf("read: %v (status %d), want close 1009", err, got)
		}
		c2 := dial(t, s, "/echo")
		w, err := c2.Writer(ctx, websocket.MessageBinary)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i <= 16; i++ {
			if _, err := w.Write(make([]byte, 64<<10)); err != nil {
				break // the server may be gone by now
			}
		}
		_, _, err = c2.Read(ctx)
		if got := websocket.CloseStatus(err); got != websocket.StatusMessageTooBig {
			t.Fatalf("read: %v (status %d), want close 1009", err, got)
		}
	})

	t.Run("close 1000", func(t *testing.T) {
		c := dial(t, s, "/echo")
		if err := c.Close(websocket.StatusNormalClosure, "bye"); err != nil {
			t.Fatalf("close handshake: %v", err)
		}
	})
}

// TestProtocolBadPeersDoNotHurtOthers shares one loop between three peers
// that misbehave and one that does not; the good one gets all its echoes and
// the broken one is closed and freed.
func TestProtocolBadPeersDoNotHurtOthers(t *testing.T) {
	eachTransport(t, testProtocolBadPeersDoNotHurtOthers)
}

func testProtocolBadPeersDoNotHurtOthers(t *testing.T, tr transport) {
	s := startServer(t, tr.config(t, Config{Loops: 1, Echo: true, HandshakeTimeout: time.Minute, CloseTimeout: 500 * time.Millisecond}))

	// Half a frame header, then nothing.
	staller := dialRaw(t, s)
	staller.upgrade(t, "/echo")
	stalled := protoFrame(0x81, []byte("stalled"))
	protoSend(t, staller, chunks(stalled[:1]))

	// A TCP connection with nothing on it: the kernel holds it for the
	// listener's TCP_DEFER_ACCEPT second, then the server has it too.
	silent := dialRaw(t, s)
	testsupport.WaitFor(t, "the silent peer accepted", func() bool { return s.tcpConns() == 2 })

	// 1 MiB of garbage after the upgrade; it starts with RSV bits set.
	garbage := dialRaw(t, s)
	garbage.upgrade(t, "/echo")
	junk := make([]byte, 1<<20)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range junk {
		junk[i] = byte(rng.Uint32())
	}
	junk[0] = 0xF1
	sent := make(chan error, 1)
	go func() {
		_, err := garbage.Write(junk)
		sent <- err
	}()

	// The well-behaved client.
	good := dial(t, s, "/echo")
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for i := range 200 {
			msg := fmt.Appendf(nil, "round trip %d %s", i, strings.Repeat("x", i))
			if err := good.Write(ctx, websocket.MessageText, msg); err != nil {
				done <- fmt.Errorf("write %d: %w", i, err)
				return
			}
			typ, got, err := good.Read(ctx)
			if err != nil {
				done <- fmt.Errorf("read %d: %w", i, err)
				return
			}
			if typ != websocket.MessageText || !bytes.Equal(got, msg) {
				done <- fmt.Errorf("round trip %d: got %v %q", i, typ, trunc(got))
				return
			}
		}
		done <- nil
	}()

	// The garbage peer gets a 1002 and the end of the connection.
	if code := garbage.closeCode(t); code != 1002 {
		t.Fatalf("garbage peer closed with %d, want 1002", code)
	}
	garbage.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.Copy(io.Discard, garbage.r); err != nil {
		t.Fatalf("garbage peer: %v after the close frame, want EOF", err)
	}
	if err := <-sent; err != nil {
		t.Fatalf("garbage peer: the server stopped reading: %v", err)
	}

	if err := <-done; err != nil {
		t.Fatalf("good client: %v", err)
	}

	// The server frees the garbage peer's socket (after CloseTimeout) even
	// though the peer never hangs up; the others stay.
	testsupport.WaitFor(t, "the garbage peer's socket to be freed", func() bool { return s.tcpConns() == 3 })

	// The staller's half header was kept: the rest of its frame completes it.
	protoSend(t, staller, chunks(stalled[1:]))
	if op, p := staller.readFrame(t); op != 0x1 || string(p) != "stalled" {
		t.Fatalf("staller got %#x %q, want its echo", op, p)
	}
	// And the silent one is still waiting for its request.
	io.WriteString(silent, hsWS("/echo"))
	if status := silent.readHTTP(t); status != 101 {
		t.Fatalf("silent peer's late handshake: %d", status)
	}
	if n := s.tcpConns(); n != 3 {
		t.Fatalf("tcpConns() = %d, want 3", n)
	}
}
