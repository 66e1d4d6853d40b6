package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"iter"
)

// topicList is the "topics" array of a sub or unsub command, kept as the raw
// JSON and decoded one name at a time as the command is carried out. A
// command of 1 MiB of topic names then costs only what is answered before the
// connection is dropped past -max-buffered (limits.go), not a decoded slice of
// a quarter million strings. It refers to the command's payload, which stays
// put while the command runs (session.command is synchronous).
type topicList struct {
	raw []byte // the array, validated: strings only
	n   int    // elements
}

var errTopicsNotStrings = errors.New(`"topics" must be an array of strings`)

// UnmarshalJSON checks that b is null or an array of strings, without
// decoding them.
func (l *topicList) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if string(b) == "null" {
		*l = topicList{}
		return nil
	}
	if len(b) < 2 || b[0] != '[' {
		return errTopicsNotStrings
	}
	n := 0
	for i := skipSpace(b, 1); i < len(b) && b[i] != ']'; n++ {
		end, ok := stringEnd(b, i)
		if !ok {
			return errTopicsNotStrings
		}
		i = skipSpace(b, end)
		if i < len(b) && b[i] == ',' {
			i = skipSpace(b, i+1)
		}
	}
	*l = topicList{raw: b, n: n}
	return nil
}

// empty reports whether the list has no names.
func (l topicList) empty() bool { return l.n == 0 }

// all yields the names in order, decoding each as it is reached.
func (l topicList) all() iter.Seq[string] {
	return func(yield func(string) bool) {
		b := l.raw
		for i, k := skipSpace(b, 1), 0; k < l.n; k++ {
			end, _ := stringEnd(b, i) // validated by UnmarshalJSON
			var name string
			if bytes.IndexByte(b[i:end], '\\') < 0 {
				name = string(b[i+1 : end-1])
			} else if json.Unmarshal(b[i:end], &name) != nil {
				return
			}
			if !yield(name) {
				return
			}
			i = skipSpace(b, end)
			if i < len(b) && b[i] == ',' {
				i = skipSpace(b, i+1)
			}
		}
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index after the JSON string starting at b[i] (the
// outer decoder has validated the document, so only the element's kind is
// checked here).
func stringEnd(b []byte, i int) (int, bool) {
	if i >= len(b) || b[i] != '"' {
		return 0, false
	}
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1, true
		}
	}
	return 0, false
}

// has reports whether name is in the list.
func (l topicList) has(name string) bool {
	for t := range l.all() {
		if t == name {
			return true
		}
	}
	return false
}
