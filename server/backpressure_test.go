package server

import (
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wspush/wspush/internal/testsupport"
)

// BenchmarkKernelShare measures how much of a slow consumer's backlog the
// kernel absorbs before the server's own bufferedAmount fills: bytes pushed
// to a client that never reads, minus -max-buffered, at the moment it is
// dropped. That is its socket send buffer (tcp_wmem autotuning, or -sndbuf)
// plus the client's receive window (held at 4 KiB here).
//
//	go test -run '^$' -bench KernelShare -benchtime 1x ./server/
func BenchmarkKernelShare(b *testing.B) {
	for _, sndbuf := range []int{0, 16 << 10, 64 << 10} {
		b.Run(fmt.Sprintf("sndbuf=%d", sndbuf), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				b.ReportMetric(kernelShare(b, sndbuf), "kernel-bytes")
			}
		})
	}
}

func kernelShare(b *testing.B, sndbuf int) float64 {
	const maxBuffered = 256 << 10
	s := startServer(b, Config{Loops: 1, MaxBuffered: maxBuffered, SendBuffer: sndbuf})
	slow := dialRaw(b, s)
	slow.Conn.(interface{ SetReadBuffer(int) error }).SetReadBuffer(4 << 10)
	slow.upgrade(b, "/ws?topics=k")
	slow.readFrame(b) // subscribed
	data := `"` + strings.Repeat("x", 16<<10) + `"`
	frame := len(`{"topic":"k","seq":1000,"data":}`) + len(data) + 4
	pushed := 0
	for testutil.ToFloat64(s.metrics.slowDropped) == 0 {
		publish(b, s, "k", data)
		pushed += frame
		n := uint64(pushed / frame)
		testsupport.WaitFor(b, "the push to be queued", func() bool { return s.hub.Stats().Delivered == n })
		if pushed > 64<<20 {
			b.Fatal("no drop after 64 MiB")
		}
	}
	return float64(pushed - maxBuffered)
}
