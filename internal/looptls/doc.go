// Package looptls is TLS for the event loops: a server-side crypto/tls
// connection that a loop drives without ever blocking, a bounded pool of
// goroutines for the handshakes, and a certificate store that reloads its
// files.
//
// crypto/tls is built for a goroutine that blocks in Read and Write. Two of
// its properties make it usable from a loop anyway:
//
//   - Once the handshake is done, a read error that is a net.Error with
//     Temporary() true is returned without being recorded (crypto/tls
//     conn.go, readRecordOrCCS: both readFromUntil calls are followed by
//     "if e, ok := err.(net.Error); !ok || !e.Temporary() {
//     c.in.setErrorLocked(err) }"). So the loop can hand the Conn the bytes
//     it read, let crypto/tls decrypt the whole records among them, and
//     have "no more input yet" come back as a temporary error it retries on
//     the next read.
//   - Writes go to the underlying net.Conn synchronously, one record at a
//     time, from a scratch buffer crypto/tls reuses (outBufPool), so an
//     adapter whose Write copies the record into an output buffer gives the
//     loop the ciphertext to queue on its socket.
//
// The handshake cannot be driven that way: its state lives on the stack of
// one call, and any error it returns is stored in handshakeErr and returned
// again by every later call (conn.go, handshakeContext). So each handshake
// runs on a goroutine of its own, bounded by a Pool, reading from an
// adapter that blocks until the loop feeds it; when it ends the loop is told
// and drives the Conn itself from then on. See docs/tls.md.
package looptls
