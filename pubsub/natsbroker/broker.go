// Package natsbroker is wspush's cluster broker: it carries publishes between
// wspush nodes over NATS, with a JetStream stream as the cluster-wide
// sequencer (docs/cluster.md).
//
// A publish on any node is a JetStream publish to wspush.in.<topic>. The
// stream stores it, assigns the next stream sequence number, and republishes
// it to wspush.out.<topic> with that number in the Nats-Sequence header. Each
// node core-subscribes to wspush.out.<topic> for the topics it has local
// subscribers of, and hands what arrives to its Hub with Hub.Ingest. The
// stream's sequence is strictly increasing, so it is per topic too, with
// gaps.
//
// # Concurrency
//
// One goroutine per node ingests: every topic subscription shares one
// buffered channel, read by that goroutine in arrival order, which is the
// stream's order, as Hub.Ingest requires; it waits for the loops when they
// fall behind (Hub.IngestWait), so the channel's bound is what nats.go's
// slow-consumer protection applies (Stats.Dropped). A second goroutine
// (re)creates the stream after each (re)connect, when missing, keeps its
// limits, takes its epoch (epoch.go) and checks every subscribed topic's
// position for messages missed meanwhile (gaps.go). SetInterest is called by the Hub under its lock, in order, from any
// event loop: it only records the change for a third goroutine, which
// (un)subscribes on NATS, waits for the round trip and tells the Hub
// (Hub.InterestReady) that the interest is in place (interest.go): neither
// the Hub's lock nor a loop ever waits on the network. Publish, Healthy and
// Stats are safe from any goroutine. nats.go reconnects by itself and
// re-sends the subscriptions. ReadSince (history.go) reads a topic's history
// from the stream on its caller's goroutine (the server's recovery
// workers, an admin request).
package natsbroker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wspush/wspush/internal/defaults"
	"github.com/wspush/wspush/pubsub"
)

// ErrUnavailable wraps every failure to reach the cluster: the caller should
// answer "try again later" (HTTP 503).
var ErrUnavailable = errors.New("cluster broker unavailable")

// errNoStreamYet is the stream state before the first successful creation.
var errNoStreamYet = errors.New("stream not created yet")

// Config configures a Broker. The zero value of a field means its default
// (see Defaults).
type Config struct {
	URLs             string                // comma-separated NATS URLs, nats://host:4222,...
	Name             string                // NATS connection name, shown by the server's monitoring
	Stream           string                // JetStream stream name
	Storage          jetstream.StorageType // stream storage when wspush creates the stream; the zero value is file storage
	Replicas         int                   // stream replicas when wspush creates the stream
	MaxAge           time.Duration         // how long the stream keeps messages
	MaxBytes         int64                 // what the stream may hold in all; past it the oldest messages go (DiscardOld)
	MaxPerTopic      int64                 // messages the stream keeps per topic (MaxMsgsPerSubject); 0: no such limit
	DedupWindow      time.Duration         // how long the stream remembers a publish's Nats-Msg-Id (its Duplicates window)
	PublishTimeout   time.Duration         // wait for the stream's ack
	FlushTimeout     time.Duration         // wait for a new subscription's round trip
	ReconnectWait    time.Duration         // first reconnect delay, doubled per failed round
	MaxReconnectWait time.Duration         // reconnect delay cap
	PingInterval     time.Duration         // how often a silent connection is checked
	Buffer           int                   // messages queued for the ingest goroutine
	Logger           *slog.Logger
}

// Defaults returns the values New uses for the fields of a Config left at
// zero. URLs and Name have none.
func Defaults() Config {
	return Config{
		Stream:           "WSPUSH",
		Storage:          jetstream.FileStorage,
		Replicas:         1,
		MaxAge:           time.Hour,
		MaxBytes:         1 << 30,
		DedupWindow:      2 * time.Minute,
		PublishTimeout:   5 * time.Second,
		FlushTimeout:     time.Second,
		ReconnectWait:    100 * time.Millisecond,
		MaxReconnectWait: 5 * time.Second,
		PingInterval:     5 * time.Second,
		Buffer:           65536,
		Logger:           slog.Default(),
	}
}

// withDefaults fills the unset fields of c from Defaults (see
// internal/defaults for what unset means); an empty Stream is unset too.
func (c Config) withDefaults() Config {
	d := Defaults()
	defaults.Fill(&c, d)
	if c.Stream == "" {
		c.Stream = d.Stream
	}
	return c
}

