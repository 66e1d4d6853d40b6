package frames

import (
	"bytes"
	"context"
	"math/rand/v2"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/gobwas/ws"
	gorilla "github.com/gorilla/websocket"

	"github.com/wspush/wspush/internal/bufpool"
)

// These tests decode frames made by independent client implementations, so
// that a misreading of the RFC shared by this package and gobwas/ws (used by
// the other tests to build frames) cannot hide.

type message struct {
	op      ws.OpCode
	payload []byte
}

func interopMessages() []message {
	r := rand.New(rand.NewPCG(3, 4))
	random := make([]byte, 1<<20)
	for i := range random {
		random[i] = byte(r.Uint32())
	}
	mixed := strings.Repeat("ascii κόσμε € 𝄞 ", 20000)
	return []message{
		{ws.OpText, []byte("hello")},
		{ws.OpText, []byte{}},
		{ws.OpBinary, random[:256]},
		{ws.OpText, []byte(strings.Repeat("a", 125))},
		{ws.OpText, []byte(strings.Repeat("é", 63))},
		{ws.OpBinary, random[:65535]},
		{ws.OpBinary, random[:65536]},
		{ws.OpText, []byte(mixed)},
		{ws.OpBinary, random},
	}
}

// serve upgrades conn with gobwas/ws and decodes what the client sends like
// an event loop does: one buffer, compacted after each read and grown to
// Decoder.Need. It returns the messages up to and including a close frame.
func serve(t *testing.T, ln net.Listener, result chan<- []message) {
	conn, err := ln.Accept()
	if err != nil {
		t.Error(err)
		close(result)
		return
	}
	defer conn.Close()
	if _, err := ws.Upgrade(conn); err != nil {
		t.Error(err)
		close(result)
		return
	}
	d := Decoder{MaxMessage: 4 << 20, Pool: bufpool.New(4)}
	defer d.Release()
	var msgs []message
	buf := make([]byte, 0, 512)
	for {
		if cap(buf)-len(buf) < 256 || cap(buf) < d.Need() {
			nb := make([]byte, len(buf), max(2*cap(buf), d.Need()+256))
			copy(nb, buf)
			buf = nb
		}
		n, err := conn.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err != nil {
			t.Errorf("read: %v", err)
			result <- msgs
			return
		}
		off := 0
		for {
			m, k, err := d.Next(buf[off:])
			off += k
			if err != nil {
				t.Errorf("decode: %v", err)
				result <- msgs
				return
			}
			if m.Op == 0 {
				break
			}
			msgs = append(msgs, message{m.Op, bytes.Clone(m.Payload)})
			if m.Op == ws.OpClose {
				result <- msgs
				return
			}
		}
		buf = buf[:copy(buf, buf[off:])]
	}
}

func listen(t *testing.T) (net.Listener, chan []message) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	result := make(chan []message, 1)
	go serve(t, ln, result)
	return ln, result
}

func compare(t *testing.T, got, want []message) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d messages, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].op != want[i].op || !bytes.Equal(got[i].payload, want[i].payload) {
			t.Errorf("message %d: op %v len %d, want op %v len %d", i, got[i].op, len(got[i].payload), want[i].op, len(want[i].payload))
		}
	}
}

func TestInteropGorilla(t *testing.T) {
	ln, result := listen(t)
	// A small write buffer makes gorilla fragment every message larger than
	// it.
	dialer := gorilla.Dialer{WriteBufferSize: 1000}
	c, _, err := dialer.Dial("ws://"+ln.Addr().String()+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	var want []message
	for _, m := range interopMessages() {
		if err := c.WriteMessage(int(m.op), m.payload); err != nil {
			t.Fatal(err)
		}
		want = append(want, m)
	}

	// A ping between the fragments of a text message.
	w, err := c.NextWriter(gorilla.TextMessage)
	if err != nil {
		t.Fatal(err)
	}
	part := []byte(strings.Repeat("€", 1000)) // 3000 bytes: flushed as frames
	w.Write(part)
	if err := c.WriteControl(gorilla.PingMessage, []byte("between"), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	w.Write(part)
	w.Close()
	want = append(want, message{ws.OpPing, []byte("between")}, message{ws.OpText, append(bytes.Clone(part), part...)})

	closeMsg := gorilla.FormatCloseMessage(gorilla.CloseNormalClosure, "bye")
	if err := c.WriteControl(gorilla.CloseMessage, closeMsg, time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	want = append(want, message{ws.OpClose, closeMsg})
	compare(t, <-result, want)
}

func TestInteropCoder(t *testing.T) {
	ln, result := listen(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws://"+ln.Addr().String()+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	c.SetReadLimit(-1)

	var want []message
	for _, m := range interopMessages() {
		if err := c.Write(ctx, websocket.MessageType(m.op), m.payload); err != nil {
			t.Fatal(err)
		}
		want = append(want, m)
		// The same message again, one frame per 1000 bytes, cut anywhere
		// (including inside code points).
		w, err := c.Writer(ctx, websocket.MessageType(m.op))
		if err != nil {
			t.Fatal(err)
		}
		for p := m.payload; len(p) > 0; p = p[min(1000, len(p)):] {
			if _, err := w.Write(p[:min(1000, len(p))]); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		want = append(want, m)
	}
	// Close waits for the server's close frame, which never comes: the
	// server just hangs up.
	go func() { c.Close(websocket.StatusGoingAway, "bye") }()
	want = append(want, message{ws.OpClose, []byte(closePayload(1001, "bye"))})
	compare(t, <-result, want)
}
