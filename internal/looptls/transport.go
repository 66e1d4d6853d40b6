package looptls

import (
	"net"
	"sync"
	"time"
)

// TLS record layer constants, used only to find record boundaries in the
// input (crypto/tls does all the checking).
const (
	recordHeaderLen = 5            // type, version, length
	maxCiphertext   = 16384 + 2048 // largest record payload crypto/tls accepts (TLS 1.2)

	maxPlaintext = 16384 // largest plaintext record body (RFC 8446 section 5.1)

	recordTypeHandshake = 22

	// noHeader in transport.nout: no record header waiting to be handed over.
	noHeader = recordHeaderLen + 1

	// handshakeInputLimit bounds the ciphertext a client may have waiting
	// for the handshake goroutine: two of the largest records. A client
	// flight is far smaller, and a WebSocket client sends nothing after its
	// Finished but the upgrade request.
	handshakeInputLimit = 2 * (recordHeaderLen + maxCiphertext)
)

// errWouldBlock is what the transport's Read returns once the loop's input
// is used up: a temporary net.Error, which crypto/tls returns from Read
// without recording it as the connection's error.
var errWouldBlock net.Error = wouldBlock{}

type wouldBlock struct{}

func (wouldBlock) Error() string   { return "looptls: no more input yet" }
func (wouldBlock) Timeout() bool   { return false }
func (wouldBlock) Temporary() bool { return true }

// transport is the net.Conn that the tls.Conn reads from and writes to. It
// has two modes:
//
//   - async, while a pool goroutine runs the handshake (hs is set): Read
//     blocks until the loop has fed bytes or the handshake is aborted; Write
//     appends to out and asks the loop to take it. hs.mu guards in, out and
//     the framing state.
//   - sync, once the loop drives the Conn (hs is nil): only the loop calls
//     in, Read returns errWouldBlock when the input is used up. No locking
//     is needed, the switch having happened in a task posted to the loop;
//     the handshake-only state is dropped, so an idle connection does not
//     keep it.
type transport struct {
	hs *handshakeIO

	in  []byte // input not yet read: a copy in async mode, the loop's bytes (valid for one call) in sync mode
	out []byte // ciphertext written by crypto/tls, not yet taken by the loop

	// Record framing (see Read): the input record's header as gathered,
	// the header handed to crypto/tls, and what is left of each.
	hdr      [recordHeaderLen]byte
	nhdr     int // bytes of hdr gathered
	left     int // body bytes of the input record not yet handed over
	outHdr   [recordHeaderLen]byte
	nout     int  // bytes of outHdr handed over; noHeader: none pending
	frag     int  // body bytes of the handed-over record still to hand over
	cutHello bool // plaintext handshake records are cut into helloFragment pieces

	local, remote net.Addr
}

// handshakeIO is the transport's state shared with the handshake goroutine.
type handshakeIO struct {
	mu   sync.Mutex
	cond sync.Cond // broadcast when in grows or err is set
	err  error     // why Read must fail (abort)
	wake func()    // called, outside mu, when out becomes non-empty
}

func newTransport(local, remote net.Addr, wake func()) *transport {
	t := &transport{hs: &handshakeIO{wake: wake}, local: local, remote: remote,
		nout: noHeader, cutHello: true}
	t.hs.cond.L = &t.hs.mu
	return t
}

// Read hands crypto/tls input up to the end of the current TLS record,
// never beyond. crypto/tls reads into its rawInput bytes.Buffer as much as
// fits; if that included the start of the next record, the bytes.Buffer
// would slide or regrow it to twice the size (bytes.Buffer.grow) when the
// next large record arrives. One record at a time keeps rawInput at the size
// of the largest record plus 512 bytes.
//
// The client's plaintext handshake records (its ClientHello, before any
// ChangeCipherSpec) are handed over cut into records of at most
// helloFragment bytes, which RFC 8446 section 5.1 and RFC 5246 section
// 6.2.1 allow and crypto/tls reassembles. Otherwise a ClientHello of 1.5-2
// KiB (post-quantum key shares) would leave rawInput at 2-3 KiB for the
// connection's lifetime; cut, it stays at 576 bytes (see
// docs/tls.md for the measurements).
func (t *transport) Read(p []byte) (int, error) {
	hs := t.hs
	if hs == nil {
		if n := t.fill(p); n > 0 {
			return n, nil
		}
		return 0, errWouldBlock
	}
	hs.mu.Lock()
	defer hs.mu.Unlock()
	for {
		if hs.err != nil {
			return 0, hs.err
		}
		if n := t.fill(p); n > 0 || len(p) == 0 {
			return n, nil
		}
		hs.cond.Wait()
	}
}

// helloFragment is the largest record body the client's plaintext
// handshake records are cut into: with the 5-byte header it fits the
// 576-byte buffer crypto/tls allocates for its first record header read
// (Grow(5+bytes.MinRead), rounded to a size class), so rawInput never grows
// during the ClientHello.
const helloFragment = 512

