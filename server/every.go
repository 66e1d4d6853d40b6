package server

import "time"

// every calls fn with the time of each tick of a ticker of period interval,
// on the calling goroutine, until done is closed. The server's background
// sweeps run on it (history.go, clusterrecovery.go).
func every(interval time.Duration, done <-chan struct{}, fn func(now time.Time)) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return
		case now := <-tick.C:
			fn(now)
		}
	}
}
