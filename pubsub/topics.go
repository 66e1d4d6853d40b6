package pubsub

import (
	"slices"
	"strings"
)

// Topics lists this node's topics whose name starts with prefix, with their
// subscriber counts, sorted by name: at most limit of them (limit <= 0: all),
// with the number that matched. It holds the Hub's lock while it copies the
// counts, never a loop's state: it is for the server API, not a hot path.
func (h *Hub) Topics(prefix string, limit int) (list []TopicCount, matched int) {
	h.mu.Lock()
	for name, t := range h.topics {
		if strings.HasPrefix(name, prefix) {
			list = append(list, TopicCount{Topic: name, Subscribers: t.refs})
		}
	}
	h.mu.Unlock()
	slices.SortFunc(list, func(a, b TopicCount) int { return strings.Compare(a.Topic, b.Topic) })
	matched = len(list)
	if limit > 0 && len(list) > limit {
		list = list[:limit]
	}
	return list, matched
}
