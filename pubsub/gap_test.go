package pubsub

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/wspush/wspush/internal/testsupport"
)

// missRecorder is a confirmRecorder told when it missed messages.
type missRecorder struct {
	confirmRecorder
	missed int
}

func (r *missRecorder) Missed(*Topic) { r.missed++ }

// TestGapChecks: a gap is seen only once the topic's interest is confirmed,
// by IngestAfter (prev above the topic's seq) or CheckPosition (the
// stream's last above it); a message that follows on, or an older prev (its
// predecessor aged out of the stream), is no gap. The loop's tasks run in
// order: the subscriber is told before the message after the gap.
func TestGapChecks(t *testing.T) {
	loop := &taskQueue{}
	h := NewHub([]Executor{loop}, func(string, bool) {})
	run := loop.run
	ctx := context.Background()
	s := &missRecorder{}
	h.Subscribe(0, s, "t")
	h.IngestAfter(ctx, "t", 3, 1, []byte(`3`)) // pending: no position yet
	h.InterestReady("t", 4)
	run()
	if h.CheckPosition("t", 4) || h.CheckPosition("t", 2) || h.CheckPosition("x", 9) {
		t.Fatal("CheckPosition found a gap at or below the topic's seq, or in an unknown topic")
	}
	h.IngestAfter(ctx, "t", 6, 4, []byte(`6`)) // follows on
	h.IngestAfter(ctx, "t", 7, 2, []byte(`7`)) // its predecessor 6 aged out: no gap
	run()
	if s.missed != 0 || !slices.Equal(s.seqs(), []uint64{6, 7}) {
		t.Fatalf("missed %d, pushes %v; want 0 and [6 7]", s.missed, s.seqs())
	}
	h.IngestAfter(ctx, "t", 10, 9, []byte(`10`)) // 9 never came
	run()
	if s.missed != 1 {
		t.Fatalf("missed %d after a gap, want 1", s.missed)
	}
	if !h.CheckPosition("t", 12) || s.missed != 1 {
		t.Fatal("CheckPosition above the seq: no gap reported, or told before its task ran")
	}
	run()
	h.Ingest("t", 12, []byte(`12`)) // at the position CheckPosition set: not again
	h.IngestAfter(ctx, "t", 13, 12, []byte(`13`))
	run()
	if s.missed != 2 || h.Stats().Gaps != 2 || !slices.Equal(s.seqs(), []uint64{6, 7, 10, 13}) {
		t.Fatalf("missed %d, gaps %d, pushes %v", s.missed, h.Stats().Gaps, s.seqs())
	}
}

// TestLoseForgetsTopicsWhileSubscribed: Lose tells every subscriber and
// forgets every topic; a new subscriber makes the topic anew (a new epoch
// from SetStreamEpoch); the old topic's last unsubscribe neither forgets
// the new one nor drops its interest.
func TestLoseForgetsTopicsWhileSubscribed(t *testing.T) {
	var interest []string
	epoch := "E1"
	h := NewHub([]Executor{testsupport.Inline{}}, func(topic string, on bool) { interest = append(interest, fmt.Sprintf("%s %v", topic, on)) })
	h.SetStreamEpoch(func() string { return epoch })
	old := &missRecorder{}
	t1, _, _ := h.Subscribe(0, old, "t")
	h.InterestReady("t", 0)
	if t1.Epoch() != "E1" {
		t.Fatalf("epoch %q, want the stream's", t1.Epoch())
	}
	epoch = "E2"
	if n := h.Lose(); n != 1 || old.missed != 1 {
		t.Fatalf("Lose: %d topics, subscriber told %d times", n, old.missed)
	}
	fresh := &missRecorder{}
	t2, _, _ := h.Subscribe(0, fresh, "t")
	if t2 == t1 || t2.Epoch() != "E2" {
		t.Fatalf("after Lose: topic %p epoch %q, want a new topic in E2", t2, t2.Epoch())
	}
	h.Unsubscribe(0, old, t1)
	if h.Stats().Topics != 1 || !slices.Equal(interest, []string{"t true", "t true"}) {
		t.Fatalf("after the old topic's last unsubscribe: %d topics, interest %v", h.Stats().Topics, interest)
	}
	h.Unsubscribe(0, fresh, t2)
	if h.Stats().Topics != 0 || interest[len(interest)-1] != "t false" {
		t.Fatalf("after the last: %d topics, interest %v", h.Stats().Topics, interest)
	}
}

