package pubsub

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"time"
	"unsafe"
)

// Defaults of the history flags.
const (
	DefaultHistorySize     = 100              // -history-size
	DefaultHistoryTTL      = 5 * time.Minute  // -history-ttl
	DefaultHistoryMaxBytes = int64(256 << 20) // -history-max-bytes
)

// HistoryConfig bounds the histories of one node.
type HistoryConfig struct {
	Size     int           // messages kept per topic; 0 keeps none, only positions
	TTL      time.Duration // age past which a message is dropped and an idle topic may be forgotten
	MaxBytes int64         // what the messages of all topics may hold together (HistoryMessageCost each)
}

// DefaultHistoryConfig is the history of a node started without flags.
func DefaultHistoryConfig() HistoryConfig {
	return HistoryConfig{Size: DefaultHistorySize, TTL: DefaultHistoryTTL, MaxBytes: DefaultHistoryMaxBytes}
}

// Validate reports a bound that cannot work. TTL and MaxBytes have no
// "unlimited": a topic lives for TTL after its last publish, so without one a
// client publishing to ever new names would grow the topic table for good.
func (c HistoryConfig) Validate() error {
	switch {
	case c.Size < 0:
		return fmt.Errorf("history size %d: want 0 (off) or more messages per topic", c.Size)
	case c.TTL <= 0:
		return fmt.Errorf("history ttl %v: want a positive duration", c.TTL)
	case c.MaxBytes <= 0:
		return fmt.Errorf("history max bytes %d: want a positive number", c.MaxBytes)
	}
	return nil
}

// Errors of Append.
var (
	ErrHistorySeq    = errors.New("history: seq not above the last one")
	ErrHistoryClosed = errors.New("history: closed")
	ErrHistoryNoPush = errors.New("history: no push to store")
)

// histSlot is one stored message in a topic's ring.
type histSlot struct {
	seq  uint64
	at   int64 // publish time, ns since HistoryStore.base; unique and increasing across all topics
	push *Push // shared with the fan-out, never copied
}

// HistoryMessageOverhead is what a stored message costs beyond its frame
// bytes: its Push and its ring slot. The frame's allocation may be rounded
// up to a size class on top of that.
const HistoryMessageOverhead = int64(unsafe.Sizeof(Push{}) + unsafe.Sizeof(histSlot{}))

// HistoryMessageCost is what a stored message counts against MaxBytes: its
// encoded frame plus HistoryMessageOverhead, so that the budget bounds the
// memory the history holds however small the messages are.
func HistoryMessageCost(p *Push) int64 { return int64(len(p.Frame)) + HistoryMessageOverhead }

// Eviction causes, indexing HistoryStats.Evicted.
const (
	EvictedSize  = iota // the topic had -history-size newer messages
	EvictedTTL          // older than -history-ttl
	EvictedBytes        // the oldest of all topics when -history-max-bytes was reached
	numEvictCauses
)

// HistoryStats are the store's gauges and counters for the metrics.
type HistoryStats struct {
	Topics   int                    // open histories
	Messages int                    // messages held
	Bytes    int64                  // their HistoryMessageCost, summed
	Evicted  [numEvictCauses]uint64 // messages dropped, by cause (EvictedSize, EvictedTTL, EvictedBytes)
}

// HistoryStore owns the histories of one node's topics and their shared
// byte budget. One mutex guards it and every History it made: it is a leaf
// lock, taken for a few hundred nanoseconds and never held while waiting for
// another, so callers may hold their own locks (Topic.mu) when they call in,
// and evicting another topic's messages never needs that topic's lock.
//
// The budget evicts the oldest message of all topics first. Every topic's
// ring is in publish order and publish times are unique and increasing
// across topics, so the oldest message overall is the first of some ring: a
// min-heap of the non-empty histories keyed by the time of their first
// message finds it.
type HistoryStore struct {
	cfg      HistoryConfig
	base     time.Time // times are kept as offsets from it (monotonic when it has a monotonic reading)
	baseUnix int64     // base in Unix nanoseconds

	mu     sync.Mutex
	lastAt int64       // the latest publish offset handed out
	heap   []histEntry // the non-empty histories, by their oldest message
	stats  HistoryStats
}

// histEntry is a heap element; at duplicates h's oldest time so the
// comparisons stay within the heap's array.
type histEntry struct {
	at int64
	h  *History
}

// NewHistoryStore returns an empty store bounded by cfg; now is the clock's
// reading at start, the base of every later one.
func NewHistoryStore(cfg HistoryConfig, now time.Time) (*HistoryStore, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &HistoryStore{cfg: cfg, base: now, baseUnix: now.UnixNano(), lastAt: math.MinInt64}, nil
}

// Config is the store's configuration.
func (s *HistoryStore) Config() HistoryConfig { return s.cfg }

