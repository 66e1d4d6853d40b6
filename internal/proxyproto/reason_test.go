package proxyproto

import (
	"errors"
	"testing"
)

func TestReason(t *testing.T) {
	tests := []struct {
		in   []byte
		want string
	}{
		{[]byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n"), ""},
		{[]byte("PROXY TCP4"), "incomplete"},
		{[]byte("GET / HTTP/1.1\r\n"), "no_header"},
		{v2(0x21, v2TCP4, nil, 0xffff), "too_long"},
		{v2(0x31, v2TCP4, nil, 0), "version"},
		{v2(0x22, v2TCP4, nil, 0), "command"},
		{v2(0x21, 0x41, nil, 0), "family"},
		{[]byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"), "malformed"},
	}
	for _, tt := range tests {
		_, err := Parse(tt.in)
		if got := Reason(err); got != tt.want {
			t.Errorf("Reason(Parse(%q)) = %q (%v), want %q", tt.in, got, err, tt.want)
		}
	}
	if got := Reason(errors.New("read: connection reset")); got != "other" {
		t.Errorf("Reason(foreign error) = %q, want other", got)
	}
}
