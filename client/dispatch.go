package client

import (
	"encoding/json"
)

// dispatch handles one server message on w's read goroutine: a push goes to
// its topic's handler, an answer settles the command it answers.
func (c *Client) dispatch(w *wsConn, b []byte) {
	var in inbound
	if err := json.Unmarshal(b, &in); err != nil {
		c.log.Debug("wspush: malformed server message dropped", "err", err)
		return
	}
	switch in.Op {
	case "":
		c.push(in)
	case opSubscribed:
		c.subscribed(w, in)
	case opUnsubscribed:
		c.unsubscribed(w, in)
	case opRefreshed:
		c.mu.Lock()
		p, ok := w.popThrough(func(p pending) bool { return p.op == opRefresh })
		w.exp = in.Exp
		c.mu.Unlock()
		if ok && p.done != nil {
			p.done <- nil
		}
	case opError:
		c.serverError(w, in)
	default:
		c.log.Debug("wspush: unknown server op dropped", "op", in.Op)
	}
}

// popThrough removes the answers expected up to and including the first
// that match accepts: the ones before it were commands the server carried
// out without an answer (pub). Called with Client.mu held.
func (w *wsConn) popThrough(match func(pending) bool) (pending, bool) {
	for i, p := range w.answers {
		if match(p) {
			for _, skipped := range w.answers[:i] {
				if skipped.done != nil {
					skipped.done <- nil
				}
			}
			w.answers = w.answers[i+1:]
			return p, true
		}
	}
	return pending{}, false
}

func (c *Client) push(in inbound) {
	c.mu.Lock()
	s := c.topics[in.Topic]
	if s == nil {
		c.mu.Unlock()
		return // unsubscribed meanwhile
	}
	if in.Seq <= s.pos.Seq && s.confirmed {
		// The protocol never sends a seq at or below the answer's: a
		// duplicate the application must not see twice.
		c.mu.Unlock()
		c.log.Debug("wspush: duplicate push dropped", "topic", in.Topic, "seq", in.Seq, "last", s.pos.Seq)
		return
	}
	s.pos.Seq = in.Seq
	h, epoch := s.handler, s.pos.Epoch
	c.mu.Unlock()
	h(Message{Topic: in.Topic, Seq: in.Seq, Epoch: epoch, Data: in.Data})
}

func (c *Client) subscribed(w *wsConn, in inbound) {
	c.mu.Lock()
	w.popThrough(func(p pending) bool { return p.op == opSub && p.topic == in.Topic })
	s := c.topics[in.Topic]
	if s == nil {
		c.mu.Unlock()
		return
	}
	var rec *Recovery
	now := Position{Epoch: in.Epoch, Seq: in.Seq}
	if s.confirmed {
		rec = &Recovery{Topic: in.Topic, Recovered: in.Recovered != nil && *in.Recovered, Previous: s.pos, Position: now}
	}
	s.pos, s.confirmed = now, true
	waiters := s.waiters
	s.waiters = nil
	c.mu.Unlock()
	for _, ch := range waiters {
		ch <- nil
	}
	if rec != nil && c.cfg.onRecovery != nil {
		c.cfg.onRecovery(*rec)
	}
}

func (c *Client) unsubscribed(w *wsConn, in inbound) {
	c.mu.Lock()
	p, asked := w.popThrough(func(p pending) bool { return p.op == opUnsub && p.topic == in.Topic })
	if asked {
		c.mu.Unlock()
		if p.done != nil {
			p.done <- nil
		}
		return
	}
	// Not ours: the server ended it (v1.1: a refreshed token no longer
	// allows it, or the server API).
	s := c.topics[in.Topic]
	if s != nil {
		delete(c.topics, in.Topic)
	}
	c.mu.Unlock()
	if s != nil {
		err := &ServerUnsubscribeError{Topic: in.Topic}
		for _, ch := range s.waiters {
			ch <- err
		}
		c.notifyError(err)
	}
}

// serverError attributes an error answer: to the command naming its topic
// (v1.1), else to the oldest command owed an answer. A failed sub drops the
// topic; errors no call waits for go to the error handler.
func (c *Client) serverError(w *wsConn, in inbound) {
	c.mu.Lock()
	p, ok := w.popThrough(func(p pending) bool {
		return in.Topic == "" || (p.topic == in.Topic && (p.op == opSub || p.op == opPub))
	})
	err := &ServerError{Op: p.op, Topic: in.Topic, Message: in.Error}
	if ok && err.Topic == "" {
		err.Topic = p.topic
	}
	var waiters []chan error
	if ok && p.op == opSub {
		if s := c.topics[p.topic]; s != nil {
			waiters = s.waiters
			delete(c.topics, p.topic)
		}
	}
	c.mu.Unlock()
	switch {
	case len(waiters) > 0:
		for _, ch := range waiters {
			ch <- err
		}
	case ok && p.done != nil:
		p.done <- err
	default:
		c.notifyError(err)
	}
}
