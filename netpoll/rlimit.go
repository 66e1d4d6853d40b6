//go:build linux

package netpoll

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// RaiseOpenFiles raises the soft RLIMIT_NOFILE to the hard limit and returns
// the resulting cap: the most file descriptors (sockets included) this process
// may hold.
func RaiseOpenFiles() (uint64, error) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("getrlimit NOFILE: %w", err)
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
			return lim.Cur, fmt.Errorf("setrlimit NOFILE to %d: %w", lim.Max, err)
		}
	}
	return lim.Cur, nil
}
