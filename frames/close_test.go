package frames

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

func TestValidCloseCode(t *testing.T) {
	valid := map[ws.StatusCode]bool{}
	for c := 1000; c <= 1003; c++ {
		valid[ws.StatusCode(c)] = true
	}
	for c := 1007; c <= 1014; c++ {
		valid[ws.StatusCode(c)] = true
	}
	for c := 3000; c <= 4999; c++ {
		valid[ws.StatusCode(c)] = true
	}
	for c := 0; c <= 65535; c++ {
		if got := ValidCloseCode(ws.StatusCode(c)); got != valid[ws.StatusCode(c)] {
			t.Errorf("ValidCloseCode(%d) = %v", c, got)
		}
	}
}

func TestParseClose(t *testing.T) {
	for _, tc := range []struct {
		p      string
		code   ws.StatusCode
		reason string
	}{
		{"", 1005, ""},
		{"\x03", 1005, ""},
		{"\x03\xe8", 1000, ""},
		{"\x03\xe9bye", 1001, "bye"},
	} {
		code, reason := ParseClose([]byte(tc.p))
		if code != tc.code || string(reason) != tc.reason {
			t.Errorf("ParseClose(%q) = %d, %q", tc.p, code, reason)
		}
	}
}

func TestAppendClose(t *testing.T) {
	long := strings.Repeat("é", 100) // 200 bytes, 2 per code point
	for _, tc := range []struct {
		name   string
		code   ws.StatusCode
		reason string
		want   string
	}{
		{"no status", 0, "ignored", "\x88\x00"},
		{"code", 1000, "", "\x88\x02\x03\xe8"},
		{"reason", 1001, "bye", "\x88\x05\x03\xe9bye"},
		{"max", 1000, strings.Repeat("a", 123), "\x88\x7d\x03\xe8" + strings.Repeat("a", 123)},
		{"ascii cut", 1000, strings.Repeat("a", 200), "\x88\x7d\x03\xe8" + strings.Repeat("a", 123)},
		{"utf8 cut", 1000, long, "\x88\x7c\x03\xe8" + long[:122]},
	} {
		got := string(AppendClose(nil, tc.code, tc.reason))
		if got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
		if !utf8.ValidString(got[min(len(got), 4):]) {
			t.Errorf("%s: reason not valid UTF-8", tc.name)
		}
	}
}
