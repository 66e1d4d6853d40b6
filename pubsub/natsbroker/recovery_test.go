package natsbroker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wspush/wspush/internal/testsupport"
	"github.com/wspush/wspush/pubsub"
)

// TestEpochIsTheStreams: every node names the stream with the same epoch,
// its topics and publish answers carry it, and a stream made anew (a NATS
// restart that lost the memory store) has another one; the subscribers of
// the old one are told they missed messages.
func TestEpochIsTheStreams(t *testing.T) {
	ns := testsupport.StartNATS(t, -1, t.TempDir())
	port := ns.Addr().(*net.TCPAddr).Port
	a, b := newNode(t, ns.ClientURL()), newNode(t, ns.ClientURL())
	epoch := a.Epoch()
	if !pubsub.ValidEpoch(epoch) || b.Epoch() != epoch {
		t.Fatalf("epochs %q and %q: want one valid epoch", epoch, b.Epoch())
	}
	rec := newRecorder()
	top, _ := a.subscribe(t, rec, "e")
	if top.Epoch() != epoch {
		t.Fatalf("topic epoch %q, the stream's %q", top.Epoch(), epoch)
	}
	res, err := b.Publish(context.Background(), "e", []byte(`1`))
	if err != nil || res.Epoch != epoch {
		t.Fatalf("publish: %+v %v, want epoch %q", res, err, epoch)
	}
	<-rec.pushes

	ns.Shutdown()
	ns.WaitForShutdown()
	testsupport.StartNATS(t, port, t.TempDir()) // memory storage: the stream is gone
	testsupport.WaitFor(t, "a new stream", func() bool { return a.Healthy() == nil && a.Epoch() != epoch })
	select {
	case topic := <-rec.missed:
		if topic != "e" {
			t.Fatalf("missed %q, want e", topic)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the old stream's subscriber was not told")
	}
	rec2 := newRecorder()
	if top2, _ := a.subscribe(t, rec2, "e"); top2.Epoch() != a.Epoch() || top2 == top {
		t.Fatalf("a subscriber after the new stream got topic %p epoch %q, want a new topic in %q", top2, top2.Epoch(), a.Epoch())
	}
}

// TestIngestGap: a republished message whose Nats-Last-Sequence is above
// what the node took in tells the topic's subscribers; one that follows on
// does not. The messages are sent on the republish subject by a plain NATS
// client, as the stream would.
func TestIngestGap(t *testing.T) {
	ns := testsupport.StartNATS(t, -1, t.TempDir())
	a := newNode(t, ns.ClientURL())
	rec := newRecorder()
	a.subscribe(t, rec, "g")
	res, err := a.Publish(context.Background(), "g", []byte(`1`))
	if err != nil {
		t.Fatal(err)
	}
	<-rec.pushes
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	send := func(seq, prev uint64) {
		m := nats.NewMsg(outPrefix + "g")
		m.Header.Set("Nats-Sequence", strconv.FormatUint(seq, 10))
		m.Header.Set(jetstream.LastSequenceHeader, strconv.FormatUint(prev, 10))
		m.Data = []byte(strconv.FormatUint(seq, 10))
		if err := nc.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
		<-rec.pushes
	}
	send(res.Seq+2, res.Seq) // follows on (seq gaps are other topics')
	select {
	case topic := <-rec.missed:
		t.Fatalf("told it missed %q after a message that follows on", topic)
	default:
	}
	send(res.Seq+9, res.Seq+5) // res.Seq+5 never arrived
	select {
	case topic := <-rec.missed:
		if topic != "g" {
			t.Fatalf("missed %q", topic)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a gap went unnoticed")
	}
	if n := a.hub.Stats().Gaps; n != 1 {
		t.Errorf("Hub gaps %d, want 1", n)
	}
}

// TestReadSince reads a topic's history from the stream: recoverable
// positions, the per-topic limit, the read limit, other epochs.
func TestReadSince(t *testing.T) {
	ns := testsupport.StartNATS(t, -1, t.TempDir())
	a := newNodeWith(t, Config{URLs: ns.ClientURL(), MaxPerTopic: 4})
	ctx := context.Background()
	var seqs []uint64
	for i := range 6 {
		res, err := a.Publish(ctx, "r", []byte(strconv.Itoa(i)))
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, res.Seq)
		a.Publish(ctx, "other", []byte(`0`))
	}
	epoch, last := a.Epoch(), seqs[5]
	for _, tt := range []struct {
		from      pubsub.Position
		limit     int
		recovered bool
		want      []uint64
		truncated bool
	}{
		{pubsub.Position{Epoch: epoch, Seq: seqs[2]}, 100, true, seqs[3:], false},
		{pubsub.Position{Seq: seqs[2]}, 100, true, seqs[3:], false}, // the stream's own epoch
		{pubsub.Position{Epoch: epoch, Seq: seqs[2]}, 2, true, seqs[3:5], true},
		{pubsub.Position{Epoch: epoch, Seq: last}, 100, true, nil, false},
		{pubsub.Position{Epoch: epoch, Seq: seqs[1]}, 100, false, nil, false},     // dropped by MaxPerTopic
		{pubsub.Position{Epoch: epoch, Seq: seqs[2] + 1}, 100, false, nil, false}, // another topic's message
		{pubsub.Position{Epoch: epoch, Seq: last + 10}, 100, false, nil, false},
		{pubsub.Position{Epoch: "other", Seq: seqs[2]}, 100, false, nil, false},
		{pubsub.Position{Epoch: epoch}, 100, false, nil, false}, // 0, and the stream dropped messages
	} {
		t.Run(fmt.Sprint(tt.from, tt.limit), func(t *testing.T) {
			r, err := a.ReadSince(ctx, "r", tt.from, tt.limit, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			var got []uint64
			for _, m := range r.Messages {
				got = append(got, m.Seq)
				if want := strconv.Itoa(slices.Index(seqs, m.Seq)); string(m.Data) != want {
					t.Fatalf("message %d data %s, want %s", m.Seq, m.Data, want)
				}
			}
			if r.Epoch != epoch || r.Last != last || r.Recovered != tt.recovered || !slices.Equal(got, tt.want) || r.Truncated != tt.truncated {
				t.Fatalf("read %+v (seqs %v), want recovered %v with %v, truncated %v", r, got, tt.recovered, tt.want, tt.truncated)
			}
		})
	}
	// A small byte budget: the stream answers a few messages per request
	// (it counts subjects too), each request anchored on the last message
	// read, and the read still ends whole at the last message.
	r, err := a.ReadSince(ctx, "r", pubsub.Position{Epoch: epoch, Seq: seqs[2]}, 100, 20)
	var got []uint64
	for _, m := range r.Messages {
		got = append(got, m.Seq)
	}
	if err != nil || !r.Recovered || r.Truncated || r.End != last || !slices.Equal(got, seqs[3:]) {
		t.Fatalf("read in small batches: %+v (seqs %v) %v, want %v whole", r, got, err, seqs[3:])
	}
	// A fresh stream that never dropped anything: position 0 is recoverable.
	b := newNode(t, testsupport.StartNATS(t, -1, t.TempDir()).ClientURL())
	if _, err := b.Publish(ctx, "z", []byte(`1`)); err != nil {
		t.Fatal(err)
	}
	r, err = b.ReadSince(ctx, "z", pubsub.Position{Epoch: b.Epoch()}, 10, 1<<20)
	if err != nil || !r.Recovered || len(r.Messages) != 1 {
		t.Fatalf("from 0 in a fresh stream: %+v %v", r, err)
	}
}

// nextMsg is the topic's first message from seq on, with one stream API
// request (GetMsg): none when there is none. The benchmark's alternative to
// directBatch.
func nextMsg(ctx context.Context, stream jetstream.Stream, subject string, seq uint64) ([]StreamMessage, error) {
	m, err := stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subject))
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		return nil, nil
	case err != nil:
		return nil, err
	}
	return []StreamMessage{{Seq: m.Sequence, Data: m.Data}}, nil
}

