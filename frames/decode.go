package frames

import (
	"math"

	"github.com/gobwas/ws"

	"github.com/wspush/wspush/internal/bufpool"
)

// Decoder holds the receive state of one server-side connection. It is owned
// by the connection's event loop and is not safe for concurrent use.
//
// The caller owns the byte stream: it passes Next everything received and not
// yet consumed, and Next consumes whole frames only. Next unmasks payloads in
// place, so the caller must hand the unconsumed bytes back exactly as Next
// left them (moving them within or between buffers is fine).
//
// The zero value is ready to use: no message size limit, no pool.
type Decoder struct {
	// MaxMessage is the largest message, in payload bytes, that is accepted;
	// a larger one fails with ErrMessageTooBig (1009) as soon as its size is
	// known, before it is buffered. 0 means no limit, which lets a peer make
	// the caller buffer up to 2^63 bytes: servers should set it.
	MaxMessage int

	// Pool supplies the reassembly buffers of fragmented messages and takes
	// them back. It must be the pool of the event loop that owns the
	// Decoder. Nil means buffers are allocated with make and left to the
	// garbage collector.
	Pool *bufpool.Pool

	// Deflate is set when permessage-deflate (RFC 7692) was negotiated: the
	// first frame of a data message may then carry RSV1, and such a message
	// is returned with Compressed set, its UTF-8 left for the caller to check
	// once it is inflated.
	Deflate bool

	// The small fields sit together, after Deflate: a Decoder is in every
	// connection's session.
	op         ws.OpCode   // opcode of the fragmented message in progress, 0 if none
	compressed bool        // the message in progress has RSV1
	lent       bool        // frag.buf was returned as a Payload and goes back at the next call
	text       UTF8        // UTF-8 state of the text message in progress
	failed     uint8       // the first error, final: 1 + its index in decodeErrors; 0 for none
	frag       *reassembly // its reassembly buffer; nil until a message is first fragmented

	// done counts the payload bytes of the frame at the start of the caller's
	// buffer that are already unmasked and validated, so that a large frame
	// arriving in many reads costs O(size) in total.
	done int
	need int
}

// reassembly holds a Decoder's reassembly buffer (from Pool), behind a
// pointer: most connections never send a fragmented message, and a slice
// header in every Decoder would cost each session 16 bytes more. It is
// allocated when a message is first fragmented and kept until Release.
type reassembly struct {
	buf []byte
}

// buffered is the reassembly buffer; nil when none.
func (d *Decoder) buffered() []byte {
	if d.frag == nil {
		return nil
	}
	return d.frag.buf
}

// Message is a complete message or control frame returned by Next.
type Message struct {
	// Op is ws.OpText, ws.OpBinary, ws.OpPing, ws.OpPong or ws.OpClose, or 0
	// when no complete message is available yet.
	Op ws.OpCode

	// Payload is the unmasked payload. For a message that was a single frame
	// (and for every control frame) it is a sub-slice of the buffer passed
	// to Next; for a fragmented message it is the Decoder's reassembly
	// buffer. Either way it is valid only until the next call to Next or
	// Release, and until the caller reuses its buffer: copy what must be
	// kept. A close payload has already been validated; use ParseClose.
	Payload []byte

	// Compressed reports a permessage-deflate message: Payload is the
	// compressed data, to be given to an Inflater (see Decoder.Deflate).
	Compressed bool
}

// Next consumes frames from the start of b until it has a complete data
// message or control frame, and returns it with the number of bytes consumed.
//
// Control frames are returned as soon as they are complete, also between the
// fragments of a data message, which stays in progress.
//
// If b ends before the next message is complete, Next returns Op 0, the bytes
// consumed (fragments that were buffered), and a nil error. The caller keeps
// b[n:] and calls Next again with b[n:] followed by newly received bytes. The
// prefix of the incomplete frame is already unmasked and, for text, validated,
// so invalid UTF-8 is reported before the rest of the frame arrives.
//
// Next may be called with an empty b. It must be called with the pending
// frame's bytes at the start of b, at least as many as last time: it panics if
// bytes it already unmasked are missing, as that is a bug in the caller.
//
// Errors are always *CloseError, and final: after one, Next returns the same
// error again and the connection should be closed with its code. With an
// error, n counts the bytes consumed before the offending frame.
func (d *Decoder) Next(b []byte) (m Message, n int, err error) {
	if d.failed != 0 {
		return Message{}, 0, decodeErrors[d.failed-1]
	}
	if d.lent {
		d.put(d.frag.buf)
		d.frag.buf, d.lent = nil, false
	}
	for {
		h, hn, err := ParseHeader(b[n:])
		if err == ErrShort {
			d.need = headerSize(b[n:])
			return Message{}, n, nil
		}
		if err != nil {
			return d.fail(n, err.(*CloseError))
		}
		if ce := d.check(h); ce != nil {
			return d.fail(n, ce)
		}
		length := int(h.Length) // check made sure it fits
		if h.OpCode == ws.OpText || h.OpCode == ws.OpBinary {
			d.compressed = h.Rsv != 0
		}
		// Compressed text is checked by the caller after inflating it.
		text := !d.compressed && (h.OpCode == ws.OpText || h.OpCode == ws.OpContinuation && d.op == ws.OpText)
		p := b[n+hn:]
		if len(p) < length {
			if ce := d.advance(h, p, text); ce != nil {
				return d.fail(n, ce)
			}
			d.need = hn + length
			return Message{}, n, nil
		}
		p = p[:length]
		if ce := d.advance(h, p, text); ce != nil {
			return d.fail(n, ce)
		}
		d.done = 0

		if h.OpCode.IsControl() {
			if h.OpCode == ws.OpClose {
				if ce := checkClose(p); ce != nil {
					return d.fail(n, ce)
				}
			}
			return Message{Op: h.OpCode, Payload: p}, n + hn + length, nil
		}
		if text && h.Fin && !d.text.Complete() {
			return d.fail(n, ErrInvalidUTF8)
		}
		n += hn + length
		if h.Fin && h.OpCode != ws.OpContinuation {
			// The common case: a whole message in one frame, zero copy.
			d.text.Reset()
			return Message{Op: h.OpCode, Payload: p, Compressed: d.compressed}, n, nil
		}
		if h.OpCode != ws.OpContinuation {
			d.op = h.OpCode
		}
		d.appendBuf(p)
		if h.Fin {
			m = Message{Op: d.op, Payload: d.frag.buf, Compressed: d.compressed}
			d.op, d.lent = 0, true
			d.text.Reset()
			return m, n, nil
		}
	}
}

