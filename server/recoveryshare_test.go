package server

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wspush/wspush/pubsub"
	"github.com/wspush/wspush/pubsub/natsbroker"
)

// TestReadShare: reads of one key share one call of fn while in flight and
// within the TTL after; other keys, failures and expired reads do not.
func TestReadShare(t *testing.T) {
	key := func(topic string, seq uint64) readKey {
		return readKey{epoch: "e", topic: topic, after: pubsub.Position{Epoch: "e", Seq: seq}, limit: 10, maxBytes: 1 << 20}
	}
	errNATS := errors.New("nats down")
	cases := []struct {
		name  string
		keys  []readKey     // read one after the other, each from 4 goroutines at once
		gap   time.Duration // between the keys' reads
		fail  bool          // fn fails
		calls int64         // fn calls wanted
	}{
		{"same key at once", []readKey{key("a", 5)}, 0, false, 1},
		{"same key within the TTL", []readKey{key("a", 5), key("a", 5)}, 0, false, 1},
		{"same key after the TTL", []readKey{key("a", 5), key("a", 5)}, 80 * time.Millisecond, false, 2},
		{"other topic", []readKey{key("a", 5), key("b", 5)}, 0, false, 2},
		{"other position", []readKey{key("a", 5), key("a", 6)}, 0, false, 2},
		{"other epoch", []readKey{key("a", 5), {epoch: "f", topic: "a", after: pubsub.Position{Epoch: "e", Seq: 5}, limit: 10, maxBytes: 1 << 20}}, 0, false, 2},
		{"failures are not kept", []readKey{key("a", 5), key("a", 5)}, 0, true, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			share := &readShare{ttl: 50 * time.Millisecond}
			var calls atomic.Int64
			fn := func(ctx context.Context) (natsbroker.Read, error) {
				calls.Add(1)
				time.Sleep(20 * time.Millisecond) // in flight while the others ask
				if tc.fail {
					return natsbroker.Read{}, errNATS
				}
				return natsbroker.Read{Epoch: "e", Recovered: true, End: 9}, nil
			}
			for i, k := range tc.keys {
				if i > 0 {
					time.Sleep(tc.gap)
				}
				var wg sync.WaitGroup
				for range 4 {
					wg.Go(func() {
						res, _, err := share.read(context.Background(), k, fn)
						if tc.fail != (err != nil) || !tc.fail && res.End != 9 {
							t.Errorf("read %+v: %+v, %v", k, res, err)
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

// TestReadShareDropsExpired: past readShareSweep keys, finishing a read
// drops the expired ones, so the table holds about a TTL's worth of reads.
func TestReadShareDropsExpired(t *testing.T) {
	share := &readShare{ttl: time.Millisecond}
	ok := func(context.Context) (natsbroker.Read, error) { return natsbroker.Read{}, nil }
	for i := range 3 * readShareSweep {
		share.read(context.Background(), readKey{topic: fmt.Sprint(i)}, ok)
		if i%readShareSweep == 0 {
			time.Sleep(2 * time.Millisecond)
		}
	}
	time.Sleep(2 * time.Millisecond)
	share.read(context.Background(), readKey{topic: "last"}, ok)
	if n := len(share.reads); n > readShareSweep+1 {
		t.Fatalf("%d keys kept, want at most %d", n, readShareSweep+1)
	}
}