// BenchmarkReadSince50 reads 50 messages of one topic back from a local
// in-process nats-server (file storage), as a recovery 50 messages back
// does: one op is one whole ReadSince (position check and reads). The
// perMessage and batch sub-benchmarks compare its two ways to read the
// messages alone, one request per message (GetMsg) against one direct get
// batch, side by side on the same stream.
func BenchmarkReadSince50(b *testing.B) {
	ns := testsupport.StartNATS(b, -1, b.TempDir())
	br, err := New(Config{URLs: ns.ClientURL(), Logger: testsupport.Logger()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(br.Close)
	for br.Healthy() != nil {
		time.Sleep(5 * time.Millisecond)
	}
	ctx := context.Background()
	var first uint64
	for i := range 51 {
		res, err := br.Publish(ctx, "bench", []byte(`{"n":12345,"text":"a push of about sixty bytes"}`))
		if err != nil {
			b.Fatal(err)
		}
		if i == 0 {
			first = res.Seq
		}
	}
	from := pubsub.Position{Epoch: br.Epoch(), Seq: first}
	b.Run("ReadSince", func(b *testing.B) {
		for b.Loop() {
			r, err := br.ReadSince(ctx, "bench", from, 100, 1<<20)
			if err != nil || !r.Recovered || len(r.Messages) != 50 {
				b.Fatalf("read %+v %v", r, err)
			}
		}
	})
	subject := inPrefix + "bench"
	b.Run("perMessage", func(b *testing.B) {
		for b.Loop() {
			n := 0
			for seq := first + 1; ; n++ {
				msgs, err := nextMsg(ctx, br.stream, subject, seq)
				if err != nil {
					b.Fatal(err)
				}
				if len(msgs) == 0 {
					break
				}
				seq = msgs[0].Seq + 1
			}
			if n != 50 {
				b.Fatalf("read %d messages", n)
			}
		}
	})
	b.Run("batch", func(b *testing.B) {
		for b.Loop() {
			msgs, _, err := br.directBatch(ctx, subject, first+1, 100, 1<<20)
			if err != nil || len(msgs) != 50 {
				b.Fatalf("read %d messages: %v", len(msgs), err)
			}
		}
	})
}

// TestDropCheckShares: concurrent checks share requests, and each caller
// gets the outcome of a request that started after it called.
func TestDropCheckShares(t *testing.T) {
	var c dropCheck
	var mu sync.Mutex
	calls, state := 0, true
	request := func() (bool, error) {
		mu.Lock()
		calls++
		ok := state
		mu.Unlock()
		time.Sleep(20 * time.Millisecond)
		return ok, nil
	}
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if ok, err := c.check(request); !ok || err != nil {
				t.Errorf("check: %v %v", ok, err)
			}
		}()
	}
	wg.Wait()
	if calls > 3 {
		t.Errorf("50 concurrent checks made %d requests, want at most 3", calls)
	}
	mu.Lock()
	state = false // a drop: the next check must not take an older outcome
	mu.Unlock()
	if ok, _ := c.check(request); ok {
		t.Fatal("a check after the change took an outcome from before it")
	}
}