// Broker is one node's connection to the cluster. It implements
// pubsub.Broker.
type Broker struct {
	cfg Config
	log *slog.Logger
	nc  *nats.Conn
	js  jetstream.JetStream
	hub *pubsub.Hub // set once by Attach, before the ingest goroutine starts
	// attached is hub for streamLoop, which starts before Attach: nil until then.
	attached atomic.Pointer[pubsub.Hub]
	msgs     chan *nats.Msg // every topic subscription's messages, for ingestLoop
	kick     chan struct{}  // (re)create the stream
	done     chan struct{}
	wg       sync.WaitGroup
	once     sync.Once

	interest interestState // the Hub's interest changes, for interestLoop

	subsMu      sync.Mutex
	subs        map[string]*nats.Subscription // topic -> its wspush.out subscription; changed by interestLoop only
	droppedGone atomic.Uint64                 // messages dropped by subscriptions since unsubscribed
	lastDropLog atomic.Int64                  // unix ns of the last slow-consumer warning

	errMu     sync.Mutex
	streamErr error            // the last stream creation's outcome
	stream    jetstream.Stream // the stream once it is ready, for position queries
	epoch     string           // the stream's epoch (epoch.go), "" before it was ready
	droppedIn string           // the epoch of a stream known to have dropped a message (history.go)
	drops     dropCheck        // neverDropped's shared requests (history.go)

	published       atomic.Uint64
	publishFailures atomic.Uint64
	duplicates      atomic.Uint64
	reconnects      atomic.Uint64
}

// Stats are the Broker's counters.
type Stats struct {
	Connected       bool
	Up              bool // connected and the stream ready: Healthy is nil
	Reconnects      uint64
	Published       uint64 // publishes the stream acknowledged
	PublishFailures uint64
	Duplicates      uint64 // publishes the stream recognised as retries (Nats-Msg-Id) and did not store again
	Dropped         uint64 // messages for this node nats.go dropped because the ingest buffer was full
}

