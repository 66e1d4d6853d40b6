package server

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wspush/wspush/pubsub"
)

// TestIdempotencyKeySingleNode: without a cluster the node remembers recent
// keys: a retry gets the first seq and "duplicate":true and pushes nothing;
// the key is scoped to its topic; a malformed key is answered 400.
func TestIdempotencyKeySingleNode(t *testing.T) {
	s := startServer(t, Config{})
	c := subscribeTo(t, s, "pay")
	code1, m1 := publish(t, s, "pay", `{"n":1}`, "Idempotency-Key", "k1")
	code2, m2 := publish(t, s, "pay", `{"n":1}`, "Idempotency-Key", "k1")
	if code1 != http.StatusOK || code2 != http.StatusOK || m1["seq"] != m2["seq"] || m1["duplicate"] != nil || m2["duplicate"] != true {
		t.Fatalf("answers %d %v and %d %v; want the same seq, the second a duplicate", code1, m1, code2, m2)
	}
	if code, m := publish(t, s, "other", `1`, "Idempotency-Key", "k1"); code != http.StatusOK || m["duplicate"] != nil {
		t.Fatalf("same key on another topic: %d %v, want a new publish", code, m)
	}
	for _, bad := range []string{"has space", strings.Repeat("k", maxIdempotencyKey+1), "é"} {
		if code, m := publish(t, s, "pay", `1`, "Idempotency-Key", bad); code != http.StatusBadRequest {
			t.Errorf("key %q: %d %v, want 400", bad, code, m)
		}
	}
	code, m := publish(t, s, "pay", `"end"`)
	if code != http.StatusOK {
		t.Fatal(code, m)
	}
	expectPushes(t, c, "subscriber", 0, `{"n":1}`, `"end"`)
	if v := metricValue(t, s, "wspush_publish_duplicates_total"); v != 1 {
		t.Errorf("wspush_publish_duplicates_total = %v, want 1", v)
	}
	if v := metricValue(t, s, "wspush_idempotency_keys"); v != 2 {
		t.Errorf("wspush_idempotency_keys = %v, want 2", v)
	}
}

// TestRecentKeys: the cache's bounds (size, window), a failed publish
// forgotten, and concurrent retries of one key publishing once.
func TestRecentKeys(t *testing.T) {
	ctx := context.Background()
	now := time.Unix(1000, 0)
	var calls atomic.Int64
	pub := func(seq uint64, err error) func() (pubsub.Published, error) {
		return func() (pubsub.Published, error) {
			calls.Add(1)
			return pubsub.Published{Seq: seq}, err
		}
	}
	c := newRecentKeys(2, time.Minute)
	for _, tc := range []struct {
		key     string
		at      time.Duration
		seq     uint64
		err     error
		wantSeq uint64
		wantDup bool
	}{
		{"a", 0, 1, nil, 1, false},
		{"a", time.Second, 2, nil, 1, true}, // retry: first result
		{"b", 2 * time.Second, 3, nil, 3, false},
		{"c", 3 * time.Second, 4, nil, 4, false},              // past 2 keys: "a" forgotten
		{"a", 4 * time.Second, 5, nil, 5, false},              // so published again
		{"x", 5 * time.Second, 0, errors.New("no"), 0, false}, // failure
		{"x", 6 * time.Second, 7, nil, 7, false},              // forgotten: published
		{"x", 2 * time.Minute, 8, nil, 8, false},              // past the window: published
	} {
		res, err := c.do(ctx, tc.key, now.Add(tc.at), pub(tc.seq, tc.err))
		if !errors.Is(err, tc.err) || res.Seq != tc.wantSeq || res.Duplicate != tc.wantDup {
			t.Fatalf("%s at %v: %+v, %v; want seq %d duplicate %v", tc.key, tc.at, res, err, tc.wantSeq, tc.wantDup)
		}
		if c.len() > 2 {
			t.Fatalf("%d keys held, over the bound 2", c.len())
		}
	}

	// Concurrent retries: one publish, every answer the same seq.
	c = newRecentKeys(10, time.Minute)
	calls.Store(0)
	release := make(chan struct{})
	slow := func() (pubsub.Published, error) {
		calls.Add(1)
		<-release
		return pubsub.Published{Seq: 42}, nil
	}
	var wg sync.WaitGroup
	results := make([]pubsub.Published, 8)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], _ = c.do(ctx, "k", now, slow)
		}()
	}
	time.Sleep(10 * time.Millisecond) // let some of them wait on the first (correct either way)
	close(release)
	wg.Wait()
	dups := 0
	for i, r := range results {
		if r.Seq != 42 {
			t.Fatalf("result %d: %+v", i, r)
		}
		if r.Duplicate {
			dups++
		}
	}
	if calls.Load() != 1 || dups != len(results)-1 {
		t.Fatalf("%d publishes, %d duplicates; want 1 and %d", calls.Load(), dups, len(results)-1)
	}
}
