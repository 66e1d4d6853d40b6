package server

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wspush/wspush/pubsub"
	"github.com/wspush/wspush/pubsub/natsbroker"
)

// TestReadShare: reads of one key share one call of fn while in flight and
// within its life after, when the answer reaches the reader's live seq;
// other keys, failures, expired reads and answers that end before the
// reader's live seq do not.
func TestReadShare(t *testing.T) {
	key := func(topic string, seq uint64) readKey {
		return readKey{epoch: "e", topic: topic, after: pubsub.Position{Epoch: "e", Seq: seq}, limit: 10, maxBytes: 1 << 20}
	}
	const end = 9 // where fn's answer ends
	type step struct {
		k       readKey
		atLeast uint64 // the readers' live seq
	}
	cases := []struct {
		name  string
		steps []step        // read one after the other, each by 4 goroutines at once
		gap   time.Duration // between the steps
		fail  bool          // fn fails
		calls int64         // fn calls wanted
	}{
		{"same key at once", []step{{key("a", 5), end}}, 0, false, 1},
		{"same key within its life", []step{{key("a", 5), end}, {key("a", 5), 7}}, 0, false, 1},
		{"same key after its life", []step{{key("a", 5), end}, {key("a", 5), end}}, 150 * time.Millisecond, false, 2},
		{"an answer short of the reader's live seq", []step{{key("a", 5), end}, {key("a", 5), end + 1}}, 0, false, 2},
		{"other topic", []step{{key("a", 5), end}, {key("b", 5), end}}, 0, false, 2},
		{"other position", []step{{key("a", 5), end}, {key("a", 6), end}}, 0, false, 2},
		{"other epoch", []step{{key("a", 5), end}, {readKey{epoch: "f", topic: "a", after: pubsub.Position{Epoch: "e", Seq: 5}, limit: 10, maxBytes: 1 << 20}, end}}, 0, false, 2},
		{"failures are not kept", []step{{key("a", 5), end}, {key("a", 5), end}}, 0, true, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			share := &readShare{ttl: 100 * time.Millisecond}
			var calls atomic.Int64
			fn := func(ctx context.Context) (natsbroker.Read, error) {
				calls.Add(1)
				time.Sleep(50 * time.Millisecond) // in flight while the others ask
				if tc.fail {
					return natsbroker.Read{}, errors.New("nats down")
				}
				// Each read ends later, as a growing stream's would.
				return natsbroker.Read{Epoch: "e", Recovered: true, End: end + uint64(calls.Load()-1)}, nil
			}
			for i, st := range tc.steps {
				if i > 0 {
					time.Sleep(tc.gap)
				}
				var wg sync.WaitGroup
				for range 4 {
					wg.Go(func() {
						res, _, err := share.read(context.Background(), st.k, st.atLeast, fn)
						if tc.fail != (err != nil) || !tc.fail && res.End < st.atLeast {
							t.Errorf("read %+v: %+v, %v", st.k, res, err)
						}
					})
				}
				wg.Wait()
			}
			if got := calls.Load(); got != tc.calls {
				t.Fatalf("fn called %d times, want %d", got, tc.calls)
			}
		})
	}
}

// TestReadShareExpires: a finished read and its messages leave the table
// when its life is over, by the sweeper's expire without another read.
func TestReadShareExpires(t *testing.T) {
	share := &readShare{ttl: time.Millisecond}
	msgs := func(context.Context) (natsbroker.Read, error) {
		return natsbroker.Read{Recovered: true, Messages: make([]natsbroker.StreamMessage, 100)}, nil
	}
	for i := range 100 {
		share.read(context.Background(), readKey{topic: "t", after: pubsub.Position{Seq: uint64(i)}}, 0, msgs)
	}
	share.expire(time.Now().Add(time.Second))
	if len(share.reads) != 0 || len(share.ended) != 0 || share.ended != nil {
		t.Fatalf("%d reads and %d finished kept after their life", len(share.reads), len(share.ended))
	}
}
