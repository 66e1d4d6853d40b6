// Package server is wspush's WebSocket push server: the handshake, the
// per-connection protocol state machine and its JSON commands, running on the
// netpoll event loops, plus the admin HTTP API.
//
// # Concurrency
//
// Everything about one connection (its session: handshake state, frame
// decoder, subscriptions, liveness) is owned by the event loop that accepted
// it and touched only from the netpoll.Handler callbacks and loop tasks.
// What a loop's connections share (the handshake Upgrader and its scratch, the
// (de)compressor, the cluster publish queue) lives in its loopServer, indexed
// by loop ID, and is likewise touched only by its loop. The admin API runs on
// net/http goroutines and reaches connections only through the pubsub Hub,
// which posts tasks to the loops. Server-wide counters are atomics.
package server
