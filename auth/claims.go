package auth

import (
	"strings"
	"time"
)

// personalMark separates a personal topic's name from its owner:
// "inbox#42" belongs to the user whose sub is "42".
const personalMark = '#'

// Claims is what a verified token (or an anonymous connection) may do. The
// server keeps one per connection, replaces it on refresh and asks it at
// subscribe and publish time. It is immutable and safe for concurrent use.
type Claims struct {
	// Subject is the user id (sub); "" for an anonymous connection.
	Subject string
	// Anonymous is true for a connection without a token.
	Anonymous bool
	// ExpiresAt is exp: the server closes the connection with code 4001
	// then unless it was refreshed. Zero for an anonymous connection,
	// which never expires.
	ExpiresAt time.Time
	// IssuedAt is iat, zero when the token has none.
	IssuedAt time.Time

	// grants are the patterns, shared with the connections whose tokens
	// grant the same (grants.go); nil allows nothing.
	grants *grants
}

// personalOwner returns the owner of a personal topic: the rest after its
// first '#'. ok is false for a topic without '#', which is not personal.
// The first '#' is used so that any sub, even one holding '#', can own
// personal topics, and no topic holding '#' is ever public.
func personalOwner(topic string) (owner string, ok bool) {
	i := strings.IndexByte(topic, personalMark)
	if i < 0 {
		return "", false
	}
	return topic[i+1:], true
}

// CheckSubscribe returns nil when the connection may subscribe to topic,
// else a refusal with ReasonNotOwner (the personal topic of another user)
// or ReasonForbidden (no topics pattern allows it). A personal topic of
// the connection's own user needs no pattern; one of another user is
// refused whatever the patterns say, and anonymous connections have no
// personal topics.
func (c *Claims) CheckSubscribe(topic string) error {
	if owner, ok := personalOwner(topic); ok {
		if !c.Anonymous && owner == c.Subject {
			return nil
		}
		return refuse(ReasonNotOwner, "personal topic of another user")
	}
	if c.grants.topics().Match(topic) {
		return nil
	}
	return refuse(ReasonForbidden, "no topics pattern of the token allows this topic")
}

// CheckPublish returns nil when the connection may publish to topic (with
// {"op":"pub"}, which the server allows only with -client-publish). Publish
// always needs a publish pattern, for personal topics too; the personal
// topic of another user is never publishable by a client, and anonymous
// connections publish nothing.
func (c *Claims) CheckPublish(topic string) error {
	if owner, ok := personalOwner(topic); ok && (c.Anonymous || owner != c.Subject) {
		return refuse(ReasonNotOwner, "personal topic of another user")
	}
	if c.grants.publishing().Match(topic) {
		return nil
	}
	return refuse(ReasonForbidden, "no publish pattern of the token allows this topic")
}

// CheckRefresh returns nil when next, the claims of a refresh token, may
// replace c on the same connection: both must name the same sub. An
// anonymous connection cannot be refreshed into a user's; it reconnects
// with a token instead.
func (c *Claims) CheckRefresh(next *Claims) error {
	if c.Anonymous || next.Anonymous || c.Subject != next.Subject {
		return refuse(ReasonSubMismatch, "the refresh token names another sub than the connection's token")
	}
	return nil
}

// Subscribe returns the compiled topics patterns.
func (c *Claims) Subscribe() Patterns { return c.grants.topics() }

// Publish returns the compiled publish patterns.
func (c *Claims) Publish() Patterns { return c.grants.publishing() }
