package natsbroker

import (
	"strings"
	"testing"
)

func TestSubject(t *testing.T) {
	for _, tc := range []struct{ topic, subject string }{
		{"news", "news"},
		{"Az09_-", "Az09_-"},
		{"a.b", "a%2Eb"},
		{"*", "%2A"},
		{">", "%3E"},
		{"100%", "100%25"},
		{"user:42/feed", "user%3A42%2Ffeed"},
		{`"~`, "%22%7E"},
	} {
		if got := Subject(tc.topic); got != tc.subject {
			t.Errorf("Subject(%q) = %q, want %q", tc.topic, got, tc.subject)
		}
		if got, err := Topic(tc.subject); err != nil || got != tc.topic {
			t.Errorf("Topic(%q) = %q, %v, want %q", tc.subject, got, err, tc.topic)
		}
	}
}

// TestSubjectEveryByte checks every valid topic byte: the token holds no NATS
// separator or wildcard and unescapes back.
func TestSubjectEveryByte(t *testing.T) {
	var all strings.Builder
	for c := byte(0x21); c <= 0x7e; c++ {
		all.WriteByte(c)
	}
	topic := all.String()
	s := Subject(topic)
	if strings.ContainsAny(s, ".*> \t\r\n") {
		t.Fatalf("Subject(%q) = %q holds a NATS separator or wildcard", topic, s)
	}
	if got, err := Topic(s); err != nil || got != topic {
		t.Fatalf("Topic(Subject(x)) = %q, %v, want %q", got, err, topic)
	}
}

func TestTopicBadEscape(t *testing.T) {
	for _, token := range []string{"%", "%4", "a%G1", "%1x"} {
		if _, err := Topic(token); err == nil {
			t.Errorf("Topic(%q): no error", token)
		}
	}
}
