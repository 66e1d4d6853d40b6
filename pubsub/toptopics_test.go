package pubsub

import (
	"fmt"
	"reflect"
	"testing"
)

func TestTopTopics(t *testing.T) {
	h := newTestHub(2)
	// topic "t<k>" gets k subscribers, spread over both loops; "a" and "b"
	// tie with 3 and are ranked by name.
	for k := 1; k <= 6; k++ {
		for j := range k {
			h.Subscribe(j%2, &counter{}, fmt.Sprintf("t%d", k))
		}
	}
	for _, name := range []string{"b", "a"} {
		for j := range 3 {
			h.Subscribe(j%2, &counter{}, name)
		}
	}
	tests := []struct {
		n    int
		want []TopicCount
	}{
		{0, nil},
		{1, []TopicCount{{"t6", 6}}},
		{4, []TopicCount{{"t6", 6}, {"t5", 5}, {"t4", 4}, {"a", 3}}},
		{6, []TopicCount{{"t6", 6}, {"t5", 5}, {"t4", 4}, {"a", 3}, {"b", 3}, {"t3", 3}}},
		{100, []TopicCount{{"t6", 6}, {"t5", 5}, {"t4", 4}, {"a", 3}, {"b", 3}, {"t3", 3}, {"t2", 2}, {"t1", 1}}},
	}
	for _, tc := range tests {
		got, walked, topics := h.TopTopics(tc.n, 0)
		if topics != 8 || (tc.n > 0 && walked != 8) {
			t.Errorf("TopTopics(%d): walked %d of %d topics, want 8 of 8", tc.n, walked, topics)
		}
		if len(got) != len(tc.want) || (len(got) > 0 && !reflect.DeepEqual(got, tc.want)) {
			t.Errorf("TopTopics(%d) = %v, want %v", tc.n, got, tc.want)
		}
	}
}

func TestTopTopicsFollowsUnsubscribe(t *testing.T) {
	h := newTestHub(1)
	a, b := &counter{}, &counter{}
	ta, _, _ := h.Subscribe(0, a, "x")
	h.Subscribe(0, b, "x")
	h.Subscribe(0, &counter{}, "y")
	h.Unsubscribe(0, a, ta)
	got, _, _ := h.TopTopics(2, 0)
	want := []TopicCount{{"x", 1}, {"y", 1}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("after an unsubscribe: %v, want %v", got, want)
	}
}

// TestTopTopicsBoundedWalk: past maxWalk topics the walk stops and says so;
// what it returns are real topics with their counts.
func TestTopTopicsBoundedWalk(t *testing.T) {
	h := newTestHub(1)
	for k := range 50 {
		for range k%5 + 1 {
			h.Subscribe(0, &counter{}, fmt.Sprintf("t%d", k))
		}
	}
	got, walked, topics := h.TopTopics(3, 10)
	if walked != 10 || topics != 50 || len(got) != 3 {
		t.Fatalf("walked %d of %d, %d results; want 10 of 50, 3", walked, topics, len(got))
	}
	for _, c := range got {
		var k int
		fmt.Sscanf(c.Topic, "t%d", &k)
		if c.Subscribers != k%5+1 {
			t.Errorf("%s: %d subscribers, want %d", c.Topic, c.Subscribers, k%5+1)
		}
	}
}

// BenchmarkTopTopics100k is one walk of a table of 100,000 topics for the
// top 10: the time the Hub's lock is held for an admin page refresh.
func BenchmarkTopTopics100k(b *testing.B) {
	h := newTestHub(1)
	subs := make([]counter, 100_000)
	for i := range subs {
		h.Subscribe(0, &subs[i], fmt.Sprintf("topic-%d", i))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		h.TopTopics(10, 0)
	}
}
