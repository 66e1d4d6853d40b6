package pubsub

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
	"weak"

	"github.com/wspush/wspush/frames"
)

// histT0 is the injected clock's start; tests move it explicitly.
var histT0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func histAt(d time.Duration) time.Time { return histT0.Add(d) }

func newHistStore(t testing.TB, cfg HistoryConfig) *HistoryStore {
	t.Helper()
	s, err := NewHistoryStore(cfg, histT0)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newHist(t testing.TB, s *HistoryStore, start uint64) *History {
	t.Helper()
	h, err := s.NewHistory(NewEpoch(), start, histT0)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// histPush is the push of seq on topic, as the Hub encodes it.
func histPush(topic string, seq uint64) *Push {
	return &Push{Frame: PushFrame(topic, seq, []byte(`{"n":`+strconv.FormatUint(seq, 10)+`}`))}
}

// sizedPush is a push whose frame is n bytes, for byte accounting.
func sizedPush(n int) *Push { return &Push{Frame: make(frames.Prepared, n)} }

func appendSeqs(t testing.TB, h *History, now time.Time, seqs ...uint64) {
	t.Helper()
	for _, seq := range seqs {
		if err := h.Append(seq, histPush("t", seq), now); err != nil {
			t.Fatalf("append %d: %v", seq, err)
		}
	}
}

func seqsOf(msgs []HistoryMessage) []uint64 {
	out := []uint64{}
	for _, m := range msgs {
		out = append(out, m.Seq)
	}
	return out
}

func TestHistoryConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  HistoryConfig
		ok   bool
	}{
		{"default", DefaultHistoryConfig(), true},
		{"size 0", HistoryConfig{Size: 0, TTL: time.Second, MaxBytes: 1}, true},
		{"negative size", HistoryConfig{Size: -1, TTL: time.Second, MaxBytes: 1}, false},
		{"zero ttl", HistoryConfig{Size: 1, TTL: 0, MaxBytes: 1}, false},
		{"zero bytes", HistoryConfig{Size: 1, TTL: time.Second, MaxBytes: 0}, false},
	}
	for _, tt := range tests {
		err := tt.cfg.Validate()
		if (err == nil) != tt.ok {
			t.Errorf("%s: Validate() = %v, want ok %v", tt.name, err, tt.ok)
		}
		if _, err := NewHistoryStore(tt.cfg, histT0); (err == nil) != tt.ok {
			t.Errorf("%s: NewHistoryStore: %v, want ok %v", tt.name, err, tt.ok)
		}
	}
}

// TestHistorySince covers positions inside the window, before it (evicted by
// size), past the last seq and in another epoch, on a contiguous stream and
// on a gapped one (cluster positions).
func TestHistorySince(t *testing.T) {
	contiguous := []uint64{1, 2, 3, 4, 5, 6, 7, 8} // size 5 keeps 4-8, 3 evicted
	gapped := []uint64{10, 20, 30, 40, 50}         // size 3 keeps 30-50, 20 evicted
	tests := []struct {
		name   string
		seqs   []uint64
		epoch  bool // ask in the history's own epoch
		since  uint64
		want   []uint64
		wantOK bool
	}{
		{"from the last evicted", contiguous, true, 3, []uint64{4, 5, 6, 7, 8}, true},
		{"inside", contiguous, true, 5, []uint64{6, 7, 8}, true},
		{"at the last", contiguous, true, 8, []uint64{}, true},
		{"one evicted message missing", contiguous, true, 2, []uint64{4, 5, 6, 7, 8}, false},
		{"from the start, evicted", contiguous, true, 0, []uint64{4, 5, 6, 7, 8}, false},
		{"past the last", contiguous, true, 9, []uint64{}, false},
		{"other epoch", contiguous, false, 5, []uint64{}, false},
		{"gapped: at the highest evicted", gapped, true, 20, []uint64{30, 40, 50}, true},
		{"gapped: in a gap after it", gapped, true, 25, []uint64{30, 40, 50}, true},
		{"gapped: in a gap inside", gapped, true, 35, []uint64{40, 50}, true},
		{"gapped: at a held one", gapped, true, 40, []uint64{50}, true},
		{"gapped: before the highest evicted", gapped, true, 15, []uint64{30, 40, 50}, false},
		{"gapped: at the last", gapped, true, 50, []uint64{}, true},
		{"gapped: past the last", gapped, true, 51, []uint64{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			size := 5
			if tt.seqs[0] == 10 {
				size = 3
			}
			s := newHistStore(t, HistoryConfig{Size: size, TTL: time.Hour, MaxBytes: 1 << 30})
			h := newHist(t, s, 0)
			appendSeqs(t, h, histT0, tt.seqs...)
			epoch := h.Epoch()
			if !tt.epoch {
				epoch = NewEpoch()
			}
			msgs, ok := h.Since(epoch, tt.since, histT0, nil)
			if got := seqsOf(msgs); ok != tt.wantOK || !slices.Equal(got, tt.want) {
				t.Fatalf("Since(%d) = %v, %v; want %v, %v", tt.since, got, ok, tt.want, tt.wantOK)
			}
			for _, m := range msgs {
				if want := string(histPush("t", m.Seq).Frame); string(m.Push.Frame) != want {
					t.Fatalf("message %d carries frame %q, want %q", m.Seq, m.Push.Frame, want)
				}
			}
		})
	}
}

