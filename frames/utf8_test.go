package frames

import (
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"
)

var utf8Cases = []struct {
	name  string
	s     string
	valid bool
}{
	{"empty", "", true},
	{"ascii", "hello, world", true},
	{"long ascii", strings.Repeat("0123456789abcdef", 9) + "xyz", true},
	{"2 bytes", "é", true},
	{"3 bytes", "€", true},
	{"4 bytes", "𝄞", true},
	{"mixed", "κόσμε, Hello-µ@ßöäüàá-UTF-8!!", true},
	{"ascii then multi", strings.Repeat("a", 31) + "€" + strings.Repeat("b", 17), true},
	{"U+0080", "\xc2\x80", true},
	{"U+07FF", "\xdf\xbf", true},
	{"U+0800", "\xe0\xa0\x80", true},
	{"U+D7FF", "\xed\x9f\xbf", true},
	{"U+E000", "\xee\x80\x80", true},
	{"U+FFFF", "\xef\xbf\xbf", true},
	{"U+10000", "\xf0\x90\x80\x80", true},
	{"U+10FFFF", "\xf4\x8f\xbf\xbf", true},
	{"nul", "\x00", true},

	{"lone continuation", "\x80", false},
	{"continuation after ascii", strings.Repeat("a", 20) + "\xbf", false},
	{"overlong C0", "\xc0\xaf", false},
	{"overlong C1", "\xc1\xbf", false},
	{"overlong 3", "\xe0\x80\xaf", false},
	{"overlong 3 max", "\xe0\x9f\xbf", false},
	{"overlong 4", "\xf0\x80\x80\xaf", false},
	{"overlong 4 max", "\xf0\x8f\xbf\xbf", false},
	{"surrogate D800", "\xed\xa0\x80", false},
	{"surrogate DBFF", "\xed\xaf\xbf", false},
	{"surrogate DC00", "\xed\xb0\x80", false},
	{"surrogate DFFF", "\xed\xbf\xbf", false},
	{"surrogate pair", "\xed\xa0\x80\xed\xb0\x80", false},
	{"U+110000", "\xf4\x90\x80\x80", false},
	{"F5", "\xf5\x80\x80\x80", false},
	{"FE", "\xfe", false},
	{"FF", "\xff", false},
	{"truncated 2", "\xc3", false},
	{"truncated 3", "\xe2\x82", false},
	{"truncated 4", "\xf0\x9d\x84", false},
	{"truncated then ascii", "\xe2\x82a", false},
	{"bad middle of long ascii", strings.Repeat("a", 40) + "\xff" + strings.Repeat("a", 40), false},
	{"5 byte form", "\xf8\x88\x80\x80\x80", false},
}

func TestUTF8(t *testing.T) {
	for _, tc := range utf8Cases {
		if utf8.ValidString(tc.s) != tc.valid {
			t.Fatalf("%s: table disagrees with unicode/utf8", tc.name)
		}
		if got := Valid([]byte(tc.s)); got != tc.valid {
			t.Errorf("%s: Valid(%q) = %v", tc.name, tc.s, got)
		}
		// Every split in two pieces must give the same answer, and a prefix
		// must be rejected exactly when it cannot become valid (fail fast).
		for i := 0; i <= len(tc.s); i++ {
			var v UTF8
			ok := v.Write([]byte(tc.s[:i]))
			if ok != isValidPrefix(tc.s[:i]) {
				t.Errorf("%s: Write(prefix %q) = %v", tc.name, tc.s[:i], ok)
			}
			ok = v.Write([]byte(tc.s[i:])) && ok
			if got := ok && v.Complete(); got != tc.valid {
				t.Errorf("%s: split at %d: %v", tc.name, i, got)
			}
		}
	}
}

// isValidPrefix reports whether s can be extended to valid UTF-8: it is
// valid but for an incomplete code point at its end.
func isValidPrefix(s string) bool {
	for j := 0; j <= 3 && j <= len(s); j++ {
		head, tail := s[:len(s)-j], s[len(s)-j:]
		if utf8.ValidString(head) && (j == 0 || !utf8.FullRuneInString(tail)) {
			return true
		}
	}
	return false
}

func TestUTF8FailFast(t *testing.T) {
	var v UTF8
	if v.Write([]byte("ok\xed\xa0")) {
		t.Fatal("surrogate prefix accepted")
	}
	if v.Write([]byte("more")) || v.Complete() {
		t.Fatal("rejection is not sticky")
	}
	v.Reset()
	if !v.Write([]byte("\xe2\x82")) || v.Complete() {
		t.Fatal("partial code point")
	}
	if !v.Write([]byte("\xac")) || !v.Complete() {
		t.Fatal("completed code point")
	}
}

func TestUTF8Exhaustive(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	// Every sequence of up to 3 bytes, and 4-byte sequences from every lead
	// byte with continuation bytes that matter to the DFA.
	b := make([]byte, 4)
	for i := 0; i < 1<<24; i++ {
		b[0], b[1], b[2] = byte(i>>16), byte(i>>8), byte(i)
		for l := 1; l <= 3; l++ {
			if Valid(b[:l]) != utf8.Valid(b[:l]) {
				t.Fatalf("Valid(% x) = %v", b[:l], Valid(b[:l]))
			}
		}
	}
	conts := []byte{0x00, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xff}
	for lead := 0xe0; lead <= 0xff; lead++ {
		for _, c1 := range conts {
			for _, c2 := range conts {
				for _, c3 := range conts {
					b[0], b[1], b[2], b[3] = byte(lead), c1, c2, c3
					if Valid(b) != utf8.Valid(b) {
						t.Fatalf("Valid(% x) = %v", b, Valid(b))
					}
				}
			}
		}
	}
}

func TestUTF8Random(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{"a", "é", "€", "𝄞", "\x80", "\xc3", "\xed\xa0\x80", "\xf4\x90", "\xff"}
	for range 20000 {
		var sb strings.Builder
		for range r.IntN(40) {
			if r.IntN(4) == 0 {
				sb.WriteString(alphabet[r.IntN(len(alphabet))])
			} else {
				sb.WriteString("abcdefgh"[:r.IntN(8)+1])
			}
		}
		s := []byte(sb.String())
		var v UTF8
		rest := s
		ok := true
		for len(rest) > 0 {
			k := r.IntN(len(rest) + 1)
			ok = v.Write(rest[:k]) && ok
			rest = rest[k:]
		}
		if got := ok && v.Complete(); got != utf8.Valid(s) {
			t.Fatalf("%q: %v", s, got)
		}
	}
}

func FuzzUTF8(f *testing.F) {
	for _, tc := range utf8Cases {
		f.Add([]byte(tc.s), uint8(len(tc.s)/2))
	}
	f.Fuzz(func(t *testing.T, p []byte, split uint8) {
		want := utf8.Valid(p)
		if got := Valid(p); got != want {
			t.Fatalf("Valid(%q) = %v", p, got)
		}
		i := min(int(split), len(p))
		var v UTF8
		ok := v.Write(p[:i])
		ok = v.Write(p[i:]) && ok
		if got := ok && v.Complete(); got != want {
			t.Fatalf("split at %d: %v", i, got)
		}
	})
}
