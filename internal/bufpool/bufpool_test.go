package bufpool

import (
	"strconv"
	"testing"
)

func TestGetCapacity(t *testing.T) {
	for _, tc := range []struct{ n, cap int }{
		{0, 512},
		{1, 512},
		{512, 512},
		{513, 1024},
		{1000, 1024},
		{1024, 1024},
		{1025, 2048},
		{MaxSize - 1, MaxSize},
		{MaxSize, MaxSize},
		{MaxSize + 1, MaxSize + 1},
	} {
		var p Pool
		b := p.Get(tc.n)
		if len(b) != 0 || cap(b) != tc.cap {
			t.Errorf("Get(%d): len %d cap %d, want 0, %d", tc.n, len(b), cap(b), tc.cap)
		}
	}
}

func TestReuse(t *testing.T) {
	var p Pool
	b := p.Get(700)
	b = append(b, "hello"...)
	p.Put(b)
	c := p.Get(1024)
	if &c[:1][0] != &b[:1][0] {
		t.Fatal("Get did not reuse the buffer given to Put")
	}
	if len(c) != 0 {
		t.Fatalf("reused buffer has len %d", len(c))
	}
	if d := p.Get(1024); &d[:1][0] == &b[:1][0] {
		t.Fatal("buffer handed out twice")
	}
}

func TestPutDrops(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"nil", nil},
		{"small", make([]byte, 0, 256)},
		{"not a class", make([]byte, 0, 1000)},
		{"too large", make([]byte, 0, MaxSize*2)},
	} {
		var p Pool
		p.Put(tc.b)
		for i := range p.free {
			if len(p.free[i]) != 0 {
				t.Errorf("%s: kept in class %d", tc.name, i)
			}
		}
	}
}

func TestLimit(t *testing.T) {
	for _, tc := range []struct {
		p    *Pool
		keep int
	}{
		{&Pool{}, DefaultPerClass},
		{New(3), 3},
		{New(0), 0},
		{New(-1), 0},
	} {
		for range tc.keep + 5 {
			tc.p.Put(make([]byte, 0, 4096))
		}
		if got := len(tc.p.free[class(4096)]); got != tc.keep {
			t.Errorf("max %d: kept %d, want %d", tc.p.max, got, tc.keep)
		}
	}
}

func TestAllocs(t *testing.T) {
	p := New(4)
	p.Put(p.Get(5000)) // warm the class
	if n := testing.AllocsPerRun(100, func() {
		b := p.Get(5000)
		p.Put(b)
	}); n != 0 {
		t.Fatalf("Get/Put allocate %v times per run", n)
	}
}

func BenchmarkGetPut(b *testing.B) {
	for _, size := range []int{100, 4096, 1 << 20} {
		b.Run(strconv.Itoa(size), func(b *testing.B) {
			var p Pool
			b.ReportAllocs()
			for b.Loop() {
				p.Put(p.Get(size))
			}
		})
	}
}

// TestIdleBounded: buffers above MaxKept are not kept, and all classes
// together keep at most the idle bound: DefaultMaxIdle, or LimitIdle's.
func TestIdleBounded(t *testing.T) {
	for _, tc := range []struct {
		name  string
		limit int // passed to LimitIdle unless 0
		want  int // the most Idle may be
	}{
		{"default", 0, DefaultMaxIdle},
		{"256KiB", 256 << 10, 256 << 10},
		{"4MiB", 4 << 20, 4 << 20},
		{"none", -1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := New(64)
			if tc.limit != 0 {
				p.LimitIdle(tc.limit)
			}
			var held [][]byte
			for size := MinSize; size <= 4<<20; size *= 2 {
				for range 64 {
					held = append(held, p.Get(size))
				}
			}
			for _, b := range held {
				p.Put(b)
			}
			if p.Idle() > tc.want || (tc.want > 0 && p.Idle() == 0) {
				t.Fatalf("idle %d bytes, want at most %d (and some if allowed)", p.Idle(), tc.want)
			}
			for c := range p.free {
				for _, b := range p.free[c] {
					if cap(b) > MaxKept {
						t.Fatalf("a %d-byte buffer kept, over MaxKept %d", cap(b), MaxKept)
					}
				}
			}
			if sum := kept(p); sum != p.Idle() {
				t.Fatalf("Idle %d, the free lists hold %d", p.Idle(), sum)
			}
			for size := MinSize; size <= MaxKept; size *= 2 {
				p.Get(size)
			}
			if sum := kept(p); sum != p.Idle() {
				t.Fatalf("after Gets: Idle %d, the free lists hold %d", p.Idle(), sum)
			}
		})
	}
}

// kept is the bytes p's free lists hold, counted from the lists themselves.
func kept(p *Pool) int {
	sum := 0
	for c := range p.free {
		for _, b := range p.free[c] {
			sum += cap(b)
		}
	}
	return sum
}
