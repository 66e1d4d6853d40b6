//go:build linux

package netpoll

import "runtime"

// goid is the calling goroutine's id, read from the first line of its stack
// trace ("goroutine 18 [running]:"). It takes about a microsecond: it is for
// the checks of Group.Each and Group.Close and a loop's first callback, never
// for the data path.
func goid() uint64 {
	var buf [32]byte
	b := buf[:runtime.Stack(buf[:], false)]
	const prefix = "goroutine "
	if len(b) < len(prefix) {
		return 0
	}
	var id uint64
	for _, c := range b[len(prefix):] {
		if c < '0' || c > '9' {
			break
		}
		id = id*10 + uint64(c-'0')
	}
	return id
}
