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
// stream's order, as Hub.Ingest requires. A second goroutine (re)creates the
// stream after each (re)connect, when missing. SetInterest is called by the Hub under its
// lock, in order, from any event loop; it (un)subscribes at once, and the
// first subscriber of a topic on this node waits one NATS round trip (a
// flush), so a publish made after its "subscribed" answer reaches it.
// Publish, Healthy and Stats are safe from any goroutine. nats.go reconnects
// by itself and re-sends the subscriptions.
package natsbroker

import (
	"context"
	"encoding/json"
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
	MaxAge           time.Duration         // how long the stream keeps messages, when wspush creates it
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
	cfg  Config
	log  *slog.Logger
	nc   *nats.Conn
	js   jetstream.JetStream
	hub  *pubsub.Hub    // set once by Attach, before the ingest goroutine starts
	msgs chan *nats.Msg // every topic subscription's messages, for ingestLoop
	kick chan struct{}  // (re)create the stream
	done chan struct{}
	wg   sync.WaitGroup
	once sync.Once

	mu   sync.Mutex
	subs map[string]*nats.Subscription // topic -> its wspush.out subscription

	errMu     sync.Mutex
	streamErr error // the last stream creation's outcome

	published       atomic.Uint64
	publishFailures atomic.Uint64
	reconnects      atomic.Uint64
}

// Stats are the Broker's counters.
type Stats struct {
	Connected       bool
	Reconnects      uint64
	Published       uint64 // publishes the stream acknowledged
	PublishFailures uint64
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
				b.log.Warn("ingest buffer full: messages for this node were dropped", "subject", subject, "buffer", cfg.Buffer)
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
	b.wg.Add(1)
	go b.ingestLoop()
}

// SetInterest is the Hub's interest callback: it subscribes this node to a
// topic's republished messages when the topic gains its first local
// subscriber, and unsubscribes when it loses its last.
func (b *Broker) SetInterest(topic string, active bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !active {
		sub := b.subs[topic]
		delete(b.subs, topic)
		if sub != nil {
			if err := sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
				b.log.Warn("unsubscribe failed", "topic", topic, "err", err)
			}
		}
		return
	}
	sub, err := b.nc.ChanSubscribe(outPrefix+Subject(topic), b.msgs)
	if err != nil {
		b.log.Error("subscribe failed: the topic gets no pushes from the cluster", "topic", topic, "err", err)
		return
	}
	b.subs[topic] = sub
	if b.nc.IsConnected() {
		// Once the server has the subscription, a publish acknowledged
		// after this reaches us. Offline, the subscription is sent on
		// reconnect.
		if err := b.nc.FlushTimeout(b.cfg.FlushTimeout); err != nil {
			b.log.Warn("subscription not confirmed", "topic", topic, "err", err)
		}
	}
}

// Publish sends data, a JSON value, to topic through the stream and returns
// the sequence number the stream gave it. Subscribers is 0: the push reaches
// subscribers on every node asynchronously. Failures to reach the cluster
// wrap ErrUnavailable.
func (b *Broker) Publish(ctx context.Context, topic string, data []byte) (pubsub.Published, error) {
	if err := pubsub.CheckTopic(topic); err != nil {
		return pubsub.Published{}, err
	}
	if !json.Valid(data) {
		return pubsub.Published{}, pubsub.ErrInvalidJSON
	}
	if err := b.Healthy(); err != nil {
		b.publishFailures.Add(1)
		return pubsub.Published{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.PublishTimeout)
	defer cancel()
	ack, err := b.js.Publish(ctx, inPrefix+Subject(topic), data)
	if err != nil {
		b.publishFailures.Add(1)
		return pubsub.Published{}, fmt.Errorf("%w: publish to %q: %w", ErrUnavailable, topic, err)
	}
	b.published.Add(1)
	return pubsub.Published{Topic: topic, Seq: ack.Sequence}, nil
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
		Reconnects:      b.reconnects.Load(),
		Published:       b.published.Load(),
		PublishFailures: b.publishFailures.Load(),
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
func (b *Broker) ingestLoop() {
	defer b.wg.Done()
	for {
		select {
		case m := <-b.msgs:
			b.ingest(m)
		case <-b.done:
			return
		}
	}
}

// ingest hands one republished message to Hub.Ingest with the stream's
// sequence number.
func (b *Broker) ingest(m *nats.Msg) {
	topic, err := Topic(strings.TrimPrefix(m.Subject, outPrefix))
	if err == nil {
		var seq uint64
		seq, err = strconv.ParseUint(m.Header.Get(jetstream.SequenceHeader), 10, 64)
		if err == nil {
			b.hub.Ingest(topic, seq, m.Data)
			return
		}
	}
	b.log.Warn("dropping a message the stream did not republish", "subject", m.Subject, "err", err)
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
// keeps what an operator set (replicas, limits); only the subjects and the
// republish rule wspush depends on are put back when they differ.
func (b *Broker) ensureStream() error {
	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.PublishTimeout)
	defer cancel()
	want := jetstream.StreamConfig{
		Name:      b.cfg.Stream,
		Subjects:  []string{inPrefix + ">"},
		Storage:   b.cfg.Storage,
		Replicas:  b.cfg.Replicas,
		MaxAge:    b.cfg.MaxAge,
		Retention: jetstream.LimitsPolicy,
		Discard:   jetstream.DiscardOld,
		RePublish: &jetstream.RePublish{Source: inPrefix + ">", Destination: outPrefix + ">"},
	}
	stream, err := b.js.Stream(ctx, want.Name)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		_, err = b.js.CreateStream(ctx, want)
	case err == nil:
		have := stream.CachedInfo().Config
		if !slices.Equal(have.Subjects, want.Subjects) || have.RePublish == nil || *have.RePublish != *want.RePublish {
			have.Subjects, have.RePublish = want.Subjects, want.RePublish
			_, err = b.js.UpdateStream(ctx, have)
		}
	}
	if err != nil {
		return err
	}
	b.log.Info("stream ready", "stream", want.Name)
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
