package proxyproto

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzParse checks, for any input, that Parse does not panic, that a header
// it accepts lies within the input and the bounds and parses the same on its
// own bytes, and that it only asks for more bytes below the bounds. Seeds
// are in testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	f.Add([]byte("PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nGET / HTTP/1.1\r\n"))
	f.Add(v2(0x21, v2TCP4, append(inet4Block("10.1.2.3", "10.0.0.1", 40000, 80), tlvs...), -1))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := Parse(b)
		switch {
		case err == ErrIncomplete:
			if len(b) >= v2FixedLen+DefaultMaxV2Payload {
				t.Fatalf("ErrIncomplete for %d bytes", len(b))
			}
			return
		case err != nil:
			for _, known := range []error{ErrNoHeader, ErrTooLong, ErrVersion, ErrCommand, ErrFamily, ErrMalformed} {
				if errors.Is(err, known) {
					return
				}
			}
			t.Fatalf("error %v is none of the package's", err)
		}
		if h.Len <= 0 || h.Len > len(b) {
			t.Fatalf("Len %d outside input of %d bytes", h.Len, len(b))
		}
		switch h.Version {
		case 1:
			if h.Len > MaxV1Len {
				t.Fatalf("v1 Len %d over %d", h.Len, MaxV1Len)
			}
		case 2:
			if h.Len > v2FixedLen+DefaultMaxV2Payload {
				t.Fatalf("v2 Len %d over the limit", h.Len)
			}
		default:
			t.Fatalf("version %d", h.Version)
		}
		if (h.Command == Proxy) != h.Source.IsValid() || h.Source.IsValid() != h.Destination.IsValid() {
			t.Fatalf("command %v with source %v destination %v", h.Command, h.Source, h.Destination)
		}
		again, err := Parse(bytes.Clone(b[:h.Len]))
		if err != nil || again != h {
			t.Fatalf("header alone parses as %+v, %v; with what follows as %+v", again, err, h)
		}
	})
}