// fill copies to p the next bytes for crypto/tls, stopping at the end of a
// record (or of a fragment of a cut one). A record header is handed over
// only once it is whole, from out (rewritten when the record is cut).
func (t *transport) fill(p []byte) int {
	n := 0
	for n < len(p) {
		switch {
		case t.nout < recordHeaderLen: // a header to hand over
			k := copy(p[n:], t.outHdr[t.nout:])
			t.nout += k
			n += k
			if t.nout == recordHeaderLen && t.frag == 0 {
				t.endFragment()
				return n
			}
		case t.frag > 0: // the body of the current record or fragment
			k := min(t.frag, len(t.in), len(p)-n)
			if k == 0 {
				return n
			}
			copy(p[n:], t.in[:k])
			t.in, n, t.frag, t.left = t.in[k:], n+k, t.frag-k, t.left-k
			if t.frag == 0 {
				t.endFragment()
				return n
			}
		case t.left > 0: // the next fragment of a cut record
			t.startFragment(min(t.left, helloFragment))
		default: // a new record: gather its header
			k := min(recordHeaderLen-t.nhdr, len(t.in))
			if k == 0 {
				return n
			}
			copy(t.hdr[t.nhdr:], t.in[:k])
			t.in, t.nhdr = t.in[k:], t.nhdr+k
			if t.nhdr < recordHeaderLen {
				return n
			}
			t.nhdr = 0
			t.left = int(t.hdr[3])<<8 | int(t.hdr[4])
			if t.hdr[0] != recordTypeHandshake {
				t.cutHello = false // from ChangeCipherSpec on, records may be encrypted
			}
			body := t.left
			if t.cutHello && t.left > 0 && t.left <= maxPlaintext { // a longer one is crypto/tls's to refuse

				body = min(t.left, helloFragment)
			}
			t.startFragment(body)
		}
	}
	return n
}

// startFragment queues the header of a record of size bytes, taken from the
// current input record.
func (t *transport) startFragment(size int) {
	t.outHdr = t.hdr
	t.outHdr[3], t.outHdr[4] = byte(size>>8), byte(size)
	t.nout = 0
	t.frag = size
}

func (t *transport) endFragment() {
	t.nout = noHeader
}

// Write copies b to the output: crypto/tls writes each record from a
// scratch buffer it reuses at once, while the loop queues what it takes by
// reference.
func (t *transport) Write(b []byte) (int, error) {
	hs := t.hs
	if hs == nil {
		t.out = append(t.out, b...)
		return len(b), nil
	}
	hs.mu.Lock()
	first := len(t.out) == 0
	t.out = append(t.out, b...)
	hs.mu.Unlock()
	if first && hs.wake != nil {
		hs.wake()
	}
	return len(b), nil
}

// feed adds a copy of b to the input of a running handshake. Loop only.
func (t *transport) feed(b []byte) error {
	t.hs.mu.Lock()
	defer t.hs.mu.Unlock()
	if len(t.in)+len(b) > handshakeInputLimit {
		return ErrHandshakeInput
	}
	if len(t.in) == 0 {
		t.in = t.in[:0:0] // start over instead of keeping what was read
	}
	t.in = append(t.in, b...)
	t.hs.cond.Broadcast()
	return nil
}

// abort makes a blocked or later Read of the handshake fail with err.
func (hs *handshakeIO) abort(err error) {
	hs.mu.Lock()
	if hs.err == nil {
		hs.err = err
	}
	hs.cond.Broadcast()
	hs.mu.Unlock()
}

// takeOut returns the output and forgets it. Loop only.
func (t *transport) takeOut() []byte {
	if hs := t.hs; hs != nil {
		hs.mu.Lock()
		defer hs.mu.Unlock()
	}
	b := t.out
	t.out = nil
	return b
}

// toSync switches to loop mode. Called on the loop, in the task the
// handshake goroutine posted after its last use of the tls.Conn.
func (t *transport) toSync() {
	t.hs = nil // a Pool timer still firing holds its own pointer
	t.cutHello = false
	if len(t.in) == 0 {
		t.in = nil
	}
}

// Close is called by crypto/tls only when a handshake context is cancelled,
// which this package never does; the loop owns the socket.
func (t *transport) Close() error { return nil }

func (t *transport) LocalAddr() net.Addr  { return t.local }
func (t *transport) RemoteAddr() net.Addr { return t.remote }

// Deadlines are the loop's business (its timer wheel and the Pool's
// handshake timeout). crypto/tls sets one around close_notify, which cannot
// block here.
func (t *transport) SetDeadline(time.Time) error      { return nil }
func (t *transport) SetReadDeadline(time.Time) error  { return nil }
func (t *transport) SetWriteDeadline(time.Time) error { return nil }
