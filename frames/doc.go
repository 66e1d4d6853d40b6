// Package frames encodes and decodes RFC 6455 WebSocket frames for the server
// side of a connection, incrementally and without copying or allocating on the
// common path.
//
// The receive side is a Decoder: the caller reads bytes from the socket into
// its own buffer and hands everything not yet consumed to Decoder.Next, which
// consumes whole frames only, unmasks payloads in place, enforces the protocol
// rules of RFC 6455 sections 5 and 7 and returns complete messages. A message
// that arrived as a single frame is returned as a sub-slice of the caller's
// buffer; only fragmented messages are copied, into a buffer taken from the
// owning event loop's bufpool.Pool. Violations are returned as *CloseError
// values carrying the close code to send.
//
// The send side is a set of Append functions that build unmasked server frames
// into a caller's buffer, and Prepared, an encoded frame that is built once
// and written to any number of connections.
//
// Concurrency: a Decoder is owned by one goroutine, the event loop of its
// connection, as is the bufpool.Pool it uses. The Append functions and
// ParseHeader, ParseClose and UTF8 are plain functions of their arguments. A
// Prepared frame is immutable and may be shared by any number of goroutines.
package frames
