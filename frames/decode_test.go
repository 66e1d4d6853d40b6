package frames

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/gobwas/ws"

	"github.com/wspush/wspush/internal/bufpool"
)

var testMask = [4]byte{0x37, 0xfa, 0x21, 0x3d}

// frame builds a masked client frame. b0 is the first header byte (FIN, RSV,
// opcode).
func frame(b0 byte, payload string) []byte {
	b := AppendHeader(nil, 0, false, len(payload))
	b[0] = b0
	b[1] |= 0x80
	b = append(b, testMask[:]...)
	b = append(b, payload...)
	ws.Cipher(b[len(b)-len(payload):], testMask, 0)
	return b
}

func cat(frames ...[]byte) []byte { return bytes.Join(frames, nil) }

func closePayload(code int, reason string) string {
	return string([]byte{byte(code >> 8), byte(code)}) + reason
}

const (
	fin  = 0x80
	cont = 0x0
	text = 0x1
	bin  = 0x2
	cls  = 0x8
	ping = 0x9
	pong = 0xa
)

// result is what a Decoder made of a whole stream.
type result struct {
	msgs     []string
	err      error
	consumed int
}

func (r result) String() string {
	return fmt.Sprintf("%q err=%v consumed=%d", r.msgs, r.err, r.consumed)
}

func (r result) equal(o result) bool {
	return fmt.Sprint(r.msgs) == fmt.Sprint(o.msgs) && r.err == o.err && r.consumed == o.consumed
}

// feed plays an event loop: it appends each chunk to what is left unconsumed
// and calls Next until it has no more messages. It checks the contract of
// Next and Need on the way.
func feed(t testing.TB, d *Decoder, chunks [][]byte) result {
	var r result
	var buf []byte
	for _, c := range chunks {
		buf = append(buf, c...)
		for {
			m, n, err := d.Next(buf)
			if n < 0 || n > len(buf) {
				t.Fatalf("Next consumed %d of %d bytes", n, len(buf))
			}
			r.consumed += n
			buf = buf[n:]
			if err != nil {
				r.err = err
				if _, ok := err.(*CloseError); !ok {
					t.Fatalf("error %v is not a *CloseError", err)
				}
				return r
			}
			if m.Op == 0 {
				if d.Need() <= len(buf) {
					t.Fatalf("no progress with %d bytes, but Need() = %d", len(buf), d.Need())
				}
				break
			}
			r.msgs = append(r.msgs, fmt.Sprintf("%v:%s", opName(m.Op), m.Payload))
		}
	}
	return r
}

func opName(op ws.OpCode) string {
	return map[ws.OpCode]string{ws.OpText: "text", ws.OpBinary: "bin", ws.OpClose: "close", ws.OpPing: "ping", ws.OpPong: "pong"}[op]
}

func whole(b []byte) [][]byte { return [][]byte{bytes.Clone(b)} }

