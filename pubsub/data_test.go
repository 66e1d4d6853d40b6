package pubsub

import (
	"context"
	"errors"
	"testing"
)

// TestInvalidUTF8NeverPushed: a value that is not UTF-8 is refused by every
// way in (Publish, Enqueue) and dropped by Ingest, so no subscriber ever
// gets a text frame it must fail on.
func TestInvalidUTF8NeverPushed(t *testing.T) {
	h := newTestHub(1)
	r := &recorder{}
	h.Subscribe(0, r, "t")
	for _, data := range []string{"\"\xff\"", "\xff", `["a` + "\xed\xa0\x80" + `"]`} {
		if _, err := h.Publish(context.Background(), "t", []byte(data)); !errors.Is(err, ErrInvalidUTF8) {
			t.Errorf("Publish %q: %v, want ErrInvalidUTF8", data, err)
		}
		if _, err := h.Enqueue("t", []byte(data)); !errors.Is(err, ErrInvalidUTF8) {
			t.Errorf("Enqueue %q: %v, want ErrInvalidUTF8", data, err)
		}
		if n := h.Ingest("t", 7, []byte(data)); n != 0 {
			t.Errorf("Ingest %q reached %d subscribers", data, n)
		}
	}
	if _, err := h.Publish(context.Background(), "t", []byte(`{`)); !errors.Is(err, ErrInvalidJSON) {
		t.Errorf("Publish of invalid JSON: %v", err)
	}
	if len(r.got) != 0 {
		t.Fatalf("%d pushes of invalid data", len(r.got))
	}
	// The dropped delivery took its sequence number (the stream's seqs are
	// unique: the next message says it is its predecessor, and must not
	// look like it follows a gap, TestInvalidIngestIsNoGap); the next one
	// is pushed.
	if n := h.Ingest("t", 8, []byte(`"ok"`)); n != 1 || len(r.got) != 1 {
		t.Fatalf("a valid delivery after them reached %d", n)
	}
}