// TestHistoryStoresTheSharedPush checks that the history keeps the fan-out's
// push itself, and appends to the caller's slice.
func TestHistoryStoresTheSharedPush(t *testing.T) {
	s := newHistStore(t, DefaultHistoryConfig())
	h := newHist(t, s, 0)
	p := histPush("t", 1)
	if err := h.Append(1, p, histAt(time.Second)); err != nil {
		t.Fatal(err)
	}
	dst := make([]HistoryMessage, 1, 4)
	msgs, ok := h.Since(h.Epoch(), 0, histAt(time.Second), dst)
	if !ok || len(msgs) != 2 || msgs[1].Push != p || &msgs[1].Push.Frame[0] != &p.Frame[0] {
		t.Fatalf("Since = %+v, %v; want the appended push itself after dst", msgs, ok)
	}
	if &msgs[0] != &dst[0] {
		t.Fatal("Since did not append to dst")
	}
	if got := time.Unix(0, msgs[1].Published); !got.Equal(histAt(time.Second)) {
		t.Fatalf("message published at %v, want %v", got, histAt(time.Second))
	}
}

func TestHistoryEvictionBySize(t *testing.T) {
	tests := []struct {
		size, appends int
	}{
		{1, 1}, {1, 5}, {3, 2}, {3, 3}, {3, 10}, {100, 250},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("size %d appends %d", tt.size, tt.appends), func(t *testing.T) {
			s := newHistStore(t, HistoryConfig{Size: tt.size, TTL: time.Hour, MaxBytes: 1 << 30})
			h := newHist(t, s, 0)
			var cost int64
			for seq := uint64(1); seq <= uint64(tt.appends); seq++ {
				p := histPush("t", seq)
				if seq > uint64(tt.appends-min(tt.size, tt.appends)) {
					cost += HistoryMessageCost(p)
				}
				if err := h.Append(seq, p, histT0); err != nil {
					t.Fatal(err)
				}
			}
			held := min(tt.size, tt.appends)
			evicted := uint64(tt.appends - held)
			msgs, ok := h.Since(h.Epoch(), evicted, histT0, nil)
			if !ok || len(msgs) != held || msgs[0].Seq != evicted+1 {
				t.Fatalf("Since(%d) = %v, %v; want %d messages from %d", evicted, seqsOf(msgs), ok, held, evicted+1)
			}
			if _, ok := h.Since(h.Epoch(), evicted-1, histT0, nil); evicted > 0 && ok {
				t.Fatalf("Since(%d) recoverable after %d evictions", evicted-1, evicted)
			}
			want := HistoryStats{Topics: 1, Messages: held, Bytes: cost}
			want.Evicted[EvictedSize] = evicted
			if st := s.Stats(); st != want {
				t.Fatalf("stats %+v, want %+v", st, want)
			}
		})
	}
}