var decodeCases = []struct {
	name   string
	max    int
	stream []byte
	msgs   []string
	err    error
}{
	{name: "text", stream: frame(fin|text, "hello"), msgs: []string{"text:hello"}},
	{name: "empty text", stream: frame(fin|text, ""), msgs: []string{"text:"}},
	{name: "binary", stream: frame(fin|bin, "\xff\x00\xfe"), msgs: []string{"bin:\xff\x00\xfe"}},
	{name: "len16", stream: frame(fin|bin, strings.Repeat("x", 300)), msgs: []string{"bin:" + strings.Repeat("x", 300)}},
	{name: "len64", stream: frame(fin|text, strings.Repeat("é", 40000)), msgs: []string{"text:" + strings.Repeat("é", 40000)}},
	{name: "ping pong", stream: cat(frame(fin|ping, "p"), frame(fin|pong, "")), msgs: []string{"ping:p", "pong:"}},
	{name: "ping 125", stream: frame(fin|ping, strings.Repeat("p", 125)), msgs: []string{"ping:" + strings.Repeat("p", 125)}},
	{name: "close empty", stream: frame(fin|cls, ""), msgs: []string{"close:"}},
	{name: "close 1000", stream: frame(fin|cls, closePayload(1000, "bye")), msgs: []string{"close:" + closePayload(1000, "bye")}},
	{name: "close 4999 utf8", stream: frame(fin|cls, closePayload(4999, "é")), msgs: []string{"close:" + closePayload(4999, "é")}},
	{name: "several", stream: cat(frame(fin|text, "a"), frame(fin|bin, "b"), frame(fin|text, "c")), msgs: []string{"text:a", "bin:b", "text:c"}},
	{
		name:   "fragmented text with pings",
		stream: cat(frame(text, "hel"), frame(fin|ping, "1"), frame(cont, "lo "), frame(fin|pong, "2"), frame(fin|cont, "world"), frame(fin|text, "next")),
		msgs:   []string{"ping:1", "pong:2", "text:hello world", "text:next"},
	},
	{name: "fragmented binary", stream: cat(frame(bin, "a"), frame(cont, ""), frame(cont, "b"), frame(fin|cont, "c")), msgs: []string{"bin:abc"}},
	{name: "fragment splits code point", stream: cat(frame(text, "h\xe2"), frame(cont, "\x82"), frame(fin|cont, "\xac!")), msgs: []string{"text:h€!"}},
	{name: "empty fragments", stream: cat(frame(text, ""), frame(fin|cont, "")), msgs: []string{"text:"}},
	{name: "close inside fragmented", stream: cat(frame(text, "a"), frame(fin|cls, closePayload(1001, ""))), msgs: []string{"close:" + closePayload(1001, "")}},
	{name: "fragmented large", stream: cat(frame(bin, strings.Repeat("a", 1000)), frame(cont, strings.Repeat("b", 70000)), frame(fin|cont, "c")), msgs: []string{"bin:" + strings.Repeat("a", 1000) + strings.Repeat("b", 70000) + "c"}},

	// 1002
	{name: "unmasked", stream: []byte{fin | text, 2, 'h', 'i'}, err: ErrProtocolUnmasked},
	{name: "message then unmasked", stream: cat(frame(fin|text, "ok"), []byte{fin | text, 0}), msgs: []string{"text:ok"}, err: ErrProtocolUnmasked},
	{name: "rsv1", stream: frame(fin|0x40|text, "x"), err: ErrProtocolRSV},
	{name: "rsv2", stream: frame(fin|0x20|text, "x"), err: ErrProtocolRSV},
	{name: "rsv3", stream: frame(fin|0x10|text, "x"), err: ErrProtocolRSV},
	{name: "rsv on ping", stream: frame(fin|0x40|ping, ""), err: ErrProtocolRSV},
	{name: "opcode 3", stream: frame(fin|3, ""), err: ErrProtocolOpcode},
	{name: "opcode 7", stream: frame(fin|7, ""), err: ErrProtocolOpcode},
	{name: "opcode B", stream: frame(fin|0xb, ""), err: ErrProtocolOpcode},
	{name: "opcode F", stream: frame(fin|0xf, ""), err: ErrProtocolOpcode},
	{name: "ping without fin", stream: frame(ping, ""), err: ErrProtocolControlFragmented},
	{name: "close without fin", stream: frame(cls, ""), err: ErrProtocolControlFragmented},
	{name: "ping 126", stream: frame(fin|ping, strings.Repeat("p", 126)), err: ErrProtocolControlTooLong},
	{name: "continuation first", stream: frame(fin|cont, "x"), err: ErrProtocolContinuation},
	{name: "continuation after message", stream: cat(frame(text, "a"), frame(fin|cont, "b"), frame(fin|cont, "c")), msgs: []string{"text:ab"}, err: ErrProtocolContinuation},
	{name: "text inside fragmented", stream: cat(frame(text, "a"), frame(fin|text, "b")), err: ErrProtocolNotContinuation},
	{name: "binary inside fragmented", stream: cat(frame(bin, "a"), frame(bin, "b")), err: ErrProtocolNotContinuation},
	{name: "close length 1", stream: frame(fin|cls, "\x03"), err: ErrProtocolCloseLength},
	{name: "close 999", stream: frame(fin|cls, closePayload(999, "")), err: ErrProtocolCloseCode},
	{name: "close 1004", stream: frame(fin|cls, closePayload(1004, "")), err: ErrProtocolCloseCode},
	{name: "close 1005", stream: frame(fin|cls, closePayload(1005, "")), err: ErrProtocolCloseCode},
	{name: "close 1006", stream: frame(fin|cls, closePayload(1006, "")), err: ErrProtocolCloseCode},
	{name: "close 1015", stream: frame(fin|cls, closePayload(1015, "")), err: ErrProtocolCloseCode},
	{name: "close 2999", stream: frame(fin|cls, closePayload(2999, "")), err: ErrProtocolCloseCode},
	{name: "close 5000", stream: frame(fin|cls, closePayload(5000, "")), err: ErrProtocolCloseCode},
	{name: "len16 non-minimal", stream: []byte{fin | bin, 0x80 | 126, 0, 5, 1, 2, 3, 4, 1, 2, 3, 4, 5}, err: ErrProtocolLength},
	{name: "len64 msb", stream: []byte{fin | bin, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4}, err: ErrProtocolLength},

	// 1007
	{name: "bad utf8", stream: frame(fin|text, "a\xffb"), err: ErrInvalidUTF8},
	{name: "surrogate", stream: frame(fin|text, "\xed\xa0\x80"), err: ErrInvalidUTF8},
	{name: "truncated code point", stream: frame(fin|text, "a\xe2\x82"), err: ErrInvalidUTF8},
	{name: "fragment ends mid code point", stream: cat(frame(text, "a\xe2"), frame(fin|cont, "")), err: ErrInvalidUTF8},
	{name: "bad utf8 in fragment", stream: cat(frame(text, "ok"), frame(cont, "\xc0\xaf"), frame(fin|cont, "")), err: ErrInvalidUTF8},
	{name: "bad utf8 binary is fine", stream: frame(fin|bin, "\xff"), msgs: []string{"bin:\xff"}},
	{name: "bad utf8 close reason", stream: frame(fin|cls, closePayload(1000, "\xff")), err: ErrInvalidUTF8},
	{name: "bad utf8 ping is fine", stream: frame(fin|ping, "\xff"), msgs: []string{"ping:\xff"}},

	// 1009
	{name: "max ok", max: 5, stream: frame(fin|text, "12345"), msgs: []string{"text:12345"}},
	{name: "max frame", max: 5, stream: frame(fin|text, "123456"), err: ErrMessageTooBig},
	{name: "max fragments ok", max: 5, stream: cat(frame(text, "12"), frame(fin|cont, "345")), msgs: []string{"text:12345"}},
	{name: "max fragments", max: 5, stream: cat(frame(text, "123"), frame(fin|cont, "456")), err: ErrMessageTooBig},
	{name: "max control exempt", max: 5, stream: frame(fin|ping, "1234567"), msgs: []string{"ping:1234567"}},
	{name: "huge length", stream: []byte{fin | bin, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4}, err: ErrMessageTooBig},
}

