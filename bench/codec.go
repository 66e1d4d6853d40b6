package bench

import (
	"bytes"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"

	"github.com/gobwas/ws"
)

// The client codec: masked frames out, unmasked server frames in, parsed from
// byte slices so that a non-blocking reader can feed partial input.

var errIncomplete = errors.New("incomplete")

// appendFrame appends one masked client frame (FIN set) to dst.
func appendFrame(dst []byte, op ws.OpCode, payload []byte) []byte {
	h := ws.Header{Fin: true, OpCode: op, Masked: true, Mask: ws.NewMask(), Length: int64(len(payload))}
	var hb sliceWriter
	hb.b = dst
	// ws.WriteHeader never fails on a valid header and an in-memory writer.
	_ = ws.WriteHeader(&hb, h)
	start := len(hb.b)
	out := append(hb.b, payload...)
	ws.Cipher(out[start:], h.Mask, 0)
	return out
}

type sliceWriter struct{ b []byte }

func (w *sliceWriter) Write(p []byte) (int, error) { w.b = append(w.b, p...); return len(p), nil }

// frameHeader is a parsed server frame header.
type frameHeader struct {
	fin    bool
	rsv    byte
	op     ws.OpCode
	masked bool
	length int64
	size   int // header bytes
}

// parseHeader parses a frame header at the start of b. It returns
// errIncomplete when b holds less than a whole header.
func parseHeader(b []byte) (frameHeader, error) {
	var h frameHeader
	if len(b) < 2 {
		return h, errIncomplete
	}
	h.fin = b[0]&0x80 != 0
	h.rsv = (b[0] >> 4) & 0x7
	h.op = ws.OpCode(b[0] & 0x0f)
	h.masked = b[1]&0x80 != 0
	n := 2
	switch l := b[1] & 0x7f; l {
	case 126:
		if len(b) < 4 {
			return h, errIncomplete
		}
		h.length = int64(binary.BigEndian.Uint16(b[2:4]))
		n = 4
	case 127:
		if len(b) < 10 {
			return h, errIncomplete
		}
		h.length = int64(binary.BigEndian.Uint64(b[2:10]))
		n = 10
	default:
		h.length = int64(l)
	}
	if h.masked {
		n += 4
		if len(b) < n {
			return h, errIncomplete
		}
	}
	h.size = n
	switch {
	case h.masked:
		return h, errors.New("masked server frame")
	case h.rsv != 0:
		return h, errors.New("rsv bits set")
	case h.length < 0 || h.length > 1<<30:
		return h, fmt.Errorf("frame length %d", h.length)
	case h.op.IsControl() && (!h.fin || h.length > 125):
		return h, errors.New("bad control frame")
	case h.op.IsReserved():
		return h, fmt.Errorf("reserved opcode %d", h.op)
	}
	return h, nil
}

// appendHandshake appends a GET request upgrading path (which includes the
// query) on host, and returns the expected Sec-WebSocket-Accept.
func appendHandshake(dst []byte, host, path string) ([]byte, string) {
	var k [16]byte
	_, _ = rand.Read(k[:])
	key := base64.StdEncoding.EncodeToString(k[:])
	dst = append(dst, "GET "...)
	dst = append(dst, path...)
	dst = append(dst, " HTTP/1.1\r\nHost: "...)
	dst = append(dst, host...)
	dst = append(dst, "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: "...)
	dst = append(dst, key...)
	dst = append(dst, "\r\nSec-WebSocket-Version: 13\r\n\r\n"...)
	return dst, acceptKey(key)
}

