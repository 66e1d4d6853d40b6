package auth

import (
	"net/url"
	"strings"
)

// Where a token is found in a handshake.
const (
	queryParam   = "token"
	bearerScheme = "Bearer"
)

// text is a token source: the server hands over slices of its own
// handshake bytes, tests and tools hand over strings. Results are
// sub-slices of the input whenever no decoding is needed.
type text interface{ ~string | ~[]byte }

// QueryToken returns the value of the token parameter of a request target
// such as "/ws?topics=a&token=<JWT>". It is a ReasonMissing refusal when
// there is none (or it is empty) and ReasonMalformed when it is given twice
// or its percent-encoding is invalid.
func QueryToken[S text](target S) (S, error) {
	var zero, found S
	n := 0
	q := indexByte(target, '?')
	if q < 0 {
		return zero, refuse(ReasonMissing, "no token query parameter")
	}
	rest := target[q+1:]
	for len(rest) > 0 {
		var param S
		if amp := indexByte(rest, '&'); amp >= 0 {
			param, rest = rest[:amp], rest[amp+1:]
		} else {
			param, rest = rest, rest[len(rest):]
		}
		eq := indexByte(param, '=')
		if eq != len(queryParam) || string(param[:eq]) != queryParam {
			continue
		}
		found = param[eq+1:]
		n++
	}
	switch {
	case n > 1:
		return zero, refuse(ReasonMalformed, "token query parameter given more than once")
	case len(found) == 0:
		return zero, refuse(ReasonMissing, "no token query parameter")
	case indexByte(found, '%') < 0:
		return found, nil
	}
	// JWTs are base64url and '.', which need no escaping; decode anyway
	// for clients that escape everything.
	dec, err := url.QueryUnescape(string(found))
	if err != nil {
		return zero, refuse(ReasonMalformed, "token query parameter has invalid percent-encoding")
	}
	return S(dec), nil
}

// BearerToken returns the token of an Authorization header value
// "Bearer <JWT>" (the scheme is case-insensitive, RFC 9110 section 11.1).
// It is a ReasonMissing refusal for an empty value and ReasonMalformed for
// another scheme or an empty credential.
func BearerToken[S text](authorization S) (S, error) {
	var zero S
	v := trimSpace(authorization)
	if len(v) == 0 {
		return zero, refuse(ReasonMissing, "empty Authorization header")
	}
	if !isBearer(v) {
		return zero, refuse(ReasonMalformed, "Authorization header is not a Bearer credential")
	}
	tok := trimSpace(v[len(bearerScheme):])
	if len(tok) == 0 {
		return zero, refuse(ReasonMalformed, "Authorization header has an empty Bearer credential")
	}
	return tok, nil
}

// isBearer reports whether a trimmed Authorization value uses the Bearer
// scheme: the scheme name, then a space or tab, or nothing.
func isBearer[S text](v S) bool {
	n := len(bearerScheme)
	return len(v) >= n && strings.EqualFold(string(v[:n]), bearerScheme) &&
		(len(v) == n || v[n] == ' ' || v[n] == '\t')
}

// RequestToken returns the connection token of a handshake from its request
// target and its Authorization header value (empty when absent). An
// Authorization header of another scheme (Basic added by a proxy, say) is
// not meant for wspush and is ignored. A token in both the query and a
// Bearer header is ReasonMalformed, as the server could not tell which one
// the client meant; none at all is ReasonMissing.
func RequestToken[S text](target, authorization S) (S, error) {
	var zero S
	fromQuery, qerr := QueryToken(target)
	if !isBearer(trimSpace(authorization)) {
		return fromQuery, qerr
	}
	fromHeader, herr := BearerToken(authorization)
	switch {
	case herr != nil:
		return zero, herr
	case qerr == nil:
		return zero, refuse(ReasonMalformed, "token given in both the query and the Authorization header")
	case ReasonOf(qerr) != ReasonMissing:
		return zero, qerr
	}
	return fromHeader, nil
}

func indexByte[S text](s S, c byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return i
		}
	}
	return -1
}

func trimSpace[S text](s S) S {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}
