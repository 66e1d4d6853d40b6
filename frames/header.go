package frames

import (
	"encoding/binary"
	"math"

	"github.com/gobwas/ws"
)

// ParseHeader parses the frame header at the start of b. It returns the
// header and its length in bytes (2 to 14), ErrShort if b does not hold the
// whole header yet, or ErrProtocolLength if the payload length is not in its
// shortest encoding or has the most significant bit of its 64-bit form set
// (RFC 6455 section 5.2). It does not judge anything else (masking, opcodes,
// RSV bits): that is the Decoder's job.
func ParseHeader(b []byte) (h ws.Header, n int, err error) {
	if len(b) < 2 {
		return h, 0, ErrShort
	}
	h.Fin = b[0]&0x80 != 0
	h.Rsv = (b[0] & 0x70) >> 4
	h.OpCode = ws.OpCode(b[0] & 0x0f)
	h.Masked = b[1]&0x80 != 0
	n = 2
	switch l := b[1] & 0x7f; l {
	case 126:
		if len(b) < 4 {
			return h, 0, ErrShort
		}
		h.Length = int64(binary.BigEndian.Uint16(b[2:]))
		if h.Length < 126 {
			return h, 0, ErrProtocolLength
		}
		n = 4
	case 127:
		if len(b) < 10 {
			return h, 0, ErrShort
		}
		u := binary.BigEndian.Uint64(b[2:])
		if u > math.MaxInt64 || u <= math.MaxUint16 {
			return h, 0, ErrProtocolLength
		}
		h.Length = int64(u)
		n = 10
	default:
		h.Length = int64(l)
	}
	if h.Masked {
		if len(b) < n+4 {
			return h, 0, ErrShort
		}
		copy(h.Mask[:], b[n:])
		n += 4
	}
	return h, n, nil
}

// HeaderSize returns the size of an unmasked (server) frame header for a
// payload of payloadLen bytes: 2, 4 or 10.
func HeaderSize(payloadLen int) int {
	switch {
	case payloadLen < 126:
		return 2
	case payloadLen <= math.MaxUint16:
		return 4
	}
	return 10
}

// AppendHeader appends an unmasked (server) frame header to dst and returns
// the extended slice. It does not allocate if dst has HeaderSize(payloadLen)
// bytes of spare capacity.
func AppendHeader(dst []byte, op ws.OpCode, fin bool, payloadLen int) []byte {
	b0 := byte(op) & 0x0f
	if fin {
		b0 |= 0x80
	}
	switch {
	case payloadLen < 126:
		return append(dst, b0, byte(payloadLen))
	case payloadLen <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(dst, b0, 126), uint16(payloadLen))
	}
	return binary.BigEndian.AppendUint64(append(dst, b0, 127), uint64(payloadLen))
}
