package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// FuzzParseArrayShape: whatever the fast path accepts, encoding/json
// decodes to the same items (the same topics and the same value bytes),
// and the fast path never accepts what encoding/json refuses. Its seeds run
// in go test.
func FuzzParseArrayShape(f *testing.F) {
	for _, seed := range []string{
		`[{"topic":"a","data":1}]`,
		` [ {"data" : {"x":[1,2,{"y":"}]"}]} , "topic":"inbox.7"} ,{"topic":"b","data":"s\"q\\"}] `,
		`[{"topic":"a","data":true},{"topic":"b","data":null},{"topic":"c","data":-1.5e3}]`,
		`[]`, `[ ]`, `[{"topic":"a","data":1},]`, `[{"topic":"a","data":1}`, `[{"topic":"a","data":1}] x`,
		`[{"topic":"a","data":}]`, `[{"topic":"a","data":{"x":}}]`, `[{"topic":"a","data":1 2}]`,
		`[{"topic":"a"}]`, `[{"data":1}]`, `[{}]`, `[null]`, `[{"topic":1,"data":1}]`,
		`[{"Topic":"a","data":1}]`, `[{"topic":"a","topic":"b","data":1}]`, `[{"topic":"a\u0062","data":1}]`,
		`[{"topic":"é","data":1}]`, `{"topic":"a","data":1}`, `null`, ``, `[{"topic":"a","data":"unterminated}]`,
		`[{"topic":"a","data":[1,2}]`, `[{"topic":"a","data":tru}]`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		items, ok := parseArrayShape(body, 1000)
		if !ok {
			return
		}
		var want []batchItem
		if err := json.Unmarshal(body, &want); err != nil {
			t.Fatalf("%q: the fast path accepted what encoding/json refuses: %v", body, err)
		}
		if len(items) != len(want) {
			t.Fatalf("%q: %d items, encoding/json %d", body, len(items), len(want))
		}
		for i := range items {
			if items[i].Topic != want[i].Topic || !bytes.Equal(items[i].Data, want[i].Data) {
				t.Fatalf("%q: item %d is %q %s, encoding/json %q %s", body, i, items[i].Topic, items[i].Data, want[i].Topic, want[i].Data)
			}
		}
	})
}

// The usual shape takes the fast path; each deviation from it gives up.
func TestParseArrayShapeTakesTheUsualShape(t *testing.T) {
	for body, want := range map[string]bool{
		`[{"topic":"inbox.1","data":{"n":1}},{"data":[1],"topic":"inbox.2"}]`: true,
		`[]`:                             true,
		`[{"topic":"a","data":1,"x":2}]`: false, // another key
		`[{"topic":"a\"b","data":1}]`:    false, // an escape in the topic
		`[{"topic":"a","data":{"x":}}]`:  false, // invalid data
		`[{"topic":"a","data":1}] [1]`:   false, // after the array
		`[{"topic":"a","data":1},{"topic":"b","data":2},{"topic":"c","data":3}]`: true,
	} {
		items, ok := parseArrayShape([]byte(body), 1000)
		if ok != want {
			t.Errorf("%s: fast path %v, want %v (%+v)", body, ok, want, items)
		}
	}
	if _, ok := parseArrayShape([]byte(`[{"topic":"a","data":1},{"topic":"b","data":2}]`), 1); ok {
		t.Error("took more items than the bound")
	}
}

// BenchmarkBatchParse: a batch of 100 inbox items (128 B values), the fast
// path against encoding/json's Unmarshal of the same body.
func BenchmarkBatchParse(b *testing.B) {
	var body bytes.Buffer
	body.WriteByte('[')
	for i := 0; i < 100; i++ {
		if i > 0 {
			body.WriteByte(',')
		}
		fmt.Fprintf(&body, `{"topic":"inbox.%d","data":{"t":1765137600000000000,"p":"%s"}}`, i, strings.Repeat("x", 96))
	}
	body.WriteByte(']')
	b.Run("shape", func(b *testing.B) {
		for b.Loop() {
			if _, ok := parseArrayShape(body.Bytes(), 1000); !ok {
				b.Fatal("the fast path gave up")
			}
		}
	})
	b.Run("unmarshal", func(b *testing.B) {
		for b.Loop() {
			var items []batchItem
			if err := json.Unmarshal(body.Bytes(), &items); err != nil {
				b.Fatal(err)
			}
		}
	})
}
