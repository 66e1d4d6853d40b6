package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
)

// errUnsubscribedBeforeAnswer is what a Subscribe waiting for its answer
// returns when Unsubscribe dropped the topic first.
var errUnsubscribedBeforeAnswer = errors.New("wspush client: unsubscribed before the server answered")

// Subscribe holds topic with handler h and waits for the server's answer: nil
// once it is subscribed, a *ServerError when it refused the topic, the
// context's error when ctx ended first (the topic is then dropped). While
// the client is reconnecting the sub is sent on the next connection. The
// topic is resubscribed on every reconnect until Unsubscribe.
//
// h is called on the client's read goroutine; see the package documentation.
func (c *Client) Subscribe(ctx context.Context, topic string, h Handler) error {
	if err := checkTopic(topic); err != nil {
		return err
	}
	if h == nil {
		return fmt.Errorf("wspush client: subscribe %q: nil handler", topic)
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	if _, held := c.topics[topic]; held {
		c.mu.Unlock()
		return fmt.Errorf("%w: %q", ErrAlreadySubscribed, topic)
	}
	answer := make(chan error, 1)
	s := &subscription{handler: h, waiters: []chan error{answer}}
	c.topics[topic] = s
	if w := c.conn; w != nil {
		frame, _ := json.Marshal(command{Op: opSub, Topics: []string{topic}})
		w.ctrl = append(w.ctrl, &outMsg{frame: frame, expect: []pending{{op: opSub, topic: topic}}})
		w.signal()
	}
	c.mu.Unlock()

	select {
	case err := <-answer:
		return err
	case <-ctx.Done():
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case err := <-answer: // answered meanwhile
		return err
	default:
	}
	if c.topics[topic] == s {
		delete(c.topics, topic)
		c.sendUnsubLocked(topic, nil)
	}
	return fmt.Errorf("wspush client: subscribe %q: %w", topic, ctx.Err())
}

// Unsubscribe drops topic at once (its handler is not called again) and
// waits until the server confirms, or ctx ends. Unsubscribing a topic not
// held does nothing.
func (c *Client) Unsubscribe(ctx context.Context, topic string) error {
	c.mu.Lock()
	s := c.topics[topic]
	if s == nil {
		c.mu.Unlock()
		return nil
	}
	delete(c.topics, topic)
	for _, ch := range s.waiters {
		ch <- errUnsubscribedBeforeAnswer
	}
	s.waiters = nil
	answer := make(chan error, 1)
	sent := c.sendUnsubLocked(topic, answer)
	c.mu.Unlock()
	if !sent {
		return nil // not connected: the next connection will not subscribe it
	}
	select {
	case err := <-answer:
		return err
	case <-ctx.Done():
		return fmt.Errorf("wspush client: unsubscribe %q: %w", topic, ctx.Err())
	case <-c.done:
		return nil
	}
}

// sendUnsubLocked queues an unsub on the open connection, if there is one.
func (c *Client) sendUnsubLocked(topic string, answer chan error) bool {
	w := c.conn
	if w == nil {
		return false
	}
	frame, _ := json.Marshal(command{Op: opUnsub, Topics: []string{topic}})
	w.ctrl = append(w.ctrl, &outMsg{frame: frame, expect: []pending{{op: opUnsub, topic: topic, done: answer}}})
	w.signal()
	return true
}
