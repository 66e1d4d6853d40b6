package bench

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/gobwas/ws"
)

func TestParseHeader(t *testing.T) {
	tests := []struct {
		name    string
		in      []byte
		op      ws.OpCode
		length  int64
		size    int
		wantErr error
		anyErr  bool
	}{
		{name: "short text", in: []byte{0x81, 5}, op: ws.OpText, length: 5, size: 2},
		{name: "16-bit length", in: []byte{0x82, 126, 1, 0}, op: ws.OpBinary, length: 256, size: 4},
		{name: "64-bit length", in: []byte{0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0}, op: ws.OpText, length: 65536, size: 10},
		{name: "incomplete", in: []byte{0x81}, wantErr: errIncomplete},
		{name: "incomplete 16-bit", in: []byte{0x81, 126, 1}, wantErr: errIncomplete},
		{name: "masked from server", in: []byte{0x81, 0x85, 1, 2, 3, 4}, anyErr: true},
		{name: "rsv set", in: []byte{0xc1, 1}, anyErr: true},
		{name: "fragmented ping", in: []byte{0x09, 0}, anyErr: true},
		{name: "close", in: []byte{0x88, 2}, op: ws.OpClose, length: 2, size: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := parseHeader(tt.in)
			switch {
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
			case tt.anyErr:
				if err == nil || errors.Is(err, errIncomplete) {
					t.Fatalf("err = %v, want a protocol error", err)
				}
			default:
				if err != nil || h.op != tt.op || h.length != tt.length || h.size != tt.size {
					t.Fatalf("got %+v, %v; want op %v length %d size %d", h, err, tt.op, tt.length, tt.size)
				}
			}
		})
	}
}

func TestAppendFrameIsMasked(t *testing.T) {
	tests := []struct {
		name    string
		payload []byte
	}{
		{"empty", nil},
		{"small", []byte(`{"op":"sub","topics":["a"]}`)},
		{"medium", bytes.Repeat([]byte("x"), 300)},
		{"large", bytes.Repeat([]byte("y"), 70000)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := appendFrame(nil, ws.OpText, tt.payload)
			f, err := ws.ReadFrame(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			if !f.Header.Masked || !f.Header.Fin || f.Header.OpCode != ws.OpText {
				t.Fatalf("header %+v", f.Header)
			}
			f = ws.UnmaskFrameInPlace(f)
			if !bytes.Equal(f.Payload, tt.payload) {
				t.Fatalf("payload mismatch")
			}
		})
	}
}

func TestParseMessage(t *testing.T) {
	tests := []struct {
		in            string
		op, topic     string
		seq           int64
		data          string
		wantErr       bool
		wantTimestamp int64
	}{
		{in: `{"topic":"a","seq":7,"data":{"t":123,"p":"xx"}}`, topic: "a", seq: 7, data: `{"t":123,"p":"xx"}`, wantTimestamp: 123},
		{in: `{"seq":9,"data":[1,{"a":"}"}],"topic":"b\"c"}`, topic: `b\"c`, seq: 9, data: `[1,{"a":"}"}]`},
		{in: `{"op":"subscribed","topic":"a","seq":0}`, op: "subscribed", topic: "a"},
		{in: ` { "topic" : "a" , "seq" : 3 , "data" : "s" } `, topic: "a", seq: 3, data: `"s"`},
		{in: `[1]`, wantErr: true},
		{in: `{"topic":"a"`, wantErr: true},
		{in: `{"topic":"a","data":{"x":1}`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			m, err := parseMessage([]byte(tt.in))
			if tt.wantErr {
				if err == nil {
					t.Fatalf("no error for %s", tt.in)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(m.op) != tt.op || string(m.topic) != tt.topic || m.seq != tt.seq || string(m.data) != tt.data {
				t.Fatalf("got op=%q topic=%q seq=%d data=%q", m.op, m.topic, m.seq, m.data)
			}
			if tt.wantTimestamp != 0 {
				if ts, ok := payloadTime(m.data); !ok || ts != tt.wantTimestamp {
					t.Fatalf("timestamp %d %v", ts, ok)
				}
			}
		})
	}
}

func TestMakePayload(t *testing.T) {
	for _, size := range []int{1, 40, 128, 1000} {
		p := makePayload(nil, 1700000000123456789, size)
		if size >= 40 && len(p) != size {
			t.Errorf("size %d: got %d bytes", size, len(p))
		}
		if ts, ok := payloadTime(p); !ok || ts != 1700000000123456789 {
			t.Errorf("size %d: timestamp %d %v", size, ts, ok)
		}
		if _, err := parseMessage(p); err != nil {
			t.Errorf("size %d: %v", size, err)
		}
	}
}

func TestParseResponse(t *testing.T) {
	key := "dGhlIHNhbXBsZSBub25jZQ=="
	accept := acceptKey(key)
	if accept != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("accept key %s", accept)
	}
	tests := []struct {
		name string
		in   string
		n    int
		code int
		err  bool
	}{
		{name: "ok", in: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + accept + "\r\n\r\n\x81\x00", n: 129},
		{name: "incomplete", in: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"},
		{name: "503", in: "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n", code: 503},
		{name: "bad accept", in: "HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: nope\r\n\r\n", err: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := parseResponse([]byte(tt.in), accept)
			var he *httpStatusError
			switch {
			case tt.code != 0:
				if !errors.As(err, &he) || he.code != tt.code {
					t.Fatalf("err %v, want http %d", err, tt.code)
				}
			case tt.err:
				if err == nil || errors.Is(err, errIncomplete) {
					t.Fatalf("err %v", err)
				}
			case tt.n == 0:
				if !errors.Is(err, errIncomplete) {
					t.Fatalf("err %v, want incomplete", err)
				}
			default:
				if err != nil || n != len(tt.in)-2 {
					t.Fatalf("n=%d err=%v, want %d", n, err, len(tt.in)-2)
				}
			}
		})
	}
}

func TestParseSrcRange(t *testing.T) {
	tests := []struct {
		in   string
		want []string
		err  bool
	}{
		{in: "127.0.0.2-127.0.0.4", want: []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"}},
		{in: "127.0.0.9", want: []string{"127.0.0.9"}},
		{in: "127.0.0.1,127.0.1.255-127.0.2.0", want: []string{"127.0.0.1", "127.0.1.255", "127.0.2.0"}},
		{in: "127.0.0.5-127.0.0.4", err: true},
		{in: "::1", err: true},
	}
	for _, tt := range tests {
		got, err := ParseSrcRange(tt.in)
		if (err != nil) != tt.err || (!tt.err && !slices.Equal(got, tt.want)) {
			t.Errorf("%s: got %v, %v", tt.in, got, err)
		}
	}
}

func TestIsSlowSpreadsEvenly(t *testing.T) {
	for _, f := range []float64{0, 0.1, 0.25, 1} {
		n := 0
		for i := 0; i < 1000; i++ {
			if isSlow(i, f) {
				n++
			}
		}
		if n != int(f*1000) {
			t.Errorf("fraction %v: %d of 1000", f, n)
		}
	}
}

func TestParseMetrics(t *testing.T) {
	in := "# TYPE x counter\ngo_goroutines 12\nwspush_loop_wakeups_total{loop=\"0\"} 3\nwspush_loop_wakeups_total{loop=\"1\"} 4\nbad line\n"
	m, err := parseMetrics(bytes.NewBufferString(in))
	if err != nil {
		t.Fatal(err)
	}
	if m["go_goroutines"] != 12 || m["wspush_loop_wakeups_total"] != 7 {
		t.Fatalf("got %v", m)
	}
}
