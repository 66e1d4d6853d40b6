package frames

import (
	"bytes"
	"errors"
	"testing"

	"github.com/gobwas/ws"
)

func TestParseHeader(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    []byte
		h    ws.Header
		n    int
		err  error
	}{
		{"empty", nil, ws.Header{}, 0, ErrShort},
		{"one byte", []byte{0x81}, ws.Header{}, 0, ErrShort},
		{"unmasked 5", []byte{0x81, 5}, ws.Header{Fin: true, OpCode: ws.OpText, Length: 5}, 2, nil},
		{"rsv and op", []byte{0x72, 0}, ws.Header{Rsv: 7, OpCode: ws.OpBinary}, 2, nil},
		{"masked", []byte{0x89, 0x80 | 3, 1, 2, 3, 4}, ws.Header{Fin: true, OpCode: ws.OpPing, Masked: true, Mask: [4]byte{1, 2, 3, 4}, Length: 3}, 6, nil},
		{"masked short", []byte{0x89, 0x80 | 3, 1, 2, 3}, ws.Header{}, 0, ErrShort},
		{"len16", []byte{0x82, 126, 0x01, 0x00}, ws.Header{Fin: true, OpCode: ws.OpBinary, Length: 256}, 4, nil},
		{"len16 min", []byte{0x82, 126, 0x00, 126}, ws.Header{Fin: true, OpCode: ws.OpBinary, Length: 126}, 4, nil},
		{"len16 short", []byte{0x82, 126, 0x01}, ws.Header{}, 0, ErrShort},
		{"len16 masked", []byte{0x82, 0x80 | 126, 0xff, 0xff, 9, 9, 9, 9}, ws.Header{Fin: true, OpCode: ws.OpBinary, Masked: true, Mask: [4]byte{9, 9, 9, 9}, Length: 65535}, 8, nil},
		{"len16 non-minimal", []byte{0x82, 126, 0x00, 125}, ws.Header{}, 0, ErrProtocolLength},
		{"len64", []byte{0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0}, ws.Header{Fin: true, OpCode: ws.OpBinary, Length: 65536}, 10, nil},
		{"len64 max", []byte{0x82, 127, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, ws.Header{Fin: true, OpCode: ws.OpBinary, Length: 1<<63 - 1}, 10, nil},
		{"len64 short", []byte{0x82, 127, 0, 0, 0, 0, 0, 1, 0}, ws.Header{}, 0, ErrShort},
		{"len64 non-minimal", []byte{0x82, 127, 0, 0, 0, 0, 0, 0, 0xff, 0xff}, ws.Header{}, 0, ErrProtocolLength},
		{"len64 msb", []byte{0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0}, ws.Header{}, 0, ErrProtocolLength},
		{"len64 masked max header", []byte{0x82, 0xff, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4, 0xaa}, ws.Header{Fin: true, OpCode: ws.OpBinary, Masked: true, Mask: [4]byte{1, 2, 3, 4}, Length: 65536}, 14, nil},
	} {
		h, n, err := ParseHeader(tc.b)
		if err != tc.err {
			t.Errorf("%s: err %v, want %v", tc.name, err, tc.err)
			continue
		}
		if err == nil && (h != tc.h || n != tc.n) {
			t.Errorf("%s: got %+v, %d; want %+v, %d", tc.name, h, n, tc.h, tc.n)
		}
	}
}

func TestAppendHeader(t *testing.T) {
	for _, n := range []int{0, 1, 125, 126, 127, 65535, 65536, 1 << 40} {
		for _, op := range []ws.OpCode{ws.OpContinuation, ws.OpText, ws.OpBinary, ws.OpClose, ws.OpPing, ws.OpPong} {
			for _, fin := range []bool{false, true} {
				b := AppendHeader([]byte("x"), op, fin, n)
				if len(b) != 1+HeaderSize(n) {
					t.Fatalf("len %d: header of %d bytes, HeaderSize %d", n, len(b)-1, HeaderSize(n))
				}
				// Cross-check with gobwas' encoder.
				var w bytes.Buffer
				if err := ws.WriteHeader(&w, ws.Header{Fin: fin, OpCode: op, Length: int64(n)}); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(b[1:], w.Bytes()) {
					t.Fatalf("len %d op %v fin %v: % x, gobwas % x", n, op, fin, b[1:], w.Bytes())
				}
				h, hn, err := ParseHeader(b[1:])
				if err != nil || hn != len(b)-1 || h != (ws.Header{Fin: fin, OpCode: op, Length: int64(n)}) {
					t.Fatalf("round trip: %+v %d %v", h, hn, err)
				}
			}
		}
	}
}

func TestAppendFrameAllocs(t *testing.T) {
	dst := make([]byte, 0, 256)
	p := bytes.Repeat([]byte("a"), 200)
	if n := testing.AllocsPerRun(100, func() { dst = AppendFrame(dst[:0], ws.OpText, true, p) }); n != 0 {
		t.Fatalf("AppendFrame allocates %v times", n)
	}
}

func TestPrepared(t *testing.T) {
	payload := []byte(`{"topic":"a","seq":1,"data":null}`)
	p := NewPrepared(ws.OpText, payload)
	if cap(p) != len(p) {
		t.Errorf("NewPrepared: cap %d len %d, want exact", cap(p), len(p))
	}
	b := make([]byte, 0, HeaderSize(len(payload))+len(payload))
	b = AppendHeader(b, ws.OpText, true, len(payload))
	b = append(b, payload...)
	if !bytes.Equal(p.Bytes(), b) {
		t.Fatalf("NewPrepared % x, in place % x", p, b)
	}
	if n := testing.AllocsPerRun(10, func() { p = NewPrepared(ws.OpText, payload) }); n != 1 {
		t.Errorf("NewPrepared allocates %v times, want 1", n)
	}
	payload[0] = 'X'
	if p[2] != '{' {
		t.Error("Prepared aliases the payload")
	}
}

func TestCloseErrorIs(t *testing.T) {
	if !errors.Is(ErrProtocolRSV, ErrProtocol) || errors.Is(ErrInvalidUTF8, ErrProtocol) || !errors.Is(ErrMessageTooBig, ErrMessageTooBig) {
		t.Fatal("errors.Is does not compare by code")
	}
	var ce *CloseError
	var err error = ErrInvalidUTF8
	if !errors.As(err, &ce) || ce.Code != 1007 {
		t.Fatal("errors.As")
	}
}
