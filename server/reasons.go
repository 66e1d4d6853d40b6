package server

// failureReason is the reason label of wspush_handshake_failures_total: why a
// request on the public port was refused or failed before an upgrade. The
// zero value, "", means no failure (a 101 or a 200).
type failureReason string

// The failure reasons, declared once: the code sets these constants, and the
// metric's label values are built from handshakeFailureReasons below. The
// names are part of the metrics contract (docs/protocol.md).
const (
	reasonBadRequest     failureReason = "bad_request"      // malformed request or handshake (400, 505)
	reasonOrigin         failureReason = "origin"           // Origin not allowed (403)
	reasonNotFound       failureReason = "not_found"        // unknown path (404)
	reasonMethod         failureReason = "method"           // a method the path does not take (405)
	reasonNotUpgrade     failureReason = "not_upgrade"      // a WebSocket path without Upgrade (426)
	reasonHeaderTooLarge failureReason = "header_too_large" // over -max-header (431)
	reasonTimeout        failureReason = "timeout"          // over -handshake-timeout (408)
	reasonMaxConns       failureReason = "max_conns"        // -max-conns reached (503)
	reasonShutdown       failureReason = "shutdown"         // the server is shutting down (503)
	reasonBadTopic       failureReason = "bad_topic"        // an invalid ?topics= or more than -max-subs (400)
	reasonEOF            failureReason = "eof"              // the peer left before its request was whole

	reasonMaxConnsPerIP failureReason = "max_conns_per_ip" // -max-conns-per-ip reached (429), counted from accept

	reasonAuth         failureReason = "auth"               // refused by authorization (401, 403; wspush_auth_refusals_total says why)
	reasonMaxUserConns failureReason = "max_conns_per_user" // -max-conns-per-user reached (429)
)

// handshakeFailureReasons are every failureReason: the label values created
// up front, so every series exists from the first scrape.
var handshakeFailureReasons = []failureReason{
	reasonBadRequest, reasonOrigin, reasonNotFound, reasonMethod, reasonNotUpgrade, reasonHeaderTooLarge,
	reasonTimeout, reasonMaxConns, reasonShutdown, reasonBadTopic, reasonEOF,
	reasonMaxConnsPerIP,
	reasonAuth, reasonMaxUserConns,
}

// The answers that more than one place gives.
const (
	msgShuttingDown = "server is shutting down" // body of a 503 during shutdown
	msgTooManyConns = "too many connections"    // body of a 503 at -max-conns

	msgMalformedRequestLine = "malformed request line" // body of a 400 for a request line we cannot read
)

// Close frame reasons the server sends with its own close codes.
const (
	closeReasonShutdown = "server shutdown" // 1001 on shutdown
	closeReasonIdle     = "idle timeout"    // 1001 after -idle-timeout
	closeReasonSlow     = "slow consumer"   // 1013 past -max-buffered
	closeReasonInternal = "internal error"  // 1011, for an error that is not a CloseError
)
