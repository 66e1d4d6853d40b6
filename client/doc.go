// Package client is a Go client of the wspush wire protocol (docs/protocol.md)
// for backend services that subscribe to topics and publish to them.
//
//	c, err := client.Dial(ctx, "ws://push.internal:8080/ws", client.WithTokenSource(mint))
//	if err != nil { ... }
//	defer c.Close()
//	err = c.Subscribe(ctx, "orders", func(m client.Message) {
//		// m.Topic, m.Seq, m.Epoch, m.Data (the published JSON value)
//	})
//
// # What a Client does on its own
//
//   - Reconnects when the connection ends, waiting an exponential backoff with
//     full jitter between attempts (WithBackoff), except after close 4002 (the
//     server API disconnected this user; see WithReconnectAfterDisconnect) or
//     Close.
//   - Resubscribes every held topic on each new connection. For a topic whose
//     position (epoch, seq) it knows, it asks the server to replay what was
//     missed ("since", protocol v1.1) and reports per topic whether that
//     worked (WithRecoveryHandler): Recovered false means pushes may have been
//     lost and the application must reload that topic's state another way. A
//     v1 server sends no epochs: then no "since" is sent and every
//     resubscription is reported unrecovered.
//   - With a token source (WithTokenSource) fetches a fresh token before each
//     connect, refreshes it on the open connection before its "exp" claim
//     ({"op":"refresh"}), and after a close 4001 (token expired) reconnects at
//     once with a new one.
//
// # Goroutines and the handler contract
//
// A Client runs one supervising goroutine, and per connection one read
// goroutine and one write goroutine; there is no goroutine per subscription.
// The read goroutine decodes every frame and calls the topic's Handler
// itself, so handlers run one at a time, in the order the server sent the
// pushes (seq order within a topic). The recovery, unsubscribe and error
// handlers run on the same goroutine, in order with the pushes: a Recovery
// for a topic is seen before the pushes replayed after it.
//
// A handler must therefore return quickly. While it runs the Client reads
// nothing: pushes queue up in the server, which drops the connection as a
// slow consumer (close 1013) past its -max-buffered, and pings go
// unanswered. Work that takes long belongs on the application's own
// goroutine (hand the Message over a channel). A handler must not call
// Subscribe or Unsubscribe and wait for their answer: the answer is read by
// the goroutine that is running the handler. Message.Data is the handler's
// to keep.
//
// # Publishing and backpressure
//
// Publish queues {"op":"pub"} for the write goroutine. The queue is bounded in
// bytes (WithMaxBuffered), like a browser WebSocket's bufferedAmount: past the
// bound Publish fails at once with ErrBufferFull instead of growing memory.
// Publishes queued while the client is reconnecting are sent once it is
// connected again. The server sends no acknowledgement of a pub: Publish
// returns once the frame was handed to the connection.
//
// # WebSocket library
//
// The client uses github.com/coder/websocket rather than github.com/gobwas/ws,
// which the server uses. gobwas/ws is a toolkit for servers that parse frames
// themselves on event loops; a client built on it would have to implement
// its own frame loop, ping answers, close handshake and fragmentation. coder/
// websocket does all of that correctly behind a context-aware, concurrency-
// safe API (a close handshake with a status code, errors carrying the peer's
// close code), has a single small dependency and is already in this module.
// It also keeps the client independent of the server's frame code, so a bug
// the two would share cannot hide in tests.
package client
