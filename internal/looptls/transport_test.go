package looptls

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

type record struct {
	typ  byte
	vers [2]byte
	body []byte
}

func appendRecord(b []byte, r record) []byte {
	b = append(b, r.typ, r.vers[0], r.vers[1], byte(len(r.body)>>8), byte(len(r.body)))
	return append(b, r.body...)
}

// parseRecords splits a record stream; it fails on a truncated one.
func parseRecords(t *testing.T, b []byte) []record {
	t.Helper()
	var rs []record
	for len(b) > 0 {
		if len(b) < recordHeaderLen {
			t.Fatalf("truncated header: %d bytes", len(b))
		}
		n := int(b[3])<<8 | int(b[4])
		if len(b) < recordHeaderLen+n {
			t.Fatalf("truncated record: %d of %d bytes", len(b)-recordHeaderLen, n)
		}
		rs = append(rs, record{b[0], [2]byte{b[1], b[2]}, b[recordHeaderLen : recordHeaderLen+n]})
		b = b[recordHeaderLen+n:]
	}
	return rs
}

// mergeHello joins the handshake records before the first other record
// type into one, the way crypto/tls reassembles their messages.
func mergeHello(rs []record) []record {
	var out []record
	for i, r := range rs {
		if r.typ != recordTypeHandshake {
			return append(out, rs[i:]...)
		}
		if len(out) == 0 {
			out = append(out, record{r.typ, r.vers, nil})
		}
		out[0].body = append(out[0].body, r.body...)
	}
	return out
}

// TestTransportFraming feeds random record streams in random pieces and
// reads them with random buffer sizes: no Read spans two records, the
// plaintext handshake records come out cut to helloFragment and otherwise
// unchanged, everything after the first other record type comes out as it
// went in.
func TestTransportFraming(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	body := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		return b
	}
	for iter := 0; iter < 300; iter++ {
		var in []record
		for range 1 + rng.IntN(3) { // the ClientHello flight
			in = append(in, record{recordTypeHandshake, [2]byte{3, 1}, body(1 + rng.IntN(3000))})
		}
		in = append(in, record{20, [2]byte{3, 3}, []byte{1}}) // ChangeCipherSpec
		for range rng.IntN(5) {
			typ := []byte{recordTypeHandshake, 23, 21}[rng.IntN(3)]
			in = append(in, record{typ, [2]byte{3, 3}, body(rng.IntN(20000))})
		}
		var stream []byte
		for _, r := range in {
			stream = appendRecord(stream, r)
		}

		tr := newTransport(nil, nil, nil)
		tr.hs = nil // loop mode
		var got []byte
		readBuf := make([]byte, 1+rng.IntN(20000))
		for rest := stream; len(rest) > 0; {
			k := min(len(rest), 1+rng.IntN(3000))
			tr.in, rest = rest[:k], rest[k:]
			for {
				p := readBuf[:1+rng.IntN(len(readBuf))]
				n, err := tr.Read(p)
				if err == errWouldBlock {
					break
				}
				if err != nil || n == 0 {
					t.Fatalf("Read: %d, %v", n, err)
				}
				start := len(got)
				got = append(got, p[:n]...)
				// A Read ends at most one record, and only at its last byte.
				if e := recordEnds(got); e > start && (e != len(got) || recordEnds(got[:len(got)-1]) > start) {
					t.Fatalf("a Read of %d bytes at %d spans a record boundary", n, start)
				}
			}
		}
		out := parseRecords(t, got)
		for _, r := range out {
			if r.typ != recordTypeHandshake {
				break
			}
			if len(r.body) > helloFragment {
				t.Fatalf("a hello record of %d bytes was not cut", len(r.body))
			}
		}
		want, have := mergeHello(in), mergeHello(out)
		if len(want) != len(have) {
			t.Fatalf("iteration %d: %d records after the hello, want %d", iter, len(have), len(want))
		}
		for i := range want {
			if want[i].typ != have[i].typ || want[i].vers != have[i].vers || !bytes.Equal(want[i].body, have[i].body) {
				t.Fatalf("iteration %d: record %d differs", iter, i)
			}
		}
	}
}

// recordEnds is the offset of the last record boundary in b.
func recordEnds(b []byte) int {
	at := 0
	for len(b)-at >= recordHeaderLen {
		n := recordHeaderLen + (int(b[at+3])<<8 | int(b[at+4]))
		if len(b)-at < n {
			break
		}
		at += n
	}
	return at
}
