package frames

import "github.com/gobwas/ws"

// AppendFrame appends an unmasked (server) frame carrying payload to dst and
// returns the extended slice. It does not allocate if dst has enough spare
// capacity (HeaderSize(len(payload)) + len(payload)).
func AppendFrame(dst []byte, op ws.OpCode, fin bool, payload []byte) []byte {
	return append(AppendHeader(dst, op, fin, len(payload)), payload...)
}

// Prepared is a whole encoded server frame, built once and then written to
// any number of connections (a push fanned out to every subscriber). It is
// immutable: nobody may modify its bytes after it is created, which is what
// lets many connections queue and write it concurrently without copying.
//
// Build one with NewPrepared, or in place without a second copy of the
// payload:
//
//	b := make([]byte, 0, frames.HeaderSize(n)+n)
//	b = frames.AppendHeader(b, ws.OpText, true, n)
//	b = append(b, ...) // exactly n bytes
//	p := frames.Prepared(b)
type Prepared []byte

// NewPrepared encodes a final (FIN) unmasked frame with opcode op carrying
// payload, with one allocation. The payload is copied.
func NewPrepared(op ws.OpCode, payload []byte) Prepared {
	b := make([]byte, 0, HeaderSize(len(payload))+len(payload))
	return Prepared(AppendFrame(b, op, true, payload))
}

// Bytes returns the encoded frame. The caller must not modify it.
func (p Prepared) Bytes() []byte { return p }
