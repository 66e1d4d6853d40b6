package frames

import (
	"testing"

	"github.com/wspush/wspush/internal/bufpool"
)

// FuzzDecoder feeds arbitrary bytes to a Decoder, whole and cut into pieces
// by cuts. It must never panic, must consume monotonically (checked by feed)
// and must decode every cutting of a stream to the same messages, error and
// consumed byte count.
func FuzzDecoder(f *testing.F) {
	for _, tc := range decodeCases {
		if len(tc.stream) <= 1024 {
			f.Add(tc.stream, []byte{3, 1, 7}, uint16(tc.max))
		}
	}
	f.Fuzz(func(t *testing.T, data, cuts []byte, limit uint16) {
		want := feed(t, &Decoder{MaxMessage: int(limit)}, [][]byte{clone(data)})

		var chunks [][]byte
		s := clone(data)
		for i := 0; len(s) > 0; i++ {
			n := len(s)
			if len(cuts) > 0 {
				c := int(cuts[i%len(cuts)])
				if c == 0 {
					chunks = append(chunks, nil) // a read that brought nothing
				}
				n = min(n, max(c, 1))
			}
			chunks = append(chunks, s[:n])
			s = s[n:]
		}
		d := &Decoder{MaxMessage: int(limit), Pool: bufpool.New(2)}
		if got := feed(t, d, chunks); !got.equal(want) {
			t.Fatalf("cut by %v: %v; whole: %v", cuts, got, want)
		}
		d.Release()

		if len(data) <= 4096 {
			var bytewise [][]byte
			for _, c := range clone(data) {
				bytewise = append(bytewise, []byte{c})
			}
			if got := feed(t, &Decoder{MaxMessage: int(limit)}, bytewise); !got.equal(want) {
				t.Fatalf("byte by byte: %v; whole: %v", got, want)
			}
		}
	})
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }
