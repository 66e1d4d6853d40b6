package testsupport

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// ReadTimeout bounds ReadJSON's wait for a message.
const ReadTimeout = 10 * time.Second

// ReadJSON reads one message from c, a client of coder/websocket (an
// implementation independent of the server's gobwas/ws), and fails the test
// unless it comes within ReadTimeout as a text message holding a JSON
// object.
func ReadJSON(tb testing.TB, c *websocket.Conn) map[string]any {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ReadTimeout)
	defer cancel()
	typ, b, err := c.Read(ctx)
	if err != nil {
		tb.Fatalf("read: %v", err)
	}
	if typ != websocket.MessageText {
		tb.Fatalf("got a %v message, want text", typ)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		tb.Fatalf("message %q is not JSON: %v", b, err)
	}
	return m
}
