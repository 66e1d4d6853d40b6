package frames

import "testing"

// TestDecoderKeepsItsError: the Decoder keeps its first error as a byte;
// every error it can return comes back as itself, and again on the next
// call.
func TestDecoderKeepsItsError(t *testing.T) {
	for _, e := range decodeErrors {
		if got := decodeErrors[failure(e)-1]; got != e {
			t.Errorf("%v is kept as %v", e, got)
		}
	}
	var d Decoder
	unmasked := []byte{0x81, 0x01, 'a'} // a text frame without a mask
	for i := 0; i < 2; i++ {
		if _, _, err := d.Next(unmasked); err != ErrProtocolUnmasked {
			t.Fatalf("call %d: %v, want %v", i+1, err, ErrProtocolUnmasked)
		}
	}
}
