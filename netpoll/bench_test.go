//go:build linux

package netpoll

import (
	"io"
	"testing"
)

// BenchmarkEchoRoundTrip is one short line echoed over loopback: a read
// event, Handler.Read, Conn.Queue and the end-of-callback writev on the loop.
// It is dominated by the syscalls; it is here to show that what the loop adds
// around the Handler callbacks (the panic boundary) costs nothing measurable.
func BenchmarkEchoRoundTrip(b *testing.B) {
	g := startGroup(b, &lineHandler{}, 1)
	c := dialGroup(b, g)
	msg, got := []byte("ping\n"), make([]byte, 5)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.Write(msg); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, got); err != nil {
			b.Fatal(err)
		}
	}
}
