package server

import (
	"github.com/gobwas/ws"

	"github.com/wspush/wspush/frames"
)

// echoCloseCode is the code the server answers a client's close frame with.
// RFC 6455 section 5.5.1 has the endpoint echo the status it received, but a
// server must not send every code a client may: 1010 (the client expected an
// extension) is for clients alone, and is answered 1000. The Decoder has
// already failed close frames with codes no one may send (1005, 1006, 1015,
// the unassigned ones) with 1002, so they never reach here.
func echoCloseCode(code ws.StatusCode) ws.StatusCode {
	switch code {
	case ws.StatusMandatoryExt, ws.StatusNoStatusRcvd, ws.StatusAbnormalClosure, ws.StatusTLSHandshake:
		return ws.StatusNormalClosure
	}
	if !frames.ValidCloseCode(code) {
		return ws.StatusProtocolError // not reached through the Decoder: the rule in full
	}
	return code
}
