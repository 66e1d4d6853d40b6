package pubsub

import (
	"container/heap"
	"slices"
	"strings"
)

// TopicCount is a topic with its subscribers on this node.
type TopicCount struct {
	Topic       string `json:"topic"`
	Subscribers int    `json:"subscribers"`
}

// TopTopics returns the n topics with the most subscribers on this node,
// most first (ties by name), among at most maxWalk of them (maxWalk <= 0: all),
// with how many it looked at and how many there are. It walks the topic
// table once under the Hub's lock, keeping only the best n so far (a heap:
// O(walked * log n), nothing allocated per topic). Publishes and subscribes
// wait for that walk, so it is for the admin page, at most every few seconds
// (server/adminstats.go caches it), never per push; maxWalk bounds the wait
// on a very large table. When walked < topics the answer is the best of a
// sample: Go starts each walk of a map at a random place.
func (h *Hub) TopTopics(n, maxWalk int) (top []TopicCount, walked, topics int) {
	if n <= 0 {
		return nil, 0, h.Stats().Topics
	}
	best := make(worstFirst, 0, n)
	h.mu.Lock()
	topics = len(h.topics)
	for name, t := range h.topics {
		if maxWalk > 0 && walked == maxWalk {
			break
		}
		walked++
		c := TopicCount{Topic: name, Subscribers: t.refs}
		switch {
		case len(best) < n:
			heap.Push(&best, c)
		case worse(best[0], c):
			best[0] = c
			heap.Fix(&best, 0)
		}
	}
	h.mu.Unlock()
	top = []TopicCount(best)
	slices.SortFunc(top, func(a, b TopicCount) int {
		if a.Subscribers != b.Subscribers {
			return b.Subscribers - a.Subscribers
		}
		return strings.Compare(a.Topic, b.Topic)
	})
	return top, walked, topics
}

// worse orders the ranking: fewer subscribers, then the later name.
func worse(a, b TopicCount) bool {
	if a.Subscribers != b.Subscribers {
		return a.Subscribers < b.Subscribers
	}
	return a.Topic > b.Topic
}

// worstFirst is a heap of the best topics so far with the worst on top, the
// one a better topic replaces.
type worstFirst []TopicCount

func (w worstFirst) Len() int           { return len(w) }
func (w worstFirst) Less(i, j int) bool { return worse(w[i], w[j]) }
func (w worstFirst) Swap(i, j int)      { w[i], w[j] = w[j], w[i] }
func (w *worstFirst) Push(x any)        { *w = append(*w, x.(TopicCount)) }
func (w *worstFirst) Pop() any {
	old := *w
	x := old[len(old)-1]
	*w = old[:len(old)-1]
	return x
}
