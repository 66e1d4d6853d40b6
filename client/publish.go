package client

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
)

// Publish sends data, one JSON value, to topic with {"op":"pub"} (the server
// must run with -client-publish, and with auth the token must allow it). It
// returns once the frame is written to the connection; the server sends no
// acknowledgement, and a refusal reaches the error handler as a
// *ServerError. While the client is reconnecting the message waits in the
// outgoing queue.
//
// The queue is bounded (WithMaxBuffered): a message that would take it past
// the bound fails at once with ErrBufferFull, so a stalled connection costs
// bounded memory; back off and retry, or drop. When ctx ends before the
// frame is taken for writing, it is withdrawn and ctx's error returned.
func (c *Client) Publish(ctx context.Context, topic string, data json.RawMessage) error {
	if err := checkTopic(topic); err != nil {
		return err
	}
	if !json.Valid(data) {
		return fmt.Errorf("%w: publish to %q", ErrInvalidData, topic)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	frame, err := json.Marshal(command{Op: opPub, Topic: topic, Data: data})
	if err != nil {
		return fmt.Errorf("wspush client: publish %q: %w", topic, err)
	}
	m := &outMsg{frame: frame, expect: []pending{{op: opPub, topic: topic}}, done: make(chan error, 1)}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	if c.buffered+len(frame) > c.cfg.maxBuffered {
		n := c.buffered
		c.mu.Unlock()
		return fmt.Errorf("%w: %d bytes queued, %d more would pass the limit of %d", ErrBufferFull, n, len(frame), c.cfg.maxBuffered)
	}
	c.pubs = append(c.pubs, m)
	c.buffered += len(frame)
	if w := c.conn; w != nil {
		w.signal()
	}
	c.mu.Unlock()

	select {
	case err := <-m.done:
		return err
	case <-ctx.Done():
	}
	c.mu.Lock()
	if !m.taken {
		if i := slices.Index(c.pubs, m); i >= 0 {
			c.pubs = slices.Delete(c.pubs, i, i+1)
			c.buffered -= len(frame)
			c.mu.Unlock()
			return fmt.Errorf("wspush client: publish %q: %w", topic, ctx.Err())
		}
	}
	c.mu.Unlock()
	return <-m.done // being written: its outcome comes within the write timeout
}

// Buffered is the number of bytes of publishes queued and not yet written:
// the client's bufferedAmount.
func (c *Client) Buffered() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buffered
}
