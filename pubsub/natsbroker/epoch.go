package natsbroker

import (
	"encoding/base64"
	"encoding/binary"
	"time"
)

// The epoch of a cluster topic stream (v1.1, issue 11). Every topic's
// positions in cluster mode are sequence numbers of the one JetStream
// stream, so the stream is what an epoch names: it changes exactly when the
// stream is lost and made again (its sequence restarts). The stream's
// creation time, which JetStream keeps in its state and reports to every
// client (StreamInfo.Created), names it the same way on every node without
// any coordination between them.

// streamEpoch encodes a stream's creation time as an epoch of the wire
// contract: the 8 bytes of its Unix nanoseconds in base64url, 11 characters
// of [A-Za-z0-9_-].
func streamEpoch(created time.Time) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(created.UnixNano()))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// Epoch is the epoch of the stream the node last found in place (v1.1): the
// same on every node of the cluster, "" before the stream was ever ready.
// Safe from any goroutine.
func (b *Broker) Epoch() string {
	b.errMu.Lock()
	defer b.errMu.Unlock()
	return b.epoch
}