func TestDecoder(t *testing.T) {
	for _, tc := range decodeCases {
		for _, pool := range []*bufpool.Pool{nil, bufpool.New(2)} {
			d := &Decoder{MaxMessage: tc.max, Pool: pool}
			got := feed(t, d, whole(tc.stream))
			if fmt.Sprint(got.msgs) != fmt.Sprint(tc.msgs) || got.err != tc.err {
				t.Errorf("%s: got %v; want %q err=%v", tc.name, got, tc.msgs, tc.err)
			}
			if got.err == nil && got.consumed != len(tc.stream) {
				t.Errorf("%s: consumed %d of %d", tc.name, got.consumed, len(tc.stream))
			}
			d.Release()
		}
	}
}

// Every way of cutting the stream must give what the whole stream gives.
func TestDecoderSplits(t *testing.T) {
	for _, tc := range decodeCases {
		if len(tc.stream) > 2000 {
			continue
		}
		want := feed(t, &Decoder{MaxMessage: tc.max}, whole(tc.stream))
		bytewise := make([][]byte, len(tc.stream))
		for i := range tc.stream {
			bytewise[i] = []byte{tc.stream[i]}
		}
		if got := feed(t, &Decoder{MaxMessage: tc.max, Pool: bufpool.New(1)}, bytewise); !got.equal(want) {
			t.Errorf("%s: byte by byte %v; whole %v", tc.name, got, want)
		}
		for i := 1; i < len(tc.stream); i++ {
			s := bytes.Clone(tc.stream)
			if got := feed(t, &Decoder{MaxMessage: tc.max}, [][]byte{s[:i], s[i:]}); !got.equal(want) {
				t.Errorf("%s: split at %d: %v; whole %v", tc.name, i, got, want)
			}
		}
	}
}

// A bad byte in the first half of a text frame is reported before the second
// half arrives, in a fragmented message too.
func TestDecoderFailFast(t *testing.T) {
	for _, tc := range []struct {
		name   string
		stream []byte
		cut    int // bytes of the stream available
	}{
		{"single frame", frame(fin|text, "ok\xff"+strings.Repeat("a", 1000)), 2 + 2 + 4 + 3},
		{"continuation", cat(frame(text, "ok"), frame(fin|cont, "fine\xed\xa0\x80"+strings.Repeat("a", 1000))), 8 + 2 + 4 + 4 + 4 + 3},
		{"large frame", frame(fin|text, strings.Repeat("a", 70000)+"\xc0"+strings.Repeat("a", 70000)), 14 + 70001},
	} {
		var d Decoder
		_, _, err := d.Next(tc.stream[:tc.cut])
		if err != ErrInvalidUTF8 {
			t.Errorf("%s: %v, want %v", tc.name, err, ErrInvalidUTF8)
		}
	}
}

