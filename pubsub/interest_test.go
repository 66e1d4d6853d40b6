package pubsub

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/wspush/wspush/internal/testsupport"
)

// confirmRecorder is a recorder told when its pending subscription is
// confirmed.
type confirmRecorder struct {
	recorder
	confirmed []uint64
}

func (r *confirmRecorder) Subscribed(_ *Topic, seq uint64) { r.confirmed = append(r.confirmed, seq) }

func (r *confirmRecorder) seqs() []uint64 {
	var out []uint64
	for _, f := range r.got {
		var env struct{ Seq uint64 }
		json.Unmarshal(f[2:], &env)
		out = append(out, env.Seq)
	}
	return out
}

// TestPendingSubscriptionOrdering drives the ordering argument of
// interest.go step by step on one loop whose tasks run only when the test
// says: a push of a seq at or below the confirmed position never reaches the
// waiting subscriber, every push above it does, and the confirmation comes
// between them.
func TestPendingSubscriptionOrdering(t *testing.T) {
	loop := &taskQueue{}
	var interest []string
	h := NewHub([]Executor{loop}, func(topic string, on bool) {
		interest = append(interest, fmt.Sprintf("%s %v", topic, on))
	})
	run := loop.run
	s := &confirmRecorder{}
	top, _, _ := h.Subscribe(0, s, "t")
	if !top.Waiting(0, s) {
		t.Fatal("the first subscription with an interest callback is not pending")
	}
	h.Ingest("t", 5, []byte(`5`)) // arrived before the interest was confirmed
	h.InterestReady("t", 7)       // the stream had stored up to 7
	h.Ingest("t", 6, []byte(`6`)) // stored before the position was read: dropped
	h.Ingest("t", 7, []byte(`7`))
	h.Ingest("t", 8, []byte(`8`))
	late := &confirmRecorder{}
	if _, seq, _ := h.Subscribe(0, late, "t"); seq != 8 || top.Waiting(0, late) {
		t.Fatalf("a subscription to a ready topic: seq %d, waiting %v; want 8 at once", seq, top.Waiting(0, late))
	}
	if len(s.confirmed) != 0 {
		t.Fatal("confirmed before its loop ran the confirmation")
	}
	run()
	if fmt.Sprint(s.confirmed) != "[7]" || fmt.Sprint(s.seqs()) != "[8]" || top.Waiting(0, s) {
		t.Fatalf("confirmed %v, pushes %v; want confirmed at 7 then only 8", s.confirmed, s.seqs())
	}
	if len(late.confirmed) != 0 || len(late.got) != 0 {
		t.Fatalf("the later subscriber: confirmed %v, %d pushes; want neither", late.confirmed, len(late.got))
	}
	h.InterestReady("t", 100) // already ready: nothing changes
	h.Ingest("t", 9, []byte(`9`))
	run()
	if fmt.Sprint(s.seqs()) != "[8 9]" || len(s.confirmed) != 1 {
		t.Fatalf("after a second InterestReady: pushes %v, confirmed %v", s.seqs(), s.confirmed)
	}
	h.InterestReady("gone", 1) // no such topic: nothing
	if fmt.Sprint(interest) != "[t true]" {
		t.Fatalf("interest calls %v", interest)
	}
}

