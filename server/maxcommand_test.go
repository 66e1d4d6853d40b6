package server

import (
	"bytes"
	"strings"
	"testing"
)

// TestMaxCommand: on /ws a client message is a command and may be at most
// -max-command bytes; a header announcing more is closed with 1009 before
// any of its payload is sent. /echo keeps -max-message. Commands up to the
// limit are still run.
func TestMaxCommand(t *testing.T) {
	const limit = 4 << 10
	s := startServer(t, Config{MaxCommand: limit, MaxMessage: 64 << 10, Echo: true})

	t.Run("a command at the limit runs", func(t *testing.T) {
		c := dialRaw(t, s)
		c.upgrade(t, "/ws")
		cmd := `{"op":"sub","topics":["a"],"pad":"`
		cmd += strings.Repeat("x", limit-len(cmd)-2) + `"}`
		c.writeFrame(t, 0x81, []byte(cmd))
		op, p := c.readFrame(t)
		if op != 0x1 || !bytes.Contains(p, []byte(`"subscribed"`)) {
			t.Fatalf("a %d-byte sub was answered op %d %q, want subscribed", len(cmd), op, p)
		}
	})
	t.Run("a header over the limit is closed 1009", func(t *testing.T) {
		c := dialRaw(t, s)
		c.upgrade(t, "/ws")
		// The header alone: 2 + 2 length bytes + 4 mask bytes, no payload.
		if _, err := c.Write([]byte{0x81, 0x80 | 126, (limit + 1) >> 8, (limit + 1) & 0xff, 0, 0, 0, 0}); err != nil {
			t.Fatal(err)
		}
		if code := c.closeCode(t); code != 1009 {
			t.Fatalf("close %d, want 1009", code)
		}
	})
	t.Run("fragments over the limit are closed 1009", func(t *testing.T) {
		c := dialRaw(t, s)
		c.upgrade(t, "/ws")
		c.writeFrame(t, 0x01, bytes.Repeat([]byte("x"), limit/2+1))
		c.writeFrame(t, 0x80, bytes.Repeat([]byte("x"), limit/2+1))
		if code := c.closeCode(t); code != 1009 {
			t.Fatalf("close %d, want 1009", code)
		}
	})
	t.Run("echo takes up to -max-message", func(t *testing.T) {
		c := dialRaw(t, s)
		c.upgrade(t, "/echo")
		msg := bytes.Repeat([]byte("e"), 32<<10)
		c.writeFrame(t, 0x82, msg)
		op, p := c.readFrame(t)
		if op != 0x2 || !bytes.Equal(p, msg) {
			t.Fatalf("echo of %d bytes: op %d, %d bytes back", len(msg), op, len(p))
		}
	})
}
