package server

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestAppendReplyMatchesJSON: the hand encoder writes what encoding/json
// writes, for every printable ASCII byte in every string field, and gives
// way for anything else.
func TestAppendReplyMatchesJSON(t *testing.T) {
	var ascii strings.Builder
	for c := byte(0x20); c <= 0x7e; c++ {
		ascii.WriteByte(c)
	}
	seq := uint64(18446744073709551615)
	zero := uint64(0)
	cases := []reply{
		{Op: "subscribed", Topic: "news", Seq: &zero, Epoch: "k3f9a"},
		{Op: "subscribed", Topic: ascii.String(), Seq: &seq, Epoch: ascii.String(), Recovered: ptr(false)},
		{Op: "unsubscribed", Topic: `a"b\c<d>e&f`},
		{Op: "error", Error: ascii.String()},
		{Op: "pong"},
		{Op: "subscribed", Topic: "t", Seq: &seq, Recovered: ptr(true)},
	}
	for _, r := range cases {
		want, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := appendReply(nil, r)
		if !ok || string(got) != string(want) {
			t.Errorf("appendReply(%+v) = %s, %v; encoding/json: %s", r, got, ok, want)
		}
	}
	for _, s := range []string{"caf\u00e9", "tab\there", "nul\x00", "\x7f", "\u2028"} {
		if _, ok := appendReply(nil, errorReply(s)); ok {
			t.Errorf("appendReply took %q, which is not printable ASCII", s)
		}
	}
}