// TestReadSinceSkipsWhatIngestDrops: a message in the stream that is not
// valid UTF-8 JSON (from a publisher other than wspush: a JSON string with
// a \xff byte passes json.Valid) is skipped by a read as Hub.Ingest drops
// it live: replayed in a text frame it would make the client fail its
// connection (1007), at every resume.
func TestReadSinceSkipsWhatIngestDrops(t *testing.T) {
	ns := testsupport.StartNATS(t, -1, t.TempDir())
	a := newNode(t, ns.ClientURL())
	ctx := context.Background()
	if _, err := a.Publish(ctx, "u", []byte("\"\xff\"")); !errors.Is(err, pubsub.ErrInvalidUTF8) {
		t.Fatalf("publish of invalid UTF-8: %v, want %v", err, pubsub.ErrInvalidUTF8)
	}
	nc, err := nats.Connect(ns.ClientURL()) // another publisher to the stream
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	var seqs []uint64
	for _, data := range []string{`1`, "\"\xff\"", `3`} {
		ack, err := js.Publish(ctx, inPrefix+Subject("u"), []byte(data))
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, ack.Sequence)
	}
	r, err := a.ReadSince(ctx, "u", pubsub.Position{Epoch: a.Epoch(), Seq: seqs[0]}, 10, 1<<20)
	if err != nil || !r.Recovered || len(r.Messages) != 1 || r.Messages[0].Seq != seqs[2] || r.End != seqs[2] {
		t.Fatalf("read %+v %v, want only seq %d, whole", r, err, seqs[2])
	}
}

// TestReadSincePastOneBatch: a read of more messages than one direct get
// asks for (maxDirectBatch) goes on from the last message read and ends
// whole, from a position and from 0.
func TestReadSincePastOneBatch(t *testing.T) {
	ns := testsupport.StartNATS(t, -1, t.TempDir())
	a := newNode(t, ns.ClientURL())
	ctx := context.Background()
	n := maxDirectBatch + 100
	seqs := make([]uint64, n)
	for i := range n {
		res, err := a.Publish(ctx, "many", []byte(strconv.Itoa(i)))
		if err != nil {
			t.Fatal(err)
		}
		seqs[i] = res.Seq
	}
	for _, from := range []uint64{0, seqs[9]} {
		r, err := a.ReadSince(ctx, "many", pubsub.Position{Epoch: a.Epoch(), Seq: from}, 10*n, 1<<30)
		if err != nil || !r.Recovered || r.Truncated || r.End != seqs[n-1] {
			t.Fatalf("from %d: %v recovered %v truncated %v end %d, want whole to %d", from, err, r.Recovered, r.Truncated, r.End, seqs[n-1])
		}
		want := seqs
		if from > 0 {
			want = seqs[10:]
		}
		got := make([]uint64, len(r.Messages))
		for i, m := range r.Messages {
			got[i] = m.Seq
		}
		if !slices.Equal(got, want) {
			t.Fatalf("from %d: %d messages, want %d in order", from, len(got), len(want))
		}
	}
}
