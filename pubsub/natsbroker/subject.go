package natsbroker

import (
	"fmt"
	"strings"
)

// The subjects wspush uses on NATS. Publishes go to inPrefix+topic, where the
// stream stores them; the stream republishes each one, with its sequence
// number, to outPrefix+topic, where the nodes with subscribers listen.
const (
	inPrefix  = "wspush.in."
	outPrefix = "wspush.out."
)

// Subject escapes a topic into one NATS subject token: [A-Za-z0-9_-] stay as
// they are, every other byte becomes %XX (upper-case hex), '%' included. The
// result never holds '.', '*', '>' or white space, and Topic reverses it.
func Subject(topic string) string {
	var b strings.Builder
	b.Grow(len(topic))
	for i := 0; i < len(topic); i++ {
		c := topic[i]
		if plain(c) {
			b.WriteByte(c)
			continue
		}
		const hex = "0123456789ABCDEF"
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&0xf])
	}
	return b.String()
}

// Topic reverses Subject.
func Topic(token string) (string, error) {
	if strings.IndexByte(token, '%') < 0 {
		return token, nil
	}
	b := make([]byte, 0, len(token))
	for i := 0; i < len(token); i++ {
		c := token[i]
		if c != '%' {
			b = append(b, c)
			continue
		}
		if i+2 >= len(token) {
			return "", fmt.Errorf("subject token %q: truncated escape", token)
		}
		hi, ok1 := unhex(token[i+1])
		lo, ok2 := unhex(token[i+2])
		if !ok1 || !ok2 {
			return "", fmt.Errorf("subject token %q: bad escape at %d", token, i)
		}
		b = append(b, hi<<4|lo)
		i += 2
	}
	return string(b), nil
}

func plain(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-'
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}