// History is one topic stream's epoch, last position and last messages. It
// is guarded by its store's mutex, so every method is safe from any
// goroutine; the Hub calls Append and Since under Topic.mu for their order
// relative to seq and to subscriber registration (docs/history-design-notes.md).
type History struct {
	store *HistoryStore // immutable
	epoch string        // immutable

	// Guarded by store.mu.
	ring        []histSlot // len is the capacity; grows to at most cfg.Size
	head, n     int        // the oldest slot, and how many are held
	last        uint64     // the last seq appended (or the start position)
	evicted     uint64     // every message at or below it is gone; all above it are in ring
	lastPublish int64      // offset of the last Append, or of the creation
	heapIdx     int        // index in store.heap, or -1
	closed      bool
}

// NewHistory opens the history of a topic stream that starts after seq (0
// for a new topic; a cluster stream's position when a node joins it late):
// a position at or above it is recoverable, one below is not.
func (s *HistoryStore) NewHistory(epoch string, seq uint64, now time.Time) (*History, error) {
	if err := CheckEpoch(epoch); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.Topics++
	return &History{store: s, epoch: epoch, last: seq, evicted: seq, lastPublish: s.offset(now), heapIdx: -1}, nil
}

// Epoch is the stream's epoch.
func (h *History) Epoch() string { return h.epoch }

// Last is the last seq appended, or the start position.
func (h *History) Last() uint64 {
	h.store.mu.Lock()
	defer h.store.mu.Unlock()
	return h.last
}

// LastPublish is when the last message was appended (the creation time
// before the first). The Hub forgets a topic without subscribers once
// Idle.
func (h *History) LastPublish() time.Time {
	h.store.mu.Lock()
	defer h.store.mu.Unlock()
	return h.store.base.Add(time.Duration(h.lastPublish))
}

// Idle reports whether nothing was published for longer than the TTL, so
// every message has expired and the topic may be forgotten when it has no
// subscriber.
func (h *History) Idle(now time.Time) bool {
	h.store.mu.Lock()
	defer h.store.mu.Unlock()
	return h.store.offset(now)-h.lastPublish > int64(h.store.cfg.TTL)
}

// Append records that seq, published at now, is the stream's next message,
// and stores p, the push the fan-out shares (not a copy). With Size 0 only
// the position is kept and p may be nil. seq must be above the last one;
// gaps are fine. Appending may evict older messages of this topic (Size,
// TTL) and of any topic (MaxBytes). No allocation once the ring is grown.
func (h *History) Append(seq uint64, p *Push, now time.Time) error {
	s := h.store
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case h.closed:
		return ErrHistoryClosed
	case seq <= h.last:
		return fmt.Errorf("%w: %d after %d", ErrHistorySeq, seq, h.last)
	case p == nil && s.cfg.Size > 0:
		return ErrHistoryNoPush
	}
	off := s.offset(now)
	at := s.publishOffset(off)
	h.last, h.lastPublish = seq, at
	h.expire(off) // by the clock, not by at: at may run a few ns ahead of it
	if s.cfg.Size == 0 {
		h.evicted = seq // nothing stored: every position but the last is lost
		return nil
	}
	if h.n == s.cfg.Size {
		h.dropOldest(EvictedSize)
	}
	h.push(histSlot{seq: seq, at: at, push: p})
	s.stats.Messages++
	s.stats.Bytes += HistoryMessageCost(p)
	h.reheap()
	for s.stats.Bytes > s.cfg.MaxBytes {
		victim := s.heap[0].h
		victim.dropOldest(EvictedBytes)
		victim.reheap()
	}
	return nil
}

// HistoryMessage is a stored message as Since returns it.
type HistoryMessage struct {
	Seq       uint64
	Push      *Push // the fan-out's push: queue it, never modify it
	Published int64 // Unix nanoseconds (a plain number: a time.Time per message would cost more than the copy)
}

// Since appends to dst the stored messages after seq, in seq order, and
// reports whether they are all of them: epoch is this stream's, seq is not
// past the last one, and nothing after seq was evicted. When it is false the
// messages (if any) are only what is left, and a resubscribe answers
// recovered:false. Expired messages are dropped first.
func (h *History) Since(epoch string, seq uint64, now time.Time, dst []HistoryMessage) ([]HistoryMessage, bool) {
	s := h.store
	s.mu.Lock()
	defer s.mu.Unlock()
	if h.closed || epoch != h.epoch {
		return dst, false
	}
	h.expire(s.offset(now))
	for i := h.search(seq); i < h.n; i++ {
		sl := &h.ring[h.index(i)]
		dst = append(dst, HistoryMessage{Seq: sl.seq, Push: sl.push, Published: s.baseUnix + sl.at})
	}
	return dst, seq >= h.evicted && seq <= h.last
}

// Close releases the stream's messages when the Hub forgets the topic; they
// do not count as evictions. Later Appends fail and Since finds nothing.
func (h *History) Close() {
	s := h.store
	s.mu.Lock()
	defer s.mu.Unlock()
	if h.closed {
		return
	}
	for h.n > 0 {
		h.dropOldest(-1)
	}
	h.reheap()
	h.ring = nil
	h.closed = true
	s.stats.Topics--
}