// TestHistoryEvictionByTTL drives the clock by hand: messages older than the
// TTL go on access (Since, Append) and on Sweep, and a recovery that needs
// one answers false.
func TestHistoryEvictionByTTL(t *testing.T) {
	const ttl = 5 * time.Minute
	nothing := func(*testing.T, *HistoryStore, *History, time.Time) {}
	sweep := func(want int) func(*testing.T, *HistoryStore, *History, time.Time) {
		return func(t *testing.T, s *HistoryStore, _ *History, now time.Time) {
			if n := s.Sweep(now); n != want {
				t.Fatalf("swept %d, want %d", n, want)
			}
		}
	}
	tests := []struct {
		name    string
		access  func(t *testing.T, s *HistoryStore, a *History, now time.Time) // before a.Since
		now     time.Duration
		wantA   []uint64 // a's messages after 0 at now
		expired uint64   // TTL evictions in all
	}{
		{"all young", nothing, time.Minute, []uint64{1, 2}, 0},
		{"exactly ttl old stays", nothing, ttl, []uint64{1, 2}, 0},
		{"a1 expires on Since", nothing, ttl + time.Nanosecond, []uint64{2}, 1},
		{"sweep expires a1 and b1", sweep(2), ttl + time.Minute + time.Nanosecond, []uint64{2}, 2},
		{"append expires its own only", func(t *testing.T, _ *HistoryStore, a *History, now time.Time) {
			if err := a.Append(3, histPush("t", 3), now); err != nil {
				t.Fatal(err)
			}
		}, ttl + 3*time.Minute, []uint64{3}, 2},
		{"sweep expires everything", sweep(4), time.Hour, []uint64{}, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newHistStore(t, HistoryConfig{Size: 10, TTL: ttl, MaxBytes: 1 << 30})
			a, b := newHist(t, s, 0), newHist(t, s, 0)
			for i, h := range []*History{a, b, a, b} { // a1 b1 a2 b2, a minute apart
				seq := uint64(i/2 + 1)
				if err := h.Append(seq, histPush("t", seq), histAt(time.Duration(i)*time.Minute)); err != nil {
					t.Fatal(err)
				}
			}
			now := histAt(tt.now)
			tt.access(t, s, a, now)
			msgs, ok := a.Since(a.Epoch(), 0, now, nil)
			if got := seqsOf(msgs); !slices.Equal(got, tt.wantA) {
				t.Fatalf("a after 0: %v, want %v", got, tt.wantA)
			}
			checkHistHeap(t, s) // lazy expiry keeps the budget's heap right
			if got := s.Stats().Evicted[EvictedTTL]; got != tt.expired {
				t.Fatalf("%d TTL evictions, want %d", got, tt.expired)
			}
			if wantOK := len(tt.wantA) > 0 && tt.wantA[0] == 1; ok != wantOK {
				t.Fatalf("a recoverable from 0 = %v, want %v", ok, wantOK)
			}
			if len(tt.wantA) > 0 {
				if _, ok := a.Since(a.Epoch(), tt.wantA[0]-1, now, nil); !ok {
					t.Fatalf("a not recoverable from %d, just before what it holds", tt.wantA[0]-1)
				}
			}
		})
	}
}

func TestHistoryIdle(t *testing.T) {
	const ttl = time.Minute
	s := newHistStore(t, HistoryConfig{Size: 10, TTL: ttl, MaxBytes: 1 << 30})
	h := newHist(t, s, 0)
	if !h.LastPublish().Equal(histT0) {
		t.Fatalf("LastPublish before any publish = %v, want the creation time", h.LastPublish())
	}
	if h.Idle(histAt(ttl)) || !h.Idle(histAt(ttl+1)) {
		t.Fatal("a topic without publishes is idle exactly after the TTL from its creation")
	}
	appendSeqs(t, h, histAt(10*time.Second), 1)
	if !h.LastPublish().Equal(histAt(10 * time.Second)) {
		t.Fatalf("LastPublish = %v, want the append's time", h.LastPublish())
	}
	if h.Idle(histAt(10*time.Second+ttl)) || !h.Idle(histAt(10*time.Second+ttl+1)) {
		t.Fatal("idle must start exactly when the last message expires")
	}
	if s.Sweep(histAt(10*time.Second+ttl+1)) != 1 {
		t.Fatal("the sweep did not expire the last message of an idle topic")
	}
	h.store.mu.Lock()
	ring := h.ring
	h.store.mu.Unlock()
	if ring != nil {
		t.Fatal("an idle topic keeps its ring")
	}
}

