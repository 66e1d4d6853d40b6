package server

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/wspush/wspush/pubsub"
)

func TestAppendPublishedMatchesEncodingJSON(t *testing.T) {
	for _, p := range []pubsub.Published{
		{Topic: "a", Seq: 1, Subscribers: 1},
		{Topic: "inbox.42", Seq: 18446744073709551615, Epoch: "k3j4h5", Subscribers: 0},
		{Topic: `we"ird\topic<&>`, Seq: 7, Epoch: "e", Subscribers: 3, Duplicate: true},
		{Topic: "ctl\x01é\u2028", Seq: 2, Epoch: `q"`, Subscribers: -1},
		{},
	} {
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(p); err != nil {
			t.Fatal(err)
		}
		got := appendPublished(nil, p)
		if string(got) != string(bytes.TrimSuffix(want.Bytes(), []byte("\n"))) {
			t.Errorf("%+v: got %s, encoding/json %s", p, got, want.Bytes())
		}
	}
}
