//go:build linux

package netpoll

import (
	"errors"
	"net"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// TestSimultaneousListenersOneWins: groups listening on one port at the same
// instant (two processes started together race the same way: SO_REUSEPORT
// is shared by user, not by process) end with exactly one listening and the
// others failing with "address already in use". Without the start-up lock
// both pass the port check before either binds.
func TestSimultaneousListenersOneWins(t *testing.T) {
	const rounds, racers = 30, 3
	for range rounds {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		var (
			wg     sync.WaitGroup
			start  = make(chan struct{})
			groups = make([]*Group, racers)
			errs   = make([]error, racers)
		)
		for i := range racers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				groups[i], errs[i] = Listen(Config{Addr: addr, Loops: 2, Handler: &sizedHandler{}})
			}()
		}
		close(start)
		wg.Wait()
		won := 0
		for i, g := range groups {
			switch {
			case errs[i] == nil:
				won++
				g.Close()
			case !errors.Is(errs[i], unix.EADDRINUSE):
				t.Fatalf("listen on %s: %v, want address already in use", addr, errs[i])
			}
		}
		if won != 1 {
			t.Fatalf("%d of %d groups listening on %s at once, want exactly 1", won, racers, addr)
		}
	}
}