// TestHistoryEvictionByBytes fills the global budget from several topics:
// the oldest messages of all topics go first, whichever topic appends.
func TestHistoryEvictionByBytes(t *testing.T) {
	const cost = 200 // what one message counts, its frame and overhead
	type op struct {
		topic int
		cost  int64
	}
	tests := []struct {
		name    string
		budget  int64
		ops     []op
		held    [3][]uint64 // per topic, the seqs left
		evicted uint64
	}{
		{"under budget", 6 * cost, []op{{0, cost}, {1, cost}, {2, cost}, {0, cost}, {1, cost}, {2, cost}},
			[3][]uint64{{1, 2}, {1, 2}, {1, 2}}, 0},
		{"exactly the budget", 3 * cost, []op{{0, cost}, {1, cost}, {2, cost}},
			[3][]uint64{{1}, {1}, {1}}, 0},
		{"oldest two of all go", 4 * cost, []op{{0, cost}, {1, cost}, {2, cost}, {0, cost}, {1, cost}, {2, cost}},
			[3][]uint64{{2}, {2}, {1, 2}}, 2},
		{"a quiet topic's old message goes before a busy one's", 3 * cost, []op{{2, cost}, {0, cost}, {0, cost}, {0, cost}},
			[3][]uint64{{1, 2, 3}, {}, {}}, 1},
		{"a big message evicts several", 4 * cost, []op{{0, cost}, {1, cost}, {2, cost}, {1, 2*cost + 1}},
			[3][]uint64{{}, {2}, {1}}, 2},
		{"a message over the whole budget takes everything older with it", 2 * cost, []op{{0, cost}, {1, 3 * cost}},
			[3][]uint64{{}, {}, {}}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newHistStore(t, HistoryConfig{Size: 100, TTL: time.Hour, MaxBytes: tt.budget})
			hs := [3]*History{newHist(t, s, 0), newHist(t, s, 0), newHist(t, s, 0)}
			for i, o := range tt.ops {
				h := hs[o.topic]
				if err := h.Append(h.Last()+1, sizedPush(int(o.cost-HistoryMessageOverhead)), histAt(time.Duration(i)*time.Millisecond)); err != nil {
					t.Fatal(err)
				}
				if st := s.Stats(); st.Bytes > tt.budget {
					t.Fatalf("after op %d: %d bytes held, over the budget of %d", i, st.Bytes, tt.budget)
				}
			}
			var bytes int64
			messages := 0
			for i, h := range hs {
				msgs, _ := h.Since(h.Epoch(), 0, histAt(time.Second), nil)
				if got := seqsOf(msgs); !slices.Equal(got, tt.held[i]) {
					t.Fatalf("topic %d holds %v, want %v", i, got, tt.held[i])
				}
				for _, m := range msgs {
					bytes += HistoryMessageCost(m.Push)
				}
				messages += len(msgs)
				// Recovery from before the first held message fails
				// exactly when something of this topic was evicted.
				first := uint64(h.Last()) + 1
				if len(msgs) > 0 {
					first = msgs[0].Seq
				}
				if _, ok := h.Since(h.Epoch(), 0, histAt(time.Second), nil); ok != (first == 1) {
					t.Fatalf("topic %d recoverable from 0 = %v, first held %d", i, ok, first)
				}
			}
			st := s.Stats()
			if st.Evicted[EvictedBytes] != tt.evicted || st.Bytes != bytes || st.Messages != messages {
				t.Fatalf("stats %+v, want %d byte evictions, %d bytes, %d messages", st, tt.evicted, bytes, messages)
			}
		})
	}
}

// TestHistorySizeZero keeps positions only: a client at the last seq has
// missed nothing, any other position is not recoverable.
func TestHistorySizeZero(t *testing.T) {
	s := newHistStore(t, HistoryConfig{Size: 0, TTL: time.Minute, MaxBytes: 1})
	h := newHist(t, s, 0)
	if _, ok := h.Since(h.Epoch(), 0, histT0, nil); !ok {
		t.Fatal("a new topic is not recoverable from 0")
	}
	if err := h.Append(1, nil, histT0); err != nil {
		t.Fatalf("append without a push: %v", err)
	}
	if err := h.Append(2, histPush("t", 2), histT0); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		since uint64
		ok    bool
	}{{0, false}, {1, false}, {2, true}, {3, false}}
	for _, tt := range tests {
		msgs, ok := h.Since(h.Epoch(), tt.since, histT0, nil)
		if ok != tt.ok || len(msgs) != 0 {
			t.Errorf("Since(%d) = %v, %v; want no messages, %v", tt.since, seqsOf(msgs), ok, tt.ok)
		}
	}
	if h.Last() != 2 {
		t.Errorf("Last = %d, want 2", h.Last())
	}
	if st := s.Stats(); st != (HistoryStats{Topics: 1}) {
		t.Errorf("stats %+v, want nothing held and no evictions", st)
	}
}

