package frames

import "unicode/utf8"

// UTF8 validates UTF-8 incrementally: text may be written in pieces that
// split code points anywhere. The zero value is ready to validate a new text.
// It rejects what unicode/utf8.Valid rejects: overlong forms, surrogates
// (U+D800-U+DFFF), code points above U+10FFFF and stray bytes.
//
// It fails fast: Write reports false at the first piece that cannot be the
// start of valid UTF-8, and keeps reporting false until Reset.
//
// Bulk validation is done by unicode/utf8.Valid; a DFA carries the state of a
// code point split between pieces.
type UTF8 struct {
	state uint8
}

// DFA states; the others mean "inside a multi-byte sequence".
const (
	utf8Accept = 0
	utf8Reject = 12
)

// Write validates the next piece of text. It reports whether everything
// written since the last Reset is valid so far, which allows a piece to end in
// the middle of a code point.
func (v *UTF8) Write(p []byte) bool {
	// A code point left open by the previous piece is finished by the DFA.
	i := 0
	for ; i < len(p) && v.state != utf8Accept; i++ {
		if !v.step(p[i]) {
			return false
		}
	}
	if v.state != utf8Accept {
		return true
	}
	// The bulk, which ends on a code point boundary, goes to the standard
	// library's validator: it is several times faster than a byte-wise DFA
	// (and uses SIMD-like word tricks for ASCII). Only a code point cut by
	// the end of the piece is left to the DFA.
	j := cut(p[i:]) + i
	if !utf8.Valid(p[i:j]) {
		v.state = utf8Reject
		return false
	}
	for _, c := range p[j:] {
		if !v.step(c) {
			return false
		}
	}
	return true
}

// step feeds one byte to the DFA.
func (v *UTF8) step(c byte) bool {
	v.state = utf8Trans[v.state+utf8Class[c]]
	return v.state != utf8Reject
}

// cut returns the length of p without an incomplete code point at its end.
func cut(p []byte) int {
	// Find the start of the last code point among the last 4 bytes.
	for k := len(p) - 1; k >= 0 && k >= len(p)-4; k-- {
		c := p[k]
		if c&0xc0 == 0x80 {
			continue // continuation byte
		}
		size := 1
		switch {
		case c >= 0xf0:
			size = 4
		case c >= 0xe0:
			size = 3
		case c >= 0xc0:
			size = 2
		}
		if len(p)-k < size {
			return k
		}
		break
	}
	return len(p)
}

// Complete reports whether everything written since the last Reset is valid
// UTF-8 that does not end inside a code point.
func (v *UTF8) Complete() bool { return v.state == utf8Accept }

// Reset makes v ready to validate a new text.
func (v *UTF8) Reset() { v.state = utf8Accept }

// Valid reports whether p is valid UTF-8.
func Valid(p []byte) bool {
	var v UTF8
	return v.Write(p) && v.Complete()
}

// The tables of Bjoern Hoehrmann's UTF-8 decoder
// (http://bjoern.hoehrmann.de/utf-8/decoder/dfa/): utf8Class maps a byte to
// its character class, utf8Trans maps state+class to the next state. States
// are multiples of 12 so that no multiplication is needed.
var utf8Class = [256]uint8{
	0x00: 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0x20: 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0x40: 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0x60: 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0x80: 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9,
	0xA0: 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
	0xC0: 8, 8, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	0xE0: 10, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 4, 3, 3, 11, 6, 6, 6, 5, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8,
}

var utf8Trans = [108]uint8{
	0, 12, 24, 36, 60, 96, 84, 12, 12, 12, 48, 72, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12,
	12, 0, 12, 12, 12, 12, 12, 0, 12, 0, 12, 12, 12, 24, 12, 12, 12, 12, 12, 24, 12, 24, 12, 12,
	12, 12, 12, 12, 12, 12, 12, 24, 12, 12, 12, 12, 12, 24, 12, 12, 12, 12, 12, 12, 12, 24, 12, 12,
	12, 12, 12, 12, 12, 12, 12, 36, 12, 36, 12, 12, 12, 36, 12, 12, 12, 12, 12, 36, 12, 36, 12, 12,
	12, 36, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12,
}
