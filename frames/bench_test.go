package frames

import (
	"strings"
	"testing"

	"github.com/gobwas/ws"
	"golang.org/x/sys/unix"

	"github.com/wspush/wspush/internal/bufpool"
)

func BenchmarkDecodeMasked(b *testing.B) {
	for _, size := range []struct {
		name string
		n    int
	}{{"128B", 128}, {"4KiB", 4096}} {
		b.Run(size.name, func(b *testing.B) {
			src := frame(fin|text, strings.Repeat("a", size.n))
			buf := make([]byte, len(src))
			var d Decoder
			b.SetBytes(int64(size.n))
			b.ReportAllocs()
			for b.Loop() {
				// Next unmasks in place: start every round from the masked
				// bytes, as a read from the socket would.
				copy(buf, src)
				m, _, err := d.Next(buf)
				if err != nil || m.Op != ws.OpText {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDecodeFragmented decodes a 64 KiB text message sent as 16 frames
// with a ping in the middle, reassembled through a pool.
func BenchmarkDecodeFragmented(b *testing.B) {
	var src []byte
	for i := range 16 {
		op := byte(cont)
		if i == 0 {
			op = text
		}
		if i == 15 {
			op |= fin
		}
		src = append(src, frame(op, strings.Repeat("abcdefgh", 512))...)
		if i == 8 {
			src = append(src, frame(fin|ping, "p")...)
		}
	}
	buf := make([]byte, len(src))
	d := Decoder{Pool: bufpool.New(4)}
	b.SetBytes(64 << 10)
	b.ReportAllocs()
	for b.Loop() {
		copy(buf, src)
		for p := buf; len(p) > 0; {
			m, n, err := d.Next(p)
			if err != nil || m.Op == 0 {
				b.Fatal(err)
			}
			p = p[n:]
		}
	}
}

// BenchmarkDecodeLargeFrameInReads feeds a 16 MiB text frame 64 KiB at a
// time, calling Next after every read as an event loop does. Each byte must
// be unmasked and validated once, not once per call.
func BenchmarkDecodeLargeFrameInReads(b *testing.B) {
	const size, chunk = 16 << 20, 64 << 10
	src := frame(fin|text, strings.Repeat("héllo wörld ", size/14))
	buf := make([]byte, len(src))
	var d Decoder
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	for b.Loop() {
		copy(buf, src)
		for have := chunk; ; have += chunk {
			m, _, err := d.Next(buf[:min(have, len(buf))])
			if err != nil {
				b.Fatal(err)
			}
			if m.Op != 0 {
				break
			}
		}
	}
}

func BenchmarkUTF8(b *testing.B) {
	for _, tc := range []struct{ name, s string }{
		{"ascii", strings.Repeat(`{"topic":"news","seq":12345,"data":"hello"} `, 100)},
		{"mixed", strings.Repeat("ascii κόσμε € 𝄞 ", 200)},
		{"cjk", strings.Repeat("日本語のテキスト", 200)},
	} {
		p := []byte(tc.s)
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(p)))
			b.ReportAllocs()
			for b.Loop() {
				var v UTF8
				if !v.Write(p) || !v.Complete() {
					b.Fatal("invalid")
				}
			}
		})
	}
}

func BenchmarkAppendFrame(b *testing.B) {
	for _, n := range []int{128, 4096} {
		p := []byte(strings.Repeat("a", n))
		dst := make([]byte, 0, n+14)
		b.Run(map[int]string{128: "128B", 4096: "4KiB"}[n], func(b *testing.B) {
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				dst = AppendFrame(dst[:0], ws.OpText, true, p)
			}
		})
	}
}

// BenchmarkWritePrepared writes one shared Prepared frame to a socket, as a
// loop does for every subscriber of a push.
func BenchmarkWritePrepared(b *testing.B) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	p := NewPrepared(ws.OpText, []byte(`{"topic":"news","seq":12345,"data":{"title":"hello","body":"`+strings.Repeat("x", 64)+`"}}`))
	drain := make([]byte, 64<<10)
	const batch = 64 // well below the socket buffer, so writes never block
	b.SetBytes(int64(len(p)))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := unix.Write(fds[0], p); err != nil {
			b.Fatal(err)
		}
		if i++; i == batch {
			for left := batch * len(p); left > 0; {
				n, err := unix.Read(fds[1], drain[:min(left, len(drain))])
				if err != nil {
					b.Fatal(err)
				}
				left -= n
			}
			i = 0
		}
	}
}
