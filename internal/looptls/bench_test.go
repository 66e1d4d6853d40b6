package looptls

import (
	"crypto/tls"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/wspush/wspush/internal/testsupport"
)

// BenchmarkWrite encrypts 128-byte frames on an established TLS 1.3 Conn,
// on its loop: Write and Output per frame (a push to one subscriber), and
// 16 Writes per Output (16 pushes queued in one loop callback).
//
//	go test -run '^$' -bench Write -benchmem ./internal/looptls/
func BenchmarkWrite(b *testing.B) {
	cert := newTestCert(b, time.Now().Add(time.Hour))
	for _, bc := range []struct {
		name  string
		batch int
	}{{"128B", 1}, {"128B-16-per-output", 16}} {
		b.Run(bc.name, func(b *testing.B) {
			srv := startTestServer(b, serverConfig(cert), NewPool(1, 10*time.Second), feedMode{})
			cc, err := tls.Dial("tcp", srv.addr(), clientConfig(cert, tls.VersionTLS13))
			if err != nil {
				b.Fatal(err)
			}
			defer cc.Close()
			sc := srv.next(b)
			if err := recvErr(b, sc.handshake, "handshake"); err != nil {
				b.Fatal(err)
			}
			frame := make([]byte, 128)
			var out int
			b.SetBytes(int64(len(frame)))
			b.ReportAllocs()
			srv.loop.Do(func() { // the loop owns the Conn; nothing else runs on it meanwhile
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if _, err := sc.tc.Write(frame); err != nil {
						b.Fatal(err)
					}
					if (i+1)%bc.batch == 0 {
						out += len(sc.tc.Output())
					}
				}
				b.StopTimer()
			})
			b.ReportMetric(float64(out)/float64(b.N), "wire-B/frame")
		})
	}
}

// BenchmarkHandshake is the cost of one connection (TLS 1.3 handshake with
// ECDSA P-256 and Go's default X25519MLKEM768 key exchange, a request, an
// answer), against this package's design on netpoll and against a
// goroutine-per-connection crypto/tls server. The clients are a child
// process with 32 dialers (the machine's cores are shared with it, so
// ns/op is the whole cost of a connection, client included).
//
//	go test -run '^$' -bench 'Handshake$' -benchtime 2000x ./internal/looptls/
func BenchmarkHandshake(b *testing.B) {
	cert := newTestCert(b, time.Now().Add(time.Hour))
	for i, bc := range []struct {
		name  string
		start func() idleServer
	}{
		{"loop-pool", func() idleServer { return newLoopTLS(b, serverConfig(cert)) }},
		{"goroutine", func() idleServer { return newGoroutineTLS(b, serverConfig(cert)) }},
	} {
		round := 0
		b.Run(bc.name, func(b *testing.B) {
			round++
			s := bc.start()
			defer s.close()
			src := fmt.Sprintf("127.0.%d.%d", 10+i, 2+round) // fresh source ports for every round
			child := testsupport.StartChild(b, idleChildEnv+"="+s.addr()+" tls "+src)
			defer child.Stop()
			cpu0 := cpuTime(b)
			b.ResetTimer()
			if !child.Hold(b.N) {
				b.Fatal("the clients stopped")
			}
			testsupport.WaitFor(b, "the server to answer every connection", func() bool { return s.ready() == int64(b.N) })
			b.StopTimer()
			b.ReportMetric(float64((cpuTime(b)-cpu0).Microseconds())/float64(b.N), "server-cpu-µs/conn")
		})
	}
}

// cpuTime is the CPU time (user and system) this process has used.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkHandshakeGoroutine is what the Pool's fresh goroutine per
// handshake costs against a persistent worker: the start and the growth of
// a stack as deep as a handshake's (about 20 KiB here).
//
//	go test -run '^$' -bench HandshakeGoroutine ./internal/looptls/
func BenchmarkHandshakeGoroutine(b *testing.B) {
	b.Run("fresh", func(b *testing.B) {
		done := make(chan struct{})
		for i := 0; i < b.N; i++ {
			go func() { deepStack(64); done <- struct{}{} }()
			<-done
		}
	})
	b.Run("worker", func(b *testing.B) {
		work, done := make(chan struct{}), make(chan struct{})
		go func() {
			for range work {
				deepStack(64)
				done <- struct{}{}
			}
		}()
		for i := 0; i < b.N; i++ {
			work <- struct{}{}
			<-done
		}
		close(work)
	})
}

// deepStack uses about 300 bytes of stack per level.
//
//go:noinline
func deepStack(n int) byte {
	var a [256]byte
	if n == 0 {
		return a[0]
	}
	a[n%256] = deepStack(n - 1)
	return a[3]
}
