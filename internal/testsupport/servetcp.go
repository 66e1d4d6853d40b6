package testsupport

import (
	"net"
	"testing"
)

// ServeTCP listens on a loopback port the kernel picks and runs handle on
// a goroutine of its own for every connection, closing the connection when
// handle returns; the listener closes when the test ends. It returns the
// address, host:port: a stand-in server a test points a client or a proxy
// at.
func ServeTCP(tb testing.TB, handle func(net.Conn)) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c)
			}()
		}
	}()
	return ln.Addr().String()
}
