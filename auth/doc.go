// Package auth decides who may connect to wspush and what a connection may
// subscribe and publish to, from a signed connection token (JWT).
//
// A Verifier is built once from a Config (an HMAC secret, a PEM public key
// and/or a JWKS URL, plus the expected audience and issuer) and is shared by
// every event loop. Verify turns a token into Claims; it never does network
// I/O and never blocks, so it may run on an event loop: JWKS keys are fetched
// and refreshed by background goroutines owned by the Verifier, which Close
// stops. Claims are immutable and answer, cheaply, whether a topic may be
// subscribed (CheckSubscribe) or published to (CheckPublish); the server asks
// once per subscription, never per push.
//
// Every refusal is an *Error carrying a Reason (a short label for metrics
// and for the JSON error bodies) and a human message. No error message ever
// contains the token.
//
// See docs/auth.md for the token format, patterns, personal topics and key
// rotation.
package auth