func acceptKey(key string) string {
	h := sha1.New()
	h.Write([]byte(key))
	h.Write([]byte("258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// parseResponse parses the HTTP answer to a handshake at the start of b. It
// returns the number of bytes consumed, or errIncomplete. A non-101 status is
// reported as an *httpStatusError.
func parseResponse(b []byte, accept string) (int, error) {
	end := bytes.Index(b, []byte("\r\n\r\n"))
	if end < 0 {
		if len(b) > 16<<10 {
			return 0, errors.New("response header too large")
		}
		return 0, errIncomplete
	}
	head := b[:end]
	line, rest, _ := bytes.Cut(head, []byte("\r\n"))
	f := bytes.Fields(line)
	if len(f) < 2 || !bytes.HasPrefix(f[0], []byte("HTTP/1.")) {
		return 0, fmt.Errorf("bad status line %q", line)
	}
	code, err := strconv.Atoi(string(f[1]))
	if err != nil {
		return 0, fmt.Errorf("bad status line %q", line)
	}
	if code != 101 {
		return 0, &httpStatusError{code: code}
	}
	ok := false
	for len(rest) > 0 {
		var l []byte
		l, rest, _ = bytes.Cut(rest, []byte("\r\n"))
		name, val, found := bytes.Cut(l, []byte(":"))
		if found && bytes.EqualFold(bytes.TrimSpace(name), []byte("Sec-WebSocket-Accept")) {
			ok = string(bytes.TrimSpace(val)) == accept
		}
	}
	if !ok {
		return 0, errors.New("bad Sec-WebSocket-Accept")
	}
	return end + 4, nil
}

type httpStatusError struct{ code int }

func (e *httpStatusError) Error() string { return "http " + strconv.Itoa(e.code) }

// message is the part of a server text message wsbench cares about.
type message struct {
	op    []byte // "op" of a command answer, nil for a push
	topic []byte
	seq   int64
	data  []byte // raw JSON value
}

// parseMessage scans the top-level members of a JSON object without
// allocating. Only the members above are kept; others are skipped.
func parseMessage(b []byte) (message, error) {
	var m message
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return m, errors.New("not an object")
	}
	i++
	for {
		i = skipWS(b, i)
		if i < len(b) && b[i] == '}' {
			return m, nil
		}
		ks, ke, err := scanString(b, i)
		if err != nil {
			return m, err
		}
		key := b[ks+1 : ke-1]
		i = skipWS(b, ke)
		if i >= len(b) || b[i] != ':' {
			return m, errors.New("missing colon")
		}
		i = skipWS(b, i+1)
		vs := i
		i, err = skipValue(b, i)
		if err != nil {
			return m, err
		}
		v := b[vs:i]
		switch string(key) {
		case "op":
			m.op = bytes.Trim(v, `"`)
		case "topic":
			m.topic = bytes.Trim(v, `"`)
		case "seq":
			m.seq, _ = strconv.ParseInt(string(v), 10, 64)
		case "data":
			m.data = v
		}
		i = skipWS(b, i)
		if i < len(b) && b[i] == ',' {
			i++
			continue
		}
		if i < len(b) && b[i] == '}' {
			return m, nil
		}
		return m, errors.New("bad object")
	}
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t') {
		i++
	}
	return i
}

// scanString returns the bounds of the JSON string starting at i, quotes included.
func scanString(b []byte, i int) (int, int, error) {
	if i >= len(b) || b[i] != '"' {
		return 0, 0, errors.New("expected string")
	}
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return i, j + 1, nil
		}
	}
	return 0, 0, errors.New("unterminated string")
}

// skipValue returns the index just past the JSON value starting at i.
func skipValue(b []byte, i int) (int, error) {
	if i >= len(b) {
		return 0, errors.New("missing value")
	}
	switch b[i] {
	case '"':
		_, e, err := scanString(b, i)
		return e, err
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				_, e, err := scanString(b, j)
				if err != nil {
					return 0, err
				}
				j = e - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1, nil
				}
			}
		}
		return 0, errors.New("unterminated value")
	default:
		j := i
		for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\n' && b[j] != '\r' && b[j] != '\t' {
			j++
		}
		if j == i {
			return 0, errors.New("bad value")
		}
		return j, nil
	}
}

// payloadTime extracts the publish timestamp from data = {"t":<unixnano>,...}.
func payloadTime(data []byte) (int64, bool) {
	i := bytes.Index(data, []byte(`"t":`))
	if i < 0 {
		return 0, false
	}
	i += 4
	var t int64
	n := 0
	for ; i < len(data) && data[i] >= '0' && data[i] <= '9'; i++ {
		t = t*10 + int64(data[i]-'0')
		n++
	}
	return t, n > 0
}

// makePayload returns data = {"t":<unixnano>,"p":"xxx"} padded to size bytes
// (or longer when size is too small to hold the timestamp).
func makePayload(dst []byte, t int64, size int) []byte {
	dst = append(dst[:0], `{"t":`...)
	dst = strconv.AppendInt(dst, t, 10)
	dst = append(dst, `,"p":"`...)
	for len(dst) < size-2 {
		dst = append(dst, 'x')
	}
	return append(dst, `"}`...)
}