func TestHistoryStartPosition(t *testing.T) {
	s := newHistStore(t, DefaultHistoryConfig())
	h := newHist(t, s, 100)
	tests := []struct {
		since uint64
		ok    bool
	}{{99, false}, {100, true}, {101, false}}
	for _, tt := range tests {
		if _, ok := h.Since(h.Epoch(), tt.since, histT0, nil); ok != tt.ok {
			t.Errorf("Since(%d) on a stream joined at 100 = %v, want %v", tt.since, ok, tt.ok)
		}
	}
	if err := h.Append(100, histPush("t", 100), histT0); !errors.Is(err, ErrHistorySeq) {
		t.Fatalf("append at the start position: %v, want ErrHistorySeq", err)
	}
	appendSeqs(t, h, histT0, 105)
	if msgs, ok := h.Since(h.Epoch(), 100, histT0, nil); !ok || !slices.Equal(seqsOf(msgs), []uint64{105}) {
		t.Fatalf("Since(100) = %v, %v", seqsOf(msgs), ok)
	}
}

func TestHistoryAppendErrors(t *testing.T) {
	s := newHistStore(t, DefaultHistoryConfig())
	if _, err := s.NewHistory("bad epoch", 0, histT0); !errors.Is(err, ErrEpoch) {
		t.Fatalf("NewHistory with a bad epoch: %v", err)
	}
	h := newHist(t, s, 0)
	appendSeqs(t, h, histT0, 5)
	tests := []struct {
		name string
		seq  uint64
		p    *Push
		want error
	}{
		{"repeated seq", 5, histPush("t", 5), ErrHistorySeq},
		{"older seq", 4, histPush("t", 4), ErrHistorySeq},
		{"no push", 6, nil, ErrHistoryNoPush},
	}
	for _, tt := range tests {
		if err := h.Append(tt.seq, tt.p, histT0); !errors.Is(err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}
	if h.Last() != 5 {
		t.Fatalf("a failed append moved the position to %d", h.Last())
	}
}

// TestHistoryReleasesEvictedPushes checks that an evicted message's push is
// no longer referenced by the store, whichever way it went.
func TestHistoryReleasesEvictedPushes(t *testing.T) {
	tests := []struct {
		name  string
		evict func(s *HistoryStore, a, b *History)
	}{
		{"size", func(_ *HistoryStore, a, _ *History) { appendSeqs(t, a, histT0, 2, 3) }},
		{"ttl", func(s *HistoryStore, _, _ *History) { s.Sweep(histAt(time.Hour)) }},
		{"bytes", func(_ *HistoryStore, _, b *History) {
			if err := b.Append(1, sizedPush(1000), histT0); err != nil {
				t.Fatal(err)
			}
		}},
		{"close", func(_ *HistoryStore, a, _ *History) { a.Close() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newHistStore(t, HistoryConfig{Size: 2, TTL: time.Minute, MaxBytes: 1000 + HistoryMessageOverhead})
			a, b := newHist(t, s, 0), newHist(t, s, 0)
			p := histPush("t", 1)
			gone := weak.Make(p)
			if err := a.Append(1, p, histT0); err != nil {
				t.Fatal(err)
			}
			p = nil
			runtime.GC()
			if gone.Value() == nil {
				t.Fatal("the stored push was collected while held")
			}
			tt.evict(s, a, b)
			runtime.GC()
			if gone.Value() != nil {
				t.Fatal("the evicted push is still referenced")
			}
			runtime.KeepAlive(a)
			runtime.KeepAlive(b)
		})
	}
}

func TestHistoryClose(t *testing.T) {
	s := newHistStore(t, DefaultHistoryConfig())
	a, b := newHist(t, s, 0), newHist(t, s, 0)
	appendSeqs(t, a, histT0, 1, 2, 3)
	appendSeqs(t, b, histT0, 1)
	a.Close()
	a.Close() // idempotent
	if err := a.Append(4, histPush("t", 4), histT0); !errors.Is(err, ErrHistoryClosed) {
		t.Fatalf("append after close: %v", err)
	}
	if msgs, ok := a.Since(a.Epoch(), 3, histT0, nil); ok || len(msgs) != 0 {
		t.Fatalf("Since after close = %v, %v", seqsOf(msgs), ok)
	}
	want := HistoryStats{Topics: 1, Messages: 1, Bytes: HistoryMessageCost(histPush("t", 1))}
	if st := s.Stats(); st != want {
		t.Fatalf("stats %+v, want %+v (closing is no eviction)", st, want)
	}
}

// histModel is the obvious implementation of the eviction rules: one list of
// every held message in publish order.
type histModel struct {
	cfg  HistoryConfig
	msgs []histModelMsg
}

type histModelMsg struct {
	topic int
	seq   uint64
	at    time.Time
	cost  int64
}

func (m *histModel) append(topic int, seq uint64, cost int64, now time.Time) {
	m.msgs = slices.DeleteFunc(m.msgs, func(x histModelMsg) bool { return now.Sub(x.at) > m.cfg.TTL })
	n := 0
	for _, x := range m.msgs {
		if x.topic == topic {
			n++
		}
	}
	if n == m.cfg.Size {
		i := slices.IndexFunc(m.msgs, func(x histModelMsg) bool { return x.topic == topic })
		m.msgs = slices.Delete(m.msgs, i, i+1)
	}
	m.msgs = append(m.msgs, histModelMsg{topic, seq, now, cost})
	var total int64
	for _, x := range m.msgs {
		total += x.cost
	}
	for total > m.cfg.MaxBytes {
		total -= m.msgs[0].cost
		m.msgs = m.msgs[1:]
	}
}

func (m *histModel) close(topic int) {
	m.msgs = slices.DeleteFunc(m.msgs, func(x histModelMsg) bool { return x.topic == topic })
}

func (m *histModel) held(topic int, now time.Time) []uint64 {
	out := []uint64{}
	for _, x := range m.msgs {
		if x.topic == topic && now.Sub(x.at) <= m.cfg.TTL {
			out = append(out, x.seq)
		}
	}
	return out
}

// TestHistoryMatchesModel runs random publishes of random sizes to random
// topics with a moving clock and compares what every topic holds with the
// model after each step: the heap must always pick the oldest of all.
func TestHistoryMatchesModel(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3, 4, 5} {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, seed))
			const topics = 7
			cfg := HistoryConfig{Size: 1 + rng.IntN(6), TTL: time.Duration(20+rng.IntN(50)) * time.Millisecond, MaxBytes: 2000 + rng.Int64N(4000)}
			s := newHistStore(t, cfg)
			model := &histModel{cfg: cfg}
			var hs [topics]*History
			for i := range hs {
				hs[i] = newHist(t, s, 0)
			}
			now := histT0
			for step := range 3000 {
				// A clock that often reads the same: the store must still
				// order messages as they were appended.
				now = now.Add(time.Duration(rng.IntN(3)) * time.Millisecond)
				topic := rng.IntN(topics)
				if topic < 2 && rng.IntN(8) != 0 { // the first two are cold: their old messages sit under busy ones
					topic = 2 + rng.IntN(topics-2)
				}
				if rng.IntN(50) == 0 { // the Hub forgets a topic and makes it anew
					hs[topic].Close()
					hs[topic] = newHist(t, s, 0)
					model.close(topic)
				}
				h := hs[topic]
				seq := h.Last() + 1 + uint64(rng.IntN(3)) // gaps too
				p := sizedPush(1 + rng.IntN(300))
				// The model drops expired messages before it evicts; the store
				// may not have yet (no Sweep): those are older than any live
				// one, so the byte budget takes them first and what stays
				// live is the same. Only the eviction counters differ.
				if rng.IntN(4) == 0 {
					s.Sweep(now)
				}
				if err := h.Append(seq, p, now); err != nil {
					t.Fatal(err)
				}
				model.append(topic, seq, HistoryMessageCost(p), now)
				var bytes int64
				for i, h := range hs {
					msgs, _ := h.Since(h.Epoch(), 0, now, nil)
					if got, want := seqsOf(msgs), model.held(i, now); !slices.Equal(got, want) {
						t.Fatalf("step %d: topic %d holds %v, model %v", step, i, got, want)
					}
					for _, m := range msgs {
						bytes += HistoryMessageCost(m.Push)
					}
				}
				if st := s.Stats(); st.Bytes != bytes || st.Bytes > cfg.MaxBytes {
					t.Fatalf("step %d: stats say %d bytes, held %d, budget %d", step, st.Bytes, bytes, cfg.MaxBytes)
				}
				checkHistHeap(t, s)
			}
		})
	}
}