// TestPendingUnsubscribe: a subscriber that leaves while pending is never
// told; the topic going idle and active again is a new pending topic.
func TestPendingUnsubscribe(t *testing.T) {
	var interest []string
	h := NewHub([]Executor{testsupport.Inline{}, testsupport.Inline{}}, func(topic string, on bool) {
		interest = append(interest, fmt.Sprintf("%s %v", topic, on))
	})
	a, b := &confirmRecorder{}, &confirmRecorder{}
	ta, _, _ := h.Subscribe(0, a, "x")
	tb, _, _ := h.Subscribe(1, b, "x")
	h.Unsubscribe(0, a, ta)
	h.InterestReady("x", 3)
	if len(a.confirmed) != 0 || fmt.Sprint(b.confirmed) != "[3]" {
		t.Fatalf("confirmed: left %v, stayed %v", a.confirmed, b.confirmed)
	}
	h.Unsubscribe(1, b, tb)
	c := &confirmRecorder{}
	tc, _, _ := h.Subscribe(0, c, "x")
	if !tc.Waiting(0, c) {
		t.Fatal("a topic active again is not pending")
	}
	h.Ingest("x", 4, []byte(`4`))
	if len(c.got) != 0 {
		t.Fatal("a pending subscriber got a push")
	}
	h.InterestReady("x", 0)
	h.Ingest("x", 5, []byte(`5`))
	if fmt.Sprint(c.confirmed) != "[4]" || fmt.Sprint(c.seqs()) != "[5]" {
		t.Fatalf("confirmed %v (want the topic's own seq 4), pushes %v", c.confirmed, c.seqs())
	}
	if fmt.Sprint(interest) != "[x true x false x true]" {
		t.Fatalf("interest calls %v", interest)
	}
}

// TestIngestWaitBound: IngestWait's messages hold at most the window's
// bytes in the loops' hands; the next waits, and gives up with its context;
// a message larger than the window goes alone.
func TestIngestWaitBound(t *testing.T) {
	var queued []func()
	h := NewHub([]Executor{postFunc(func(fn func()) { queued = append(queued, fn) })}, nil)
	msg := []byte(`"0123456789"`)
	cost := int64(len(msg) + len("t") + ingestOverhead)
	h.SetMaxIngestBytes(2 * cost)
	h.Subscribe(0, &recorder{}, "t")
	ctx := context.Background()
	for seq := uint64(1); seq <= 2; seq++ {
		if _, err := h.IngestWait(ctx, "t", seq, msg); err != nil {
			t.Fatal(err)
		}
	}
	if got := h.IngestBytes(); got != 2*cost {
		t.Fatalf("IngestBytes %d, want %d", got, 2*cost)
	}
	done, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := h.IngestWait(done, "t", 3, msg); err == nil {
		t.Fatal("a third message was taken with the window full")
	}
	if len(queued) != 2 {
		t.Fatalf("%d tasks queued, want 2", len(queued))
	}
	queued[0]()
	if _, err := h.IngestWait(ctx, "t", 4, msg); err != nil {
		t.Fatalf("after the loop took one: %v", err)
	}
	for _, fn := range queued[1:] {
		fn()
	}
	queued = nil
	// A dropped message (an old seq) gives its bytes back at once.
	for range 5 {
		if _, err := h.IngestWait(ctx, "t", 1, msg); err != nil {
			t.Fatal(err)
		}
	}
	big := []byte(`"` + strings.Repeat("x", int(3*cost)) + `"`)
	if _, err := h.IngestWait(ctx, "t", 5, big); err != nil {
		t.Fatalf("a message larger than the window, alone: %v", err)
	}
	if _, err := h.IngestWait(done, "t", 6, msg); err == nil {
		t.Fatal("a message was taken beside one larger than the window")
	}
	queued[0]()
	if got := h.IngestBytes(); got != 0 {
		t.Fatalf("IngestBytes %d after every task ran, want 0", got)
	}
}

// BenchmarkIngestWait10k is BenchmarkFanOut10k through the cluster path:
// IngestWait, its window and its completion count.
func BenchmarkIngestWait10k(b *testing.B) {
	h := newTestHub(1)
	ctx := context.Background()
	fanOut10k(b, h, func(i int, data []byte) { h.IngestWait(ctx, "bench", uint64(i+1), data) })
}

// BenchmarkIngest10k is BenchmarkIngestWait10k without the bound.
func BenchmarkIngest10k(b *testing.B) {
	h := newTestHub(1)
	fanOut10k(b, h, func(i int, data []byte) { h.Ingest("bench", uint64(i+1), data) })
}