func TestDecoderMaxMessageFromHeader(t *testing.T) {
	s := frame(fin|bin, strings.Repeat("a", 100000))
	d := Decoder{MaxMessage: 65536}
	// The header alone is enough to know.
	if _, _, err := d.Next(s[:14]); err != ErrMessageTooBig {
		t.Fatalf("header: %v", err)
	}
	// Accumulated: the second fragment's header pushes the total over.
	s = cat(frame(bin, strings.Repeat("a", 60000)), frame(cont, strings.Repeat("b", 6000)))
	d = Decoder{MaxMessage: 65536}
	m, n, err := d.Next(s[:60008+8])
	if err != ErrMessageTooBig || m.Op != 0 || n != 60008 {
		t.Fatalf("accumulated: %v %d %v", m.Op, n, err)
	}
}

func TestDecoderNeed(t *testing.T) {
	s := frame(fin|bin, strings.Repeat("a", 1000)) // 2+2+4 header
	for _, tc := range []struct{ have, need int }{{0, 2}, {1, 2}, {2, 8}, {7, 8}, {8, 1008}, {500, 1008}} {
		var d Decoder
		m, n, err := d.Next(bytes.Clone(s[:tc.have]))
		if m.Op != 0 || n != 0 || err != nil || d.Need() != tc.need {
			t.Errorf("%d bytes: %v %d %v, Need %d, want %d", tc.have, m.Op, n, err, d.Need(), tc.need)
		}
	}
}

// The pending frame is unmasked once even when Next sees its prefix many
// times; the caller may move the unconsumed bytes between calls.
func TestDecoderMovedBuffer(t *testing.T) {
	payload := strings.Repeat("héllo ", 5000)
	s := cat(frame(fin|ping, "x"), frame(fin|text, payload))
	var d Decoder
	var msgs []string
	buf := []byte{}
	for i := 0; i < len(s); i += 777 {
		buf = append(buf, s[i:min(i+777, len(s))]...)
		for {
			m, n, err := d.Next(buf)
			if err != nil {
				t.Fatal(err)
			}
			if m.Op != 0 {
				msgs = append(msgs, string(m.Payload))
			}
			buf = append([]byte(nil), buf[n:]...) // move to a fresh buffer
			if m.Op == 0 {
				break
			}
		}
	}
	if len(msgs) != 2 || msgs[0] != "x" || msgs[1] != payload {
		t.Fatalf("got %d messages", len(msgs))
	}
}

func TestDecoderZeroCopyAndPool(t *testing.T) {
	pool := bufpool.New(4)
	d := Decoder{Pool: pool}
	s := frame(fin|text, "single")
	m, _, _ := d.Next(s)
	if &m.Payload[0] != &s[len(s)-6] {
		t.Error("single-frame payload is not a sub-slice of b")
	}
	s = cat(frame(text, "frag"), frame(fin|cont, "mented"))
	m, n, err := d.Next(s)
	if err != nil || n != len(s) || string(m.Payload) != "fragmented" {
		t.Fatalf("%q %d %v", m.Payload, n, err)
	}
	if cap(m.Payload) != bufpool.MinSize {
		t.Errorf("reassembly buffer cap %d, not from the pool", cap(m.Payload))
	}
	first := &m.Payload[:1][0]
	// The buffer goes back at the next call and is reused.
	d.Next(nil)
	m, _, _ = d.Next(cat(frame(bin, "a"), frame(fin|cont, "b")))
	if &m.Payload[:1][0] != first {
		t.Error("reassembly buffer not reused through the pool")
	}
	d.Release()
	if b := pool.Get(1); &b[:1][0] != first {
		t.Error("Release did not return the buffer")
	}
}

func TestDecoderErrorIsFinal(t *testing.T) {
	var d Decoder
	if _, _, err := d.Next(frame(fin|3, "")); err != ErrProtocolOpcode {
		t.Fatal(err)
	}
	if _, n, err := d.Next(frame(fin|text, "ok")); err != ErrProtocolOpcode || n != 0 {
		t.Fatalf("after error: %d %v", n, err)
	}
	d.Release()
	if m, _, err := d.Next(frame(fin|text, "ok")); err != nil || string(m.Payload) != "ok" {
		t.Fatalf("after Release: %q %v", m.Payload, err)
	}
}

func TestDecoderAllocs(t *testing.T) {
	single := frame(fin|text, strings.Repeat("a", 4096))
	frag := cat(frame(text, strings.Repeat("a", 2000)), frame(fin|ping, "p"), frame(fin|cont, strings.Repeat("b", 2000)))
	buf := make([]byte, max(len(single), len(frag)))
	for _, tc := range []struct {
		name   string
		stream []byte
	}{{"single", single}, {"fragmented", frag}} {
		d := Decoder{Pool: bufpool.New(4)}
		allocs := testing.AllocsPerRun(100, func() {
			b := buf[:copy(buf, tc.stream)]
			for len(b) > 0 {
				m, n, err := d.Next(b)
				if err != nil || m.Op == 0 {
					t.Fatal(err)
				}
				b = b[n:]
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocs per message", tc.name, allocs)
		}
	}
}
