package auth

import (
	"fmt"
	"slices"
	"strings"
)

// wildcard ends a prefix pattern: "news.*" matches every topic starting
// with "news.", and "*" alone matches every topic.
const wildcard = '*'

// maxPatternLen bounds one pattern; topic names are at most 200 bytes
// (docs/protocol.md), so a longer pattern could never match and is a
// mistake of the token's minter.
const maxPatternLen = 200

// Patterns is a compiled list of topic patterns: a sorted set of exact
// names and a minimal sorted list of prefixes. The zero value matches
// nothing. It is immutable once compiled and safe for concurrent use.
type Patterns struct {
	all      bool     // "*" was given
	exact    []string // sorted, deduplicated
	prefixes []string // sorted; none is a prefix of another
}

// CompilePatterns compiles topic patterns. A pattern is an exact topic name,
// or a prefix followed by a final '*' that matches any rest, possibly empty
// ("news.*" matches "news." and "news.sport.uk", not "news"). A '*'
// anywhere but at the end, an empty pattern or one longer than a topic
// name can be is an error.
//
// CompilePatterns reorders and reuses the storage of list: the caller must
// not use list afterwards. This keeps Verify free of allocations beyond
// decoding the token.
func CompilePatterns(list []string) (Patterns, error) {
	var p Patterns
	n := 0 // exact names are moved to list[:n], prefixes to list[n:]
	for i, s := range list {
		if s == "" || len(s) > maxPatternLen {
			return Patterns{}, fmt.Errorf("pattern %d: must be 1 to %d bytes", i, maxPatternLen)
		}
		star := strings.IndexByte(s, wildcard)
		switch {
		case star < 0:
			list[i], list[n] = list[n], s
			n++
		case star != len(s)-1:
			return Patterns{}, fmt.Errorf("pattern %d: '*' is allowed only as the last character", i)
		case star == 0:
			p.all = true
		default:
			list[i] = s[:star]
		}
	}
	if p.all {
		return Patterns{all: true}, nil
	}
	exact, prefixes := list[:n], list[n:]
	slices.Sort(exact)
	p.exact = slices.Compact(exact)
	slices.Sort(prefixes)
	// After sorting, a prefix covering others sorts right before them, so
	// comparing with the last kept one is enough to drop covered prefixes.
	kept := prefixes[:0]
	for _, s := range prefixes {
		if len(kept) > 0 && strings.HasPrefix(s, kept[len(kept)-1]) {
			continue
		}
		kept = append(kept, s)
	}
	p.prefixes = kept
	return p, nil
}

// Match reports whether topic is allowed by the patterns.
func (p Patterns) Match(topic string) bool {
	if p.all {
		return true
	}
	if _, ok := slices.BinarySearch(p.exact, topic); ok {
		return true
	}
	for _, pre := range p.prefixes {
		if strings.HasPrefix(topic, pre) {
			return true
		}
	}
	return false
}

// Empty reports whether the patterns match nothing.
func (p Patterns) Empty() bool {
	return !p.all && len(p.exact) == 0 && len(p.prefixes) == 0
}

// String lists the patterns in their written form, for logs.
func (p Patterns) String() string {
	if p.all {
		return "*"
	}
	parts := make([]string, 0, len(p.exact)+len(p.prefixes))
	parts = append(parts, p.exact...)
	for _, pre := range p.prefixes {
		parts = append(parts, pre+string(wildcard))
	}
	return strings.Join(parts, ",")
}
