package client

import (
	"math/rand/v2"
	"time"
)

// backoff is the wait before reconnect attempt n (0 for the first after a
// connection ended): uniform in [0, min(max, min·2ⁿ)), "full jitter", so
// clients dropped together by a restart spread their reconnects.
func backoff(n int, min, max time.Duration, r *rand.Rand) time.Duration {
	ceiling := min
	for i := 0; i < n && ceiling < max; i++ {
		ceiling *= 2
	}
	if ceiling > max {
		ceiling = max
	}
	if ceiling <= 0 {
		return 0
	}
	return time.Duration(r.Int64N(int64(ceiling)))
}
