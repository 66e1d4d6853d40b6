package frames

import (
	"bytes"
	"compress/flate"
	"io"

	"github.com/gobwas/ws"

	"github.com/wspush/wspush/internal/bufpool"
)

// permessage-deflate (RFC 7692) without context takeover in either
// direction: every message is compressed on its own. That is what lets one
// compressed push frame be shared by every subscriber, and what keeps a
// connection free of a 32 KiB window between messages.

// deflateTail is the end of a sync flush, which the sender strips
// (RFC 7692 section 7.2.1).
var deflateTail = []byte{0, 0, 0xff, 0xff}

// inflateTail is what the receiver appends: the stripped tail, then an empty
// final stored block, so a whole message ends the stream with io.EOF and a
// truncated or corrupt one fails.
var inflateTail = []byte{0, 0, 0xff, 0xff, 1, 0, 0, 0xff, 0xff}

// Inflater decompresses messages. It keeps one decompressor for all the
// connections of its owner (an event loop) and is not safe for concurrent use.
type Inflater struct {
	fr  io.ReadCloser
	src tailReader
}

// Inflate decompresses the payload of a compressed message into a buffer from
// pool (nil: a new one). More than limit bytes (0: no limit) fail with
// ErrMessageTooBig, corrupt data with ErrInvalidDeflate. The caller gives the
// buffer back to the pool when done with it.
func (f *Inflater) Inflate(pool *bufpool.Pool, payload []byte, limit int) ([]byte, error) {
	f.src = tailReader{head: payload}
	if f.fr == nil {
		f.fr = flate.NewReader(&f.src)
	} else if err := f.fr.(flate.Resetter).Reset(&f.src, nil); err != nil {
		return nil, err
	}
	out := get(pool, max(4*len(payload), 512))
	for {
		if len(out) == cap(out) {
			grown := append(get(pool, 2*cap(out)), out...)
			put(pool, out)
			out = grown
		}
		n, err := f.fr.Read(out[len(out):cap(out)])
		out = out[:len(out)+n]
		switch {
		case limit > 0 && len(out) > limit:
			put(pool, out)
			return nil, ErrMessageTooBig
		case err == io.EOF:
			return out, nil
		case err != nil:
			put(pool, out)
			return nil, ErrInvalidDeflate
		}
	}
}

// tailReader reads a message's compressed bytes followed by inflateTail,
// without copying them together; flate reads it byte by byte.
type tailReader struct {
	head []byte
	tail int // bytes of inflateTail already read
}

func (r *tailReader) Read(p []byte) (int, error) {
	n := copy(p, r.head)
	r.head = r.head[n:]
	m := copy(p[n:], inflateTail[r.tail:])
	r.tail += m
	if n+m == 0 {
		return 0, io.EOF
	}
	return n + m, nil
}

func (r *tailReader) ReadByte() (byte, error) {
	if len(r.head) > 0 {
		b := r.head[0]
		r.head = r.head[1:]
		return b, nil
	}
	if r.tail < len(inflateTail) {
		r.tail++
		return inflateTail[r.tail-1], nil
	}
	return 0, io.EOF
}

// Deflater compresses messages. One Deflater is not safe for concurrent use;
// its compressor is large (about 1 MiB), so keep one per goroutine or pool
// them.
type Deflater struct {
	fw  *flate.Writer
	buf bytes.Buffer
}

// AppendFrame appends p as a final frame of opcode op, compressed with RSV1
// set when that makes it smaller, else as a plain frame.
func (d *Deflater) AppendFrame(dst []byte, op ws.OpCode, p []byte) []byte {
	d.buf.Reset()
	if d.fw == nil {
		d.fw, _ = flate.NewWriter(&d.buf, flate.BestSpeed) // BestSpeed is a valid level
	} else {
		d.fw.Reset(&d.buf)
	}
	d.fw.Write(p) // writes to a bytes.Buffer cannot fail
	d.fw.Flush()
	z := bytes.TrimSuffix(d.buf.Bytes(), deflateTail)
	if len(z) >= len(p) {
		return AppendFrame(dst, op, true, p)
	}
	start := len(dst)
	dst = AppendHeader(dst, op, true, len(z))
	dst[start] |= 0x40 // RSV1 on the wire
	return append(dst, z...)
}

func get(pool *bufpool.Pool, n int) []byte {
	if pool == nil {
		return make([]byte, 0, n)
	}
	return pool.Get(n)
}

func put(pool *bufpool.Pool, b []byte) {
	if pool != nil {
		pool.Put(b)
	}
}
