package frames

import (
	"errors"

	"github.com/gobwas/ws"
)

// ErrShort is returned by ParseHeader when b does not hold a whole header.
// It is not a protocol error: more bytes are needed.
var ErrShort = errors.New("frames: short frame header")

// CloseError is a violation of the protocol by the peer. Code is the status
// to send in the close frame that answers it, Reason a short ASCII text fit
// for the close frame's reason.
//
// Two CloseErrors match under errors.Is when their codes are equal, so
// errors.Is(err, ErrProtocol) holds for every 1002 error.
type CloseError struct {
	Code   ws.StatusCode
	Reason string
}

func (e *CloseError) Error() string { return "websocket: " + e.Reason }

// Is reports whether target is a *CloseError with the same code.
func (e *CloseError) Is(target error) bool {
	t, ok := target.(*CloseError)
	return ok && t.Code == e.Code
}

// The errors the Decoder and the Inflater return. They are package-level values so that the
// error path does not allocate; callers must not modify them.
var (
	// ErrProtocol (1002) is the generic protocol error; every 1002 error
	// below matches it under errors.Is.
	ErrProtocol = &CloseError{ws.StatusProtocolError, "protocol error"}

	// ErrProtocolLength (1002): a 64-bit length with its most significant
	// bit set, or a length not in its shortest encoding.
	ErrProtocolLength = &CloseError{ws.StatusProtocolError, "invalid payload length encoding"}
	// ErrProtocolRSV (1002): an RSV bit set; no extension is negotiated.
	ErrProtocolRSV = &CloseError{ws.StatusProtocolError, "reserved bits set"}
	// ErrProtocolOpcode (1002): a reserved opcode (0x3-0x7, 0xB-0xF).
	ErrProtocolOpcode = &CloseError{ws.StatusProtocolError, "reserved opcode"}
	// ErrProtocolUnmasked (1002): a client frame without a mask.
	ErrProtocolUnmasked = &CloseError{ws.StatusProtocolError, "unmasked client frame"}
	// ErrProtocolControlFragmented (1002): a control frame without FIN.
	ErrProtocolControlFragmented = &CloseError{ws.StatusProtocolError, "fragmented control frame"}
	// ErrProtocolControlTooLong (1002): a control frame payload over 125 bytes.
	ErrProtocolControlTooLong = &CloseError{ws.StatusProtocolError, "control frame too long"}
	// ErrProtocolContinuation (1002): a continuation frame with no fragmented
	// message in progress.
	ErrProtocolContinuation = &CloseError{ws.StatusProtocolError, "unexpected continuation frame"}
	// ErrProtocolNotContinuation (1002): a text or binary frame while a
	// fragmented message is in progress.
	ErrProtocolNotContinuation = &CloseError{ws.StatusProtocolError, "expected continuation frame"}
	// ErrProtocolCloseLength (1002): a close frame with a 1-byte payload.
	ErrProtocolCloseLength = &CloseError{ws.StatusProtocolError, "invalid close frame payload"}
	// ErrProtocolCloseCode (1002): a close status code that may not be
	// received (see ValidCloseCode).
	ErrProtocolCloseCode = &CloseError{ws.StatusProtocolError, "invalid close code"}

	// ErrInvalidUTF8 (1007): a text message or close reason that is not
	// valid UTF-8.
	ErrInvalidUTF8 = &CloseError{ws.StatusInvalidFramePayloadData, "invalid UTF-8"}
	// ErrInvalidDeflate (1007): a compressed message (permessage-deflate)
	// that does not inflate; returned by Inflater.Inflate.
	ErrInvalidDeflate = &CloseError{ws.StatusInvalidFramePayloadData, "invalid compressed data"}

	// ErrMessageTooBig (1009): a message larger than Decoder.MaxMessage.
	ErrMessageTooBig = &CloseError{ws.StatusMessageTooBig, "message too big"}
)

// decodeErrors are the errors a Decoder can return: it keeps the first as a
// byte among its small fields (Decoder.failed), a pointer less in every
// connection's session.
var decodeErrors = [...]*CloseError{
	ErrProtocol, ErrProtocolLength, ErrProtocolRSV, ErrProtocolOpcode, ErrProtocolUnmasked,
	ErrProtocolControlFragmented, ErrProtocolControlTooLong, ErrProtocolContinuation,
	ErrProtocolNotContinuation, ErrProtocolCloseLength, ErrProtocolCloseCode,
	ErrInvalidUTF8, ErrInvalidDeflate, ErrMessageTooBig,
}

// failure is err's Decoder.failed: 1 + its index in decodeErrors. An error
// not in the table (none is) would be kept as ErrProtocol, still a 1002.
func failure(err *CloseError) uint8 {
	for i, e := range decodeErrors {
		if e == err {
			return uint8(i + 1)
		}
	}
	return 1
}