// Sweep drops the messages of every topic older than the TTL and returns
// how many. The Hub calls it periodically so that topics nobody touches
// release their memory; Append and Since also expire lazily.
func (s *HistoryStore) Sweep(now time.Time) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	cut := s.offset(now) - int64(s.cfg.TTL)
	n := 0
	for len(s.heap) > 0 && s.heap[0].at < cut {
		n += s.heap[0].h.expire(s.offset(now))
	}
	return n
}

// Stats reads the gauges and counters.
func (s *HistoryStore) Stats() HistoryStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// offset turns a clock reading into the store's time.
func (s *HistoryStore) offset(now time.Time) int64 { return int64(now.Sub(s.base)) }

// publishOffset makes the clock offset at unique and increasing, so that
// the publish order of all topics is the order of their times even when the
// clock reads the same twice, or concurrent publishers read it in one order
// and take the lock in another.
func (s *HistoryStore) publishOffset(at int64) int64 {
	if at <= s.lastAt {
		at = s.lastAt + 1
	}
	s.lastAt = at
	return at
}

// The methods below run under store.mu.

// expire drops this topic's messages older than the TTL at now (an offset)
// and returns how many; a topic left empty by age releases its ring.
func (h *History) expire(now int64) int {
	cut := now - int64(h.store.cfg.TTL)
	n := 0
	for h.n > 0 && h.ring[h.head].at < cut {
		h.dropOldest(EvictedTTL)
		n++
	}
	if n == 0 {
		return 0
	}
	if h.n == 0 {
		h.ring = nil // idle: it will be forgotten or grow again from small
	}
	h.reheap()
	return n
}

// dropOldest evicts the oldest message for cause (-1: none, the history is
// closing), clearing its slot so the push can be collected.
func (h *History) dropOldest(cause int) {
	s := h.store
	sl := &h.ring[h.head]
	h.evicted = sl.seq
	s.stats.Messages--
	s.stats.Bytes -= HistoryMessageCost(sl.push)
	if cause >= 0 {
		s.stats.Evicted[cause]++
	}
	*sl = histSlot{}
	h.head = h.index(1)
	h.n--
}

// push adds a slot at the end, growing the ring (doubling, up to Size) only
// while it is smaller than Size, so a busy topic stops allocating and a
// quiet one holds only what it uses.
func (h *History) push(sl histSlot) {
	if h.n == len(h.ring) {
		grown := make([]histSlot, min(max(2*len(h.ring), 4), h.store.cfg.Size))
		for i := 0; i < h.n; i++ {
			grown[i] = h.ring[h.index(i)]
		}
		h.ring, h.head = grown, 0
	}
	h.ring[h.index(h.n)] = sl
	h.n++
}

// index is the ring index of the i-th held message.
func (h *History) index(i int) int {
	i += h.head
	if i >= len(h.ring) {
		i -= len(h.ring)
	}
	return i
}

// search returns the position of the first held message after seq.
func (h *History) search(seq uint64) int {
	lo, hi := 0, h.n
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if h.ring[h.index(mid)].seq <= seq {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo
}

// reheap puts h where its oldest message belongs in the store's heap: in
// when it gained one, out when it has none, moved when its oldest changed.
// Its key only grows, so a moved entry only sinks.
func (h *History) reheap() {
	s := h.store
	switch {
	case h.n == 0 && h.heapIdx >= 0:
		s.heapRemove(h.heapIdx)
	case h.n > 0 && h.heapIdx < 0:
		h.heapIdx = len(s.heap)
		s.heap = append(s.heap, histEntry{at: h.ring[h.head].at, h: h})
		s.heapUp(h.heapIdx)
	case h.n > 0:
		s.heap[h.heapIdx].at = h.ring[h.head].at
		s.heapDown(h.heapIdx)
	}
}

func (s *HistoryStore) heapRemove(i int) {
	s.heap[i].h.heapIdx = -1
	last := len(s.heap) - 1
	if i != last {
		s.heap[i] = s.heap[last]
		s.heap[i].h.heapIdx = i
	}
	s.heap[last] = histEntry{}
	s.heap = s.heap[:last]
	if i != last {
		s.heapDown(i)
		s.heapUp(i)
	}
}

func (s *HistoryStore) heapUp(i int) {
	for i > 0 {
		parent := (i - 1) / 2
		if s.heap[parent].at <= s.heap[i].at {
			return
		}
		s.heapSwap(i, parent)
		i = parent
	}
}

func (s *HistoryStore) heapDown(i int) {
	for {
		least := i
		for _, c := range [2]int{2*i + 1, 2*i + 2} {
			if c < len(s.heap) && s.heap[c].at < s.heap[least].at {
				least = c
			}
		}
		if least == i {
			return
		}
		s.heapSwap(i, least)
		i = least
	}
}

func (s *HistoryStore) heapSwap(i, j int) {
	s.heap[i], s.heap[j] = s.heap[j], s.heap[i]
	s.heap[i].h.heapIdx = i
	s.heap[j].h.heapIdx = j
}
