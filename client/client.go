package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"sort"
	"sync"
	"time"
)

// Message is one push: the published JSON value and its position.
type Message struct {
	Topic string
	Seq   uint64          // strictly increasing within the topic's epoch
	Epoch string          // (v1.1) the topic's epoch from its subscribed answer; "" from a v1 server
	Data  json.RawMessage // the published value, the handler's to keep
}

// Handler receives the pushes of one topic. See the package documentation
// for the goroutine it runs on and why it must return quickly.
type Handler func(Message)

// Recovery is the outcome of resubscribing one topic after a reconnect.
type Recovery struct {
	Topic string
	// Recovered is true when the server replays every push missed since
	// Previous: they follow, in order, before live pushes. False means pushes
	// may have been lost (the position was unknown, too old, or its epoch
	// ended) and the application must reload the topic's state.
	Recovered bool
	Previous  Position // where the client stood when the connection ended
	Position  Position // the server's answer: pushes after it have Seq > Position.Seq
}

// Client is a connection to a wspush server that outlives the TCP
// connection under it: it reconnects, resubscribes and refreshes its token
// on its own (see the package documentation). Its methods are safe for
// concurrent use. Dial creates it; Close ends it.
type Client struct {
	url    string
	cfg    config
	log    *slog.Logger
	ctx    context.Context // ended by Close: stops dials and backoff waits
	cancel context.CancelFunc
	done   chan struct{} // closed when every goroutine of the client has ended

	mu       sync.Mutex
	topics   map[string]*subscription
	pubs     []*outMsg // publishes not yet written, across connections
	buffered int       // bytes of pubs, and of the publish being written
	conn     *wsConn   // the open connection, nil while reconnecting
	closed   bool
	err      error // why the client ended, once done is closed

	closeOnce sync.Once
}

// subscription is a topic the client holds. Owned by Client.mu.
type subscription struct {
	handler   Handler
	pos       Position
	confirmed bool         // a subscribed answer arrived: later ones are resubscriptions
	waiters   []chan error // Subscribe calls waiting for the first answer
}

// Dial connects to the server's WebSocket URL (ws://host:port/ws, or wss://;
// http(s):// is accepted as well) and returns once the connection is open.
// It fails when this first attempt fails, with a *HandshakeError when the
// server answered with an HTTP error (401: the token was refused). ctx
// bounds this first attempt only.
func Dial(ctx context.Context, rawURL string, opts ...Option) (*Client, error) {
	cfg := defaults()
	for _, o := range opts {
		o(&cfg)
	}
	cfg = cfg.withDefaults()
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("wspush: dial: %w", err)
	}
	switch u.Scheme {
	case "ws", "wss", "http", "https":
	default:
		return nil, fmt.Errorf("wspush: dial %s: scheme must be ws or wss", rawURL)
	}
	c := &Client{
		url:    rawURL,
		cfg:    cfg,
		log:    cfg.logger,
		done:   make(chan struct{}),
		topics: make(map[string]*subscription),
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	dctx, stop := context.WithCancel(ctx)
	defer stop()
	w, err := c.connect(dctx)
	if err != nil {
		c.cancel()
		return nil, fmt.Errorf("wspush: dial: %w", err)
	}
	go c.run(w)
	return c, nil
}

// Done is closed when the client has ended: after Close, after a close the
// client does not reconnect from (4002, or any with WithoutReconnect).
func (c *Client) Done() <-chan struct{} { return c.done }

// Err says why the client ended (ErrClosed after Close, a *CloseError...);
// nil while it runs.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close ends the connection with a close frame 1000, stops reconnecting and
// waits for the client's goroutines to end. Calls waiting on the client
// return ErrClosed; publishes not yet written are dropped.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		w := c.conn
		c.mu.Unlock()
		c.cancel()
		if w != nil {
			w.closeNormal()
		}
	})
	<-c.done
	return nil
}

// Connected reports whether a connection is open now.
func (c *Client) Connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conn != nil
}

// Position is the topic's position as the client knows it: the epoch of its
// last subscribed answer and the seq of the last push delivered. ok is false
// for a topic not held.
func (c *Client) Position(topic string) (pos Position, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.topics[topic]
	if s == nil {
		return Position{}, false
	}
	return s.pos, true
}

// Topics lists the topics held, sorted.
func (c *Client) Topics() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sortedTopicsLocked()
}

func (c *Client) sortedTopicsLocked() []string {
	ts := make([]string, 0, len(c.topics))
	for t := range c.topics {
		ts = append(ts, t)
	}
	sort.Strings(ts)
	return ts
}

// run supervises the connections: it serves one until it ends, then
// reconnects with backoff, until Close or a close it does not reconnect from.
func (c *Client) run(w *wsConn) {
	rnd := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	for {
		err := c.serve(w)
		if c.ctx.Err() != nil {
			c.finish(ErrClosed)
			return
		}
		c.log.Info("wspush connection ended", "err", err)
		c.notifyDisconnect(err)
		if !c.reconnects(err) {
			c.finish(err)
			return
		}
		// After 4001 the token is the reason: a new one at once, no wait.
		quick := closeCode(err) == CloseTokenExpired
		for attempt := 0; ; attempt++ {
			if !quick || attempt > 0 {
				t := time.NewTimer(backoff(attempt, c.cfg.minBackoff, c.cfg.maxBackoff, rnd))
				select {
				case <-t.C:
				case <-c.ctx.Done():
					t.Stop()
					c.finish(ErrClosed)
					return
				}
			}
			w, err = c.connect(c.ctx)
			if err == nil {
				break
			}
			if c.ctx.Err() != nil {
				c.finish(ErrClosed)
				return
			}
			c.log.Info("wspush reconnect failed", "attempt", attempt, "err", err)
			c.notifyDisconnect(fmt.Errorf("wspush: reconnect: %w", err))
		}
	}
}

// reconnects decides from how a connection ended whether to connect again.
func (c *Client) reconnects(err error) bool {
	if !c.cfg.reconnect {
		return false
	}
	if closeCode(err) == CloseDisconnected {
		return c.cfg.afterDisconnect
	}
	return true
}

// finish ends the client: every caller still waiting gets err.
func (c *Client) finish(err error) {
	c.mu.Lock()
	c.closed = true
	c.err = err
	for _, s := range c.topics {
		for _, w := range s.waiters {
			w <- err
		}
		s.waiters = nil
	}
	for _, m := range c.pubs {
		m.done <- err
	}
	c.pubs, c.buffered = nil, 0
	c.mu.Unlock()
	c.cancel()
	close(c.done)
}

func (c *Client) notifyDisconnect(err error) {
	if c.cfg.onDisconnect != nil {
		c.cfg.onDisconnect(err)
	}
}

func (c *Client) notifyError(err error) {
	c.log.Debug("wspush error", "err", err)
	if c.cfg.onError != nil {
		c.cfg.onError(err)
	}
}

// closeCode is the server's close code in err, or 0.
func closeCode(err error) int {
	var ce *CloseError
	if errors.As(err, &ce) {
		return ce.Code
	}
	return 0
}