// checkHistHeap checks the heap's order and back-links.
func checkHistHeap(t *testing.T, s *HistoryStore) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, e := range s.heap {
		if e.h.heapIdx != i || e.h.n == 0 || e.at != e.h.ring[e.h.head].at {
			t.Fatalf("heap entry %d: back-link %d, %d held, key %d vs oldest %d", i, e.h.heapIdx, e.h.n, e.at, e.h.ring[e.h.head].at)
		}
		if i > 0 && s.heap[(i-1)/2].at > e.at {
			t.Fatalf("heap entry %d is older than its parent", i)
		}
	}
}

// TestHistoryConcurrent publishes to many topics from many goroutines, each
// under its topic's own lock as the Hub does, with a budget small enough that
// publishes evict other topics' messages all the time, while readers replay
// and a sweeper runs. Run with -race. Every Since must be a consistent,
// gapless suffix; at the end the accounting must match what is held.
func TestHistoryConcurrent(t *testing.T) {
	const (
		topics     = 64
		publishers = 8
		perPub     = 2000
		readers    = 4
	)
	cfg := HistoryConfig{Size: 50, TTL: time.Hour, MaxBytes: 200 * HistoryMessageCost(histPush("topic-00", 1000))}
	s := newHistStore(t, cfg)
	type topic struct {
		mu  sync.Mutex // stands in for Topic.mu
		seq uint64
		h   *History
	}
	ts := make([]*topic, topics)
	for i := range ts {
		ts[i] = &topic{h: newHist(t, s, 0)}
	}
	name := func(i int) string { return fmt.Sprintf("topic-%02d", i) }
	errs := make(chan error, publishers+readers+1)
	var pubs, others sync.WaitGroup
	stop := make(chan struct{})
	for g := range publishers {
		pubs.Add(1)
		go func() {
			defer pubs.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			for range perPub {
				i := rng.IntN(topics)
				tp := ts[i]
				tp.mu.Lock()
				tp.seq++
				err := tp.h.Append(tp.seq, histPush(name(i), tp.seq), time.Now())
				tp.mu.Unlock()
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for g := range readers {
		others.Add(1)
		go func() {
			defer others.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 11))
			var buf []HistoryMessage
			for {
				select {
				case <-stop:
					return
				default:
				}
				i := rng.IntN(topics)
				tp := ts[i]
				tp.mu.Lock()
				last := tp.seq
				since := last - min(last, uint64(rng.IntN(60)))
				msgs, ok := tp.h.Since(tp.h.Epoch(), since, time.Now(), buf[:0])
				tp.mu.Unlock()
				buf = msgs
				if err := checkSuffix(name(i), since, last, msgs, ok); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	others.Add(1)
	go func() {
		defer others.Done()
		for {
			select {
			case <-stop:
				return
			default:
				s.Sweep(time.Now())
				s.Stats()
			}
		}
	}()
	pubs.Wait()
	close(stop)
	others.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var bytes int64
	messages, published := 0, uint64(0)
	for i, tp := range ts {
		msgs, _ := tp.h.Since(tp.h.Epoch(), 0, time.Now(), nil)
		if err := checkSuffix(name(i), tp.seq-min(tp.seq, uint64(len(msgs))), tp.seq, msgs, true); err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			bytes += HistoryMessageCost(m.Push)
		}
		messages += len(msgs)
		published += tp.seq
	}
	st := s.Stats()
	if st.Bytes != bytes || st.Messages != messages || st.Bytes > cfg.MaxBytes {
		t.Fatalf("stats %+v; held %d messages, %d bytes; budget %d", st, messages, bytes, cfg.MaxBytes)
	}
	if evicted := st.Evicted[EvictedSize] + st.Evicted[EvictedBytes] + st.Evicted[EvictedTTL]; evicted+uint64(messages) != published {
		t.Fatalf("%d published, %d held + %d evicted", published, messages, evicted)
	}
	if st.Evicted[EvictedBytes] == 0 {
		t.Fatal("the budget never evicted: the test does not exercise cross-topic eviction")
	}
	checkHistHeap(t, s)
}

// checkSuffix checks what Since returned for since on a contiguous stream at
// last: seqs since+1.. in order with their own frames, all of them when ok.
func checkSuffix(topic string, since, last uint64, msgs []HistoryMessage, ok bool) error {
	for j, m := range msgs {
		if j > 0 && m.Seq != msgs[j-1].Seq+1 {
			return fmt.Errorf("%s: gap or disorder %v", topic, seqsOf(msgs))
		}
		if m.Seq <= since || m.Seq > last {
			return fmt.Errorf("%s: seq %d outside (%d, %d]", topic, m.Seq, since, last)
		}
		if want := string(histPush(topic, m.Seq).Frame); string(m.Push.Frame) != want {
			return fmt.Errorf("%s: seq %d carries %q", topic, m.Seq, m.Push.Frame)
		}
	}
	if ok && uint64(len(msgs)) != last-since {
		return fmt.Errorf("%s: recoverable from %d at %d but %d messages", topic, since, last, len(msgs))
	}
	return nil
}

// TestHistoryAppendAllocs checks the steady state: a full ring appends and
// evicts without allocating, on one topic and with cross-topic evictions.
func TestHistoryAppendAllocs(t *testing.T) {
	s := newHistStore(t, HistoryConfig{Size: 100, TTL: time.Hour, MaxBytes: 150 * HistoryMessageCost(sizedPush(64))})
	hs := []*History{newHist(t, s, 0), newHist(t, s, 0)}
	p := sizedPush(64)
	seq := uint64(0)
	now := histT0
	appendBoth := func() {
		seq++
		now = now.Add(time.Microsecond)
		for _, h := range hs {
			if err := h.Append(seq, p, now); err != nil {
				t.Fatal(err)
			}
		}
	}
	for range 200 {
		appendBoth()
	}
	if n := testing.AllocsPerRun(1000, appendBoth); n != 0 {
		t.Fatalf("steady-state Append allocates %v times", n)
	}
	var buf []HistoryMessage
	since := func() { buf, _ = hs[0].Since(hs[0].Epoch(), seq-50, now, buf[:0]) }
	since()
	if n := testing.AllocsPerRun(1000, since); n != 0 {
		t.Fatalf("Since into a reused slice allocates %v times", n)
	}
}

// BenchmarkHistoryAppend is the steady state of one topic: a full ring, every
// append evicting the oldest.
func BenchmarkHistoryAppend(b *testing.B) {
	s := newHistStore(b, DefaultHistoryConfig())
	h := newHist(b, s, 0)
	p := histPush("news", 1)
	now := time.Now()
	for seq := uint64(1); seq <= DefaultHistorySize; seq++ {
		_ = h.Append(seq, p, now)
	}
	seq := uint64(DefaultHistorySize)
	b.ReportAllocs()
	for b.Loop() {
		seq++
		if err := h.Append(seq, p, now); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHistoryAppendBudget is the steady state of many topics under the
// byte budget: publishes round-robin, each one evicting the oldest message
// of all (the top of the heap sinks to the bottom every time: the worst case).
func BenchmarkHistoryAppendBudget(b *testing.B) {
	for _, topics := range []int{100, 10000} {
		b.Run(fmt.Sprint("topics ", topics), func(b *testing.B) {
			p := histPush("news", 1)
			s := newHistStore(b, HistoryConfig{Size: 100, TTL: time.Hour, MaxBytes: int64(topics) * 10 * HistoryMessageCost(p)})
			hs := make([]*History, topics)
			for i := range hs {
				hs[i] = newHist(b, s, 0)
			}
			seq := uint64(0)
			for range 20 {
				seq++
				for _, h := range hs {
					_ = h.Append(seq, p, time.Now())
				}
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if i == 0 {
					seq++
				}
				if err := hs[i].Append(seq, p, time.Now()); err != nil {
					b.Fatal(err)
				}
				i = (i + 1) % topics
			}
		})
	}
}

// BenchmarkHistoryAppendParallel is publishers on distinct topics contending
// for the store's one lock.
func BenchmarkHistoryAppendParallel(b *testing.B) {
	s := newHistStore(b, DefaultHistoryConfig())
	p := histPush("news", 1)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		h := newHist(b, s, 0)
		seq := uint64(0)
		for pb.Next() {
			seq++
			if err := h.Append(seq, p, time.Now()); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkHistorySince replays 50 of 100 held messages into a reused slice.
func BenchmarkHistorySince(b *testing.B) {
	s := newHistStore(b, DefaultHistoryConfig())
	h := newHist(b, s, 0)
	now := time.Now()
	for seq := uint64(1); seq <= 250; seq++ { // wrapped ring
		_ = h.Append(seq, histPush("news", seq), now)
	}
	var buf []HistoryMessage
	b.ReportAllocs()
	for b.Loop() {
		var ok bool
		buf, ok = h.Since(h.Epoch(), 200, now, buf[:0])
		if !ok || len(buf) != 50 {
			b.Fatalf("Since: %d messages, %v", len(buf), ok)
		}
	}
}
