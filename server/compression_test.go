package server

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/wspush/wspush/internal/testsupport"
)

func dialCompressed(t *testing.T, s *Server, path string) (*websocket.Conn, *http.Response) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, s.wsURL(path), dialOptions(t, s, &websocket.DialOptions{
		CompressionMode:      websocket.CompressionContextTakeover, // what browsers offer
		CompressionThreshold: 64,
	}))
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.CloseNow() })
	return c, resp
}

func TestCompressedPushesAndCommands(t *testing.T) { eachTransport(t, testCompressedPushesAndCommands) }

func testCompressedPushesAndCommands(t *testing.T, tr transport) {
	s := startServer(t, tr.config(t, Config{Compression: true}))
	c, resp := dialCompressed(t, s, "/ws")
	ext := resp.Header.Get("Sec-WebSocket-Extensions")
	if !strings.Contains(ext, "permessage-deflate") || !strings.Contains(ext, "server_no_context_takeover") ||
		!strings.Contains(ext, "client_no_context_takeover") {
		t.Fatalf("negotiated %q", ext)
	}
	// A command long enough for the client to compress it.
	topics := make([]string, 20)
	for i := range topics {
		topics[i] = fmt.Sprintf(`"topic-with-a-long-name-%d"`, i)
	}
	sendJSON(t, c, `{"op":"sub","topics":[`+strings.Join(topics, ",")+`]}`)
	for i := range topics {
		if m := testsupport.ReadJSON(t, c); m["op"] != "subscribed" {
			t.Fatalf("answer %d: %v", i, m)
		}
	}
	data := `{"text":"` + strings.Repeat("compress me ", 200) + `"}`
	for seq := 1.0; seq <= 3; seq++ {
		publish(t, s, "topic-with-a-long-name-7", data)
		m := testsupport.ReadJSON(t, c)
		if m["seq"] != seq || !strings.HasPrefix(fmt.Sprint(m["data"]), "map[text:compress me") {
			t.Fatalf("push %v", m)
		}
	}
	// The same pushes reach a subscriber without compression unchanged.
	plain := dial(t, s, "/ws?topics=topic-with-a-long-name-7")
	testsupport.ReadJSON(t, plain)
	publish(t, s, "topic-with-a-long-name-7", data)
	if m := testsupport.ReadJSON(t, plain); m["seq"] != 4.0 {
		t.Fatalf("plain subscriber got %v", m)
	}
	if m := testsupport.ReadJSON(t, c); m["seq"] != 4.0 {
		t.Fatalf("compressed subscriber got %v", m)
	}
}

func TestCompressedPushFrameHasRSV1(t *testing.T) {
	s := startServer(t, Config{Compression: true})
	raw := dialRaw(t, s)
	fmt.Fprintf(raw, "GET /ws?topics=z HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"+
		"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n")
	if status := raw.readHTTP(t); status != http.StatusSwitchingProtocols {
		t.Fatalf("status %d", status)
	}
	raw.readFrame(t) // subscribed, uncompressed
	publish(t, s, "z", `"`+strings.Repeat("a", 1000)+`"`)
	raw.SetReadDeadline(time.Now().Add(5 * time.Second))
	b0, err := raw.r.ReadByte()
	if err != nil {
		t.Fatal(err)
	}
	if b0 != 0x80|0x40|0x1 {
		t.Fatalf("first byte %#x, want FIN|RSV1|text", b0)
	}
}

func TestCompressionOffIgnoresOffer(t *testing.T) {
	s := startServer(t, Config{})
	_, resp := dialCompressed(t, s, "/ws")
	if ext := resp.Header.Get("Sec-WebSocket-Extensions"); ext != "" {
		t.Fatalf("negotiated %q with compression off", ext)
	}
}

func TestCompressedGarbageFails1007(t *testing.T) { eachTransport(t, testCompressedGarbageFails1007) }

func testCompressedGarbageFails1007(t *testing.T, tr transport) {
	s := startServer(t, tr.config(t, Config{Compression: true, Echo: true}))
	raw := dialRaw(t, s)
	fmt.Fprintf(raw, "GET /echo HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"+
		"Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n")
	raw.readHTTP(t)
	raw.writeFrame(t, 0x80|0x40|0x1, []byte{0xff, 0xff, 0xff, 0xff})
	if code := raw.closeCode(t); code != 1007 {
		t.Fatalf("close %d, want 1007", code)
	}
}