// Need reports, after Next returned no message, how many bytes b[n:] must hold
// for Next to make progress: the whole pending frame (header and payload) once
// its header is known, else the part of the header known to be missing
// (at least 2, at most 14). It is exact enough to size the buffer the next
// read goes into, and never more than needed, so a caller may also wait for
// that many bytes before calling Next again (at the cost of failing fast on
// bad UTF-8 in the part already received).
func (d *Decoder) Need() int {
	if d.need == 0 {
		return 2
	}
	return d.need
}

// Buffered is the number of payload bytes of the fragmented message in
// progress held in the reassembly buffer (0 when none).
func (d *Decoder) Buffered() int { return len(d.buffered()) }

// Release gives the reassembly buffer back to the pool and resets the
// Decoder, keeping MaxMessage and Pool. Call it when the connection closes.
// A Payload returned earlier must not be used afterwards.
func (d *Decoder) Release() {
	d.put(d.buffered())
	*d = Decoder{MaxMessage: d.MaxMessage, Pool: d.Pool, Deflate: d.Deflate}
}

// check applies the rules that depend on the header alone, so that they fail
// before any payload is waited for.
func (d *Decoder) check(h ws.Header) *CloseError {
	switch {
	case h.Rsv == rsv1 && d.Deflate && (h.OpCode == ws.OpText || h.OpCode == ws.OpBinary):
		// permessage-deflate marks the first frame of a compressed message.
	case h.Rsv != 0:
		return ErrProtocolRSV
	}
	switch {
	case h.OpCode.IsReserved():
		return ErrProtocolOpcode
	case !h.Masked:
		return ErrProtocolUnmasked
	case h.OpCode.IsControl():
		if !h.Fin {
			return ErrProtocolControlFragmented
		}
		if h.Length > ws.MaxControlFramePayloadSize {
			return ErrProtocolControlTooLong
		}
		return nil
	case h.OpCode == ws.OpContinuation:
		if d.op == 0 {
			return ErrProtocolContinuation
		}
	case d.op != 0:
		return ErrProtocolNotContinuation
	}
	size := h.Length + int64(len(d.buffered()))
	// Need() and the caller's buffer arithmetic must not overflow an int.
	if size > math.MaxInt-ws.MaxHeaderSize || d.MaxMessage > 0 && size > int64(d.MaxMessage) {
		return ErrMessageTooBig
	}
	return nil
}

// advance unmasks and validates the part of payload p that arrived since the
// last call.
func (d *Decoder) advance(h ws.Header, p []byte, text bool) *CloseError {
	if d.done > len(p) {
		panic("frames: Next called with a buffer that lost bytes of a pending frame")
	}
	q := p[d.done:]
	ws.Cipher(q, h.Mask, d.done)
	d.done = len(p)
	if text && !d.text.Write(q) {
		return ErrInvalidUTF8
	}
	return nil
}

// appendBuf adds a fragment to the reassembly buffer, growing it by taking a
// larger buffer from the pool and giving the old one back. It grows with the
// fragments received (doubling), never with a size a header declares.
func (d *Decoder) appendBuf(p []byte) {
	if d.frag == nil {
		d.frag = new(reassembly)
	}
	f := d.frag
	want := len(f.buf) + len(p)
	if want > cap(f.buf) || f.buf == nil {
		size := max(want, 2*cap(f.buf))
		if d.MaxMessage > 0 && size > d.MaxMessage {
			size = max(want, d.MaxMessage)
		}
		b := append(d.get(size), f.buf...)
		d.put(f.buf)
		f.buf = b
	}
	f.buf = append(f.buf, p...)
}

func (d *Decoder) get(n int) []byte {
	if d.Pool == nil {
		return make([]byte, 0, n)
	}
	return d.Pool.Get(n)
}

func (d *Decoder) put(b []byte) {
	if d.Pool != nil && b != nil {
		d.Pool.Put(b)
	}
}

func (d *Decoder) fail(n int, err *CloseError) (Message, int, error) {
	d.failed = failure(err)
	return Message{}, n, err
}

// rsv1 is the RSV1 bit in ws.Header.Rsv.
const rsv1 = 1 << 2

// headerSize returns the size of the header at the start of b as far as b
// tells: 2 until the first two bytes are there.
func headerSize(b []byte) int {
	if len(b) < 2 {
		return 2
	}
	n := 2
	switch b[1] & 0x7f {
	case 126:
		n = 4
	case 127:
		n = 10
	}
	if b[1]&0x80 != 0 {
		n += 4
	}
	return n
}
