package frames

import (
	"encoding/binary"

	"github.com/gobwas/ws"
)

// ValidCloseCode reports whether a peer may send code in a close frame
// (RFC 6455 section 7.4): the defined codes 1000-1003 and 1007-1014, and the
// registered and private ranges 3000-4999. 1004, 1005, 1006 and 1015 are
// reserved and never sent; the rest of 1000-2999 is unassigned.
func ValidCloseCode(code ws.StatusCode) bool {
	switch {
	case code >= 1000 && code <= 1003:
		return true
	case code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}

// ParseClose splits a close frame payload into its status code and reason.
// A payload shorter than 2 bytes carries no status: it returns
// ws.StatusNoStatusRcvd (1005) and a nil reason. The reason aliases payload.
// ParseClose does not validate; the Decoder has already done so for the
// close frames it returns.
func ParseClose(payload []byte) (code ws.StatusCode, reason []byte) {
	if len(payload) < 2 {
		return ws.StatusNoStatusRcvd, nil
	}
	return ws.StatusCode(binary.BigEndian.Uint16(payload)), payload[2:]
}

// checkClose validates a received close frame payload.
func checkClose(p []byte) *CloseError {
	switch {
	case len(p) == 0:
		return nil
	case len(p) == 1:
		return ErrProtocolCloseLength
	}
	code, reason := ParseClose(p)
	if !ValidCloseCode(code) {
		return ErrProtocolCloseCode
	}
	if !Valid(reason) {
		return ErrInvalidUTF8
	}
	return nil
}

// AppendClose appends a whole close frame with the given status and reason to
// dst. Code 0 gives a close frame with an empty payload (no status). A reason
// that does not fit in a control frame is cut to 123 bytes, at a code point
// boundary so that it stays valid UTF-8 if it was.
func AppendClose(dst []byte, code ws.StatusCode, reason string) []byte {
	if code == 0 {
		return AppendHeader(dst, ws.OpClose, true, 0)
	}
	const max = ws.MaxControlFramePayloadSize - 2
	if len(reason) > max {
		n := max
		// Back up over continuation bytes (10xxxxxx) to the start of the
		// code point that straddles the limit.
		for n > 0 && reason[n]&0xc0 == 0x80 {
			n--
		}
		reason = reason[:n]
	}
	dst = AppendHeader(dst, ws.OpClose, true, 2+len(reason))
	dst = binary.BigEndian.AppendUint16(dst, uint16(code))
	return append(dst, reason...)
}
