// Package bufpool keeps size-classed free lists of byte buffers for one
// goroutine.
//
// A Pool is owned by exactly one goroutine (an event loop) and is not safe for
// concurrent use: it has no locks, so Get and Put cost a few instructions and
// allocate nothing once the free lists are warm. Each loop has its own Pool;
// buffers must go back to the Pool they came from, by the same goroutine.
package bufpool

import "math/bits"

const (
	minShift = 9  // smallest class: 512 B
	maxShift = 26 // largest class: 64 MiB

	// MinSize is the smallest size class.
	MinSize = 1 << minShift
	// MaxSize is the largest size class. Larger buffers are allocated with
	// their exact size and never kept.
	MaxSize = 1 << maxShift

	// DefaultPerClass is the per-class limit of a zero Pool.
	DefaultPerClass = 8

	// MaxIdlePerClass bounds the bytes a class keeps, whatever its count
	// limit (at least one buffer is kept): large buffers, taken by peers
	// sending large messages, are not kept by the dozen once they leave.
	MaxIdlePerClass = 512 << 10

	numClasses = maxShift - minShift + 1
)

// Pool holds free buffers in power-of-two size classes from MinSize to
// MaxSize. Each class keeps at most a fixed number of buffers, so the idle
// memory of a Pool is bounded; buffers beyond the limit are left to the
// garbage collector. Classes larger than anything asked for stay empty, so if
// requests never exceed S bytes the idle memory is below
// 2 × maxPerClass × S (for S = 1 MiB and the default limit, 16 MiB), and no
// class keeps more than MaxIdlePerClass bytes (or one buffer).
//
// The zero value is ready to use and keeps up to DefaultPerClass buffers per
// class.
type Pool struct {
	max  int
	free [numClasses][][]byte
}

// New returns a Pool that keeps at most maxPerClass buffers per size class.
// maxPerClass <= 0 means the pool keeps nothing (every Get allocates).
func New(maxPerClass int) *Pool {
	if maxPerClass <= 0 {
		maxPerClass = -1
	}
	return &Pool{max: maxPerClass}
}

func (p *Pool) limit() int {
	switch {
	case p.max == 0:
		return DefaultPerClass
	case p.max < 0:
		return 0
	}
	return p.max
}

// class returns the index of the smallest class holding n bytes, or -1 if n is
// larger than MaxSize.
func class(n int) int {
	if n <= MinSize {
		return 0
	}
	if n > MaxSize {
		return -1
	}
	return bits.Len(uint(n-1)) - minShift
}

// Get returns a buffer with length 0 and capacity at least n. The capacity is
// the size class of n, or exactly n above MaxSize. The caller owns the buffer
// until it passes it to Put.
func (p *Pool) Get(n int) []byte {
	c := class(n)
	if c < 0 {
		return make([]byte, 0, n)
	}
	l := p.free[c]
	if k := len(l); k > 0 {
		b := l[k-1]
		l[k-1] = nil // do not keep a second reference to a buffer in use
		p.free[c] = l[:k-1]
		return b
	}
	return make([]byte, 0, 1<<(c+minShift))
}

// Put gives b back to the pool. The caller must not use b afterwards. Buffers
// whose capacity is not exactly a class size (including those larger than
// MaxSize), and buffers of a class that is already full, are dropped.
func (p *Pool) Put(b []byte) {
	c := cap(b)
	if c < MinSize || c > MaxSize || c&(c-1) != 0 {
		return
	}
	i := bits.Len(uint(c)) - 1 - minShift
	if n := len(p.free[i]); n >= p.limit() || n > 0 && (n+1)*c > MaxIdlePerClass {
		return
	}
	p.free[i] = append(p.free[i], b[:0])
}
