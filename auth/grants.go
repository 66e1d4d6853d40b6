package auth

import (
	"encoding/binary"
	"sync"
)

// grants are the compiled topics and publish patterns of a token. They are
// immutable, so the connections whose tokens grant the same patterns share
// one (grantsTable): most deployments give their users the same few lists,
// and a connection then holds a pointer instead of its own copy of them.
type grants struct {
	subscribe Patterns
	publish   Patterns
}

// maxGrantsShared bounds the distinct grants a Verifier keeps for sharing.
// Past it the table starts over: tokens that each grant their own lists (a
// topic per user) must not make it grow with the users. Grants handed out
// before stay valid; they are just not shared with later connections.
const maxGrantsShared = 4096

// grantsTable shares grants by their content. It is owned by a Verifier and
// safe for concurrent use (the loops verify tokens at once).
type grantsTable struct {
	mu     sync.RWMutex
	shared map[string]*grants // by key
}

// share returns the table's grants equal to g, adding a copy of g when it
// has none, or nil when g allows nothing. Looking up costs no allocation.
func (t *grantsTable) share(g grants) *grants {
	if g.subscribe.Empty() && g.publish.Empty() {
		return nil
	}
	var buf [256]byte
	key := g.appendKey(buf[:0])
	t.mu.RLock()
	found := t.shared[string(key)]
	t.mu.RUnlock()
	if found != nil {
		return found
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if found := t.shared[string(key)]; found != nil {
		return found
	}
	if t.shared == nil || len(t.shared) >= maxGrantsShared {
		t.shared = make(map[string]*grants)
	}
	kept := new(grants)
	*kept = g
	t.shared[string(key)] = kept
	return kept
}

// topics returns the subscribe patterns; nil grants allow nothing.
func (g *grants) topics() Patterns {
	if g == nil {
		return Patterns{}
	}
	return g.subscribe
}

// publishing returns the publish patterns; nil grants allow nothing.
func (g *grants) publishing() Patterns {
	if g == nil {
		return Patterns{}
	}
	return g.publish
}

// appendKey appends g's content, unambiguously: every name is preceded by
// its length, so no two different grants have the same key whatever bytes
// their names hold.
func (g *grants) appendKey(b []byte) []byte {
	for _, p := range [2]*Patterns{&g.subscribe, &g.publish} {
		all := byte(0)
		if p.all {
			all = 1
		}
		b = append(b, all)
		for _, list := range [2][]string{p.exact, p.prefixes} {
			b = binary.AppendUvarint(b, uint64(len(list)))
			for _, s := range list {
				b = binary.AppendUvarint(b, uint64(len(s)))
				b = append(b, s...)
			}
		}
	}
	return b
}