// New connects to NATS and returns at once: when no server answers yet it
// keeps trying in the background, and Healthy reports it. Pass SetInterest to
// pubsub.NewHub, then the Hub to Attach.
func New(cfg Config) (*Broker, error) {
	cfg = cfg.withDefaults()
	urls := strings.Join(strings.Fields(strings.ReplaceAll(cfg.URLs, ",", " ")), ",") // nats.go takes a comma-separated list
	if urls == "" {
		return nil, errors.New("natsbroker: no NATS URL")
	}
	b := &Broker{
		cfg:       cfg,
		log:       cfg.Logger.With("component", "natsbroker"),
		msgs:      make(chan *nats.Msg, cfg.Buffer),
		kick:      make(chan struct{}, 1),
		done:      make(chan struct{}),
		subs:      make(map[string]*nats.Subscription),
		interest:  newInterestState(),
		streamErr: errNoStreamYet,
	}
	nc, err := nats.Connect(urls,
		nats.Name(cfg.Name),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.CustomReconnectDelay(b.backoff),
		nats.ReconnectBufSize(-1), // no buffering in an outage: a publish fails at once
		nats.PingInterval(cfg.PingInterval),
		nats.ConnectHandler(func(nc *nats.Conn) {
			b.log.Info("connected to NATS", "url", nc.ConnectedUrlRedacted())
			b.kickStream()
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			b.reconnects.Add(1)
			b.log.Info("reconnected to NATS", "url", nc.ConnectedUrlRedacted())
			b.kickStream()
		}),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if nc.IsClosed() {
				return // Close
			}
			b.log.Warn("lost NATS: serving local connections, publishes fail until it is back", "err", err)
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			if errors.Is(err, nats.ErrSlowConsumer) {
				b.slowConsumer(subject)
				return
			}
			b.log.Warn("NATS error", "subject", subject, "err", err)
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("natsbroker: connect: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("natsbroker: %w", err)
	}
	b.nc, b.js = nc, js
	if !nc.IsConnected() {
		b.log.Warn("no NATS server answers yet: retrying in the background; publishes fail until then")
	}
	b.wg.Add(1)
	go b.streamLoop()
	return b, nil
}

// Attach starts handing the cluster's messages to hub, which must have been built with
// SetInterest as its interest callback. Call it once, before the Hub has
// subscribers.
func (b *Broker) Attach(hub *pubsub.Hub) {
	b.hub = hub
	hub.SetStreamEpoch(b.Epoch)
	b.attached.Store(hub)
	b.wg.Add(2)
	go b.ingestLoop()
	go b.interestLoop()
}

// Publish sends data, a JSON value, to topic through the stream and returns
// the sequence number the stream gave it. Subscribers is 0: the push reaches
// subscribers on every node asynchronously. Failures to reach the cluster
// wrap ErrUnavailable.
func (b *Broker) Publish(ctx context.Context, topic string, data []byte) (pubsub.Published, error) {
	return b.publish(ctx, topic, data, "")
}

// publish is Publish with msgID, when not empty, as the message's
// Nats-Msg-Id: the stream stores one message per id within its duplicate
// window and answers a retry with the first one's sequence.
func (b *Broker) publish(ctx context.Context, topic string, data []byte, msgID string) (pubsub.Published, error) {
	if err := pubsub.CheckTopic(topic); err != nil {
		return pubsub.Published{}, err
	}
	if err := pubsub.CheckData(data); err != nil {
		// JSON with a byte that is not UTF-8 would be stored, dropped by
		// every node's Hub.Ingest (its subscribers then see a gap: 4003)
		// and skipped by recoveries.
		return pubsub.Published{}, err
	}
	if err := b.Healthy(); err != nil {
		b.publishFailures.Add(1)
		return pubsub.Published{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.PublishTimeout)
	defer cancel()
	var opts []jetstream.PublishOpt
	if msgID != "" {
		opts = append(opts, jetstream.WithMsgID(msgID))
	}
	ack, err := b.js.Publish(ctx, inPrefix+Subject(topic), data, opts...)
	if err != nil {
		b.publishFailures.Add(1)
		return pubsub.Published{}, fmt.Errorf("%w: publish to %q: %w", ErrUnavailable, topic, err)
	}
	epoch := b.Epoch()
	if ack.Duplicate {
		b.duplicates.Add(1)
		return pubsub.Published{Topic: topic, Seq: ack.Sequence, Epoch: epoch, Duplicate: true}, nil
	}
	b.published.Add(1)
	return pubsub.Published{Topic: topic, Seq: ack.Sequence, Epoch: epoch}, nil
}

// Healthy returns nil when the node is connected to NATS and the stream is in
// place, and an error wrapping ErrUnavailable saying why not otherwise.
func (b *Broker) Healthy() error {
	if st := b.nc.Status(); st != nats.CONNECTED {
		return fmt.Errorf("%w: NATS connection %s", ErrUnavailable, st)
	}
	b.errMu.Lock()
	err := b.streamErr
	b.errMu.Unlock()
	if err != nil {
		return fmt.Errorf("%w: stream %s: %w", ErrUnavailable, b.cfg.Stream, err)
	}
	return nil
}

// Stats reads the counters; safe from any goroutine.
func (b *Broker) Stats() Stats {
	return Stats{
		Connected:       b.nc.IsConnected(),
		Up:              b.Healthy() == nil,
		Reconnects:      b.reconnects.Load(),
		Published:       b.published.Load(),
		PublishFailures: b.publishFailures.Load(),
		Duplicates:      b.duplicates.Load(),
		Dropped:         b.dropped(),
	}
}

// Close disconnects and stops the Broker's goroutines.
func (b *Broker) Close() {
	b.once.Do(func() {
		close(b.done)
		b.nc.Close()
		b.wg.Wait()
	})
}

// ingestLoop hands every republished message to the Hub, in arrival order.
// It waits while the loops are behind (Hub.IngestWait): the channel then
// fills and nats.go drops and counts what does not fit, rather than the
// loops' task lists growing without bound.
func (b *Broker) ingestLoop() {
	defer b.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-b.done
		cancel()
	}()
	for {
		select {
		case m := <-b.msgs:
			b.ingest(ctx, m)
		case <-b.done:
			return
		}
	}
}

// ingest hands one republished message to Hub.Ingest with the stream's
// sequence number.
func (b *Broker) ingest(ctx context.Context, m *nats.Msg) {
	if m.Subject == checkSubject {
		b.check(m) // gaps.go
		return
	}
	topic, err := Topic(strings.TrimPrefix(m.Subject, outPrefix))
	if err == nil {
		var seq uint64
		seq, err = strconv.ParseUint(m.Header.Get(jetstream.SequenceHeader), 10, 64)
		if err == nil {
			b.hub.IngestAfter(ctx, topic, seq, prevSeq(m), m.Data) // fails only when the Broker closes
			return
		}
	}
	b.log.Warn("dropping a message the stream did not republish", "subject", m.Subject, "err", err)
}

// prevSeq is the seq of the topic's message before m in the stream, which
// the stream's republish puts in its Nats-Last-Sequence header (0 for the
// first), pubsub.NoPrev when m does not say.
func prevSeq(m *nats.Msg) uint64 {
	prev, err := strconv.ParseUint(m.Header.Get(jetstream.LastSequenceHeader), 10, 64)
	if err != nil {
		return pubsub.NoPrev
	}
	return prev
}

// streamLoop creates or updates the stream after every (re)connect, retrying
// with backoff while connected: a restarted NATS server may answer before its
// JetStream is ready.
func (b *Broker) streamLoop() {
	defer b.wg.Done()
	for {
		select {
		case <-b.kick:
		case <-b.done:
			return
		}
		for attempt := 1; b.nc.IsConnected(); attempt++ {
			err := b.ensureStream()
			b.errMu.Lock()
			b.streamErr = err
			b.errMu.Unlock()
			if err == nil {
				b.checkGaps()
				break
			}
			b.log.Warn("cannot create the stream; retrying", "stream", b.cfg.Stream, "attempt", attempt, "err", err)
			select {
			case <-time.After(b.backoff(attempt)):
			case <-b.done:
				return
			}
		}
	}
}

// ensureStream creates the stream when it is missing. An existing stream
// keeps what an operator set that wspush has no setting for (replicas,
// storage, message size...); the subjects, the republish rule, direct gets
// (allow_direct, for recoveries) and the limits wspush is configured with
// (age, bytes, per topic, duplicate window, DiscardOld) are put back when
// they differ.
func (b *Broker) ensureStream() error {
	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.PublishTimeout)
	defer cancel()
	want := jetstream.StreamConfig{
		Name:      b.cfg.Stream,
		Subjects:  []string{inPrefix + ">"},
		Storage:   b.cfg.Storage,
		Replicas:  b.cfg.Replicas,
		Retention: jetstream.LimitsPolicy,
		RePublish: &jetstream.RePublish{Source: inPrefix + ">", Destination: outPrefix + ">"},
		// Recoveries read a batch of a topic's messages per request
		// (history.go).
		AllowDirect: true,
	}
	b.applyLimits(&want)
	stream, err := b.js.Stream(ctx, want.Name)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		stream, err = b.js.CreateStream(ctx, want)
	case err == nil:
		have := stream.CachedInfo().Config
		fixed := have
		fixed.Subjects, fixed.RePublish, fixed.AllowDirect = want.Subjects, want.RePublish, want.AllowDirect
		b.applyLimits(&fixed)
		if !slices.Equal(have.Subjects, fixed.Subjects) || have.RePublish == nil || *have.RePublish != *fixed.RePublish ||
			!have.AllowDirect || !sameLimits(have, fixed) {
			b.log.Info("updating the stream's configuration", "stream", want.Name,
				"max_age", fixed.MaxAge, "max_bytes", fixed.MaxBytes, "max_msgs_per_subject", fixed.MaxMsgsPerSubject, "duplicate_window", fixed.Duplicates)
			stream, err = b.js.UpdateStream(ctx, fixed)
		}
	}
	if err != nil {
		return err
	}
	epoch := streamEpoch(stream.CachedInfo().Created)
	b.errMu.Lock()
	old := b.epoch
	b.stream, b.epoch = stream, epoch
	b.errMu.Unlock()
	b.log.Info("stream ready", "stream", want.Name, "epoch", epoch)
	if old != "" && old != epoch {
		b.streamReplaced(old, epoch)
	}
	return nil
}

func (b *Broker) kickStream() {
	select {
	case b.kick <- struct{}{}:
	default: // one is pending already
	}
}

// backoff is the wait before attempt n+1: ReconnectWait doubled per attempt up
// to MaxReconnectWait, plus up to half of it again as jitter, so that nodes
// that lost the same server do not come back in step.
func (b *Broker) backoff(attempt int) time.Duration {
	d := b.cfg.ReconnectWait
	for i := 1; i < attempt && d < b.cfg.MaxReconnectWait; i++ {
		d *= 2
	}
	d = min(d, b.cfg.MaxReconnectWait)
	return d + rand.N(d/2+1)
}
