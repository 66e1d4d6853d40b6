package server

import (
	"bytes"
	"encoding/json"
)

// The batch parser's fast path. A backend's batch is nearly always the
// same shape: [{"topic":"name","data":<value>},...] with plain ASCII topic
// names. encoding/json decodes that through reflection and copies every
// value, about 3 µs per item under load, 13 % of the server's CPU per inbox
// publish (docs/benchmarks.md); scanning the shape by hand takes the topic
// and the value in place and checks the value with json.Valid. Anything
// else (other keys, escapes in a topic, a fault) makes it give up, and
// parseArray's encoding/json paths parse and answer the batch as before.

// parseArrayShape parses body when every item has exactly the keys "topic"
// and "data" in either order, the topic a string without escapes or bytes
// outside printable ASCII, and the data one valid JSON value; ok is false
// otherwise, or past max items. The items' Data are sub-slices of body.
func parseArrayShape(body []byte, max int) (items []batchItem, ok bool) {
	i := skipSpace(body, 0)
	if i == len(body) || body[i] != '[' {
		return nil, false
	}
	i = skipSpace(body, i+1)
	if i < len(body) && body[i] == ']' {
		return []batchItem{}, skipSpace(body, i+1) == len(body)
	}
	items = make([]batchItem, 0, bytes.Count(body, []byte(`"data"`)))
	for {
		if len(items) == max {
			return nil, false
		}
		var it batchItem
		if i, ok = parseItemShape(body, i, &it); !ok {
			return nil, false
		}
		items = append(items, it)
		i = skipSpace(body, i)
		if i == len(body) {
			return nil, false
		}
		switch body[i] {
		case ',':
			i = skipSpace(body, i+1)
		case ']':
			return items, skipSpace(body, i+1) == len(body)
		default:
			return nil, false
		}
	}
}

// parseItemShape parses {"topic":...,"data":...} at body[i:] into it and
// returns the index after it.
func parseItemShape(body []byte, i int, it *batchItem) (int, bool) {
	if i == len(body) || body[i] != '{' {
		return 0, false
	}
	var haveTopic, haveData bool
	for k := 0; k < 2; k++ {
		i = skipSpace(body, i+1)
		key, next, ok := plainString(body, i)
		if !ok {
			return 0, false
		}
		i = skipSpace(body, next)
		if i == len(body) || body[i] != ':' {
			return 0, false
		}
		i = skipSpace(body, i+1)
		switch {
		case string(key) == "topic" && !haveTopic:
			topic, next, ok := plainString(body, i)
			if !ok {
				return 0, false
			}
			it.Topic, i, haveTopic = string(topic), next, true
		case string(key) == "data" && !haveData:
			end, ok := valueEnd(body, i)
			if !ok || !json.Valid(body[i:end]) {
				return 0, false
			}
			it.Data, i, haveData = json.RawMessage(body[i:end:end]), end, true
		default:
			return 0, false
		}
		i = skipSpace(body, i)
		if i == len(body) {
			return 0, false
		}
		if k == 0 && body[i] != ',' || k == 1 && body[i] != '}' {
			return 0, false
		}
	}
	return i + 1, true
}

// plainString returns the contents of the JSON string at body[i:] when it
// holds only printable ASCII without escapes, and the index after it.
func plainString(body []byte, i int) ([]byte, int, bool) {
	if i == len(body) || body[i] != '"' {
		return nil, 0, false
	}
	for j := i + 1; j < len(body); j++ {
		switch c := body[j]; {
		case c == '"':
			return body[i+1 : j], j + 1, true
		case c == '\\' || c < 0x20 || c > 0x7e:
			return nil, 0, false
		}
	}
	return nil, 0, false
}

// valueEnd returns the index after the JSON value starting at body[i:], by
// its brackets and strings only; json.Valid checks the value itself.
func valueEnd(body []byte, i int) (int, bool) {
	depth := 0
	for j := i; j < len(body); j++ {
		switch body[j] {
		case '"':
			for j++; j < len(body) && body[j] != '"'; j++ {
				if body[j] == '\\' {
					j++
				}
			}
			if j >= len(body) {
				return 0, false
			}
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return j, j > i // the end of the enclosing item
			}
			depth--
		case ',', ' ', '\t', '\r', '\n':
			if depth == 0 {
				return j, j > i
			}
		}
		if depth == 0 && (body[j] == '"' || body[j] == '}' || body[j] == ']') {
			return j + 1, true
		}
	}
	return 0, false
}
