package client

import (
	"errors"
	"fmt"
)

// Close codes the server sends (docs/protocol.md). The Client decides on them
// whether and how to reconnect.
const (
	CloseNormal        = 1000 // the answer to our own close
	CloseGoingAway     = 1001 // server shutdown, or the client was silent past -idle-timeout
	CloseProtocolError = 1002
	CloseTooBig        = 1009 // a message larger than the server's -max-message
	CloseSlowConsumer  = 1013 // more than -max-buffered bytes were queued for this client
	CloseTokenExpired  = 4001 // (v1.1) the token's exp passed without a refresh
	CloseDisconnected  = 4002 // (v1.1) the server API disconnected this user
	CloseMissed        = 4003 // (v1.1, cluster) pushes missed the client's node: reconnect and resubscribe with since
)

var (
	// ErrClosed is returned by calls on a Client after Close, and by calls
	// that were waiting when it closed.
	ErrClosed = errors.New("wspush client: closed")
	// ErrBufferFull is returned by Publish when the message would take the
	// outgoing queue past WithMaxBuffered bytes.
	ErrBufferFull = errors.New("wspush client: outgoing buffer full")
	// ErrAlreadySubscribed is returned by Subscribe for a topic the Client
	// holds already: one handler per topic.
	ErrAlreadySubscribed = errors.New("wspush client: already subscribed")
	// ErrInvalidTopic is returned for a topic name the server would refuse:
	// 1 to 200 bytes of printable ASCII without spaces.
	ErrInvalidTopic = errors.New("wspush client: invalid topic name")
	// ErrInvalidData is returned by Publish for data that is not one JSON value.
	ErrInvalidData = errors.New("wspush client: data is not valid JSON")
	// ErrConnectionLost is returned by a Publish whose frame was being written
	// when the connection broke: it may or may not have reached the server.
	ErrConnectionLost = errors.New("wspush client: connection lost")
)

// CloseError is how a connection ended when the server closed it with a
// close frame: errors.As(err, &ce) on what the disconnect handler or Err
// reports.
type CloseError struct {
	Code   int    // the close code, e.g. CloseSlowConsumer
	Reason string // the close frame's reason text
}

func (e *CloseError) Error() string {
	if e.Reason == "" {
		return fmt.Sprintf("wspush: connection closed by the server with code %d", e.Code)
	}
	return fmt.Sprintf("wspush: connection closed by the server with code %d (%s)", e.Code, e.Reason)
}

// HandshakeError is a connection attempt the server answered with an HTTP
// status instead of 101: 401 for a refused token, 403 for a topic or origin
// not allowed, 503 when it is full or shutting down.
type HandshakeError struct {
	StatusCode int
	Body       string // the answer's body, usually {"error":"<reason>"}
	Err        error  // the WebSocket library's error
}

func (e *HandshakeError) Error() string {
	return fmt.Sprintf("wspush: handshake answered %d %s: %v", e.StatusCode, e.Body, e.Err)
}

func (e *HandshakeError) Unwrap() error { return e.Err }

// ServerError is an {"op":"error"} answer from the server. The Client
// attributes it to the command it answers: Subscribe returns it; an error
// answering a Publish (which has no acknowledgement) or a token refresh goes
// to the error handler (WithErrorHandler).
type ServerError struct {
	Op      string // the command it answers ("sub", "pub", "refresh"), "" when it cannot be told
	Topic   string // the topic, when the answer or the command names one
	Message string // the server's reason
}

func (e *ServerError) Error() string {
	switch {
	case e.Op != "" && e.Topic != "":
		return fmt.Sprintf("wspush: server refused %s %q: %s", e.Op, e.Topic, e.Message)
	case e.Op != "":
		return fmt.Sprintf("wspush: server refused %s: %s", e.Op, e.Message)
	}
	return "wspush: server error: " + e.Message
}

// ServerUnsubscribeError is reported to the error handler when the server ended
// a subscription the Client did not ask to end (v1.1: a refreshed token no
// longer allows it, or POST /unsubscribe on the server API). The topic is no
// longer held: its handler is not called again.
type ServerUnsubscribeError struct {
	Topic string
}

func (e *ServerUnsubscribeError) Error() string {
	return fmt.Sprintf("wspush: the server ended the subscription to %q", e.Topic)
}
