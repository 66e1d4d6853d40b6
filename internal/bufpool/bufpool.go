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
	// limit: one class does not take all of the pool's idle bound.
	MaxIdlePerClass = 512 << 10

	// MaxKept is the largest buffer a Pool keeps once it is put back. A
	// larger one served one large unit (a peer's 1 MiB frame): rare, and
	// allocating it again costs little next to filling it, while keeping one
	// per class and loop held megabytes per loop for good after a single
	// burst of large or hostile messages (issue 10).
	MaxKept = 64 << 10

	// DefaultMaxIdle bounds the bytes all the classes of a Pool keep
	// together unless LimitIdle sets another bound (wspush -pool-idle).
	DefaultMaxIdle = 1 << 20

	numClasses = maxShift - minShift + 1
)

// Pool hands out buffers in power-of-two size classes from MinSize to
// MaxSize, and keeps those put back up to MaxKept bytes each: each class
// keeps at most a fixed number of buffers and MaxIdlePerClass bytes, and all
// together at most DefaultMaxIdle bytes (or the bound set with LimitIdle);
// buffers beyond are left to the garbage collector.
//
// The zero value is ready to use and keeps up to DefaultPerClass buffers per
// class.
type Pool struct {
	max     int
	maxIdle int // bytes all classes may keep: 0 means DefaultMaxIdle, < 0 none
	idle    int // bytes kept in free
	free    [numClasses][][]byte
}

// New returns a Pool that keeps at most maxPerClass buffers per size class.
// maxPerClass <= 0 means the pool keeps nothing (every Get allocates).
func New(maxPerClass int) *Pool {
	if maxPerClass <= 0 {
		maxPerClass = -1
	}
	return &Pool{max: maxPerClass}
}

// LimitIdle bounds the bytes the pool keeps for reuse, all classes
// together, to n; n <= 0 keeps none. Buffers already kept over a lower bound
// are kept until taken.
func (p *Pool) LimitIdle(n int) {
	if n <= 0 {
		n = -1
	}
	p.maxIdle = n
}

// idleBound is the bytes all classes may keep together.
func (p *Pool) idleBound() int { return setting(p.maxIdle, DefaultMaxIdle) }

// limit is the buffers one class may keep.
func (p *Pool) limit() int { return setting(p.max, DefaultPerClass) }

// setting reads a bound stored as 0 for its default def and negative for
// none (0).
func setting(v, def int) int {
	switch {
	case v == 0:
		return def
	case v < 0:
		return 0
	}
	return v
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
		p.idle -= cap(b)
		return b
	}
	return make([]byte, 0, 1<<(c+minShift))
}

// Put gives b back to the pool. The caller must not use b afterwards. Buffers
// whose capacity is not exactly a class size, buffers larger than MaxKept,
// and buffers of a class or pool that is already full, are dropped.
func (p *Pool) Put(b []byte) {
	c := cap(b)
	if c < MinSize || c > MaxKept || c&(c-1) != 0 || p.idle+c > p.idleBound() {
		return
	}
	i := bits.Len(uint(c)) - 1 - minShift
	if n := len(p.free[i]); n >= p.limit() || (n+1)*c > MaxIdlePerClass {
		return
	}
	p.free[i] = append(p.free[i], b[:0])
	p.idle += c
}

// Idle is the bytes the pool keeps for reuse.
func (p *Pool) Idle() int { return p.idle }
