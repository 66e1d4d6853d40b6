package natsbroker

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wspush/wspush/internal/testsupport"
)

func streamConfig(t *testing.T, b node) jetstream.StreamConfig {
	t.Helper()
	stream, err := b.js.Stream(context.Background(), "WSPUSH")
	if err != nil {
		t.Fatal(err)
	}
	return stream.CachedInfo().Config
}

// TestEnsureStreamLimits: the stream is created with wspush's limits; an
// existing stream whose limits or republish rule differ is updated back to
// them (UpdateStream), and what wspush has no setting for is kept.
func TestEnsureStreamLimits(t *testing.T) {
	ns := testsupport.StartNATS(t, -1, t.TempDir())
	b := newNode(t, ns.ClientURL())
	cfg := streamConfig(t, b)
	if cfg.MaxAge != time.Hour || cfg.MaxBytes != 1<<30 || cfg.MaxMsgsPerSubject != -1 || cfg.Duplicates != 2*time.Minute ||
		cfg.Discard != jetstream.DiscardOld || cfg.RePublish == nil || cfg.RePublish.Destination != "wspush.out.>" {
		t.Fatalf("created stream config %+v", cfg)
	}

	// An operator edits the stream: a message size limit (kept), and limits
	// and the rule wspush owns (put back).
	cfg.MaxMsgSize, cfg.MaxAge, cfg.MaxBytes, cfg.RePublish = 4096, 2*time.Hour, 5<<30, nil
	if _, err := b.js.UpdateStream(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if err := b.ensureStream(); err != nil {
		t.Fatal(err)
	}
	got := streamConfig(t, b)
	if got.MaxMsgSize != 4096 || got.MaxAge != time.Hour || got.MaxBytes != 1<<30 || got.RePublish == nil || got.RePublish.Source != "wspush.in.>" {
		t.Fatalf("after ensureStream: %+v; want MaxMsgSize 4096 kept, MaxAge 1h, MaxBytes 1 GiB and the rule back", got)
	}

	// A node configured with other limits updates the stream to them.
	c := newNodeWith(t, Config{URLs: ns.ClientURL(), MaxBytes: 64 << 10, MaxPerTopic: 5, MaxAge: 10 * time.Minute, DedupWindow: time.Minute})
	got = streamConfig(t, c)
	if got.MaxBytes != 64<<10 || got.MaxMsgsPerSubject != 5 || got.MaxAge != 10*time.Minute || got.Duplicates != time.Minute {
		t.Fatalf("after a node with other limits: %+v", got)
	}
}

// TestStreamBoundDropsOldest: at -broker-max-bytes the stream drops its
// oldest messages and keeps taking publishes; the per-topic limit keeps
// the newest messages of each topic.
func TestStreamBoundDropsOldest(t *testing.T) {
	ns := testsupport.StartNATS(t, -1, t.TempDir())
	const maxBytes = 16 << 10
	b := newNodeWith(t, Config{URLs: ns.ClientURL(), MaxBytes: maxBytes, MaxPerTopic: 3})
	body := []byte(`"` + strings.Repeat("x", 500) + `"`)
	ctx := context.Background()
	var last uint64
	for i := range 200 {
		res, err := b.Publish(ctx, fmt.Sprintf("t%d", i%50), body)
		if err != nil {
			t.Fatalf("publish %d at the bound: %v", i, err)
		}
		last = res.Seq
	}
	stream, err := b.js.Stream(ctx, "WSPUSH")
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter("wspush.in.>"))
	if err != nil {
		t.Fatal(err)
	}
	st := info.State
	if st.Bytes > maxBytes || st.LastSeq != last || st.FirstSeq <= 1 {
		t.Fatalf("stream state %d bytes (bound %d), seqs %d..%d (last publish %d): want within the bound, the oldest dropped",
			st.Bytes, maxBytes, st.FirstSeq, st.LastSeq, last)
	}
	for subj, n := range st.Subjects {
		if n > 3 {
			t.Errorf("%s holds %d messages, over the per-topic limit 3", subj, n)
		}
	}
	t.Logf("after 200 publishes of %d bytes: %d messages, %d bytes, seqs %d..%d", len(body), st.Msgs, st.Bytes, st.FirstSeq, st.LastSeq)
}

// TestPublishIdempotent: a retried publish with the same key is stored
// once and answered with the first seq, Duplicate set; the key is scoped to
// its topic; subscribers get one push.
func TestPublishIdempotent(t *testing.T) {
	ns := testsupport.StartNATS(t, -1, t.TempDir())
	a := newNode(t, ns.ClientURL())
	rec := newRecorder()
	a.subscribe(t, rec, "orders")
	ctx := context.Background()
	first, err := a.PublishIdempotent(ctx, "orders", "k-1", []byte(`{"id":1}`))
	if err != nil || first.Duplicate || first.Seq == 0 {
		t.Fatalf("first publish: %+v, %v", first, err)
	}
	again, err := a.PublishIdempotent(ctx, "orders", "k-1", []byte(`{"id":1}`))
	if err != nil || !again.Duplicate || again.Seq != first.Seq {
		t.Fatalf("retry: %+v, %v; want duplicate with seq %d", again, err, first.Seq)
	}
	other, err := a.PublishIdempotent(ctx, "invoices", "k-1", []byte(`{"id":1}`))
	if err != nil || other.Duplicate || other.Seq <= first.Seq {
		t.Fatalf("same key, other topic: %+v, %v; want a new publish", other, err)
	}
	end, err := a.Publish(ctx, "orders", []byte(`"end"`))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []uint64{first.Seq, end.Seq} {
		select {
		case got := <-rec.pushes:
			if !strings.Contains(string(got), fmt.Sprintf(`"seq":%d,`, want)) {
				t.Fatalf("push %s, want seq %d", got, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("push seq %d not delivered", want)
		}
	}
	stream, _ := a.js.Stream(ctx, "WSPUSH")
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 3 {
		t.Errorf("stream holds %d messages, want 3 (the retry not stored)", info.State.Msgs)
	}
	if st := a.Stats(); st.Duplicates != 1 || st.Published != 3 {
		t.Errorf("stats %+v, want 1 duplicate and 3 published", st)
	}
}
