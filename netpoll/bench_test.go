//go:build linux

package netpoll

import (
	"encoding/binary"
	"io"
	"testing"
	"time"
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

// BenchmarkCallbackBoundary is the panic boundary alone: Handler.Read called
// directly and through Conn.read, which defers the recover, with no I/O.
func BenchmarkCallbackBoundary(b *testing.B) {
	c := &Conn{loop: &Loop{h: consumeAll{}}}
	buf := make([]byte, 64)
	b.Run("direct", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			c.loop.h.Read(c, buf)
		}
	})
	b.Run("boundary", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			c.read(buf)
		}
	})
}

// consumeAll is a Handler whose Read takes everything.
type consumeAll struct{}

func (consumeAll) Open(*Conn)                        {}
func (consumeAll) Read(_ *Conn, b []byte) (int, int) { return len(b), 0 }
func (consumeAll) Timer(*Conn, time.Time)            {}
func (consumeAll) Close(*Conn, error)                {}

// BenchmarkBulkIngest is one peer sending 1 MiB units as fast as loopback
// takes them, on an otherwise idle loop: the price of one read per turn
// (maxReads), each further 64 KiB read from a task after the loop's others.
func BenchmarkBulkIngest(b *testing.B) {
	h := &sizedHandler{}
	g := startGroup(b, h, 1)
	c := dialGroup(b, g)
	unit := make([]byte, 4+1<<20)
	binary.BigEndian.PutUint32(unit, 1<<20)
	b.SetBytes(int64(len(unit)))
	b.ResetTimer()
	for range b.N {
		if _, err := c.Write(unit); err != nil {
			b.Fatal(err)
		}
	}
	for h.read.Load() < int64(b.N*len(unit)) {
		time.Sleep(10 * time.Microsecond)
	}
}
