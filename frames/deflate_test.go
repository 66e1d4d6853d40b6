package frames

import (
	"bytes"
	"compress/flate"
	"errors"
	"strings"
	"testing"

	"github.com/gobwas/ws"

	"github.com/wspush/wspush/internal/bufpool"
)

// compress is an independent encoder for the tests: compress/flate with a
// sync flush and the tail stripped, as RFC 7692 section 7.2.1 says.
func compress(t *testing.T, p []byte, final bool) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, _ := flate.NewWriter(&buf, flate.DefaultCompression)
	w.Write(p)
	if final {
		w.Close()
		return buf.Bytes()
	}
	w.Flush()
	return bytes.TrimSuffix(buf.Bytes(), deflateTail)
}

func TestInflate(t *testing.T) {
	long := []byte(strings.Repeat(`{"topic":"news","seq":1,"data":"hello"}`, 2000))
	tests := []struct {
		name    string
		payload []byte
		limit   int
		want    []byte
		err     error
	}{
		{"small", compress(t, []byte("hello"), false), 0, []byte("hello"), nil},
		{"empty", compress(t, nil, false), 0, []byte{}, nil},
		{"final block", compress(t, []byte("bye"), true), 0, []byte("bye"), nil},
		{"large, grows the buffer", compress(t, long, false), 0, long, nil},
		{"exactly the limit", compress(t, long, false), len(long), long, nil},
		{"over the limit", compress(t, long, false), len(long) - 1, nil, ErrMessageTooBig},
		{"corrupt", []byte{0xff, 0xff, 0xff, 0x00}, 0, nil, ErrInvalidDeflate},
		{"truncated", compress(t, long, false)[:50], 0, nil, ErrInvalidDeflate},
	}
	for _, pool := range []*bufpool.Pool{nil, bufpool.New(4)} {
		var f Inflater // reused across cases, as a loop does
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, err := f.Inflate(pool, tt.payload, tt.limit)
				if !errors.Is(err, tt.err) {
					t.Fatalf("err %v, want %v", err, tt.err)
				}
				if err == nil && !bytes.Equal(got, tt.want) {
					t.Fatalf("inflated %d bytes, want %d", len(got), len(tt.want))
				}
			})
		}
	}
}

func TestDeflaterRoundTrip(t *testing.T) {
	var d Deflater
	var f Inflater
	for _, msg := range []string{"hi", strings.Repeat("compressible ", 100), `{"a":1}`} {
		frame := d.AppendFrame(nil, ws.OpText, []byte(msg))
		h, n, err := ParseHeader(frame)
		if err != nil || !h.Fin || h.OpCode != ws.OpText {
			t.Fatalf("header %+v %v", h, err)
		}
		payload := frame[n:]
		if h.Rsv == rsv1 {
			if payload, err = f.Inflate(nil, payload, 0); err != nil {
				t.Fatal(err)
			}
		} else if len(msg) > 20 {
			t.Fatalf("%d-byte repetitive message sent uncompressed", len(msg))
		}
		if string(payload) != msg {
			t.Fatalf("round trip gave %q", payload)
		}
	}
}

func TestDecoderCompressedMessages(t *testing.T) {
	text := []byte(strings.Repeat("é", 100))
	z := compress(t, text, false)
	mask := [4]byte{9, 8, 7, 6}
	frame := func(b0 byte, p []byte) []byte {
		q := append([]byte(nil), p...)
		ws.Cipher(q, mask, 0)
		return append(append(appendMaskedHeader(nil, b0, len(p)), mask[:]...), q...)
	}
	tests := []struct {
		name    string
		deflate bool
		stream  []byte
		err     error
	}{
		{"one frame", true, frame(0x80|0x40|0x1, z), nil},
		{"fragmented, RSV1 on the first", true, append(frame(0x40|0x1, z[:5]), frame(0x80, z[5:])...), nil},
		{"not negotiated", false, frame(0x80|0x40|0x1, z), ErrProtocolRSV},
		{"RSV1 on a continuation", true, append(frame(0x2, z[:5]), frame(0x80|0x40, z[5:])...), ErrProtocolRSV},
		{"RSV1 on a ping", true, frame(0x80|0x40|0x9, nil), ErrProtocolRSV},
		{"RSV2", true, frame(0x80|0x20|0x1, z), ErrProtocolRSV},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Decoder{Deflate: tt.deflate}
			m, _, err := d.Next(tt.stream)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err %v, want %v", err, tt.err)
			}
			if err != nil {
				return
			}
			if !m.Compressed || m.Op != ws.OpText {
				t.Fatalf("message %v compressed %v", m.Op, m.Compressed)
			}
			var f Inflater
			got, err := f.Inflate(nil, m.Payload, 0)
			if err != nil || !bytes.Equal(got, text) {
				t.Fatalf("inflated %q, %v", got, err)
			}
			// The next message, uncompressed, is checked as text again.
			bad := frame(0x81, []byte{0xff})
			if _, _, err := d.Next(bad); !errors.Is(err, ErrInvalidUTF8) {
				t.Fatalf("uncompressed invalid UTF-8 after a compressed message: %v", err)
			}
		})
	}
}

// appendMaskedHeader appends a client frame header (mask key follows).
func appendMaskedHeader(dst []byte, b0 byte, n int) []byte {
	switch {
	case n < 126:
		return append(dst, b0, 0x80|byte(n))
	default:
		return append(dst, b0, 0x80|126, byte(n>>8), byte(n))
	}
}
