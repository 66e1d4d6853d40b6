package auth

import (
	"errors"
	"net/http"
)

// Reason is the label of a refusal: the value of the "error" field of the
// HTTP 401/403 body and of {"op":"error"} answers, and the reason label of
// the wspush_auth_refusals_total metric.
type Reason string

// Token refusals (HTTP 401 at the handshake).
const (
	// ReasonMissing: auth is on, no token was given and anonymous
	// connections are not allowed.
	ReasonMissing Reason = "missing"
	// ReasonMalformed: not a JWT (segments, base64url, JSON of the expected
	// types), or a token given twice, or an Authorization header that is
	// not a Bearer credential.
	ReasonMalformed Reason = "malformed"
	// ReasonBadSignature: the signature does not verify with the key.
	ReasonBadSignature Reason = "bad_signature"
	// ReasonExpired: exp is in the past.
	ReasonExpired Reason = "expired"
	// ReasonNotYetValid: nbf or iat is in the future.
	ReasonNotYetValid Reason = "not_yet_valid"
	// ReasonBadAudience: aud does not contain the configured audience.
	ReasonBadAudience Reason = "bad_audience"
	// ReasonBadIssuer: iss is not the configured issuer.
	ReasonBadIssuer Reason = "bad_issuer"
	// ReasonUnknownKey: the kid is not in the JWKS (a background refresh
	// has been asked for), the JWKS is not loaded yet, or the token has no
	// kid while only a JWKS is configured.
	ReasonUnknownKey Reason = "unknown_key"
	// ReasonBadAlgorithm: alg is none, unknown, or not one of the
	// configured key's algorithms (this is how HS256 signed with a public
	// key is refused).
	ReasonBadAlgorithm Reason = "bad_algorithm"
	// ReasonMissingClaim: sub or exp is absent (or sub is empty).
	ReasonMissingClaim Reason = "missing_claim"
	// ReasonBadClaim: topics or publish holds an invalid pattern.
	ReasonBadClaim Reason = "bad_claim"
)

// Permission refusals (HTTP 403 at the handshake, {"op":"error"} answers to
// commands).
const (
	// ReasonForbidden: no pattern of the token allows the topic.
	ReasonForbidden Reason = "forbidden"
	// ReasonNotOwner: the topic is the personal topic of another user.
	ReasonNotOwner Reason = "not_owner"
	// ReasonSubMismatch: a refresh token names another sub than the
	// connection's (or the connection is anonymous).
	ReasonSubMismatch Reason = "sub_mismatch"
)

// Reasons lists every Reason, so that a metric can be created with all its
// label values at zero.
func Reasons() []Reason {
	return []Reason{
		ReasonMissing, ReasonMalformed, ReasonBadSignature, ReasonExpired,
		ReasonNotYetValid, ReasonBadAudience, ReasonBadIssuer, ReasonUnknownKey,
		ReasonBadAlgorithm, ReasonMissingClaim, ReasonBadClaim,
		ReasonForbidden, ReasonNotOwner, ReasonSubMismatch,
	}
}

// Status is the HTTP status a handshake refused for this reason is
// answered with: 403 for permissions, 401 for everything about the token.
func (r Reason) Status() int {
	switch r {
	case ReasonForbidden, ReasonNotOwner:
		return http.StatusForbidden
	default:
		return http.StatusUnauthorized
	}
}

// Error is a refusal. Message is for logs and people; it never contains
// the token, only facts about it the server may log (which claim, which
// algorithm, when it expired).
type Error struct {
	Reason  Reason
	Message string
}

func (e *Error) Error() string {
	return "auth: " + string(e.Reason) + ": " + e.Message
}

// refuse builds a refusal.
func refuse(r Reason, msg string) *Error {
	return &Error{Reason: r, Message: msg}
}

// ReasonOf returns the Reason of a refusal anywhere in err's chain, or ""
// when err is nil or not a refusal.
func ReasonOf(err error) Reason {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}