// TestHoldRelease drives a cluster recovery's handover on one loop whose
// tasks run only when the test says: a held subscriber gets no push, the
// loop's last seq moves on, and after Release at E it gets exactly the
// pushes above E, including those already queued.
func TestHoldRelease(t *testing.T) {
	loop := &taskQueue{}
	h := NewHub([]Executor{loop}, nil)
	run := loop.run
	s := &confirmRecorder{}
	top, at, _ := h.Subscribe(0, s, "t")
	h.Ingest("t", 3, []byte(`3`))
	run()
	if pos := top.Hold(0, s); pos != 3 || at != 0 {
		t.Fatalf("held at %d (subscribed at %d), want 3", pos, at)
	}
	h.Ingest("t", 5, []byte(`5`))
	run()
	if top.LoopLast(0) != 5 || len(s.seqs()) != 1 {
		t.Fatalf("loop last %d, pushes %v: want 5 and only [3]", top.LoopLast(0), s.seqs())
	}
	h.Ingest("t", 7, []byte(`7`)) // queued, not run: in the replay up to 7
	h.Ingest("t", 9, []byte(`9`)) // queued, above the replay: live
	top.Release(0, s, 7)
	run()
	if !slices.Equal(s.seqs(), []uint64{3, 9}) {
		t.Fatalf("pushes %v, want [3 9]", s.seqs())
	}
	h.Unsubscribe(0, s, top)
	top.Release(0, s, 1) // gone: nothing
	h.Ingest("t", 11, []byte(`11`))
	run()
	if !slices.Equal(s.seqs(), []uint64{3, 9}) {
		t.Fatalf("after leaving: pushes %v", s.seqs())
	}
}

// TestCheckPositionUnknown: a stream position the node could not read after
// a reconnect (NoPrev) tells the topic's subscribers, who may have missed
// messages, but leaves the topic's seq alone: later messages still reach
// the topic's subscribers and a new one is answered a real position (the
// broker once passed NoPrev-1, which became the seq: every later message
// was dropped as old).
func TestCheckPositionUnknown(t *testing.T) {
	h, s := subscribedAt5(t)
	ctx := context.Background()
	if !h.CheckPosition("t", NoPrev) || s.missed != 1 {
		t.Fatalf("unknown position: subscriber told %d times, want 1", s.missed)
	}
	h.IngestAfter(ctx, "t", 6, 5, []byte(`6`))
	if !slices.Equal(s.seqs(), []uint64{5, 6}) || s.missed != 1 {
		t.Fatalf("pushes %v, missed %d: want [5 6] and 1", s.seqs(), s.missed)
	}
	if _, seq, _ := h.Subscribe(0, &missRecorder{}, "t"); seq != 6 {
		t.Fatalf("a new subscriber is answered seq %d, want 6", seq)
	}
}

// TestInvalidIngestIsNoGap: a message the Hub does not push (not UTF-8
// JSON: from a publisher other than wspush) still takes its seq, so the
// message after it, whose predecessor it is, does not look like it
// follows a gap (which closed every subscriber of the topic with 4003).
func TestInvalidIngestIsNoGap(t *testing.T) {
	h, s := subscribedAt5(t)
	ctx := context.Background()
	h.IngestAfter(ctx, "t", 6, 5, []byte("\"\xff\""))
	h.IngestAfter(ctx, "t", 7, 6, []byte(`7`))
	if s.missed != 0 || !slices.Equal(s.seqs(), []uint64{5, 7}) {
		t.Fatalf("missed %d, pushes %v: want 0 and [5 7]", s.missed, s.seqs())
	}
}

// subscribedAt5 is a cluster Hub on one inline loop whose topic "t" has a
// subscriber, its interest in place at seq 4, and message 5 pushed.
func subscribedAt5(t *testing.T) (*Hub, *missRecorder) {
	t.Helper()
	h := NewHub([]Executor{testsupport.Inline{}}, func(string, bool) {})
	s := &missRecorder{}
	h.Subscribe(0, s, "t")
	h.InterestReady("t", 4)
	h.IngestAfter(context.Background(), "t", 5, 4, []byte(`5`))
	return h, s
}
